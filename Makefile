# Two commands for a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch. Installed before vaekit so that its `torch>=2.13` range is already
# met and pip does not pull the CUDA build. Override for another build, e.g.
#   make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-slow newest-install test-newest test-oldest lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/vaekit demo

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# CI's two more lanes (.ci/run), each in a venv of its own, the same suite as `make test`.
NEWEST ?= .venv-newest
OLDEST ?= .venv-oldest
SHOW_VERSIONS = -c "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' \
	for p in 'torch numpy scipy pandas pyarrow anndata h5py pillow pyyaml scikit-learn \
	safetensors matplotlib typer rich pytest'.split()))"

# Every dependency upgraded to the newest release that pip finds for this Python, except torch:
# it stays at TORCH_SPEC, the CPU build, because PyPI's newer Linux wheels are CUDA builds of
# several GB (pip here is capped at torch 2.14.1, a CUDA build too).
newest-install:
	test -x $(NEWEST)/bin/python || $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[test]" \
		$(TORCH_SPEC)
	$(NEWEST)/bin/python $(SHOW_VERSIONS)

test-newest: newest-install
	$(NEWEST)/bin/python -m pytest -q

# Every floor that pyproject.toml declares, installed and tested: uv resolves the lowest
# versions of the direct dependencies (torch left out: TORCH_SPEC is its floor, from pip's
# CPU wheel, where uv would fetch a CUDA build), pip installs them from wheels only, and the
# package is built with the lowest setuptools that [build-system] admits; ruff's floor lints.
$(OLDEST)/bin/uv:
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q uv packaging

test-oldest: $(OLDEST)/bin/uv
	echo torch > $(OLDEST)/excludes.txt
	$(OLDEST)/bin/uv pip compile -q --resolution lowest-direct --python $(OLDEST)/bin/python \
		--extra test --excludes $(OLDEST)/excludes.txt pyproject.toml -o $(OLDEST)/floors.txt
	$(OLDEST)/bin/python .ci/floors.py build > $(OLDEST)/build.in
	$(OLDEST)/bin/uv pip compile -q --resolution lowest-direct --python $(OLDEST)/bin/python \
		$(OLDEST)/build.in -o $(OLDEST)/build.txt
	$(OLDEST)/bin/python -m pip install -q --only-binary :all: $(TORCH_SPEC) -r $(OLDEST)/floors.txt
	$(OLDEST)/bin/uv pip install -q --python $(OLDEST)/bin/python --no-deps \
		--build-constraints $(OLDEST)/build.txt -e .
	$(OLDEST)/bin/python .ci/floors.py check
	$(OLDEST)/bin/ruff check src tests benchmarks
	$(OLDEST)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(NEWEST) $(OLDEST) build dist src/*.egg-info vaekit-demo
