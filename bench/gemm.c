// GEMM rate of a CBLAS library at the bench model's training shapes (N tokens; q/k/v/o, gate/up/down, lm_head;
// forward x W^T and backward dY W), 2 threads by the library's own pool, each shape timed >= 0.3 s.
// Usage: gemm LIB.so TOKENS. Prints the FLOP-weighted rate (how the profile's limit is computed) and each shape's.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: gemm LIB.so TOKENS\n"); return 2; }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    sgemm_t sgemm = (sgemm_t)dlsym(h, "cblas_sgemm");
    void (*ot)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    void (*bt)(long) = (void (*)(long))dlsym(h, "bli_thread_set_num_threads");
    char *(*core)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    if (ot) ot(2);
    if (bt) bt(2);
    int N = atoi(argv[2]);
    // (out, in, count per layer) of the linears; 30 layers; lm_head 49152 x 576 once.
    int lin[][3] = {{576, 576, 2}, {192, 576, 2}, {1536, 576, 2}, {576, 1536, 1}, {49152, 576, 0}};
    double flops = 0, time = 0;
    printf("%s%s%s, %d tokens\n", argv[1], core ? " " : "", core ? core() : "", N);
    for (int s = 0; s < 5; s++) {
        int O = lin[s][0], I = lin[s][1];
        double count = s == 4 ? 1 : 30.0 * lin[s][2];
        float *x = malloc(4L * N * (I > O ? I : O)), *w = malloc(4L * O * I), *y = malloc(4L * N * (I > O ? I : O));
        for (long i = 0; i < (long)N * (I > O ? I : O); i++) x[i] = 1e-3f * (i % 13);
        for (long i = 0; i < (long)O * I; i++) w[i] = 1e-3f * (i % 7);
        for (int dir = 0; dir < 2; dir++) {
            // forward y (N x O) = x W^T; backward dx (N x I) = dy W
            #define RUN() (dir == 0 ? sgemm(101, 111, 112, N, O, I, 1, x, I, w, I, 0, y, O) : sgemm(101, 111, 111, N, I, O, 1, x, O, w, I, 0, y, I))
            RUN();
            int it = 0; double t0 = now();
            while (now() - t0 < 0.3) { RUN(); it++; }
            double t = (now() - t0) / it, f = 2.0 * N * O * I;
            printf("  %s %5d x %5d x %5d: %6.1f GFLOP/s\n", dir ? "dY W  " : "x W^T ", N, dir ? I : O, dir ? O : I, f / t / 1e9);
            flops += count * f; time += count * t;
        }
        free(x); free(w); free(y);
    }
    printf("  weighted: %.1f GFLOP/s\n", flops / time / 1e9);
    return 0;
}
