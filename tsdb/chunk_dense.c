/* tsdb/chunk_dense.c -- the dense chunk encoding: scaled-integer values and per-chunk bit widths.
 *
 * Why. XOR compresses a value by how many bits differ from the previous one. Real metric values
 * are short decimals: a byte counter growing by ~200000 differs from its predecessor in ~20
 * mantissa bits plus the exponent, a CPU-seconds counter in hundredths in ~45; so XOR spends
 * 30-50 bits on steps that are 11-18 bits of information. And Prometheus' fixed timestamp
 * buckets spend 16 bits on a scrape jitter of a few milliseconds. DENSE removes both costs,
 * losslessly, for chunks that are persisted (blocks are written once and read many times).
 *
 * Values. Find the smallest k in 0..15 such that every value v equals (double)m / 10^k exactly
 * (bit for bit) for an integer m = round(v * 10^k) with |m| < 2^53. Such an m always exists for
 * values parsed from short decimal text. Then code the integers m: their steps d[i] = m[i] -
 * m[i-1] share a factor g (the gcd; memory in pages gives 4096), so store d[i] / g, either as
 * is (unsigned when no step is negative: counters), zig-zagged (gauges), or as the difference of
 * consecutive steps (series that grow at a near-constant rate), whichever costs fewer bits.
 * Chunks holding NaN, infinities, -0 or values without such an m are not encoded (the block
 * keeps them in XOR).
 *
 * Timestamps. t0 raw, the first delta, then deltas of deltas (dod), as Gorilla does, but coded
 * with a width chosen for this chunk.
 *
 * Integer codes. A sequence of unsigned integers is written with one base width B (0..64)
 * chosen per sequence to minimise its total size:
 *
 *   value of bit width <= B     '0' + B bits               (B = 0: a zero costs 1 bit)
 *   wider value (width w)       '1' + 7 bits w + w bits
 *
 * Signed integers are zig-zagged first: (x << 1) ^ (x >> 63), so 0, -1, 1, -2 -> 0, 1, 2, 3.
 * All arithmetic on deltas is modulo 2^64, so any 64-bit pattern round-trips.
 *
 * Layout. Bits are written most significant first and padded with zeros to a whole byte.
 *
 *   count      u16 big endian (1..65535), as in XOR chunks
 *   t0         64 bits
 *   [n >= 2]   first delta: 7-bit width w + w bits of zigzag(t1 - t0)
 *   [n >= 3]   7-bit B, then n-2 codes of zigzag(dod)
 *   k          4 bits, decimal places
 *   m0         7-bit width w + w bits of zigzag(m0)
 *   [n >= 2]   g: 7-bit width w (>= 1) + w bits
 *              mode: 2 bits; 0 = steps zig-zagged, 1 = steps unsigned, 2 = step differences
 *              [mode 2] first step: 7-bit width w + w bits of zigzag(d1 / g)
 *              7-bit B, then the codes: steps d[1..n-1]/g (modes 0, 1) or zigzag of the
 *              differences of consecutive steps for i = 2..n-1 (mode 2)
 *
 * Example: (1000, 1.5) (2000, 2.5) (3000, 3.5) -> k = 1, m = 15 25 35, g = 10, steps 1 1.
 *   00 03 | t0 = 1000 in 64 bits | w=11 zigzag(1000)=2000 | B=0, dod 0: '0' | k=0001 |
 *   w=5 zigzag(15)=30 | g: w=4 10 | mode 01 | B=1, steps '0'1 '0'1 | pad
 *
 * Reading validates everything: widths <= 64, g >= 1, mode <= 2, k <= 15, strictly ascending
 * timestamps, no bits past the end, and only zero padding after the last code (at most 7 bits);
 * anything else is TSDB_ECORRUPT.
 */
#include "tsdb/chunk_dense.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH_BITS 7
#define MAX_K      15
#define MAX_EXACT  9007199254740992.0 /* 2^53 */

