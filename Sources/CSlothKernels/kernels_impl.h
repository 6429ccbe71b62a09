// One ISA's copy of the kernels (included by kernels.c once per ISA). Before including, kernels.c defines
// W (lanes of 4-byte floats) and NAME(x) (x with the ISA's suffix); a target pragma around the include
// compiles every function here for that ISA.

typedef float NAME(vf) __attribute__((vector_size(W * 4)));
typedef int32_t NAME(vi) __attribute__((vector_size(W * 4)));
typedef float NAME(vu) __attribute__((vector_size(W * 4), aligned(4)));
#define VF NAME(vf)
#define VI NAME(vi)

INLINE VF NAME(load)(const float *p) { return *(const NAME(vu) *)p; }
INLINE void NAME(store)(float *p, VF v) { *(NAME(vu) *)p = v; }
// Lane by lane, not (VF){0} + x: the compiler must keep that add (-0 + 0 is +0), which in the product kernels put a
// scalar add and a register shuffle before every broadcast (a third of the FMA ports' slots); this is one broadcast load.
INLINE VF NAME(splat)(float x) {
    VF v;
    for (int i = 0; i < W; i++) v[i] = x;
    return v;
}

// Cephes expf (see kernels.c), lane-wise.
INLINE VF NAME(vexp)(VF x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, NAME(splat)(EXP_LO)), NAME(splat)(EXP_HI));
    VF n = (x * NAME(splat)(LOG2E) + NAME(splat)(ROUNDER)) - NAME(splat)(ROUNDER);
    VF r = x - n * NAME(splat)(LN2_HI);
    r = r - n * NAME(splat)(LN2_LO);
    VF p = NAME(splat)(P0);
    p = p * r + NAME(splat)(P1);
    p = p * r + NAME(splat)(P2);
    p = p * r + NAME(splat)(P3);
    p = p * r + NAME(splat)(P4);
    p = p * r + NAME(splat)(P5);
    p = p * r * r + r + NAME(splat)(1.0f);
#if W == 16
    // p * 2^n in one instruction (vscalefps) instead of convert, shift, add and multiply; the same value for the
    // clamped range's n in [-126, 127].
    return __builtin_ia32_scalefps512_mask(p, n, p, (unsigned short)0xFFFF, 4 /* _MM_FROUND_CUR_DIRECTION */);
#else
    VI e = (__builtin_convertvector(n, VI) + 127) << 23;
    VF scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
#endif
}

INLINE float NAME(hmax)(VF v) { float m = v[0]; for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m; return m; }
INLINE float NAME(hsum)(VF v) { float s = 0; for (int i = 0; i < W; i++) s += v[i]; return s; }

INLINE float NAME(range_max)(const float *x, int lo, int hi) {
    float m = -INFINITY;
    int j = lo;
    if (hi - lo >= W) {
        // Four running maxima: one chain waits out max's latency (and its NaN check) on every vector.
        VF v0 = NAME(load)(x + j), v1 = v0, v2 = v0, v3 = v0;
        for (j += W; j + 4 * W <= hi; j += 4 * W) {
            v0 = __builtin_elementwise_max(v0, NAME(load)(x + j));
            v1 = __builtin_elementwise_max(v1, NAME(load)(x + j + W));
            v2 = __builtin_elementwise_max(v2, NAME(load)(x + j + 2 * W));
            v3 = __builtin_elementwise_max(v3, NAME(load)(x + j + 3 * W));
        }
        for (; j + W <= hi; j += W) v0 = __builtin_elementwise_max(v0, NAME(load)(x + j));
        m = NAME(hmax)(__builtin_elementwise_max(__builtin_elementwise_max(v0, v1), __builtin_elementwise_max(v2, v3)));
    }
    for (; j < hi; j++) m = x[j] > m ? x[j] : m;
    return m;
}

