/* Unit tests for query/lex.c: token streams in each lexer context, keywords, numbers,
 * durations, strings, comments, token descriptions and every lexer error with its position.
 * Only the lexer is exercised here (no matcher compilation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "query/lex.h"

/* Lexes src fully; writes a compact rendering "TYPE:text TYPE:text ..." into out. Returns the
 * final token (EOF or ERROR). */
static const char *tname(enum query_tok t)
{
    switch (t) {
    case QT_EOF:
        return "EOF";
    case QT_ERROR:
        return "ERR";
    case QT_IDENT:
        return "ID";
    case QT_METRIC_IDENT:
        return "MID";
    case QT_NUMBER:
        return "NUM";
    case QT_DURATION:
        return "DUR";
    case QT_STRING:
        return "STR";
    case QT_COLON:
        return "COLON";
    default:
        break;
    }
    if (query__tok_is_op(t))
        return "OP";
    if (query__tok_is_agg(t))
        return "AGG";
    if (query__tok_is_keyword(t) || t == QT_START || t == QT_END)
        return "KW";
    return "P"; /* punctuation */
}

static query_token lex_all(const char *src, char *out, size_t cap, query_lexer *l)
{
    query__lex_init(l, src, (int)strlen(src));
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < 200; i++) {
        query_token t = query__lex_next(l);
        if (t.type == QT_EOF || t.type == QT_ERROR)
            return t;
        o += (size_t)snprintf(out + o, cap - o, "%s%s:%.*s", o ? " " : "", tname(t.type), t.len,
                              src + t.pos);
    }
    fail_msg("lexer did not end on %s", src);
    return (query_token){QT_ERROR, 0, 0};
}

static const struct {
    const char *in, *want;
} ok_cases[] = {
    {"sum by (job) (rate(x[5m]))",
     "AGG:sum KW:by P:( ID:job P:) P:( ID:rate P:( ID:x P:[ DUR:5m P:] P:) P:)"},
    {"SUM BY(a)(x)", "AGG:SUM KW:BY P:( ID:a P:) P:( ID:x P:)"},
    {"a and b OR c unless d atan2 e", "ID:a OP:and ID:b OP:OR ID:c OP:unless ID:d OP:atan2 ID:e"},
    {"a+b-c*d/e%f^g", "ID:a OP:+ ID:b OP:- ID:c OP:* ID:d OP:/ ID:e OP:% ID:f OP:^ ID:g"},
    {"a==b!=c>d<e>=f<=g", "ID:a OP:== ID:b OP:!= ID:c OP:> ID:d OP:< ID:e OP:>= ID:f OP:<= ID:g"},
    {"job:rate5m :x x:", "MID:job:rate5m MID::x MID:x:"},
    {"1 0.5 .5 5. 1e3 1E-3 0x1F 0X1f 010 Inf nan NaN",
     "NUM:1 NUM:0.5 NUM:.5 NUM:5. NUM:1e3 NUM:1E-3 NUM:0x1F NUM:0X1f NUM:010 NUM:Inf NUM:nan "
     "NUM:NaN"},
    {"infinity inf_x", "ID:infinity ID:inf_x"},
    {"x offset 1h30m", "ID:x KW:offset DUR:1h30m"},
    {"x offset 5m @ 100", "ID:x KW:offset DUR:5m OP:@ NUM:100"},
    {"x @ start() @ end()", "ID:x OP:@ KW:start P:( P:) OP:@ KW:end P:( P:)"},
    {"1ms 2s 3m 4h 5d 6w 7y 1y2w3d4h5m6s7ms",
     "DUR:1ms DUR:2s DUR:3m DUR:4h DUR:5d DUR:6w DUR:7y DUR:1y2w3d4h5m6s7ms"},
    /* Inside braces every word is a label name, keywords included. */
    {"x{on=\"a\",sum!='b',by=~`c`,offset!~\"d\",}",
     "ID:x P:{ ID:on P:= STR:\"a\" P:, ID:sum OP:!= STR:'b' P:, ID:by OP:=~ STR:`c` P:, "
     "ID:offset OP:!~ STR:\"d\" P:, P:}"},
    /* Inside brackets: a duration first, then the colon (any letter counts as one). */
    {"x[5m:1m]", "ID:x P:[ DUR:5m COLON:: DUR:1m P:]"},
    {"x[ 5m :]", "ID:x P:[ DUR:5m COLON:: P:]"},
    {"x[5m x]", "ID:x P:[ DUR:5m COLON:x P:]"},
    {"\"a\\\"b\" 'c\\'d' `e\\f`", "STR:\"a\\\"b\" STR:'c\\'d' STR:`e\\f`"},
    {"\"\\a\\b\\f\\n\\r\\t\\v\\\\\\x41\\101\\u00e9\\U0001F600\"",
     "STR:\"\\a\\b\\f\\n\\r\\t\\v\\\\\\x41\\101\\u00e9\\U0001F600\""},
    {"x # comment ( [ {\n+ y", "ID:x OP:+ ID:y"},
    {"x{a=\"b\" # c }\n}", "ID:x P:{ ID:a P:= STR:\"b\" P:}"},
    {"\t\r\n x \n", "ID:x"},
    {"bool group_left group_right ignoring on without",
     "KW:bool KW:group_left KW:group_right KW:ignoring KW:on KW:without"},
};

