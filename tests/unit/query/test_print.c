/* Unit tests for query/print.c: numbers as Go prints float64, durations as model.Duration,
 * strings as strconv.Quote, and a seeded random round trip: generated queries that parse must
 * print to text that parses to the same printed text (the seed is printed; set QUERY_SEED to
 * replay one). */
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

#include "query/ast.h"
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

static const char *reprint(const char *src)
{
    query_expr *e;
    tsdb_err err = {0};
    if (query_parse(&arena, src, strlen(src), &e, &err) != 0)
        fail_msg("%s: %s", src, err.msg);
    tsdb_str s;
    assert_int_equal(query_print(e, &arena, &s), 0);
    return s.p;
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"0", "0"},
        {"-0", "-0"},
        {"1", "1"},
        {"0.1", "0.1"},
        {"0.0001", "0.0001"},
        {"0.00001", "1e-05"},
        {"123456", "123456"},
        {"999999", "999999"},
        {"1000000", "1e+06"},
        {"1234567", "1.234567e+06"},
        {"1e100", "1e+100"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
        {"5e-324", "5e-324"},
        {"0.1e-3", "0.0001"},
        {"3.141592653589793", "3.141592653589793"},
        {"1/3", "1 / 3"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"0xff", "255"},
        {"0x7fffffffffffffff", "9.223372036854776e+18"},
        {"0777", "511"},
        {"09.5", "9.5"},
        {"Inf", "+Inf"},
        {"-Inf", "-Inf"},
        {"NaN", "NaN"},
        {"-NaN", "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = reprint(cases[i].in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got %s want %s", cases[i].in, got, cases[i].want);
    }
    /* The printed digits read back as the same double. */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (isnan(v) || isinf(v))
            continue;
        v = fabs(v);
        char src[64];
        snprintf(src, sizeof src, "%.17g", v);
        const char *got = reprint(src);
        if (strtod(got, NULL) != v)
            fail_msg("%s printed as %s", src, got);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {1, "1ms"},
        {1500, "1s500ms"},
        {60000, "1m"},
        {5400000, "1h30m"},
        {86400000, "1d"},
        {604800000, "1w"},
        {1209600000, "2w"},
        {777600000, "9d"},
        {7776000000, "90d"},
        {31536000000, "1y"},
        {31536000000 + 86400000, "366d"},
        {93784005, "1d2h3m4s5ms"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = query__fmt_duration(cases[i].ms, buf);
        assert_int_equal(n, strlen(cases[i].want));
        assert_string_equal(buf, cases[i].want);
        /* And back. */
        int64_t ms;
        assert_int_equal(query_parse_duration(buf, n, &ms), 0);
        assert_int_equal(ms, cases[i].ms);
    }
    assert_string_equal(reprint("x offset 1500ms"), "x offset 1s500ms");
    assert_string_equal(reprint("x offset -14d"), "x offset -2w");
    assert_string_equal(reprint("x[5m:] @ 1.0005"), "x[5m:] @ 1.001");
}

static void test_quote(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"abc", 3, "\"abc\""},
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\a\b\f\n\r\t\v", 7, "\"\\a\\b\\f\\n\\r\\t\\v\""},
        {"\x01\x1f\x7f", 3, "\"\\x01\\x1f\\x7f\""},
        {"\0", 1, "\"\\x00\""},
        {"\xc3\xa9\xf0\x9f\x98\x80", 6, "\"\xc3\xa9\xf0\x9f\x98\x80\""},
        {"\xff\xc3", 2, "\"\\xff\\xc3\""},
        {"\xc2\x85", 2, "\"\\u0085\""},
        {"\xc2\xa0", 2, "\"\\u00a0\""},
        {"\xe2\x80\xa8", 3, "\"\\u2028\""},
        {"\xef\xbb\xbf", 3, "\"\\ufeff\""},
        {"\xf3\xb0\x80\x80", 4, "\"\\U000f0000\""},
        {"'", 1, "\"'\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsdb_buf b;
        tsdb_buf_init(&b);
        query__quote(&b, (tsdb_str){cases[i].in, cases[i].len});
        tsdb_buf_putc(&b, 0);
        if (strcmp((const char *)b.p, cases[i].want) != 0)
            fail_msg("case %zu: got %s want %s", i, (const char *)b.p, cases[i].want);
        /* The quoted text is a PromQL string literal with the same value. */
        tsdb_str back = query__unquote(&arena, (const char *)b.p, b.len - 1);
        assert_int_equal(back.len, cases[i].len);
        assert_memory_equal(back.p, cases[i].in, cases[i].len);
        tsdb_buf_fini(&b);
    }
    assert_string_equal(reprint("'a\"b'"), "\"a\\\"b\"");
    assert_string_equal(reprint("`a\\nb`"), "\"a\\\\nb\"");
    assert_string_equal(reprint("\"\\101\\x42\\u0043\\U00000044\""), "\"ABCD\"");
}

