#!/usr/bin/env python3
"""Build the tiny reference models and their PEFT goldens for Sloth's model tests.

For each architecture (llama, mistral, qwen2, gemma) this writes, under
`Tests/Fixtures/models/<name>/`:

- the base model: `config.json` + safetensors (llama sharded in two, qwen2 in BF16);
- `adapter/`: a PEFT LoRA adapter written by `save_pretrained` (lora_B made non-zero);
- `data.jsonl`: 4 pre-tokenized rows (lengths 16, 11, 16, 7; first 3 labels -100);
- `golden.safetensors` (F32): `logits` (row 0 alone, adapter on), `base_logits` (row 0 alone,
  adapter off), `loss` (rows 0+1, right-padded to 16) and the gradient of that loss for every
  LoRA parameter, named as in `adapter/adapter_model.safetensors`;
- `golden.json`: a 10-step AdamW loss curve (and, for llama, a gradient-accumulation variant);
- `train_final.safetensors`: the LoRA weights after the 10 steps of `golden.json["train"]`.

Every golden is computed from the files as written to disk (reloaded), so e.g. qwen2's goldens
use the BF16 weights upcast to fp32.

Run from the repository root:  python3 scripts/golden/models/make_tiny.py
Pinned versions: scripts/golden/requirements-models.txt
"""

import argparse
import json
import math
import os
import shutil

import torch
import transformers
import peft
from safetensors.torch import save_file, load_file
from transformers import (
    AutoModelForCausalLM,
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)
from peft import LoraConfig, PeftModel, get_peft_model

PAD_ID = 0
ROW_LENGTHS = [16, 11, 16, 7]
MASKED_PREFIX = 3
SEQ_LEN = 16
ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8,
}

TRAIN = {
    "steps": 10,
    "batch_size": 2,
    "gradient_accumulation_steps": 1,
    "row_order": "rows taken in order without shuffling: step k uses rows (2k mod 4, 2k+1 mod 4)",
    "padding": "right, pad id 0, attention_mask 0 and label -100 on padding, padded to the longest row (16)",
    "optimizer": "torch.optim.AdamW",
    "lr": 2e-3,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "grad_norm": "return value of torch.nn.utils.clip_grad_norm_(lora params, 1.0): the pre-clip global L2 norm",
    "schedule": "transformers.get_linear_schedule_with_warmup",
    "warmup_steps": 2,
    "total_steps": 10,
    "learning_rate": "the lr used by that step's optimizer.step() (scheduler.step() is called after it)",
    "loss": "the step's forward loss: transformers causal LM loss, mean over non-ignored shifted labels",
    "trainable": "LoRA A and B only; base frozen; weight decay applies to all LoRA params",
}

TRAIN_ACCUM = dict(
    TRAIN,
    batch_size=1,
    gradient_accumulation_steps=2,
    row_order="two micro-batches of one row each per step, rows in order: step k uses row 2k mod 4 then 2k+1 mod 4",
    padding="none (micro-batches of one row)",
    schedule="transformers.get_cosine_schedule_with_warmup",
    warmup_steps=3,
    loss="as transformers Trainer with num_items_in_batch: each micro-batch's summed token loss divided by the predicted tokens of the whole step; the step loss is their sum (the mean over all the step's tokens)",
)


def common_sizes():
    """Sizes shared by llama, mistral and qwen2."""
    return dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=96,
        vocab_size=256,
        rms_norm_eps=1e-5,
        initializer_range=0.08,
        max_position_embeddings=64,
        attn_implementation="eager",
    )


def spec(name):
    """Returns (config, seed, adapter targets, use_rslora, save kwargs) of one tiny model."""
    if name == "llama":
        cfg = LlamaConfig(
            **common_sizes(),
            rope_parameters=dict(LLAMA3_SCALING, rope_theta=10000.0),
            tie_word_embeddings=False,
            attention_bias=False,
        )
        return cfg, 1001, ALL_SEVEN, False
    if name == "mistral":
        cfg = MistralConfig(
            **common_sizes(),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            sliding_window=6,
            tie_word_embeddings=False,
        )
        return cfg, 1002, ALL_SEVEN, True
    if name == "qwen2":
        cfg = Qwen2Config(
            **common_sizes(),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True,
            use_sliding_window=False,
        )
        return cfg, 1003, ALL_SEVEN, False
    if name == "gemma":
        sizes = common_sizes()
        sizes.update(num_key_value_heads=1, head_dim=24)
        cfg = GemmaConfig(
            **sizes,
            hidden_activation="gelu_pytorch_tanh",
            hidden_act="gelu_pytorch_tanh",
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True,
        )
        return cfg, 1004, ["q_proj", "v_proj", "down_proj"], False
    raise ValueError(name)


