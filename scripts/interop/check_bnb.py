#!/usr/bin/env python3
"""Check a bitsandbytes 4-bit checkpoint written by `sloth export bnb-4bit` in transformers + bitsandbytes.

Loads --model with AutoModelForCausalLM (its config.json's quantization_config makes every decoder linear a
bitsandbytes Linear4bit), runs each row of --losses' "rows" alone in fp32 compute and compares the per-token
losses with --losses' "per_token_losses" (those of transformers' own 4-bit model, scripts/golden/quant/make_nf4.py):
max relative diff <= 1e-4.

    python3 scripts/interop/check_bnb.py --model out/q --losses Tests/Fixtures/quant/llama-bnb-4bit/losses.json

Prints the numbers and "OK"; exit status 0 pass, 1 mismatch, 2 bad input.
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--losses", required=True)
    args = ap.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "quant"))
    from bnb_generic import fp32_compute, use_generic_4bit
    torch.set_num_threads(2)
    use_generic_4bit()
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        print(f"error: {args.model}: no config.json", file=sys.stderr)
        return 2
    golden = json.load(open(args.losses))
    model = fp32_compute(AutoModelForCausalLM.from_pretrained(args.model, device_map="cpu", dtype=torch.float32)).eval()
    n4 = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    print(f"loaded {args.model}: {n4} bitsandbytes Linear4bit modules")
    if n4 == 0:
        print("FAIL: no 4-bit linear")
        return 1
    worst = 0.0
    with torch.no_grad():
        for r, want in zip(golden["rows"], golden["per_token_losses"]):
            logits = model(input_ids=torch.tensor([r["input_ids"]])).logits.float()[0]
            per = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(r["labels"])[1:], ignore_index=-100, reduction="none")
            for g, w in zip(per.tolist(), want):
                if w != 0:
                    worst = max(worst, abs(g - w) / abs(w))
    print(f"per-token losses vs transformers' own 4-bit model: max relative diff {worst:.3e} over {len(golden['rows'])} rows (tolerance 1e-4)")
    ok = worst <= 1e-4
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
