/* tsdb/chunk_dense.c -- the dense chunk encoding: scaled-integer values, grid timestamps and
 * frame-of-reference bit packing.
 *
 * Why. XOR compresses a value by how many bits differ from the previous one. Real metric values
 * are short decimals: a byte counter growing by ~200000 differs from its predecessor in ~20
 * mantissa bits plus the exponent, a CPU-seconds counter in hundredths in ~45; so XOR spends
 * 30-50 bits on steps that are 11-18 bits of information. And Prometheus' fixed timestamp
 * buckets spend 16 bits on a scrape jitter of a few milliseconds. DENSE removes both costs,
 * losslessly, for chunks that are persisted (blocks are written once and read many times).
 *
 * Values. Find the smallest k in 0..15, then the first form, such that every value v equals
 * scaled(m, k) exactly (bit for bit) for an integer m = round(v * 10^k) with |m| < 2^53, where
 * form 0 is (double)m / 10^k (what parsing short decimal text gives) and form 1 is
 * (double)m * 10^-k with 10^-k the double nearest (what a program computing ticks * 0.01 gives);
 * for k = 0 both are (double)m and the form is 0. Then code the integers m: their steps d[i] =
 * m[i] - m[i-1] share a factor g (the gcd; memory in pages gives 4096), so store d[i] / g,
 * either as is (mode 0) or as the differences of consecutive steps (mode 1, series that grow at
 * a near-constant rate), whichever costs fewer bits. When no k and form fit exactly, values
 * may be near decimals (sums of decimals computed in binary drift a few units in the last
 * place): then the smallest k such that each value's bit pattern is within RESID_MAX of that of
 * m / 10^k (form 0) is used, and the differences of the bit patterns (residuals) are coded
 * after the steps. Running totals summed in binary (v += ticks * 0.15) drift the same way but
 * follow their own rule exactly: v[i] = v[i-1] + (double)q[i] * u with u = scaled(g, k, form);
 * when the smallest such k (below an exact k, or any k when there is none) codes smaller, the
 * value part is v0 raw and the steps q[i] (accumulated). Chunks holding NaN, infinities, -0
 * or values fitting none of these ways are not encoded (the block keeps them in XOR).
 *
 * Timestamps. t0 raw, then either the deltas of deltas (dod, mode 0: t1 - t0, then each
 * (t[i] - t[i-1]) - (t[i-1] - t[i-2])) or the offsets from a grid (mode 1: step = (t[n-1] - t0)
 * / (n - 1) rounded half up, then each t[i] - t0 - i * step for i >= 1), whichever costs fewer
 * bits. A scrape jitter of +-2 ms is 5 offsets from the grid but 9 dods.
 *
 * Integer codes. A sequence of integers (arithmetic modulo 2^64, so any 64-bit pattern
 * round-trips) is written as a code header, a frame of reference lo and a base width B (0..64),
 * then one code per integer x, c = x - lo. The encoder tries as lo the smallest value (as
 * signed) and a few of the next smallest (low outliers are cheaper escaped), each with the B
 * that minimises the total size, and keeps the cheapest:
 *
 *   B = 0                   nothing (every x equals lo)
 *   c < 2^B - 1             c in B bits
 *   c >= 2^B - 1            B one bits (the escape), then a wide number of c - (2^B - 1)
 *
 * Sparse codes: when at least an eighth of the integers equal z = 0 (steps of memory that moves
 * now and then) and that saves over n / 16 bits (the encoder uses them for values only; a reader
 * takes them anywhere), the header's 7-bit B field holds 65 + B (B 0..62) and is followed by
 * wide zigzag(z) before lo, then one flag bit per integer (0: the integer is z),
 * then a code as above for each flagged integer (none when B = 0). The frame of reference and B
 * are those of the non-z integers. The flags come first so that a reader's position in the codes
 * does not wait on each flag.
 *
 * A wide number is a 7-bit width w (0..64) and w bits. Signed numbers in wide form are
 * zig-zagged first: (x << 1) ^ (x >> 63), so 0, -1, 1, -2 -> 0, 1, 2, 3.
 *
 * Layout. Bits are written most significant first and padded with zeros to a whole byte.
 *
 *   count      u16 big endian (1..65535), as in XOR chunks
 *   t0         64 bits
 *   [n >= 2]   tmode: 1 bit
 *              [tmode 0] wide zigzag(t1 - t0); [n >= 3] codes of the n - 2 dods
 *              [tmode 1] wide zigzag(step); codes of the n - 1 offsets
 *   pad        zero bits to a whole byte: the value part starts on a byte, so chunks with equal
 *              timestamps can share one timestamp part (tsdb_dense_ts_len; the block
 *              format's shared-timestamp records use it)
 *   k          4 bits, decimal places
 *   form       1 bit (0 when k = 0)
 *   resid      1 bit: residuals follow the steps (form 0 only); form 1 with resid 1 marks an
 *              accumulated value part (below) instead of the rest of this one
 *   m0         wide zigzag(m0)
 *   [n >= 2]   g: wide (>= 1)
 *              vmode: 1 bit
 *              [vmode 0] codes of the n - 1 steps d[i] / g
 *              [vmode 1] wide zigzag(d[1] / g); [n >= 3] codes of the n - 2 differences of
 *                        consecutive steps
 *   [resid]    codes of the n residuals: value i has the bit pattern of m[i] / 10^k plus
 *              residual i (modulo 2^64)
 *   codes      7-bit B · wide zigzag(lo) · [B > 0] one code per integer, as above; or, sparse,
 *              7-bit 65 + B · wide zigzag(z) · wide zigzag(lo) · a flag per integer · codes
 *
 * Accumulated value part (n >= 2 only), after the timestamp part's padding:
 *
 *   k          4 bits
 *   marker     2 bits: 1 1
 *   form       1 bit (0 when k = 0), of u = scaled(g, k, form)
 *   v0         64 bits, the bit pattern of the first value
 *   g          wide (1 <= g < 2^53)
 *   vmode      1 bit, and the steps q[i] as in vmode 0 / 1 above; value i is
 *              v[i-1] + (double)(int64)q[i] * u, rounded as C does
 *
 * Example: (1000, 1.5) (2000, 2.5) (3000, 3.5) -> dod 0 (the grid costs the same; ties go to
 * dod), k = 1, m = 15 25 35, g = 10, steps 1 1 (each step is lo, so B = 0).
 *   00 03 | t0 = 1000 in 64 bits | tmode 0 | w=11 zigzag(1000)=2000 | B=0, w=0 | 7 bits of
 *   padding (13 bytes so far after the count) | k=0001 | form 0 | resid 0 | w=5 zigzag(15)=30 |
 *   g: w=4 10 | vmode 0 | B=0, w=2 zigzag(1)=2 | 2 bits of padding: 21 bytes in all
 *
 * Reading validates everything: widths <= 64, g >= 1 (< 2^53 when accumulated), k <= 15, form 0
 * when k = 0, an accumulated part only with n >= 2, strictly ascending timestamps, no bits past
 * the end (sparse flags included), and only zero padding after the last code (at most 7 bits);
 * anything else is TSDB_ECORRUPT.
 */
