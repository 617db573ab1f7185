/* Unit tests for the evaluator's pure numeric helpers: extrapolated rate (query/func_range.c,
 * Prometheus 2.42's extrapolatedRate), instant deltas, linear regression, Holt-Winters,
 * histogram bucket quantiles with their fix-ups (query/func_hist.c), Prometheus' quantile,
 * Go-style float formatting for count_values (query/value.c) and calendar fields
 * (query/func_time.c). Expected values are worked out by hand in the comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "query/eval.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define S(t_s, v) ((tsdb_sample){(int64_t)((t_s)*1000), (v)})

static void assert_close(double want, double got)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    if (want == got)
        return;
    double d = fabs(want - got);
    if (d > 1e-9 * (fabs(want) + fabs(got)))
        fail_msg("want %.17g, got %.17g", want, got);
}

/* ---- rate / increase / delta --------------------------------------------------------------------
 */

static void test_rate_regular(void **state)
{
    (void)state;
    /* Samples every 10 s inside [0, 40 s]: 10 s from each edge is below the 11 s threshold, so
     * the 20 s sampled interval extends to the whole 40 s: increase 20 * 2 = 40, rate 1/s. */
    tsdb_sample p[] = {S(10, 10), S(20, 20), S(30, 30)};
    double v;
    assert_int_equal(query__extrapolated_rate(p, 3, 0, 40000, 1, 0, &v), 1);
    assert_close(40, v);
    assert_int_equal(query__extrapolated_rate(p, 3, 0, 40000, 1, 1, &v), 1);
    assert_close(1, v);
    /* delta does not treat a decrease as a reset */
    tsdb_sample g[] = {S(0, 10), S(10, 4), S(20, 7)};
    assert_int_equal(query__extrapolated_rate(g, 3, 0, 20000, 0, 0, &v), 1);
    assert_close(-3, v);
}

static void test_rate_counter_reset(void **state)
{
    (void)state;
    /* 5 -> 10 -> 2 (reset: +10) -> 7: raw increase 2 + 10 = 12, samples on both edges. */
    tsdb_sample p[] = {S(0, 5), S(10, 10), S(20, 2), S(30, 7)};
    double v;
    assert_int_equal(query__extrapolated_rate(p, 4, 0, 30000, 1, 0, &v), 1);
    assert_close(12, v);
}

static void test_rate_extrapolation_limits(void **state)
{
    (void)state;
    /* Two samples 10 s apart in a 200 s window, 100 s and 90 s from the edges: too far, so each
     * side extends by half the average spacing (5 s): delta = 1 * 20 / 10 = 2. */
    tsdb_sample p[] = {S(100, 1), S(110, 2)};
    double v;
    assert_int_equal(query__extrapolated_rate(p, 2, 0, 200000, 0, 0, &v), 1);
    assert_close(2, v);
    /* As a counter, the zero point is 10 s before the first sample (1 / slope 0.1): in 2.42 that
     * replaces the start distance before the threshold test, so the start extends 10 s and the
     * end 5 s: 1 * 25 / 10 = 2.5. */
    assert_int_equal(query__extrapolated_rate(p, 2, 0, 200000, 1, 0, &v), 1);
    assert_close(2.5, v);
    /* Fewer than two samples: no result. */
    assert_int_equal(query__extrapolated_rate(p, 1, 0, 200000, 1, 1, &v), 0);
}

static void test_instant_delta(void **state)
{
    (void)state;
    tsdb_sample p[] = {S(0, 1), S(10, 50), S(15, 20)};
    double v;
    /* irate after a reset uses the last value: 20 / 5 s */
    assert_int_equal(query__instant_delta(p, 3, 1, &v), 1);
    assert_close(4, v);
    assert_int_equal(query__instant_delta(p, 3, 0, &v), 1);
    assert_close(-30, v);
    assert_int_equal(query__instant_delta(p, 1, 0, &v), 0);
}

