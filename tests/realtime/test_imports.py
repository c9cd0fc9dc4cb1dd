"""The streaming side never imports torch (start-up time and memory of the live recognizer)."""

import importlib
import pkgutil
import subprocess
import sys


def test_realtime_does_not_import_torch():
    import realtime

    names = [m.name for m in pkgutil.walk_packages(realtime.__path__, "realtime.") if not m.name.endswith("batch")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "importing realtime pulled in torch"
    assert importlib.util.find_spec("realtime") is not None
