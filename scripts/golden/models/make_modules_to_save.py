#!/usr/bin/env python3
"""Goldens for training embed_tokens and lm_head beside LoRA (PEFT modules_to_save), on the tiny llama (untied).

Writes Tests/Fixtures/models/llama/modules_to_save.safetensors (F32):
- `loss`: rows 0+1 of data.jsonl right-padded to 16 (as golden.safetensors), LoRA from adapter/ on all seven
  modules, modules_to_save=["embed_tokens", "lm_head"];
- `grad.embed_tokens`, `grad.lm_head`: the gradients of that loss for the two saved modules;
- `curve`: the loss of 6 AdamW steps (lr 1e-3 for LoRA, 1e-4 for the two modules: Unsloth's
  embedding_learning_rate as its own parameter group; betas 0.9/0.999, eps 1e-8, no decay, no clipping),
  batch = rows (2k mod 4, 2k+1 mod 4) padded as above;
- `final.embed_tokens`, `final.lm_head`: the two modules after those steps.

Run from the repository root:  python3 scripts/golden/models/make_modules_to_save.py
Pinned versions: scripts/golden/requirements-models.txt
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from padded import batch  # noqa: E402

DIR = "Tests/Fixtures/models/llama"


def model():
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(DIR, dtype=torch.float32, attn_implementation="eager")
    m = PeftModel.from_pretrained(base, f"{DIR}/adapter", is_trainable=True)
    # modules_to_save on top of the loaded adapter: trainable copies of embed_tokens and lm_head.
    from peft.utils import ModulesToSaveWrapper
    m.base_model.model.model.embed_tokens = ModulesToSaveWrapper(m.base_model.model.model.embed_tokens, "default")
    m.base_model.model.lm_head = ModulesToSaveWrapper(m.base_model.model.lm_head, "default")
    for n, p in m.named_parameters():
        p.requires_grad = "lora_" in n or "modules_to_save" in n
    return m


def saved(m, name):
    mod = m.base_model.model.model.embed_tokens if name == "embed_tokens" else m.base_model.model.lm_head
    return mod.modules_to_save["default"].weight


def main():
    torch.set_num_threads(1)
    rows = [json.loads(l) for l in open(f"{DIR}/data.jsonl")]
    m = model()
    m.train()
    ids, att, lab = batch(rows, [0, 1])
    loss = m(input_ids=ids, attention_mask=att, labels=lab).loss
    loss.backward()
    out = {"loss": loss.detach().reshape(1), "grad.embed_tokens": saved(m, "embed_tokens").grad.clone(),
           "grad.lm_head": saved(m, "lm_head").grad.clone()}

    m = model()
    m.train()
    lora = [p for n, p in m.named_parameters() if "lora_" in n and p.requires_grad]
    mods = [p for n, p in m.named_parameters() if "modules_to_save" in n and p.requires_grad]
    # PyTorch's named_parameters order: embed_tokens' copy before lm_head's.
    opt = torch.optim.AdamW([{"params": lora, "lr": 1e-3}, {"params": mods, "lr": 1e-4}], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    curve = []
    for k in range(6):
        ids, att, lab = batch(rows, [(2 * k) % 4, (2 * k + 1) % 4])
        loss = m(input_ids=ids, attention_mask=att, labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        curve.append(loss.item())
    out["curve"] = torch.tensor(curve)
    out["final.embed_tokens"] = saved(m, "embed_tokens").detach().clone()
    out["final.lm_head"] = saved(m, "lm_head").detach().clone()
    save_file({k: v.contiguous().float() for k, v in out.items()}, f"{DIR}/modules_to_save.safetensors")
    print("loss", out["loss"].item(), "curve", curve)


if __name__ == "__main__":
    main()
