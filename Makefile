# Two commands on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
# Both install what is missing first: the libev headers (apt-get, as root or
# through sudo), a virtualenv in .venv, and greenpatch with its test tools.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.greenpatch-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo sleepers test unit lint soak bench tox system-deps clean

all: test

## system-deps: the libev headers, redis-server, PostgreSQL and MariaDB for the
## harness's services (it starts private servers: docs/services.md) and chromium
## for the report's browser test
system-deps:
	@missing=""; \
	{ [ -f /usr/include/ev.h ] || [ -f /usr/local/include/ev.h ] || [ -f /usr/include/libev/ev.h ] || [ -f /opt/homebrew/include/ev.h ]; } || missing="$$missing libev-dev"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || missing="$$missing mariadb-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	  echo "installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "greenpatch needs:$$missing (libev-dev is libev-devel on Fedora and libev on Homebrew; redis-server is redis there, postgresql-server and mariadb-server on Fedora, postgresql and mariadb on Homebrew). Install them, then run make again." >&2; \
	  exit 1; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py src/greenpatch/hub/_libev_build.py src/greenpatch/hub/_libev_glue.c | system-deps $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## demo: set up, then the main job: run requests' and redis-py's own test suites
## plain and patched, and print the verdicts.  A suite that cannot run fails the
## demo; regressions are shown, not turned into a failed exit (the gate for them
## is `tox -e compat`).
demo: $(STAMP)
	$(PY) -m greenpatch compat run requests redis --out reports --fail-on not-run

## sleepers: the small hub demo (1,000 concurrent sleepers in about one sleep)
sleepers: $(STAMP)
	$(PY) docs/examples/sleepers.py 1000 0.5

## test: set up, then lint, type-check and run the whole test suite
test: $(STAMP) lint unit

unit: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks docs/examples tools
	$(PY) -m ruff format --check src tests benchmarks docs/examples tools
	$(PY) -m mypy

## soak: the soak, leak and load tests (minutes; skipped by the default run)
soak: $(STAMP)
	$(PY) -m pytest -m soak

## bench: peers side by side, every benchmark script (installs the benchmark-only
## peers; without wrk, apt-get install wrk, bench_server skips its WSGI rows,
## bench_latency skips itself and bench_gunicorn loads with Python threads)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_hub.py
	$(PY) benchmarks/bench_sync.py
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_latency.py
	$(PY) benchmarks/bench_gunicorn.py

## tox: the Python 3.9-3.13 matrix (pyenv's interpreters are put on PATH)
PYENV_BINS := $(shell command -v pyenv >/dev/null 2>&1 && for v in $$(pyenv versions --bare | grep -E '^3\.(9|1[0-3])\.'); do printf '%s/bin:' "$$(pyenv prefix $$v)"; done)
tox: $(STAMP)
	PATH="$(PYENV_BINS)$$PATH" $(PY) -m tox -p auto

clean:
	rm -rf $(VENV) build dist src/*.egg-info src/greenpatch/hub/_libev*.so .tox
