#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/safetensors/ with the real reference tools.

Pinned versions: scripts/golden/requirements-formats.txt (torch 2.13 CPU, safetensors 0.8.0,
transformers 5.24.0). Deterministic: fixed seeds, fixed inputs. Run from the repository root:

    python3 scripts/golden/safetensors/make.py

Outputs (all little-endian):
- f16_to_f32_all.bin    65536 x u32: torch f16 -> f32 of every f16 bit pattern (one tensor, vectorized path)
- bf16_to_f32_all.bin   65536 x u32: same for bf16
- f32_tricky.bin        N x (u32 f32 bits, u16 torch f16 bits, u16 torch bf16 bits)
- f32_to_half_chunk_hashes.bin  4096 x (u64, u64): hashes of torch f32 -> f16 / bf16 over all 2^32 floats
- json_verdicts.json    whether safetensors' header parser accepts each JSON value
- *.safetensors         files written by safetensors.torch.save_file
- values.json           the formulas / expected values for the files above
- sharded2/, sharded_big/  tiny Llama saved by transformers save_pretrained(max_shard_size=...)
"""
import json
import os
import shutil
import struct

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join("Tests", "Fixtures", "safetensors")


def u32_to_f32(bits):
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32).copy())


def tricky_f32_bits():
    """A few thousand floats that exercise f32 -> f16 / bf16 rounding."""
    rng = np.random.default_rng(1234)
    out = []
    # Specials: zeros, infinities, NaNs with various payloads and signs.
    out += [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
            0x7F800001, 0xFF800001, 0x7FA00000, 0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
            0x7FC00001, 0x7F802000, 0x7F801FFF, 0xFF812345]
    # f32 subnormals and the smallest / largest normals.
    out += [0x00000001, 0x80000001, 0x007FFFFF, 0x00400000, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]
    # f16 boundaries: max (65504), halfway to inf (65520), and neighbours.
    for v in [65504.0, 65519.0, 65520.0, 65536.0, 6.103515625e-05, 5.960464477539063e-08,
              2.9802322387695312e-08, 1.0, -1.0, 0.1, 1.0 / 3.0, 3.14159265]:
        b = struct.unpack("<I", struct.pack("<f", v))[0]
        out += [b - 1, b, b + 1, b | 0x80000000]
    # Exact f16 halfway cases (low 13 bits == 0x1000) over the normal range, even and odd.
    for e in range(113 - 1, 143):  # f32 exponents spanning f16 subnormal..max normal
        for m in rng.integers(0, 1 << 10, 24):
            base = (e << 23) | (int(m) << 13)
            out += [base | 0x1000, (base | 0x1000) - 1, (base | 0x1000) + 1, base | 0x1000 | 0x80000000]
    # f16 subnormal range: values in [2^-26, 2^-14), with halfway points in units of 2^-24.
    for e in range(100, 113):
        for m in rng.integers(0, 1 << 23, 24):
            out.append((e << 23) | int(m))
        for k in range(1, 1024, 37):  # exact halfway between subnormal steps
            v = (k + 0.5) * 2.0 ** -24
            b = struct.unpack("<I", struct.pack("<f", v))[0]
            out += [b, b - 1, b + 1]
    # bf16 halfway cases (low 16 bits == 0x8000), even and odd, and neighbours.
    for hi in rng.integers(0, 1 << 16, 400):
        base = int(hi) << 16
        out += [base | 0x8000, base | 0x7FFF, base | 0x8001]
    # Random bit patterns.
    out += [int(x) for x in rng.integers(0, 1 << 32, 1500, dtype=np.uint64)]
    return [x & 0xFFFFFFFF for x in out]


def write_conversions():
    allbits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    h = torch.from_numpy(allbits.view(np.int16).copy()).view(torch.float16)
    np.asarray(h.float().view(torch.int32).numpy().view(np.uint32), dtype="<u4").tofile(
        os.path.join(OUT, "f16_to_f32_all.bin"))
    b = torch.from_numpy(allbits.view(np.int16).copy()).view(torch.bfloat16)
    np.asarray(b.float().view(torch.int32).numpy().view(np.uint32), dtype="<u4").tofile(
        os.path.join(OUT, "bf16_to_f32_all.bin"))

    bits = tricky_f32_bits()
    # torch's CPU conversion of NaN differs between its vectorized body and scalar tail; pad to a
    # multiple of 32 so every element takes the vectorized path (what a real tensor conversion does).
    while len(bits) % 32:
        bits.append(0x3F800000)
    x = u32_to_f32(bits)
    f16 = x.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    bf16 = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    rec = np.zeros(len(bits), dtype=[("f32", "<u4"), ("f16", "<u2"), ("bf16", "<u2")])
    rec["f32"] = np.asarray(bits, dtype=np.uint32)
    rec["f16"] = f16
    rec["bf16"] = bf16
    rec.tofile(os.path.join(OUT, "f32_tricky.bin"))
    return len(bits)


CHUNK_BITS = 20


def weights(n):
    """Odd per-position weights for the chunk hashes: (i * 2654435761 + 1) | 1 as u64."""
    i = np.arange(n, dtype=np.uint64)
    return (i * np.uint64(2654435761) + np.uint64(1)) | np.uint64(1)


def write_exhaustive_hashes():
    """torch f32 -> f16 / bf16 for all 2^32 floats, as one u64 hash per chunk of 2^20 consecutive bit patterns:
    hash = sum(out[i] * weights[i]) mod 2^64. Chunk k holds bit patterns k << 20 ... (k << 20) + 2^20 - 1."""
    n = 1 << CHUNK_BITS
    w = weights(n)
    rec = np.zeros(1 << (32 - CHUNK_BITS), dtype=[("f16", "<u8"), ("bf16", "<u8")])
    base = np.arange(n, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for k in range(len(rec)):
            x = torch.from_numpy((base + np.uint32(k << CHUNK_BITS)).view(np.float32))
            h = x.to(torch.float16).view(torch.int16).numpy().view(np.uint16).astype(np.uint64)
            b = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).astype(np.uint64)
            rec["f16"][k] = np.sum(h * w, dtype=np.uint64)
            rec["bf16"][k] = np.sum(b * w, dtype=np.uint64)
    rec.tofile(os.path.join(OUT, "f32_to_half_chunk_hashes.bin"))


def ramp(n, dtype):
    """Exactly representable values: (i % 97 - 48) * 0.25."""
    v = (torch.arange(n, dtype=torch.float64) % 97 - 48) * 0.25
    return v.to(dtype)


def write_files():
    values = {}
    # One file per dtype, the ramp formula, shape [3, 5, 7].
    for name, dt in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16), ("f64", torch.float64)]:
        save_file({"w": ramp(105, dt).reshape(3, 5, 7), "b": ramp(7, dt)}, os.path.join(OUT, f"{name}.safetensors"))
    # Integers: i64 with metadata (single key: the Python writer's metadata order is a hash map's).
    i64 = torch.arange(-6, 6, dtype=torch.int64) * 1_000_000_007
    save_file({"ids": i64.reshape(3, 4), "mask": torch.tensor([True, False, True]),
               "small": torch.tensor([-128, 0, 127], dtype=torch.int8)},
              os.path.join(OUT, "i64_meta.safetensors"), metadata={"format": "pt"})
    values["i64"] = i64.tolist()
    # Every dtype at once, odd names (escapes, non-ASCII), an empty tensor and a scalar:
    # the Swift writer must reproduce this file byte for byte.
    torch.manual_seed(7)
    mixed = {
        "a.f32": torch.randn(4, 3),
        "z.f32": torch.randn(5),
        "half": torch.randn(9).to(torch.float16),
        "brain": torch.randn(2, 3).to(torch.bfloat16),
        "double": torch.randn(3).to(torch.float64),
        "i64": torch.tensor([1, -2, 3], dtype=torch.int64),
        "i32": torch.tensor([-7, 8], dtype=torch.int32),
        "i16": torch.tensor([300, -300, 5], dtype=torch.int16),
        "i8": torch.tensor([-1, 2], dtype=torch.int8),
        "u8": torch.tensor([255, 0, 9], dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(2.5),
        "quote\"back\\slash\nnl\ttab\x01ctl\u00e9\u4e2d/\x7f": torch.ones(1),
    }
    save_file(mixed, os.path.join(OUT, "mixed.safetensors"), metadata={"format": "pt"})
    values["mixed"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                           "values": v.to(torch.float64).flatten().tolist()} for k, v in mixed.items()}
    save_file({}, os.path.join(OUT, "empty.safetensors"))
    save_file({"x": torch.ones(2)}, os.path.join(OUT, "nometa.safetensors"))
    return values


JSON_CASES = [
    '{"a":1,}', '[1,]', "{'a':1}", '[01]', '[1.]', '[.5]', '[+1]', '["\\x"]', '["\x01"]', '["\\ud800"]',
    '["\\udc00"]', '["\\ud800\\u0041"]', '[tru]', '{"a" 1}', '[1] x', '"', '', '[NaN]', '[Infinity]', '[1e400]',
    '[-]', '[1e]', '["\\u12"]', '{"a":1 "b":2}', '{"a":1,"a":2}', '\t[1]\n',
    '[1]', '{"a":[1,2,{"b":null}]}', '"\\ud83d\\ude00"', '[-0]', '[1E+2]', '[1e-400]', '["\\u00e9"]', '["\u00e9"]',
    '[9223372036854775808]', '[18446744073709551616]', '[true,false,null]', '"\\/\\b\\f\\n\\r\\t"',
]


def write_json_verdicts():
    """Whether the Rust safetensors parser (serde_json) accepts each JSON value inside a header's unknown field."""
    from safetensors import deserialize
    out = []
    for case in JSON_CASES:
        header = '{"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":' + case + '}}'
        try:
            deserialize(struct.pack("<Q", len(header.encode())) + header.encode())
            ok = True
        except Exception:
            ok = False
        out.append({"value": case, "accepted": ok})
    with open(os.path.join(OUT, "json_verdicts.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def write_sharded(values):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    values["llama"] = {k: {"shape": list(v.shape), "sum": v.double().sum().item(),
                           "head": v.flatten()[:4].double().tolist()} for k, v in model.state_dict().items()}
    for folder, max_shard in [("sharded2", 2000), ("sharded_big", 500)]:
        path = os.path.join(OUT, folder)
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(path, max_shard_size=max_shard)
        for extra in ("config.json", "generation_config.json"):
            p = os.path.join(path, extra)
            if os.path.exists(p):
                os.remove(p)
        # The order in which save_pretrained walked the state dict (the index's weight_map is sorted).
        with open(os.path.join(path, "order.json"), "w") as f:
            json.dump({"max_shard_size": max_shard, "order": list(model.state_dict().keys())}, f, indent=1)
            f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    n = write_conversions()
    write_json_verdicts()
    write_exhaustive_hashes()
    values = write_files()
    write_sharded(values)
    with open(os.path.join(OUT, "values.json"), "w") as f:
        json.dump(values, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT} ({n} tricky floats)")


if __name__ == "__main__":
    main()
