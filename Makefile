# ML Engineering Interview Lab — the two commands that matter:
#   make book   execute every notebook in full mode and build the website (the main job)
#   make test   lint, unit tests, and every notebook in fast mode (in parallel)
# and for contributors: make stress (every claim under adverse conditions), make bench (run times).
# Both create .venv (Python 3.11) and install the pinned set on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
BUILD := build
BOOK_SRC := $(BUILD)/book
SITE := $(BOOK_SRC)/_build/html
NB_CAP ?= 120
NB_JOBS ?= auto
CELL_TIMEOUT ?= 600
export MLLAB_PROGRESS := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help install test lint unit notebooks stress bench book execute pages site check-site quiz deck lab clean

help:
	@echo "make book   - execute all notebooks (full mode) and build the website into $(SITE)"
	@echo "make test   - lint + unit tests + every notebook in fast mode (what CI runs)"
	@echo "make lab    - open JupyterLab on the course"
	@echo "make quiz   - drill the interview questions in the terminal (QUIZ=\"--cluster FIT --lang zh\")"
	@echo "make deck   - Anki (.apkg) and CSV flashcard decks of the questions, in build/decks"
	@echo "make stress - every notebook in fast mode on one core, with other seeds, beside a busy CPU"
	@echo "make bench  - fast-mode run times, one notebook at a time, against the targets, with a speed index"
	@echo "make check-site - open the built site in headless Chromium, check pages and links"
	@echo "make clean  - remove build outputs (keeps .venv)"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# ---- tests -------------------------------------------------------------------------------
test: lint unit notebooks

lint: $(STAMP)
	$(BIN)/ruff check helpers tools tests notebooks
	$(BIN)/python -m tools.actionlint .github/workflows/*.yml deploy/model-ci.yml

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -n $(NB_JOBS) --cov --cov-report=term --cov-report=xml:$(BUILD)/coverage.xml

# Notebooks run in parallel, one kernel each (--dist loadfile keeps a notebook on one worker).
# Time is not a test: a notebook fails on time only past NB_CAP seconds (a runaway).
NBVAL := -q -p no:cacheprovider -p tools.nbtiming --nbval-lax --nbval-current-env \
	--nbval-cell-timeout=$(CELL_TIMEOUT) --nb-cap=$(NB_CAP) --rootdir=. -c pyproject.toml

notebooks: $(STAMP)
	rm -rf $(BUILD)/fast
	$(BIN)/python -m tools.notebooks prepare-fast --out $(BUILD)/fast
	$(BIN)/python -m pytest $(BUILD)/fast $(NBVAL) -n $(NB_JOBS) --dist loadfile \
		--nb-durations=$(BUILD)/fast/durations.json

stress: $(STAMP)
	$(BIN)/python -m tools.stress --out $(BUILD)/stress

bench: $(STAMP)
	rm -rf $(BUILD)/bench
	$(BIN)/python -m tools.notebooks prepare-fast --out $(BUILD)/bench
	-$(BIN)/python -m pytest $(BUILD)/bench $(NBVAL) -n 0 --nb-durations=$(BUILD)/bench/durations.json
	$(BIN)/python -m tools.bench_report --fast $(BUILD)/bench/durations.json --full $(BUILD)/full/durations.json \
		--out $(BUILD)/bench.md

# ---- the book ----------------------------------------------------------------------------
# A failing notebook does not sink the book: every notebook is executed, the site is built with
# the failure shown on its page, and then the command exits non-zero.
book: $(STAMP)
	@status=0; $(MAKE) --no-print-directory execute || status=$$?; \
	$(MAKE) --no-print-directory pages site || exit $$?; \
	if command -v chromium >/dev/null 2>&1; then $(MAKE) --no-print-directory check-site || status=1; \
	else echo "check-site skipped: Debian's 'chromium' is not installed (apt-get install chromium)"; fi; \
	echo "The book is at $(abspath $(SITE))/index.html"; \
	if [ $$status -ne 0 ]; then echo "Some notebooks failed: their pages show the failure at the top."; fi; \
	exit $$status

# Notebooks whose inputs (the notebook, helpers/, the scripts it launches, the pins) are unchanged
# since their last successful full run are reused; FORCE=1 re-executes everything.
# BOOK_FAST=1 builds the book from fast-mode runs (a quick preview; the deploy workflow can ask for it).
execute: $(STAMP)
	$(BIN)/python -m tools.notebooks execute --out $(BUILD)/full --timeout $(CELL_TIMEOUT) --jobs $(NB_JOBS) \
		$(if $(FORCE),,--reuse) $(if $(BOOK_FAST),--fast,)

pages: $(STAMP)
	$(BIN)/python -m tools.book_pages --executed $(BUILD)/full --out $(BOOK_SRC)

site: $(STAMP)
	$(BIN)/jupyter-book build $(BOOK_SRC) --warningiserror --keep-going

# SHOTS=1 also saves a PNG of every page in build/screenshots (twice the Chromium runs); pages unchanged
# since their last clean check are not rendered again (FORCE=1 renders all)
check-site: $(STAMP)
	$(BIN)/python -m tools.check_site $(SITE) $(if $(SHOTS),--screenshot $(BUILD)/screenshots,) \
		$(if $(FORCE),,--cache $(BUILD)/check-site-cache.json)

# ---- studying ----------------------------------------------------------------------------
# make quiz QUIZ="--cluster FIT --lang zh": spaced-repetition drill over questions.yaml
QUIZ ?=
quiz: $(STAMP)
	$(BIN)/python -m tools.quiz $(QUIZ)

deck: $(STAMP)
	$(BIN)/python -m tools.decks --out $(BUILD)/decks

lab: $(STAMP)
	MLLAB_PROGRESS=1 $(BIN)/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache .coverage