// x[j] = exp(x[j] - m) on [first, last], 0 elsewhere in [0, n); returns the sum.
INLINE float NAME(masked_exp_sum)(float *x, int n, int first, int last, float m) {
    int hi = last + 1;
    if (first > 0) memset(x, 0, sizeof(float) * (size_t)first);
    if (hi < n) memset(x + hi, 0, sizeof(float) * (size_t)(n - hi));
    VF acc = {0}, vm = NAME(splat)(m);
    int j = first;
    for (; j + W <= hi; j += W) {
        VF e = NAME(vexp)(NAME(load)(x + j) - vm);
        NAME(store)(x + j, e);
        acc += e;
    }
    float s = NAME(hsum)(acc);
    for (; j < hi; j++) { float e = scalar_exp(x[j] - m); x[j] = e; s += e; }
    return s;
}

static void NAME(softmax_grad_row)(float *s, float *dp, int n, int first, int last, float lse, float d) {
    int hi = last + 1;
    if (first > 0) { memset(s, 0, sizeof(float) * (size_t)first); memset(dp, 0, sizeof(float) * (size_t)first); }
    if (hi < n) { memset(s + hi, 0, sizeof(float) * (size_t)(n - hi)); memset(dp + hi, 0, sizeof(float) * (size_t)(n - hi)); }
    VF vl = NAME(splat)(lse), vd = NAME(splat)(d);
    int j = first;
    for (; j + W <= hi; j += W) {
        VF p = NAME(vexp)(NAME(load)(s + j) - vl);
        NAME(store)(s + j, p);
        NAME(store)(dp + j, p * (NAME(load)(dp + j) - vd));
    }
    for (; j < hi; j++) { float p = scalar_exp(s[j] - lse); s[j] = p; dp[j] = p * (dp[j] - d); }
}

static float NAME(cross_entropy_row)(float *row, int v, int target, float scale, int grad) {
    float m = NAME(range_max)(row, 0, v);
    VF acc = {0}, vm = NAME(splat)(m);
    int j = 0;
    for (; j + W <= v; j += W) acc += NAME(vexp)(NAME(load)(row + j) - vm);
    float s = NAME(hsum)(acc);
    for (; j < v; j++) s += scalar_exp(row[j] - m);
    float lse = m + logf(s);
    if (grad) {
        VF vl = NAME(splat)(lse), vs = NAME(splat)(scale);
        for (j = 0; j + W <= v; j += W) NAME(store)(row + j, NAME(vexp)(NAME(load)(row + j) - vl) * vs);
        for (; j < v; j++) row[j] = scalar_exp(row[j] - lse) * scale;
        row[target] -= scale;
    }
    return lse;
}

static void NAME(swiglu_forward)(float *out, const float *gate, const float *up, long n) {
    long i = 0;
    VF one = NAME(splat)(1.0f);
    for (; i + W <= n; i += W) {
        VF e = NAME(load)(gate + i);
        NAME(store)(out + i, e / (one + NAME(vexp)(-e)) * NAME(load)(up + i));
    }
    for (; i < n; i++) { float e = gate[i]; out[i] = e / (1.0f + scalar_exp(-e)) * up[i]; }
}

static void NAME(swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    long i = 0;
    VF one = NAME(splat)(1.0f);
    for (; i + W <= n; i += W) {
        VF e = NAME(load)(gate + i), g = NAME(load)(up + i), dh = NAME(load)(dout + i);
        VF s = one / (one + NAME(vexp)(-e));
        NAME(store)(dup + i, dh * (e * s));
        NAME(store)(dgate + i, dh * g * s * (one + e * (one - s)));
    }
    for (; i < n; i++) {
        float e = gate[i], g = up[i], dh = dout[i];
        float s = 1.0f / (1.0f + scalar_exp(-e));
        dup[i] = dh * (e * s);
        dgate[i] = dh * g * s * (1.0f + e * (1.0f - s));
    }
}

static float NAME(rmsnorm_row)(float *y, const float *x, const float *w, int d, float eps, float offset) {
    VF acc = {0};
    int j = 0;
    for (; j + W <= d; j += W) { VF v = NAME(load)(x + j); acc += v * v; }
    float ss = NAME(hsum)(acc);
    for (; j < d; j++) ss += x[j] * x[j];
    float r = 1.0f / sqrtf(ss / (float)d + eps);
    VF vr = NAME(splat)(r), vo = NAME(splat)(offset);
    for (j = 0; j + W <= d; j += W) NAME(store)(y + j, NAME(load)(x + j) * vr * (NAME(load)(w + j) + vo));
    for (; j < d; j++) y[j] = x[j] * r * (w[j] + offset);
    return r;
}

