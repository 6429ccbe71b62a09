#!/usr/bin/env bash
# Longest context that trains one LoRA step (r=8, all linear, batch 1) of the SmolLM-135M-shaped llama
# under an 8 GiB memory cap: Sloth's planner per policy (+ confirming runs at CONFIRM tokens under the
# cap, measured peak RSS), and transformers + PEFT (sdpa, gradient checkpointing) measured by running
# increasing lengths until the peak RSS passes the cap. Side by side, one run, this machine.
# Usage: bench/context.sh   (env: CAP=8GiB HF_LENGTHS="4096 5120 6144 7168" CONFIRM="8192")
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${CAP:-8GiB}
CAP_BYTES=$(python3 -c "print(int(float('${CAP%GiB}')*2**30))")
HF_LENGTHS=${HF_LENGTHS:-"4096 5120 6144 7168"}
CONFIRM=${CONFIRM:-"8192"}
MODEL=.cache/bench/smollm135m
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results
OUT=bench/results/context-$(date +%Y%m%d-%H%M%S).md
{
echo "memory cap: $CAP"
echo
echo "| tool | policy | longest context | how |"
echo "|---|---|---|---|"
"$BIN" plan --model $MODEL --max-seq-length 2048 --memory $CAP --json > /tmp/sloth-plan.json
for P in none recompute offload; do
  echo "| sloth | $P | $(python3 -c "import json; print(json.load(open('/tmp/sloth-plan.json'))['policies']['$P']['max_seq_length'])") | planner |"
done
for T in $CONFIRM; do
  python3 -c "
import json, random; random.seed(5)
open('/tmp/ctx-$T.jsonl','w').write(json.dumps({'input_ids':[random.randrange(3,49152) for _ in range($T)]})+'\n')"
  for P in recompute offload; do
    d=$(mktemp -d)
    /usr/bin/time -f "%M" -o $d/rss "$BIN" train --model $MODEL --data /tmp/ctx-$T.jsonl --output $d/a --max-steps 1 --max-seq-length $T \
        --gradient-checkpointing $P --max-memory $CAP --metrics $d/m.jsonl --quiet
    echo "| sloth | $P | $T trains | confirming run: peak RSS $(python3 -c "print('%.2f GiB' % ($(tail -1 $d/rss)*1024/2**30))"), step $(python3 -c "import json; print('%.0f s' % json.loads(open('$d/m.jsonl').readline())['elapsed_seconds'])") |"
    rm -rf $d
  done
done
best=0
for T in $HF_LENGTHS; do
  python3 -c "
import json, random; random.seed(5)
open('/tmp/ctx-$T.jsonl','w').write(json.dumps({'input_ids':[random.randrange(3,49152) for _ in range($T)]})+'\n')"
  r=$(THREADS=2 python3 bench/hf_train.py $MODEL /tmp/ctx-$T.jsonl 1 2>/dev/null | tail -1)
  rss=$(python3 -c "import json; print(json.loads('''$r''')['peak_rss_bytes'])")
  echo "| transformers+PEFT | grad ckpt, sdpa | $T: peak RSS $(python3 -c "print('%.2f GiB' % ($rss/2**30))") | measured |"
  if [ "$rss" -le "$CAP_BYTES" ]; then best=$T; else break; fi
done
echo
echo "transformers + PEFT longest measured context under $CAP: $best"
} | tee $OUT
echo "written to $OUT"