#include "tsdb/chunk_dense.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH_BITS   7
#define MAX_K        15
#define MAX_EXACT    9007199254740992.0 /* 2^53 */
#define SPARSE_B_MAX 62                 /* header B field 65 + B marks a sparse code */
#define RESID_MAX    4096               /* units in the last place a near decimal may be off */

static const double pow10_tab[MAX_K + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                            1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
static const double inv10_tab[MAX_K + 1] = {1e0,  1e-1, 1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,
                                            1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15};

static inline uint64_t zz(uint64_t x)
{
    return (x << 1) ^ (uint64_t)((int64_t)x >> 63);
}

static inline uint64_t unzz(uint64_t u)
{
    return (u >> 1) ^ (0 - (u & 1));
}

static inline unsigned width_of(uint64_t u)
{
    return u ? 64 - (unsigned)__builtin_clzll(u) : 0;
}

/* ---- Bit writer ------------------------------------------------------------------------------ */

typedef struct bw {
    tsdb_buf *b;
    uint64_t acc; /* pending bits, right-aligned */
    unsigned n;   /* number of pending bits (< 64 between calls) */
} bw;

static void bw_put(bw *w, uint64_t v, unsigned width)
{
    while (width > 0) {
        unsigned space = 64 - w->n;
        unsigned take = width < space ? width : space;
        uint64_t part = take == 64 ? v : (v >> (width - take)) & ((1ULL << take) - 1);
        w->acc = take == 64 ? part : (w->acc << take) | part;
        w->n += take;
        width -= take;
        if (w->n == 64) {
            tsdb_buf_put_u64be(w->b, w->acc);
            w->acc = 0;
            w->n = 0;
        }
    }
}

static void bw_flush(bw *w)
{
    if (w->n == 0)
        return;
    uint64_t v = w->acc << (64 - w->n);
    for (unsigned i = 0; i < (w->n + 7) / 8; i++)
        tsdb_buf_putc(w->b, (unsigned char)(v >> (56 - 8 * i)));
    w->acc = 0;
    w->n = 0;
}

static void put_wide(bw *w, uint64_t u)
{
    unsigned wd = width_of(u);
    bw_put(w, wd, WIDTH_BITS);
    bw_put(w, u, wd);
}

/* ---- Integer codes ------------------------------------------------------------------------- */

/* A plan for coding a sequence: frame of reference lo (the signed minimum) and base width B. */
typedef struct plan {
    uint64_t lo;
    unsigned B;
    uint64_t cost; /* bits, header included */
    int sparse;    /* a flag bit per integer (all before the codes); flag 0 means the value z */
    uint64_t z;
    size_t fpos; /* reading: the next flag's bit position */
} plan;

static inline uint64_t ones(unsigned B)
{
    return B >= 64 ? UINT64_MAX : (1ULL << B) - 1;
}

/* The cheapest base width for frame of reference lo. */
static plan plan_for(const uint64_t *v, size_t n, uint64_t lo)
{
    plan p = {lo, 0, UINT64_MAX, 0, 0, 0};
    uint64_t hist[65] = {0}, full[65] = {0}; /* by width; full: codes that are all ones */
    for (size_t i = 0; i < n; i++) {
        uint64_t c = v[i] - lo;
        unsigned w = width_of(c);
        hist[w]++;
        full[w] += c == ones(w);
    }
    uint64_t head = WIDTH_BITS + WIDTH_BITS + width_of(zz(lo));
    if (hist[0] == n) {
        p.cost = head;
        return p;
    }
    /* Codes wider than B cost B + an escape payload of about their width. */
    uint64_t wider_bits = 0;
    for (unsigned w = 1; w <= 64; w++)
        wider_bits += hist[w] * (WIDTH_BITS + w);
    for (unsigned B = 1; B <= 64; B++) {
        wider_bits -= hist[B] * (WIDTH_BITS + B);
        uint64_t c = head + (uint64_t)n * B + wider_bits + full[B] * WIDTH_BITS;
        if (c < p.cost) {
            p.cost = c;
            p.B = B;
        }
    }
    return p;
}

static plan plan_codes(const uint64_t *v, size_t n, int sparse_ok);

/* Replaces *best with a sparse plan when one is cheaper: steps that are mostly 0 (memory that
 * moves now and then) cost a flag bit each plus codes for the others only. The common value z
 * tried is 0. */
static void plan_sparse(const uint64_t *v, size_t n, plan *best)
{
    const uint64_t z = 0;
    size_t nz = 0;
    for (size_t i = 0; i < n; i++)
        nz += v[i] != z;
    if (nz == 0 || nz == n || n - nz < n / 8) /* flags cost n bits: pays only with many z */
        return;
    uint64_t *o = xmalloc(nz * sizeof(*o));
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] != z)
            o[j++] = v[i];
    plan p = plan_codes(o, nz, 0); /* o has no z: never sparse again */
    free(o);
    if (p.B > SPARSE_B_MAX)
        return;
    p.cost += WIDTH_BITS + width_of(zz(z)) + n;
    if (p.cost + n / 16 < best->cost) { /* a clear gain: flags compress worse in zstd runs */
        p.sparse = 1;
        p.z = z;
        *best = p;
    }
}

