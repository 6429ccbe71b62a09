// Attention's product kernel (sloth_gemm's AVX-512 copy, Sources/CSlothKernels/kernels_impl.h) as it is, against
// its previous form (K in chunks of 256, B read in place: GEMM_KC 256, GEMM_PACK 0), at attention's shapes for the
// bench model (G Q = 192 stacked query rows, 512 keys, head dim 64). One thread. Operands rotate over COPIES (16)
// copies of 4 MiB so that they come from L2 / L3 as in a training step (-DCOPIES=1 keeps them hot). The two forms
// alternate in 15 pairs; prints each one's best rate and the median (and range) of the paired time ratios.
// Build: clang -O2 -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma bench/attention_gemm.c -o /tmp/attention_gemm -lm
// Run:   taskset -c 1 /tmp/attention_gemm
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../Sources/CSlothKernels/kernels_prelude.h"
#define W 16
#define ROWS 6
#define COLV 4
#ifndef NOW_ROWS
#define GEMM_KC 256
#define GEMM_PACK 0
#endif
#define NAME(x) CAT(x, before)
#include "../Sources/CSlothKernels/kernels_impl.h"
#undef NAME
// With -DNOW_ROWS= -DNOW_COLV= the first form is the kernel as it is (6 x 4 vectors) and the second the same with
// another register block. Stop 20, 15 pairs, median time 6 x 4 / 8 x 3: Q K^T 0.99, P V 0.87, dK 0.83 (8 x 3 is
// slower: 64 and 512 columns leave it 16- and 32-column tails in single vectors); 14 x 2 and 12 x 2 ran ~50 GFLOP/s.
#ifdef NOW_ROWS
#undef ROWS
#undef COLV
#define ROWS NOW_ROWS
#define COLV NOW_COLV
#endif
#define NAME(x) CAT(x, now)
#include "../Sources/CSlothKernels/kernels_impl.h"
#ifndef COPIES
#define COPIES 16
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
int main(void) {
    const long size = 1 << 20;
    float *A = aligned_alloc(64, 4 * size * COPIES), *B = aligned_alloc(64, 4 * size * COPIES), *C = aligned_alloc(64, 4 * size);
    for (long i = 0; i < size * COPIES; i++) { A[i] = 1e-3f * (i % 17); B[i] = 1e-3f * (i % 13); }
    for (long i = 0; i < size; i++) C[i] = 0;
    // (name, m, n, k, a(i, k) = A[i * ai + k * ak], ldb, ldc): forward's two products and backward's transposed one
    // (backward's others have the same shapes as these).
    struct { const char *name; int m, n, k; long ai, ak; int ldb, ldc; } s[] = {
        {"S = Q K^T     192 x 512 x  64", 192, 512, 64, 64, 1, 2064, 512},
        {"O += P V      192 x  64 x 512", 192, 64, 512, 512, 1, 192, 64},
        {"dK += dP^T Q  512 x  64 x 192", 512, 64, 192, 1, 512, 64, 192},
    };
    for (int q = 0; q < 3; q++) {
        double ratio[15], best[2] = {1e9, 1e9};
        for (int rep = 0; rep < 15; rep++) {
            double t[2];
            for (int form = 0; form < 2; form++) {
                double t0 = now();
                for (int it = 0; it < 64; it++) {
                    const float *a = A + (it % COPIES) * size, *b = B + ((it * 7) % COPIES) * size;
                    if (form == 0) gemm_before(C, s[q].ldc, a, s[q].ai, s[q].ak, b, s[q].ldb, s[q].m, s[q].n, s[q].k, 1.0f, 1);
                    else gemm_now(C, s[q].ldc, a, s[q].ai, s[q].ak, b, s[q].ldb, s[q].m, s[q].n, s[q].k, 1.0f, 1);
                }
                t[form] = (now() - t0) / 64;
                if (t[form] < best[form]) best[form] = t[form];
            }
            ratio[rep] = t[0] / t[1];
        }
        qsort(ratio, 15, sizeof(double), cmp);
        double f = 2.0 * s[q].m * s[q].n * s[q].k;
        printf("%s: before %5.1f, now %5.1f GFLOP/s (best); time before / now median %.3f (%.3f-%.3f)\n", s[q].name,
               f / best[0] / 1e9, f / best[1] / 1e9, ratio[7], ratio[0], ratio[14]);
    }
    return 0;
}