def make_base(cfg, seed):
    """Builds the randomly initialised model and perturbs every norm weight and bias."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    gemma = cfg.model_type == "gemma"
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                # Gemma stores w with y = x*r*(1+w); the others y = x*r*w.
                p.copy_((0.0 if gemma else 1.0) + 0.1 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    return model


def make_rows(seed):
    """Four pre-tokenized rows: random ids in [1, 255], first 3 labels masked."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in ROW_LENGTHS:
        ids = torch.randint(1, 256, (n,), generator=g).tolist()
        labels = [-100] * MASKED_PREFIX + ids[MASKED_PREFIX:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def collate(rows):
    """Right-pads rows to the longest with id 0, mask 0 and label -100."""
    t = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), t), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    labels = torch.full((len(rows), t), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(r["labels"])
    return ids, mask, labels


def peft_key(param_name):
    """PEFT parameter name (with adapter name) -> key used in adapter_model.safetensors."""
    return param_name.replace(".default.", ".")


def lora_params(model):
    return [(n, p) for n, p in model.named_parameters() if "lora_" in n]


def write_adapter(base, out_dir, targets, use_rslora, seed):
    """Wraps `base` in PEFT LoRA, makes lora_B non-zero and saves the adapter."""
    lcfg = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=targets,
        use_rslora=use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed + 500)
    pm = get_peft_model(base, lcfg)
    g = torch.Generator().manual_seed(seed + 600)
    with torch.no_grad():
        for n, p in lora_params(pm):
            if "lora_B" in n:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    pm.save_pretrained(out_dir)
    readme = os.path.join(out_dir, "README.md")  # PEFT's model-card boilerplate
    if os.path.exists(readme):
        os.remove(readme)
    # PEFT writes base_model_name_or_path = None for a model built from a config; keep it
    # explicit and relative-friendly for readers of the fixture.
    path = os.path.join(out_dir, "adapter_config.json")
    with open(path) as f:
        ac = json.load(f)
    ac["base_model_name_or_path"] = ".."
    ac["target_modules"] = sorted(ac["target_modules"])  # PEFT writes a set: fix the order
    with open(path, "w") as f:
        json.dump(ac, f, indent=2, sort_keys=True)
        f.write("\n")
    return pm


def load_peft(model_dir, trainable=False):
    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    pm = PeftModel.from_pretrained(base, os.path.join(model_dir, "adapter"), is_trainable=trainable)
    pm.eval()  # dropout is 0 anyway; eval keeps everything deterministic
    return pm


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits.float()