/* Tries the smallest values (as signed) as frame of reference: the minimum, and a few above it
 * in case the lowest ones are outliers better escaped than paid for by every code; with
 * sparse_ok (values), also a sparse plan. Timestamps keep plain codes: their jitter is rarely
 * mostly 0, and zstd runs of chunks compress plain codes better. */
#define LO_TRIES 5
static plan plan_codes(const uint64_t *v, size_t n, int sparse_ok)
{
    static const size_t rank[LO_TRIES] = {0, 1, 2, 4, 8};
    int64_t low[9]; /* the 9 smallest values, ascending */
    size_t n_low = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x = (int64_t)v[i];
        if (n_low == 9 && x >= low[8])
            continue;
        size_t j = n_low < 9 ? n_low++ : 8;
        while (j > 0 && low[j - 1] > x) {
            low[j] = low[j - 1];
            j--;
        }
        low[j] = x;
    }
    plan best = {0, 0, UINT64_MAX, 0, 0, 0};
    for (size_t t = 0; t < LO_TRIES && rank[t] < n_low; t++) {
        if (t > 0 && low[rank[t]] == low[rank[t - 1]])
            continue;
        plan p = plan_for(v, n, (uint64_t)low[rank[t]]);
        if (p.cost < best.cost)
            best = p;
    }
    if (n == 0)
        best.cost = 0;
    else if (sparse_ok && best.B > 0)
        plan_sparse(v, n, &best);
    return best;
}

