# Two commands on a fresh machine: `make demo` (the whole method end to end) and `make test`.
# Both install what they need first (once; the stamp file remembers).
PYTHON ?= python3
STAMP := .install.stamp

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml
	# CPU PyTorch first: without it, peft/accelerate/sentence-transformers pull a multi-GB CUDA build.
	# (On a GPU machine, install the torch build for your CUDA instead before `make`.)
	$(PYTHON) -m pip install -q "torch==2.13.0" || $(PYTHON) -m pip install -q "torch>=2.1"
	$(PYTHON) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m o1embedder demo --out o1emb-demo

test: $(STAMP)
	$(PYTHON) -m pytest -q

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks

bench: $(STAMP)
	cd benchmarks && for f in bench_*.py; do $(PYTHON) $$f || exit 1; done
