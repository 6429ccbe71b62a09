#!/usr/bin/env bash
# The reference tools of `make test-interop`: Debian's chromium (report.html), the gguf package and llama.cpp (through llama-cpp-python, built from
# its source distribution: about 10 minutes on 2 cores; the wheel is kept in .cache/wheels for later runs).
# Pinned in scripts/golden/requirements-export.txt. Exits non-zero when they cannot be installed: test-interop
# exists to run these checks, so it must not pass without them.
set -u
cd "$(dirname "$0")/../.."
pin() { grep "^$1==" scripts/golden/requirements-export.txt | head -1; }
if [ ! -x /usr/bin/chromium ]; then
  echo "interop tools: installing chromium (Debian) for the report check"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || { echo "error: apt-get install chromium failed"; exit 1; }
fi
if python3 -c "import llama_cpp, gguf" 2>/dev/null; then echo "interop tools: present"; exit 0; fi
pip install -q "$(pin gguf)" >/dev/null 2>&1 || { echo "error: pip install $(pin gguf) failed"; exit 1; }
mkdir -p .cache/wheels
whl=$(ls .cache/wheels/llama_cpp_python-*.whl 2>/dev/null | head -1)
if [ -z "$whl" ]; then
  echo "interop tools: building $(pin llama-cpp-python) from source (about 10 minutes)"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) pip wheel -q --no-deps "$(pin llama-cpp-python)" -w .cache/wheels >/dev/null 2>&1 \
    || { echo "error: building llama-cpp-python failed (pip wheel $(pin llama-cpp-python))"; exit 1; }
  whl=$(ls .cache/wheels/llama_cpp_python-*.whl | head -1)
fi
pip install -q "$whl" >/dev/null 2>&1 || { echo "error: pip install $whl failed"; exit 1; }
python3 -c "import llama_cpp, gguf" || { echo "error: llama_cpp / gguf still not importable"; exit 1; }
echo "interop tools: installed"