static void put_codes(bw *w, const uint64_t *v, size_t n, plan p)
{
    bw_put(w, p.sparse ? 65 + p.B : p.B, WIDTH_BITS);
    if (p.sparse)
        put_wide(w, zz(p.z));
    put_wide(w, zz(p.lo));
    if (p.B == 0 && !p.sparse)
        return;
    if (p.sparse)
        for (size_t i = 0; i < n; i++)
            bw_put(w, v[i] != p.z, 1);
    if (p.B == 0)
        return;
    uint64_t esc = ones(p.B);
    for (size_t i = 0; i < n; i++) {
        if (p.sparse && v[i] == p.z)
            continue;
        uint64_t c = v[i] - p.lo;
        if (c < esc) {
            bw_put(w, c, p.B);
        } else {
            bw_put(w, esc, p.B);
            put_wide(w, c - esc);
        }
    }
}

/* ---- Encoder ------------------------------------------------------------------------------------
 */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The value m / 10^k (form 0) or m * 10^-k (form 1). */
static inline double scaled(int64_t m, unsigned k, unsigned form)
{
    if (k == 0)
        return (double)m;
    return form ? (double)m * inv10_tab[k] : (double)m / pow10_tab[k];
}

static inline uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static inline double from_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Smallest k, then form, with every value exactly scaled(m, k, form). Failing that, the smallest
 * k with every value within RESID_MAX units in the last place of scaled(m, k, 0): r[i] gets the
 * differences of the bit patterns and *resid is set. -1 if neither (or a value is not finite).
 * Fills m. */
static int find_scale(const tsdb_sample *s, size_t n, int64_t *m, uint64_t *r, unsigned *form_out,
                      unsigned *resid)
{
    *resid = 0;
    for (unsigned k = 0; k <= MAX_K; k++) {
        for (unsigned form = 0; form < (k ? 2u : 1u); form++) {
            size_t i = 0;
            for (; i < n; i++) {
                double v = s[i].v;
                if (!isfinite(v))
                    return -1;
                double x = v * pow10_tab[k];
                if (!(fabs(x) < MAX_EXACT))
                    break;
                int64_t mi = (int64_t)nearbyint(x);
                double back = scaled(mi, k, form);
                if (memcmp(&back, &v, sizeof v) != 0) /* also rejects -0.0 */
                    break;
                m[i] = mi;
            }
            if (i == n) {
                *form_out = form;
                return (int)k;
            }
        }
    }
    for (unsigned k = 0; k <= MAX_K; k++) {
        size_t i = 0;
        for (; i < n; i++) {
            double x = s[i].v * pow10_tab[k];
            if (!(fabs(x) < MAX_EXACT))
                break;
            int64_t mi = (int64_t)nearbyint(x);
            int64_t d = (int64_t)(bits_of(s[i].v) - bits_of(scaled(mi, k, 0)));
            if (d < -RESID_MAX || d > RESID_MAX)
                break;
            m[i] = mi;
            r[i] = (uint64_t)d;
        }
        if (i == n) {
            *form_out = 0;
            *resid = 1;
            return (int)k;
        }
    }
    return -1;
}

/* Writes the n - 1 steps a[] as is (vmode 0) or as differences of consecutive steps (vmode 1),
 * whichever is smaller; b is scratch of n - 2. */
static void put_steps(bw *w, const uint64_t *a, size_t n1, uint64_t *b)
{
    for (size_t i = 1; i < n1; i++)
        b[i - 1] = a[i] - a[i - 1];
    plan ps = plan_codes(a, n1, 1);
    plan pd = plan_codes(b, n1 - 1, 1);
    uint64_t cost_d = WIDTH_BITS + width_of(zz(a[0])) + (n1 >= 2 ? pd.cost : 0);
    if (cost_d < ps.cost) {
        bw_put(w, 1, 1);
        put_wide(w, zz(a[0]));
        if (n1 >= 2)
            put_codes(w, b, n1 - 1, pd);
    } else {
        bw_put(w, 0, 1);
        put_codes(w, a, n1, ps);
    }
}

