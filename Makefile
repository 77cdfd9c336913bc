# Two commands do all the set-up on a fresh machine:
#   make demo   install, simulate the quick dataset, learn, write the report (runs/demo/)
#   make test   install, run the test suite (what CI runs, through .ci/run)
PYTHON ?= python3
# torch 2.13.0 first: on these machines it is a CPU wheel on disk; a bare "torch" would pull
# a multi-GB CUDA build. Override with e.g. TORCH_SPEC='torch>=2.4'.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= runs/demo

.PHONY: install demo test bench

install:
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e '.[test]'

demo: install
	$(PYTHON) -m pyecho_cli demo --out $(DEMO_DIR)

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) -m pyecho_cli bench --json runs/bench.json
