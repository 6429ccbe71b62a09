// The register block alone: C (MR x 16 NV) += A' B' over K, A' packed [K][MR], B' packed [K][16 NV], both in L1
// (K <= 256) or B' streamed from L2 (K 512), one thread, best of 5. What the block can reach with no cache misses,
// against bench/fma_peak.c's peak. Stop 20, Intel Xeon (one core's peak 165-169 GFLOP/s), 6 alternated runs of the
// two, GFLOP/s at K 64 / 512: 6 x 64 (the default: attention's kernel and bench/packed_gemm.c) 132-170 / 124-139;
// 8 x 48 (-DMR=8 -DNV=3) 139-172 / 123-173. Both reach the peak in some minutes and lose up to a quarter in others;
// no difference between them shows through that (a first, unalternated run had 6 x 64 at 130-152 and 8 x 48 at
// 168-172, which the alternated runs did not bear out).
// Build: clang -O3 -mavx512f -mfma [-DMR=8 -DNV=3] bench/register_block.c -o /tmp/register_block
// Run:   taskset -c 1 /tmp/register_block 64; taskset -c 1 /tmp/register_block 512
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifndef MR
#define MR 6
#endif
#ifndef NV
#define NV 4
#endif
#define NR (NV * 16)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
__attribute__((noinline)) static void block(int K, const float *A, const float *B, float *C, int ldc) {
    __m512 acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int c = 0; c < NV; c++) acc[i][c] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 b[NV];
        for (int c = 0; c < NV; c++) b[c] = _mm512_load_ps(B + k * NR + c * 16);
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(A[k * MR + i]);
            for (int c = 0; c < NV; c++) acc[i][c] = _mm512_fmadd_ps(a, b[c], acc[i][c]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int c = 0; c < NV; c++)
            _mm512_storeu_ps(C + i * ldc + c * 16, _mm512_add_ps(_mm512_loadu_ps(C + i * ldc + c * 16), acc[i][c]));
}
int main(int argc, char **argv) {
    int K = argc > 1 ? atoi(argv[1]) : 128;
    if (K < 1 || K > 1 << 16) { fprintf(stderr, "usage: register_block K (1-65536)\n"); return 2; }
    float *A = aligned_alloc(64, 4L * K * MR + 64), *B = aligned_alloc(64, 4L * K * NR), C[MR * NR];
    for (long i = 0; i < (long)K * MR; i++) A[i] = 1e-3f * (i % 7);
    for (long i = 0; i < (long)K * NR; i++) B[i] = 1e-3f * (i % 5);
    for (int i = 0; i < MR * NR; i++) C[i] = 0;
    long reps = (long)(2e9 / (2.0 * MR * NR * K)) + 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (long i = 0; i < reps; i++) block(K, A, B, C, NR);
        double g = 2.0 * MR * NR * K * reps / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    printf("%d x %d block, K %d: %.1f GFLOP/s (checksum %g)\n", MR, NR, K, best, C[3]);
    return 0;
}