static void test_tokens(void **state)
{
    (void)state;
    char out[1024];
    query_lexer l;
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        query_token end = lex_all(ok_cases[i].in, out, sizeof out, &l);
        if (end.type != QT_EOF)
            fail_msg("%s: lexer error %s", ok_cases[i].in, l.err);
        if (strcmp(out, ok_cases[i].want) != 0)
            fail_msg("%s:\n got  %s\n want %s", ok_cases[i].in, out, ok_cases[i].want);
        assert_int_equal(end.pos, (int)strlen(ok_cases[i].in));
    }
}

static void test_positions(void **state)
{
    (void)state;
    query_lexer l;
    const char *src = "sum(x{a=\"b\"}[5m])";
    query__lex_init(&l, src, (int)strlen(src));
    int want_pos[] = {0, 3, 4, 5, 6, 7, 8, 11, 12, 13, 15, 16, 17};
    int want_len[] = {3, 1, 1, 1, 1, 1, 3, 1, 1, 2, 1, 1, 0};
    for (size_t i = 0; i < sizeof want_pos / sizeof want_pos[0]; i++) {
        query_token t = query__lex_next(&l);
        assert_int_equal(t.pos, want_pos[i]);
        assert_int_equal(t.len, want_len[i]);
    }
    /* After EOF the lexer keeps returning EOF. */
    assert_int_equal(query__lex_next(&l).type, QT_EOF);
    assert_int_equal(query__lex_next(&l).type, QT_EOF);
}

static const struct {
    const char *in;
    int pos;
    const char *msg;
} err_cases[] = {
    {"sum(", 4, "unclosed left parenthesis"},
    {"((x)", 4, "unclosed left parenthesis"},
    {")", 1, "unexpected right parenthesis ')'"},
    {"x + y)", 6, "unexpected right parenthesis ')'"},
    {"x[5m", 4, "unclosed left bracket"},
    {"x]", 1, "unexpected right bracket ']'"},
    {"x[5m:[", 5, "unexpected left bracket '['"},
    {"x[5m][", 6, "missing unit character in duration"},
    {"x}", 1, "unexpected character: '}'"},
    {"x ? y", 2, "unexpected character: '?'"},
    {"x . y", 2, "unexpected character: '.'"},
    {"x é", 2, "unexpected character: 'é'"},
    {"x{", 2, "unexpected end of input inside braces"},
    {"x{a=\"b\"", 7, "unexpected end of input inside braces"},
    {"x{{", 2, "unexpected left brace '{'"},
    {"x{a:b=\"c\"}", 3, "unexpected character inside braces: ':'"},
    {"x{a!}", 3, "unexpected character after '!' inside braces: '}'"},
    {"x !~ y", 2, "unexpected character after '!': '~'"},
    {"x =~ y", 2, "unexpected character after '=': '~'"},
    {"x[5]", 2, "missing unit character in duration"},
    {"x[]", 2, "missing unit character in duration"},
    {"x[5x]", 2, "bad duration syntax: \"5\""},
    {"x[5mm]", 2, "bad duration syntax: \"5mm\""},
    {"x[5m:1m:1m]", 7, "unexpected colon ':'"},
    {"x[5m offset 1m]", 6, "unexpected colon 'f'"},
    {"0xg", 0, "bad number or duration syntax: \"0x\""},
    {"1_000", 0, "bad number or duration syntax: \"1\""},
    {"x offset 5m5", 9, "bad number or duration syntax: \"5m5\""},
    {"'abc", 0, "unterminated quoted string"},
    {"\"a\nb\"", 0, "unterminated quoted string"},
    {"`abc", 0, "unterminated raw string"},
    {"\"a\\qb\"", 0, "unknown escape sequence U+0071 'q'"},
    {"\"\\'\"", 0, "unknown escape sequence U+0027 '''"},
    {"'\\\"'", 0, "unknown escape sequence U+0022 '\"'"},
    {"\"\\x4g\"", 0, "illegal character U+0067 'g' in escape sequence"},
    {"\"\\400\"", 0, "escape sequence is an invalid Unicode code point"},
    {"\"\\uD800\"", 0, "escape sequence is an invalid Unicode code point"},
    {"\"\\U00110000\"", 0, "escape sequence is an invalid Unicode code point"},
    {"\"\\", 0, "escape sequence not terminated"},
    {"\"\xff\"", 0, "invalid UTF-8 rune"},
    {"`\xc3`", 0, "invalid UTF-8 rune"},
};

