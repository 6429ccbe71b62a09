// Prototype: a packed, cache-blocked single-precision product for the frozen linears' shapes, against OpenBLAS on
// one thread. C (M x N) = A (M x K, row-major) B', B' = W^T (forward: W is N x K) or W (backward: W is K x N).
// B' is packed once per product into 64-column slivers ([N/64][K][64], zero-padded), A into 6-row slivers of each
// MC x KC block ([MC/6][KC][6]); the 6 x 64 register block (the same block as sloth_gemm in
// Sources/CSlothKernels/kernels_impl.h) reuses the A block (MC x KC, in L2) across the B slivers.
// Status (stop 18): results agree with OpenBLAS to ~1e-5 at every shape. Idle machine, one thread pinned to cpu 1,
// alternated best-of-6, mean over the 8 decoder shapes (OpenBLAS / packed, GFLOP/s; -DKC= -DMC= override):
// KC 128: MC 96 91.2 / 82.5, MC 240 90.2 / 79.1, MC 480 76.8 / 65.6; KC 256: MC 96 90.3 / 84.0, MC 240 95.1 / 84.2,
// MC 480 75.2 / 70.2: 88-93% of OpenBLAS, because each KC block reads and rewrites all of C (4.7 MB, out of cache).
// With the whole K in one block (KC 1536, so C is written once; A block 96 x K and the B sliver K x 64 in L2):
// MC 48 84.7 / 86.6, MC 96 102.7 / 103.1, MC 192 112.0 / 108.3; shape by shape at MC 96, two runs, packed ran
// 0.92-1.15x OpenBLAS (86-114 GFLOP/s). The defaults are now KC 1536, MC 96: on par, not faster; not used by Sloth.
// Stop 19, two threads as Sloth would run it (one packed B shared, 96-row blocks claimed by whichever worker is free;
// against OpenBLAS cut in two halves, single-threaded each, as BLAS.sgemm does; weighted over the 8 decoder shapes,
// harness variants not committed): whole K 158 / 158 and 157 / 162 GFLOP/s; row block outermost with KC 128 to 288 so
// C stays in L2 across K blocks, 140-174 / 142-157; B packed once outside the timing, 163 / 175 and 168 / 174 at
// KC 128 (+3-7%, inside this host's noise); A read in place instead of packed (6 row streams), 144 / 125; packing A
// skipped altogether (an upper bound), no faster. The register block reaches 125-133 GFLOP/s per core with its
// operands in L1 (KC <= 128) and 87-127 with a 576-deep B sliver streamed from L2, so what is left between this and
// the cores' FMA peak is the cache traffic of the blocking, not packing or the kernel. Not pursued further here.
// Stop 20: the register block as -DMR= -DNV= (rows x 16 NV columns). 8 x 48 (-DMR=8 -DNV=3) ran 138-160 GFLOP/s
// against OpenBLAS's 142-152 (6 x 64 in the same minutes: 131-153 against 142-149), one thread, the 8 decoder
// shapes: on par still.
// Build: clang -O3 -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma bench/packed_gemm.c -o /tmp/pg -ldl -lm
// Run: OPENBLAS_CORETYPE=SkylakeX taskset -c 1 /tmp/pg [ROWS]
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef float vf __attribute__((vector_size(64)));
typedef float vu __attribute__((vector_size(64), aligned(4)));
#ifndef MR
#define MR 6
#endif
#ifndef NV
#define NV 4
#endif
#define NR (16 * NV)
#ifndef KC
#define KC 1536
#endif
#ifndef MC
#define MC 96
#endif
#ifndef PACKEACH
#define PACKEACH 1
#endif
static inline vf splat(float x) { vf v; for (int i = 0; i < 16; i++) v[i] = x; return v; }

