#!/usr/bin/env bash
# Offload measured, one run on this machine (release build):
#  1. step time of recompute vs offload (disk tier, compressed host tier) on the SmolLM-135M-shaped llama
#     (LoRA r=8, all linear, batch 1) at LONG tokens (default 8192): overhead %, compression ratio;
#  2. the crossover: recompute vs offload at short lengths with the size floor off (--offload-min-bytes 0),
#     which sets CheckpointPolicy.minimumOffloadBytes;
#  3. a run whose checkpoints alone exceed its memory cap: a deep, narrow llama (64 layers, D 64) at
#     CAP_TOKENS tokens under --max-memory CAP trains with the disk tier, its measured peak RSS stays under
#     the cap, and its adapter is byte-identical to the in-memory (recompute) run's.
# Usage: bench/offload.sh   (env: LONG="8192" SHORT="256 512 1024" STEPS=2 CAP_TOKENS=8192)
set -euo pipefail
cd "$(dirname "$0")/.."
LONG=${LONG:-"8192"}
SHORT=${SHORT:-"256 512 1024"}
STEPS=${STEPS:-2}
CAP_TOKENS=${CAP_TOKENS:-8192}
MODEL=.cache/bench/smollm135m
DEEP=.cache/bench/deep64
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
[ -f $DEEP/config.json ] || python3 bench/make_model.py $DEEP --deep
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results
OUT=bench/results/offload-$(date +%Y%m%d-%H%M%S).md
data() {  # data FILE TOKENS VOCAB
  python3 -c "
import json, random; random.seed(7)
open('$1','w').write(json.dumps({'input_ids':[random.randrange(3,$3) for _ in range($2)]})+'\n')"
}
# Mean seconds of the steps after the first (arena and page cache warm), from the metrics file.
steady() { python3 -c "
import json; r=[json.loads(l) for l in open('$1')]; r=r[1:] or r; print('%.2f' % (sum(x['elapsed_seconds'] for x in r)/len(r)))"; }
run() {  # run MODEL DATA TOKENS STEPS POLICY EXTRA... ; sets $secs (steady step), $rss (bytes) and $d (adapter in $d/a, log in $d/log)
  d=$(mktemp -d)
  /usr/bin/time -f "%M" -o $d/rss "$BIN" train --model $1 --data $2 --output $d/a --max-steps $4 --max-seq-length $3 \
      --gradient-checkpointing $5 --metrics $d/m.jsonl --no-shuffle "${@:6}" 2> $d/log >/dev/null || { cat $d/log >&2; exit 1; }
  secs=$(steady $d/m.jsonl); rss=$(( $(tail -1 $d/rss) * 1024 ))
}
{
echo "## Step time, recompute vs offload (SmolLM-135M-shaped llama, LoRA r=8, batch 1, steady-state step)"
echo
echo "| tokens | recompute s | offload (disk) s | overhead | offload (compressed) s | overhead | compressed / raw |"
echo "|---|---|---|---|---|---|---|"
for T in $LONG; do
  f=/tmp/offload-$T.jsonl; data $f $T 49152
  run $MODEL $f $T $STEPS recompute; r=$secs; rm -rf $d
  run $MODEL $f $T $STEPS offload; o=$secs; rm -rf $d
  run $MODEL $f $T $STEPS offload --offload-tier compressed; c=$secs
  ratio=$( (grep -o 'tier: [0-9.]*' $d/log || echo 'tier: n/a') | cut -d' ' -f2); rm -rf $d
  python3 -c "r,o,c=$r,$o,$c; print('| $T | %.2f | %.2f | %+.1f%% | %.2f | %+.1f%% | $ratio |' % (r, o, 100*(o/r-1), c, 100*(c/r-1)))"
done
echo
echo "## Crossover: offload with no size floor at short lengths"
echo
echo "| tokens | layer input | recompute s | offload (disk) s | overhead |"
echo "|---|---|---|---|---|"
for T in $SHORT; do
  f=/tmp/offload-$T.jsonl; data $f $T 49152
  run $MODEL $f $T 4 recompute; r=$secs; rm -rf $d
  run $MODEL $f $T 4 offload --offload-min-bytes 0; o=$secs; rm -rf $d
  python3 -c "r,o=$r,$o; print('| $T | %.2f MiB | %.3f | %.3f | %+.1f%% |' % ($T*576*4/2**20, r, o, 100*(o/r-1)))"
done
echo
echo "## Checkpoints larger than the memory cap (deep64: 64 layers, D 64, FF 128, vocab 512; LoRA r=8; $CAP_TOKENS tokens)"
echo
f=/tmp/offload-deep-$CAP_TOKENS.jsonl; data $f $CAP_TOKENS 512
plan=$("$BIN" plan --model $DEEP --max-seq-length $CAP_TOKENS --json)
ckpt=$(python3 -c "import json; p=json.loads('''$plan''')['policies']; print(sum(x['bytes'] for x in p['offload']['parts'] if not x['resident']))")
peak=$(python3 -c "import json; print(json.loads('''$plan''')['policies']['offload']['peak_bytes'])")
cap=$(( peak + 8 * 1048576 ))
run $DEEP $f $CAP_TOKENS 1 recompute; rm -rf /tmp/deep-ref; mv $d /tmp/deep-ref
run $DEEP $f $CAP_TOKENS 1 offload --max-memory $cap
same=$(cmp -s /tmp/deep-ref/a/adapter_model.safetensors $d/a/adapter_model.safetensors && echo "byte-identical" || echo "DIFFERENT")
python3 -c "print('checkpoints on disk %.1f MiB; memory cap %.1f MiB (plan peak + 8 MiB); measured peak RSS %.1f MiB (%s the cap); adapter after one step vs the recompute run: $same' % ($ckpt/2**20, $cap/2**20, $rss/2**20, 'under' if $rss <= $cap else 'OVER'))"
rm -rf $d /tmp/deep-ref
} | tee $OUT
echo "written to $OUT"