static void NAME(rmsnorm_backward_row)(float *dx, const float *dy, const float *x, const float *w, int d, float r, float offset, int accumulate) {
    VF acc = {0}, vo = NAME(splat)(offset), vr = NAME(splat)(r);
    int j = 0;
    for (; j + W <= d; j += W) acc += NAME(load)(dy + j) * (NAME(load)(w + j) + vo) * NAME(load)(x + j);
    float dot = NAME(hsum)(acc);
    for (; j < d; j++) dot += dy[j] * (w[j] + offset) * x[j];
    float m = dot * r / (float)d;
    VF vm = NAME(splat)(m);
    for (j = 0; j + W <= d; j += W) {
        VF xv = NAME(load)(x + j);
        VF v = vr * (NAME(load)(dy + j) * (NAME(load)(w + j) + vo) - xv * vr * vm);
        NAME(store)(dx + j, accumulate ? NAME(load)(dx + j) + v : v);
    }
    for (; j < d; j++) {
        float v = r * (dy[j] * (w[j] + offset) - x[j] * r * m);
        dx[j] = accumulate ? dx[j] + v : v;
    }
}

// C (M x N) = alpha * A' B (+ C when accumulate), A' (M x K) with a(i, k) = A[i * ai + k * ak] (so A' = A or A^T),
// B (K x N) row-major with row stride ldb. Register blocks of ROWS x (COLV * W); column tails in scalar code. For
// attention's products (K or N = head dim). K runs in chunks of GEMM_KC (64), and with enough row blocks to repay it
// each chunk's GEMM_KC x (COLV * W) panel of B is first copied into a contiguous per-thread buffer (16 KiB with
// AVX-512), which stays in L1 while every row block reads it. Strided in place, a panel of 256 rows of V or Q (64 KiB,
// rows 768 B apart) was streamed from L2 again by every row block: Intel Xeon, one thread, operands cold as in a step,
// 15 alternated pairs: dK += dP^T Q (512 x 64 x 192) 1.87x faster, P V 1.10x, Q K^T 1.02x; hot operands within 5%
// (bench/attention_gemm.c, which builds the previous form, chunks of 256 read in place, with GEMM_KC 256 and
// GEMM_PACK 0).
#ifndef GEMM_KC
#define GEMM_KC 64
#endif
#ifndef GEMM_PACK
#define GEMM_PACK 1
#endif
INLINE void NAME(gemm_block)(const int R, const int CV, float *C, int ldc, const float *A, long ai, long ak, const float *B, int ldb,
                             int k0, int k1, float alpha, int add) {
    VF acc[ROWS][COLV];
    for (int i = 0; i < R; i++)
        for (int c = 0; c < CV; c++) acc[i][c] = (VF){0};
    for (int k = k0; k < k1; k++) {
        VF b[COLV];
        for (int c = 0; c < CV; c++) b[c] = NAME(load)(B + (long)(k - k0) * ldb + c * W);
        for (int i = 0; i < R; i++) {
            VF a = NAME(splat)(A[i * ai + k * ak]);
            for (int c = 0; c < CV; c++) acc[i][c] += a * b[c];
        }
    }
    VF va = NAME(splat)(alpha);
    for (int i = 0; i < R; i++)
        for (int c = 0; c < CV; c++) {
            float *p = C + (long)i * ldc + c * W;
            NAME(store)(p, add ? NAME(load)(p) + va * acc[i][c] : va * acc[i][c]);
        }
}

