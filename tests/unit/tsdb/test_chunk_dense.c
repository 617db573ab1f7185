/* Unit tests for tsdb/chunk_dense.c: exact round trips over many value and time shapes (seed
 * printed), the cases it must refuse, corrupt input, and sizes against XOR. */
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

#include "tsdb/chunk.h"
#include "tsdb/chunk_dense.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double unit(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* Encodes, decodes and checks every sample bit for bit; returns the encoded size. */
static size_t round_trip(const tsdb_sample *s, size_t n)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb_dense_encode(s, n, &b), TSDB_OK);
    assert_int_equal(tsdb_dense_count(b.p, b.len), n);
    tsdb_sample *out = malloc(n * sizeof(*out));
    size_t got = 0;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, n, &got), TSDB_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].t, s[i].t);
        if (memcmp(&out[i].v, &s[i].v, sizeof(double)) != 0)
            fail_msg("sample %zu: got %.17g want %.17g", i, out[i].v, s[i].v);
    }
    free(out);
    size_t len = b.len;
    tsdb_buf_fini(&b);
    return len;
}

static size_t xor_size(const tsdb_sample *s, size_t n)
{
    tsdb_chunk_app a;
    tsdb_chunk_app_init(&a);
    for (size_t i = 0; i < n; i++)
        tsdb_chunk_app_add(&a, s[i].t, s[i].v);
    size_t len;
    tsdb_chunk_app_bytes(&a, &len);
    tsdb_chunk_app_fini(&a);
    return len;
}

/* Shape generators: values that short decimal text produces. */
static void make(tsdb_sample *s, size_t n, int shape, int64_t t0, int64_t step, int jitter)
{
    double v = (double)(rnd() % 100000);
    int64_t t = t0;
    for (size_t i = 0; i < n; i++) {
        s[i].t = t + (jitter ? (int64_t)(rnd() % (2 * jitter + 1)) - jitter : 0);
        t += step;
        switch (shape) {
        case 0: /* integer counter */
            v += (double)(rnd() % 200000);
            break;
        case 1: /* hundredths counter */
            v = round((v + 14 * unit()) * 100) / 100;
            break;
        case 2: /* page-multiple gauge */
            v = 4096.0 * (double)(1000000 + (int64_t)(rnd() % 2001) - 1000);
            break;
        case 3: /* constant */
            v = 1.7e9;
            break;
        case 4: /* negative decimals with 3 places */
            v = -round(unit() * 1e6) / 1000;
            if (v == 0)
                v = 0; /* not -0, which DENSE refuses by design */
            break;
        case 5: /* large integers near 2^53 */
            v = 9007199254740000.0 + (double)(rnd() % 900);
            break;
        case 6: /* tiny values with many places */
            v = (double)(rnd() % 1000) / 1e15;
            break;
        case 7: /* pages that move now and then: sparse steps */
            if (rnd() % 3 == 0)
                v += (double)((int64_t)(rnd() % 512) - 256) * 4096;
            break;
        case 8: /* a running total of ticks * 0.15 summed in binary: accumulated */
            v += 0.15 * (double)(rnd() % 101);
            break;
        default: /* zeros and ones */
            v = (double)(rnd() % 2);
            break;
        }
        s[i].v = v;
    }
}

static void test_random_round_trips(void **state)
{
    (void)state;
    const char *env = getenv("CAIRN_TEST_SEED"); /* replays a reported seed */
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u\n", seed);
    rng = seed * 0x9E3779B97F4A7C15ULL | 1;
    tsdb_sample s[600];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 1 + rnd() % (iter % 10 == 0 ? 600 : 130);
        int shape = (int)(rnd() % 10);
        int64_t t0 = (int64_t)(rnd() % 4000000000000ULL) - 1000000000000LL;
        int64_t step = 1 + (int64_t)(rnd() % 60000);
        int jitter = (int)(rnd() % 3 == 0 ? 0 : rnd() % (step / 2 + 1 < 50 ? step / 2 + 1 : 50));
        if (jitter * 2 >= step)
            jitter = 0;
        make(s, n, shape, t0, step, jitter);
        round_trip(s, n);
    }
}

