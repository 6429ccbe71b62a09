#!/usr/bin/env bash
# Encode throughput, one thread, Sloth vs HF `tokenizers` on the same corpus and machine.
# Corpus: botchan.txt (English prose, sentencepiece's test text) and the tokenizer tests' stress corpus
# (Tests/Fixtures/tokenizers/corpus.jsonl: unicode, code, whitespace runs), repeated to about 4 MB, one JSONL row per line.
# Sloth is timed as the whole `sloth tokenizer encode --threads 1` process (start-up, JSON in and out included);
# HF as `Tokenizer.encode_batch` alone in-process with parallelism off. Both outputs are compared id for id.
# Usage: bench/tokenizers.sh   (needs scripts/setup.d/tokenizers.sh's files; python tokenizers + transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=.cache/tokenizers/files
[ -f $FILES/.complete ] || bash scripts/setup.d/tokenizers.sh
BIN=$(swift build -c release --show-bin-path)/sloth
mkdir -p bench/results .cache/bench
OUT=bench/results/tokenizers-$(date +%Y%m%d-%H%M%S).md
CORPUS=.cache/bench/tok-corpus.jsonl
python3 - $FILES/botchan.txt Tests/Fixtures/tokenizers/corpus.jsonl $CORPUS <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.strip()]
lines += [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
rows, size = [], 0
while size < 4_000_000:
    for l in lines:
        rows.append(l); size += len(l.encode())
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for l in rows: f.write(json.dumps({"text": l}, ensure_ascii=False) + "\n")
PY
{
echo "| tokenizer | MB | sloth MB/s (whole process) | HF tokenizers MB/s (encode_batch) | sloth / HF | ids equal |"
echo "|---|---|---|---|---|---|"
for T in llama3 mistral_v3 minilm; do
  d=$(mktemp -d)
  s=$( { /usr/bin/time -f "%e" "$BIN" tokenizer encode --tokenizer $FILES/$T --threads 1 --input $CORPUS > $d/sloth.jsonl; } 2>&1 | tail -1)
  TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python3 - $FILES/$T $CORPUS $d/sloth.jsonl $s <<'PY'
import json, os, shutil, sys, tempfile, time
from tokenizers import Tokenizer
folder, corpus, sloth, sloth_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
if os.path.exists(os.path.join(folder, "tokenizer.json")):
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
else:  # SentencePiece: transformers' own slow-to-fast conversion, as the golden tests use
    import transformers
    d = tempfile.mkdtemp(); shutil.copy(os.path.join(folder, "tokenizer.model"), d)
    json.dump({"tokenizer_class": "LlamaTokenizer"}, open(os.path.join(d, "tokenizer_config.json"), "w"))
    tok = transformers.AutoTokenizer.from_pretrained(d)._tokenizer; shutil.rmtree(d)
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
mb = sum(len(t.encode()) for t in texts) / 1e6
t0 = time.perf_counter(); enc = tok.encode_batch(texts, add_special_tokens=True); hf_s = time.perf_counter() - t0
ours = [json.loads(l)["ids"] for l in open(sloth)]
same = sum(a == e.ids for a, e in zip(ours, enc)) == len(texts) == len(ours)
print("| %s | %.1f | %.2f | %.2f | %.2f | %s |" % (folder.split("/")[-1], mb, mb / sloth_s, mb / hf_s, hf_s / sloth_s, "yes" if same else "NO"))
PY
  rm -rf $d
done
} | tee $OUT
echo "written to $OUT"
