#!/usr/bin/env python3
"""Tests/Fixtures/models/byte-tokenizer.json: a byte-level BPE tokenizer with exactly 256 tokens (one per byte,
GPT-2's byte-to-unicode alphabet, no merges), so the tiny models (vocab 256) can be exported to GGUF and loaded
by llama.cpp, which needs a vocabulary. Pinned: tokenizers 0.23 (scripts/golden/tokenizers/requirements-tokenizers.txt).

Run from the repository root: python3 scripts/golden/models/make_byte_tokenizer.py
"""
import os
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

alphabet = pre_tokenizers.ByteLevel.alphabet()
order = sorted(alphabet, key=lambda ch: ord(ch))
tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(order)}, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
out = "Tests/Fixtures/models/byte-tokenizer.json"
tok.save(out + ".tmp")
os.replace(out + ".tmp", out)
assert tok.get_vocab_size() == 256
print("wrote", out)
