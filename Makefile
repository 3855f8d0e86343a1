# Every target sets itself up: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench-sandbox bench-extract screenshots clean

# PYTHONWARNINGS: setuptools warns about the editable layout on every install (nothing to act on)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m flows.demo --students 1000 --lake ./lake

# -n 2 --dist loadfile: two processes, a test file's module fixtures stay in one of them
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-sandbox: $(STAMP)
	$(PY) bench/sandbox_paging.py --students 25000

bench-extract: $(STAMP)
	$(PY) bench/extract.py --students 25000

# the README's Prefect UI pictures (docs/img/): a real server, the demo flows, headless Chromium
screenshots: $(STAMP)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[screenshots]'
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) .venv-peers .cache lake bench/.cache build *.egg-info \
		.pytest_cache .mypy_cache .ruff_cache