/* The value part for scaled integers m (k, form, resid as found by find_scale), then flush. */
static void put_values(bw *w, const int64_t *m, size_t n, unsigned k, unsigned form, unsigned resid,
                       uint64_t *a, uint64_t *b, uint64_t *r)
{
    bw_put(w, k, 4);
    bw_put(w, form, 1);
    bw_put(w, resid, 1);
    put_wide(w, zz((uint64_t)m[0]));
    if (n >= 2) {
        uint64_t g = 0;
        for (size_t i = 1; i < n; i++) {
            int64_t d = m[i] - m[i - 1]; /* |m| < 2^53: no overflow */
            g = gcd64(g, (uint64_t)(d < 0 ? -d : d));
        }
        if (g == 0)
            g = 1;
        for (size_t i = 1; i < n; i++)
            a[i - 1] = (uint64_t)((m[i] - m[i - 1]) / (int64_t)g);
        put_wide(w, g);
        put_steps(w, a, n - 1, b);
    }
    if (resid)
        put_codes(w, r, n, plan_codes(r, n, 1));
    bw_flush(w);
}

/* Values accumulated in binary: v[i] = v[i - 1] + (double)q[i] * u with u = scaled(g, k, form)
 * (what a program adding ticks * 0.15 to a running total gives). Finds the smallest k, then
 * form, up to max_k, for which every value follows bit for bit; fills q[0..n-2] with the steps
 * q[i] / g. */
static int find_accum(const tsdb_sample *s, size_t n, int max_k, uint64_t *q, unsigned *k_out,
                      unsigned *form_out, uint64_t *g_out)
{
    if (n < 2)
        return 0;
    for (unsigned k = 0; (int)k <= max_k; k++) {
        uint64_t g = 0;
        size_t i = 1;
        for (; i < n; i++) {
            double x = (s[i].v - s[i - 1].v) * pow10_tab[k];
            if (!(fabs(x) < MAX_EXACT))
                break;
            int64_t qi = (int64_t)nearbyint(x);
            if (fabs(x - (double)qi) > 1e-3) /* not this k: values would not follow (a shortcut) */
                break;
            q[i - 1] = (uint64_t)qi;
            g = gcd64(g, (uint64_t)(qi < 0 ? -qi : qi));
        }
        if (i < n || g == 0)
            continue;
        for (unsigned form = 0; form < (k ? 2u : 1u); form++) {
            double u = scaled((int64_t)g, k, form);
            size_t j = 1;
            for (; j < n; j++) {
                double v = s[j - 1].v + (double)((int64_t)q[j - 1] / (int64_t)g) * u;
                if (memcmp(&v, &s[j].v, sizeof v) != 0)
                    break;
            }
            if (j == n) {
                for (size_t t = 0; t + 1 < n; t++)
                    q[t] = (uint64_t)((int64_t)q[t] / (int64_t)g);
                *k_out = k;
                *form_out = form;
                *g_out = g;
                return 1;
            }
        }
    }
    return 0;
}

