// What kernels_impl.h needs before it is included: INLINE, the scalar exp its tails use, and CAT for the names of
// its per-ISA copies. Shared by kernels.c and the harnesses in bench/ that build a copy of their own.
#ifndef SLOTH_KERNELS_PRELUDE_H
#define SLOTH_KERNELS_PRELUDE_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

// Cephes expf: x = n ln2 + r, |r| <= ln2/2; e^r by a degree-6 polynomial; 2^n through the exponent bits.
// x is clamped to [EXP_LO, EXP_HI] (below, results are ~1e-38 instead of 0, which no sum here can see).
#define EXP_LO (-87.3365478515625f)
#define EXP_HI (88.72283172607421875f)
#define LOG2E (1.44269504088896341f)
#define ROUNDER (12582912.0f) /* 1.5 * 2^23: adding and subtracting it rounds to the nearest integer */
#define LN2_HI (0.693359375f)
#define LN2_LO (-2.12194440e-4f)
#define P0 (1.9875691500e-4f)
#define P1 (1.3981999507e-3f)
#define P2 (8.3334519073e-3f)
#define P3 (4.1665795894e-2f)
#define P4 (1.6666665459e-1f)
#define P5 (5.0000001201e-1f)

static inline float scalar_exp(float x) {
    x = fminf(fmaxf(x, EXP_LO), EXP_HI);
    float n = (x * LOG2E + ROUNDER) - ROUNDER;
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float p = P0;
    p = p * r + P1;
    p = p * r + P2;
    p = p * r + P3;
    p = p * r + P4;
    p = p * r + P5;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

#endif
