"""``python -m training``: data summaries, generated data, CK+ pretraining, LOSO and the ablation."""

from training.cli import main

raise SystemExit(main())
