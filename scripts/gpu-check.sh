#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py): every CUDA path the docs name, in one command, one JSON file.
#   bash scripts/gpu-check.sh [--cpu] [--out FILE]
# On the lent GPU machine (torch, transformers, peft, accelerate and sentence-transformers installed;
# no network), the other packages travel as wheels in .whl/ (scripts/gpu-wheels.sh fetches them here):
# they are installed into /tmp/o1emb-site first. --cpu runs the same checks, shrunk, on the CPU (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
# only where the packages are missing (a CPU machine with `make install` has them all)
if ! python3 -c "import faiss, bm25s, Stemmer, pytrec_eval, fastapi, uvicorn" 2>/dev/null && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/o1emb-site .whl/*.whl
  export PYTHONPATH="/tmp/o1emb-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec python3 scripts/gpu_check.py "$@"
