#!/usr/bin/env python3
"""Check a merged checkpoint (written by `sloth export merged`) against PEFT.

Reference: transformers loads --model in fp32 (eager attention), PEFT applies --adapter, and
`merge_and_unload()` gives the reference merged weights W + scale * B A in fp32.

Checks, for every row of --data:
  1. the merged folder loads in transformers (AutoModelForCausalLM, fp32 compute);
  2. its logits equal base + adapter in PEFT: max|diff| <= tol * max(1, max|logit|), with tol 1e-4
     for an fp32 checkpoint; for a 16-bit checkpoint the bound is the reference merged weights rounded
     to that dtype (run the same way), to 1e-4, plus the report of how far 16-bit rounding moves them;
  3. tensor by tensor, the merged weights equal PEFT's merged weights: exactly (fp32, to 1e-6 relative)
     or within one unit in the last place of the 16-bit dtype.

A bitsandbytes 4-bit --model (config.json with quantization_config) is loaded as transformers loads it (every decoder
linear a Linear4bit, fp32 compute); PEFT applies the adapter on it (QLoRA), and the reference merged weights are
bitsandbytes' dequantized weight + PEFT's delta (get_delta_weight), in fp32 (merge_and_unload would quantize again).

    python3 scripts/golden/export/check_merged.py --model Tests/Fixtures/models/llama \\
        --adapter Tests/Fixtures/models/llama/adapter --merged out/merged --data Tests/Fixtures/models/llama/data.jsonl

Prints one line per check and "OK"; exit status 0 pass, 1 mismatch, 2 bad input.
"""
import argparse
import json
import os
import sys


def rows(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["input_ids"])
    return out


def reference_4bit(model, has_adapter):
    """fp32 weights of a 4-bit model (+ adapter): dequantized Linear4bit weights + LoRA deltas, other tensors as loaded."""
    import torch
    import bitsandbytes as bnb
    import bitsandbytes.functional as bF
    inner = model.base_model.model if has_adapter else model
    state = {}
    for name, m in inner.named_modules():
        base = m.get_base_layer() if hasattr(m, "get_base_layer") else m
        if not isinstance(base, bnb.nn.Linear4bit) or name.endswith(".base_layer"):
            continue
        w = bF.dequantize_4bit(base.weight.data, base.weight.quant_state).float()
        if has_adapter and hasattr(m, "get_delta_weight") and "default" in getattr(m, "lora_A", {}):
            w = w + m.get_delta_weight("default").float()
        state[name + ".weight"] = w
    skip = ("absmax", "quant_map", "quant_state", "lora_", "base_layer")
    for k, v in inner.state_dict().items():
        if k not in state and v.dtype.is_floating_point and not any(s in k for s in skip):
            state[k] = v.detach().float()
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--merged", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    torch.set_num_threads(2)

    for p in (args.model, args.merged):
        if not os.path.isfile(os.path.join(p, "config.json")):
            print(f"error: {p}: no config.json", file=sys.stderr)
            return 2
    quantized = "quantization_config" in json.load(open(os.path.join(args.model, "config.json")))
    if quantized:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quant"))
        from bnb_generic import fp32_compute, use_generic_4bit
        use_generic_4bit()
        ref = fp32_compute(AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager", device_map="cpu"))
    else:
        ref = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    if args.adapter:
        ref = PeftModel.from_pretrained(ref, args.adapter)
    ref.eval()
    data = rows(args.data)

    def logits(model):
        with torch.no_grad():
            return [model(input_ids=torch.tensor([ids])).logits.float()[0] for ids in data]

    want = logits(ref)
    if quantized:
        merged_ref, ref_state = None, reference_4bit(ref, bool(args.adapter))
    else:
        merged_ref = ref.merge_and_unload() if args.adapter else ref
        ref_state = {k: v.detach().clone() for k, v in merged_ref.state_dict().items()}

    # The merged files, raw.
    got, dtypes = {}, set()
    for f in sorted(os.listdir(args.merged)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(args.merged, f), framework="pt") as st:
                for k in st.keys():
                    got[k] = st.get_tensor(k)
                    dtypes.add(got[k].dtype)
    dtype = torch.float32 if dtypes == {torch.float32} else next(iter(dtypes - {torch.float32}), torch.float32)
    tied = (merged_ref or ref).config.tie_word_embeddings
    missing = [k for k in ref_state if k not in got and not (k == "lm_head.weight" and tied)]
    if missing:
        print(f"FAIL: merged checkpoint lacks {missing[:3]}")
        return 1

    ok = True
    # 3. tensor by tensor
    worst_name, worst = None, 0.0
    for k, g in got.items():
        r = ref_state[k]
        if dtype == torch.float32:
            d = ((g.float() - r.float()).abs().max() / max(1.0, r.abs().max().item())).item()
            if d > worst:
                worst, worst_name = d, k
        else:
            rb = r.to(dtype).view(torch.int16).int()
            gb = g.to(dtype).view(torch.int16).int()
            d = float((rb - gb).abs().max().item())
            if d > worst:
                worst, worst_name = d, k
    unit = "relative" if dtype == torch.float32 else f"{str(dtype).replace('torch.', '')} ulp"
    against = "bitsandbytes dequantize + PEFT get_delta_weight" if quantized else "PEFT merge_and_unload"
    print(f"weights: {len(got)} tensors vs {against}: max diff {worst:.3g} {unit}" + (f" ({worst_name})" if worst_name else " (identical)"))
    if (dtype == torch.float32 and worst > 1e-6) or (dtype != torch.float32 and worst > 1):
        print("FAIL: merged weights differ from PEFT's")
        ok = False

    # 1 + 2. logits
    merged = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32, attn_implementation="eager").eval()
    have = logits(merged)
    if dtype == torch.float32:
        bound = want
        label = "base + adapter in PEFT"
    elif quantized:
        print("FAIL: a merged checkpoint from a 4-bit base is checked in fp32 only")
        return 1
    else:
        merged_ref.load_state_dict({k: v.to(dtype).float() for k, v in ref_state.items()}, strict=False)
        bound = logits(merged_ref)
        drift = max(((b - w).abs().max() / max(1.0, w.abs().max().item())).item() for b, w in zip(bound, want))
        print(f"16-bit rounding of the merged weights moves PEFT's fp32 logits by {drift:.3e} relative (for information)")
        label = f"PEFT's merged weights rounded to {str(dtype).replace('torch.', '')}"
    rel = max(((h - b).abs().max() / max(1.0, b.abs().max().item())).item() for h, b in zip(have, bound))
    print(f"logits: merged checkpoint in transformers vs {label}: max relative diff {rel:.3e} over {len(data)} rows (tolerance 1e-4)")
    if not rel <= 1e-4:
        print("FAIL: logits differ")
        ok = False
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
