/* Unit tests for tsdb/chunk.c: hand-worked byte vectors, random round trips against a bit-by-bit
 * reference writer (the byte/bit semantics of Prometheus' bstream, including its trailing empty
 * byte), seek, and truncated or corrupt input.
 *
 * CHUNK_TEST_SEED=<n> reruns the random tests with a given seed (printed on every run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/base.h"
#include "tsdb/chunk.h"
#include "tsdb/tsdb.h"

/* ---- Helpers ------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double from_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static int seed_setup(void **state)
{
    (void)state;
    const char *env = getenv("CHUNK_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock() << 20;
    printf("chunk test seed: %llu (rerun with CHUNK_TEST_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    rng_state = seed;
    return 0;
}

/* Encodes samples with our appender into a fresh heap copy. */
static unsigned char *encode(const tsdb_sample *s, size_t n, size_t *len)
{
    tsdb_chunk_app a;
    tsdb_chunk_app_init(&a);
    for (size_t i = 0; i < n; i++)
        tsdb_chunk_app_add(&a, s[i].t, s[i].v);
    size_t l;
    const unsigned char *p = tsdb_chunk_app_bytes(&a, &l);
    unsigned char *out = malloc(l ? l : 1);
    memcpy(out, p, l);
    tsdb_chunk_app_fini(&a);
    *len = l;
    return out;
}

