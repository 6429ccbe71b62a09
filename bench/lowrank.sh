#!/usr/bin/env bash
# LoRA's low-rank products, OpenBLAS against Sloth's kernels, single-threaded, at the bench model's linear shapes
# (bench/lowrank.c). OPENBLAS_CORETYPE is dropped unless KEEP_CORETYPE=1, as in bench/run.sh. Results: bench/results/lowrank-*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
mkdir -p bench/results .cache/bench
K=Sources/CSlothKernels
cc -O2 -I$K/include -I/usr/include/x86_64-linux-gnu bench/lowrank.c $K/kernels.c -o .cache/bench/lowrank -lopenblas -lm
CORE=${OPENBLAS_CORETYPE:-}; [ "${KEEP_CORETYPE:-0}" = 1 ] || CORE=SkylakeX
grep -q avx512f /proc/cpuinfo || CORE=${OPENBLAS_CORETYPE:-}
OUT=bench/results/lowrank-$(date +%Y%m%d-%H%M%S).md
{
echo "# LoRA low-rank products, 1 thread ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OpenBLAS ${CORE:-auto})"
for T in ${LENGTHS:-512 2048}; do
  for shape in "576 576" "576 192" "576 1536" "1536 576"; do
    echo; env ${CORE:+OPENBLAS_CORETYPE=$CORE} .cache/bench/lowrank $T $shape
  done
done
} | tee $OUT
echo "written to $OUT"
