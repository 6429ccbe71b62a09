// The cores' single-precision FMA peak: each thread runs 12 independent chains of 512-bit FMAs (enough to cover the
// FMA latency on two ports) with no memory traffic. The ceiling that GEMM rates (bench/gemm.sh, the profile's
// limit) are fractions of. Stop 20, Intel Xeon host, 2 cores: 165-169 GFLOP/s on one thread, 330-334 on two (the two
// vCPUs are separate cores: the peak doubles); OpenBLAS SkylakeX on one thread reaches 105-150 (64-91%) of it at the
// bench model's shapes depending on the hour, on two threads 196-244 (59-73%).
// Build: clang -O2 -mavx512f -mfma bench/fma_peak.c -o /tmp/fma_peak -lpthread
// Run:   /tmp/fma_peak 1; /tmp/fma_peak 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define ITERS 200000000L
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *run(void *out) {
    __m512 a[12], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    float s = 0;
    for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
    *(float *)out = s;  // keeps the chains live
    return 0;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 64) { fprintf(stderr, "usage: fma_peak THREADS (1-64)\n"); return 2; }
    pthread_t th[64];
    float out[64];
    double t0 = now();
    for (int i = 0; i < n; i++) pthread_create(&th[i], 0, run, &out[i]);
    for (int i = 0; i < n; i++) pthread_join(th[i], 0);
    double t = now() - t0;
    printf("%d thread(s): %.1f GFLOP/s (12 chains x 16 lanes x 2 FLOPs per iteration; checksum %g)\n", n,
           n * ITERS * 12 * 32.0 / t / 1e9, out[0]);
    return 0;
}
