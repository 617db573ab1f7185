/* Unit tests for tsdb/duration.c: Prometheus duration syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tsdb/base.h"

static int64_t parse(const char *s)
{
    int64_t ms = -12345;
    return tsdb_duration_parse(tsdb_str_c(s), &ms) == TSDB_OK ? ms : -1;
}

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(parse("0"), 0);
    assert_int_equal(parse("250ms"), 250);
    assert_int_equal(parse("15s"), 15000);
    assert_int_equal(parse("5m"), 300000);
    assert_int_equal(parse("1h30m"), 5400000);
    assert_int_equal(parse("2d"), 172800000);
    assert_int_equal(parse("1w"), 604800000);
    assert_int_equal(parse("1y"), 31536000000);
    assert_int_equal(parse("1y2w3d4h5m6s7ms"),
                     31536000000 + 1209600000 + 259200000 + 14400000 + 300000 + 6000 + 7);
    assert_int_equal(parse("0s"), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "5",
                         "s",
                         "-5m",
                         "5 m",
                         "1m1h",
                         "1m1m",
                         "1.5h",
                         "5M",
                         "1x",
                         "9223372036854775808ms",
                         "300000000y",
                         "5m "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i]) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
