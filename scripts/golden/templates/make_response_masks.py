#!/usr/bin/env python3
"""Goldens for --train-on-responses-only: Tests/Fixtures/templates/masking/golden.json.

The labels come from Unsloth's own `train_on_responses_only` (unsloth_zoo 2026.10.9, `dataset_utils.py`, loaded by
path so no GPU package is imported; default force_match=True), applied with `return_function=True` to the ids of
conversations rendered by transformers' `apply_chat_template` and tokenized without special tokens, for:
- the real Llama 3 tokenizer (+ bos <|begin_of_text|>, eos <|eot_id|>) with the llama-3 and chatml templates,
- the demo model's byte-level BPE tokenizer with its own template (User: / Assistant:),
- Mistral's v3 SentencePiece model (HF's LlamaTokenizer conversion) with the mistral template.
Pinned: transformers 5.24.0, tokenizers 0.23.3, torch 2.13.0, unsloth_zoo 2026.10.9.

Run from the repository root (needs scripts/setup.d/tokenizers.sh's files):
    python3 scripts/golden/templates/make_response_masks.py
"""
import glob, importlib.util, json, os, shutil, subprocess, sys, tempfile

ROOT = os.getcwd()
FILES = ".cache/tokenizers/files"
OUT = "Tests/Fixtures/templates/masking/golden.json"
ZOO = "unsloth_zoo==2026.10.9"


def unsloth_dataset_utils():
    d = ".cache/golden/unsloth_zoo"
    if not glob.glob(os.path.join(d, "unsloth_zoo-*.whl")):
        os.makedirs(d, exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", ZOO, "-d", d])
    whl = glob.glob(os.path.join(d, "unsloth_zoo-*.whl"))[0]
    src = os.path.join(d, "dataset_utils.py")
    if not os.path.exists(src):
        import zipfile
        with zipfile.ZipFile(whl) as z, open(src, "wb") as f:
            f.write(z.read("unsloth_zoo/dataset_utils.py"))
    spec = importlib.util.spec_from_file_location("unsloth_dataset_utils", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def folder(name, files, config):
    d = tempfile.mkdtemp()
    for src, dst in files:
        shutil.copy(src, os.path.join(d, dst))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    return d


def main():
    from transformers import AutoTokenizer
    du = unsloth_dataset_utils()
    named = {t["name"]: t["template"] for t in json.load(open("Tests/Fixtures/templates/named.json"))["templates"]}
    convs = json.load(open("Tests/Fixtures/templates/conversations.json"))["conversations"]
    demo_cfg = json.load(open("models/demo/tokenizer_config.json"))
    llama3_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    mistral_cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    cases = [
        ("llama3", [(f"{FILES}/llama3/tokenizer.json", "tokenizer.json")], llama3_cfg, "llama-3", named["llama-3"],
         "<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("llama3", [(f"{FILES}/llama3/tokenizer.json", "tokenizer.json")], llama3_cfg, "chatml", named["chatml"],
         "<|im_start|>user\n", "<|im_start|>assistant\n"),
        ("demo", [("models/demo/tokenizer.json", "tokenizer.json")], {k: v for k, v in demo_cfg.items() if k != "chat_template"}, "demo",
         demo_cfg["chat_template"], "User:", "Assistant:"),
        ("mistral_v3", [(f"{FILES}/mistral_v3/tokenizer.model", "tokenizer.model")], mistral_cfg, "mistral", named["mistral"], "[INST]", "[/INST]"),
    ]
    out = {"source": f"{ZOO} dataset_utils.train_on_responses_only (force_match=True) on transformers apply_chat_template ids",
           "tokenizer_configs": {"llama3": llama3_cfg, "mistral_v3": mistral_cfg}, "cases": []}
    for tok_name, files, cfg, tmpl_name, tmpl, inst, resp in cases:
        print("case", tok_name, tmpl_name, flush=True)
        d = folder(tok_name, files, cfg)
        tok = AutoTokenizer.from_pretrained(d)
        fn = du.train_on_responses_only(None, instruction_part=inst, response_part=resp, tokenizer=tok, return_function=True)
        rows = []
        for cname, conv in convs.items():
            if cname in ("tool_calls", "tool_calls_none_content", "bad_role", "not_alternating", "assistant_first", "system_only", "reasoning"):
                continue
            try:
                text = tok.apply_chat_template(conv, tokenize=False, chat_template=tmpl, add_generation_prompt=False)
            except Exception:
                continue
            ids = tok(text, add_special_tokens=False).input_ids
            labels = fn({"input_ids": [ids]})["labels"][0]
            rows.append({"conversation": cname, "ids": ids, "kept": [i for i, l in enumerate(labels) if l != -100]})
        out["cases"].append({"tokenizer": tok_name, "template": tmpl_name, "chat_template": tmpl, "instruction_part": inst,
                             "response_part": resp, "rows": rows})
        shutil.rmtree(d)
        print(f"{tok_name} / {tmpl_name}: {len(rows)} conversations, {sum(len(r['kept']) for r in rows)} kept labels")
    with open(OUT + ".tmp", "w") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    os.replace(OUT + ".tmp", OUT)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
