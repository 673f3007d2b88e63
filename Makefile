# Two commands matter: `make run` (set up and serve on the defaults) and `make test`.
VENV ?= .venv
PYTHON ?= python3
# The torch build to install. This default matches the CPU/CUDA wheels pip finds on PyPI;
# for a small CPU-only install elsewhere use:
#   make TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu torch torchvision" run
TORCH_PIP ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin

.PHONY: run dev test test-fast lint bench demo setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PIP)
	touch $@

$(VENV)/.runtime: requirements.txt pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.test: requirements-test.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

setup: $(VENV)/.runtime

run: $(VENV)/.runtime  ## serve on http://0.0.0.0:9090 with the embedded defaults
	$(BIN)/gunicorn _wsgi:app

dev: $(VENV)/.runtime  ## Flask development server, debug logs
	$(BIN)/python _wsgi.py --log-level DEBUG

test: $(VENV)/.test  ## everything: unit, real Label Studio, Redis, browser
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-fast: $(VENV)/.test  ## skips the tests that train or start Label Studio
	$(BIN)/python -m pytest -m "not slow and not e2e and not browser"

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.test
	$(BIN)/python scripts/benchmark.py

demo: $(VENV)/.test
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
