#!/usr/bin/env bash
# QLoRA memory and speed on the SmolLM-135M-shaped llama (LoRA r=8 on all linear layers, batch 1, 2 threads):
# Sloth fp32 LoRA, Sloth --load-in-4bit, and transformers + PEFT + bitsandbytes QLoRA (fp32 compute) in the same run.
# For each: measured peak RSS (VmHWM), the planner's peak and parts, the 4-bit weights' bytes per parameter, tokens/s.
# Usage: bench/qlora.sh [LENGTHS] [STEPS]   (defaults: "512 2048" 3)
set -euo pipefail
cd "$(dirname "$0")/.."
LENGTHS=${1:-"512 2048"}
STEPS=${2:-3}
MODEL=.cache/bench/smollm135m
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results
OUT=bench/results/qlora-$(date +%Y%m%d-%H%M%S).md
python3 - "$MODEL" <<'PY' > /dev/null
import json, sys, random
m = sys.argv[1]
random.seed(3)
for T in (512, 1024, 2048, 4096, 8192):
    with open(f"{m}/data-{T}.jsonl", "w") as f:
        f.write(json.dumps({"input_ids": [random.randrange(3, 49152) for _ in range(T)]}) + "\n")
PY
{
echo "Machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print $2/1048576 " GiB"}'); threads 2; policy recompute; $STEPS steps (the first excluded from tokens/s)."
echo
echo "| tokens | run | weights | planned peak (MiB) | measured peak RSS (MiB) | measured / plan | tokens/s |"
echo "|---|---|---|---|---|---|---|"
for T in $LENGTHS; do
  for Q in "" "--load-in-4bit"; do
    d=$(mktemp -d)
    plan=$("$BIN" plan --model $MODEL --max-seq-length $T --json $Q | python3 -c "import json,sys; print(json.load(sys.stdin)['policies']['recompute']['peak_bytes'])")
    SLOTH_THREADS=2 /usr/bin/time -f "%M" -o $d/rss "$BIN" train --model $MODEL --data $MODEL/data-$T.jsonl --output $d/a --max-steps $STEPS \
        --max-seq-length $T --gradient-checkpointing recompute --metrics $d/m.jsonl --no-report $Q 2> $d/log
    w=$(grep '^weights:' $d/log | sed 's/^weights: //')
    tps=$(python3 -c "import json; r=[json.loads(l) for l in open('$d/m.jsonl')][1:]; print('%.1f' % (sum(x['tokens'] for x in r)/sum(x['elapsed_seconds'] for x in r)))")
    python3 -c "p=$plan; r=$(tail -1 $d/rss)*1024; print('| $T | Sloth ${Q:-fp32 LoRA} | $w | %.0f | %.0f | %.3f | $tps |' % (p/2**20, r/2**20, r/p))"
    rm -rf $d
  done
  for CK in "" "--no-checkpointing"; do
    r=$(THREADS=2 python3 bench/hf_train.py $MODEL $MODEL/data-$T.jsonl $STEPS --load-in-4bit $CK 2>/dev/null | tail -1)
    python3 -c "import json; r=json.loads('$r'); print('| $T | transformers+PEFT+bitsandbytes QLoRA (%s) | NF4 | - | %.0f | - | %.1f |' % ('grad ckpt' if r['checkpointing'] else 'no ckpt', r['peak_rss_bytes']/2**20, r['tokens_per_second']))"
  done
done
echo
echo "Planner parts for the 4-bit run at ${LENGTHS##* } tokens:"
echo
"$BIN" plan --model $MODEL --max-seq-length ${LENGTHS##* } --load-in-4bit | sed -n '/policy recompute/,/loading peak/p' | sed 's/^/    /'
} | tee $OUT
echo "written to $OUT"
