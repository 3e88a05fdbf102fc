# Two entry points: `make demo` (set up + main job on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch; set TORCH_SPEC/PIP_EXTRA to use another build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.mmgene-installed

.PHONY: demo test setup clean

# pip installs torch (it finds a local CPU wheel or PIP_EXTRA_INDEX_URL's build); uv then installs the rest in
# parallel (40 s against pip's 100 s here), keeping the torch that is there, and compiles the bytecode that
# PYTHONDONTWRITEBYTECODE=1 would otherwise leave every process to compile anew
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m uv pip install -q --python $(PY) --compile-bytecode -e ".[all,dev]" "$(TORCH_SPEC)"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmgene demo --out mmgene-demo --overwrite

# two workers (one per core of a small machine), whole files per worker so module fixtures are built once;
# a worker that crashes (a native library's segfault) fails the run at once, naming the test, instead of
# being replaced (with --dist loadfile a replaced worker can leave the run waiting forever, pytest-xdist #784)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --max-worker-restart 0 --nbmake tests notebooks

clean:
	rm -rf $(VENV) mmgene-demo