static void test_extreme_timestamps(void **state)
{
    (void)state;
    tsdb_sample s[4] = {{INT64_MIN, 1}, {-1, 2}, {0, 3}, {INT64_MAX, 4}};
    round_trip(s, 4);
    tsdb_sample one = {123, 0.5};
    round_trip(&one, 1);
    tsdb_sample two[2] = {{1, 5}, {2, 5}};
    assert_true(round_trip(two, 2) < 20);
}

static void test_refuses_what_it_cannot_keep(void **state)
{
    (void)state;
    tsdb_buf b;
    tsdb_buf_init(&b);
    double bad[] = {NAN, INFINITY, -INFINITY, -0.0, 1e300, -1e17};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsdb_sample s[2] = {{1000, 1}, {2000, bad[i]}};
        assert_int_equal(tsdb_dense_encode(s, 2, &b), TSDB_EINVAL);
        assert_int_equal(b.len, 0); /* nothing appended */
    }
    tsdb_sample stale[1];
    stale[0].t = 1;
    uint64_t bits = TSDB_STALE_NAN_BITS;
    memcpy(&stale[0].v, &bits, 8);
    assert_int_equal(tsdb_dense_encode(stale, 1, &b), TSDB_EINVAL);
    tsdb_sample unordered[2] = {{2000, 1}, {2000, 2}};
    assert_int_equal(tsdb_dense_encode(unordered, 2, &b), TSDB_EINVAL);
    assert_int_equal(tsdb_dense_encode(unordered, 0, &b), TSDB_EINVAL);
    tsdb_buf_fini(&b);
}

static void test_worked_example(void **state)
{
    (void)state;
    /* The example in the file's header comment. */
    tsdb_sample s[3] = {{1000, 1.5}, {2000, 2.5}, {3000, 3.5}};
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb_dense_encode(s, 3, &b), TSDB_OK);
    /* Timestamps 64 + 1 + (7+11) + (7+7+0) = 97 bits -> 13 bytes; values 4 + 1 + 1 + (7+5) +
     * (7+4) + 1 + (7+7+2) = 46 bits -> 6 bytes; after the 2-byte count. */
    assert_int_equal(b.len, 2 + 13 + 6);
    assert_int_equal(tsdb_dense_ts_len(b.p, b.len), 2 + 13);
    assert_int_equal(b.p[0], 0);
    assert_int_equal(b.p[1], 3);
    /* t0 = 1000 = 0x3E8 in the first 64 bits. */
    assert_int_equal(tsdb_get_u64be(b.p + 2), 1000);
    /* tmode 0, then the 7-bit width 11 of zigzag(1000). */
    assert_int_equal(b.p[10], 0x0B);
    tsdb_buf_fini(&b);
}

/* Values a program computes as ticks * 0.01 are not the doubles nearest to the decimals: they
 * round-trip through form 1 and cost what their steps cost. */
static void test_multiplied_decimals(void **state)
{
    (void)state;
    rng = 4242;
    static const double q[] = {0.01, 0.001, 0.1};
    for (size_t qi = 0; qi < 3; qi++) {
        tsdb_sample s[120];
        double v = 140000.0;
        size_t differs = 0;
        for (size_t i = 0; i < 120; i++) {
            v = round((v + 14 * (0.5 + unit())) / q[qi]) * q[qi];
            s[i] = (tsdb_sample){1700000000000LL + (int64_t)i * 15000, v};
            double m = round(v / q[qi]);
            if (m / (1 / q[qi]) != v)
                differs++;
        }
        assert_true(differs > 0); /* form 0 alone could not keep this chunk */
        size_t len = round_trip(s, 120);
        /* Steps below 2^11 / q: at most ~12 bits of value and a few bits of time a sample. */
        assert_true(len < 120 * 2 + 40);
    }
    tsdb_sample sum[2] = {{1, 0.1 + 0.2}, {2, 0.1 * 7}};
    round_trip(sum, 2);
}

