"""PyTorch's own GEMM (MKL on x86) at the bench model's training shapes, the same shapes and weighting as bench/gemm.c:
q/k/v/o, gate/up/down x 30 layers and lm_head once, forward x W^T and backward dY W, each timed >= 0.3 s.
This is the rate transformers + PEFT's linears can reach on this machine. Usage: gemm_torch.py TOKENS [THREADS]."""
import sys
import time

import torch

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
shapes = [(576, 576, 2), (192, 576, 2), (1536, 576, 2), (576, 1536, 1), (49152, 576, 0)]  # (out, in, per layer)
flops = seconds = 0.0
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {N} tokens")
for out, inp, per_layer in shapes:
    count = 1 if per_layer == 0 else 30 * per_layer
    x = torch.randn(N, max(inp, out))
    w = torch.randn(out, inp)
    for backward in (False, True):
        def run():
            return x[:, :out] @ w if backward else x[:, :inp] @ w.T
        run()
        iterations, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.3:
            run()
            iterations += 1
        t = (time.perf_counter() - start) / iterations
        f = 2.0 * N * out * inp
        name = "dY W  " if backward else "x W^T "
        print(f"  {name} {N:5d} x {inp if backward else out:5d} x {out if backward else inp:5d}: {f / t / 1e9:6.1f} GFLOP/s")
        flops += count * f
        seconds += count * t
print(f"  weighted: {flops / seconds / 1e9:.1f} GFLOP/s")