static void test_linear_regression(void **state)
{
    (void)state;
    /* y = 2 x + 3 with x in seconds from t0 = 0 */
    tsdb_sample p[] = {S(0, 3), S(1, 5), S(2, 7), S(4, 11)};
    double slope, icpt;
    query__linear_regression(p, 4, 0, &slope, &icpt);
    assert_close(2, slope);
    assert_close(3, icpt);
    /* Intercept at t0 = 4 s is the value there. */
    query__linear_regression(p, 4, 4000, &slope, &icpt);
    assert_close(11, icpt);
    /* Constant input: slope 0; constant infinity: NaN. */
    tsdb_sample c[] = {S(0, 7), S(1, 7)};
    query__linear_regression(c, 2, 0, &slope, &icpt);
    assert_close(0, slope);
    assert_close(7, icpt);
    tsdb_sample inf[] = {S(0, INFINITY), S(1, INFINITY)};
    query__linear_regression(inf, 2, 0, &slope, &icpt);
    assert_true(isnan(slope));
}

static void test_holt_winters(void **state)
{
    (void)state;
    /* sf = tf = 0.5 over 1, 3, 4:
     * s1 = 1, b = 2;
     * i=1: s = 0.5*3 + 0.5*(1 + 2) = 3;          s0 = 1, s1 = 3
     * i=2: b = 0.5*(3 - 1) + 0.5*2 = 2; s = 0.5*4 + 0.5*(3 + 2) = 4.5 */
    tsdb_sample p[] = {S(0, 1), S(1, 3), S(2, 4)};
    double v;
    assert_int_equal(query__holt_winters(p, 3, 0.5, 0.5, &v), 1);
    assert_close(4.5, v);
    assert_int_equal(query__holt_winters(p, 1, 0.5, 0.5, &v), 0);
}

/* ---- histogram_quantile
 * -------------------------------------------------------------------------- */

static void test_bucket_quantile(void **state)
{
    (void)state;
    /* 10 observations: 2 <= 0.1, 5 <= 0.5, 8 <= 1. Median rank 5 falls at the top of the 0.5
     * bucket; rank 9 (q 0.9) is in +Inf: the highest finite bound. */
    query_bucket b[] = {{1, 8}, {INFINITY, 10}, {0.1, 2}, {0.5, 5}};
    assert_close(0.5, query__bucket_quantile(0.5, b, 4));
    query_bucket b2[] = {{0.1, 2}, {0.5, 5}, {1, 8}, {INFINITY, 10}};
    assert_close(1, query__bucket_quantile(0.9, b2, 4));
    /* q 0.35: rank 3.5, bucket (0.1, 0.5] holds 3, 1.5 into it: 0.1 + 0.4 * 0.5 = 0.3 */
    query_bucket b3[] = {{0.1, 2}, {0.5, 5}, {1, 8}, {INFINITY, 10}};
    assert_close(0.3, query__bucket_quantile(0.35, b3, 4));
    /* Out-of-range q and missing +Inf */
    query_bucket b4[] = {{0.1, 2}, {INFINITY, 10}};
    assert_true(isinf(query__bucket_quantile(-0.1, b4, 2)) &&
                query__bucket_quantile(-0.1, b4, 2) < 0);
    assert_true(isinf(query__bucket_quantile(1.5, b4, 2)));
    query_bucket b5[] = {{0.1, 2}, {1, 10}};
    assert_true(isnan(query__bucket_quantile(0.5, b5, 2)));
    /* Non-monotonic counts are raised to the running maximum: 1 -> {4, 4, 6} */
    query_bucket b6[] = {{1, 4}, {2, 3}, {INFINITY, 6}};
    /* rank 3 <= 4 in the first bucket: 0 + 1 * 3/4 */
    assert_close(0.75, query__bucket_quantile(0.5, b6, 3));
    /* Duplicate bounds merge: le=1 twice (1 + 1) */
    query_bucket b7[] = {{1, 1}, {1, 1}, {INFINITY, 4}};
    assert_close(1, query__bucket_quantile(0.5, b7, 3));
    /* Zero observations */
    query_bucket b8[] = {{1, 0}, {INFINITY, 0}};
    assert_true(isnan(query__bucket_quantile(0.5, b8, 2)));
    /* A first bucket with a bound <= 0 returns that bound */
    query_bucket b9[] = {{-1, 3}, {INFINITY, 4}};
    assert_close(-1, query__bucket_quantile(0.5, b9, 2));
}

