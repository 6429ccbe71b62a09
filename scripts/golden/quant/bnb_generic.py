"""bitsandbytes 0.50.2 on CPU, made to compute what its CUDA kernels and its own quantize_4bit mean.

Its C dequantizer for CPU indexes absmax per row instead of per flat block when the CPU has AVX-512 and
in_features % 16 == 0 but % 64 != 0 (e.g. 96 inputs), so it dequantizes with the wrong scales; and in eval mode
`Linear4bit` repacks weights for a bf16 AVX-512 kernel (bf16 compute). `use_generic_4bit()` replaces the first with
bitsandbytes' generic torch implementation (backends/default/ops.py) and `fp32_compute(model)` turns off the second,
so reference numbers do not depend on the machine's CPU.
"""
import torch


def use_generic_4bit():
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code

    def dequantize_4bit(A, absmax, blocksize, quant_type, shape, dtype):
        if A.dtype != torch.uint8:
            A = A.view(torch.uint8)
        code = _get_4bit_code(quant_type, A.device)
        return _dequantize_4bit_compute(A.reshape(-1), absmax, code, blocksize, shape, dtype)

    torch.library.register_kernel("bitsandbytes::dequantize_4bit", "cpu", dequantize_4bit)


def fp32_compute(model):
    """fp32 compute: 16-bit tensors that transformers keeps in the checkpoint's dtype (embeddings, norms of a
    pre-quantized bf16 model, even with dtype=float32) are upcast; 4-bit weights still dequantize to their quant_state
    dtype and are then cast to fp32, as bitsandbytes does."""
    import bitsandbytes as bnb
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
    for p in model.parameters():
        if p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
    return model
