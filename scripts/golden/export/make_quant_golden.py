#!/usr/bin/env python3
"""Golden for Sloth's GGUF reader and ggml quantizers: Tests/Fixtures/export/quant.gguf.

Written with the `gguf` package (pinned in scripts/golden/requirements-export.txt). Holds:
- metadata of every GGUF value type (the reader test checks each value);
- `input` (8, 512) F32: rows of different character (normal, uniform, all positive, tiny, zeros,
  outliers, a constant, wide range);
- `q8_0`, `q4_0`, `q5_0`, `q5_1`, `bf16`, `f16`: `input` quantized by `gguf.quants` (the reference numpy port of ggml);
- `q4_K`, `q5_K`, `q6_K`: `input` quantized by llama.cpp's own `ggml_quantize_chunk` (libggml from
  llama-cpp-python, no importance matrix: the `quantize_row_*_ref` path), when llama-cpp-python is
  importable (gguf.quants has no K-quant quantizer);
- `deq.<type>`: each quantized tensor dequantized by `gguf.quants.dequantize` (F32).

Run from the repository root: python3 scripts/golden/export/make_quant_golden.py
"""
import ctypes, glob, os, sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, quants

OUT = "Tests/Fixtures/export/quant.gguf"


def make_input():
    rng = np.random.default_rng(1234)
    rows = [
        rng.standard_normal(512) * 0.05,
        rng.uniform(-1, 1, 512),
        np.abs(rng.standard_normal(512)) + 0.1,           # all positive: K-quant min clamps to 0
        rng.standard_normal(512) * 1e-6,                  # tiny
        np.concatenate([np.zeros(256), rng.standard_normal(256)]),  # a zero super-block
        rng.standard_normal(512) * 0.02,
        np.full(512, 0.37),                               # constant
        rng.standard_normal(512) * np.exp(rng.uniform(-4, 4, 512)),  # wide range
    ]
    x = np.stack(rows).astype(np.float32)
    x[5, 7] = 3.0; x[5, 300] = -5.0                       # outliers
    x[1, 0:32] = np.linspace(-1, 1, 32, dtype=np.float32)  # exact halves (rounding ties)
    return x


def llama_quantize(x, qtype):
    """ggml_quantize_chunk from llama.cpp's libggml (no imatrix); None when unavailable."""
    libs = []
    for p in sys.path:
        libs += glob.glob(os.path.join(p, "llama_cpp", "lib", "libggml-base.so"))
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    lib.ggml_quantize_init(int(qtype))
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    out = np.zeros((x.shape[0], x.shape[1] // bs * ts), dtype=np.uint8)
    src = np.ascontiguousarray(x, dtype=np.float32)
    n = lib.ggml_quantize_chunk(int(qtype), src.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
    assert n == out.size, (n, out.size)
    return out


def main():
    x = make_input()
    w = gguf.GGUFWriter(OUT, arch="sloth-test")
    w.add_uint8("test.u8", 200); w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000); w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000); w.add_int32("test.i32", -2000000000)
    w.add_uint64("test.u64", 2**40 + 3); w.add_int64("test.i64", -(2**40) - 3)
    w.add_float32("test.f32", 0.1); w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", True); w.add_string("test.string", "héllo ▁ world\n")
    w.add_array("test.strings", ["a", "", "ĠĊ", "<0x0A>"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.25])
    w.add_tensor("input", x)
    kinds = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "bf16": T.BF16, "f16": T.F16}
    done = []
    for name, qt in kinds.items():
        q = x.astype(np.float16).view(np.uint8) if qt == T.F16 else quants.quantize(x, qt)
        w.add_tensor(name, q, raw_dtype=qt)
        done.append((name, qt, q))
    for name, qt in {"q4_K": T.Q4_K, "q5_K": T.Q5_K, "q6_K": T.Q6_K}.items():
        q = llama_quantize(x, qt)
        if q is None:
            print(f"llama-cpp-python not importable: {name} left out")
            continue
        w.add_tensor(name, q, raw_dtype=qt)
        done.append((name, qt, q))
    for name, qt, q in done:
        w.add_tensor("deq." + name, quants.dequantize(q, qt).astype(np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes): {[d[0] for d in done]}")


if __name__ == "__main__":
    main()
