#!/usr/bin/env python3
"""Build Sloth's demo model (models/demo/) and demo fine-tuning data (data/).

Everything is made here, with no download:

1. a procedurally generated English corpus of tiny stories, simple facts and sums;
2. a byte-level BPE tokenizer (HF `tokenizers`, 512 tokens, `<pad>`=0 `<s>`=1 `</s>`=2) that
   prepends `<s>` like Llama 3's, plus tokenizer_config.json with a small chat template;
3. a 4-layer Llama (hidden 128, 4 heads, 2 kv heads, intermediate 256, tied embeddings)
   pre-trained on the corpus with PyTorch for a fixed number of steps (about 4-5 minutes on
   2 CPU threads), saved as BF16 safetensors;
4. data/demo.jsonl (+ demo-text.jsonl, demo-eval*.jsonl): a chat-style task the base never saw,
   "User: Tell me about Tom and his red cat.\\nAssistant:" -> " Tom has a red cat. The cat likes
   to sleep.", pre-tokenized with the prompt masked (-100);
5. a check: a 30-step PEFT LoRA run (r=8, alpha 16, all linear layers, lr 2e-3, batch 8) on
   data/demo.jsonl, reporting the loss it reaches and a generation before/after.

Run from the repository root:  python3 scripts/golden/models/make_demo.py
(`--steps` / `--threads` change the pre-training; `--skip-pretrain` re-does only data + check.)
Pinned versions: scripts/golden/requirements-models.txt
"""

import argparse
import json
import math
import os
import random
import shutil
import tempfile
import time

import torch

MODEL_DIR = "models/demo"
DATA_DIR = "data"

NAMES_HIS = ["Tom", "Ben", "Sam", "Max", "Leo", "Jack", "Finn", "Noah"]
NAMES_HER = ["Anna", "Lily", "Mia", "Emma", "Zoe", "Ruby", "Lucy", "Nora"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "brown", "pink"]
ANIMALS = {  # animal -> what it likes to do (a fact the base model learns)
    "cat": "sleep", "dog": "run", "bird": "sing", "fish": "swim",
    "horse": "jump", "duck": "quack", "rabbit": "hop", "cow": "eat grass",
}
PLACES = ["park", "school", "garden", "river", "forest", "beach", "farm", "market"]
FOODS = ["apples", "bread", "cake", "soup", "rice", "cheese", "pears", "milk"]
FEELINGS = ["happy", "tired", "glad", "sleepy", "excited"]
FACTS = [
    "The sky is blue.", "Grass is green.", "Snow is white.", "The sun is hot.",
    "Ice is cold.", "Fish live in water.", "Birds can fly.", "Cows give milk.",
    "A week has seven days.", "A year has twelve months.", "Night is dark.",
    "Bees make honey.", "Rain is wet.", "Fire is hot.",
]

TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def pronoun(name):
    return "his" if name in NAMES_HIS else "her"


def story(rng):
    """One tiny story about a child and a pet, in 3-6 sentences."""
    name = rng.choice(NAMES_HIS + NAMES_HER)
    color = rng.choice(COLORS)
    animal = rng.choice(list(ANIMALS))
    place = rng.choice(PLACES)
    s = [f"{name} has a {color} {animal}.", f"The {animal} likes to {ANIMALS[animal]}."]
    if rng.random() < 0.4:
        s.insert(0, f"This is a story about {name} and {pronoun(name)} {color} {animal}.")
    if rng.random() < 0.8:
        s.append(f"One day, {name} went to the {place} with {pronoun(name)} {animal}.")
        if rng.random() < 0.7:
            s.append(f"At the {place}, {name} ate some {rng.choice(FOODS)}.")
    if rng.random() < 0.5:
        friend = rng.choice([n for n in NAMES_HIS + NAMES_HER if n != name])
        s.append(f"{friend} saw the {color} {animal} and smiled.")
    s.append(f"{name} was {rng.choice(FEELINGS)}.")
    return " ".join(s)


