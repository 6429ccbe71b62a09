"""Writes a random SmolLM-135M-shaped llama folder (config.json + model.safetensors, bf16) and random data.

Usage: python3 bench/make_model.py OUT_DIR [--deep]
--deep: a deep, narrow llama instead (64 layers, D 64, 4 heads, FF 128, vocab 512): its layer checkpoints
outweigh everything else, for bench/offload.sh's memory-cap run.
"""
import json, os, sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
deep = "--deep" in sys.argv
shape = (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=64, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=512, max_position_embeddings=65536) if deep else
         dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
              vocab_size=49152, max_position_embeddings=8192))
cfg = LlamaConfig(**shape, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
model = LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
g = torch.Generator().manual_seed(1)
for T in (512, 2048, 8192):
    ids = torch.randint(3, cfg.vocab_size, (T,), generator=g).tolist()
    with open(os.path.join(out, f"data-{T}.jsonl"), "w") as f:
        f.write(json.dumps({"input_ids": ids}) + "\n")
print("wrote", out)
