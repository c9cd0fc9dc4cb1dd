"""``python -m realtime.batch``: see :mod:`realtime.batch.command`."""

import sys

from realtime.batch.command import main

if __name__ == "__main__":
    sys.exit(main())
