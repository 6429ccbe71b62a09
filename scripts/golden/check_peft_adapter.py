#!/usr/bin/env python3
"""Check that a model + LoRA adapter gives, in PEFT, the logits another tool (Sloth) computed.

Loads the base model folder with transformers (fp32, eager attention), applies the PEFT adapter
folder, runs one row of a pre-tokenized JSONL file and compares the logits with the `logits`
tensor of a safetensors file.

    python3 scripts/golden/check_peft_adapter.py \\
        --model Tests/Fixtures/models/llama --adapter out/adapter \\
        --data Tests/Fixtures/models/llama/data.jsonl --expect-logits out/logits.safetensors

Inputs:
  --model DIR           Hugging Face model folder (config.json + safetensors, any dtype; run in fp32).
  --adapter DIR         PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
                        Omit it to check the base model's logits alone.
  --data FILE           JSONL; each line an object with "input_ids": [int, ...].
  --row N               which line of --data to run (0-based, default 0; blank lines skipped).
  --expect-logits FILE  safetensors holding the logits to check, shape [1, T, V] or [T, V],
                        any float dtype (compared in fp32).
  --key NAME            tensor name in --expect-logits (default "logits").
  --tolerance X         relative tolerance (default 1e-4).

Pass criterion: max|expected - peft| <= tolerance * max(1, max|peft|).

Exit status: 0 match, 1 mismatch, 2 bad input (missing file, malformed data, shape mismatch,
missing Python package). Every failure prints one line that starts with "error:" or "FAIL".
"""

import argparse
import json
import math
import os
import sys


class CheckError(Exception):
    """A problem with the inputs; the message names the file, the field and what to do."""


def fail_input(msg):
    raise CheckError(msg)


def read_row(path, row):
    """Returns the input_ids of line `row` (0-based, blank lines skipped) of a JSONL file."""
    if not os.path.isfile(path):
        fail_input(f"{path}: no such file (pass a JSONL file with --data)")
    seen = -1
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            seen += 1
            if seen != row:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                fail_input(f"{path}:{lineno}: not valid JSON ({e.msg}); each line must be one JSON object")
            if not isinstance(obj, dict) or "input_ids" not in obj:
                fail_input(f"{path}:{lineno}: field \"input_ids\" missing; each line needs \"input_ids\": [int, ...]")
            ids = obj["input_ids"]
            if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                fail_input(f"{path}:{lineno}: field \"input_ids\" must be a non-empty list of integers")
            return ids
    fail_input(f"{path}: has {seen + 1} rows, --row {row} is out of range")


def load_expected(path, key):
    from safetensors import safe_open
    if not os.path.isfile(path):
        fail_input(f"{path}: no such file (pass the logits written by Sloth with --expect-logits)")
    try:
        with safe_open(path, framework="pt") as f:
            keys = list(f.keys())
            if key not in keys:
                fail_input(f"{path}: no tensor \"{key}\" (has: {', '.join(keys) or 'none'}); choose one with --key")
            t = f.get_tensor(key)
    except CheckError:
        raise
    except Exception as e:  # safetensors raises several types for a corrupt header
        fail_input(f"{path}: not a readable safetensors file ({e})")
    if not t.is_floating_point():
        fail_input(f"{path}: tensor \"{key}\" has dtype {t.dtype}; expected a float tensor")
    return t.float()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--data", required=True)
    ap.add_argument("--row", type=int, default=0)
    ap.add_argument("--expect-logits", required=True)
    ap.add_argument("--key", default="logits")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--resize-vocab", type=int, help="model.resize_token_embeddings(N) before loading the adapter (tokens added in training)")
    args = ap.parse_args(argv)

    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM
        if args.adapter:
            from peft import PeftModel
    except ImportError as e:
        print(f"error: missing Python package ({e.name}); pip install -r scripts/golden/requirements-models.txt",
              file=sys.stderr)
        return 2

    try:
        if args.row < 0:
            fail_input(f"--row {args.row}: must be >= 0")
        ids = read_row(args.data, args.row)
        expected = load_expected(args.expect_logits, args.key)
        if not os.path.isfile(os.path.join(args.model, "config.json")):
            fail_input(f"{args.model}: no config.json; --model must be a Hugging Face model folder")
        if args.adapter and not os.path.isfile(os.path.join(args.adapter, "adapter_config.json")):
            fail_input(f"{args.adapter}: no adapter_config.json; --adapter must be a PEFT adapter folder")

        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        try:
            model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                         attn_implementation="eager")
        except Exception as e:
            fail_input(f"{args.model}: transformers could not load the model ({type(e).__name__}: {e})")
        if args.resize_vocab:
            model.resize_token_embeddings(args.resize_vocab)
        vocab = model.get_input_embeddings().weight.shape[0]
        bad = [i for i in ids if i < 0 or i >= vocab]
        if bad:
            fail_input(f"{args.data}: row {args.row} field \"input_ids\" has id {bad[0]} outside [0, {vocab})")
        if args.adapter:
            try:
                model = PeftModel.from_pretrained(model, args.adapter)
            except Exception as e:
                fail_input(f"{args.adapter}: PEFT could not load the adapter ({type(e).__name__}: {e})")
        model.eval()
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([ids])).logits.float()[0]  # (T, V)

        got = expected[0] if expected.dim() == 3 and expected.shape[0] == 1 else expected
        if tuple(got.shape) != tuple(ref.shape):
            fail_input(f"{args.expect_logits}: tensor \"{args.key}\" has shape {list(expected.shape)}, "
                       f"PEFT gives [1, {ref.shape[0]}, {ref.shape[1]}] for row {args.row} of {args.data}")
    except CheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if not torch.isfinite(got).all():
        pos = torch.nonzero(~torch.isfinite(got))[0].tolist()
        print(f"FAIL: expected logits hold a non-finite value at [t={pos[0]}, v={pos[1]}]")
        return 1
    diff = (got - ref).abs()
    max_diff = diff.max().item()
    scale = max(1.0, ref.abs().max().item())
    t, v = divmod(int(diff.argmax().item()), ref.shape[1])
    rel = max_diff / scale
    print(f"max |logit diff| = {max_diff:.3e} at [t={t}, v={v}] (expected {got[t, v].item():.6f}, "
          f"peft {ref[t, v].item():.6f}); max |peft logit| = {ref.abs().max().item():.4f}; "
          f"relative {rel:.3e} (tolerance {args.tolerance:g}); T={ref.shape[0]} V={ref.shape[1]}")
    if not (rel <= args.tolerance) or math.isnan(rel):
        print("FAIL: logits differ from PEFT beyond the tolerance")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