static void print_hex(const char *what, const unsigned char *p, size_t n)
{
    printf("%s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        printf(" %02X", p[i]);
    printf("\n");
}

/* ---- Reference writer: Prometheus' bstream, one bit or byte at a time --------------------- */

typedef struct ref_bs {
    unsigned char *p;
    size_t len, cap;
    unsigned count; /* free bits in the last byte */
} ref_bs;

static void ref_push(ref_bs *b, unsigned char c)
{
    if (b->len == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    b->p[b->len++] = c;
}

static void ref_bit(ref_bs *b, int bit)
{
    if (b->count == 0) {
        ref_push(b, 0);
        b->count = 8;
    }
    if (bit)
        b->p[b->len - 1] |= (unsigned char)(1u << (b->count - 1));
    b->count--;
}

static void ref_byte(ref_bs *b, unsigned char byt)
{
    if (b->count == 0) {
        ref_push(b, 0);
        b->count = 8;
    }
    b->p[b->len - 1] |= (unsigned char)(byt >> (8 - b->count));
    ref_push(b, (unsigned char)((unsigned)byt << b->count));
}

static void ref_bits(ref_bs *b, uint64_t u, unsigned n)
{
    u <<= 64 - n;
    while (n >= 8) {
        ref_byte(b, (unsigned char)(u >> 56));
        u <<= 8;
        n -= 8;
    }
    while (n > 0) {
        ref_bit(b, (int)(u >> 63));
        u <<= 1;
        n--;
    }
}

static void ref_uvarint(ref_bs *b, uint64_t v)
{
    while (v >= 0x80) {
        ref_byte(b, (unsigned char)(v | 0x80));
        v >>= 7;
    }
    ref_byte(b, (unsigned char)v);
}

static int ref_fits(int64_t x, unsigned n)
{
    int64_t half = (int64_t)1 << (n - 1);
    return -(half - 1) <= x && x <= half;
}

/* The whole chunk for s[0..n), written the slow way. Caller frees. */
static unsigned char *ref_encode(const tsdb_sample *s, size_t n, size_t *len)
{
    ref_bs b = {0};
    ref_push(&b, 0);
    ref_push(&b, 0);
    int64_t pt = 0;
    uint64_t pdelta = 0, pv = 0;
    unsigned lead_w = 0xff, trail_w = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = bits_of(s[i].v), delta = 0;
        if (i == 0) {
            uint64_t zz = ((uint64_t)s[i].t << 1) ^ (uint64_t)(s[i].t >> 63);
            ref_uvarint(&b, zz);
            ref_bits(&b, v, 64);
        } else {
            delta = (uint64_t)s[i].t - (uint64_t)pt;
            if (i == 1) {
                ref_uvarint(&b, delta);
            } else {
                int64_t dod = (int64_t)(delta - pdelta);
                if (dod == 0) {
                    ref_bit(&b, 0);
                } else if (ref_fits(dod, 14)) {
                    ref_bits(&b, 2, 2);
                    ref_bits(&b, (uint64_t)dod, 14);
                } else if (ref_fits(dod, 17)) {
                    ref_bits(&b, 6, 3);
                    ref_bits(&b, (uint64_t)dod, 17);
                } else if (ref_fits(dod, 20)) {
                    ref_bits(&b, 14, 4);
                    ref_bits(&b, (uint64_t)dod, 20);
                } else {
                    ref_bits(&b, 15, 4);
                    ref_bits(&b, (uint64_t)dod, 64);
                }
            }
            uint64_t x = v ^ pv;
            if (x == 0) {
                ref_bit(&b, 0);
            } else {
                ref_bit(&b, 1);
                unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
                if (lead >= 32)
                    lead = 31;
                if (lead_w != 0xff && lead >= lead_w && trail >= trail_w) {
                    ref_bit(&b, 0);
                    ref_bits(&b, x >> trail_w, 64 - lead_w - trail_w);
                } else {
                    lead_w = lead;
                    trail_w = trail;
                    ref_bit(&b, 1);
                    ref_bits(&b, lead, 5);
                    unsigned sig = 64 - lead - trail;
                    ref_bits(&b, sig, 6);
                    ref_bits(&b, x >> trail, sig);
                }
            }
        }
        pt = s[i].t;
        pdelta = delta;
        pv = v;
        b.p[0] = (unsigned char)((i + 1) >> 8);
        b.p[1] = (unsigned char)(i + 1);
    }
    *len = b.len;
    return b.p;
}

/* Encodes, compares with the reference bytes, decodes three ways and compares bit for bit. */
static void check_round_trip(const tsdb_sample *s, size_t n, const char *shape)
{
    size_t len, rlen;
    unsigned char *c = encode(s, n, &len);
    unsigned char *r = ref_encode(s, n, &rlen);
    if (len != rlen || memcmp(c, r, len) != 0) {
        printf("shape %s, %zu samples: encoder differs from the reference\n", shape, n);
        print_hex("ours", c, len);
        print_hex("reference", r, rlen);
        fail();
    }
    assert_int_equal(tsdb_chunk_count(c, len), n);

    tsdb_sample *out = calloc(n ? n : 1, sizeof(*out));
    size_t got = 12345;
    assert_int_equal(tsdb_chunk_decode_all(c, len, out, n, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        if (out[i].t != s[i].t || bits_of(out[i].v) != bits_of(s[i].v)) {
            printf("shape %s: sample %zu: got (%lld, %016llx) want (%lld, %016llx)\n", shape, i,
                   (long long)out[i].t, (unsigned long long)bits_of(out[i].v), (long long)s[i].t,
                   (unsigned long long)bits_of(s[i].v));
            fail();
        }
    }

    tsdb_chunk_it it;
    assert_int_equal(tsdb_chunk_it_init(&it, c, len), 0);
    tsdb_sample x;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
        assert_int_equal(x.t, s[i].t);
        assert_int_equal(bits_of(x.v), bits_of(s[i].v));
    }
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 0);

    /* The batch call yields the same samples, whatever the batch sizes. */
    assert_int_equal(tsdb_chunk_it_init(&it, c, len), 0);
    memset(out, 0, (n ? n : 1) * sizeof(*out));
    size_t k = 0;
    int rc;
    while ((rc = tsdb_chunk_it_next_batch(&it, out + k, 1 + rnd_below(130))) > 0)
        k += (size_t)rc;
    assert_int_equal(rc, 0);
    assert_int_equal(k, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].t, s[i].t);
        assert_int_equal(bits_of(out[i].v), bits_of(s[i].v));
    }

    /* Every strict prefix that cuts into the samples' bits is corrupt, never a crash. */
    size_t need = len;
    if (n > 0) {
        /* The last byte may be the empty trailing byte: decoding without it still works. */
        if (c[len - 1] == 0 && tsdb_chunk_decode_all(c, len - 1, out, n, &got) == 0)
            need = len - 1;
    }
    for (size_t l = 0; l < need; l++) {
        unsigned char *cut = malloc(l ? l : 1);
        memcpy(cut, c, l);
        int rcut = tsdb_chunk_decode_all(cut, l, out, n, &got);
        if (rcut != TSDB_ECORRUPT) {
            printf("shape %s: prefix %zu of %zu decoded with %d\n", shape, l, len, rcut);
            fail();
        }
        free(cut);
    }
    free(out);
    free(c);
    free(r);
}