/* Sums of decimals computed in binary floating point drift a few units in the last place off the
 * decimal: they are kept as the decimal plus a residual, far smaller than XOR. Values that are
 * no decimal at all still round-trip when DENSE takes them. */
static void test_near_decimals(void **state)
{
    (void)state;
    rng = 31337;
    tsdb_sample s[120];
    double v = 0;
    size_t off = 0;
    for (size_t i = 0; i < 120; i++) {
        v += 0.15 * (double)(rnd() % 101);
        s[i] = (tsdb_sample){1700000000000LL + (int64_t)i * 15000, v};
        double m = round(v * 100);
        if (m / 100 != v)
            off++;
    }
    assert_true(off > 10); /* really not decimals */
    size_t len = round_trip(s, 120), x = xor_size(s, 120);
    assert_true(len * 3 < x);
    tsdb_sample odd[4] = {{1, 1.0 / 3.0}, {2, 5e-324}, {3, 2.0 / 3.0}, {4, 0.1 + 0.2 + 0.3}};
    round_trip(odd, 4);
    for (size_t i = 0; i < 120; i++)
        s[i].v = unit() * 8;
    tsdb_buf b;
    tsdb_buf_init(&b);
    if (tsdb_dense_encode(s, 120, &b) == TSDB_OK)
        round_trip(s, 120);
    tsdb_buf_fini(&b);
}

/* A scrape jitter of +-2 ms costs 3 bits a sample on the grid; gaps still round-trip. */
static void test_grid_timestamps(void **state)
{
    (void)state;
    rng = 99;
    tsdb_sample even[120], jit[120];
    for (size_t i = 0; i < 120; i++) {
        even[i] = (tsdb_sample){1700000000000LL + (int64_t)i * 15000, 42};
        jit[i] = (tsdb_sample){even[i].t + (int64_t)(rnd() % 5) - 2, 42};
    }
    size_t a = round_trip(even, 120), b = round_trip(jit, 120);
    assert_true(b > a);
    assert_true(b - a <= (119 * 3 + 7) / 8 + 4);
    /* Missed scrapes and a restart shift the grid: still exact. */
    for (size_t i = 60; i < 120; i++)
        jit[i].t += 45000 + (i >= 90 ? 7001 : 0);
    round_trip(jit, 120);
    /* Irregular gaps of every size. */
    for (size_t i = 1; i < 120; i++)
        jit[i].t = jit[i - 1].t + 1 + (int64_t)(rnd() % (1ULL << (rnd() % 40)));
    round_trip(jit, 120);
}

/* Codes wider than the base width escape: a counter reset, a rare spike, full-range steps. */
static void test_escapes(void **state)
{
    (void)state;
    rng = 7;
    tsdb_sample s[120];
    double v = 1e6;
    for (size_t i = 0; i < 120; i++) {
        v = i == 70 ? 3 : v + (double)(rnd() % 100);
        s[i] = (tsdb_sample){(int64_t)i * 1000, i == 30 ? 1e12 : v};
    }
    size_t len = round_trip(s, 120);
    assert_true(len < 120 * 2); /* the outliers do not widen every code */
    /* Steps of almost 2^54 in both directions. */
    for (size_t i = 0; i < 120; i++)
        s[i].v = i % 2 ? 9007199254740991.0 : -9007199254740991.0;
    round_trip(s, 120);
    /* Every code an escape of base width 1. */
    for (size_t i = 0; i < 120; i++)
        s[i].v = (double)(i % 3 == 0 ? 0 : 1 + rnd() % 1000000);
    round_trip(s, 120);
}