int tsdb_dense_encode(const tsdb_sample *s, size_t n, tsdb_buf *out)
{
    if (n == 0 || n > 65535)
        return TSDB_EINVAL;
    for (size_t i = 1; i < n; i++)
        if (s[i].t <= s[i - 1].t)
            return TSDB_EINVAL;
    int64_t *m = xmalloc(n * sizeof(*m));
    uint64_t *a = xmalloc(3 * n * sizeof(*a)), *b = a + n, *r = a + 2 * n;
    unsigned form = 0, resid = 0, ak = 0, aform = 0;
    uint64_t ag = 0, *q = xmalloc(n * sizeof(*q));
    int k = find_scale(s, n, m, r, &form, &resid);
    /* Sums computed in binary are often exact only at a large k, or not at all: try smaller k. */
    int accum = find_accum(s, n, k < 0 || resid ? MAX_K : k - 1, q, &ak, &aform, &ag);
    if (k < 0 && !accum) {
        free(m);
        free(a);
        free(q);
        return TSDB_EINVAL;
    }

    tsdb_buf_putc(out, (unsigned char)(n >> 8));
    tsdb_buf_putc(out, (unsigned char)n);
    bw w = {out, 0, 0};

    /* Timestamps: dod (mode 0) or offsets from the grid t0 + i * step (mode 1). */
    bw_put(&w, (uint64_t)s[0].t, 64);
    if (n >= 2) {
        uint64_t d1 = (uint64_t)s[1].t - (uint64_t)s[0].t, d_prev = d1;
        for (size_t i = 2; i < n; i++) {
            uint64_t d = (uint64_t)s[i].t - (uint64_t)s[i - 1].t;
            a[i - 2] = d - d_prev;
            d_prev = d;
        }
        plan pd = plan_codes(a, n - 2, 0);
        uint64_t cost_d = WIDTH_BITS + width_of(zz(d1)) + (n >= 3 ? pd.cost : 0);
        uint64_t span = (uint64_t)s[n - 1].t - (uint64_t)s[0].t;
        uint64_t step = span / (n - 1) + (span % (n - 1) >= (n - 1) - span % (n - 1) ? 1 : 0);
        for (size_t i = 1; i < n; i++)
            b[i - 1] = (uint64_t)s[i].t - (uint64_t)s[0].t - step * i;
        plan pg = plan_codes(b, n - 1, 0);
        uint64_t cost_g = WIDTH_BITS + width_of(zz(step)) + pg.cost;
        if (cost_g < cost_d) {
            bw_put(&w, 1, 1);
            put_wide(&w, zz(step));
            put_codes(&w, b, n - 1, pg);
        } else {
            bw_put(&w, 0, 1);
            put_wide(&w, zz(d1));
            if (n >= 3)
                put_codes(&w, a, n - 2, pd);
        }
    }

    bw_flush(&w); /* the value part starts on a whole byte */

    /* Values: scaled decimals, or sums of scaled steps when that codes smaller. */
    size_t start = out->len;
    if (k >= 0)
        put_values(&w, m, n, (unsigned)k, form, resid, a, b, r);
    if (accum) {
        tsdb_buf alt;
        tsdb_buf_init(&alt);
        bw wa = {&alt, 0, 0};
        bw_put(&wa, ak, 4);
        bw_put(&wa, 3, 2); /* form 1 with resid 1: accumulated */
        bw_put(&wa, aform, 1);
        bw_put(&wa, bits_of(s[0].v), 64);
        put_wide(&wa, ag);
        put_steps(&wa, q, n - 1, b);
        bw_flush(&wa);
        if (k < 0 || alt.len < out->len - start) {
            out->len = start;
            tsdb_buf_put(out, alt.p, alt.len);
        }
        tsdb_buf_fini(&alt);
    }
    free(q);
    free(m);
    free(a);
    return TSDB_OK;
}

/* ---- Decoder ------------------------------------------------------------------------------------
 */

typedef struct br {
    const unsigned char *p;
    size_t len;   /* bytes */
    size_t nbits; /* len * 8 */
    size_t pos;   /* next bit */
    int err;
} br;

static inline uint64_t br_get(br *r, unsigned w)
{
    if (w == 0)
        return 0;
    if (r->err || w > 64 || r->nbits - r->pos < w) {
        r->err = 1;
        return 0;
    }
    size_t byte = r->pos >> 3;
    unsigned off = (unsigned)(r->pos & 7);
    uint64_t hi = 0;
    if (byte + 8 <= r->len) {
        hi = tsdb_get_u64be(r->p + byte);
    } else {
        for (size_t i = 0; i < 8; i++)
            hi = hi << 8 | (byte + i < r->len ? r->p[byte + i] : 0);
    }
    uint64_t v;
    if (off + w <= 64) {
        v = (hi << off) >> (64 - w);
    } else {
        unsigned rest = off + w - 64;
        uint64_t lo = byte + 8 < r->len ? r->p[byte + 8] : 0;
        v = ((hi << off) >> (64 - w)) | (lo >> (8 - rest));
    }
    r->pos += w;
    return v;
}

static uint64_t get_wide(br *r)
{
    unsigned w = (unsigned)br_get(r, WIDTH_BITS);
    if (w > 64) {
        r->err = 1;
        return 0;
    }
    return br_get(r, w);
}

