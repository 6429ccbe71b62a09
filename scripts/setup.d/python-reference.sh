#!/usr/bin/env bash
# Installs the pinned Python reference tools (torch CPU, transformers, peft...) used by the interop tests
# (Sloth's adapters checked in PEFT, 4-bit checkpoints in bitsandbytes). Skips cleanly (tests then skip) when they cannot be installed.
# Set SLOTH_SKIP_PYTHON=1 to skip.
set -u
cd "$(dirname "$0")/../.."
[ "${SLOTH_SKIP_PYTHON:-0}" = "1" ] && { echo "python reference tools: skipped (SLOTH_SKIP_PYTHON=1)"; exit 0; }
if python3 -c "import torch, transformers, peft, safetensors" 2>/dev/null; then
  if ! python3 -c "import bitsandbytes" 2>/dev/null; then
    pip install -q "$(grep '^bitsandbytes==' scripts/golden/requirements-quant.txt)" >/dev/null 2>&1 \
      || echo "python reference tools: bitsandbytes could not be installed; the 4-bit interop tests will be skipped"
  fi
  echo "python reference tools: present"; exit 0
fi
echo "python reference tools: installing torch (CPU), transformers, peft (pinned in scripts/golden/requirements-models.txt)"
whl=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1)
if [ -n "$whl" ]; then pip install -q "$whl" >/dev/null 2>&1; else
  pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu >/dev/null 2>&1; fi
grep -v '^torch==' scripts/golden/requirements-models.txt | pip install -q -r /dev/stdin >/dev/null 2>&1
pip install -q "$(grep '^bitsandbytes==' scripts/golden/requirements-quant.txt)" >/dev/null 2>&1
if python3 -c "import torch, transformers, peft, safetensors" 2>/dev/null; then
  echo "python reference tools: installed"
else
  echo "python reference tools: could not be installed; the PEFT interop tests will be skipped"
fi
exit 0
