#!/usr/bin/env bash
# Wheels for the GPU check (scripts/gpu-check.sh) on a machine without network whose image has torch,
# transformers, peft, accelerate, sentence-transformers, matplotlib, httpx, numpy, scipy, anyio, click
# and h11 (the lent GPU machine, Python 3.12): fetched here into .whl/ (git-ignored), at most 50 MB.
#   bash scripts/gpu-wheels.sh [PYTHON_VERSION]       (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-3.12}"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  faiss-cpu==1.15.1 bm25s==0.3.16 PyStemmer==3.1.0 pytrec-eval-terrier==0.5.11 \
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 pydantic==2.13.4 pydantic-core==2.46.4 \
  annotated-types==0.7.0 typing-inspection==0.4.2 annotated-doc==0.0.7 opentelemetry-api==1.45.3
du -ch .whl/*.whl | tail -1
