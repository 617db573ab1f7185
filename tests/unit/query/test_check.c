/* Unit tests for query/check.c: static types of every node kind and the type errors of
 * Prometheus 2.42's checkAST. The table's expected results (printed form or error) were
 * produced by a local Prometheus 2.42 through /api/v1/format_query. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

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

static const struct {
    const char *in;
    int ok;
    const char *want; /* printed form, or the error */
} cases[] = {
    {"rate(foo)", 0,
     "1:6: parse error: expected type range vector in call to function \"rate\", got instant "
     "vector"},
    {"rate(foo[5m], 1)", 0, "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"},
    {"abs(1)", 0,
     "1:5: parse error: expected type instant vector in call to function \"abs\", got scalar"},
    {"abs(\"a\")", 0,
     "1:5: parse error: expected type instant vector in call to function \"abs\", got string"},
    {"abs(foo[5m])", 0,
     "1:5: parse error: expected type instant vector in call to function \"abs\", got range "
     "vector"},
    {"vector(\"a\")", 0,
     "1:8: parse error: expected type scalar in call to function \"vector\", got string"},
    {"vector(foo)", 0,
     "1:8: parse error: expected type scalar in call to function \"vector\", got instant vector"},
    {"scalar(1)", 0,
     "1:8: parse error: expected type instant vector in call to function \"scalar\", got scalar"},
    {"histogram_quantile(foo, bar)", 0,
     "1:20: parse error: expected type scalar in call to function \"histogram_quantile\", got "
     "instant vector"},
    {"label_replace(foo, \"a\", \"b\", \"c\", 1)", 0,
     "1:35: parse error: expected type string in call to function \"label_replace\", got scalar"},
    {"label_join(foo, \"a\", \",\", 1)", 0,
     "1:27: parse error: expected type string in call to function \"label_join\", got scalar"},
    {"label_join(foo, \"a\", \",\", \"b\", 2)", 0,
     "1:32: parse error: expected type string in call to function \"label_join\", got scalar"},
    {"quantile_over_time(foo, bar[5m])", 0,
     "1:20: parse error: expected type scalar in call to function \"quantile_over_time\", got "
     "instant vector"},
    {"holt_winters(foo[5m], 0.5)", 0,
     "1:1: parse error: expected 3 argument(s) in call to \"holt_winters\", got 2"},
    {"clamp(foo, 1)", 0, "1:1: parse error: expected 3 argument(s) in call to \"clamp\", got 2"},
    {"clamp(foo, 1, 2, 3)", 0,
     "1:1: parse error: expected 3 argument(s) in call to \"clamp\", got 4"},
    {"round(foo, \"a\")", 0,
     "1:12: parse error: expected type scalar in call to function \"round\", got string"},
    {"time() + \"a\"", 0,
     "1:10: parse error: binary expression must contain only scalar and instant vector types"},
    {"foo[5m] * 2", 0,
     "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"2 * foo[5m]", 0,
     "1:5: parse error: binary expression must contain only scalar and instant vector types"},
    {"1 < 2", 0, "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"1 < bool 2", 1, "1 < bool 2"},
    {"foo < bool 2", 1, "foo < bool 2"},
    {"foo + bool bar", 0,
     "1:5: parse error: bool modifier can only be used on comparison operators"},
    {"foo and 1", 0,
     "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"1 or foo", 0,
     "1:1: parse error: set operator \"or\" not allowed in binary scalar expression"},
    {"1 unless 2", 0,
     "1:1: parse error: set operator \"unless\" not allowed in binary scalar expression"},
    {"foo and on (a) group_right bar", 0,
     "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"foo or ignoring (a) group_left (b) bar", 0,
     "1:1: parse error: no grouping allowed for \"or\" operation"},
    {"foo + on (a) group_left (a) bar", 0,
     "1:5: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
    {"foo + on (a) 1", 0, "1:1: parse error: vector matching only allowed between instant vectors"},
    {"1 + ignoring (a) foo", 0,
     "1:1: parse error: vector matching only allowed between instant vectors"},
    {"sum(1)", 0,
     "1:5: parse error: expected type instant vector in aggregation expression, got scalar"},
    {"sum(foo[5m])", 0,
     "1:5: parse error: expected type instant vector in aggregation expression, got range vector"},
    {"topk(\"a\", foo)", 0,
     "1:6: parse error: expected type scalar in aggregation parameter, got string"},
    {"topk(foo, bar)", 0,
     "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"},
    {"bottomk(1, 2)", 0,
     "1:12: parse error: expected type instant vector in aggregation expression, got scalar"},
    {"quantile(foo, bar)", 0,
     "1:10: parse error: expected type scalar in aggregation parameter, got instant vector"},
    {"count_values(foo, bar)", 0,
     "1:14: parse error: expected type string in aggregation parameter, got instant vector"},
    {"count_values(\"a\", 1)", 0,
     "1:19: parse error: expected type instant vector in aggregation expression, got scalar"},
    {"-\"a\"", 0,
     "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
     "vector, got \"string\""},
    {"-foo[5m]", 0,
     "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
     "vector, got \"range vector\""},
    {"+(foo[5m])", 0,
     "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
     "vector, got \"range vector\""},
    {"\"a\"[5m:]", 0,
     "1:1: parse error: subquery is only allowed on instant vector, got string instead"},
    {"(foo[5m])[5m:]", 0,
     "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"rate(foo[5m])[5m:]", 1, "rate(foo[5m])[5m:]"},
    {"1[5m:]", 0,
     "1:1: parse error: subquery is only allowed on instant vector, got scalar instead"},
    {"{a!=\"b\"}", 0,
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a!~\"b\"}", 0,
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=~\".+\"}", 1, "{a=~\".+\"}"},
    {"{a=~\"b|\"}", 0,
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a!=\"\"}", 1, "{a!=\"\"}"},
    {"{__name__=~\".*\"}", 0,
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"foo{__name__=\"foo\"}", 0,
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"foo\""},
    {"foo{__name__=~\"foo\"}", 0,
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"foo\""},
    {"(rate(foo[5m]))", 1, "(rate(foo[5m]))"},
    {"((1)) == bool ((2))", 1, "((1)) == bool ((2))"},
    {"sum(rate(foo)) by (a)", 0,
     "1:10: parse error: expected type range vector in call to function \"rate\", got instant "
     "vector"},
    {"abs(rate(foo))", 0,
     "1:10: parse error: expected type range vector in call to function \"rate\", got instant "
     "vector"},
    {"year(foo[5m])", 0,
     "1:6: parse error: expected type instant vector in call to function \"year\", got range "
     "vector"},
};

static void test_prometheus_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        query_expr *e = NULL;
        tsdb_err err = {0};
        int rc = query_parse(&arena, cases[i].in, strlen(cases[i].in), &e, &err);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("%s: %s", cases[i].in, err.msg);
            tsdb_str s;
            assert_int_equal(query_print(e, &arena, &s), 0);
            if (strcmp(s.p, cases[i].want) != 0)
                fail_msg("%s: printed %s want %s", cases[i].in, s.p, cases[i].want);
        } else {
            if (rc != TSDB_EPARSE)
                fail_msg("%s: accepted", cases[i].in);
            if (strcmp(err.msg, cases[i].want) != 0)
                fail_msg("%s:\n got  %s\n want %s", cases[i].in, err.msg, cases[i].want);
        }
    }
}

