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
INLINE VF NAME(splat)(float x) { return (VF){0} + x; }

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
    VI e = (__builtin_convertvector(n, VI) + 127) << 23;
    VF scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

INLINE float NAME(hmax)(VF v) { float m = v[0]; for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m; return m; }
INLINE float NAME(hsum)(VF v) { float s = 0; for (int i = 0; i < W; i++) s += v[i]; return s; }

INLINE float NAME(range_max)(const float *x, int lo, int hi) {
    float m = -INFINITY;
    int j = lo;
    if (hi - lo >= W) {
        VF vm = NAME(load)(x + j);
        for (j += W; j + W <= hi; j += W) vm = __builtin_elementwise_max(vm, NAME(load)(x + j));
        m = NAME(hmax)(vm);
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
// B (K x N) row-major with row stride ldb. Register blocks of ROWS x (COLV * W); K in chunks of 256 so the
// B panel stays in cache; column tails in scalar code. For attention's products (K or N = head dim).
INLINE void NAME(gemm_block)(const int R, float *C, int ldc, const float *A, long ai, long ak, const float *B, int ldb,
                             int k0, int k1, float alpha, int add) {
    VF acc[ROWS][COLV];
    for (int i = 0; i < R; i++)
        for (int c = 0; c < COLV; c++) acc[i][c] = (VF){0};
    for (int k = k0; k < k1; k++) {
        VF b[COLV];
        for (int c = 0; c < COLV; c++) b[c] = NAME(load)(B + (long)k * ldb + c * W);
        for (int i = 0; i < R; i++) {
            VF a = NAME(splat)(A[i * ai + k * ak]);
            for (int c = 0; c < COLV; c++) acc[i][c] += a * b[c];
        }
    }
    VF va = NAME(splat)(alpha);
    for (int i = 0; i < R; i++)
        for (int c = 0; c < COLV; c++) {
            float *p = C + (long)i * ldc + c * W;
            NAME(store)(p, add ? NAME(load)(p) + va * acc[i][c] : va * acc[i][c]);
        }
}

static void NAME(gemm)(float *C, int ldc, const float *A, long ai, long ak, const float *B, int ldb, int M, int N, int K,
                       float alpha, int accumulate) {
    const int CW = COLV * W, KC = 256;
    int nv = N / CW * CW;
    for (int k0 = 0; k0 < K || k0 == 0; k0 += KC) {
        int k1 = K < k0 + KC ? K : k0 + KC;
        int add = accumulate || k0 > 0;
        for (int j0 = 0; j0 < nv; j0 += CW) {
            int r0 = 0;
            for (; r0 + ROWS <= M; r0 += ROWS)
                NAME(gemm_block)(ROWS, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, B + j0, ldb, k0, k1, alpha, add);
            for (; r0 < M; r0++)
                NAME(gemm_block)(1, C + (long)r0 * ldc + j0, ldc, A + r0 * ai, ai, ak, B + j0, ldb, k0, k1, alpha, add);
        }
        for (int r = 0; r < M; r++)
            for (int j = nv; j < N; j++) {
                float sum = 0;
                for (int k = k0; k < k1; k++) sum += A[r * ai + k * ak] * B[(long)k * ldb + j];
                float *p = C + (long)r * ldc + j;
                *p = add ? *p + alpha * sum : alpha * sum;
            }
        if (K == 0) break;
    }
}

static float NAME(softmax_block_row)(float *x, int n, int first, int last, float *m, float *l) {
    float bm = NAME(range_max)(x, first, last + 1);
    float mn = bm > *m ? bm : *m;
    float s = NAME(masked_exp_sum)(x, n, first, last, mn);
    float factor = *m == -INFINITY ? 0.0f : scalar_exp(*m - mn);
    *l = *l * factor + s;
    *m = mn;
    return factor;
}

#undef VF
#undef VI
