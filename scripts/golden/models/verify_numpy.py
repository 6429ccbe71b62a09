#!/usr/bin/env python3
"""Second oracle for the tiny-model goldens: a plain NumPy (float64) forward, written from the
formulas, checked against what transformers + PEFT wrote.

For each folder under Tests/Fixtures/models it reads config.json (either `rope_parameters` or
the older `rope_theta` + `rope_scaling`), the (possibly sharded, possibly BF16) safetensors, the
PEFT adapter and data.jsonl, then compares with golden.safetensors:
- `base_logits` and `logits` (row 0), `loss` (rows 0+1 right-padded);
- a few entries of every LoRA gradient, by central finite differences of the float64 loss.

It needs only numpy + safetensors, so it also documents the exact math Sloth must reproduce
(llama3 RoPE scaling, sliding window, Gemma's sqrt(hidden) embedding scale and (1+w) norms,
rsLoRA scale, label shifting and the padded-batch mean).

    python3 scripts/golden/models/verify_numpy.py [names...]
"""

import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

ROOT = "Tests/Fixtures/models"


def load_weights(folder):
    """All model tensors as float64 (BF16 is read as its bits and widened)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        path = os.path.join(folder, fn)
        try:
            tensors = load_file(path)
        except (TypeError, ValueError):
            tensors = load_bf16(path)
        for k, v in tensors.items():
            out[k] = v.astype(np.float64)
    return out


def load_bf16(path):
    """Reads a safetensors file by hand, widening BF16 to float32 (numpy has no bfloat16)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for k, info in header.items():
        if k == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a : base + b]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        else:
            raise ValueError(f"{path}: {k}: dtype {info['dtype']} not handled")
        out[k] = arr.reshape(info["shape"])
    return out


