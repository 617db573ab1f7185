/* Unit tests for tools/cairnctl.c: option, time and duration parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

int cairnctl_main(int argc, char **argv);
#define main cairnctl_main
#include "tools/cairnctl.c"
#undef main

static void test_durations(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cairnctl_parse_duration("15s", &ms), 0);
    assert_int_equal(ms, 15000);
    assert_int_equal(cairnctl_parse_duration("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(cairnctl_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(cairnctl_parse_duration("2.5", &ms), 0);
    assert_int_equal(ms, 2500);
    assert_int_equal(cairnctl_parse_duration("1w", &ms), 0);
    assert_int_equal(ms, 604800000);
    assert_int_equal(cairnctl_parse_duration("", &ms), -1);
    assert_int_equal(cairnctl_parse_duration("5x", &ms), -1);
    assert_int_equal(cairnctl_parse_duration("-5s", &ms), -1);
    assert_int_equal(cairnctl_parse_duration("99999999999999999999s", &ms), -1);
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cairnctl_parse_time("1700000000.5", &ms), 0);
    assert_int_equal(ms, 1700000000500);
    assert_int_equal(cairnctl_parse_time("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    /* Checked with `date -u -d 2026-11-25T12:34:56Z +%s` = 1795610096. */
    assert_int_equal(cairnctl_parse_time("2026-11-25T12:34:56.789Z", &ms), 0);
    assert_int_equal(ms, 1795610096789);
    assert_int_equal(cairnctl_parse_time("2026-11-25T14:34:56+02:00", &ms), 0);
    assert_int_equal(ms, 1795610096000);
    assert_int_equal(cairnctl_parse_time("2000-02-29T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 951782400000);
    tsdb_clock_pin(1000000);
    assert_int_equal(cairnctl_parse_time("now-15m", &ms), 0);
    assert_int_equal(ms, 1000000 - 900000);
    tsdb_clock_pin(0);
    assert_int_equal(cairnctl_parse_time("yesterday", &ms), -1);
    assert_int_equal(cairnctl_parse_time("2026-11-25T12:34:56", &ms), -1); /* no zone */
    assert_int_equal(cairnctl_parse_time("2026-11-25T12:34:56Zjunk", &ms), -1);
}

static void test_opts(void **state)
{
    (void)state;
    char *argv[] = {"x", "--step=15s", "--match", "up", "--matchx=1", "--time"};
    int argc = 6, i = 1;
    const char *v = NULL;
    assert_int_equal(cairnctl_opt(argc, argv, &i, "step", &v), 1);
    assert_string_equal(v, "15s");
    i = 2;
    assert_int_equal(cairnctl_opt(argc, argv, &i, "match", &v), 1);
    assert_string_equal(v, "up");
    assert_int_equal(i, 3);
    i = 4;
    assert_int_equal(cairnctl_opt(argc, argv, &i, "match", &v), 0);
    i = 5;
    assert_int_equal(cairnctl_opt(argc, argv, &i, "time", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_opts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
