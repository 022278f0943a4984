# The two commands a user needs: `make run` (install, index the shipped corpus, chat)
# and `make test` (install, lint, run the tests). Both only need python3 and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train

.PHONY: install install-train browser run test lint bench eval train reliability audit lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The training-only extra (PyTorch CPU build, transformers): for `make train`, and for the
# tests, which run both training scripts on a tiny sample. `make run` never needs it.
install-train: $(TRAIN_STAMP)

$(TRAIN_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,train]"
	touch $(TRAIN_STAMP)

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

test: lint browser install-train
	$(BIN)/pytest

bench: install
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_scale.py --json bench/out/scale.json

# The reader alone on the held-out SQuAD articles (bench/eval_reader.py); the trained
# answerer beside the old rules on the gold set, the held-out SQuAD articles and
# the development sets (bench/eval_answerers.py); SQuAD 2.0's own figures (EM, F1, HasAns,
# NoAns) on the held-out 2.0-half articles; retrieval against baselines on 2,000-question
# samples of SQuAD v1.1 and the 2.0 half. Data read in place from ../shared/bench-data.
SQUAD := ../shared/bench-data/squad
eval: install
	mkdir -p docs/eval
	$(BIN)/python bench/eval_reader.py
	$(BIN)/python bench/eval_answerers.py --out docs/eval
	$(BIN)/qa eval --squad $(SQUAD)/dev-v2.0-cs224n-half.json --heldout --quiet \
		--json docs/eval/squad-v2.0-heldout.json
	$(BIN)/qa eval --squad $(SQUAD)/dev-v1.1.json --limit 2000 --seed 0 --compare --quiet \
		--json docs/eval/squad-v1.1.json
	$(BIN)/qa eval --squad $(SQUAD)/dev-v2.0-cs224n-half.json --limit 2000 --seed 0 --compare \
		--quiet --json docs/eval/squad-v2.0-half.json
	# the news development sets' results quote BBC and Reuters sentences (research-only
	# data): their figures go to the terminal and the README, not into docs/
	$(BIN)/python -m qa.eval.report docs/eval/gold.json docs/eval/shipped-b.json \
		docs/eval/squad-heldout.json docs/eval/squad-v2.0-heldout.json docs/eval/squad-v1.1.json \
		docs/eval/squad-v2.0-half.json --out docs/eval.md --command "make eval"

# Retrain the shipped models (qa/models/): the reader (about 67 min on 2 cores with bf16
# instructions, AVX-512 BF16 or AMX; in fp32 on a CPU without them, about 2 hours),
# then the refusal model on the product's own retrieval (8 to 20 min, by machine). Seeded.
train: install-train
	$(BIN)/python train/train_reader.py
	$(BIN)/python train/fit_refusal.py --work bench/out/fit

# Load and soak (16 clients, 60 s, an upload under load) and crash safety at scale (BBC,
# SIGKILL at random moments, five rounds): scripts that print their figures.
reliability: install
	$(BIN)/python bench/soak_http.py
	$(BIN)/python bench/crash_index.py
	$(BIN)/python bench/rebuild_soak.py --store embedded
	$(BIN)/python bench/rebuild_soak.py --store chroma --apps 2

# Known vulnerabilities in the installed (locked) dependencies, from the PyPI advisory data.
audit: install
	$(BIN)/python -m pip install -q "pip-audit>=2.7,<3"
	$(BIN)/pip-audit --local --skip-editable

# Re-pin constraints.txt from a clean environment after changing pyproject.toml.
lock:
	rm -rf /tmp/qa-lock && $(PYTHON) -m venv /tmp/qa-lock
	/tmp/qa-lock/bin/python -m pip install -q --upgrade pip
	/tmp/qa-lock/bin/python -m pip install -q ".[test,bench,train]"
	{ echo "# Exact versions for reproducible installs (pip install -c constraints.txt -e .[test])."; \
	  echo "# Regenerate with \`make lock\` after changing dependencies in pyproject.toml."; \
	  /tmp/qa-lock/bin/python -m pip freeze --exclude qa; } > constraints.txt

clean:
	rm -rf $(VENV) index/chroma* index/*.lock