def document(rng):
    r = rng.random()
    if r < 0.7:
        return story(rng)
    if r < 0.85:
        return " ".join(rng.sample(FACTS, 3))
    out = []
    for _ in range(3):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        out.append(f"{a} + {b} = {a + b}.")
    return " ".join(out)


def corpus(n, seed):
    rng = random.Random(seed)
    return [document(rng) for _ in range(n)]


def build_tokenizer(texts, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A:0", pair="<s> $A:0 <s>:1 $B:1", special_tokens=[("<s>", bos)]
    )
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
        "chat_template": TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return tok


def model_config(vocab, tok):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        initializer_range=0.02,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
        pad_token_id=tok.token_to_id("<pad>"),
        attention_bias=False,
        mlp_bias=False,
    )


def pack(tok, texts, seq):
    """Concatenates `<s> text </s>` documents and cuts them into rows of seq+1 tokens."""
    eos = tok.token_to_id("</s>")
    stream = []
    for enc in tok.encode_batch(texts):
        stream.extend(enc.ids)
        stream.append(eos)
    n = len(stream) // (seq + 1)
    return torch.tensor(stream[: n * (seq + 1)]).view(n, seq + 1)


def lm_loss(model, batch):
    out = model(input_ids=batch[:, :-1])
    return torch.nn.functional.cross_entropy(
        out.logits.reshape(-1, out.logits.shape[-1]).float(), batch[:, 1:].reshape(-1)
    )


def pretrain(model, train, steps, batch, lr, max_seconds):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, steps // 20)

    def lr_at(i):
        if i < warm:
            return (i + 1) / warm
        p = (i - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(7)
    t0 = time.time()
    history = []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, train.shape[0], (batch,), generator=g)
        loss = lm_loss(model, train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            print(f"pretrain step {step:4d}  loss {loss.item():.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                  f"{time.time() - t0:6.1f}s", flush=True)
        if time.time() - t0 > max_seconds:
            print(f"warning: stopped at step {step + 1} after {max_seconds}s (--max-seconds); "
                  "the result is not reproducible bit for bit", flush=True)
            break
    model.eval()
    return history, time.time() - t0


@torch.no_grad()
def eval_loss(model, val):
    losses = [lm_loss(model, val[i : i + 32]).item() * len(val[i : i + 32]) for i in range(0, len(val), 32)]
    return sum(losses) / len(val)


@torch.no_grad()
def greedy(model, tok, prompt_ids, n=40):
    ids = list(prompt_ids)
    eos = tok.token_to_id("</s>")
    for _ in range(n):
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        ids.append(nxt)
        if nxt == eos:
            break
    return tok.decode(ids[len(prompt_ids):], skip_special_tokens=False)


def finetune_rows(tok, seed):
    """All (name, color, animal) combinations, shuffled: chat-style prompt -> completion."""
    combos = [(n, c, a) for n in NAMES_HIS + NAMES_HER for c in COLORS for a in ANIMALS]
    random.Random(seed).shuffle(combos)
    rows = []
    eos = tok.token_to_id("</s>")
    for name, color, animal in combos:
        prompt = f"User: Tell me about {name} and {pronoun(name)} {color} {animal}.\nAssistant:"
        completion = f" {name} has a {color} {animal}. The {animal} likes to {ANIMALS[animal]}."
        p = tok.encode(prompt).ids  # <s> + prompt
        c = tok.encode(completion, add_special_tokens=False).ids + [eos]
        whole = tok.encode(prompt + completion + "</s>").ids
        assert whole == p + c, (prompt, completion)
        assert len(p + c) <= 64
        rows.append({
            "text": {"prompt": prompt, "completion": completion},
            "ids": {"input_ids": p + c, "labels": [-100] * len(p) + c},
            "messages": [{"role": "user", "content": f"Tell me about {name} and {pronoun(name)} {color} {animal}."},
                         {"role": "assistant", "content": completion[1:]}],
        })
    return rows


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def check_template(rows, tok_dir):
    """The chat template renders exactly the prompt + completion the data was made from."""
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(tok_dir)
    r = rows[0]
    text = t.apply_chat_template(r["messages"], tokenize=False)
    want = "<s>" + r["text"]["prompt"] + r["text"]["completion"] + "</s>\n"
    assert text == want, (text, want)
    gen = t.apply_chat_template(r["messages"][:1], tokenize=False, add_generation_prompt=True)
    assert gen == "<s>" + r["text"]["prompt"], gen
    ids = t(gen, add_special_tokens=False)["input_ids"]
    n_prompt = sum(1 for x in r["ids"]["labels"] if x == -100)
    assert ids == r["ids"]["input_ids"][:n_prompt], (ids, r["ids"]["input_ids"][:n_prompt])
    print("chat template renders the data rows exactly (checked with transformers' apply_chat_template)")


def collate(rows, pad):
    t = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), t), pad)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    labels = torch.full((len(rows), t), -100)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(r["labels"])
    return ids, mask, labels


