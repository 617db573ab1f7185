/* Unit tests for tsdb/record.c: random round trips of SERIES, SAMPLES and TOMBSTONES records
 * (seed printed; RECORD_TEST_SEED=<n> reruns one), and every truncation of a record rejected or
 * decoded as a prefix, never read past its end. */
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

#include "tsdb/record.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed(void)
{
    const char *s = getenv("RECORD_TEST_SEED");
    rng = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("RECORD_TEST_SEED=%llu\n", (unsigned long long)rng);
}

static void test_samples_roundtrip(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++) {
        size_t n = rnd() % 300;
        tsdb__rec_sample *in = calloc(n + 1, sizeof(*in));
        for (size_t i = 0; i < n; i++) {
            in[i].id = rnd() % 4 == 0 ? rnd() : rnd() % 100000;
            in[i].t = (int64_t)rnd();
            uint64_t bits = rnd();
            if (i % 7 == 0)
                bits = TSDB_STALE_NAN_BITS;
            memcpy(&in[i].v, &bits, 8);
        }
        tsdb_buf b;
        tsdb_buf_init(&b);
        tsdb__rec_samples_encode(&b, in, n);
        assert_int_equal(tsdb__rec_type(b.p, b.len), TSDB__REC_SAMPLES);
        tsdb__rec_sample *out = NULL;
        size_t no = 0, cap = 0;
        assert_int_equal(tsdb__rec_samples_decode(b.p, b.len, &out, &no, &cap), TSDB_OK);
        assert_int_equal(no, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i].id, in[i].id);
            assert_int_equal(out[i].t, in[i].t);
            assert_memory_equal(&out[i].v, &in[i].v, 8);
        }
        /* Truncations never decode to more than was encoded and never crash. */
        for (size_t cut = 0; cut < b.len; cut += 1 + b.len / 50) {
            no = 0;
            int rc = tsdb__rec_samples_decode(b.p, cut, &out, &no, &cap);
            assert_true(rc == TSDB_OK || rc == TSDB_ECORRUPT);
            assert_true(no <= n);
        }
        free(out);
        free(in);
        tsdb_buf_fini(&b);
    }
}

static void test_series_roundtrip(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    for (int round = 0; round < 100; round++) {
        size_t n = rnd() % 20;
        tsdb__rec_series in[20];
        tsdb_label lv[20][8];
        char text[20][8][2][12];
        for (size_t i = 0; i < n; i++) {
            size_t nl = 1 + rnd() % 8;
            for (size_t j = 0; j < nl; j++) {
                snprintf(text[i][j][0], 12, "n%zu", j);
                snprintf(text[i][j][1], 12, "v%llu", (unsigned long long)(rnd() % 100000));
                lv[i][j].name = tsdb_str_c(text[i][j][0]);
                lv[i][j].value = tsdb_str_c(text[i][j][1]);
            }
            in[i].id = rnd();
            in[i].labels = (tsdb_labels){lv[i], nl};
        }
        tsdb_buf b;
        tsdb_buf_init(&b);
        tsdb__rec_series_encode(&b, in, n);
        tsdb__rec_series *out = NULL;
        size_t no = 0, cap = 0;
        assert_int_equal(tsdb__rec_series_decode(b.p, b.len, &a, &out, &no, &cap), TSDB_OK);
        assert_int_equal(no, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i].id, in[i].id);
            assert_true(tsdb_labels_equal(out[i].labels, in[i].labels));
        }
        for (size_t cut = 1; cut < b.len; cut++) {
            no = 0;
            int rc = tsdb__rec_series_decode(b.p, cut, &a, &out, &no, &cap);
            assert_true(rc == TSDB_OK || rc == TSDB_ECORRUPT);
            assert_true(no <= n);
        }
        free(out);
        tsdb_buf_fini(&b);
        tsdb_arena_reset(&a);
    }
    tsdb_arena_fini(&a);
}

static void test_tombs_and_bad_types(void **state)
{
    (void)state;
    tsdb__rec_tomb in[3] = {{1, -5, 5}, {99, 0, INT64_MAX}, {UINT64_MAX, INT64_MIN, 0}};
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb__rec_tombs_encode(&b, in, 3);
    tsdb__rec_tomb *out = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(tsdb__rec_tombs_decode(b.p, b.len, &out, &n, &cap), TSDB_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, in, sizeof(in));
    free(out);
    /* CHUNKS: bytes come back borrowed from the record. */
    const unsigned char c1[] = {0, 2, 1, 2, 3}, c2[] = {0, 0};
    tsdb__rec_chunk cin[2] = {{7, 100, 200, c1, sizeof(c1)}, {8, -5, -5, c2, sizeof(c2)}};
    b.len = 0;
    tsdb__rec_chunks_encode(&b, cin, 2);
    tsdb__rec_chunk *cout = NULL;
    n = cap = 0;
    assert_int_equal(tsdb__rec_chunks_decode(b.p, b.len, &cout, &n, &cap), TSDB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cout[1].mint, -5);
    assert_int_equal(cout[0].len, sizeof(c1));
    assert_memory_equal(cout[0].p, c1, sizeof(c1));
    n = 0;
    assert_int_equal(tsdb__rec_chunks_decode(b.p, b.len - 1, &cout, &n, &cap), TSDB_ECORRUPT);
    free(cout);
    unsigned char bad[2] = {9, 0};
    assert_int_equal(tsdb__rec_type(bad, 2), TSDB_ECORRUPT);
    assert_int_equal(tsdb__rec_type(bad, 0), TSDB_ECORRUPT);
    tsdb__rec_sample *s = NULL;
    n = cap = 0;
    assert_int_equal(tsdb__rec_samples_decode(b.p, b.len, &s, &n, &cap), TSDB_ECORRUPT);
    /* A series entry claiming a huge label count is refused before allocating. */
    unsigned char huge[] = {TSDB__REC_SERIES, 1, 0xff, 0xff, 0xff, 0x7f};
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__rec_series *sv = NULL;
    n = cap = 0;
    assert_int_equal(tsdb__rec_series_decode(huge, sizeof(huge), &a, &sv, &n, &cap), TSDB_ECORRUPT);
    free(sv);
    free(s);
    tsdb_arena_fini(&a);
    tsdb_buf_fini(&b);
}

int main(void)
{
    seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_roundtrip),
        cmocka_unit_test(test_series_roundtrip),
        cmocka_unit_test(test_tombs_and_bad_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