/* ---- Random round trip ---------------------------------------------------------------------- */

typedef struct gen {
    uint64_t s;
    char *buf;
    size_t len, cap;
} gen;

static uint32_t rnd(gen *g, uint32_t n)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return (uint32_t)(g->s % n);
}

static void emit(gen *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n + 1 > g->cap)
        return;
    memcpy(g->buf + g->len, s, n + 1);
    g->len += n;
}

#define PICK(g, arr) (arr)[rnd((g), sizeof(arr) / sizeof((arr)[0]))]

static void gen_expr(gen *g, int depth);

static void gen_labels(gen *g)
{
    static const char *const labels[] = {"a", "job", "on", "by", "bool", "le", "sum", "offset"};
    emit(g, "(");
    int n = (int)rnd(g, 3);
    for (int i = 0; i < n; i++) {
        if (i)
            emit(g, ", ");
        emit(g, PICK(g, labels));
    }
    emit(g, ")");
}

static void gen_mods(gen *g)
{
    static const char *const at[] = {" @ 100", " @ 1.5", " @ -3", " @ start()", " @ end()"};
    static const char *const off[] = {" offset 5m", " offset -1h30m", " offset 1500ms"};
    if (rnd(g, 4) == 0)
        emit(g, PICK(g, at));
    if (rnd(g, 4) == 0)
        emit(g, PICK(g, off));
}

static void gen_leaf(gen *g)
{
    static const char *const names[] = {"foo", "a:b", "sum", "by", "offset", "start", "x_1"};
    static const char *const ms[] = {"{a=\"x\"}", "{a=~\".+\",b!=\"\"}", "{job!~\"q\",}",
                                     "{__name__=\"m\"}", "{x='y',z=`w`}"};
    static const char *const nums[] = {"1", "0.5", "1e3", "0x10", "Inf", "NaN", "1e-7", "010"};
    static const char *const strs[] = {"\"s\"", "'t'", "`u\\v`", "\"\\n\\u00e9\""};
    static const char *const durs[] = {"5m", "1h30m", "90s", "2w", "1d12h"};
    switch (rnd(g, 6)) {
    case 0:
    case 1:
        emit(g, PICK(g, names));
        if (rnd(g, 2))
            emit(g, PICK(g, ms));
        gen_mods(g);
        break;
    case 2:
        emit(g, PICK(g, names));
        emit(g, "[");
        emit(g, PICK(g, durs));
        emit(g, "]");
        gen_mods(g);
        break;
    case 3:
    case 4:
        emit(g, PICK(g, nums));
        break;
    default:
        emit(g, PICK(g, strs));
    }
}

