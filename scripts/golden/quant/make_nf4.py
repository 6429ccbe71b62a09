#!/usr/bin/env python3
"""Goldens for Sloth's 4-bit quantization, made by bitsandbytes itself (CPU).

Writes Tests/Fixtures/quant/:

- `blockwise.safetensors`: for each case (Gaussian, heavy-tailed, odd length with a partial last block,
  a block of zeros and tiny values, BF16 input), the input `<case>.input` and what
  `bitsandbytes.functional.quantize_4bit` returns for nf4 with double quantization (`<case>.nf4dq.*`),
  nf4 without it (`<case>.nf4.*`) and fp4 with it (`<case>.fp4dq.*`): the packed codes, the absmax
  (uint8 + nested_absmax + offset, or f32), the maps, and `dequantize_4bit`'s output (`.dequant`).
- `<arch>-bnb-4bit/` (llama, gemma, qwen2): the tiny models of Tests/Fixtures/models loaded by transformers
  in their own dtype with `BitsAndBytesConfig(load_in_4bit, nf4, double quant, compute float32)` and saved with
  `save_pretrained`, plus `losses.json`: the per-token losses of that 4-bit model (fp32 compute) on the
  model's data.jsonl rows, each row alone.

bitsandbytes 0.50.2's C dequantizer for CPU has a bug (with AVX-512 and in_features % 16 == 0 but % 64 != 0, the tiny
models' down_proj, it uses the wrong scales): this script uses bitsandbytes' own generic kernel instead, see
bnb_generic.py, so the goldens do not depend on the machine's CPU.

torch.mean (the double-quant offset) is computed with one thread: above 32768 blocks torch splits the sum across
threads and its result then depends on the thread count.

Run from the repository root:  python3 scripts/golden/quant/make_nf4.py
Pinned versions: scripts/golden/requirements-quant.txt
"""

import json
import os
import shutil

import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnb_generic import fp32_compute, use_generic_4bit  # noqa: E402

OUT = "Tests/Fixtures/quant"
MODELS = "Tests/Fixtures/models"


def cases():
    g = torch.Generator().manual_seed(1234)
    out = {}
    out["gauss"] = torch.randn(96, 200, generator=g) * 0.02
    # Student-t with 2 degrees of freedom: a few huge outliers per block.
    z = torch.randn(7, 1001, generator=g)
    chi = (torch.randn(7, 1001, generator=g) ** 2 + torch.randn(7, 1001, generator=g) ** 2) / 2
    out["heavy"] = z / chi.sqrt() * 0.05
    out["odd"] = torch.randn(3, 37, generator=g)  # 111 values: one full block, a partial block, odd count
    zb = torch.randn(5, 64, generator=g) * 0.1
    zb[1] = 0
    zb[3] = zb[3] * 1e-30
    zb[4, ::3] = 0
    out["zeros"] = zb
    out["bf16"] = (torch.randn(40, 80, generator=g) * 0.03).to(torch.bfloat16)
    # values on the midpoints between NF4 codes (ties go to the lower code)
    code = F.get_4bit_type("nf4", device="cpu")
    mids = (code[:-1] + code[1:]) / 2
    t = torch.cat([mids, -mids, code, torch.tensor([1.0])])
    out["ties"] = t.repeat(3)[: 64 * 2]
    return out


def quant(x, quant_type, dq):
    packed, state = F.quantize_4bit(x, blocksize=64, compress_statistics=dq, quant_type=quant_type)
    rec = {"packed": packed.reshape(-1).contiguous(), "quant_map": state.code.float().contiguous()}
    if dq:
        rec["absmax"] = state.absmax.contiguous()
        rec["nested_absmax"] = state.state2.absmax.contiguous()
        rec["nested_quant_map"] = state.state2.code.contiguous()
        rec["offset"] = state.offset.reshape(1).float().contiguous()
    else:
        rec["absmax"] = state.absmax.contiguous()
    rec["dequant"] = F.dequantize_4bit(packed, state).float().reshape(-1).contiguous()
    return rec


def blockwise():
    tensors = {}
    for name, x in cases().items():
        tensors[f"{name}.input"] = x.contiguous()
        for tag, qt, dq in [("nf4dq", "nf4", True), ("nf4", "nf4", False), ("fp4dq", "fp4", True)]:
            for k, v in quant(x, qt, dq).items():
                tensors[f"{name}.{tag}.{k}"] = v
    save_file(tensors, os.path.join(OUT, "blockwise.safetensors"))


def prequantized(arch):
    src = os.path.join(MODELS, arch)
    dst = os.path.join(OUT, f"{arch}-bnb-4bit")
    shutil.rmtree(dst, ignore_errors=True)
    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.float32)
    # Loaded in the checkpoint's own dtype (qwen2's is bfloat16: quant_state dtype bfloat16, embeddings bf16), as
    # transformers users load models.
    model = AutoModelForCausalLM.from_pretrained(src, quantization_config=cfg, device_map="cpu", dtype="auto")
    model.save_pretrained(dst)
    # Goldens from the checkpoint as written (reloaded), in fp32 compute: 16-bit tensors upcast, 4-bit weights
    # dequantized to their quant_state dtype and then cast to fp32, as bitsandbytes does.
    model = AutoModelForCausalLM.from_pretrained(dst, device_map="cpu", dtype=torch.float32)
    model.eval()
    fp32_compute(model)  # fp32 dequantize + F.linear (see bnb_generic.py)
    rows = [json.loads(l) for l in open(os.path.join(src, "data.jsonl"))]
    losses = []
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            logits = model(input_ids=ids).logits.float()[0]
            labels = torch.tensor(r["labels"])
            per = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="none")
            losses.append([float(v) for v in per])
    with open(os.path.join(dst, "losses.json"), "w") as f:
        json.dump({"source": src, "rows": rows, "per_token_losses": losses,
                   "note": "losses[i][t] = CE of logits at t vs labels[t+1]; 0 where the label is -100"}, f, indent=1)


def main():
    torch.set_num_threads(1)
    use_generic_4bit()
    os.makedirs(OUT, exist_ok=True)
    blockwise()
    for arch in ["llama", "gemma", "qwen2"]:
        prequantized(arch)
    print("bitsandbytes", bnb.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
