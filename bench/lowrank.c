// LoRA's low-rank products on one linear (N tokens, I in, O out, rank 8), single-threaded, BLAS against Sloth's
// kernels (Sources/CSlothKernels), alternated and best-of-30 so both see the same machine:
//   each product alone (x A^T, y += s xa B^T, dB += s dy^T xa, g = s dy B, dA += g^T x, dx += g A, the fold W + s B A),
//   and the whole LoRA linear forward + backward as it ran before (six BLAS products besides the two base products)
//   and as it runs now (s B A folded into W for both base products when N (I + O) >= 2 I O, three kernel products).
// Usage: lowrank N I O (bench/lowrank.sh runs the bench model's shapes).
#include <cblas.h>
#undef I
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "sloth_kernels.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float *filled(long n, float f) { float *p = malloc(4 * n); for (long i = 0; i < n; i++) p[i] = sinf(i * f); return p; }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: lowrank N I O\n"); return 2; }
    openblas_set_num_threads(1);
    const int N = atoi(argv[1]), In = atoi(argv[2]), O = atoi(argv[3]), R = 8;
    const float s = 2;
    float *x = filled((long)N * In, .1f), *dy = filled((long)N * O, .3f), *y = filled((long)N * O, .2f), *dx = filled((long)N * In, .4f);
    float *W = filled((long)O * In, .01f), *Wp = filled((long)O * In, .02f), *A = filled(R * In, .7f), *B = filled(O * R, .9f);
    float *Bt = filled(R * O, .5f), *xa = filled(N * R, .6f), *g = filled(N * R, .8f), *dA = filled(R * In, .1f), *dB = filled(O * R, .1f);
    float *t = filled(R * O, .1f);
    const int fold = (long)N * (In + O) >= 2L * In * O;
    enum { P = 16 };
    const char *names[P] = {"xa = x A^T", "", "y += s xa B^T", "", "dB += s dy^T xa", "", "g = s dy B", "", "dA += g^T x", "",
                            "dx += g A", "", "W' = W + s B A", "", "LoRA linear fwd + bwd", ""};
    double flops[P / 2] = {2.0 * N * In * R, 2.0 * N * O * R, 2.0 * N * O * R, 2.0 * N * O * R, 2.0 * N * In * R, 2.0 * N * In * R,
                           2.0 * O * In * R, 0};
    double best[P];
    for (int i = 0; i < P; i++) best[i] = 1e30;
    for (int rep = 0; rep < 30; rep++)
        for (int v = 0; v < P; v++) {
            double t0 = now();
            switch (v) {
            case 0: cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, In, 1, x, In, A, In, 0, xa, R); break;
            case 1: sloth_lowrank_dots(xa, R, x, In, A, In, N, R, In, 1); break;
            case 2: cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, R, s, xa, R, B, R, 1, y, O); break;
            case 3: sloth_lowrank_update(y, O, y, O, xa, R, Bt, O, N, R, O, s); break;
            case 4: cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, R, N, s, dy, O, xa, R, 1, dB, R); break;
            case 5: sloth_lowrank_outer(t, O, xa, R, dy, O, N, R, O, s); break;
            case 6: cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, O, s, dy, O, B, R, 0, g, R); break;
            case 7: sloth_lowrank_dots(g, R, dy, O, Bt, O, N, R, O, s); break;
            case 8: cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, In, N, 1, g, R, x, In, 1, dA, In); break;
            case 9: sloth_lowrank_outer(dA, In, g, R, x, In, N, R, In, 1); break;
            case 10: cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, R, 1, g, R, A, In, 1, dx, In); break;
            case 11: sloth_lowrank_update(dx, In, dx, In, g, R, A, In, N, R, In, 1); break;
            case 12: for (long i = 0; i < (long)O * In; i++) Wp[i] = W[i];
                     cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, In, R, s, B, R, A, In, 1, Wp, In); break;
            case 13: sloth_lowrank_update(Wp, In, W, In, B, R, A, In, O, R, In, s); break;
            case 14: // before: base products on W, six BLAS low-rank products
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, In, 1, x, In, W, In, 0, y, O);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, In, 1, x, In, A, In, 0, xa, R);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, R, s, xa, R, B, R, 1, y, O);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, O, 1, dy, O, W, In, 0, dx, In);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, R, N, s, dy, O, xa, R, 1, dB, R);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, O, s, dy, O, B, R, 0, g, R);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, In, N, 1, g, R, x, In, 1, dA, In);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, R, 1, g, R, A, In, 1, dx, In);
                break;
            case 15: // now (Sources/SlothModels/LoRA.swift)
                if (fold) sloth_lowrank_update(Wp, In, W, In, B, R, A, In, O, R, In, s);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, In, 1, x, In, fold ? Wp : W, In, 0, y, O);
                sloth_lowrank_dots(xa, R, x, In, A, In, N, R, In, 1);
                for (int o = 0; o < O; o++) for (int j = 0; j < R; j++) Bt[j * O + o] = B[o * R + j];
                if (!fold) sloth_lowrank_update(y, O, y, O, xa, R, Bt, O, N, R, O, s);
                if (fold) sloth_lowrank_update(Wp, In, W, In, B, R, A, In, O, R, In, s);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, O, 1, dy, O, fold ? Wp : W, In, 0, dx, In);
                for (int i = 0; i < R * O; i++) t[i] = 0;
                sloth_lowrank_outer(t, O, xa, R, dy, O, N, R, O, s);
                for (int o = 0; o < O; o++) for (int j = 0; j < R; j++) dB[o * R + j] += t[j * O + o];
                sloth_lowrank_dots(g, R, dy, O, Bt, O, N, R, O, s);
                sloth_lowrank_outer(dA, In, g, R, x, In, N, R, In, 1);
                if (!fold) sloth_lowrank_update(dx, In, dx, In, g, R, A, In, N, R, In, 1);
                break;
            }
            double e = now() - t0;
            if (e < best[v]) best[v] = e;
        }
    printf("N %d, I %d, O %d, rank %d (fold: %s)\n", N, In, O, R, fold ? "yes" : "no");
    printf("| product | BLAS ms | Sloth ms | BLAS GFLOP/s | Sloth GFLOP/s | speedup |\n|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < P / 2; i++) {
        double a = best[2 * i], b = best[2 * i + 1];
        if (flops[i] > 0) printf("| %s | %.3f | %.3f | %.1f | %.1f | %.2fx |\n", names[2 * i], a * 1e3, b * 1e3, flops[i] / a / 1e9, flops[i] / b / 1e9, a / b);
        else printf("| %s | %.3f | %.3f | | | %.2fx |\n", names[2 * i], a * 1e3, b * 1e3, a / b);
    }
    return 0;
}