/* ---- Hand-worked vectors ------------------------------------------------------------------ */

static void expect_chunk(const tsdb_sample *s, size_t n, const unsigned char *want, size_t wlen)
{
    size_t len;
    unsigned char *c = encode(s, n, &len);
    if (len != wlen || memcmp(c, want, wlen) != 0) {
        print_hex("got", c, len);
        print_hex("want", want, wlen);
        fail();
    }
    free(c);
}

static void test_vectors(void **state)
{
    (void)state;
    /* Empty: just the count. */
    expect_chunk(NULL, 0, (const unsigned char *)"\x00\x00", 2);

    /* One sample: varint(1000) = zig-zag 2000 = D0 0F, then 1.0's bits, then the empty byte that
     * Prometheus' byte-wise write leaves behind. */
    tsdb_sample s[] = {{1000, 1.0}, {2000, 2.0}, {3000, 3.0}, {4010, 3.0}};
    static const unsigned char one[] = {0x00, 0x01, 0xD0, 0x0F, 0x3F, 0xF0, 0x00,
                                        0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    expect_chunk(s, 1, one, sizeof(one));

    /* (2000, 2.0): uvarint(1000) = E8 07; x = 0x7ff0000000000000: '1' '1' lead 00001,
     * sigbits 001011, 11111111111 -> C2 5F FF (24 bits, ends with single bits: no extra byte).
     * (3000, 3.0): dod 0 '0'; x = 0x0008000000000000, lead 12 trail 51 does not fit the
     * window (trail 51 < 52): '11' 01100 000001 '1'. (4010, 3.0): dod 10: '10' 00000000001010,
     * x 0: '0'. Bits 011011000000011 10000000000010100 -> 6C 07 00 14. */
    static const unsigned char four[] = {0x00, 0x04, 0xD0, 0x0F, 0x3F, 0xF0, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0xE8, 0x07,
                                         0xC2, 0x5F, 0xFF, 0x6C, 0x07, 0x00, 0x14};
    expect_chunk(s, 4, four, sizeof(four));

    /* Negative first timestamp: varint(-1) = 01. Value 0.0. */
    tsdb_sample neg[] = {{-1, 0.0}};
    static const unsigned char negw[] = {0x00, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x00};
    expect_chunk(neg, 1, negw, sizeof(negw));

    /* The trailing byte after XOR bits: v1 ^ v0 has 5 significant bits (lead 19, trail 40),
     * v2 ^ v1 has 8 (lead 23, trail 33; trail < 40 so a new window). After the 2nd sample's
     * uvarint the bits are '11' 10011 000101 11111 (18) and '0' '11' 10111 001000 11111111 (22):
     * 40 bits ending with a whole byte written at a byte boundary, so one empty byte follows.
     * 11100110 00101111 11011101 11001000 11111111 = E6 2F DD C8 FF. */
    uint64_t v1 = 0x1FULL << 40, v2 = v1 ^ (0xFFULL << 33);
    tsdb_sample al[] = {{0, 0.0}, {15000, from_bits(v1)}, {30000, from_bits(v2)}};
    static const unsigned char alw[] = {0x00, 0x03, 0x00, 0,    0,    0,    0,    0,    0,   0,
                                        0,    0x98, 0x75, 0xE6, 0x2F, 0xDD, 0xC8, 0xFF, 0x00};
    expect_chunk(al, 3, alw, sizeof(alw));

    /* Each dod bucket at its edges: +8192 fits 14 bits, -8192 does not. (10, 0): uvarint 0A,
     * '0'. (8212, 0): dod 8192: '10' 10000000000000, '0'. Bits 0 10 10000000000000 0 -> 50 00 00 */
    tsdb_sample e[] = {{0, 0}, {10, 0}, {20 + 8192, 0}};
    static const unsigned char ew[] = {0x00, 0x03, 0x00, 0,    0,    0,    0,   0,
                                       0,    0,    0,    0x0A, 0x50, 0x00, 0x00};
    expect_chunk(e, 3, ew, sizeof(ew));
    /* (10000, 0): uvarint 90 4E, '0'. (11808, 0): dod -8192: '110' + 17 bits of -8192
     * (11110000000000000), '0'. Bits 0 110 11110000000000000 0 -> 6F 00 00 */
    tsdb_sample f[] = {{0, 0}, {10000, 0}, {20000 - 8192, 0}};
    static const unsigned char fw[] = {0x00, 0x03, 0x00, 0,    0,    0,    0,    0,
                                       0,    0,    0,    0x90, 0x4E, 0x6F, 0x00, 0x00};
    expect_chunk(f, 3, fw, sizeof(fw));
}

/* ---- Random round trips ------------------------------------------------------------------- */

enum shape {
    SHAPE_COUNTER,
    SHAPE_GAUGE,
    SHAPE_CONSTANT,
    SHAPE_SPECIAL,
    SHAPE_JUMPS,
    SHAPE_NEGATIVE,
    SHAPE_RANDOM_BITS,
    SHAPE_EXTREME_T,
    SHAPE_N
};

static const char *const shape_names[SHAPE_N] = {"counter",     "gauge",    "constant",
                                                 "special",     "jumps",    "negative-deltas",
                                                 "random-bits", "extreme-t"};

static double special_value(void)
{
    switch (rnd_below(10)) {
    case 0:
        return from_bits(TSDB_STALE_NAN_BITS);
    case 1:
        return NAN;
    case 2:
        return INFINITY;
    case 3:
        return -INFINITY;
    case 4:
        return -0.0;
    case 5:
        return from_bits(0x7ff8000000000001ULL); /* NaN with a payload */
    case 6:
        return from_bits(0xfff0000000000001ULL); /* negative signalling NaN */
    case 7:
        return from_bits(rnd_below(16)); /* tiny subnormals */
    case 8:
        return (double)rnd_below(4);
    default:
        return from_bits(rnd());
    }
}

static void gen(enum shape sh, tsdb_sample *s, size_t n)
{
    int64_t t = (int64_t)(rnd_below(2000000000000ULL)) - 1000000000000LL;
    double v = (double)rnd_below(1000);
    int64_t step = 1 + (int64_t)rnd_below(60000);
    for (size_t i = 0; i < n; i++) {
        switch (sh) {
        case SHAPE_COUNTER:
            t += step + (int64_t)rnd_below(200) - 100;
            v += (double)rnd_below(50);
            break;
        case SHAPE_GAUGE:
            t += step;
            v += ((double)rnd_below(2001) - 1000.0) / 7.0;
            break;
        case SHAPE_CONSTANT:
            t += step;
            break;
        case SHAPE_SPECIAL:
            t += step + (int64_t)rnd_below(3);
            v = rnd_below(2) ? special_value() : v + 1;
            break;
        case SHAPE_JUMPS: {
            static const int64_t jumps[] = {0,     1,      8191,   8192,     8193,     65536,
                                            65537, 524288, 524289, 86400000, 1LL << 40};
            t += rnd_below(3) ? step : jumps[rnd_below(sizeof(jumps) / sizeof(jumps[0]))];
            v = (double)(int64_t)rnd_below(100);
            break;
        }
        case SHAPE_NEGATIVE:
            /* The format carries any delta; the head never writes these, the codec must. */
            t += (int64_t)rnd_below(200000) - 100000;
            v = -v + 0.5;
            break;
        case SHAPE_RANDOM_BITS:
            t = (int64_t)rnd();
            v = from_bits(rnd() >> rnd_below(64) << rnd_below(64));
            break;
        case SHAPE_EXTREME_T: {
            static const int64_t ts[] = {INT64_MIN,     INT64_MAX,    0, -1, 1,
                                         INT64_MIN + 1, INT64_MAX - 1};
            t = ts[rnd_below(sizeof(ts) / sizeof(ts[0]))];
            v = special_value();
            break;
        }
        default:
            break;
        }
        s[i].t = t;
        s[i].v = v;
    }
}

static void test_random_round_trips(void **state)
{
    (void)state;
    enum { MAXN = 600 };
    tsdb_sample *s = calloc(MAXN, sizeof(*s));
    for (int round = 0; round < 400; round++) {
        enum shape sh = (enum shape)(round % SHAPE_N);
        size_t n;
        switch (rnd_below(4)) {
        case 0:
            n = rnd_below(4);
            break;
        case 1:
            n = 120;
            break;
        default:
            n = 1 + rnd_below(MAXN);
            break;
        }
        gen(sh, s, n);
        check_round_trip(s, n, shape_names[sh]);
    }
    free(s);
}

static void test_many_samples(void **state)
{
    (void)state;
    /* The count field is 16 bits: a long chunk still round-trips. */
    size_t n = 65535;
    tsdb_sample *s = calloc(n, sizeof(*s));
    gen(SHAPE_COUNTER, s, n);
    size_t len;
    unsigned char *c = encode(s, n, &len);
    assert_int_equal(tsdb_chunk_count(c, len), 65535);
    tsdb_sample *out = calloc(n, sizeof(*out));
    size_t got;
    assert_int_equal(tsdb_chunk_decode_all(c, len, out, n, &got), 0);
    assert_int_equal(got, n);
    assert_memory_equal(out, s, n * sizeof(*s));
    free(c);
    free(out);
    free(s);
}

static void test_bytes_grow_with_appends(void **state)
{
    (void)state;
    /* The borrowed bytes after each add are a valid chunk of the samples so far. */
    tsdb_chunk_app a;
    tsdb_chunk_app_init(&a);
    tsdb_sample s[300];
    gen(SHAPE_GAUGE, s, 300);
    for (size_t i = 0; i < 300; i++) {
        tsdb_chunk_app_add(&a, s[i].t, s[i].v);
        size_t len;
        const unsigned char *p = tsdb_chunk_app_bytes(&a, &len);
        tsdb_sample out[300];
        size_t got;
        assert_int_equal(tsdb_chunk_decode_all(p, len, out, 300, &got), 0);
        assert_int_equal(got, i + 1);
        assert_int_equal(out[i].t, s[i].t);
        assert_int_equal(bits_of(out[i].v), bits_of(s[i].v));
    }
    tsdb_chunk_app_fini(&a);
    tsdb_chunk_app_fini(NULL);
}

/* A reset appender (buffer kept, capacity of the last chunk) writes exactly the bytes of a fresh
 * one, and its capacity stays close to what its chunks need. */
static void test_reset_reuses_buffer(void **state)
{
    (void)state;
    static const int shapes[] = {SHAPE_GAUGE, SHAPE_COUNTER, SHAPE_GAUGE};
    tsdb_sample s[120];
    tsdb_chunk_app r;
    tsdb_chunk_app_init(&r);
    for (size_t k = 0; k < 3; k++) {
        gen(shapes[k], s, 120);
        tsdb_chunk_app f;
        tsdb_chunk_app_init(&f);
        for (size_t i = 0; i < 120; i++) {
            tsdb_chunk_app_add(&f, s[i].t, s[i].v);
            tsdb_chunk_app_add(&r, s[i].t, s[i].v);
        }
        size_t lf, lr;
        const unsigned char *pf = tsdb_chunk_app_bytes(&f, &lf);
        const unsigned char *pr = tsdb_chunk_app_bytes(&r, &lr);
        assert_int_equal(lf, lr);
        assert_memory_equal(pf, pr, lf);
        /* Growth by an eighth: the slack stays well under what doubling leaves. */
        assert_true(f.cap <= lf + 48 + (lf / 8 > 32 ? lf / 8 : 32) + 16);
        tsdb_chunk_app_fini(&f);
        tsdb_chunk_app_reset(&r);
        assert_int_equal(r.n, 0);
        assert_int_equal(tsdb_chunk_app_bytes(&r, &lr)[0], 0);
        assert_int_equal(lr, 2);
    }
    tsdb_chunk_app_fini(&r);
}

/* ---- Seek ------------------------------------------------------------------------------------ */

static void test_seek(void **state)
{
    (void)state;
    tsdb_sample s[200];
    for (int i = 0; i < 200; i++) {
        s[i].t = 1000 + i * 15000 + (i % 3);
        s[i].v = i * 1.5;
    }
    size_t len;
    unsigned char *c = encode(s, 200, &len);
    tsdb_chunk_it it;
    tsdb_sample x;

    /* Before the first sample: the first sample. */
    assert_int_equal(tsdb_chunk_it_init(&it, c, len), 0);
    assert_int_equal(tsdb_chunk_it_seek(&it, INT64_MIN, &x), 1);
    assert_int_equal(x.t, s[0].t);

    /* Exact timestamp, then between two samples. */
    assert_int_equal(tsdb_chunk_it_seek(&it, s[50].t, &x), 1);
    assert_int_equal(x.t, s[50].t);
    assert_true(x.v == s[50].v);
    assert_int_equal(tsdb_chunk_it_seek(&it, s[60].t - 1, &x), 1);
    assert_int_equal(x.t, s[60].t);

    /* Backwards (or to the current sample): stays on the current sample. */
    assert_int_equal(tsdb_chunk_it_seek(&it, s[10].t, &x), 1);
    assert_int_equal(x.t, s[60].t);
    assert_int_equal(tsdb_chunk_it_seek(&it, s[60].t, &x), 1);
    assert_int_equal(x.t, s[60].t);

    /* next() continues after the sought sample. */
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(x.t, s[61].t);

    /* The last sample, then past the end. */
    assert_int_equal(tsdb_chunk_it_seek(&it, s[199].t, &x), 1);
    assert_int_equal(x.t, s[199].t);
    assert_int_equal(tsdb_chunk_it_seek(&it, s[199].t + 1, &x), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 0);

    /* Past the end from the start. */
    assert_int_equal(tsdb_chunk_it_init(&it, c, len), 0);
    assert_int_equal(tsdb_chunk_it_seek(&it, INT64_MAX, &x), 0);

    /* Seeking each sample's time from a fresh iterator finds it. */
    for (int i = 0; i < 200; i += 7) {
        assert_int_equal(tsdb_chunk_it_init(&it, c, len), 0);
        assert_int_equal(tsdb_chunk_it_seek(&it, s[i].t, &x), 1);
        assert_int_equal(x.t, s[i].t);
    }

    /* An empty chunk has nothing to seek to. */
    assert_int_equal(tsdb_chunk_it_init(&it, "\0\0", 2), 0);
    assert_int_equal(tsdb_chunk_it_seek(&it, 0, &x), 0);
    free(c);
}

/* ---- Corrupt input ----------------------------------------------------------------------------
 */

static void test_corrupt(void **state)
{
    (void)state;
    tsdb_chunk_it it;
    tsdb_sample x, out[8];
    size_t got;

    /* Too short for a header. */
    assert_int_equal(tsdb_chunk_it_init(&it, "", 0), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_init(&it, "\x00", 1), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_count("\x01", 1), 0);
    assert_int_equal(tsdb_chunk_decode_all("\x00", 1, out, 8, &got), TSDB_ECORRUPT);
    /* An iterator whose init failed keeps returning the error. */
    assert_int_equal(tsdb_chunk_it_init(&it, "\x00", 1), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_next_batch(&it, out, 8), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_seek(&it, 0, &x), TSDB_ECORRUPT);

    /* A count with no samples behind it; sticky error. */
    assert_int_equal(tsdb_chunk_it_init(&it, "\x00\x05", 2), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_seek(&it, 0, &x), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_decode_all("\xff\xff\x01\x02\x03", 5, out, 8, &got), TSDB_ECORRUPT);

    /* A varint longer than 64 bits. */
    static const unsigned char ov[] = {0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x02, 0,    0,    0,    0,    0,    0,    0,    0};
    assert_int_equal(tsdb_chunk_it_init(&it, ov, sizeof(ov)), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), TSDB_ECORRUPT);
    /* ...while the 10-byte maximum is fine. */
    static const unsigned char mx[] = {0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x01, 0,    0,    0,    0,    0,    0,    0,    0};
    assert_int_equal(tsdb_chunk_it_init(&it, mx, sizeof(mx)), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(x.t, INT64_MIN);

    /* A window with lead + sigbits > 64: lead 31, sigbits 52. Second sample: uvarint 1, then
     * '11' 11111 110100 ... */
    unsigned char w[32] = {0x00, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xFF, 0xA0};
    assert_int_equal(tsdb_chunk_it_init(&it, w, sizeof(w)), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), TSDB_ECORRUPT);
    /* lead 31, sigbits 33 is the largest that fits. */
    w[13] = 0x08; /* 11 11111 100001 -> FF 08 */
    assert_int_equal(tsdb_chunk_it_init(&it, w, sizeof(w)), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(x.t, 1);

    /* Trailing garbage: the iterator ignores it, decode_all refuses it. */
    tsdb_sample s[] = {{5, 1.0}, {6, 1.0}}; /* the 2nd value is one bit: 7 bits of padding */
    size_t len;
    unsigned char *c = encode(s, 2, &len);
    unsigned char *g = malloc(len + 2);
    memcpy(g, c, len);
    g[len] = 0;
    g[len + 1] = 0;
    assert_int_equal(tsdb_chunk_decode_all(g, len, out, 8, &got), 0);
    assert_int_equal(tsdb_chunk_decode_all(g, len + 1, out, 8, &got), 0); /* one empty byte */
    assert_int_equal(tsdb_chunk_decode_all(g, len + 2, out, 8, &got), TSDB_ECORRUPT);
    g[len] = 0x10;
    assert_int_equal(tsdb_chunk_decode_all(g, len + 1, out, 8, &got), TSDB_ECORRUPT);
    assert_int_equal(tsdb_chunk_it_init(&it, g, len + 2), 0);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 1);
    assert_int_equal(tsdb_chunk_it_next(&it, &x), 0);
    /* Set padding bits in the last used byte. */
    memcpy(g, c, len);
    g[len - 1] |= 1;
    assert_int_equal(tsdb_chunk_decode_all(g, len, out, 8, &got), TSDB_ECORRUPT);
    /* Capacity below the count. */
    assert_int_equal(tsdb_chunk_decode_all(c, len, out, 1, &got), TSDB_EINVAL);
    free(g);
    free(c);
}

