#!/usr/bin/env bash
# Training throughput, one table from one run: Sloth (the policy --gradient-checkpointing auto picks) vs
# transformers + PEFT (fp32, sdpa, 2 threads, the faster of with and without gradient checkpointing; a mode that
# runs out of memory or time is skipped) on a SmolLM-135M-shaped llama (D 576, 30 layers, 9 heads, 3 kv heads,
# FF 1536, vocab 49152, tied; random weights), LoRA r=8 on all linear layers, batch 1. Sloth's limit is the step's
# required FLOPs / the GEMM rate measured in the same run at the step's shapes (sloth train --profile).
# Release build. Results: bench/results/train-*.md (the table, then Sloth's profile per length).
#
# This machine's environment sets OPENBLAS_CORETYPE=Haswell, which forces OpenBLAS's AVX2 kernels on an AVX-512
# CPU; Sloth's runs drop it so Sloth picks (KEEP_CORETYPE=1 keeps it). The limit is measured under the same choice.
set -euo pipefail
cd "$(dirname "$0")/.."
LENGTHS=${LENGTHS:-"512 2048 8192"}
STEPS=${STEPS:-3}
HF_TIMEOUT=${HF_TIMEOUT:-900}
MODEL=.cache/bench/smollm135m
mkdir -p bench/results
if ! python3 -c "import torch, transformers, peft" 2>/dev/null; then
  echo "installing the reference tools (torch CPU, transformers, peft) for the side-by-side run"
  pip install -q /opt/wheels/torch-*+cpu-*.whl 2>/dev/null || pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  pip install -q -r scripts/golden/requirements-models.txt
fi
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
ENV=(env); [ "${KEEP_CORETYPE:-0}" = 1 ] || ENV=(env -u OPENBLAS_CORETYPE)
OUT=bench/results/train-$(date +%Y%m%d-%H%M%S).md
work=$(mktemp -d); trap 'rm -rf $work' EXIT
rows=()
for T in $LENGTHS; do
  steps=$STEPS; [ "$T" -ge 8192 ] && steps=${STEPS_LONG:-2}
  "${ENV[@]}" "$BIN" train --model $MODEL --data $MODEL/data-$T.jsonl --output $work/a$T --max-steps $steps --max-seq-length $T \
      --gradient-checkpointing auto --profile $work/p$T.json --no-report 2> $work/log$T || { cat $work/log$T; exit 1; }
  best=""; bestmode=""
  for mode in ckpt none; do
    flag=""; [ $mode = none ] && flag=--no-checkpointing
    if r=$(THREADS=2 timeout $HF_TIMEOUT python3 bench/hf_train.py $MODEL $MODEL/data-$T.jsonl $steps $flag 2>/dev/null); then
      tps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['tokens_per_second'])" "$r")
      echo "transformers+PEFT $T tokens, $mode: $tps tokens/s" >&2
      if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$tps" "$best"; then best=$tps; bestmode=$mode; fi
    else
      echo "transformers+PEFT $T tokens, $mode: did not finish (out of memory or over ${HF_TIMEOUT}s)" >&2
    fi
  done
  rows+=("$(python3 - "$work/p$T.json" "$best" "$bestmode" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); hf = float(sys.argv[2]) if sys.argv[2] else None
sloth = p["sequence_length"] * p["batch"] / p["step_seconds"]
hf_s = "%.1f (%s)" % (hf, "grad ckpt" if sys.argv[3] == "ckpt" else "no ckpt") if hf else "did not run"
ratio = "%.2fx" % (sloth / hf) if hf else ""
print("| %d | %s | %.1f | %s | %s | %.2f s | %.2f s | %.2f | %.0f%% | %.1f |" % (
    p["sequence_length"], p["policy"], sloth, hf_s, ratio, p["step_seconds"], p["limit_seconds"], p["step_over_limit"],
    100 / p["step_over_limit"], p["gemm_rate_flops_per_second"] / 1e9))
PY
)")
done
{
echo "# Training throughput ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "Sloth: $(python3 -c "import json; print(json.load(open('$work/p$(echo $LENGTHS | awk '{print $1}').json'))['blas'])"), $STEPS steps (2 at 8192+), the first excluded. transformers+PEFT: torch $(python3 -c 'import torch; print(torch.__version__)'), fp32, sdpa, 2 threads, the faster mode."
echo
echo "| tokens | Sloth policy | Sloth tokens/s | transformers+PEFT tokens/s | ratio | Sloth step | limit | step / limit | fraction of limit | GEMM rate (GFLOP/s) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
for T in $LENGTHS; do
  echo; echo "## Sloth profile, $T tokens"; echo; echo '```'
  grep -v "^step \|^sloth train\|^weights\|^adapter\|^memory plan\|^\s*$" $work/log$T | sed 's/\r//' || true
  echo '```'
done
} | tee $OUT
echo "written to $OUT"
