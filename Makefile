# wordspace: make demo | make test | make setup | make bench
# Needs only python3 and make; everything else goes into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build (pinned in pyproject.toml); a looser spec pulls CUDA.
	$(PY) -m pip install --quiet -e '.[glove,contextual,test]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/wordspace demo

test: setup
	$(PY) -m pytest

bench: setup
	@set -e; for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(PY) $$script; \
	done

clean:
	rm -rf $(VENV) data models .pytest_cache
