#!/usr/bin/env python3
"""Greedy-generation goldens for the tiny models: transformers' generate (with the PEFT adapter applied).

Writes Tests/Fixtures/models/<name>/generate.json: prompts of different lengths (token ids) and the
12 tokens transformers' greedy `generate` produces for each prompt alone (EOS ignored).
Pinned versions: scripts/golden/requirements-models.txt. Run: python3 scripts/golden/models/make_generate.py
"""
import json, os
import torch
import transformers
import peft
from transformers import AutoModelForCausalLM
from peft import PeftModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "Tests", "Fixtures", "models")
PROMPTS = [[5, 17, 200, 33], [9, 1, 44, 73, 12, 250, 8, 99, 100, 3, 71], [120], [60, 61, 62, 63, 64, 65, 66]]
NEW = 12

for name in ["llama", "mistral", "qwen2", "gemma"]:
    d = os.path.join(ROOT, name)
    base = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, os.path.join(d, "adapter")).eval()
    outs = []
    for p in PROMPTS:
        ids = torch.tensor([p])
        with torch.no_grad():
            g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW,
                               do_sample=False, eos_token_id=None, pad_token_id=0)
        outs.append(g[0, len(p):].tolist())
    rec = {"prompts": PROMPTS, "max_new_tokens": NEW, "greedy": outs,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
           "how": "transformers generate, do_sample=False, each prompt alone, adapter applied unmerged, EOS ignored"}
    with open(os.path.join(d, "generate.json"), "w") as f:
        json.dump(rec, f, indent=1)
    print(name, outs)
