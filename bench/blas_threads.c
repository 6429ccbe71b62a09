// How a large product is spread over the two cores: the library's own pool (2 threads, which share one packed copy
// of B) against Sloth's way (BLAS.sgemm: the larger of m and n cut into two slices, each a single-threaded product
// on its own thread, each packing all of B it touches), and the same halves cut along n instead. The bench model's
// frozen-linear and lm_head shapes at TOKENS (forward x W^T, backward dY W). Each shape: the three modes in turn,
// 4 rounds of >= 0.15 s each, best kept; prints each mode's rate and its rate over all ten shapes taken once each
// (total FLOPs / total time).
//
// Findings (stop 20, Intel Xeon, 2 cores, OpenBLAS 0.3.21 SkylakeX, three runs): on the 8 decoder shapes the pool
// ran 1.05-1.47x the rate of halves along m (e.g. 2048 x 576 x 576: 253 / 192, 198 / 134; 8192 x 576 x 1536:
// 260 / 183 GFLOP/s), halves along n in between; on lm_head's shapes halves along n were fastest (8192 x 49152 x 576:
// 233 vs pool 215). Over the ten shapes: 2048 tokens pool 218 / halves-m 203 / halves-n 220, again 207 / 196 / 204; 8192
// tokens 226 / 226 / 244; a fourth run at 2048, 220 / 214 / 248 (lm_head's shapes 221-252 halves-n vs 203-230).
// In the training step (BLAS.sgemm switched to the pool for its large products, threads back to 1 after each;
// `sloth train --profile` at 2048 tokens, alternated with the halves binary): with OpenBLAS's default thread timeout
// its idle pool thread spins after each product and slows the attention kernels that follow (forward 0.88-0.92 s
// -> 0.95-1.25 s; 3 pairs, every step slower). With OPENBLAS_THREAD_TIMEOUT=4 (the pool sleeps at once) 7 pairs
// gave step ratios 0.85-1.19 (host drift); frozen linears' time over attention backward's in the same run, which
// the change does not touch, moved by a median 1.036 (0.97-1.09): a 3-4% gain on the linears, 1.5% of the step.
// Not adopted: too small to see through this host's noise, and it would put products from two places into one pool.
// Build: cc -O2 bench/blas_threads.c -o /tmp/blas_threads -ldl -lpthread
// Run:   OPENBLAS_CORETYPE=SkylakeX /tmp/blas_threads 2048 [LIB.so]
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static sgemm_t sgemm;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
typedef struct { int transB, m, n, k; const float *a; int lda; const float *b; int ldb; float *c; int ldc; } job;
static void *run(void *p) {
    job *j = p;
    sgemm(101, 111, j->transB ? 112 : 111, j->m, j->n, j->k, 1, j->a, j->lda, j->b, j->ldb, 0, j->c, j->ldc);
    return 0;
}
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: blas_threads TOKENS [LIB.so]\n"); return 2; }
    void *h = dlopen(argc > 2 ? argv[2] : "libopenblas.so.0", RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    sgemm = (sgemm_t)dlsym(h, "cblas_sgemm");
    void (*threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (!sgemm || !threads) { fprintf(stderr, "needs OpenBLAS (cblas_sgemm, openblas_set_num_threads)\n"); return 1; }
    threads(1);
    int M = atoi(argv[1]);
    int shapes[][2] = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}, {49152, 576}};
    double total[3] = {0}, flops = 0;
    const char *names[3] = {"pool", "halves-m", "halves-n"};
    printf("%d tokens, 2 threads; GFLOP/s: %s / %s / %s\n", M, names[0], names[1], names[2]);
    for (int s = 0; s < 5; s++)
        for (int tr = 1; tr >= 0; tr--) {
            int O = shapes[s][0], I = shapes[s][1], N = tr ? O : I, K = tr ? I : O;
            float *a = malloc(4L * M * K), *w = malloc(4L * O * I), *c = malloc(4L * M * N);
            for (long i = 0; i < (long)M * K; i++) a[i] = (i % 13) * 1e-2f;
            for (long i = 0; i < (long)O * I; i++) w[i] = (i % 7) * 1e-2f;
            double best[3] = {1e9, 1e9, 1e9};
            for (int rep = 0; rep < 4; rep++)
                for (int mode = 0; mode < 3; mode++) {
                    int it = 0;
                    double t0 = now();
                    while (now() - t0 < 0.15) {
                        if (mode == 0) {
                            threads(2);
                            sgemm(101, 111, tr ? 112 : 111, M, N, K, 1, a, K, w, I, 0, c, N);
                            threads(1);
                        } else {
                            job j[2];
                            for (int p = 0; p < 2; p++) {
                                if (mode == 1) {
                                    int lo = M * p / 2, hi = M * (p + 1) / 2;
                                    j[p] = (job){tr, hi - lo, N, K, a + (long)lo * K, K, w, I, c + (long)lo * N, N};
                                } else {
                                    int lo = p ? (N / 2) & ~15 : 0, hi = p ? N : (N / 2) & ~15;
                                    j[p] = (job){tr, M, hi - lo, K, a, K, tr ? w + (long)lo * I : w + lo, I, c + lo, N};
                                }
                            }
                            pthread_t th;
                            pthread_create(&th, 0, run, &j[1]);
                            run(&j[0]);
                            pthread_join(th, 0);
                        }
                        it++;
                    }
                    double t = (now() - t0) / it;
                    if (t < best[mode]) best[mode] = t;
                }
            double f = 2.0 * M * N * K;
            flops += f;
            for (int m = 0; m < 3; m++) total[m] += best[m];
            printf("%s %5d x %5d x %5d: %6.1f / %6.1f / %6.1f\n", tr ? "x W^T" : "dY W ", M, N, K, f / best[0] / 1e9,
                   f / best[1] / 1e9, f / best[2] / 1e9);
            free(a); free(w); free(c);
        }
    printf("ten shapes: %.1f / %.1f / %.1f\n", flops / total[0] / 1e9, flops / total[1] / 1e9, flops / total[2] / 1e9);
    return 0;
}
