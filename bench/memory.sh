#!/usr/bin/env bash
# The planner against the measured peak RSS: one LoRA step (r=8, all linear layers, batch 1) of the
# SmolLM-135M-shaped llama at each length and policy; prints plan, measured VmHWM and their ratio.
# Usage: bench/memory.sh [LENGTHS] [POLICIES]   (defaults: "512 1024 2048 4096" "none recompute offload")
# EXTRA="--full" (or "--load-in-4bit") adds flags to both the plan and the training run.
set -euo pipefail
cd "$(dirname "$0")/.."
LENGTHS=${1:-"512 1024 2048 4096"}
POLICIES=${2:-"none recompute offload"}
MODEL=.cache/bench/smollm135m
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results
OUT=bench/results/memory-$(date +%Y%m%d-%H%M%S).md
python3 - "$MODEL" <<'PY' > /dev/null
import json, sys, random
m = sys.argv[1]
random.seed(3)
for T in (512, 1024, 2048, 4096, 8192, 16384, 32768):
    with open(f"{m}/data-{T}.jsonl", "w") as f:
        f.write(json.dumps({"input_ids": [random.randrange(3, 49152) for _ in range(T)]}) + "\n")
PY
{
echo "Extra flags: ${EXTRA:-none}"
echo
echo "| tokens | policy | plan peak (MiB) | measured peak RSS (MiB) | measured / plan | step seconds |"
echo "|---|---|---|---|---|---|"
for T in $LENGTHS; do for P in $POLICIES; do
  plan=$("$BIN" plan --model $MODEL --max-seq-length $T --json ${EXTRA:-} | python3 -c "import json,sys; print(json.load(sys.stdin)['policies']['$P']['peak_bytes'])")
  d=$(mktemp -d)
  /usr/bin/time -f "%M" -o $d/rss "$BIN" train --model $MODEL --data $MODEL/data-$T.jsonl --output $d/a --max-steps 1 \
      --max-seq-length $T --gradient-checkpointing $P --metrics $d/m.jsonl --quiet --no-report ${EXTRA:-}
  rss=$(tail -1 $d/rss)
  secs=$(python3 -c "import json; print('%.1f' % json.loads(open('$d/m.jsonl').readline())['elapsed_seconds'])")
  python3 -c "p=$plan; r=$rss*1024; print('| $T | $P | %.0f | %.0f | %.3f | $secs |' % (p/2**20, r/2**20, r/p))"
  rm -rf $d
done; done
} | tee $OUT
echo "written to $OUT"
