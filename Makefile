# `make demo` and `make test` each create .venv with the project installed when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/srat-sklearn: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

install: $(BIN)/srat-sklearn

demo: install
	$(BIN)/srat-sklearn demo

test: install
	$(BIN)/python -m pytest --doctest-modules srat_sklearn tests

clean:
	rm -rf srat-report .pytest_cache
