#!/usr/bin/env python3
"""Goldens for the shipped demo model (models/demo) -> Tests/Fixtures/models/demo-golden/.

- `golden.safetensors` (F32): `logits` [1, T, 512] of the prompt+completion of data/demo.jsonl
  row 0 (BF16 weights upcast to fp32, eager attention); `loss` [1]: the first 8 rows of
  data/demo.jsonl as one right-padded batch (pad id 0, mask 0, label -100).
- `golden.json`: greedy generations (token ids, no sampling, no KV-cache subtleties) for a few
  prompts, each with the smallest top-1/top-2 logit margin seen, so a test knows how robust an
  exact-match comparison is.

Run from the repository root after make_demo.py:  python3 scripts/golden/models/make_demo_golden.py
"""

import json
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

MODEL = "models/demo"
OUT = "Tests/Fixtures/models/demo-golden"
PROMPTS = [
    "Tom has",
    "Snow is",
    "3 + 4 =",
    "User: Tell me about Anna and her white fish.\nAssistant:",
]


def main():
    torch.set_num_threads(1)
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with open("data/demo.jsonl") as f:
        rows = [json.loads(line) for line in f][:8]
    os.makedirs(OUT, exist_ok=True)

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([rows[0]["input_ids"]])).logits.float()
        t = max(len(r["input_ids"]) for r in rows)
        ids = torch.zeros((8, t), dtype=torch.long)
        mask = torch.zeros((8, t), dtype=torch.long)
        labels = torch.full((8, t), -100)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(r["labels"])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss.float()
    save_file({"logits": logits.contiguous(), "loss": loss.reshape(1)}, os.path.join(OUT, "golden.safetensors"))
    print(f"logits {tuple(logits.shape)} max|logit| {logits.abs().max().item():.3f}; "
          f"loss (rows 0-7 of data/demo.jsonl) {loss.item():.6f}")

    eos = tok.token_to_id("</s>")
    gens = []
    for p in PROMPTS:
        prompt_ids = tok.encode(p).ids
        out, margin = list(prompt_ids), float("inf")
        with torch.no_grad():
            for _ in range(32):
                z = model(input_ids=torch.tensor([out])).logits[0, -1]
                top = torch.topk(z, 2).values
                margin = min(margin, (top[0] - top[1]).item())
                nxt = int(z.argmax())
                out.append(nxt)
                if nxt == eos:
                    break
        gen = out[len(prompt_ids):]
        gens.append({"prompt": p, "prompt_ids": prompt_ids, "generated_ids": gen,
                     "generated_text": tok.decode(gen, skip_special_tokens=False),
                     "min_top2_margin": margin})
        print(f"{p!r} -> {gens[-1]['generated_text']!r} (min margin {margin:.3f})")
    record = {
        "model": MODEL,
        "logits": "data/demo.jsonl row 0 input_ids, shape [1, T, 512], fp32 from BF16 weights",
        "loss": "data/demo.jsonl rows 0-7 as one right-padded batch, transformers causal LM loss",
        "generation": "greedy, at most 32 new tokens, stop after </s> (included); prompt_ids from "
                      "tokenizer.json (with the <s> its post-processor adds)",
        "greedy": gens,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
