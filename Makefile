# gsa — set up, reproduce, test. Everything installs into ./.venv (nothing global but Debian GL libs).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PRESET ?= smoke
export MUJOCO_GL ?= egl
export LP_NUM_THREADS ?= 1

.PHONY: setup system-deps reproduce notebooks test test-slow benchmarks clean

setup: system-deps $(VENV)/.installed

# Headless rendering needs EGL + Mesa (present on most desktops; installed here when missing and root).
system-deps:
	@if ! ldconfig -p | grep -q 'libEGL.so.1' || ! ldconfig -p | grep -q 'libEGL_mesa'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri; \
	  else echo "missing EGL/Mesa: install libegl1 libegl-mesa0 libgl1-mesa-dri (or set MUJOCO_GL=osmesa)"; exit 1; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name gsa --display-name "gsa (.venv)" >/dev/null
	touch $@

# The main job: regenerate the smoke-scale results and figures by executing the notebooks.
reproduce: setup notebooks
	$(PY) -m gsa.cli reproduce --preset $(PRESET)

# Build .ipynb from the jupytext sources (notebooks/*.py are the source of truth).
notebooks: setup
	$(VENV)/bin/jupytext --quiet --to ipynb --update notebooks/[0-9]*.py

# The default tests in TEST_WORKERS processes (pytest-xdist): most are bound by Python's per-operation overhead on
# one core, so two processes on 2 cores took 7.9 min where one took ~13 (quiet machine, December 2026).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: setup
	$(PY) -m pytest -q -m slow

benchmarks: setup
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/sampler_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