/* ---- quantile, formatting, dates
 * ------------------------------------------------------------------ */

static void test_quantile(void **state)
{
    (void)state;
    double v[] = {4, 1, 3, 2};
    assert_close(2.5, query__quantile(0.5, v, 4));
    double w[] = {4, 1, 3, 2};
    assert_close(1.75, query__quantile(0.25, w, 4));
    double x[] = {1};
    assert_true(isinf(query__quantile(-1, x, 1)) && query__quantile(-1, x, 1) < 0);
    assert_true(isnan(query__quantile(NAN, x, 1)));
}

static void test_fmt_float(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    query_eval_ctx c;
    memset(&c, 0, sizeof c);
    c.a = &a;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {1, "1"},
        {0.1, "0.1"},
        {-2.5, "-2.5"},
        {1e21, "1000000000000000000000"},
        {1.5e-7, "0.00000015"},
        {123456.789, "123456.789"},
        {0.30000000000000004, "0.30000000000000004"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsdb_str s = query__fmt_float(&c, cases[i].v);
        if (s.len != strlen(cases[i].s) || memcmp(s.p, cases[i].s, s.len) != 0)
            fail_msg("%.17g: want %s, got %.*s", cases[i].v, cases[i].s, (int)s.len, s.p);
    }
    tsdb_str n = query__fmt_float(&c, NAN);
    assert_int_equal(n.len, 3);
    assert_memory_equal(n.p, "NaN", 3);
    tsdb_arena_fini(&a);
}

static void test_date_parts(void **state)
{
    (void)state;
    /* 951782400 = 2000-02-29T00:00:00Z, a Tuesday, day 60 of a leap year */
    double t = 951782400;
    assert_close(2000, query__date_part(QUERY_FN_YEAR, t));
    assert_close(2, query__date_part(QUERY_FN_MONTH, t));
    assert_close(29, query__date_part(QUERY_FN_DAY_OF_MONTH, t));
    assert_close(60, query__date_part(QUERY_FN_DAY_OF_YEAR, t));
    assert_close(29, query__date_part(QUERY_FN_DAYS_IN_MONTH, t));
    assert_close(2, query__date_part(QUERY_FN_DAY_OF_WEEK, t));
    assert_close(5, query__date_part(QUERY_FN_HOUR, t + 5 * 3600 + 7 * 60));
    assert_close(7, query__date_part(QUERY_FN_MINUTE, t + 5 * 3600 + 7 * 60));
    /* One second before the epoch: 1969-12-31T23:59:59Z, a Wednesday */
    assert_close(1969, query__date_part(QUERY_FN_YEAR, -1));
    assert_close(23, query__date_part(QUERY_FN_HOUR, -1));
    assert_close(59, query__date_part(QUERY_FN_MINUTE, -1));
    assert_close(3, query__date_part(QUERY_FN_DAY_OF_WEEK, -1));
    assert_close(365, query__date_part(QUERY_FN_DAY_OF_YEAR, -1));
    /* 1900 is not a leap year, 2100 neither, 2400 is */
    assert_close(28, query__date_part(QUERY_FN_DAYS_IN_MONTH, -2208988800.0 + 40 * 86400));
    /* NaN converts like Go's int64(NaN) on amd64 (INT64_MIN): Prometheus answers this year. */
    assert_close(292277026596.0, query__date_part(QUERY_FN_YEAR, NAN));
    assert_close(30, query__date_part(QUERY_FN_MINUTE, INFINITY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_regular),
        cmocka_unit_test(test_rate_counter_reset),
        cmocka_unit_test(test_rate_extrapolation_limits),
        cmocka_unit_test(test_instant_delta),
        cmocka_unit_test(test_linear_regression),
        cmocka_unit_test(test_holt_winters),
        cmocka_unit_test(test_bucket_quantile),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_fmt_float),
        cmocka_unit_test(test_date_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
