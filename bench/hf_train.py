"""transformers + PEFT LoRA training speed on the same model and data as Sloth's bench.

Usage: python3 bench/hf_train.py MODEL_DIR DATA.jsonl STEPS [--no-checkpointing] [--load-in-4bit]
--load-in-4bit: QLoRA, bitsandbytes NF4 with double quantization, fp32 compute.
Prints one JSON line: tokens_per_second (steady state, first step excluded), peak_rss_bytes.
"""
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
model_dir, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
ckpt = "--no-checkpointing" not in sys.argv
ids = torch.tensor([json.loads(open(data).readline())["input_ids"]])
if "--load-in-4bit" in sys.argv:
    from transformers import BitsAndBytesConfig
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa", quantization_config=q, device_map="cpu")
else:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
if ckpt:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], lora_dropout=0.0))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
times = []
for s in range(steps):
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step(); opt.zero_grad()
    times.append(time.perf_counter() - t0)
steady = times[1:] if len(times) > 1 else times
tps = ids.shape[1] / (sum(steady) / len(steady))
print(json.dumps({"tool": "transformers+peft" + ("+bitsandbytes" if "--load-in-4bit" in sys.argv else ""), "checkpointing": ckpt, "tokens": ids.shape[1], "tokens_per_second": tps,
                  "loss_first": None, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
