/* tests/unit/api/test_params.c -- form decoding, Prometheus times and durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "api/params.h"

static void test_form_decoding(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    api_params p = {0};
    const char *q = "query=1%2B1&time=4&match[]=up&match%5B%5D=a+b&empty=&flag&&x=%41%62";
    assert_int_equal(api__params_parse(&p, &a, q, strlen(q), NULL), TSDB_OK);
    const tsdb_str *v = api__params_get(&p, "query");
    assert_non_null(v);
    assert_string_equal(v->p, "1+1");
    assert_string_equal(api__params_get(&p, "time")->p, "4");
    assert_string_equal(api__params_get(&p, "empty")->p, "");
    assert_non_null(api__params_get(&p, "flag"));
    assert_string_equal(api__params_get(&p, "x")->p, "Ab");
    assert_null(api__params_get(&p, "nope"));
    tsdb_str *all;
    assert_int_equal(api__params_all(&p, "match[]", &a, &all), 2);
    assert_string_equal(all[0].p, "up");
    assert_string_equal(all[1].p, "a b");

    tsdb_err e;
    api_params p2 = {0};
    assert_int_equal(api__params_parse(&p2, &a, "a=%4", 4, &e), TSDB_EINVAL);
    assert_int_equal(api__params_parse(&p2, &a, "a=%zz", 5, &e), TSDB_EINVAL);
    assert_int_equal(api__params_parse(&p2, &a, "a=%", 3, &e), TSDB_EINVAL);
    tsdb_arena_fini(&a);
}

static int64_t t_ok(const char *s)
{
    int64_t ms = 0;
    tsdb_err e;
    int rc = api__parse_time(tsdb_str_c(s), &ms, &e);
    if (rc != TSDB_OK)
        fail_msg("parse_time(%s): %s", s, e.msg);
    return ms;
}

static void t_bad(const char *s)
{
    int64_t ms = 0;
    tsdb_err e;
    if (api__parse_time(tsdb_str_c(s), &ms, &e) == TSDB_OK)
        fail_msg("parse_time(%s) accepted: %lld", s, (long long)ms);
    assert_non_null(strstr(e.msg, "to a valid timestamp"));
}

static void test_times(void **state)
{
    (void)state;
    assert_int_equal(t_ok("4"), 4000);
    assert_int_equal(t_ok("1435781451.781"), 1435781451781);
    assert_int_equal(t_ok("1435781451.7815"), 1435781451782); /* rounded to ms */
    assert_int_equal(t_ok("-1.5"), -1500);
    assert_int_equal(t_ok("0"), 0);
    assert_int_equal(t_ok("1e3"), 1000000);
    assert_int_equal(t_ok("2015-07-01T20:10:51.781Z"), 1435781451781);
    assert_int_equal(t_ok("2015-07-01T20:10:51Z"), 1435781451000);
    assert_int_equal(t_ok("2015-07-01T22:10:51.781+02:00"), 1435781451781);
    assert_int_equal(t_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(t_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(t_ok("2000-02-29T00:00:00.123456789Z"), 951782400123);
    assert_true(t_ok("-292273086-05-16T16:47:06Z") < -(INT64_C(1) << 60));
    assert_true(t_ok("292277025-08-18T07:12:54.999999999Z") > (INT64_C(1) << 60));
    t_bad("");
    t_bad(" 4");
    t_bad("4 ");
    t_bad("abc");
    t_bad("NaN");
    t_bad("Inf");
    t_bad("2015-07-01 20:10:51Z");
    t_bad("2015-13-01T20:10:51Z");
    t_bad("2015-02-29T00:00:00Z");
    t_bad("2015-07-01T20:10:51");
    t_bad("1e300");
    t_bad("0x10");
    assert_int_equal(t_ok("0x1p4"), 16000);
    assert_int_equal(t_ok("+4"), 4000);
}

static int64_t d_ok(const char *s)
{
    int64_t ms = -1;
    tsdb_err e;
    int rc = api__parse_duration(tsdb_str_c(s), &ms, &e);
    if (rc != TSDB_OK)
        fail_msg("parse_duration(%s): %s", s, e.msg);
    return ms;
}

static void d_bad(const char *s)
{
    int64_t ms;
    tsdb_err e;
    if (api__parse_duration(tsdb_str_c(s), &ms, &e) == TSDB_OK)
        fail_msg("parse_duration(%s) accepted: %lld", s, (long long)ms);
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(d_ok("15"), 15000);
    assert_int_equal(d_ok("0.5"), 500);
    assert_int_equal(d_ok("0.0001"), 0); /* Go truncates to whole ms */
    assert_int_equal(d_ok("1h30m"), 5400000);
    assert_int_equal(d_ok("54s321ms"), 54321);
    assert_int_equal(d_ok("1y"), 365LL * 86400000);
    assert_int_equal(d_ok("2w1d"), 15LL * 86400000);
    assert_int_equal(d_ok("0"), 0);
    assert_int_equal(d_ok("5m"), 300000);
    assert_int_equal(d_ok("-15"), -15000);
    d_bad("");
    d_bad("1.5h");
    d_bad("30m1h");
    d_bad("1h1h");
    d_bad("5x");
    d_bad("h");
    d_bad("1e30");
    d_bad("NaN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_decoding),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
