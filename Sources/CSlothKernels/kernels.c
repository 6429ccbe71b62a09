// See include/sloth_kernels.h. kernels_impl.h is compiled three times on x86-64 (AVX-512 with 16 lanes,
// AVX2+FMA with 8, the SSE2 baseline with 4) and the exported functions pick a copy from the CPU once.
// Elsewhere one copy with 4 lanes is built for the compiler's default target.
#include "sloth_kernels.h"
#include "kernels_prelude.h"

float sloth_exp(float x) { return scalar_exp(x); }

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define X86 1
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#define W 16
#define ROWS 6
#define COLV 4
#define NAME(x) CAT(x, avx512)
#include "kernels_impl.h"
#undef W
#undef ROWS
#undef COLV
#undef NAME
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define W 8
#define ROWS 4
#define COLV 2
#define NAME(x) CAT(x, avx2)
#include "kernels_impl.h"
#undef W
#undef ROWS
#undef COLV
#undef NAME
#pragma clang attribute pop
#endif

#define W 4
#define ROWS 4
#define COLV 2
#define NAME(x) CAT(x, base)
#include "kernels_impl.h"
#undef W
#undef ROWS
#undef COLV
#undef NAME

// 2: AVX-512, 1: AVX2+FMA, 0: baseline. Detected on first use (benign race: every thread computes the same).
static int level = -1;
static int isa(void) {
    if (level < 0) {
#ifdef X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            level = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            level = 1;
        else
#endif
            level = 0;
    }
    return level;
}

int sloth_kernels_set_level(int requested) {
    int before = isa();
    static int best = -1;
    if (best < 0) best = before;
    level = requested < 0 ? best : (requested > best ? best : requested);
    return before;
}

#ifdef X86
#define DISPATCH(f, ...)                                        \
    switch (isa()) {                                            \
    case 2: return CAT(f, avx512)(__VA_ARGS__);                 \
    case 1: return CAT(f, avx2)(__VA_ARGS__);                   \
    default: return CAT(f, base)(__VA_ARGS__);                  \
    }
#else
#define DISPATCH(f, ...) return CAT(f, base)(__VA_ARGS__);
#endif

void sloth_softmax_grad_row(float *s, float *dp, int n, int first, int last, float lse, float d) {
    DISPATCH(softmax_grad_row, s, dp, n, first, last, lse, d)
}
float sloth_cross_entropy_row(float *row, int v, int target, float scale, int grad) {
    DISPATCH(cross_entropy_row, row, v, target, scale, grad)
}
void sloth_swiglu_forward(float *out, const float *gate, const float *up, long n) { DISPATCH(swiglu_forward, out, gate, up, n) }
void sloth_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    DISPATCH(swiglu_backward, dgate, dup, dout, gate, up, n)
}

float sloth_rmsnorm_row(float *y, const float *x, const float *w, int d, float eps, float offset) {
    DISPATCH(rmsnorm_row, y, x, w, d, eps, offset)
}
void sloth_rmsnorm_backward_row(float *dx, const float *dy, const float *x, const float *w, int d, float r, float offset, int accumulate) {
    DISPATCH(rmsnorm_backward_row, dx, dy, x, w, d, r, offset, accumulate)
}

void sloth_gemm(float *c, int ldc, const float *a, long ai, long ak, const float *b, int ldb, int m, int n, int k, float alpha, int accumulate) {
    DISPATCH(gemm, c, ldc, a, ai, ak, b, ldb, m, n, k, alpha, accumulate)
}

float sloth_softmax_block_row(float *x, int n, int first, int last, float *m, float *l) {
    DISPATCH(softmax_block_row, x, n, first, last, m, l)
}

int sloth_kernels_level(void) { return isa(); }

long sloth_claim(long *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

const char *sloth_kernels_isa(void) {
    static const char *names[] = {"baseline (SSE2 / 4 lanes)", "AVX2+FMA (8 lanes)", "AVX-512 (16 lanes)"};
    return names[isa()];
}

void sloth_lowrank_dots(float *out, int ldo, const float *x, int ldx, const float *w, int ldw, int rows, int r, int k, float alpha) {
    DISPATCH(lowrank_dots, out, ldo, x, ldx, w, ldw, rows, r, k, alpha)
}
void sloth_lowrank_update(float *y, int ldy, const float *base, int ldb, const float *c, int ldc, const float *w, int ldw, int rows, int r,
                          int width, float alpha) {
    DISPATCH(lowrank_update, y, ldy, base, ldb, c, ldc, w, ldw, rows, r, width, alpha)
}
void sloth_lowrank_outer(float *g, int ldg, const float *c, int ldc, const float *x, int ldx, int rows, int r, int width, float alpha) {
    DISPATCH(lowrank_outer, g, ldg, c, ldc, x, ldx, rows, r, width, alpha)
}
void sloth_lowrank_dots_outer(float *out, int ldo, const float *wr, int ldw, float alpha_dots, float *g, int ldg, const float *c, int ldc,
                              float alpha_outer, const float *x, int ldx, int rows, int r, int width) {
    DISPATCH(lowrank_dots_outer, out, ldo, wr, ldw, alpha_dots, g, ldg, c, ldc, alpha_outer, x, ldx, rows, r, width)
}

#if defined(__x86_64__)
#include <xmmintrin.h>
#include <pmmintrin.h>
#endif
int sloth_flush_denormals(int on) {
#if defined(__x86_64__)
    unsigned int csr = _mm_getcsr();
    unsigned int bits = 0x8040; /* FTZ (bit 15) | DAZ (bit 6) */
    _mm_setcsr(on ? (csr | bits) : (csr & ~bits));
    return (csr & bits) == bits;
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    int was = (fpcr >> 24) & 1;
    fpcr = on ? (fpcr | (1UL << 24)) : (fpcr & ~(1UL << 24)); /* FZ */
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
    return was;
#else
    (void)on;
    return 0;
#endif
}