/* Each field's own checks, on hand-edited chunks. */
static void test_rejects_bad_fields(void **state)
{
    (void)state;
    tsdb_sample one = {5, 7}, out[4];
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb_dense_encode(&one, 1, &b), TSDB_OK);
    size_t n;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_OK);
    /* Bits 64..67 are k = 0, bit 68 the form: form 1 with k = 0 is refused. */
    assert_int_equal(b.p[10] & 0x08, 0);
    b.p[10] |= 0x08;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_ECORRUPT);
    b.p[10] &= (unsigned char)~0x08;
    /* k = 1: form 1 alone decodes (5 * 0.1 is 0.5 too); form 1 with residuals marks accumulated
     * values, which one sample never is: refused. */
    b.len = 0;
    tsdb_sample half = {5, 0.5};
    assert_int_equal(tsdb_dense_encode(&half, 1, &b), TSDB_OK);
    assert_int_equal(b.p[10] & 0xFC, 0x10); /* k = 0001, form 0, resid 0 */
    b.p[10] |= 0x08;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_OK);
    assert_true(out[0].v == 0.5);
    b.p[10] |= 0x04;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_ECORRUPT);
    b.len = 0;
    assert_int_equal(tsdb_dense_encode(&one, 1, &b), TSDB_OK);
    /* A count of 0 and a count above the capacity. */
    b.p[1] = 0;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_ECORRUPT);
    b.p[1] = 5;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_ECORRUPT);
    /* A width above 64 in a wide number (m0's width follows k and the form). */
    b.len = 0;
    tsdb_sample two[2] = {{1, 1}, {2, 2}};
    assert_int_equal(tsdb_dense_encode(two, 2, &b), TSDB_OK);
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_OK);
    /* Stream bit 65 starts the 7-bit width of zigzag(t1 - t0) = 2, i.e. 2: set it to 127. */
    b.p[10] |= 0x3F;
    b.p[11] |= 0x80;
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 4, &n), TSDB_ECORRUPT);
    tsdb_buf_fini(&b);
}

/* Steps that are mostly 0 pay a flag bit each plus codes for the others; a running total summed
 * in binary is coded as its steps, not as decimals plus residuals. */
static void test_sparse_and_accumulated(void **state)
{
    (void)state;
    rng = 2024;
    tsdb_sample s[480];
    make(s, 480, 7, 1700000000000LL, 15000, 0);
    size_t len = round_trip(s, 480);
    /* 1 flag bit + 9 bits for a third of the samples, plus headers; plain codes take 9 bits. */
    assert_true(len < 480 * 4 / 8 + 60);
    /* Rare equal steps: the flag alone. */
    double v = 5e9;
    for (size_t i = 0; i < 480; i++) {
        if (rnd() % 10 == 0)
            v -= 4096;
        s[i] = (tsdb_sample){1700000000000LL + (int64_t)i * 15000, v};
    }
    len = round_trip(s, 480);
    assert_true(len < 480 / 8 + 50);
    /* The running total: about 7 bits a sample (steps 0..100), never decimals plus residuals. */
    make(s, 480, 8, 1700000000000LL, 15000, 0);
    size_t off = 0;
    for (size_t i = 0; i < 480; i++)
        off += round(s[i].v * 100) / 100 != s[i].v;
    assert_true(off > 10);
    len = round_trip(s, 480);
    assert_true(len < 480 * 7.5 / 8 + 40);
    /* From a start that is no short decimal at all, with steps of 0.25 and -0.75 units. */
    v = 3.14159265358979;
    for (size_t i = 0; i < 480; i++) {
        v += (i % 7 == 0 ? -0.75 : 0.25) * (double)(rnd() % 1000);
        s[i] = (tsdb_sample){1700000000000LL + (int64_t)i * 15000, v};
    }
    len = round_trip(s, 480);
    assert_true(len < 480 * 12 / 8 + 40);
    /* Accumulated with one step and with steps that are all equal (step differences). */
    round_trip(s, 2);
    for (size_t i = 1; i < 480; i++)
        s[i].v = s[i - 1].v + 0.15 * 7;
    round_trip(s, 480);
}

