#!/usr/bin/env python3
"""Check a GGUF file written by `sloth export gguf` with the real tools: the `gguf` package and llama.cpp.

  1. gguf.GGUFReader reads every key and every tensor (dequantized with gguf.quants: all finite).
  2. llama.cpp (llama-cpp-python, F32 KV cache) loads the file; its logits for each row of --data are
     compared with transformers + PEFT (base + adapter, fp32, eager attention):
     max|diff| / max(1, max|logit|) <= --tolerance (with --round-weights, against the reference whose 2-D
     weights are rounded to the file's 16-bit dtype, so the check is llama.cpp's compute, not the rounding).
  3. With --f32 REF.gguf (Sloth's F32 export of the same model): llama.cpp's own quantizer
     (llama_model_quantize) turns REF into --ftype, and every tensor of --gguf must have the type and the
     exact bytes llama.cpp chose and wrote; then the logit error of step 2 is llama.cpp's own.
  With --lora ADAPTER.gguf, the adapter is applied by llama.cpp to --gguf (the base) instead.

    python3 scripts/golden/export/check_gguf.py --gguf out/m.gguf --model DIR [--adapter DIR] --data DIR/data.jsonl \\
        [--f32 out/m-f32.gguf --ftype q4_k_m] [--lora out/adapter.gguf] [--tolerance 1e-3] [--positions N]

Prints what it measured and OK; exit status 0 pass, 1 mismatch, 2 bad input.
"""
import argparse
import json
import os
import sys
import tempfile

FTYPES = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l)["input_ids"] for l in f if l.strip()]


def read_all(path):
    import numpy as np
    import gguf
    r = gguf.GGUFReader(path)
    for name, field in r.fields.items():
        field.contents()
    tensors = {}
    for t in r.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        if not np.isfinite(values).all():
            raise SystemExit(f"FAIL: {path}: tensor {t.name} dequantizes to non-finite values")
        tensors[t.name] = (t.tensor_type.name, bytes(np.ascontiguousarray(t.data).view(np.uint8)))
    return r, tensors


def llama_logits(path, data, lora=None):
    import numpy as np
    from llama_cpp import Llama
    n_ctx = max(len(x) for x in data) + 8
    kw = dict(lora_path=lora) if lora else {}
    # llama.cpp's extra CPU buffer types (AMX, REPACK) off: on a Xeon whose cpuid has AMX, the pinned build's AMX
    # matmul faults on `ldtilecfg` (SIGSEGV, every quantized file; seen in a CI run). The plain CPU kernels read the
    # file's own blocks, which is what this check is about. Llama() takes no such argument, so its defaults are wrapped.
    import llama_cpp.llama as L
    defaults = L.llama_cpp.llama_model_default_params
    def without_extra_buffers():
        p = defaults()
        p.use_extra_bufts = False
        return p
    L.llama_cpp.llama_model_default_params = without_extra_buffers
    try:
        llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True, type_k=0, type_v=0,
                    n_threads=2, verbose=False, **kw)
    finally:
        L.llama_cpp.llama_model_default_params = defaults
    out = []
    for ids in data:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float64))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--data", required=True)
    ap.add_argument("--f32")
    ap.add_argument("--ftype", choices=sorted(FTYPES))
    ap.add_argument("--lora")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--positions", type=int, default=0, help="compare only the first N positions (0: all)")
    ap.add_argument("--round-weights", choices=["f16", "bf16"],
                    help="the file stores 2-D weights in this dtype: compare with the reference whose merged 2-D weights are rounded the same way")
    args = ap.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    for p in (args.gguf, args.data):
        if not os.path.isfile(p):
            print(f"error: {p}: no such file", file=sys.stderr)
            return 2
    data = rows(args.data)
    ok = True

    # 1. gguf reads everything.
    reader, ours = read_all(args.gguf)
    types = {}
    for ty, _ in ours.values():
        types[ty] = types.get(ty, 0) + 1
    print(f"gguf: {len(reader.fields)} fields and {len(ours)} tensors read ({', '.join(f'{n} {t}' for t, n in sorted(types.items()))})")
    if args.lora:
        lr, lt = read_all(args.lora)
        print(f"gguf: adapter {len(lr.fields)} fields and {len(lt)} tensors read")

    # 3. the bytes llama.cpp's quantizer writes.
    if args.f32:
        import ctypes
        import llama_cpp
        with tempfile.TemporaryDirectory() as d:
            ref = os.path.join(d, "ref.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FTYPES[args.ftype]
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(args.f32.encode(), ref.encode(), ctypes.byref(params))
            if rc != 0:
                print(f"FAIL: llama_model_quantize returned {rc}")
                return 1
            _, theirs = read_all(ref)
        diff = [n for n in theirs if n not in ours or ours[n] != theirs[n]]
        extra = [n for n in ours if n not in theirs]
        print(f"llama.cpp quantizer ({args.ftype}): {len(theirs) - len(diff)}/{len(theirs)} tensors identical in type and bytes")
        for n in diff[:5]:
            print(f"  differs: {n}: ours {ours.get(n, ('missing',))[0]}, llama.cpp {theirs[n][0]}")
        if diff or extra:
            ok = False

    # 2. logits.
    ref = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    if args.adapter:
        from peft import PeftModel
        ref = PeftModel.from_pretrained(ref, args.adapter)
    ref.eval()
    n = args.positions or None

    def reference():
        with torch.no_grad():
            return [ref(input_ids=torch.tensor([ids])).logits[0].double().numpy() for ids in data]

    want = reference()
    if args.round_weights:
        exact = want
        if args.adapter:
            ref = ref.merge_and_unload()
        dt = torch.float16 if args.round_weights == "f16" else torch.bfloat16
        with torch.no_grad():
            for p in ref.parameters():
                if p.dim() >= 2:
                    p.copy_(p.to(dt).float())
        want = reference()
        drift = max(np.abs(w[:n] - e[:n]).max() / max(1.0, np.abs(e[:n]).max()) for w, e in zip(want, exact))
        print(f"rounding the 2-D weights to {args.round_weights} moves transformers' logits by {drift:.3e} relative (for information)")
    have = llama_logits(args.gguf, data, args.lora)
    rel = max(np.abs(h[:n] - w[:n]).max() / max(1.0, np.abs(w[:n]).max()) for h, w in zip(have, want))
    what = "base + LoRA GGUF in llama.cpp" if args.lora else "llama.cpp"
    span = f"first {n} positions of " if n else ""
    rounded = f" with weights rounded to {args.round_weights}" if args.round_weights else ""
    print(f"logits: {what} vs transformers{' + PEFT' if args.adapter else ''}{rounded}: max relative diff {rel:.3e} over {span}{len(data)} rows (tolerance {args.tolerance:g})")
    if not rel <= args.tolerance:
        ok = False
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
