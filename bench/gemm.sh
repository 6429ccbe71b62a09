#!/usr/bin/env bash
# OpenBLAS (its AVX2 Haswell kernels, which this machine's environment forces, and its AVX-512 SkylakeX kernels)
# against BLIS (Debian's libblis4-pthread: auto-detected, skx and zen3 kernels) at the bench model's GEMM shapes,
# and PyTorch's own GEMM (MKL; what transformers + PEFT runs on) when torch is installed.
# Results: bench/results/gemm-*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${TOKENS:-2048}
mkdir -p bench/results .cache/bench
BLIS=/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4
if [ ! -f $BLIS ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libblis4-pthread) >/dev/null 2>&1 || echo "note: could not install libblis4-pthread; BLIS rows skipped"
fi
cc -O2 bench/gemm.c -o .cache/bench/gemm -ldl
OUT=bench/results/gemm-$(date +%Y%m%d-%H%M%S).md
{
echo "# GEMM rate at the bench model's shapes, $T tokens, 2 threads ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo '```'
for core in Haswell SkylakeX; do OPENBLAS_CORETYPE=$core .cache/bench/gemm libopenblas.so.0 $T; done
if [ -f $BLIS ]; then
  for arch in auto skx zen3; do
    echo "BLIS_ARCH_TYPE=$arch"
    if [ $arch = auto ]; then env -u BLIS_ARCH_TYPE .cache/bench/gemm $BLIS $T; else BLIS_ARCH_TYPE=$arch .cache/bench/gemm $BLIS $T; fi
  done
fi
if python3 -c "import torch" 2>/dev/null; then python3 bench/gemm_torch.py $T 2; fi
echo '```'
} | tee $OUT
echo "written to $OUT"
