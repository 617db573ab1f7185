/* Unit tests for query/parse.c and query/check.c: inputs and the canonical text Prometheus 2.42
 * prints for them, bad inputs and the exact error Prometheus 2.42 reports (both tables were
 * produced by a local Prometheus 2.42 through /api/v1/format_query), the shape of the tree
 * (precedence, associativity, modifiers, positions, types), durations, selectors, and every
 * expression of the upstream PromQL test files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/parse.h"
#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

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

/* Parses src or fails the test. */
static const query_expr *parse_ok(const char *src)
{
    query_expr *e = NULL;
    tsdb_err err = {0};
    if (query_parse(&arena, src, strlen(src), &e, &err) != 0)
        fail_msg("%s: %s", src, err.msg);
    return e;
}

static const char *print(const query_expr *e)
{
    tsdb_str s;
    assert_int_equal(query_print(e, &arena, &s), 0);
    assert_int_equal(strlen(s.p), s.len);
    return s.p;
}

/* ---- Canonical text ------------------------------------------------------------------------ */

static const struct {
    const char *in, *want;
} ok_cases[] = {
    {"e @ end()[5m]", "e[5m] @ end()"},
    {"1", "1"},
    {"-1", "-1"},
    {"+1", "1"},
    {"- -1", "1"},
    {"1 - - 1", "1 - -1"},
    {".5", "0.5"},
    {"5.", "5"},
    {"0x1F", "31"},
    {"010", "8"},
    {"08", "8"},
    {"1e3", "1000"},
    {"12.34e-6", "1.234e-05"},
    {"1456790400", "1.4567904e+09"},
    {"100000", "100000"},
    {"1000000", "1e+06"},
    {"Inf", "+Inf"},
    {"-inf", "-Inf"},
    {"nan", "NaN"},
    {"\"a\\x41\\u00e9\\101\"", "\"aA\303\251A\""},
    {"'a\"b'", "\"a\\\"b\""},
    {"`a\\nb`", "\"a\\\\nb\""},
    {"\"\\a\\b\\f\\v\\r\\t\\\\\"", "\"\\a\\b\\f\\v\\r\\t\\\\\""},
    {"foo", "foo"},
    {"foo:bar{a=\"b\"}", "foo:bar{a=\"b\"}"},
    {"{__name__=\"foo\",a=\"b\"}", "{__name__=\"foo\",a=\"b\"}"},
    {"{le=\".*\",le=~\"\",__name__=\"\"}", "{le=\".*\",le=~\"\"}"},
    {"foo{a=\"b\",a!=\"c\"}", "foo{a!=\"c\",a=\"b\"}"},
    {"foo{b=\"1\",a=~\"x\",c!~\"y\",}", "foo{a=~\"x\",b=\"1\",c!~\"y\"}"},
    {"foo{}", "foo"},
    {"sum", "sum"},
    {"by", "by"},
    {"offset", "offset"},
    {"start", "start"},
    {"foo offset 5m", "foo offset 5m"},
    {"foo offset -5m", "foo offset -5m"},
    {"foo offset - 5m", "foo offset -5m"},
    {"foo offset 1500ms", "foo offset 1s500ms"},
    {"foo offset 14d", "foo offset 2w"},
    {"foo offset 90d", "foo offset 90d"},
    {"foo offset 1y", "foo offset 1y"},
    {"foo offset 1h30m", "foo offset 1h30m"},
    {"foo @ 1.5", "foo @ 1.500"},
    {"foo @ -1", "foo @ -1.000"},
    {"foo @ 1.0005", "foo @ 1.001"},
    {"foo @ 0x10", "foo @ 16.000"},
    {"foo @ start() offset 1m", "foo @ start() offset 1m"},
    {"foo offset 1m @ end()", "foo @ end() offset 1m"},
    {"foo[5m]", "foo[5m]"},
    {"foo[5m] @ 1 offset 1m", "foo[5m] @ 1.000 offset 1m"},
    {"foo[5m] offset 1m", "foo[5m] offset 1m"},
    {"foo[5m:]", "foo[5m:]"},
    {"foo[5m:1m]", "foo[5m:1m]"},
    {"foo[5m:]offset 1m", "foo[5m:] offset 1m"},
    {"foo[5m:] offset 1m @ 1", "foo[5m:] @ 1.000 offset 1m"},
    {"(foo)[5m:]", "(foo)[5m:]"},
    {"rate(foo[5m])[5m:1m]", "rate(foo[5m])[5m:1m]"},
    {"1 + 2 * 3", "1 + 2 * 3"},
    {"(1 + 2) * 3", "(1 + 2) * 3"},
    {"-1^2", "-1 ^ 2"},
    {"-foo^2", "-foo ^ 2"},
    {"2^3^2", "2 ^ 3 ^ 2"},
    {"a or b and c", "a or b and c"},
    {"a and b or c", "a and b or c"},
    {"a atan2 b", "a atan2 b"},
    {"a / b / c", "a / b / c"},
    {"time() == bool 1", "time() == bool 1"},
    {"1 > bool 2", "1 > bool 2"},
    {"foo > bool bar", "foo > bool bar"},
    {"foo unless on() bar", "foo unless on () bar"},
    {"foo + on (a) group_left bar", "foo + on (a) group_left () bar"},
    {"foo + on (a) group_left (b) bar", "foo + on (a) group_left (b) bar"},
    {"foo / ignoring (mode) group_right (x, y) bar",
     "foo / ignoring (mode) group_right (x, y) bar"},
    {"foo + ignoring (a) group_left (a) bar", "foo + ignoring (a) group_left (a) bar"},
    {"1 + on() 2", "1 + 2"},
    {"SUM(foo)", "sum(foo)"},
    {"foo AND bar", "foo and bar"},
    {"sum(foo) by (job)", "sum by (job) (foo)"},
    {"sum by (job) (foo)", "sum by (job) (foo)"},
    {"sum without(a)(foo)", "sum without (a) (foo)"},
    {"sum by (a,) (foo)", "sum by (a) (foo)"},
    {"sum by () (foo)", "sum(foo)"},
    {"sum by (sum, on, bool, start) (x)", "sum by (sum, on, bool, start) (x)"},
    {"topk(3, foo) by (a)", "topk by (a) (3, foo)"},
    {"quantile without (a) (0.9, foo)", "quantile without (a) (0.9, foo)"},
    {"count_values(\"a\", foo)", "count_values(\"a\", foo)"},
    {"count_values(\"x\", foo) by (a)", "count_values by (a) (\"x\", foo)"},
    {"label_replace(foo, \"a\", \"$1\", \"b\", \"(.*)\")",
     "label_replace(foo, \"a\", \"$1\", \"b\", \"(.*)\")"},
    {"label_join(foo, \"a\", \",\", \"b\", \"c\", \"d\")",
     "label_join(foo, \"a\", \",\", \"b\", \"c\", \"d\")"},
    {"round(foo, 5)", "round(foo, 5)"},
    {"year()", "year()"},
    {"histogram_fraction(0, 1, foo)", "histogram_fraction(0, 1, foo)"},
    {"rate(foo[5m:])", "rate(foo[5m:])"},
    {"absent(nonexistent{job=\"a\"})", "absent(nonexistent{job=\"a\"})"},
    {"foo # comment", "foo"},
};