static void pack_b(float *bp, const float *w, int ldw, int trans, int K, int N) {
    int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; p++)
        for (int k = 0; k < K; k++) {
            float *dst = bp + ((long)p * K + k) * NR;
            for (int j = 0; j < NR; j++) {
                int n = p * NR + j;
                dst[j] = n < N ? (trans ? w[(long)n * ldw + k] : w[(long)k * ldw + n]) : 0;
            }
        }
}
static void pack_a(float *ap, const float *a, int lda, int m0, int mc, int k0, int kc) {
    for (int s = 0; s < (mc + MR - 1) / MR; s++)
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < MR; i++) {
                int r = s * MR + i;
                ap[((long)s * kc + k) * MR + i] = r < mc ? a[(long)(m0 + r) * lda + k0 + k] : 0;
            }
}
static inline void micro(float *c, int ldc, const float *ap, const float *bp, int kc, int rows, int cols, int add) {
    vf acc[MR][NV];
    for (int i = 0; i < MR; i++) for (int v = 0; v < NV; v++) acc[i][v] = (vf){0};
    for (int k = 0; k < kc; k++) {
        vf b[NV];
        for (int v = 0; v < NV; v++) b[v] = *(const vf *)(bp + k * NR + 16 * v);
        for (int i = 0; i < MR; i++) {
            vf a = splat(ap[k * MR + i]);
            for (int v = 0; v < NV; v++) acc[i][v] += a * b[v];
        }
    }
    if (rows == MR && cols == NR) {
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++) {
                vu *p = (vu *)(c + (long)i * ldc + v * 16);
                *p = add ? *p + acc[i][v] : acc[i][v];
            }
    } else {
        float t[MR][NR] __attribute__((aligned(64)));
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++) *(vf *)&t[i][v * 16] = acc[i][v];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                float *p = c + (long)i * ldc + j;
                *p = add ? *p + t[i][j] : t[i][j];
            }
    }
}
// bp: packed B' (pack_b); ap: MC x KC scratch.
static void packed_gemm(float *c, int ldc, const float *a, int lda, const float *bp, float *ap, int M, int N, int K) {
    int panels = (N + NR - 1) / NR;
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC;
        for (int m0 = 0; m0 < M; m0 += MC) {
            int mc = M - m0 < MC ? M - m0 : MC;
            pack_a(ap, a, lda, m0, mc, k0, kc);
            for (int p = 0; p < panels; p++) {
                const float *b = bp + ((long)p * K + k0) * NR;
                int cols = N - p * NR < NR ? N - p * NR : NR;
                for (int s = 0; s * MR < mc; s++) {
                    int rows = mc - s * MR < MR ? mc - s * MR : MR;
                    micro(c + (long)(m0 + s * MR) * ldc + p * NR, ldc, ap + (long)s * kc * MR, b, kc, rows, cols, k0 > 0);
                }
            }
        }
    }
}
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    void *h = dlopen("libopenblas.so.0", RTLD_NOW);
    sgemm_t sgemm = (sgemm_t)dlsym(h, "cblas_sgemm");
    ((void (*)(int))dlsym(h, "openblas_set_num_threads"))(1);
    int M = argc > 1 ? atoi(argv[1]) : 2048;
    int shapes[][2] = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}, {100, 70}};
    for (int s = 0; s < 5; s++)
        for (int trans = 1; trans >= 0; trans--) {
            int O = shapes[s][0], I = shapes[s][1];
            int N = trans ? O : I, K = trans ? I : O;  // forward x W^T: N = O, K = I; backward dY W: N = I, K = O
            int m = s == 4 ? 77 : M;
            float *a = malloc(4L * m * K), *w = malloc(4L * O * I), *c0 = malloc(4L * m * N), *c1 = malloc(4L * m * N);
            float *bp = aligned_alloc(64, 4L * ((N + NR - 1) / NR) * NR * K), *ap = aligned_alloc(64, 4L * MC * KC);
            srand(1);
            for (long i = 0; i < (long)m * K; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
            for (long i = 0; i < (long)O * I; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
            #define BLAS() sgemm(101, 111, trans ? 112 : 111, m, N, K, 1, a, K, w, I, 0, c0, N)
            #define OURS() (PACKEACH ? pack_b(bp, w, I, trans, K, N) : (void)0, packed_gemm(c1, N, a, K, bp, ap, m, N, K))
            BLAS(); OURS();
            double err = 0, mag = 0;
            for (long i = 0; i < (long)m * N; i++) { err = fmax(err, fabs(c0[i] - c1[i])); mag = fmax(mag, fabs(c0[i])); }
            double best[2] = {1e9, 1e9};
            for (int rep = 0; rep < 6; rep++)
                for (int which = 0; which < 2; which++) {
                    int it = 0; double t0 = now();
                    while (now() - t0 < 0.1) { if (which) OURS(); else BLAS(); it++; }
                    double t = (now() - t0) / it;
                    if (t < best[which]) best[which] = t;
                }
            double f = 2.0 * m * N * K;
            printf("%s %5d x %5d x %5d: OpenBLAS %6.1f  packed %6.1f GFLOP/s  max |diff| %.2e (max |C| %.1f)\n",
                   trans ? "x W^T" : "dY W ", m, N, K, f / best[0] / 1e9, f / best[1] / 1e9, err, mag);
            free(a); free(w); free(c0); free(c1); free(bp); free(ap);
        }
    return 0;
}