static const double pow10_tab[MAX_K + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                            1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

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

/* ---- Choosing a base width --------------------------------------------------------------------
 */

/* Total bits of coding v[0..n) with base width B. */
static uint64_t codes_cost(const uint64_t *hist, unsigned B)
{
    uint64_t bits = WIDTH_BITS;
    for (unsigned w = 0; w <= 64; w++)
        bits += hist[w] * (w <= B ? 1 + B : 1 + WIDTH_BITS + w);
    return bits;
}

static unsigned best_base(const uint64_t *v, size_t n, uint64_t *cost)
{
    uint64_t hist[65] = {0};
    for (size_t i = 0; i < n; i++)
        hist[width_of(v[i])]++;
    unsigned best = 0;
    uint64_t best_cost = UINT64_MAX;
    for (unsigned B = 0; B <= 64; B++) {
        uint64_t c = codes_cost(hist, B);
        if (c < best_cost) {
            best_cost = c;
            best = B;
        }
    }
    *cost = best_cost;
    return best;
}

static void put_codes(bw *w, const uint64_t *v, size_t n, unsigned B)
{
    bw_put(w, B, WIDTH_BITS);
    for (size_t i = 0; i < n; i++) {
        unsigned wd = width_of(v[i]);
        if (wd <= B) {
            bw_put(w, 0, 1);
            bw_put(w, v[i], B);
        } else {
            bw_put(w, 1, 1);
            put_wide(w, v[i]);
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

/* Smallest k with every value an exact m / 10^k; -1 if none. Fills m. */
static int find_scale(const tsdb_sample *s, size_t n, int64_t *m)
{
    for (int k = 0; k <= MAX_K; k++) {
        size_t i = 0;
        for (; i < n; i++) {
            double v = s[i].v;
            if (!isfinite(v))
                return -1;
            double x = v * pow10_tab[k];
            if (!(fabs(x) < MAX_EXACT))
                break;
            double r = nearbyint(x);
            int64_t mi = (int64_t)r;
            double back = k ? (double)mi / pow10_tab[k] : (double)mi;
            if (memcmp(&back, &v, sizeof v) != 0) /* also rejects -0.0 */
                break;
            m[i] = mi;
        }
        if (i == n)
            return k;
    }
    return -1;
}

int tsdb_dense_encode(const tsdb_sample *s, size_t n, tsdb_buf *out)
{
    if (n == 0 || n > 65535)
        return TSDB_EINVAL;
    for (size_t i = 1; i < n; i++)
        if (s[i].t <= s[i - 1].t)
            return TSDB_EINVAL;
    int64_t *m = xmalloc(n * sizeof(*m));
    uint64_t *codes = xmalloc(3 * n * sizeof(*codes));
    uint64_t *steps = codes + n, *diffs = codes + 2 * n;
    int k = find_scale(s, n, m);
    if (k < 0) {
        free(m);
        free(codes);
        return TSDB_EINVAL;
    }

    tsdb_buf_putc(out, (unsigned char)(n >> 8));
    tsdb_buf_putc(out, (unsigned char)n);
    bw w = {out, 0, 0};

    /* Timestamps. */
    bw_put(&w, (uint64_t)s[0].t, 64);
    if (n >= 2) {
        uint64_t d_prev = (uint64_t)s[1].t - (uint64_t)s[0].t;
        put_wide(&w, zz(d_prev));
        if (n >= 3) {
            for (size_t i = 2; i < n; i++) {
                uint64_t d = (uint64_t)s[i].t - (uint64_t)s[i - 1].t;
                codes[i - 2] = zz(d - d_prev);
                d_prev = d;
            }
            uint64_t cost;
            unsigned B = best_base(codes, n - 2, &cost);
            put_codes(&w, codes, n - 2, B);
        }
    }

    /* Values. */
    bw_put(&w, (uint64_t)k, 4);
    put_wide(&w, zz((uint64_t)m[0]));
    if (n >= 2) {
        uint64_t g = 0;
        int any_negative = 0;
        for (size_t i = 1; i < n; i++) {
            int64_t d = m[i] - m[i - 1]; /* |m| < 2^53: no overflow */
            if (d < 0)
                any_negative = 1;
            g = gcd64(g, (uint64_t)(d < 0 ? -d : d));
        }
        if (g == 0)
            g = 1;
        for (size_t i = 1; i < n; i++)
            steps[i - 1] = (uint64_t)((m[i] - m[i - 1]) / (int64_t)g);
        /* Mode 0: zig-zagged steps; 1: unsigned steps; 2: differences of steps. */
        for (size_t i = 0; i + 1 < n; i++)
            codes[i] = zz(steps[i]);
        uint64_t c0, c1 = UINT64_MAX, c2 = UINT64_MAX;
        unsigned B0 = best_base(codes, n - 1, &c0), B1 = 0, B2 = 0;
        if (!any_negative)
            B1 = best_base(steps, n - 1, &c1);
        for (size_t i = 1; i + 1 < n; i++)
            diffs[i - 1] = zz(steps[i] - steps[i - 1]);
        if (n >= 3) {
            B2 = best_base(diffs, n - 2, &c2);
            c2 += WIDTH_BITS + width_of(zz(steps[0]));
        }
        put_wide(&w, g);
        if (c1 <= c0 && c1 <= c2) {
            bw_put(&w, 1, 2);
            put_codes(&w, steps, n - 1, B1);
        } else if (c2 < c0) {
            bw_put(&w, 2, 2);
            put_wide(&w, zz(steps[0]));
            put_codes(&w, diffs, n - 2, B2);
        } else {
            bw_put(&w, 0, 2);
            put_codes(&w, codes, n - 1, B0);
        }
    }
    bw_flush(&w);
    free(m);
    free(codes);
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

static inline uint64_t get_code(br *r, unsigned B)
{
    if (br_get(r, 1) == 0)
        return br_get(r, B);
    unsigned w = (unsigned)br_get(r, WIDTH_BITS);
    if (w <= B || w > 64) { /* a wide code must be wider than B */
        r->err = 1;
        return 0;
    }
    return br_get(r, w);
}

static int get_base(br *r, unsigned *B)
{
    *B = (unsigned)br_get(r, WIDTH_BITS);
    return *B <= 64 && !r->err;
}

uint16_t tsdb_dense_count(const void *p, size_t len)
{
    const unsigned char *b = p;
    return len < 2 ? 0 : (uint16_t)(b[0] << 8 | b[1]);
}

int tsdb_dense_decode(const void *p, size_t len, tsdb_sample *out, size_t cap, size_t *n_out)
{
    size_t n = tsdb_dense_count(p, len);
    if (n == 0 || n > cap)
        return TSDB_ECORRUPT;
    br r = {(const unsigned char *)p + 2, len - 2, (len - 2) * 8, 0, 0};
    unsigned B;

    out[0].t = (int64_t)br_get(&r, 64);
    if (n >= 2) {
        uint64_t d = unzz(get_wide(&r));
        out[1].t = (int64_t)((uint64_t)out[0].t + d);
        if (n >= 3) {
            if (!get_base(&r, &B))
                return TSDB_ECORRUPT;
            for (size_t i = 2; i < n && !r.err; i++) {
                d += unzz(get_code(&r, B));
                out[i].t = (int64_t)((uint64_t)out[i - 1].t + d);
            }
        }
    }
    unsigned k = (unsigned)br_get(&r, 4);
    double scale = pow10_tab[k & MAX_K];
    uint64_t m = unzz(get_wide(&r));
    out[0].v = k ? (double)(int64_t)m / scale : (double)(int64_t)m;
    if (n >= 2) {
        uint64_t g = get_wide(&r);
        unsigned mode = (unsigned)br_get(&r, 2);
        if (g == 0 || mode > 2 || r.err)
            return TSDB_ECORRUPT;
        uint64_t step = 0;
        if (mode == 2)
            step = unzz(get_wide(&r));
        if (!get_base(&r, &B))
            return TSDB_ECORRUPT;
        for (size_t i = 1; i < n && !r.err; i++) {
            if (mode == 2) {
                if (i >= 2)
                    step += unzz(get_code(&r, B));
            } else {
                uint64_t c = get_code(&r, B);
                step = mode == 0 ? unzz(c) : c;
            }
            m += step * g;
            out[i].v = k ? (double)(int64_t)m / scale : (double)(int64_t)m;
        }
    }
    if (r.err)
        return TSDB_ECORRUPT;
    /* Only zero padding may follow, and less than a byte of it. */
    if (r.nbits - r.pos >= 8)
        return TSDB_ECORRUPT;
    if (r.pos < r.nbits && br_get(&r, (unsigned)(r.nbits - r.pos)) != 0)
        return TSDB_ECORRUPT;
    for (size_t i = 1; i < n; i++)
        if (out[i].t <= out[i - 1].t)
            return TSDB_ECORRUPT;
    *n_out = n;
    return TSDB_OK;
}
