"""Regenerates the tokenizer goldens in Tests/Fixtures/tokenizers/.

Reference: Hugging Face `tokenizers` 0.23.3 and `transformers` 5.24.0 (requirements-tokenizers.txt).
Real tokenizer files come from `scripts/setup.d/tokenizers.sh` (.cache/tokenizers/files, never committed).
Two tiny byte-level BPE tokenizers (Qwen 2 and GPT-2 pre-tokenization) are trained here on the corpus and
committed, since no real ones can be redistributed.

For each tokenizer it writes <name>.expected.json with, per corpus row: the ids with and without special
tokens, and the decoded text of the ids (with and without skip_special_tokens). For SentencePiece models it
also records the HF-converted tokenizer.json's components (without vocabulary) and sentencepiece's own ids.

Run: python3 scripts/golden/tokenizers/corpus.py && python3 scripts/golden/tokenizers/make_goldens.py
"""
import json
import os
import shutil
import sys
import tempfile

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers, Regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../.."))
FIX = os.path.join(ROOT, "Tests/Fixtures/tokenizers")
FILES = os.path.join(ROOT, ".cache/tokenizers/files")

assert tokenizers.__version__ == "0.23.3", tokenizers.__version__
assert transformers.__version__ == "5.24.0", transformers.__version__

LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def corpus():
    """The hand-written corpus followed by the seeded random stress rows."""
    texts = []
    for name in ["corpus.jsonl", "stress.jsonl"]:
        with open(os.path.join(FIX, name), encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, path)


def components(tok):
    """The tokenizer.json without the vocabulary and merges (small enough to commit)."""
    d = json.loads(tok.to_str())
    model = {k: v for k, v in d["model"].items() if k not in ("vocab", "merges")}

    def strip(x):  # the precompiled charsmap is large: keep its length only
        if isinstance(x, dict):
            return {k: (len(v) if k == "precompiled_charsmap" else strip(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    added = d["added_tokens"]
    return {**strip({k: v for k, v in d.items() if k not in ("model", "added_tokens")}), "model": model,
            "added_tokens_count": len(added), "added_tokens_first": added[:8]}


def train_tiny(kind, texts):
    """A tiny byte-level BPE in the style of Qwen 2 (NFC + Split + ByteLevel) or GPT-2 (ByteLevel regex)."""
    tok = Tokenizer(models.BPE(ignore_merges=(kind == "qwen2")))
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts[:62] * 3, trainer=trainer)
    if kind == "qwen2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", tok.token_to_id("<|endoftext|>"))])
    return tok


