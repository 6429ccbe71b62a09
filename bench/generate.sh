#!/usr/bin/env bash
# Inference speed, one run on this machine (release build, 2 threads): prefill and decode tokens/s of
# Sloth (`sloth generate`, KV cache, greedy), transformers' generate (fp32, sdpa, KV cache, greedy) and llama.cpp
# (llama-cpp-python on Sloth's f32 GGUF export of the same model) for the SmolLM-135M-shaped llama (random weights).
# Sloth is timed as whole processes: prefill = (t(P prompt tokens, 1 new) - t(1, 1)) and decode = (N - 1) /
# (t(P, N) - t(P, 1)), so loading cancels out; transformers and llama.cpp are timed in-process.
# Usage: bench/generate.sh   (env: PROMPT=512 NEW=64)
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PROMPT:-512}; N=${NEW:-64}
MODEL=.cache/bench/smollm135m
[ -f $MODEL/config.json ] || python3 bench/make_model.py $MODEL
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results
OUT=bench/results/generate-$(date +%Y%m%d-%H%M%S).md
python3 -c "
import json, random; random.seed(11)
open('/tmp/gen-p.jsonl','w').write(json.dumps({'input_ids':[random.randrange(3,49152) for _ in range($P)]})+'\n')
open('/tmp/gen-1.jsonl','w').write(json.dumps({'input_ids':[5]})+'\n')"
t() { local s=$(date +%s.%N); "$BIN" generate --model $MODEL --prompts $1 --max-new-tokens $2 --ignore-eos > /tmp/gen-out.jsonl; python3 -c "import time; print(time.time() - $s)"; }
t11=$(t /tmp/gen-1.jsonl 1); tp1=$(t /tmp/gen-p.jsonl 1); tpn=$(t /tmp/gen-p.jsonl $N)
sloth=$(python3 -c "print('%.1f %.1f' % ($P / ($tp1 - $t11), ($N - 1) / ($tpn - $tp1)))")
# The bench model has no tokenizer; llama.cpp needs a vocabulary, so the GGUF gets the 256-byte one (padded to 49152).
if [ ! -f .cache/bench/smollm135m-f32.gguf ]; then
  T=$(mktemp -d); ln -s "$PWD/$MODEL/config.json" "$PWD/$MODEL/model.safetensors" $T/
  cp Tests/Fixtures/models/byte-tokenizer.json $T/tokenizer.json
  "$BIN" export gguf --model $T --output .cache/bench/smollm135m-f32.gguf --quant f32 --quiet
  rm -rf $T
fi
ref=$(THREADS=2 python3 - $MODEL /tmp/gen-p.jsonl $N <<'PY'
import json, sys, time, os
import torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
model_dir, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = json.loads(open(data).readline())["input_ids"]
m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
x = torch.tensor([ids])
with torch.no_grad():
    m(input_ids=x[:, :16])  # warm up
    t0 = time.perf_counter(); m.generate(x, max_new_tokens=1, min_new_tokens=1, do_sample=False); t1 = time.perf_counter()
    m.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False); t2 = time.perf_counter()
hf = (len(ids) / (t1 - t0), (n - 1) / ((t2 - t1) - (t1 - t0)))
lc = None
gguf = ".cache/bench/smollm135m-f32.gguf"
try:
    from llama_cpp import Llama
    if os.path.exists(gguf):
        llm = Llama(model_path=gguf, n_ctx=len(ids) + n + 8, n_batch=512, n_threads=2, verbose=False)
        t0 = time.perf_counter(); llm.eval(ids); t1 = time.perf_counter()
        tok = ids[-1]
        for _ in range(n - 1):
            tok = int(llm.sample(temp=0.0)) if hasattr(llm, "sample") else 5
            llm.eval([tok])
        t2 = time.perf_counter()
        lc = (len(ids) / (t1 - t0), (n - 1) / (t2 - t1))
except ImportError:
    pass
print(json.dumps({"hf": hf, "llama_cpp": lc}))
PY
)
{
echo "prompt $P tokens, $N new tokens, greedy, batch 1, 2 threads"
echo
echo "| tool | prefill tokens/s | decode tokens/s |"
echo "|---|---|---|"
read sp sd <<< "$sloth"
echo "| sloth (fp32, KV cache) | $sp | $sd |"
python3 -c "
import json; d=json.loads('''$ref''')
print('| transformers generate (fp32, sdpa) | %.1f | %.1f |' % tuple(d['hf']))
print('| llama.cpp (f32 GGUF from sloth export) | %s |' % (' | '.join('%.1f' % v for v in d['llama_cpp']) if d['llama_cpp'] else 'not installed | -'))
sp, sd = $sp, $sd
print(); print('sloth / transformers: prefill %.2fx, decode %.2fx' % (sp / d['hf'][0], sd / d['hf'][1]))
if d['llama_cpp']: print('sloth / llama.cpp: prefill %.2fx, decode %.2fx' % (sp / d['llama_cpp'][0], sd / d['llama_cpp'][1]))"
} | tee $OUT
echo "written to $OUT"