def inv_freq(cfg, dim):
    rp = dict(cfg.get("rope_parameters") or {})
    theta = rp.pop("rope_theta", cfg.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or rp
    inv = theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv
    assert kind == "llama3", kind
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    orig = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    # Long wavelengths (low frequencies) are divided by `factor`, short ones kept, and the band
    # between orig/high and orig/low interpolated linearly in orig/wavelen.
    smooth = (orig / wavelen - low) / (high - low)
    mid = (1 - smooth) * inv / factor + smooth * inv
    return np.where(wavelen > orig / low, inv / factor, np.where(wavelen < orig / high, inv, mid))


def rope(x, pos, freqs):
    """x (H, T, E) in the rotate-half layout."""
    ang = pos[:, None] * freqs[None, :]  # (T, E/2)
    cos, sin = np.cos(ang), np.sin(ang)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def rmsnorm(x, w, eps, gemma):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return x * r * ((1.0 + w) if gemma else w)


def act(x, name):
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name in ("gelu_pytorch_tanh", "gelu_tanh"):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(name)


class Model:
    def __init__(self, folder, lora):
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = load_weights(folder)
        self.lora = lora  # module prefix -> (A, B, scale), or {}
        c = self.cfg
        self.gemma = c["model_type"] == "gemma"
        self.E = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        self.freqs = inv_freq(c, self.E)
        self.window = c.get("sliding_window") if c["model_type"] == "mistral" else None

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        if name + ".bias" in self.w:
            y = y + self.w[name + ".bias"]
        if name in self.lora:
            a, b, s = self.lora[name]
            y = y + s * (x @ a.T) @ b.T
        return y

    def forward(self, ids, valid):
        """ids (T,), valid (T,) bool; returns logits (T, V)."""
        c, w = self.cfg, self.w
        H, K, E = c["num_attention_heads"], c["num_key_value_heads"], self.E
        T = len(ids)
        x = w["model.embed_tokens.weight"][ids]
        if self.gemma:
            x = x * math.sqrt(c["hidden_size"])
        pos = np.arange(T, dtype=np.float64)
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        allowed = (j <= i) & valid[None, :]
        if self.window:
            allowed &= (i - j) < self.window
        eps = c["rms_norm_eps"]
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = rmsnorm(x, w[p + "input_layernorm.weight"], eps, self.gemma)
            q = self.linear(h, p + "self_attn.q_proj").reshape(T, H, E).transpose(1, 0, 2)
            k = self.linear(h, p + "self_attn.k_proj").reshape(T, K, E).transpose(1, 0, 2)
            v = self.linear(h, p + "self_attn.v_proj").reshape(T, K, E).transpose(1, 0, 2)
            q, k = rope(q, pos, self.freqs), rope(k, pos, self.freqs)
            k, v = np.repeat(k, H // K, axis=0), np.repeat(v, H // K, axis=0)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(E)
            s = np.where(allowed[None], s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            o = (s / s.sum(-1, keepdims=True)) @ v  # (H, T, E)
            x = x + self.linear(o.transpose(1, 0, 2).reshape(T, H * E), p + "self_attn.o_proj")
            h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps, self.gemma)
            m = act(self.linear(h, p + "mlp.gate_proj"), c.get("hidden_activation") or c["hidden_act"])
            x = x + self.linear(m * self.linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = rmsnorm(x, w["model.norm.weight"], eps, self.gemma)
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return x @ head.T

    def loss(self, rows):
        """Mean over all non-ignored shifted labels of the right-padded batch."""
        T = max(len(r["input_ids"]) for r in rows)
        total, count = 0.0, 0
        for r in rows:
            n = len(r["input_ids"])
            ids = np.array(r["input_ids"] + [0] * (T - n))
            labels = np.array(r["labels"] + [-100] * (T - n))
            z = self.forward(ids, np.arange(T) < n)[:-1]
            y = labels[1:]
            keep = y != -100
            zmax = z.max(-1, keepdims=True)
            lse = (zmax + np.log(np.exp(z - zmax).sum(-1, keepdims=True)))[:, 0]
            total += (lse - z[np.arange(T - 1), np.where(keep, y, 0)])[keep].sum()
            count += keep.sum()
        return total / count


def load_lora(folder):
    with open(os.path.join(folder, "adapter", "adapter_config.json")) as f:
        ac = json.load(f)
    scale = ac["lora_alpha"] / (math.sqrt(ac["r"]) if ac.get("use_rslora") else ac["r"])
    t = {k: v.astype(np.float64) for k, v in load_file(os.path.join(folder, "adapter", "adapter_model.safetensors")).items()}
    lora = {}
    for k in t:
        if k.endswith(".lora_A.weight"):
            mod = k[len("base_model.model."):-len(".lora_A.weight")]
            lora[mod] = [t[k], t[k.replace("lora_A", "lora_B")], scale]
    return lora


def check(name):
    folder = os.path.join(ROOT, name)
    golden = load_file(os.path.join(folder, "golden.safetensors"))
    with open(os.path.join(folder, "data.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    ok = True

    def report(what, got, want, tol):
        nonlocal ok
        d = float(np.abs(np.asarray(got, dtype=np.float64) - want.astype(np.float64)).max())
        good = d <= tol
        ok &= good
        print(f"[{name}] {what:32s} max|diff| {d:.3e}  (tol {tol:g}) {'ok' if good else 'MISMATCH'}")

    base = Model(folder, {})
    ids0 = np.array(rows[0]["input_ids"])
    report("base_logits", base.forward(ids0, np.ones(len(ids0), bool))[None], golden["base_logits"], 1e-4)
    lora = load_lora(folder)
    m = Model(folder, lora)
    report("logits (with adapter)", m.forward(ids0, np.ones(len(ids0), bool))[None], golden["logits"], 1e-4)
    report("loss", [m.loss(rows[:2])], golden["loss"], 1e-5)

    # Finite differences on 2 entries of every LoRA tensor.
    rng = np.random.default_rng(0)
    worst = 0.0
    for mod, (a, b, _) in sorted(lora.items()):
        for which, t in (("lora_A", a), ("lora_B", b)):
            g = golden[f"base_model.model.{mod}.{which}.weight"].astype(np.float64)
            for _ in range(2):
                idx = tuple(int(rng.integers(0, s)) for s in t.shape)
                old = t[idx]
                h = 1e-5
                t[idx] = old + h
                up = m.loss(rows[:2])
                t[idx] = old - h
                down = m.loss(rows[:2])
                t[idx] = old
                fd = (up - down) / (2 * h)
                worst = max(worst, abs(fd - g[idx]) / max(1e-3, abs(g[idx])))
    good = worst < 1e-3
    ok &= good
    print(f"[{name}] {'grads vs finite differences':32s} max rel diff {worst:.3e} ({4 * len(lora)} entries) "
          f"{'ok' if good else 'MISMATCH'}")
    return ok


def main():
    names = sys.argv[1:] or ["llama", "mistral", "qwen2", "gemma"]
    results = [check(n) for n in names]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