def hf_converted(model_path, tokenizer_class):
    """HF's own slow-to-fast conversion of a SentencePiece model, as AutoTokenizer does it."""
    d = tempfile.mkdtemp()
    try:
        shutil.copy(model_path, os.path.join(d, "tokenizer.model"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": tokenizer_class}, f)
        t = transformers.AutoTokenizer.from_pretrained(d)
        return t._tokenizer
    finally:
        shutil.rmtree(d)


def golden(name, tok, source, texts, extra=None):
    rows = []
    for text in texts:
        a = tok.encode(text, add_special_tokens=True).ids
        b = tok.encode(text, add_special_tokens=False).ids
        d, ds = tok.decode(a, skip_special_tokens=False), tok.decode(a, skip_special_tokens=True)
        # To keep fixtures small, fields equal to another are left out: ids_no_special (= ids), decoded_skip (= decoded).
        row = {"ids": a, "decoded": d}
        if b != a:
            row["ids_no_special"] = b
        if ds != d:
            row["decoded_skip"] = ds
        rows.append(row)
    out = {"name": name, "source": source, "reference": f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}",
           "vocab_size": tok.get_vocab_size(with_added_tokens=True), "rows": rows}
    if extra:
        out.update(extra)
    write_json(os.path.join(FIX, f"{name}.expected.json"), out)
    print(f"{name}: {sum(len(r['ids']) for r in rows)} ids over {len(rows)} rows")


def main():
    texts = corpus()
    # Self-made tiny tokenizers, committed.
    for kind in ["qwen2", "gpt2"]:
        tok = train_tiny(kind, texts)
        path = os.path.join(FIX, f"{kind}-tiny.tokenizer.json")
        tok.save(path + ".tmp")
        os.replace(path + ".tmp", path)
        tok = Tokenizer.from_file(path)
        golden(f"{kind}-tiny", tok, f"Tests/Fixtures/tokenizers/{kind}-tiny.tokenizer.json", texts)

    # Tiny SentencePiece models trained here (committed): BPE with byte fallback and a user-defined symbol, and Unigram.
    import sentencepiece as spm
    train_text = os.path.join(tempfile.mkdtemp(), "train.txt")
    with open(train_text, "w", encoding="utf-8") as f:
        for t in texts[:62] * 4:
            f.write(t.replace("\n", " ") + "\n")
    for name, kind, extra in [("sp-bpe-tiny", "bpe", {"byte_fallback": True, "user_defined_symbols": ["<tool>"], "normalization_rule_name": "identity"}),
                              ("sp-unigram-tiny", "unigram", {})]:
        prefix = os.path.join(FIX, name)
        spm.SentencePieceTrainer.train(input=train_text, model_prefix=prefix, vocab_size=1000, model_type=kind,
                                       character_coverage=0.98, seed_sentencepiece_size=100000, num_threads=1,
                                       minloglevel=2, hard_vocab_limit=False, **extra)
        os.remove(prefix + ".vocab")
        os.replace(prefix + ".model", prefix + ".tokenizer.model")
        path = prefix + ".tokenizer.model"
        cls = "LlamaTokenizer" if kind == "bpe" else "TokenizersBackend"
        tok = hf_converted(path, cls)
        # HF's converted tokenizer.json, committed: Sloth must read it (its vocabulary holds NFC and NFD twins).
        if kind == "bpe":  # (the Unigram one would mostly be its 300 KB charsmap)
            tok.save(prefix + ".hf-tokenizer.json.tmp")
            os.replace(prefix + ".hf-tokenizer.json.tmp", prefix + ".hf-tokenizer.json")
        sp = spm.SentencePieceProcessor(model_file=path)
        sp_diff = {i: sp.encode(t) for i, t in enumerate(texts) if sp.encode(t) != tok.encode(t, add_special_tokens=False).ids}
        golden(name, tok, f"Tests/Fixtures/tokenizers/{name}.tokenizer.model", texts,
               {"converter": cls, "converted": components(tok), "sentencepiece_differs": sp_diff})

    if not os.path.exists(os.path.join(FILES, ".complete")):
        print("real tokenizer files missing: run scripts/setup.d/tokenizers.sh", file=sys.stderr)
        sys.exit(1)
    # Real tokenizer.json files.
    tok = Tokenizer.from_file(os.path.join(FILES, "llama3/tokenizer.json"))
    golden("llama3", tok, "llama3/tokenizer.json", texts)
    # The same vocabulary with Meta's TemplateProcessing (BOS) post-processor, as on the Hub.
    patch = {"post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}]}}
    d = json.loads(tok.to_str())
    d.update(patch)
    golden("llama3-bos", Tokenizer.from_str(json.dumps(d)), "llama3/tokenizer.json", texts, {"patch": patch})
    tok = Tokenizer.from_file(os.path.join(FILES, "minilm/tokenizer.json"))
    golden("minilm", tok, "minilm/tokenizer.json", texts)

    # SentencePiece models converted by transformers (LlamaTokenizer for Mistral, the generic backend otherwise).
    for name, cls in [("mistral_v1", "LlamaTokenizer"), ("mistral_v3", "LlamaTokenizer"), ("mistral_v7", "LlamaTokenizer"),
                      ("botchan_bpe", "TokenizersBackend"), ("botchan_unigram", "TokenizersBackend"),
                      ("kyoto_unigram", "TokenizersBackend")]:
        path = os.path.join(FILES, name, "tokenizer.model")
        tok = hf_converted(path, cls)
        sp = spm.SentencePieceProcessor(model_file=path)
        sp_ids = [sp.encode(t) for t in texts]
        # Only the rows where sentencepiece itself differs from HF's conversion, for information.
        sp_diff = {i: s for i, s in enumerate(sp_ids) if s != tok.encode(texts[i], add_special_tokens=False).ids}
        golden(name, tok, f"{name}/tokenizer.model", texts,
               {"converter": cls, "converted": components(tok), "sentencepiece_differs": sp_diff})


if __name__ == "__main__":
    main()
