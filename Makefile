# llmcourse: two commands do everything on a fresh machine:
#   make book   create .venv, install the locked dependencies and the package, build the HTML book
#   make test   the same set-up, then the whole test suite (strict book build, unit tests,
#               chapter re-execution with nbval, the nbgrader assignment pipeline)
# Instructor targets: make assignments | make grade ASSIGNMENT=ps1 | make bench
# The logic lives in the llmcourse package; these targets are thin wrappers.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSIGNMENT ?= ps1

# Every tool writes its caches inside the ignored _build/ folder, not in $HOME or /tmp.
export MPLCONFIGDIR := $(CURDIR)/_build/mplconfig
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/_build/torchinductor
# nbgrader shells out to `alembic`, and Jupyter must find the venv's kernel.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv book test chapters assignments grade bench lock clean

venv: $(STAMP)

# Re-run the install whenever the lock file or the package metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@mkdir -p $(MPLCONFIGDIR) $(TORCHINDUCTOR_CACHE_DIR)
	@touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build --all -W -n --keep-going .
	@echo "Open _build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Re-execute the chapters in place after editing them (stored outputs, tidy metadata).
chapters: $(STAMP)
	$(BIN)/python scripts/run_chapters.py

assignments: $(STAMP)
	$(BIN)/llmcourse assignments

grade: $(STAMP)
	$(BIN)/llmcourse grade $(ASSIGNMENT) $(GRADE_FLAGS)  # e.g. GRADE_FLAGS="--force --jobs 4"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ngram.py --json benchmarks/results/ngram.json
	$(BIN)/python benchmarks/bench_word2vec.py --json benchmarks/results/word2vec.json
	$(BIN)/python benchmarks/bench_bpe.py --json benchmarks/results/bpe.json
	$(BIN)/python benchmarks/bench_grading.py --json benchmarks/results/grading.json
	$(BIN)/python benchmarks/chapter_times.py --json benchmarks/results/chapter_times.json

# Re-resolve and pin every dependency (run after editing pyproject.toml, then commit the lock).
lock: $(STAMP)
	{ sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable \
	  | grep -v -E '^(pip|llmcourse)==' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build .pytest_cache .hypothesis