static void check_corruption(const tsdb_sample *s, size_t cnt)
{
    tsdb_sample out[120];
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb_dense_encode(s, cnt, &b), TSDB_OK);
    size_t n;
    /* Every truncation is detected. */
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(tsdb_dense_decode(b.p, len, out, 120, &n), TSDB_ECORRUPT);
    /* Trailing garbage is detected. */
    tsdb_buf_putc(&b, 0);
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 120, &n), TSDB_ECORRUPT);
    b.len--;
    /* A too-small output buffer is refused. */
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 119, &n), TSDB_ECORRUPT);
    /* Flipped bits: error or some samples, never a crash (ASan/UBSan watch this). */
    for (size_t i = 0; i < b.len * 8; i++) {
        b.p[i / 8] ^= (unsigned char)(1 << (i % 8));
        int rc = tsdb_dense_decode(b.p, b.len, out, 120, &n);
        assert_true(rc == TSDB_OK || rc == TSDB_ECORRUPT);
        b.p[i / 8] ^= (unsigned char)(1 << (i % 8));
    }
    tsdb_buf_fini(&b);
}

static void test_corrupt_input_never_crashes(void **state)
{
    (void)state;
    rng = 77;
    tsdb_sample s[120], out[120];
    for (int shape = 7; shape <= 8; shape++) { /* sparse codes, accumulated values */
        make(s, 120, shape, 1700000000000LL, 15000, 2);
        check_corruption(s, 120);
    }
    make(s, 120, 1, 1700000000000LL, 15000, 2);
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb_dense_encode(s, 120, &b), TSDB_OK);
    size_t n;
    /* Every truncation is detected. */
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(tsdb_dense_decode(b.p, len, out, 120, &n), TSDB_ECORRUPT);
    /* Trailing garbage is detected. */
    tsdb_buf_putc(&b, 0);
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 120, &n), TSDB_ECORRUPT);
    b.len--;
    /* A too-small output buffer is refused. */
    assert_int_equal(tsdb_dense_decode(b.p, b.len, out, 119, &n), TSDB_ECORRUPT);
    /* Flipped bits: error or some samples, never a crash (ASan/UBSan watch this). */
    for (size_t i = 0; i < b.len * 8; i++) {
        b.p[i / 8] ^= (unsigned char)(1 << (i % 8));
        int rc = tsdb_dense_decode(b.p, b.len, out, 120, &n);
        assert_true(rc == TSDB_OK || rc == TSDB_ECORRUPT);
        b.p[i / 8] ^= (unsigned char)(1 << (i % 8));
    }
    /* Random bytes. */
    unsigned char junk[300];
    tsdb_sample big[65535 < 400 ? 1 : 400];
    for (int it = 0; it < 20000; it++) {
        size_t len = rnd() % sizeof junk;
        for (size_t i = 0; i < len; i++)
            junk[i] = (unsigned char)rnd();
        if (len >= 2)
            junk[0] = 0, junk[1] = (unsigned char)(rnd() % 200);
        int rc = tsdb_dense_decode(junk, len, big, 400, &n);
        assert_true(rc == TSDB_OK || rc == TSDB_ECORRUPT);
    }
    tsdb_buf_fini(&b);
}

static void test_smaller_than_xor_on_decimal_data(void **state)
{
    (void)state;
    rng = 12345;
    tsdb_sample s[120];
    const char *names[] = {"integer counter", "hundredths counter", "page gauge", "constant"};
    for (int shape = 0; shape < 4; shape++) {
        size_t dense = 0, xor = 0;
        for (int c = 0; c < 50; c++) {
            make(s, 120, shape, 1700000000000LL, 15000, 2);
            dense += round_trip(s, 120);
            xor += xor_size(s, 120);
        }
        printf("%-20s xor %.2f  dense %.2f bytes/sample\n", names[shape], xor / 6000.0,
               dense / 6000.0);
        assert_true(dense < xor);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_round_trips),
        cmocka_unit_test(test_extreme_timestamps),
        cmocka_unit_test(test_refuses_what_it_cannot_keep),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_multiplied_decimals),
        cmocka_unit_test(test_near_decimals),
        cmocka_unit_test(test_grid_timestamps),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_rejects_bad_fields),
        cmocka_unit_test(test_sparse_and_accumulated),
        cmocka_unit_test(test_corrupt_input_never_crashes),
        cmocka_unit_test(test_smaller_than_xor_on_decimal_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
