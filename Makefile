# make demo: set up .venv (once) and run the main job on the built-in digits dataset.
# make test: set up .venv (once) and run the test suite.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
TORCH   ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# pytest-xdist: one worker per core (tests/conftest.py gives each worker its share of threads);
# --dist loadgroup keeps the tests of one xdist_group mark on one worker, one after another
WORKERS ?= auto
XDIST   := -n $(WORKERS) --dist loadgroup

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/squeezenet demo --overwrite   # again: replaces runs/demo (a plain `squeezenet demo` keeps it)

test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
