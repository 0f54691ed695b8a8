#!/usr/bin/env bash
# llama-cpp-python, the `llamacpp` extra (--think-engine llama.cpp:FILE.gguf), compiled from source for
# this machine's CPU: about 8 minutes on 2 cores. CI runs it once before the tests (they then require it).
#
#   bash scripts/install-llamacpp.sh [PYTHON]
#
# Build flags (docs/benchmarks.md, "Thinking on another engine"):
# - GGML_NATIVE=ON: llama.cpp's CPU kernels for the instructions this CPU has (AVX2, AVX-512, AVX-512 BF16);
# - -mno-amx-*: without the AMX kernels. A native build on a CPU with AMX crashed at the first evaluation
#   (a segmentation fault, llama-cpp-python 0.3.36); the AVX-512 build ran;
# - tests and examples of llama.cpp are not built.
set -euo pipefail
PYTHON="${1:-python3}"
cd "$(dirname "$0")/.."
if "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
    echo "llama-cpp-python is installed: $("$PYTHON" -c 'import llama_cpp; print(llama_cpp.__version__)')"
    exit 0
fi
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
start=$SECONDS
"$PYTHON" -m pip install -q -c constraints.txt --no-binary llama-cpp-python "llama-cpp-python" "gguf"
echo "llama-cpp-python built and installed in $((SECONDS - start)) s"
