/* Unit tests for tsdb/buf.c: Go-compatible varints, fixed-width codecs, bounds checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/base.h"

static void expect_bytes(const tsdb_buf *b, const unsigned char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->p, want, n);
}

static void test_varint_known_vectors(void **state)
{
    (void)state;
    /* Values and encodings as Go's binary.PutUvarint / PutVarint produce them. */
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_put_uvarint(&b, 300);
    expect_bytes(&b, (const unsigned char *)"\xac\x02", 2);
    b.len = 0;
    tsdb_buf_put_varint(&b, -1);
    expect_bytes(&b, (const unsigned char *)"\x01", 1);
    b.len = 0;
    tsdb_buf_put_varint(&b, 1);
    expect_bytes(&b, (const unsigned char *)"\x02", 1);
    b.len = 0;
    tsdb_buf_put_varint(&b, -64);
    expect_bytes(&b, (const unsigned char *)"\x7f", 1);
    b.len = 0;
    tsdb_buf_put_uvarint(&b, UINT64_MAX);
    expect_bytes(&b, (const unsigned char *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
    b.len = 0;
    tsdb_buf_put_varint(&b, INT64_MIN);
    expect_bytes(&b, (const unsigned char *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
    tsdb_buf_fini(&b);
}

static uint64_t rnd64(void)
{
    return (uint64_t)rand() << 62 ^ (uint64_t)rand() << 31 ^ (uint64_t)rand();
}

static void test_random_round_trip(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    enum { N = 5000 };
    uint64_t *u = malloc(N * sizeof *u);
    int64_t *s = malloc(N * sizeof *s);
    tsdb_buf b;
    tsdb_buf_init(&b);
    for (int i = 0; i < N; i++) {
        int shift = rand() % 64;
        u[i] = rnd64() >> shift;
        s[i] = (int64_t)(rnd64() >> shift) * (rand() & 1 ? -1 : 1);
        tsdb_buf_put_uvarint(&b, u[i]);
        tsdb_buf_put_varint(&b, s[i]);
        tsdb_buf_put_u32le(&b, (uint32_t)u[i]);
        tsdb_buf_put_u64be(&b, u[i]);
        tsdb_buf_put_u16le(&b, (uint16_t)i);
    }
    tsdb_buf_put_str(&b, TSDB_STR("tail"));
    tsdb_rd r;
    tsdb_rd_init(&r, b.p, b.len);
    for (int i = 0; i < N; i++) {
        assert_int_equal(tsdb_rd_uvarint(&r), u[i]);
        assert_int_equal(tsdb_rd_varint(&r), s[i]);
        assert_int_equal(tsdb_rd_u32le(&r), (uint32_t)u[i]);
        assert_int_equal(tsdb_rd_u64be(&r), u[i]);
        assert_int_equal(tsdb_rd_u16le(&r), (uint16_t)i);
    }
    tsdb_str t = tsdb_rd_str(&r);
    assert_true(tsdb_str_eq(t, TSDB_STR("tail")));
    assert_int_equal(r.err, 0);
    assert_int_equal(tsdb_rd_left(&r), 0);
    free(u);
    free(s);
    tsdb_buf_fini(&b);
}

static void test_reader_bounds(void **state)
{
    (void)state;
    tsdb_rd r;
    /* Truncated varint. */
    tsdb_rd_init(&r, "\x80\x80", 2);
    assert_int_equal(tsdb_rd_uvarint(&r), 0);
    assert_int_equal(r.err, 1);
    /* Overlong varint (11 bytes) and a 10th byte above 1 overflow. */
    tsdb_rd_init(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
    tsdb_rd_uvarint(&r);
    assert_int_equal(r.err, 1);
    /* A string claiming more bytes than there are. */
    tsdb_rd_init(&r,
                 "\x05"
                 "ab",
                 3);
    tsdb_str s = tsdb_rd_str(&r);
    assert_int_equal(s.len, 0);
    assert_int_equal(r.err, 1);
    /* Errors are sticky: later reads return zero. */
    assert_int_equal(tsdb_rd_u8(&r), 0);
    assert_null(tsdb_rd_bytes(&r, 1));
    tsdb_rd_init(&r, "\x01\x02\x03", 3);
    assert_int_equal(tsdb_rd_u32le(&r), 0);
    assert_int_equal(r.err, 1);
}

static void test_printf_and_growth(void **state)
{
    (void)state;
    tsdb_buf b;
    tsdb_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        tsdb_buf_printf(&b, "%d,", i);
    assert_true(b.len > 3000);
    assert_memory_equal(b.p, "0,1,2,", 6);
    assert_memory_equal(b.p + b.len - 4, "999,", 4);
    tsdb_buf_fini(&b);
    assert_null(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_known_vectors),
        cmocka_unit_test(test_random_round_trip),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_printf_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