static void gen_expr(gen *g, int depth)
{
    static const char *const ops[] = {"+", "-", "*",  "/",  "%",   "^",  "==",     "!=",
                                      ">", "<", ">=", "<=", "and", "or", "unless", "atan2"};
    static const char *const funcs[] = {
        "rate",   "abs",    "round",         "clamp", "time",
        "vector", "scalar", "label_replace", "year",  "histogram_quantile"};
    static const char *const aggs[] = {"sum",      "avg",          "count", "topk",
                                       "quantile", "count_values", "group", "stddev"};
    static const char *const durs[] = {"5m", "1h", "30s"};
    if (depth <= 0) {
        gen_leaf(g);
        return;
    }
    switch (rnd(g, 7)) {
    case 0:
        gen_leaf(g);
        break;
    case 1:
    case 2:
        gen_expr(g, depth - 1);
        emit(g, " ");
        emit(g, PICK(g, ops));
        if (rnd(g, 4) == 0)
            emit(g, " bool");
        if (rnd(g, 4) == 0) {
            emit(g, rnd(g, 2) ? " on" : " ignoring");
            gen_labels(g);
            if (rnd(g, 2)) {
                emit(g, rnd(g, 2) ? " group_left" : " group_right");
                if (rnd(g, 2))
                    gen_labels(g);
            }
        }
        emit(g, " ");
        gen_expr(g, depth - 1);
        break;
    case 3: {
        emit(g, PICK(g, funcs));
        emit(g, "(");
        int n = (int)rnd(g, 3);
        for (int i = 0; i < n; i++) {
            if (i)
                emit(g, ", ");
            gen_expr(g, depth - 1);
        }
        emit(g, ")");
        break;
    }
    case 4: {
        const char *a = PICK(g, aggs);
        emit(g, a);
        int pre = (int)rnd(g, 3);
        if (pre == 1) {
            emit(g, rnd(g, 2) ? " by " : " without ");
            gen_labels(g);
        }
        emit(g, "(");
        if (!strcmp(a, "topk") || !strcmp(a, "quantile") || !strcmp(a, "count_values")) {
            gen_expr(g, depth - 1);
            emit(g, ", ");
        }
        gen_expr(g, depth - 1);
        emit(g, ")");
        if (pre == 2) {
            emit(g, rnd(g, 2) ? " by " : " without ");
            gen_labels(g);
        }
        break;
    }
    case 5:
        emit(g, "(");
        gen_expr(g, depth - 1);
        emit(g, ")");
        if (rnd(g, 2)) {
            emit(g, "[");
            emit(g, PICK(g, durs));
            emit(g, ":");
            if (rnd(g, 2))
                emit(g, PICK(g, durs));
            emit(g, "]");
            gen_mods(g);
        }
        break;
    default:
        emit(g, rnd(g, 2) ? "-" : "+");
        gen_expr(g, depth - 1);
    }
}

static void test_random_round_trip(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("QUERY_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    print_message("seed %llu\n", (unsigned long long)seed);
    gen g = {seed * 2654435761u + 1, NULL, 0, 4096};
    g.buf = xmalloc(g.cap);
    int parsed = 0, total = 20000;
    for (int i = 0; i < total; i++) {
        g.len = 0;
        g.buf[0] = 0;
        gen_expr(&g, (int)rnd(&g, 5));
        query_expr *e, *e2;
        tsdb_err err = {0};
        if (query_parse(&arena, g.buf, g.len, &e, &err) != 0) {
            /* Rejections are type errors with a Prometheus-style message. */
            if (strstr(err.msg, "parse error: ") == NULL)
                fail_msg("seed %llu: %s: %s", (unsigned long long)seed, g.buf, err.msg);
            continue;
        }
        parsed++;
        tsdb_str s1, s2;
        assert_int_equal(query_print(e, &arena, &s1), 0);
        if (query_parse(&arena, s1.p, s1.len, &e2, &err) != 0)
            fail_msg("seed %llu: %s printed as %s which fails: %s", (unsigned long long)seed, g.buf,
                     s1.p, err.msg);
        assert_int_equal(query_print(e2, &arena, &s2), 0);
        if (strcmp(s1.p, s2.p) != 0)
            fail_msg("seed %llu: %s printed as\n %s\n then %s", (unsigned long long)seed, g.buf,
                     s1.p, s2.p);
        assert_int_equal(query_expr_type(e), query_expr_type(e2));
        if ((i & 1023) == 0)
            tsdb_arena_reset(&arena);
    }
    print_message("%d of %d generated queries parsed\n", parsed, total);
    assert_true(parsed > total / 10);
    free(g.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
