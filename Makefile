# wordspace: make demo | make test | make setup | make bench
# Needs only python3 and make; everything else goes into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup demo test bench clean chromium

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build (pinned in pyproject.toml); a looser spec pulls CUDA.
	$(PY) -m pip install --quiet -e '.[glove,contextual,test,cluster]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/wordspace demo

test: setup chromium
	WORDSPACE_CHROMIUM="$${WORDSPACE_CHROMIUM:-$(CHROMIUM)}" $(PY) -m pytest

# The browser tests drive Debian's chromium (Playwright's own download is not used). Installed
# here when missing and we are root; otherwise tests/test_explorer_browser.py fails saying how.
chromium:
	@if [ ! -x "$(CHROMIUM)" ] && [ -z "$$WORDSPACE_CHROMIUM" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium for the browser tests (apt-get)"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
				|| echo "make: could not install chromium; the browser tests will fail"; \
		else \
			echo "make: no $(CHROMIUM); the browser tests will fail: sudo apt-get install chromium"; \
		fi; \
	fi

bench: setup
	@set -e; for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(PY) $$script; \
	done

clean:
	rm -rf $(VENV) data models .pytest_cache