static void test_print_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        const char *got = print(parse_ok(ok_cases[i].in));
        if (strcmp(got, ok_cases[i].want) != 0)
            fail_msg("%s:\n got  %s\n want %s", ok_cases[i].in, got, ok_cases[i].want);
        /* The canonical text is a fixed point. */
        const char *again = print(parse_ok(got));
        if (strcmp(again, got) != 0)
            fail_msg("%s: reprinted as %s", got, again);
    }
}

/* Prometheus prints "+Inf ^ 2", which reads back as +(Inf ^ 2); the canonical text here keeps
 * the tree. */
static void test_inf_pow(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("Inf ^ 2");
    assert_int_equal(e->kind, QUERY_NODE_BINARY);
    assert_string_equal(print(e), "Inf ^ 2");
    assert_string_equal(print(parse_ok("+Inf ^ 2")), "+Inf ^ 2");
    assert_int_equal(parse_ok("+Inf ^ 2")->kind, QUERY_NODE_UNARY);
    assert_string_equal(print(parse_ok("x ^ Inf ^ 2")), "x ^ Inf ^ 2");
    assert_string_equal(print(parse_ok("Inf + 2")), "+Inf + 2");
}

/* ---- Errors --------------------------------------------------------------------------------- */

static const struct {
    const char *in, *want;
} bad_cases[] = {
    {"e @ start()[5m] + 1",
     "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"e @ end()[1d12h]set", "1:17: parse error: unexpected identifier \"set\""},
    {"sum(", "1:5: parse error: unclosed left parenthesis"},
    {"1 +", "1:4: parse error: unexpected end of input"},
    {"foo{", "1:5: parse error: unexpected end of input inside braces"},
    {"foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces"},
    {"foo[5m", "1:7: parse error: unclosed left bracket"},
    {"foo[5]", "1:5: parse error: missing unit character in duration"},
    {")", "1:2: parse error: unexpected right parenthesis ')'"},
    {"foo}", "1:4: parse error: unexpected character: '}'"},
    {"1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"\"a\" + 1",
     "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=~\".*\"}",
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got "
                  "instant vector"},
    {"rate(foo[5m], 1)", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"},
    {"time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"},
    {"round()", "1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"},
    {"round(foo, 5, 6)",
     "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
    {"year(foo, bar)",
     "1:1: parse error: expected at most 1 argument(s) in call to \"year\", got 2"},
    {"label_join(a, \"b\")",
     "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2"},
    {"foo and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"1 and foo", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"foo + on(a) 1", "1:1: parse error: vector matching only allowed between instant vectors"},
    {"foo and on(a) group_left bar", "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"foo[5m] + 1",
     "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"foo[5m][5m]", "1:8: parse error: ranges only allowed for vector selectors"},
    {"1[5m]", "1:2: parse error: ranges only allowed for vector selectors"},
    {"(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"},
    {"\"a\"[5m:]",
     "1:1: parse error: subquery is only allowed on instant vector, got string instead"},
    {"foo[5m:][5m:]",
     "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"foo offset", "1:11: parse error: unexpected end of input in offset, expected duration"},
    {"foo @", "1:6: parse error: unexpected end of input in @, expected timestamp"},
    {"foo @ start", "1:12: parse error: unexpected end of input in @, expected timestamp"},
    {"foo @ 1e30", "1:1: parse error: timestamp out of bounds for @ modifier: "
                   "1000000000000000019884624838656.000000"},
    {"nonexistent(foo)", "1:1: parse error: unknown function with name \"nonexistent\""},
    {"foo !~ bar", "1:5: parse error: unexpected character after '!': '~'"},
    {"foo{a!}", "1:6: parse error: unexpected character after '!' inside braces: '}'"},
    {"foo{a=b}",
     "1:7: parse error: unexpected identifier \"b\" in label matching, expected string"},
    {"foo{a}",
     "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"},
    {"foo{,}",
     "1:5: parse error: unexpected \",\" in label matching, expected identifier or \"}\""},
    {"foo{a=\"b\" c=\"d\"}",
     "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
    {"topk(foo)", "1:1: parse error: wrong number of arguments for aggregate expression provided, "
                  "expected 2, got 1"},
    {"sum()", "1:1: parse error: no arguments for aggregate expression provided"},
    {"sum(a, b)", "1:1: parse error: wrong number of arguments for aggregate expression provided, "
                  "expected 1, got 2"},
    {"count_values(1, foo)",
     "1:14: parse error: expected type string in aggregation parameter, got scalar"},
    {"quantile(\"a\", foo)",
     "1:10: parse error: expected type scalar in aggregation parameter, got string"},
    {"sum(1)",
     "1:5: parse error: expected type instant vector in aggregation expression, got scalar"},
    {"sum(foo) by", "1:12: parse error: unexpected end of input in grouping opts, expected \"(\""},
    {"sum by (foo", "1:12: parse error: unclosed left parenthesis"},
    {"sum by (a) foo", "1:12: parse error: unexpected identifier \"foo\" in aggregation"},
    {"sum by (1) (foo)",
     "1:9: parse error: unexpected number \"1\" in grouping opts, expected label"},
    {"sum by (a b) (x)",
     "1:11: parse error: unexpected identifier \"b\" in grouping opts, expected \",\" or \")\""},
    {"sum by (a:b) (x)",
     "1:9: parse error: unexpected metric identifier \"a:b\" in grouping opts, expected label"},
    {"sum(foo) by (a) by (b)", "1:17: parse error: unexpected <by>"},
    {"sum(foo bar)", "1:9: parse error: unexpected identifier \"bar\" in aggregation"},
    {"foo bool == bar", "1:5: parse error: unexpected <bool>"},
    {"1 == bool \"a\"",
     "1:11: parse error: binary expression must contain only scalar and instant vector types"},
    {"-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or "
               "instant vector, got \"string\""},
    {"-foo[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or "
                 "instant vector, got \"range vector\""},
    {"foo offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"},
    {"foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"foo offset 5m [5m]", "1:15: parse error: no offset modifiers allowed before range"},
    {"foo @ 5 [5m]", "1:9: parse error: no @ modifiers allowed before range"},
    {"(foo) @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or "
                  "range vector selector or a subquery"},
    {"sum(foo) @ 1", "1:1: parse error: @ modifier must be preceded by an instant vector selector "
                     "or range vector selector or a subquery"},
    {"1 offset 1m", "1:1: parse error: offset modifier must be preceded by an instant vector "
                    "selector or range vector selector or a subquery"},
    {"foo + on (a) group_left (a) bar",
     "1:5: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
    {"foo and bool bar",
     "1:5: parse error: bool modifier can only be used on comparison operators"},
    {"1 + bool 2", "1:3: parse error: bool modifier can only be used on comparison operators"},
    {"a + on(b) bool c", "1:11: parse error: unexpected <bool>"},
    {"'abc", "1:1: parse error: unterminated quoted string"},
    {"\"a\\qb\"", "1:1: parse error: unknown escape sequence U+0071 'q'"},
    {"`abc", "1:1: parse error: unterminated raw string"},
    {"1 +* 2", "1:4: parse error: unexpected <op:*>"},
    {"foo{__name__=\"bar\"}",
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""},
    {"1 2", "1:3: parse error: unexpected number \"2\""},
    {"foo bar", "1:5: parse error: unexpected identifier \"bar\""},
    {"@ 1", "1:1: parse error: unexpected \"<Item 57385>\" <op:@>"},
    {"0x",
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x\": invalid syntax"},
    {"1e",
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax"},
    {"foo[1m1h]", "1:5: parse error: not a valid duration string: \"1m1h\""},
    {"foo[0m]", "1:5: parse error: duration must be greater than 0"},
    {"foo offset 0s", "1:12: parse error: duration must be greater than 0"},
    {"foo[5m:0s]", "1:8: parse error: duration must be greater than 0"},
    {"foo[5m 1m]",
     "1:8: parse error: unexpected duration \"1m\" in subquery or range, expected \":\" or \"]\""},
    {"foo[5m:5]",
     "1:8: parse error: unexpected number \"5\" in subquery selector, expected duration or \"]\""},
    {"rate(foo[5m],)", "1:13: parse error: trailing commas not allowed in function call args"},
    {"rate(,)", "1:6: parse error: unexpected \",\""},
    {"vectortime())", "1:1: parse error: unknown function with name \"vectortime\""},
    {"on", "1:1: parse error: unexpected <on>"},
    {"bool", "1:1: parse error: unexpected <bool>"},
    {"atan2", "1:1: parse error: unexpected <op:atan2>"},
};

static void test_error_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        query_expr *e = NULL;
        tsdb_err err = {0};
        int rc = query_parse(&arena, bad_cases[i].in, strlen(bad_cases[i].in), &e, &err);
        if (rc != TSDB_EPARSE)
            fail_msg("%s: parsed (rc %d)", bad_cases[i].in, rc);
        if (strcmp(err.msg, bad_cases[i].want) != 0)
            fail_msg("%s:\n got  %s\n want %s", bad_cases[i].in, err.msg, bad_cases[i].want);
        assert_int_equal(err.code, TSDB_EPARSE);
        /* err.pos is the byte offset the "1:<col>" prefix names. */
        assert_int_equal(atoi(strchr(err.msg, ':') + 1), err.pos + 1);
        assert_null(e);
    }
}

/* Messages whose text comes from elsewhere (the regex engine) or that Prometheus spells the same
 * way: only their position and prefix are pinned. */
static void test_error_positions(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int pos;
        const char *substr;
    } cases[] = {
        {"foo{a=~\"(\"}", 4, "error parsing regexp"},
        {"foo{b=\"x\", a!~\"[\"}", 11, "error parsing regexp"},
        {"", 0, "no expression found in input"},
        {"  # only a comment", 0, "no expression found in input"},
        {"foo +\n  bar baz", 12, "2:7: parse error: unexpected identifier \"baz\""},
        {"sum(\nrate(x[5m])", 16, "2:12: parse error: unclosed left parenthesis"},
        {"sum(\nrate(x[5m]) by (a)", 17, "2:13: parse error: unexpected <by> in aggregation"},
        {"x[293y]", 2, "1:3: parse error: duration out of range"},
        {"1e400", 0, "value out of range"},
        {"foo[300y]", 4, "duration out of range"},
        {"foo[99999999999999999999s]", 4, "duration out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        query_expr *e;
        tsdb_err err = {0};
        assert_int_equal(query_parse(&arena, cases[i].in, strlen(cases[i].in), &e, &err),
                         TSDB_EPARSE);
        if (err.pos != cases[i].pos || !strstr(err.msg, cases[i].substr))
            fail_msg("%s: got %d %s", cases[i].in, err.pos, err.msg);
    }
    /* A NULL err is allowed. */
    query_expr *e;
    assert_int_equal(query_parse(&arena, "sum(", 4, &e, NULL), TSDB_EPARSE);
}

static void test_depth_limit(void **state)
{
    (void)state;
    size_t n = QUERY_MAX_DEPTH + 10;
    char *deep = xmalloc(2 * n + 2);
    memset(deep, '(', n);
    deep[n] = '1';
    memset(deep + n + 1, ')', n);
    query_expr *e;
    tsdb_err err = {0};
    assert_int_equal(query_parse(&arena, deep, 2 * n + 1, &e, &err), TSDB_EPARSE);
    assert_non_null(strstr(err.msg, "nesting too deep"));
    /* A long left-associative chain is deep too, though the parser itself loops over it. */
    char *chain = xmalloc(4 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(chain + o, i ? "+x" : "x");
    assert_int_equal(query_parse(&arena, chain, o, &e, &err), TSDB_EPARSE);
    assert_non_null(strstr(err.msg, "nesting too deep"));
    /* Just under the limit works. */
    o = 0;
    for (size_t i = 0; i < QUERY_MAX_DEPTH / 2; i++)
        o += (size_t)sprintf(chain + o, i ? "+x" : "x");
    assert_int_equal(query_parse(&arena, chain, o, &e, &err), 0);
    free(deep);
    free(chain);
}

/* ---- Tree shape -------------------------------------------------------------------------------
 */

static void test_precedence(void **state)
{
    (void)state;
    /* 1 + 2 * 3: + at the root, * on the right. */
    const query_expr *e = parse_ok("1 + 2 * 3");
    assert_int_equal(e->kind, QUERY_NODE_BINARY);
    assert_int_equal(e->u.bin.op, QUERY_OP_ADD);
    assert_int_equal(e->u.bin.rhs->u.bin.op, QUERY_OP_MUL);
    assert_int_equal(e->type, QUERY_SCALAR);
    /* a - b - c is (a - b) - c. */
    e = parse_ok("a - b - c");
    assert_int_equal(e->u.bin.lhs->kind, QUERY_NODE_BINARY);
    assert_int_equal(e->u.bin.rhs->kind, QUERY_NODE_VECTOR_SEL);
    /* 2 ^ 3 ^ 2 is 2 ^ (3 ^ 2). */
    e = parse_ok("2 ^ 3 ^ 2");
    assert_int_equal(e->u.bin.lhs->kind, QUERY_NODE_NUMBER);
    assert_int_equal(e->u.bin.rhs->kind, QUERY_NODE_BINARY);
    /* or is lowest, then and/unless, then comparisons, + -, * / % atan2, ^. */
    e = parse_ok("a or b and c");
    assert_int_equal(e->u.bin.op, QUERY_OP_OR);
    e = parse_ok("a and b == c");
    assert_int_equal(e->u.bin.op, QUERY_OP_AND);
    e = parse_ok("a unless b > c + d");
    assert_int_equal(e->u.bin.op, QUERY_OP_UNLESS);
    assert_int_equal(e->u.bin.rhs->u.bin.op, QUERY_OP_GTR);
    assert_int_equal(e->u.bin.rhs->u.bin.rhs->u.bin.op, QUERY_OP_ADD);
    e = parse_ok("a + b atan2 c");
    assert_int_equal(e->u.bin.op, QUERY_OP_ADD);
    assert_int_equal(e->u.bin.rhs->u.bin.op, QUERY_OP_ATAN2);
    e = parse_ok("a atan2 b ^ c");
    assert_int_equal(e->u.bin.op, QUERY_OP_ATAN2);
    /* Unary minus binds like *: -a * b is (-a) * b, -a ^ b is -(a ^ b), -1 ^ 2 too. */
    e = parse_ok("-a * b");
    assert_int_equal(e->kind, QUERY_NODE_BINARY);
    assert_int_equal(e->u.bin.lhs->kind, QUERY_NODE_UNARY);
    e = parse_ok("-a ^ b");
    assert_int_equal(e->kind, QUERY_NODE_UNARY);
    assert_int_equal(e->u.un.op, QUERY_OP_SUB);
    e = parse_ok("-1 ^ 2");
    assert_int_equal(e->kind, QUERY_NODE_UNARY);
    assert_int_equal(e->u.un.expr->u.bin.op, QUERY_OP_POW);
    /* A sign on a number literal is folded into it. */
    e = parse_ok("-1");
    assert_int_equal(e->kind, QUERY_NODE_NUMBER);
    assert_true(e->u.num == -1);
    assert_int_equal(e->pos, 0);
    e = parse_ok("- - 2");
    assert_int_equal(e->kind, QUERY_NODE_NUMBER);
    assert_true(e->u.num == 2);
    e = parse_ok("1 - -1");
    assert_true(e->u.bin.rhs->u.num == -1);
    /* Postfix modifiers bind tightest: offset belongs to b, and -x[5m] is -(x[5m]). */
    e = parse_ok("a + b offset 5m");
    assert_int_equal(e->u.bin.rhs->u.vs.tm.offset_ms, 300000);
    assert_int_equal(e->u.bin.lhs->u.vs.tm.offset_ms, 0);
    e = parse_ok("-x @ 5");
    assert_int_equal(e->kind, QUERY_NODE_UNARY);
    assert_int_equal(e->u.un.expr->u.vs.tm.at_ms, 5000);
}

static void test_selectors(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("http_requests{job=\"api\",code=~\"5..\",x!=\"\",y!~'z'}");
    assert_int_equal(e->kind, QUERY_NODE_VECTOR_SEL);
    assert_int_equal(e->type, QUERY_VECTOR);
    const query_vector_sel *vs = &e->u.vs;
    assert_int_equal(vs->name.len, 13);
    assert_memory_equal(vs->name.p, "http_requests", 13);
    assert_int_equal(vs->n_src, 4);
    assert_int_equal(vs->n_matchers, 5);
    assert_int_equal(vs->src[1].op, TSDB_MATCH_RE);
    assert_int_equal(vs->src[3].op, TSDB_MATCH_NRE);
    assert_string_equal(vs->src[3].value.p, "z");
    /* The first compiled matcher is the metric name. */
    assert_int_equal(tsdb_matcher_op(vs->matchers[0]), TSDB_MATCH_EQ);
    assert_true(tsdb_str_eq(tsdb_matcher_name(vs->matchers[0]), TSDB_STR("__name__")));
    assert_true(tsdb_str_eq(tsdb_matcher_value(vs->matchers[0]), TSDB_STR("http_requests")));
    assert_true(tsdb_matcher_matches(vs->matchers[2], TSDB_STR("503")));
    assert_false(tsdb_matcher_matches(vs->matchers[2], TSDB_STR("403")));
    assert_int_equal(e->pos, 0);
    assert_int_equal(e->end,
                     (int)strlen("http_requests{job=\"api\",code=~\"5..\",x!=\"\",y!~'z'}"));

    /* Escapes are decoded in values. */
    e = parse_ok("x{a=\"q\\\"\\n\\x41\\u00e9\\101\",b=`r\\n`}");
    assert_string_equal(e->u.vs.src[0].value.p, "q\"\nA\303\251A");
    assert_string_equal(e->u.vs.src[1].value.p, "r\\n");

    /* No name: only the written matchers. */
    e = parse_ok("{__name__=~\"up|down\"}");
    assert_int_equal(e->u.vs.name.len, 0);
    assert_int_equal(e->u.vs.n_matchers, 1);

    /* Matrix: the inner vector selector carries offset and @. */
    e = parse_ok("x[1h30m] @ 100.5 offset -2m");
    assert_int_equal(e->kind, QUERY_NODE_MATRIX_SEL);
    assert_int_equal(e->type, QUERY_MATRIX);
    assert_int_equal(e->u.ms.range_ms, 5400000);
    assert_int_equal(e->u.ms.vs->kind, QUERY_NODE_VECTOR_SEL);
    assert_int_equal(e->u.ms.vs->u.vs.tm.offset_ms, -120000);
    assert_int_equal(e->u.ms.vs->u.vs.tm.at, QUERY_AT_TS);
    assert_int_equal(e->u.ms.vs->u.vs.tm.at_ms, 100500);
    assert_int_equal(e->end, (int)strlen("x[1h30m] @ 100.5 offset -2m"));

    e = parse_ok("x @ end()");
    assert_int_equal(e->u.vs.tm.at, QUERY_AT_END);
    e = parse_ok("x @ -1.5");
    assert_int_equal(e->u.vs.tm.at_ms, -1500);
}

static void test_subquery(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("rate(x[5m])[1h:30s] @ start() offset 1d");
    assert_int_equal(e->kind, QUERY_NODE_SUBQUERY);
    assert_int_equal(e->type, QUERY_MATRIX);
    assert_int_equal(e->u.sq.range_ms, 3600000);
    assert_int_equal(e->u.sq.step_ms, 30000);
    assert_int_equal(e->u.sq.tm.at, QUERY_AT_START);
    assert_int_equal(e->u.sq.tm.offset_ms, 86400000);
    assert_int_equal(e->u.sq.expr->kind, QUERY_NODE_CALL);
    e = parse_ok("max_over_time((x + 1)[5m:])");
    const query_expr *sq = e->u.call.args[0];
    assert_int_equal(sq->kind, QUERY_NODE_SUBQUERY);
    assert_int_equal(sq->u.sq.step_ms, 0);
    assert_int_equal(sq->u.sq.expr->kind, QUERY_NODE_PAREN);
}

static void test_binary_matching(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("a * on (x, y) group_left (z) b");
    const query_matching *m = &e->u.bin.m;
    assert_true(m->has_matching);
    assert_int_equal(m->card, QUERY_CARD_MANY_TO_ONE);
    assert_true(m->on);
    assert_int_equal(m->n_labels, 2);
    assert_true(tsdb_str_eq(m->labels[1], TSDB_STR("y")));
    assert_int_equal(m->n_include, 1);
    assert_true(tsdb_str_eq(m->include[0], TSDB_STR("z")));
    assert_int_equal(e->u.bin.op_pos, 2);

    e = parse_ok("a / ignoring (x) group_right b");
    assert_int_equal(e->u.bin.m.card, QUERY_CARD_ONE_TO_MANY);
    assert_false(e->u.bin.m.on);
    assert_int_equal(e->u.bin.m.n_include, 0);

    /* Vector-vector without modifiers: one-to-one; set operators: many-to-many. */
    e = parse_ok("a - b");
    assert_true(e->u.bin.m.has_matching);
    assert_int_equal(e->u.bin.m.card, QUERY_CARD_ONE_TO_ONE);
    e = parse_ok("a and on (x) b");
    assert_int_equal(e->u.bin.m.card, QUERY_CARD_MANY_TO_MANY);
    e = parse_ok("a or b");
    assert_int_equal(e->u.bin.m.card, QUERY_CARD_MANY_TO_MANY);

    /* A scalar side drops the matching. */
    e = parse_ok("a + on () 1");
    assert_false(e->u.bin.m.has_matching);
    assert_int_equal(e->type, QUERY_VECTOR);

    e = parse_ok("a >= bool b");
    assert_true(e->u.bin.return_bool);
    assert_int_equal(e->u.bin.op, QUERY_OP_GTE);
    e = parse_ok("1 < bool 2");
    assert_int_equal(e->type, QUERY_SCALAR);
}

static void test_aggregations(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("topk by (a, b) (5, x)");
    assert_int_equal(e->kind, QUERY_NODE_AGG);
    assert_int_equal(e->u.agg.op, QUERY_AGG_TOPK);
    assert_int_equal(e->u.agg.param->kind, QUERY_NODE_NUMBER);
    assert_int_equal(e->u.agg.n_grouping, 2);
    assert_false(e->u.agg.without);
    assert_int_equal(e->u.agg.expr->kind, QUERY_NODE_VECTOR_SEL);
    e = parse_ok("count_values without (le) (\"v\", x)");
    assert_int_equal(e->u.agg.op, QUERY_AGG_COUNT_VALUES);
    assert_true(e->u.agg.without);
    assert_string_equal(e->u.agg.param->u.str.p, "v");
    e = parse_ok("sum(x) without (a)");
    assert_true(e->u.agg.without);
    assert_null(e->u.agg.param);
    /* Aggregator names are metric names when no call follows. */
    e = parse_ok("sum + count");
    assert_int_equal(e->kind, QUERY_NODE_BINARY);
    assert_true(tsdb_str_eq(e->u.bin.rhs->u.vs.name, TSDB_STR("count")));
    static const char *const names[] = {"sum",   "avg",   "min",    "max",
                                        "count", "group", "stddev", "stdvar"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "%s(x)", names[i]);
        e = parse_ok(q);
        assert_int_equal(e->u.agg.op, (enum query_agg_op)i);
        assert_string_equal(query__agg_str(e->u.agg.op), names[i]);
    }
}

static void test_calls(void **state)
{
    (void)state;
    const query_expr *e = parse_ok("label_join(x, \"d\", \",\", \"a\", \"b\", \"c\")");
    assert_int_equal(e->kind, QUERY_NODE_CALL);
    assert_int_equal(e->u.call.fn->id, QUERY_FN_LABEL_JOIN);
    assert_int_equal(e->u.call.n_args, 6);
    assert_int_equal(e->type, QUERY_VECTOR);
    e = parse_ok("scalar(x)");
    assert_int_equal(e->type, QUERY_SCALAR);
    e = parse_ok("time()");
    assert_int_equal(e->u.call.n_args, 0);
    assert_int_equal(e->end, 6);
    e = parse_ok("days_in_month()");
    assert_int_equal(e->u.call.fn->id, QUERY_FN_DAYS_IN_MONTH);
    e = parse_ok("(\"s\")");
    assert_int_equal(e->type, QUERY_STRING);
    assert_int_equal(query_expr_type(e), QUERY_STRING);
    assert_int_equal(query_expr_type(parse_ok("x[5m]")), QUERY_MATRIX);
}

/* ---- Durations and selectors -------------------------------------------------------------- */

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"0s", 0},
        {"250ms", 250},
        {"5m", 300000},
        {"1h30m", 5400000},
        {"1y2w3d4h5m6s7ms", 31536000000 + 1209600000 + 259200000 + 14400000 + 300000 + 6000 + 7},
        {"90d", 7776000000},
        {"1w", 604800000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(query_parse_duration(ok[i].in, strlen(ok[i].in), &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {"",   "5", "1m1h", "5m5m",  "1.5h", "-5m",
                                      "5x", "m", "1hm",  "1ms1s", "293y", "9999999999999999999999s",
                                      " 5m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        if (query_parse_duration(bad[i], strlen(bad[i]), &ms) != TSDB_EINVAL)
            fail_msg("%s parsed as %lld", bad[i], (long long)ms);
        assert_int_equal(ms, 42); /* untouched on error */
    }
    char msg[100];
    int64_t ms;
    assert_int_equal(query__parse_duration_msg("1m1h", 4, &ms, msg, sizeof msg), -1);
    assert_string_equal(msg, "not a valid duration string: \"1m1h\"");
}

static void test_parse_selector(void **state)
{
    (void)state;
    const tsdb_matcher **ms;
    size_t n;
    tsdb_err err = {0};
    const char *s = "up{job=\"a\",instance=~\"x.*\"}";
    assert_int_equal(query_parse_selector(&arena, s, strlen(s), &ms, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(tsdb_str_eq(tsdb_matcher_value(ms[0]), TSDB_STR("up")));
    assert_int_equal(tsdb_matcher_op(ms[2]), TSDB_MATCH_RE);
    s = "{__name__=~\"x.*\"}";
    assert_int_equal(query_parse_selector(&arena, s, strlen(s), &ms, &n, &err), 0);
    assert_int_equal(n, 1);
    /* Selectors that match everything are accepted here; the API rejects them. */
    s = "{}";
    assert_int_equal(query_parse_selector(&arena, s, strlen(s), &ms, &n, &err), 0);
    assert_int_equal(n, 0);
    s = "sum";
    assert_int_equal(query_parse_selector(&arena, s, strlen(s), &ms, &n, &err), 0);
    assert_int_equal(n, 1);
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"up[5m]", "1:3: parse error: unexpected \"[\""},
        {"rate(x)", "1:5: parse error: unexpected \"(\""},
        {"up offset 5m", "1:4: parse error: unexpected <offset>"},
        {"up + 1", "1:4: parse error: unexpected <op:+>"},
        {"1", "1:1: parse error: unexpected number \"1\""},
        {"", "1:1: parse error: unexpected end of input"},
        {"up{a=\"b\"", "1:9: parse error: unexpected end of input inside braces"},
        {"{a=~\"(\"}", "1:2: parse error: error parsing regexp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(query_parse_selector(&arena, bad[i].in, strlen(bad[i].in), &ms, &n, &err),
                         TSDB_EPARSE);
        if (strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("%s: got %s want %s", bad[i].in, err.msg, bad[i].msg);
    }
}

/* ---- Upstream test files ----------------------------------------------------------------------
 */

/* Every expression of an eval line in the upstream .test files parses and prints to a fixed
 * point; eval_fail lines may be rejected by the parser or later by the engine. */
static void test_upstream_files(void **state)
{
    (void)state;
    const char *dir = getenv("PROMQL_UPSTREAM");
    if (!dir)
        dir = "../shared/promql-testdata";
    DIR *d = opendir(dir);
    if (!d) {
        print_message("skipping: %s not found\n", dir);
        skip();
        return;
    }
    struct dirent *de;
    int files = 0, exprs = 0;
    char path[1024], line[4096];
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 5, ".test") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        files++;
        int lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            if (strncmp(p, "eval", 4) != 0)
                continue;
            int must_fail = strncmp(p, "eval_fail", 9) == 0;
            /* eval[_x] instant at <time> <expr> */
            char *at = strstr(p, " at ");
            assert_non_null(at);
            char *q = at + 4;
            while (*q && *q != ' ')
                q++;
            while (*q == ' ')
                q++;
            size_t n = strlen(q);
            while (n && (q[n - 1] == '\n' || q[n - 1] == '\r' || q[n - 1] == ' '))
                n--;
            query_expr *e;
            tsdb_err err = {0};
            int rc = query_parse(&arena, q, n, &e, &err);
            exprs++;
            if (rc != 0) {
                if (!must_fail)
                    fail_msg("%s:%d: %.*s: %s", de->d_name, lineno, (int)n, q, err.msg);
                continue;
            }
            const char *p1 = print(e);
            const query_expr *e2 = parse_ok(p1);
            const char *p2 = print(e2);
            if (strcmp(p1, p2) != 0)
                fail_msg("%s:%d: %s reprinted as %s", de->d_name, lineno, p1, p2);
            assert_int_equal(e->type, e2->type);
        }
        fclose(f);
        tsdb_arena_reset(&arena);
    }
    closedir(d);
    print_message("%d expressions from %d files\n", exprs, files);
    assert_true(files > 0);
    assert_true(exprs > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_print_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inf_pow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subquery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_selector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