static void NAME(gemm)(float *C, int ldc, const float *A, long ai, long ak, const float *B, int ldb, int M, int N, int K,
                       float alpha, int accumulate) {
    const int CW = COLV * W, KC = GEMM_KC;
    static __thread float panel[GEMM_KC * COLV * W] __attribute__((aligned(64)));
    int nv = N / CW * CW, n1 = N / W * W;
    for (int k0 = 0; k0 < K || k0 == 0; k0 += KC) {
        int k1 = K < k0 + KC ? K : k0 + KC;
        int add = accumulate || k0 > 0;
        for (int j0 = 0; j0 < nv; j0 += CW) {
            // gemm_block reads row k (k0 <= k < k1) of the panel at bp + (k - k0) * lb.
            const float *bp = B + (long)k0 * ldb + j0;
            int lb = ldb;
            if (GEMM_PACK && M >= 4 * ROWS) {
                for (int k = k0; k < k1; k++)
                    for (int c = 0; c < COLV; c++) NAME(store)(panel + (k - k0) * CW + c * W, NAME(load)(B + (long)k * ldb + j0 + c * W));
                bp = panel;
                lb = CW;
            }
            int r0 = 0;
            for (; r0 + ROWS <= M; r0 += ROWS)
                NAME(gemm_block)(ROWS, COLV, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, bp, lb, k0, k1, alpha, add);
            for (; r0 < M; r0++)
                NAME(gemm_block)(1, COLV, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, bp, lb, k0, k1, alpha, add);
        }
        // Column tail: single vectors, then scalars.
        for (int j0 = nv; j0 < n1; j0 += W) {
            int r0 = 0;
            for (; r0 + ROWS <= M; r0 += ROWS)
                NAME(gemm_block)(ROWS, 1, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, B + (long)k0 * ldb + j0, ldb, k0, k1, alpha, add);
            for (; r0 < M; r0++)
                NAME(gemm_block)(1, 1, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, B + (long)k0 * ldb + j0, ldb, k0, k1, alpha, add);
        }
        for (int r = 0; r < M; r++)
            for (int j = n1; j < N; j++) {
                float sum = 0;
                for (int k = k0; k < k1; k++) sum += A[r * ai + k * ak] * B[(long)k * ldb + j];
                float *p = C + (long)r * ldc + j;
                *p = add ? *p + alpha * sum : alpha * sum;
            }
        if (K == 0) break;
    }
}
#undef GEMM_KC
#undef GEMM_PACK

static float NAME(softmax_block_row)(float *x, int n, int first, int last, float *m, float *l) {
    float bm = NAME(range_max)(x, first, last + 1);
    float mn = bm > *m ? bm : *m;
    float s = NAME(masked_exp_sum)(x, n, first, last, mn);
    float factor = *m == -INFINITY ? 0.0f : scalar_exp(*m - mn);
    *l = *l * factor + s;
    *m = mn;
    return factor;
}


// Low-rank products of LoRA (r, the rank, small: 8-64), where a BLAS's packing costs more than the FLOPs. Ranks run
// in chunks of LR_K; column chunks of LR_CV vectors; scalar tails.
#define LR_K 8
#define LR_AHEAD 8
#define LR_CV (W >= 16 ? 2 : 1)