def finetune_check(model_dir, train_rows, eval_rows, tok, prompts):
    """30 PEFT LoRA steps (r=8, alpha 16, all linear, AdamW lr 2e-3 constant, batch 8, in order)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    pm = get_peft_model(base, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    pad = tok.token_to_id("<pad>")

    def evaluate():
        pm.eval()
        with torch.no_grad():
            ids, mask, labels = collate(eval_rows, pad)
            return pm(input_ids=ids, attention_mask=mask, labels=labels).loss.item()

    def exact_matches():
        """Greedy completions of the eval prompts that equal the reference completion + </s>."""
        pm.eval()
        hits = 0
        for r in eval_rows:
            n = sum(1 for x in r["labels"] if x == -100)
            want = tok.decode(r["input_ids"][n:], skip_special_tokens=False)
            hits += greedy(pm, tok, r["input_ids"][:n], len(r["input_ids"]) - n + 2) == want
        return hits

    before = [greedy(pm, tok, p, 24) for p in prompts]
    exact_before = exact_matches()
    eval_before = evaluate()
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0)
    losses = []
    pm.train()
    for step in range(30):
        b = [train_rows[(step * 8 + i) % len(train_rows)] for i in range(8)]
        ids, mask, labels = collate(b, pad)
        loss = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    eval_after = evaluate()
    pm.eval()
    after = [greedy(pm, tok, p, 24) for p in prompts]
    return {"losses": losses, "eval_before": eval_before, "eval_after": eval_after,
            "exact_before": exact_before, "exact_after": exact_matches(), "eval_rows": len(eval_rows),
            "before": before, "after": after}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000, help="pre-training steps (default %(default)s)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: deterministic, and on a shared 2-core machine faster than 2)")
    ap.add_argument("--max-seconds", type=float, default=600, help="safety cap on pre-training time")
    ap.add_argument("--skip-pretrain", action="store_true", help="keep models/demo, redo data + check")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)

    texts = corpus(20000, seed=1)
    val_texts = corpus(400, seed=2)
    tmp = tempfile.mkdtemp(prefix="sloth-demo-")
    from tokenizers import Tokenizer
    if args.skip_pretrain:
        tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    else:
        tok = build_tokenizer(texts, tmp)
    vocab = tok.get_vocab_size()
    print(f"corpus: {len(texts)} documents, tokenizer vocab {vocab}")
    print("sample:", texts[0])
    print("tokens:", tok.encode(texts[0]).tokens[:24])

    stats = {}
    if not args.skip_pretrain:
        from transformers import AutoModelForCausalLM

        cfg = model_config(vocab, tok)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
        train = pack(tok, texts, args.seq)
        val = pack(tok, val_texts, args.seq)
        print(f"train rows {tuple(train.shape)} ({train.numel()} tokens), val rows {tuple(val.shape)}; "
              f"params {sum(p.numel() for p in model.parameters())}")
        init_val = eval_loss(model, val)
        hist, secs = pretrain(model, train, args.steps, args.batch, args.lr, args.max_seconds)
        stats = {"steps": len(hist), "seconds": round(secs, 1), "val_loss_init": init_val,
                 "train_loss_last50": sum(hist[-50:]) / len(hist[-50:]),
                 "val_loss_fp32": eval_loss(model, val)}
        model.to(torch.bfloat16).save_pretrained(tmp)
        gc = os.path.join(tmp, "generation_config.json")
        if os.path.exists(gc):
            os.remove(gc)
        with open(gc, "w") as f:
            json.dump({"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
                       "pad_token_id": cfg.pad_token_id, "do_sample": False, "max_new_tokens": 48}, f, indent=2)
            f.write("\n")
        # Swap the finished folder in (atomic per file; README is written last).
        os.makedirs(MODEL_DIR, exist_ok=True)
        for fn in os.listdir(tmp):
            os.replace(os.path.join(tmp, fn), os.path.join(MODEL_DIR, fn))
        reloaded = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32, attn_implementation="eager")
        stats["val_loss_bf16"] = eval_loss(reloaded, val)
        print(f"pre-training: {stats}")
        samples = {}
        for p in ["Tom has", "The dog likes to", "Mia went to the", "3 + 4 =", "Snow is"]:
            samples[p] = greedy(reloaded, tok, tok.encode(p).ids, 30)
            print(f"  {p!r} -> {samples[p]!r}")
        stats["samples"] = samples
        with open(os.path.join(MODEL_DIR, "pretrain.json"), "w") as f:
            json.dump(stats, f, indent=2)
            f.write("\n")
    shutil.rmtree(tmp, ignore_errors=True)

    # Fine-tuning data: 200 train rows, 40 eval rows, the rest unused (held out for demos).
    rows = finetune_rows(tok, seed=3)
    os.makedirs(DATA_DIR, exist_ok=True)
    train_rows, eval_rows = rows[:200], rows[200:240]
    write_jsonl(os.path.join(DATA_DIR, "demo.jsonl"), [r["ids"] for r in train_rows])
    write_jsonl(os.path.join(DATA_DIR, "demo-text.jsonl"), [r["text"] for r in train_rows])
    write_jsonl(os.path.join(DATA_DIR, "demo-eval.jsonl"), [r["ids"] for r in eval_rows])
    write_jsonl(os.path.join(DATA_DIR, "demo-eval-text.jsonl"), [r["text"] for r in eval_rows])
    lens = [len(r["ids"]["input_ids"]) for r in train_rows]
    print(f"data/demo.jsonl: {len(train_rows)} rows, tokens per row {min(lens)}..{max(lens)}; "
          f"data/demo-eval.jsonl: {len(eval_rows)} rows")
    check_template(rows, MODEL_DIR)

    prompts = [r["ids"]["input_ids"][: sum(1 for x in r["ids"]["labels"] if x == -100)] for r in eval_rows[:3]]
    ft = finetune_check(MODEL_DIR, [r["ids"] for r in train_rows], [r["ids"] for r in eval_rows], tok, prompts)
    print("fine-tune losses: " + " ".join(f"{x:.3f}" for x in ft["losses"]))
    print(f"eval loss before {ft['eval_before']:.4f} after {ft['eval_after']:.4f}; exact greedy completions "
          f"{ft['exact_before']}/{ft['eval_rows']} before, {ft['exact_after']}/{ft['eval_rows']} after")
    for r, b, a in zip(eval_rows[:3], ft["before"], ft["after"]):
        print(f"  {r['text']['prompt']!r}\n    before: {b!r}\n    after:  {a!r}")
    with open(os.path.join(MODEL_DIR, "finetune_check.json"), "w") as f:
        json.dump(ft, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
