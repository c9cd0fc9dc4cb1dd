# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing and
# refresh it when pyproject.toml changes; running them again does no work that is already done.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo test lint format venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -n 2 -q

# Until the streaming recognizer lands, the demo is the training pipeline end to end on generated data:
# CASME II-layout clips made from real face photos, summarised, then a short LOSO run with a report.
demo: $(STAMP)
	$(PY) -m training synth casme2 --out $(DEMO)/casme2 --seed 0
	$(PY) -m training summary casme2 --root $(DEMO)/casme2
	$(PY) -m training loso casme2 --root $(DEMO)/casme2 --image-size 64 --epochs 8 --out $(DEMO)/runs/loso

bench: $(STAMP)
	$(PY) benchmarks/train_bench.py

clean:
	rm -rf $(DEMO) runs .pytest_cache .ruff_cache