/* Reads a code header: base width and frame of reference. */
/* Reads a code header for count integers (and skips a sparse code's flags, read by get_code). */
static int get_plan(br *r, plan *p, size_t count)
{
    p->B = (unsigned)br_get(r, WIDTH_BITS);
    p->sparse = p->B > 64;
    p->z = 0;
    if (p->sparse) {
        p->B -= 65; /* 0..62 */
        p->z = unzz(get_wide(r));
    }
    p->lo = unzz(get_wide(r));
    if (r->err)
        return 0;
    if (p->sparse) {
        if (r->nbits - r->pos < count)
            return 0;
        p->fpos = r->pos;
        r->pos += count;
    }
    return 1;
}

/* w bits (0..63) at the read position, without a branch on w: the flags of sparse codes are
 * random, and a branch on them would be mispredicted often. */
static inline uint64_t br_get_any(br *r, unsigned w)
{
    if (r->err || r->nbits - r->pos < w) {
        r->err = 1;
        return 0;
    }
    size_t byte = r->pos >> 3;
    unsigned off = (unsigned)(r->pos & 7);
    uint64_t hi = 0;
    if (byte + 8 <= r->len) {
        hi = tsdb_get_u64be(r->p + byte);
    } else {
        for (size_t i = 0; i < 8; i++)
            hi = hi << 8 | (byte + i < r->len ? r->p[byte + i] : 0);
    }
    uint64_t v = ((hi << off) >> 1) >> (63 - w);
    if (off + w > 64) {
        unsigned rest = off + w - 64;
        uint64_t lo = byte + 8 < r->len ? r->p[byte + 8] : 0;
        v |= lo >> (8 - rest);
    }
    r->pos += w;
    return v;
}

static inline uint64_t get_sparse_code(br *r, plan *p)
{
    uint64_t f = (uint64_t)(r->p[p->fpos >> 3] >> (7 - (p->fpos & 7))) & 1;
    p->fpos++;
    if (p->B == 0)
        return p->z + ((p->lo - p->z) & (0 - f));
    uint64_t c = br_get_any(r, (unsigned)f * p->B), esc = ones(p->B);
    if (f & (c == esc) & (p->B > 0))
        c += get_wide(r);
    return p->z + ((p->lo + c - p->z) & (0 - f));
}

static inline uint64_t get_code(br *r, plan *p)
{
    if (p->sparse)
        return get_sparse_code(r, p);
    if (p->B == 0)
        return p->lo;
    uint64_t c = br_get(r, p->B), esc = ones(p->B);
    if (c == esc)
        c += get_wide(r);
    return p->lo + c;
}

uint16_t tsdb_dense_count(const void *p, size_t len)
{
    const unsigned char *b = p;
    return len < 2 ? 0 : (uint16_t)(b[0] << 8 | b[1]);
}

/* Reads the timestamp part of n samples into out[].t, with its zero padding to a whole byte. */
static int decode_ts(br *r, size_t n, tsdb_sample *out)
{
    plan pl;
    uint64_t t0 = br_get(r, 64);
    out[0].t = (int64_t)t0;
    if (n >= 2) {
        if (br_get(r, 1)) { /* grid */
            uint64_t step = unzz(get_wide(r)), grid = t0;
            if (!get_plan(r, &pl, n - 1))
                return TSDB_ECORRUPT;
            for (size_t i = 1; i < n && !r->err; i++) {
                grid += step;
                out[i].t = (int64_t)(grid + get_code(r, &pl));
            }
        } else { /* dod */
            uint64_t d = unzz(get_wide(r));
            out[1].t = (int64_t)(t0 + d);
            if (n >= 3 && !get_plan(r, &pl, n - 2))
                return TSDB_ECORRUPT;
            for (size_t i = 2; i < n && !r->err; i++) {
                d += get_code(r, &pl);
                out[i].t = (int64_t)((uint64_t)out[i - 1].t + d);
            }
        }
    }
    if ((r->pos & 7) && br_get(r, 8 - (unsigned)(r->pos & 7)) != 0)
        return TSDB_ECORRUPT;
    if (r->err)
        return TSDB_ECORRUPT;
    for (size_t i = 1; i < n; i++)
        if (out[i].t <= out[i - 1].t)
            return TSDB_ECORRUPT;
    return TSDB_OK;
}

/* Only zero padding may follow, and less than a byte of it. */
static int check_end(br *r)
{
    if (r->err || r->nbits - r->pos >= 8)
        return TSDB_ECORRUPT;
    if (r->pos < r->nbits && br_get(r, (unsigned)(r->nbits - r->pos)) != 0)
        return TSDB_ECORRUPT;
    return TSDB_OK;
}

