# The two commands a user needs: `make run` (install, index the shipped corpus, chat)
# and `make test` (install, lint, run the tests). Both only need python3 and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser run test lint bench eval reliability audit lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

run: install
	$(BIN)/qa index
	$(BIN)/qa serve

# Debian's chromium for the web chat's browser test (never a downloaded browser). Where it
# can't be installed (no root, no apt), the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	      echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "chromium needs root and apt-get to install: the browser test will be skipped"; fi; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint browser
	$(BIN)/pytest

bench: install
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_scale.py --json bench/out/scale.json

# The gold set with baselines side by side, and 2,000-question samples of SQuAD v1.1 and of
# the SQuAD 2.0 half (read in place from ../shared/bench-data), into docs/eval.md.
SQUAD := ../shared/bench-data/squad
eval: install
	mkdir -p docs/eval
	$(BIN)/qa eval corpus/gold.jsonl --compare --quiet --json docs/eval/gold.json
	$(BIN)/qa eval --squad $(SQUAD)/dev-v1.1.json --limit 2000 --seed 0 --compare --quiet \
		--json docs/eval/squad-v1.1.json
	$(BIN)/qa eval --squad $(SQUAD)/dev-v2.0-cs224n-half.json --limit 2000 --seed 0 --compare \
		--quiet --json docs/eval/squad-v2.0-half.json
	$(BIN)/python -m qa.report docs/eval/gold.json docs/eval/squad-v1.1.json \
		docs/eval/squad-v2.0-half.json --out docs/eval.md --command "make eval"

# Load and soak (16 clients, 60 s, an upload under load) and crash safety at scale (BBC,
# SIGKILL at random moments, five rounds): scripts that print their figures.
reliability: install
	$(BIN)/python bench/soak_http.py
	$(BIN)/python bench/crash_index.py

# Known vulnerabilities in the installed (locked) dependencies, from the PyPI advisory data.
audit: install
	$(BIN)/python -m pip install -q "pip-audit>=2.7,<3"
	$(BIN)/pip-audit --local --skip-editable

# Re-pin constraints.txt from a clean environment after changing pyproject.toml.
lock:
	rm -rf /tmp/qa-lock && $(PYTHON) -m venv /tmp/qa-lock
	/tmp/qa-lock/bin/python -m pip install -q --upgrade pip
	/tmp/qa-lock/bin/python -m pip install -q ".[test,bench]"
	{ echo "# Exact versions for reproducible installs (pip install -c constraints.txt -e .[test])."; \
	  echo "# Regenerate with \`make lock\` after changing dependencies in pyproject.toml."; \
	  /tmp/qa-lock/bin/python -m pip freeze --exclude qa; } > constraints.txt

clean:
	rm -rf $(VENV) index/chroma* index/*.lock
