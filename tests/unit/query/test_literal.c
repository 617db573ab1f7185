/* Unit tests for query/literal.c: number literals with Go's ParseInt-then-ParseFloat rules
 * (expected results produced by a local Prometheus 2.42), the duration grammar and its
 * messages, and string unquoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "query/parse.h"
#include "query/query.h"
#include "tsdb/base.h"

static tsdb_arena arena;

static int setup(void **state)
{
    (void)state;
    tsdb_arena_init(&arena, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsdb_arena_fini(&arena);
    return 0;
}

static const struct {
    const char *in;
    int ok;
    const char *want; /* printed form, or the error */
} numbers[] = {
    {"0", 1, "0"},
    {"00", 1, "0"},
    {"010", 1, "8"},
    {"0777", 1, "511"},
    {"08", 1, "8"},
    {"09.5", 1, "9.5"},
    {"0x0", 1, "0"},
    {"0x1F", 1, "31"},
    {"0X1f", 1, "31"},
    {"0x7FFFFFFFFFFFFFFF", 1, "9.223372036854776e+18"},
    {"0x8000000000000000", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x8000000000000000\": "
     "invalid syntax"},
    {"9223372036854775807", 1, "9.223372036854776e+18"},
    {"9223372036854775808", 1, "9.223372036854776e+18"},
    {"1e3", 1, "1000"},
    {"1E-3", 1, "0.001"},
    {".5", 1, "0.5"},
    {"5.", 1, "5"},
    {"1.e5", 1, "100000"},
    {"0e5", 1, "0"},
    {"012e1", 1, "120"},
    {"1e308", 1, "1e+308"},
    {"1e309", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e309\": value out of "
     "range"},
    {"1e-400", 1, "0"},
    {"0x", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x\": invalid syntax"},
    {"0x.8", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x.8\": invalid "
     "syntax"},
    {"1e", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax"},
    {"1e+", 0,
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e+\": invalid syntax"},
    {"Inf", 1, "+Inf"},
    {"inf", 1, "+Inf"},
    {"INF", 1, "+Inf"},
    {"NaN", 1, "NaN"},
    {"nan", 1, "NaN"},
    {"infinity", 1, "infinity"},
};

static void test_number_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        query_expr *e;
        tsdb_err err = {0};
        int rc = query_parse(&arena, numbers[i].in, strlen(numbers[i].in), &e, &err);
        const char *got = err.msg;
        tsdb_str s;
        if (rc == 0) {
            assert_int_equal(query_print(e, &arena, &s), 0);
            got = s.p;
        }
        if ((rc == 0) != numbers[i].ok || strcmp(got, numbers[i].want) != 0)
            fail_msg("%s: got %s want %s", numbers[i].in, got, numbers[i].want);
    }
}

static void test_parse_number(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double v;
    } ok[] = {
        {"0x10", 16},       {"017", 15},         {"019", 19},        {"1.5e2", 150},
        {".25", 0.25},      {"-Inf", -INFINITY}, {"+inf", INFINITY}, {"Infinity", INFINITY},
        {"4e-320", 4e-320},
    };
    char msg[200];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = 0;
        if (query__parse_number(ok[i].in, strlen(ok[i].in), &v, msg, sizeof msg) != 0)
            fail_msg("%s: %s", ok[i].in, msg);
        if (v != ok[i].v)
            fail_msg("%s: %g want %g", ok[i].in, v, ok[i].v);
    }
    double v;
    assert_int_equal(query__parse_number("nan", 3, &v, msg, sizeof msg), 0);
    assert_true(isnan(v));
    static const char *const bad[] = {"", ".", "e5", "1e", "0x", "0xz", "1.2.3", "--1", "1f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (query__parse_number(bad[i], strlen(bad[i]), &v, msg, sizeof msg) == 0)
            fail_msg("%s parsed as %g", bad[i], v);
        assert_non_null(strstr(msg, "error parsing number: strconv.ParseFloat: parsing"));
    }
    /* Only len bytes are read. */
    assert_int_equal(query__parse_number("12abc", 2, &v, msg, sizeof msg), 0);
    assert_true(v == 12);
}

static void test_duration_messages(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "empty duration string"},
        {"5", "not a valid duration string: \"5\""},
        {"1h1d", "not a valid duration string: \"1h1d\""},
        {"1s1s", "not a valid duration string: \"1s1s\""},
        {"1ms1s", "not a valid duration string: \"1ms1s\""},
        {"1x", "not a valid duration string: \"1x\""},
        {"293y", "duration out of range"},
        {"106752d", "duration out of range"},
        {"18446744073709551616ms", "duration out of range"},
    };
    char msg[100];
    int64_t ms;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            query__parse_duration_msg(bad[i].in, strlen(bad[i].in), &ms, msg, sizeof msg), -1);
        if (strcmp(msg, bad[i].msg) != 0)
            fail_msg("%s: got %s want %s", bad[i].in, msg, bad[i].msg);
    }
    /* The largest value that fits. */
    assert_int_equal(query__parse_duration_msg("106751d", 7, &ms, msg, sizeof msg), 0);
    assert_int_equal(ms, 106751LL * 86400000);
    assert_int_equal(query__parse_duration_msg("9223372036854ms", 15, &ms, msg, sizeof msg), 0);
    assert_int_equal(query__parse_duration_msg("9223372036855ms", 15, &ms, msg, sizeof msg), -1);
}

static void test_unquote(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
        size_t want_len;
    } cases[] = {
        {"\"\"", "", 0},
        {"\"abc\"", "abc", 3},
        {"'a\"b'", "a\"b", 3},
        {"'a\\'b'", "a'b", 3},
        {"\"a\\\"b\"", "a\"b", 3},
        {"\"\\a\\b\\f\\n\\r\\t\\v\\\\\"", "\a\b\f\n\r\t\v\\", 8},
        {"\"\\x41\\101\\u00e9\\U0001F600\"", "AA\xc3\xa9\xf0\x9f\x98\x80", 8},
        {"\"\\x00\\000\"", "\0\0", 2},
        {"\"\\xff\"", "\xff", 1},
        {"`a\\nb`", "a\\nb", 4},
        {"`a\r\nb`", "a\nb", 3},
        {"\"\xc3\xa9\"", "\xc3\xa9", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsdb_str s = query__unquote(&arena, cases[i].in, strlen(cases[i].in));
        if (s.len != cases[i].want_len || memcmp(s.p, cases[i].want, s.len) != 0)
            fail_msg("case %zu (%s): got %zu bytes", i, cases[i].in, s.len);
        assert_int_equal(s.p[s.len], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_number_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unquote, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