// out[n * ldo + j] = alpha * sum_i x[n * ldx + i] * w[j * ldw + i], n < rows, j < r (X W^T with W (r x k)).
// Two rows per pass share each w load; one vector accumulator per (row, rank), summed across lanes at the end.
static void NAME(lowrank_dots)(float *out, int ldo, const float *x, int ldx, const float *w, int ldw, int rows, int r, int k, float alpha) {
    int kv = k / W * W;
    for (int j0 = 0; j0 < r; j0 += LR_K) {
        const int nj = r - j0 < LR_K ? r - j0 : LR_K;
        int n = 0;
        for (; n + 2 <= rows; n += 2) {
            const float *x0 = x + (long)n * ldx, *x1 = x0 + ldx;
            VF a0[LR_K], a1[LR_K];
            for (int j = 0; j < LR_K; j++) { a0[j] = (VF){0}; a1[j] = (VF){0}; }
            // The rows LR_AHEAD ahead are fetched while these pass (x is read once, often from memory).
            const float *p0 = n + LR_AHEAD + 1 < rows ? x0 + (long)LR_AHEAD * ldx : 0;
            for (int i = 0; i < kv; i += W) {
                if (p0 && i % 16 == 0) { __builtin_prefetch(p0 + i, 0, 3); __builtin_prefetch(p0 + ldx + i, 0, 3); }
                VF u0 = NAME(load)(x0 + i), u1 = NAME(load)(x1 + i);
                for (int j = 0; j < nj; j++) {
                    VF b = NAME(load)(w + (long)(j0 + j) * ldw + i);
                    a0[j] += u0 * b; a1[j] += u1 * b;
                }
            }
            for (int j = 0; j < nj; j++) {
                float s0 = NAME(hsum)(a0[j]), s1 = NAME(hsum)(a1[j]);
                const float *wj = w + (long)(j0 + j) * ldw;
                for (int i = kv; i < k; i++) { s0 += x0[i] * wj[i]; s1 += x1[i] * wj[i]; }
                out[(long)n * ldo + j0 + j] = alpha * s0;
                out[(long)(n + 1) * ldo + j0 + j] = alpha * s1;
            }
        }
        for (; n < rows; n++) {
            const float *x0 = x + (long)n * ldx;
            for (int j = 0; j < nj; j++) {
                const float *wj = w + (long)(j0 + j) * ldw;
                VF a = (VF){0};
                for (int i = 0; i < kv; i += W) a += NAME(load)(x0 + i) * NAME(load)(wj + i);
                float s = NAME(hsum)(a);
                for (int i = kv; i < k; i++) s += x0[i] * wj[i];
                out[(long)n * ldo + j0 + j] = alpha * s;
            }
        }
    }
}

// y[n * ldy + i] = base[n * ldb + i] + alpha * sum_j c[n * ldc + j] * w[j * ldw + i], n < rows, i < width (Base + C W with
// W (r x width)); base NULL for none, base == y to accumulate.
// Rows in blocks of LR_NB; within a block a column chunk of w stays in registers while the block's rows pass.
static void NAME(lowrank_update)(float *y, int ldy, const float *base, int ldb, const float *c, int ldc, const float *w, int ldw,
                                 int rows, int r, int width, float alpha) {
    const int CW = LR_CV * W, NB = 8;
    int wv = width / CW * CW;
    VF va = NAME(splat)(alpha);
    for (int n0 = 0; n0 < rows; n0 += NB) {
        const int n1 = rows < n0 + NB ? rows : n0 + NB;
        for (int j0 = 0; j0 < r || j0 == 0; j0 += LR_K) {
            const int nj = r - j0 < LR_K ? r - j0 : LR_K;
            const float *src = j0 > 0 ? y : base;
            const int ls = j0 > 0 ? ldy : ldb;
            for (int i0 = 0; i0 < wv; i0 += CW) {
                VF b[LR_K][LR_CV];
                for (int j = 0; j < LR_K; j++)
                    for (int v = 0; v < LR_CV; v++) b[j][v] = j < nj ? NAME(load)(w + (long)(j0 + j) * ldw + i0 + v * W) : (VF){0};
                for (int n = n0; n < n1; n++) {
                    float *yp = y + (long)n * ldy + i0;
                    const float *cn = c + (long)n * ldc + j0;
                    // The next block's rows of this column chunk, one block ahead.
                    if (src && n + NB < rows)
                        for (int v = 0; v < CW; v += 16) __builtin_prefetch(src + (long)(n + NB) * ls + i0 + v, 0, 3);
                    VF acc[LR_CV];
                    for (int v = 0; v < LR_CV; v++) acc[v] = (VF){0};
                    for (int j = 0; j < nj; j++) {
                        VF a = NAME(splat)(cn[j]);
                        for (int v = 0; v < LR_CV; v++) acc[v] += a * b[j][v];
                    }
                    const float *sp = src ? src + (long)n * ls + i0 : 0;
                    for (int v = 0; v < LR_CV; v++)
                        NAME(store)(yp + v * W, sp ? NAME(load)(sp + v * W) + va * acc[v] : va * acc[v]);
                }
            }
            for (int n = n0; n < n1; n++)
                for (int i = wv; i < width; i++) {
                    float s = 0;
                    for (int j = 0; j < nj; j++) s += c[(long)n * ldc + j0 + j] * w[(long)(j0 + j) * ldw + i];
                    y[(long)n * ldy + i] = src ? src[(long)n * ls + i] + alpha * s : alpha * s;
                }
            if (r == 0) break;
        }
    }
}