static void test_types(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        enum query_type t;
    } types[] = {
        {"1", QUERY_SCALAR},
        {"-1", QUERY_SCALAR},
        {"\"s\"", QUERY_STRING},
        {"(\"s\")", QUERY_STRING},
        {"x", QUERY_VECTOR},
        {"-x", QUERY_VECTOR},
        {"x[5m]", QUERY_MATRIX},
        {"x[5m:]", QUERY_MATRIX},
        {"(x[5m])", QUERY_MATRIX},
        {"1 + 2", QUERY_SCALAR},
        {"1 + x", QUERY_VECTOR},
        {"x + 1", QUERY_VECTOR},
        {"x and y", QUERY_VECTOR},
        {"1 == bool 2", QUERY_SCALAR},
        {"time()", QUERY_SCALAR},
        {"pi() * 2", QUERY_SCALAR},
        {"scalar(x)", QUERY_SCALAR},
        {"vector(1)", QUERY_VECTOR},
        {"rate(x[5m])", QUERY_VECTOR},
        {"sum(x)", QUERY_VECTOR},
        {"count_values(\"a\", x)", QUERY_VECTOR},
        {"-(time())", QUERY_SCALAR},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        query_expr *e;
        tsdb_err err = {0};
        if (query_parse(&arena, types[i].in, strlen(types[i].in), &e, &err) != 0)
            fail_msg("%s: %s", types[i].in, err.msg);
        if (query_expr_type(e) != types[i].t)
            fail_msg("%s: type %d want %d", types[i].in, query_expr_type(e), types[i].t);
    }
}

/* query__check directly: the first error in child-before-parent order wins. */
static void test_check_order(void **state)
{
    (void)state;
    query_expr *e;
    tsdb_err err = {0};
    /* Both sides are wrong: the left one is reported. */
    const char *q = "rate(x) + rate(y)";
    assert_int_equal(query_parse(&arena, q, strlen(q), &e, &err), TSDB_EPARSE);
    assert_int_equal(err.pos, 5);
    /* An arity error comes before the argument types. */
    q = "rate(x, y)";
    assert_int_equal(query_parse(&arena, q, strlen(q), &e, &err), TSDB_EPARSE);
    assert_string_equal(err.msg,
                        "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2");
    /* The aggregated expression is checked before the parameter. */
    q = "topk(\"a\", x[5m])";
    assert_int_equal(query_parse(&arena, q, strlen(q), &e, &err), TSDB_EPARSE);
    assert_int_equal(err.pos, 10);
    /* A valid tree checks clean again, and keeps its vector matching. */
    q = "a + on (b) c";
    assert_int_equal(query_parse(&arena, q, strlen(q), &e, &err), 0);
    assert_int_equal(query__check(e, q, (int)strlen(q), &err), 0);
    assert_true(e->u.bin.m.has_matching);
    assert_true(e->u.bin.m.on);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prometheus_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
