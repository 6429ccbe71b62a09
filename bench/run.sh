#!/usr/bin/env bash
# Side-by-side training throughput: Sloth vs transformers + PEFT on a SmolLM-135M-shaped llama
# (D 576, 30 layers, 9 heads, 3 kv heads, FF 1536, vocab 49152, tied; random weights), LoRA r=8 on all
# linear layers, batch 1, recompute checkpointing, 2 threads. Release build. Results: bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
LENGTHS=${LENGTHS:-"512 2048"}
STEPS=${STEPS:-4}
MODEL=.cache/bench/smollm135m
mkdir -p bench/results
if ! python3 -c "import torch, transformers, peft" 2>/dev/null; then
  echo "installing the reference tools (torch CPU, transformers, peft) for the side-by-side run"
  pip install -q /opt/wheels/torch-*+cpu-*.whl 2>/dev/null || pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  pip install -q -r scripts/golden/requirements-models.txt
fi
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
OUT=bench/results/train-$(date +%Y%m%d-%H%M%S).md
{
echo "| tokens | tool | tokens/s | peak RSS (GB) |"
echo "|---|---|---|---|"
for T in $LENGTHS; do
  m=$(mktemp -d)
  /usr/bin/time -f "%M" -o $m/rss "$BIN" train --model $MODEL --data $MODEL/data-$T.jsonl --output $m/adapter \
      --max-steps $STEPS --max-seq-length $T --gradient-checkpointing recompute --metrics $m/metrics.jsonl --quiet
  sloth_tps=$(python3 -c "import json,sys; r=[json.loads(l) for l in open('$m/metrics.jsonl')][1:]; print('%.1f' % (sum(x['tokens'] for x in r)/sum(x['elapsed_seconds'] for x in r)))")
  sloth_rss=$(python3 -c "print('%.2f' % (int(open('$m/rss').read().split()[-1])*1024/1e9))")
  echo "| $T | sloth (recompute) | $sloth_tps | $sloth_rss |"
  hf=$(THREADS=2 python3 bench/hf_train.py $MODEL $MODEL/data-$T.jsonl $STEPS)
  echo "| $T | transformers+PEFT (grad ckpt, sdpa) | $(python3 -c "import json; d=json.loads('''$hf'''); print('%.1f' % d['tokens_per_second'])") | $(python3 -c "import json; d=json.loads('''$hf'''); print('%.2f' % (d['peak_rss_bytes']/1e9))") |"
  rm -rf $m
done
} | tee $OUT
echo "written to $OUT"
