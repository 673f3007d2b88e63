# Two commands matter: `make run` (set up and serve on the defaults) and `make test`.
VENV ?= .venv
PYTHON ?= python3
# Everything else installs from the locks in locks/ (exact versions, hash-checked: what CI tested);
# `make lock` refreshes them from the ranges in requirements*.txt.
# The torch build is chosen per hardware, before a lock. This default (locks/torch.txt) is the
# build pip finds on PyPI (CUDA, also runs on CPUs); for a small CPU-only install use:
#   make TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1" run
TORCH_PIP ?= -r locks/torch.txt
BIN := $(VENV)/bin
# pytest-xdist workers for `make test` (whole files per worker; 0 runs in one process). Much of the suite
# waits on Label Studio, servers and child processes, so 2 workers use 2 cores better than one.
PYTEST_WORKERS ?= 2

.PHONY: run dev test test-fast lint bench demo setup clean lock deps-latest prepare-label-studio

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.torch: locks/torch.txt | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PIP)
	touch $@

$(VENV)/.runtime: locks/requirements.txt pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -r locks/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.test: locks/requirements-test.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r locks/requirements-test.txt
	touch $@

setup: $(VENV)/.runtime

run: $(VENV)/.runtime  ## serve on http://0.0.0.0:9090 with the embedded defaults
	$(BIN)/gunicorn _wsgi:app

dev: $(VENV)/.runtime  ## Flask development server, debug logs
	$(BIN)/python _wsgi.py --log-level DEBUG

# Label Studio's venv (from its lock) and migrated database, built in the background while our venv
# installs; the tests wait for it (a file lock) only when they first need Label Studio.
LS_PREPARE_LOG ?= /tmp/ls-yolo-prepare-$(shell id -u).log
prepare-label-studio:
	@echo "preparing Label Studio in the background (log: $(LS_PREPARE_LOG))"
	@nohup $(PYTHON) -m tests.support.label_studio_install > $(LS_PREPARE_LOG) 2>&1 &

test: prepare-label-studio $(VENV)/.test  ## everything: unit, real Label Studio, Redis, browser
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(VENV)/.test  ## skips the tests that train or start Label Studio
	$(BIN)/python -m pytest -m "not slow and not e2e and not browser"

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.test
	$(BIN)/python scripts/benchmark.py

demo: $(VENV)/.test
	$(BIN)/python scripts/demo.py

lock: $(VENV)/.test  ## recompile locks/ from the ranges (keeps pins the ranges still allow; --upgrade for newest)
	$(BIN)/python scripts/lock.py $(LOCK_ARGS)

deps-latest: $(VENV)/.test  ## newest versions the ranges allow, in a scratch venv: what moved, what fails
	$(BIN)/python scripts/deps_latest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
