// Sloth's SIMD kernels for the passes between matrix products (exp-heavy rows, gated activations).
// One source compiled for AVX-512, AVX2+FMA and the baseline ISA; the loader picks the clone the CPU runs
// (x86-64 Linux; one generic build elsewhere). The scalar Swift versions in SlothCore are the references.
#ifndef SLOTH_KERNELS_H
#define SLOTH_KERNELS_H
#include <stdint.h>

/// e^x for one float, the same polynomial the vector paths use (Cephes expf, ~1 ulp on [-87, 88]).
float sloth_exp(float x);

/// Online-softmax step for one row and one block of keys: x[first..last] = exp(x - m') (0 elsewhere in [0, n)),
/// m' = max(*m, max of the range); *l = *l * f + sum, *m = m'; returns f = exp(*m - m') (0 when *m was -inf), the
/// factor that rescales what the row accumulated over earlier blocks.
float sloth_softmax_block_row(float *x, int n, int first, int last, float *m, float *l);

/// Attention backward row: p = exp(s - lse) on [first, last] (0 elsewhere) into s; ds = p * (dp - d) into dp.
void sloth_softmax_grad_row(float *s, float *dp, int n, int first, int last, float lse, float d);

/// Cross-entropy row of v logits: returns logsumexp; with grad, row becomes (softmax - onehot(target)) * scale.
float sloth_cross_entropy_row(float *row, int v, int target, float scale, int grad);

/// out = silu(gate) * up over n elements.
void sloth_swiglu_forward(float *out, const float *gate, const float *up, long n);

/// dGate, dUp from dOut for out = silu(gate) * up.
void sloth_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

/// RMSNorm row: y = x * r * (w + offset), r = 1 / sqrt(mean(x^2) + eps); returns r.
float sloth_rmsnorm_row(float *y, const float *x, const float *w, int d, float eps, float offset);

/// RMSNorm backward row: dx (assigned, or added when accumulate) from dy, x, w and the saved r.
void sloth_rmsnorm_backward_row(float *dx, const float *dy, const float *x, const float *w, int d, float r, float offset, int accumulate);

/// C (m x n) = alpha * A' B, or C += alpha * A' B when accumulate; A' (m x k) reads a[i * ai + kk * ak] (ai = lda,
/// ak = 1 for A; ai = 1, ak = lda for A^T); B (k x n) row-major with row stride ldb. Single-threaded; register-blocked
/// for attention's products, where k or n is the head dimension.
void sloth_gemm(float *c, int ldc, const float *a, long ai, long ak, const float *b, int ldb, int m, int n, int k, float alpha, int accumulate);

/// LoRA's low-rank products (r small), single-threaded, row-major with leading dimensions:
/// out (rows x r) = alpha * X (rows x k) W^T, W (r x k).
void sloth_lowrank_dots(float *out, int ldo, const float *x, int ldx, const float *w, int ldw, int rows, int r, int k, float alpha);
/// Y (rows x width) = Base + alpha * C (rows x r) W (r x width); base NULL for none, base == y to accumulate.
void sloth_lowrank_update(float *y, int ldy, const float *base, int ldb, const float *c, int ldc, const float *w, int ldw, int rows, int r,
                          int width, float alpha);
/// G (r x width) += alpha * C^T X, C (rows x r), X (rows x width).
void sloth_lowrank_outer(float *g, int ldg, const float *c, int ldc, const float *x, int ldx, int rows, int r, int width, float alpha);

/// out (rows x r) = alpha_dots X Wr^T, Wr (r x width), and G (r x width) += alpha_outer C^T X, C (rows x r), for one X
/// (rows x width) read once: LoRA's backward g = s dY B with dB^T += s xa^T dY.
void sloth_lowrank_dots_outer(float *out, int ldo, const float *wr, int ldw, float alpha_dots, float *g, int ldg, const float *c, int ldc,
                              float alpha_outer, const float *x, int ldx, int rows, int r, int width);

/// Flushes denormal results and inputs to zero on the calling thread (x86 MXCSR FTZ|DAZ, arm64 FPCR FZ), or restores
/// IEEE gradual underflow; returns whether the flush was on before. Attention's probabilities below ~1e-38 cost a
/// microcode assist per denormal operand on Intel CPUs; their contribution is below fp32's resolution of the sums.
int sloth_flush_denormals(int on);

/// Returns *counter and adds 1 to it, atomically: workers claiming the next task of a shared list.
long sloth_claim(long *counter);

/// The copy in use: 0 baseline, 1 AVX2+FMA, 2 AVX-512.
int sloth_kernels_level(void);

/// Chooses the copy (0 baseline, 1 AVX2+FMA, 2 AVX-512; -1 the best this CPU runs), capped at what the CPU
/// runs; returns the level before. For tests of every copy; not thread-safe against running kernels.
int sloth_kernels_set_level(int level);

/// Name of the clone the loader chose ("avx512", "avx2", "baseline").
const char *sloth_kernels_isa(void);

#endif