static void test_errors(void **state)
{
    (void)state;
    char out[1024];
    query_lexer l;
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        query_token end = lex_all(err_cases[i].in, out, sizeof out, &l);
        if (end.type != QT_ERROR)
            fail_msg("%s: no lexer error (tokens %s)", err_cases[i].in, out);
        if (strcmp(l.err, err_cases[i].msg) != 0 || end.pos != err_cases[i].pos)
            fail_msg("%s:\n got  %d %s\n want %d %s", err_cases[i].in, end.pos, l.err,
                     err_cases[i].pos, err_cases[i].msg);
        /* Errors are sticky. */
        assert_int_equal(query__lex_next(&l).type, QT_ERROR);
    }
}

static void test_keywords(void **state)
{
    (void)state;
    assert_int_equal(query__keyword("sum", 3), QT_SUM);
    assert_int_equal(query__keyword("SuM", 3), QT_SUM);
    assert_int_equal(query__keyword("count_values", 12), QT_COUNT_VALUES);
    assert_int_equal(query__keyword("count", 5), QT_COUNT);
    assert_int_equal(query__keyword("counts", 6), QT_IDENT);
    assert_int_equal(query__keyword("group_left", 10), QT_GROUP_LEFT);
    assert_int_equal(query__keyword("INF", 3), QT_NUMBER);
    assert_int_equal(query__keyword("nAn", 3), QT_NUMBER);
    assert_int_equal(query__keyword("start", 5), QT_START);
    assert_int_equal(query__keyword("", 0), QT_IDENT);
    assert_true(query__tok_is_op(QT_LAND));
    assert_true(query__tok_is_op(QT_ATAN2));
    assert_false(query__tok_is_op(QT_BY));
    assert_true(query__tok_is_agg(QT_TOPK));
    assert_false(query__tok_is_agg(QT_OFFSET));
    assert_true(query__tok_is_keyword(QT_BOOL));
    assert_false(query__tok_is_keyword(QT_SUM));
}

static void test_desc(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"foo", "identifier \"foo\""},
        {"a:b", "metric identifier \"a:b\""},
        {"12", "number \"12\""},
        {"\"ab\"", "string \"\\\"ab\\\"\""},
        /* Go's %.10q cuts the text before quoting it, then "..." follows. */
        {"\"abcdefghijkl\"", "string \"\\\"abcdefghi\"..."},
        {"*", "<op:*>"},
        {"and", "<op:and>"},
        {"@", "\"<Item 57385>\" <op:@>"},
        {"sum", "<aggr:sum>"},
        {"by", "<by>"},
        {"bool", "<bool>"},
        {"start", "\"start\""},
        {"(", "\"(\""},
        {",", "\",\""},
        {"=", "\"=\""},
        {"", "end of input"},
    };
    query_lexer l;
    char d[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        query__lex_init(&l, cases[i].in, (int)strlen(cases[i].in));
        query_token t = query__lex_next(&l);
        query__tok_desc(&l, t, d, sizeof d);
        if (strcmp(d, cases[i].want) != 0)
            fail_msg("%s: got %s want %s", cases[i].in, d, cases[i].want);
    }
    query__lex_init(&l, "x[5m", 4);
    query__lex_next(&l);
    query__lex_next(&l);
    query__lex_next(&l);
    query_token t = query__lex_next(&l);
    assert_int_equal(t.type, QT_ERROR);
    query__tok_desc(&l, t, d, sizeof d);
    assert_string_equal(d, "unclosed left bracket");
}

/* Every byte string lexes to an end without reading out of bounds (checked under ASan). */
static void test_arbitrary_bytes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    char buf[64];
    query_lexer l;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof buf;
        static const char alpha[] = "ab1:{}[]()\"'`\\=!~<>@#,. \n5msxe-+*^%\xc3\xa9\xff";
        for (; n < len; n++) {
            seed = seed * 1103515245u + 12345u;
            buf[n] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        query__lex_init(&l, buf, (int)len);
        int steps = 0;
        for (;;) {
            query_token t = query__lex_next(&l);
            assert_true(t.pos >= 0 && t.pos + t.len <= (int)len);
            if (t.type == QT_EOF || t.type == QT_ERROR)
                break;
            assert_true(++steps <= (int)len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens), cmocka_unit_test(test_positions),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_desc),   cmocka_unit_test(test_arbitrary_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
