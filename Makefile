# The two commands a user needs: `make run` (install, index the shipped corpus, chat)
# and `make test` (install, lint, run the tests). Both only need python3 and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

run: install
	$(BIN)/qa index
	$(BIN)/qa chat

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/bench_engine.py

# Re-pin constraints.txt from a clean environment after changing pyproject.toml.
lock:
	rm -rf /tmp/qa-lock && $(PYTHON) -m venv /tmp/qa-lock
	/tmp/qa-lock/bin/python -m pip install -q --upgrade pip
	/tmp/qa-lock/bin/python -m pip install -q ".[test]"
	{ echo "# Exact versions for reproducible installs (pip install -c constraints.txt -e .[test])."; \
	  echo "# Regenerate with \`make lock\` after changing dependencies in pyproject.toml."; \
	  /tmp/qa-lock/bin/python -m pip freeze --exclude qa; } > constraints.txt

clean:
	rm -rf $(VENV) index/chroma* index/*.lock
