# The two set-up commands of the README: `make demo` (the whole pipeline on a generated dataset, locally)
# and `make test` (the default test suite, with the real S3 and Kubernetes API servers it starts itself).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: venv demo test test-runtime lint format images clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: venv
	$(BIN)/wsovvis demo --out $(OUT)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) out .pytest_cache