static void test_random_corruption(void **state)
{
    (void)state;
    /* Flipped bits, cut lengths, random counts and pure noise: 0 or TSDB_ECORRUPT, bounded,
     * and the iterator never yields more samples than the header declares. */
    tsdb_sample s[300];
    tsdb_sample *out = calloc(65536, sizeof(*out));
    for (int round = 0; round < 3000; round++) {
        size_t n = 1 + rnd_below(300), len;
        gen((enum shape)rnd_below(SHAPE_N), s, n);
        unsigned char *c = encode(s, n, &len);
        switch (rnd_below(4)) {
        case 0:
            for (int k = 0; k < 1 + (int)rnd_below(4); k++)
                c[2 + rnd_below(len - 2)] ^= (unsigned char)(1u << rnd_below(8));
            break;
        case 1:
            c[0] = (unsigned char)rnd();
            c[1] = (unsigned char)rnd();
            break;
        case 2:
            len = rnd_below(len + 1);
            break;
        default:
            for (size_t i = 0; i < len; i++)
                c[i] = (unsigned char)rnd();
            break;
        }
        /* An exact-size heap copy, so ASan catches any read past the end. */
        unsigned char *e = malloc(len ? len : 1);
        memcpy(e, c, len);
        size_t got;
        int rc = tsdb_chunk_decode_all(e, len, out, 65536, &got);
        assert_true(rc == 0 || rc == TSDB_ECORRUPT);
        tsdb_chunk_it it, it2;
        if (tsdb_chunk_it_init(&it, e, len) == 0) {
            tsdb_sample x;
            size_t k = 0;
            while ((rc = tsdb_chunk_it_next(&it, &x)) > 0)
                out[k++] = x;
            assert_true(rc == 0 || rc == TSDB_ECORRUPT);
            assert_true(k <= tsdb_chunk_count(e, len));
            /* The batch call agrees: the same samples, then the same end. */
            assert_int_equal(tsdb_chunk_it_init(&it2, e, len), 0);
            tsdb_sample *bo = calloc(k + 1, sizeof(*bo));
            size_t kb = 0;
            int rb;
            while ((rb = tsdb_chunk_it_next_batch(&it2, bo + kb, 1 + rnd_below(20))) > 0) {
                kb += (size_t)rb;
                assert_true(kb <= k);
            }
            assert_int_equal(rb, rc);
            assert_int_equal(kb, k);
            for (size_t i = 0; i < k; i++) {
                assert_int_equal(bo[i].t, out[i].t);
                assert_int_equal(bits_of(bo[i].v), bits_of(out[i].v));
            }
            assert_int_equal(tsdb_chunk_it_next_batch(&it2, bo, 1), rc);
            free(bo);
        }
        free(e);
        free(c);
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_random_round_trips),
        cmocka_unit_test(test_many_samples),
        cmocka_unit_test(test_bytes_grow_with_appends),
        cmocka_unit_test(test_reset_reuses_buffer),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests(tests, seed_setup, NULL);
}