def rewrite_llama_config_old_style(model_dir):
    """Rewrites config.json with `rope_theta` + `rope_scaling` (the style of real folders)."""
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp["rope_theta"]
    c["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    with open(path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def train_curve(model_dir, rows, params, accum):
    """Runs 10 optimizer steps from the saved adapter and returns (record, final lora weights)."""
    torch.manual_seed(0)
    pm = load_peft(model_dir, trainable=True)
    named = lora_params(pm)
    plist = [p for _, p in named]
    opt = torch.optim.AdamW(
        plist, lr=params["lr"], betas=tuple(params["betas"]), eps=params["eps"],
        weight_decay=params["weight_decay"],
    )
    if params["schedule"].endswith("cosine_schedule_with_warmup"):
        sched = transformers.get_cosine_schedule_with_warmup(opt, params["warmup_steps"], params["total_steps"])
    else:
        sched = transformers.get_linear_schedule_with_warmup(opt, params["warmup_steps"], params["total_steps"])
    losses, norms, lrs = [], [], []
    cursor = 0
    for _ in range(params["steps"]):
        opt.zero_grad(set_to_none=True)
        lrs.append(opt.param_groups[0]["lr"])
        if accum:
            # As transformers' Trainer does for models that accept loss kwargs: every micro-batch's summed
            # token loss is divided by the number of predicted tokens in the whole optimizer step
            # (num_items_in_batch), so the step's gradient is the mean over all its tokens.
            micro = []
            for _ in range(params["gradient_accumulation_steps"]):
                micro.append(collate([rows[cursor % 4]]))
                cursor += 1
            num_items = sum(int((labels[:, 1:] != -100).sum()) for _, _, labels in micro)
            step_loss = 0.0
            for ids, mask, labels in micro:
                loss = pm(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=num_items).loss
                loss.backward()
                step_loss += loss.item()
            losses.append(step_loss)
        else:
            batch = [rows[cursor % 4], rows[(cursor + 1) % 4]]
            cursor += 2
            ids, mask, labels = collate(batch)
            loss = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            losses.append(loss.item())
        norms.append(float(torch.nn.utils.clip_grad_norm_(plist, params["max_grad_norm"])))
        opt.step()
        sched.step()
    final = {peft_key(n): p.detach().float().contiguous().clone() for n, p in named}
    rec = dict(params, losses=losses, grad_norms=norms, learning_rates=lrs)
    return rec, final


def build(name, root):
    cfg, seed, targets, use_rslora = spec(name)
    out = os.path.join(root, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)

    base = make_base(cfg, seed)
    rows = make_rows(seed + 100)

    # 1. Base model files.
    if name == "llama":
        base.save_pretrained(out, max_shard_size="200KB")
    elif name == "qwen2":
        base.to(torch.bfloat16).save_pretrained(out)
        base.float()
    else:
        base.save_pretrained(out)
    for extra in ("generation_config.json",):
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)
    if name == "llama":
        # Logits from the transformers-5-written config, then the old-style config must agree.
        with torch.no_grad():
            ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
            before = logits_of(ref, rows[0]["input_ids"])
        rewrite_llama_config_old_style(out)
        ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
        assert ref.config.rope_parameters["rope_type"] == "llama3", ref.config.rope_parameters
        after = logits_of(ref, rows[0]["input_ids"])
        d = (before - after).abs().max().item()
        print(f"[llama] old-style config (rope_theta + rope_scaling) reloads to max |dlogit| = {d:.3g}")
        assert d == 0.0
        # The llama3 scaling must matter at T=16.
        plain = AutoModelForCausalLM.from_pretrained(
            out, dtype=torch.float32, attn_implementation="eager",
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
        d = (logits_of(plain, rows[0]["input_ids"]) - after).abs().max().item()
        print(f"[llama] llama3 scaling vs no scaling at T=16: max |dlogit| = {d:.3g}")
        assert d > 1e-3
    if name == "mistral":
        m = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
        full = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager", sliding_window=None)
        a = logits_of(m, rows[0]["input_ids"])
        b = logits_of(full, rows[0]["input_ids"])
        d = (a - b).abs().max(dim=-1).values[0]
        print("[mistral] sliding_window 6 vs None, per position max |dlogit|: "
              + " ".join(f"{x:.2g}" for x in d.tolist()))
        # Positions 0..5 see at most 6 tokens either way; from position 6 on the window bites.
        assert d[:6].max().item() < 1e-5 and d[6:].min().item() > 1e-4
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    # 2. Adapter (lora_B non-zero).
    write_adapter(base, os.path.join(out, "adapter"), targets, use_rslora, seed)
    del base

    # 3. Goldens from what is on disk.
    pm = load_peft(out, trainable=True)
    logits = logits_of(pm, rows[0]["input_ids"])
    with pm.disable_adapter():
        base_logits = logits_of(pm, rows[0]["input_ids"])
    ids, mask, labels = collate(rows[:2])
    assert ids.shape[1] == SEQ_LEN
    pm.zero_grad(set_to_none=True)
    loss = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    golden = {
        "logits": logits.contiguous(),
        "base_logits": base_logits.contiguous(),
        "loss": loss.detach().reshape(1).float(),
    }
    saved = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
    for n, p in lora_params(pm):
        k = peft_key(n)
        assert k in saved and saved[k].shape == p.grad.shape, k
        golden[k] = p.grad.detach().float().contiguous()
    assert set(saved) == set(golden) - {"logits", "base_logits", "loss"}
    # No __metadata__: its key order is not stable, and the versions are in golden.json.
    save_file(golden, os.path.join(out, "golden.safetensors"))
    gnorm = math.sqrt(sum(float((golden[k] ** 2).sum()) for k in saved))
    print(f"[{name}] max|logit| {logits.abs().max().item():.4f}  base max|logit| "
          f"{base_logits.abs().max().item():.4f}  loss {loss.item():.6f} (ln 256 = {math.log(256):.4f})  "
          f"|grad| {gnorm:.4g}  lora tensors {len(saved)}")

    # 4. Training curves.
    record = {
        "model": name,
        "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "use_rslora": use_rslora,
                 "target_modules": targets,
                 "scale": 8 / math.sqrt(4) if use_rslora else 8 / 4},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }
    record["train"], final = train_curve(out, rows, TRAIN, accum=False)
    save_file(final, os.path.join(out, "train_final.safetensors"))
    if name == "llama":
        record["train_accum"], _ = train_curve(out, rows, TRAIN_ACCUM, accum=True)
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    for key in ("train", "train_accum"):
        if key in record:
            r = record[key]
            print(f"[{name}] {key}: losses " + " ".join(f"{x:.4f}" for x in r["losses"]))
            print(f"[{name}] {key}: grad_norms " + " ".join(f"{x:.4f}" for x in r["grad_norms"]))
            print(f"[{name}] {key}: lrs " + " ".join(f"{x:.2e}" for x in r["learning_rates"]))

    with open(os.path.join(out, "config.json")) as f:
        print(f"[{name}] config.json keys: {sorted(json.load(f))}")
    for fn in sorted(os.listdir(out)):
        p = os.path.join(out, fn)
        if os.path.isfile(p):
            print(f"[{name}]   {fn}: {os.path.getsize(p)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/Fixtures/models", help="output root (default: %(default)s)")
    ap.add_argument("names", nargs="*", default=["llama", "mistral", "qwen2", "gemma"])
    args = ap.parse_args()
    torch.set_num_threads(1)  # bit-for-bit reproducible reductions
    torch.use_deterministic_algorithms(True)
    for name in args.names:
        build(name, args.out)


if __name__ == "__main__":
    main()