// g[j * ldg + i] += alpha * sum_n c[n * ldc + j] * x[n * ldx + i], j < r, i < width (C^T X into G (r x width)).
// Rows in blocks of LR_NB (a block of x stays in L2 while its column chunks pass); for a column chunk the
// accumulators of every rank in the chunk stay in registers over the block's rows.
static void NAME(lowrank_outer)(float *g, int ldg, const float *c, int ldc, const float *x, int ldx, int rows, int r, int width, float alpha) {
    const int CW = LR_CV * W, NB = 64;
    int wv = width / CW * CW;
    VF va = NAME(splat)(alpha);
    for (int n0 = 0; n0 < rows; n0 += NB) {
        const int n1 = rows < n0 + NB ? rows : n0 + NB;
        for (int j0 = 0; j0 < r; j0 += LR_K) {
            const int nj = r - j0 < LR_K ? r - j0 : LR_K;
            for (int i0 = 0; i0 < wv; i0 += CW) {
                VF acc[LR_K][LR_CV];
                for (int j = 0; j < LR_K; j++)
                    for (int v = 0; v < LR_CV; v++) acc[j][v] = (VF){0};
                for (int n = n0; n < n1; n++) {
                    // The next block's rows of this column chunk, one block ahead (the chunk pass reads LR_CV vectors
                    // per row at a stride of ldx, which the hardware's prefetchers follow poorly).
                    if (n + NB < rows)
                        for (int v = 0; v < CW; v += 16) __builtin_prefetch(x + (long)(n + NB) * ldx + i0 + v, 0, 3);
                    VF u[LR_CV];
                    for (int v = 0; v < LR_CV; v++) u[v] = NAME(load)(x + (long)n * ldx + i0 + v * W);
                    const float *cn = c + (long)n * ldc + j0;
                    for (int j = 0; j < nj; j++) {
                        VF a = NAME(splat)(cn[j]);
                        for (int v = 0; v < LR_CV; v++) acc[j][v] += a * u[v];
                    }
                }
                for (int j = 0; j < nj; j++)
                    for (int v = 0; v < LR_CV; v++) {
                        float *p = g + (long)(j0 + j) * ldg + i0 + v * W;
                        NAME(store)(p, NAME(load)(p) + va * acc[j][v]);
                    }
            }
            for (int j = 0; j < nj; j++)
                for (int i = wv; i < width; i++) {
                    float s = 0;
                    for (int n = n0; n < n1; n++) s += c[(long)n * ldc + j0 + j] * x[(long)n * ldx + i];
                    g[(long)(j0 + j) * ldg + i] += alpha * s;
                }
        }
    }
}
// out (rows x r) = alpha_dots X Wr^T and G (r x width) += alpha_outer C^T X for the same X (rows x width): LoRA's
// backward g = s dY B and dB^T += s xa^T dY in one pass over dY, a block of LR_NBLK rows at a time (the outer
// product reads the block from cache right after the dots read it from memory).
#define LR_NBLK 64
static void NAME(lowrank_dots_outer)(float *out, int ldo, const float *wr, int ldw, float alpha_dots, float *g, int ldg,
                                     const float *c, int ldc, float alpha_outer, const float *x, int ldx, int rows, int r, int width) {
    for (int n0 = 0; n0 < rows; n0 += LR_NBLK) {
        const int nb = rows - n0 < LR_NBLK ? rows - n0 : LR_NBLK;
        NAME(lowrank_dots)(out + (long)n0 * ldo, ldo, x + (long)n0 * ldx, ldx, wr, ldw, nb, r, width, alpha_dots);
        NAME(lowrank_outer)(g, ldg, c + (long)n0 * ldc, ldc, x + (long)n0 * ldx, ldx, nb, r, width, alpha_outer);
    }
}
#undef LR_NBLK
#undef LR_K
#undef LR_AHEAD
#undef LR_CV

#undef VF
#undef VI
