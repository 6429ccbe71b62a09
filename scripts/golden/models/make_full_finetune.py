#!/usr/bin/env python3
"""Goldens for full fine-tuning (every weight trained) on the tiny llama and gemma (tied embeddings, 1 + w norms).

Writes Tests/Fixtures/models/<name>/full_finetune.safetensors (F32):
- `curve`, `grad_norm`: 6 AdamW steps (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01, clipping at 1.0),
  batch = rows (2k mod 4, 2k+1 mod 4) right-padded (pad 0, attention 0, label -100), fp32, eager attention;
- `grad.<name>`: the gradient of the first batch's loss for every parameter (HF names);
- `final.<name>`: every parameter after the 6 steps.

Run from the repository root:  python3 scripts/golden/models/make_full_finetune.py
Pinned versions: scripts/golden/requirements-models.txt
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from padded import batch  # noqa: E402


def main():
    torch.set_num_threads(1)
    for name in ["llama", "gemma"]:
        d = f"Tests/Fixtures/models/{name}"
        rows = [json.loads(l) for l in open(f"{d}/data.jsonl")]
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        model.train()
        params = dict(model.named_parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        out, curve, norms = {}, [], []
        for k in range(6):
            ids, att, lab = batch(rows, [(2 * k) % 4, (2 * k + 1) % 4])
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            if k == 0:
                for n, p in params.items():
                    out["grad." + n] = p.grad.detach().clone()
            norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
            opt.step()
            opt.zero_grad()
            curve.append(loss.item())
        for n, p in params.items():
            out["final." + n] = p.detach().clone()
        out["curve"] = torch.tensor(curve)
        out["grad_norm"] = torch.tensor(norms)
        save_file({k: v.contiguous().float() for k, v in out.items()}, f"{d}/full_finetune.safetensors")
        print(name, "curve", curve, "params", list(params)[:3], len(params))


if __name__ == "__main__":
    main()