/* The accumulated value part, after its k and marker: form, v0, g, steps. */
static int decode_accum(br *r, size_t n, unsigned k, tsdb_sample *out)
{
    plan pl;
    unsigned form = (unsigned)br_get(r, 1);
    if (k == 0 && form)
        return TSDB_ECORRUPT;
    double v = from_bits(br_get(r, 64));
    out[0].v = v;
    if (n < 2)
        return TSDB_ECORRUPT; /* the encoder never writes one */
    uint64_t g = get_wide(r);
    unsigned mode = (unsigned)br_get(r, 1);
    if (g == 0 || g >= (1ULL << 53) || r->err)
        return TSDB_ECORRUPT;
    double u = scaled((int64_t)g, k, form);
    uint64_t step = 0;
    if (mode == 1)
        step = unzz(get_wide(r));
    if ((mode == 0 || n >= 3) && !get_plan(r, &pl, mode == 0 ? n - 1 : n - 2))
        return TSDB_ECORRUPT;
    for (size_t i = 1; i < n && !r->err; i++) {
        if (mode == 0)
            step = get_code(r, &pl);
        else if (i >= 2)
            step += get_code(r, &pl);
        v += (double)(int64_t)step * u;
        out[i].v = v;
    }
    return check_end(r);
}

/* Reads the value part of n samples into out[].v; it must end the input (zero padding). */
static int decode_values(br *r, size_t n, tsdb_sample *out)
{
    plan pl;
    unsigned k = (unsigned)br_get(r, 4), form = (unsigned)br_get(r, 1);
    unsigned resid = (unsigned)br_get(r, 1);
    if (form && resid)
        return decode_accum(r, n, k, out);
    if (k == 0 && form)
        return TSDB_ECORRUPT;
    uint64_t m = unzz(get_wide(r));
    out[0].v = scaled((int64_t)m, k, form);
    if (n >= 2) {
        uint64_t g = get_wide(r);
        unsigned mode = (unsigned)br_get(r, 1);
        if (g == 0 || r->err)
            return TSDB_ECORRUPT;
        if (mode == 0) {
            if (!get_plan(r, &pl, n - 1))
                return TSDB_ECORRUPT;
            for (size_t i = 1; i < n && !r->err; i++) {
                m += get_code(r, &pl) * g;
                out[i].v = scaled((int64_t)m, k, form);
            }
        } else {
            uint64_t step = unzz(get_wide(r));
            m += step * g;
            out[1].v = scaled((int64_t)m, k, form);
            if (n >= 3 && !get_plan(r, &pl, n - 2))
                return TSDB_ECORRUPT;
            for (size_t i = 2; i < n && !r->err; i++) {
                step += get_code(r, &pl);
                m += step * g;
                out[i].v = scaled((int64_t)m, k, form);
            }
        }
    }
    if (resid) {
        if (!get_plan(r, &pl, n))
            return TSDB_ECORRUPT;
        for (size_t i = 0; i < n && !r->err; i++)
            out[i].v = from_bits(bits_of(out[i].v) + get_code(r, &pl));
    }
    return check_end(r);
}

int tsdb_dense_decode(const void *p, size_t len, tsdb_sample *out, size_t cap, size_t *n_out)
{
    size_t n = tsdb_dense_count(p, len);
    if (n == 0 || n > cap)
        return TSDB_ECORRUPT;
    br r = {(const unsigned char *)p + 2, len - 2, (len - 2) * 8, 0, 0};
    if (decode_ts(&r, n, out) != TSDB_OK || decode_values(&r, n, out) != TSDB_OK)
        return TSDB_ECORRUPT;
    *n_out = n;
    return TSDB_OK;
}

size_t tsdb_dense_ts_len(const void *p, size_t len)
{
    size_t n = tsdb_dense_count(p, len), codes = 0;
    if (n == 0)
        return 0;
    br r = {(const unsigned char *)p + 2, len - 2, (len - 2) * 8, 0, 0};
    plan pl = {0, 0, 0, 0, 0, 0};
    int ok = 1;
    br_get(&r, 64);
    if (n >= 2) {
        int grid = (int)br_get(&r, 1);
        get_wide(&r);
        codes = grid ? n - 1 : n - 2;
        if (codes > 0)
            ok = get_plan(&r, &pl, codes);
    }
    for (size_t i = 0; ok && i < codes && !r.err; i++)
        get_code(&r, &pl);
    if (!ok || r.err)
        return 0;
    return 2 + (r.pos + 7) / 8;
}
