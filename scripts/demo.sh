#!/usr/bin/env bash
# make demo: fine-tune the small llama shipped in models/demo on data/demo.jsonl (no downloads),
# show the loss falling, evaluate before/after on held-out rows, and write a PEFT adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)/sloth
OUT=out/demo
rm -rf "$OUT"; mkdir -p "$OUT"

PROMPT=$'User: Tell me about Anna and her white fish.\nAssistant:'
echo "== the base model (pre-trained on simple stories, never saw this question format)"
"$BIN" generate --model models/demo --max-new-tokens 24 --prompt "$PROMPT"
echo "== held-out loss of the base model"
"$BIN" eval --model models/demo --data data/demo-eval.jsonl

echo "== LoRA fine-tune (r=8, all linear layers, 60 steps of 8 rows)"
"$BIN" train --model models/demo --data data/demo.jsonl --output "$OUT/adapter" \
  --lora-rank 8 --lora-alpha 16 --learning-rate 2e-3 --lr-scheduler cosine --warmup-steps 5 \
  --max-steps 60 --batch-size 8 --metrics "$OUT/metrics.jsonl" --eval-data data/demo-eval.jsonl --eval-steps 10

echo "== loss by step (every 10th)"
awk -F'"loss":' 'NR==1 || NR%10==0 { split($2, a, ","); printf "step %3d  loss %s\n", NR, a[1] }' "$OUT/metrics.jsonl"

echo "== held-out loss with the adapter"
"$BIN" eval --model models/demo --adapter "$OUT/adapter" --data data/demo-eval.jsonl

echo "== generation with the adapter"
"$BIN" generate --model models/demo --adapter "$OUT/adapter" --max-new-tokens 24 --prompt "$PROMPT"
echo "adapter written to $OUT/adapter (adapter_config.json + adapter_model.safetensors, PEFT layout)"
echo "training report (plots of the run): $OUT/adapter/report.html"

echo "== export: merged checkpoint and a Q8_0 GGUF for llama.cpp / Ollama"
"$BIN" export merged --model models/demo --adapter "$OUT/adapter" --output "$OUT/merged" --quiet
"$BIN" export gguf --model models/demo --adapter "$OUT/adapter" --output "$OUT/demo-q8_0.gguf" --quant q8_0 --quiet
"$BIN" eval --model "$OUT/demo-q8_0.gguf" --data data/demo-eval.jsonl
echo "merged model: $OUT/merged; GGUF: $OUT/demo-q8_0.gguf"
