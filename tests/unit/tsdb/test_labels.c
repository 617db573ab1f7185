/* Unit tests for tsdb/labels.c: validation, sorting, hashing, order, formatting, encoding and
 * every matcher kind with Prometheus' semantics. */
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

#include "tsdb/base.h"
#include "tsdb/labels.h"
#include "tsdb/tsdb.h"

#define S(lit) TSDB_STR(lit)

static tsdb_labels mk(const tsdb_label *v, size_t n)
{
    return (tsdb_labels){v, n};
}

/* ---- Names and validation -------------------------------------------------------------------- */

static void test_name_validity(void **state)
{
    (void)state;
    assert_true(tsdb_label_name_valid(S("job")));
    assert_true(tsdb_label_name_valid(S("_a1")));
    assert_true(tsdb_label_name_valid(S("__name__")));
    assert_false(tsdb_label_name_valid(S("")));
    assert_false(tsdb_label_name_valid(S("1a")));
    assert_false(tsdb_label_name_valid(S("a:b")));
    assert_false(tsdb_label_name_valid(S("a-b")));
    assert_false(tsdb_label_name_valid(S("é")));
    assert_true(tsdb_metric_name_valid(S("up")));
    assert_true(tsdb_metric_name_valid(S(":job:rate5m")));
    assert_true(tsdb_metric_name_valid(S("a_b:c9")));
    assert_false(tsdb_metric_name_valid(S("9up")));
    assert_false(tsdb_metric_name_valid(S("")));
    assert_false(tsdb_metric_name_valid(S("up{")));
}

static void test_validate(void **state)
{
    (void)state;
    tsdb_err err = {0};
    tsdb_label ok[] = {{S("__name__"), S("up")}, {S("job"), S("api")}};
    assert_int_equal(tsdb_labels_validate(mk(ok, 2), 1, &err), 0);
    assert_int_equal(tsdb_labels_validate(mk(ok + 1, 1), 0, &err), 0);
    assert_int_equal(tsdb_labels_validate(mk(ok + 1, 1), 1, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "__name__"));

    tsdb_label unsorted[] = {{S("job"), S("api")}, {S("__name__"), S("up")}};
    assert_int_equal(tsdb_labels_validate(mk(unsorted, 2), 1, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "sorted"));
    tsdb_label dup[] = {{S("a"), S("1")}, {S("a"), S("2")}};
    assert_int_equal(tsdb_labels_validate(mk(dup, 2), 0, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "duplicate"));
    tsdb_label empty[] = {{S("a"), S("")}};
    assert_int_equal(tsdb_labels_validate(mk(empty, 1), 0, &err), TSDB_EINVAL);
    tsdb_label badname[] = {{S("a-b"), S("x")}};
    assert_int_equal(tsdb_labels_validate(mk(badname, 1), 0, &err), TSDB_EINVAL);
    tsdb_label badmetric[] = {{S("__name__"), S("a-b")}};
    assert_int_equal(tsdb_labels_validate(mk(badmetric, 1), 1, &err), TSDB_EINVAL);
    /* Values must be valid UTF-8: overlong, surrogate, truncated and stray bytes fail. */
    const char *bad_utf8[] = {"\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xff", "a\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        tsdb_label l[] = {{S("a"), tsdb_str_c(bad_utf8[i])}};
        assert_int_equal(tsdb_labels_validate(mk(l, 1), 0, NULL), TSDB_EINVAL);
    }
    tsdb_label good_utf8[] = {{S("a"), S("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80")}};
    assert_int_equal(tsdb_labels_validate(mk(good_utf8, 1), 0, NULL), 0);
    assert_int_equal(tsdb_labels_validate(mk(NULL, 0), 0, NULL), 0);
}

static void test_sort_and_get(void **state)
{
    (void)state;
    /* Larger than the insertion-sort cutoff as well as small. */
    for (size_t n = 1; n <= 40; n += 13) {
        tsdb_label v[40];
        char names[40][8];
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof names[i], "n%02zu", (i * 17) % n);
            v[i] = (tsdb_label){tsdb_str_c(names[i]), S("v")};
        }
        tsdb_labels_sort(v, n);
        for (size_t i = 1; i < n; i++)
            assert_true(tsdb_str_cmp(v[i - 1].name, v[i].name) < 0);
        assert_int_equal(tsdb_labels_validate(mk(v, n), 0, NULL), 0);
    }
    tsdb_label v[] = {{S("b"), S("2")}, {S("a"), S("1")}, {S("c"), S("3")}};
    tsdb_labels_sort(v, 3);
    tsdb_labels l = mk(v, 3);
    assert_true(tsdb_str_eq(tsdb_labels_get(l, S("a")), S("1")));
    assert_true(tsdb_str_eq(tsdb_labels_get(l, S("c")), S("3")));
    assert_int_equal(tsdb_labels_get(l, S("d")).len, 0);
    assert_int_equal(tsdb_labels_get(l, S("")).len, 0);
}

/* ---- Hash, compare, copy, format --------------------------------------------------------------
 */

static void test_hash(void **state)
{
    (void)state;
    uint8_t key[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    tsdb_hash_set_key(key);
    tsdb_label a[] = {{S("a"), S("bc")}};
    tsdb_label b[] = {{S("ab"), S("c")}};
    tsdb_label c[] = {{S("a"), S("b")}, {S("c"), S("")}};
    uint64_t ha = tsdb_labels_hash(mk(a, 1));
    assert_int_equal(ha, tsdb_labels_hash(mk(a, 1)));
    assert_int_not_equal(ha, tsdb_labels_hash(mk(b, 1)));
    assert_int_not_equal(ha, tsdb_labels_hash(mk(c, 2)));
    /* The documented canonical form: name 0xff value 0xff ... under the process key. */
    assert_int_equal(ha, tsdb_siphash(key,
                                      "a\xff"
                                      "bc\xff",
                                      5));
    assert_int_equal(tsdb_labels_hash(mk(NULL, 0)), tsdb_siphash(key, "", 0));
    /* A set longer than the stack buffer hashes the same way. */
    char big[3000];
    memset(big, 'x', sizeof big);
    tsdb_label l[] = {{S("a"), {big, sizeof big}}};
    char *enc = malloc(sizeof big + 3);
    memcpy(enc, "a\xff", 2);
    memcpy(enc + 2, big, sizeof big);
    enc[sizeof big + 2] = (char)0xff;
    assert_int_equal(tsdb_labels_hash(mk(l, 1)), tsdb_siphash(key, enc, sizeof big + 3));
    free(enc);
}

static void test_cmp_and_equal(void **state)
{
    (void)state;
    tsdb_label a[] = {{S("a"), S("1")}, {S("b"), S("2")}};
    tsdb_label a2[] = {{S("a"), S("1")}, {S("b"), S("2")}};
    tsdb_label b[] = {{S("a"), S("1")}, {S("b"), S("3")}};
    tsdb_label c[] = {{S("a"), S("1")}};
    tsdb_label d[] = {{S("a"), S("1")}, {S("c"), S("0")}};
    tsdb_label e[] = {{S("a"), S("10")}};
    assert_int_equal(tsdb_labels_cmp(mk(a, 2), mk(a2, 2)), 0);
    assert_true(tsdb_labels_equal(mk(a, 2), mk(a2, 2)));
    assert_false(tsdb_labels_equal(mk(a, 2), mk(b, 2)));
    assert_false(tsdb_labels_equal(mk(a, 2), mk(c, 1)));
    assert_int_equal(tsdb_labels_cmp(mk(a, 2), mk(b, 2)), -1);
    assert_int_equal(tsdb_labels_cmp(mk(b, 2), mk(a, 2)), 1);
    /* Prefix: shorter first. */
    assert_int_equal(tsdb_labels_cmp(mk(c, 1), mk(a, 2)), -1);
    /* Names compare before values: {a=1,b=..} < {a=1,c=..}. */
    assert_int_equal(tsdb_labels_cmp(mk(b, 2), mk(d, 2)), -1);
    /* Byte order of values: "1" < "10" and {a="10"} > {a="1", b="2"}. */
    assert_int_equal(tsdb_labels_cmp(mk(e, 1), mk(a, 2)), 1);
}

static void test_copy_format(void **state)
{
    (void)state;
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    char name[] = "__name__", v1[] = "up", n2[] = "path", v2[] = "a\"b\\c\nd";
    tsdb_label v[] = {{{name, 8}, {v1, 2}}, {{n2, 4}, {v2, 7}}};
    tsdb_labels c = tsdb_labels_copy(mk(v, 2), &ar);
    memset(v1, 'X', 2);
    assert_true(tsdb_str_eq(c.v[0].value, S("up")));
    assert_string_equal(tsdb_labels_format(c, &ar), "up{path=\"a\\\"b\\\\c\\nd\"}");
    assert_string_equal(tsdb_labels_format(mk(c.v, 1), &ar), "up");
    assert_string_equal(tsdb_labels_format(mk(c.v + 1, 1), &ar), "{path=\"a\\\"b\\\\c\\nd\"}");
    tsdb_label two[] = {{S("a"), S("1")}, {S("b"), S("2")}};
    assert_string_equal(tsdb_labels_format(mk(two, 2), &ar), "{a=\"1\", b=\"2\"}");
    assert_string_equal(tsdb_labels_format(mk(NULL, 0), &ar), "{}");
    tsdb_labels empty = tsdb_labels_copy(mk(NULL, 0), &ar);
    assert_int_equal(empty.n, 0);
    tsdb_arena_fini(&ar);
}

static void test_stale_nan(void **state)
{
    (void)state;
    double s = tsdb_stale_nan();
    assert_true(isnan(s));
    assert_true(tsdb_is_stale_nan(s));
    assert_false(tsdb_is_stale_nan(NAN));
    assert_false(tsdb_is_stale_nan(1.0));
    uint64_t bits;
    memcpy(&bits, &s, 8);
    assert_int_equal(bits, TSDB_STALE_NAN_BITS);
}

static void test_encoding(void **state)
{
    (void)state;
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    tsdb_label v[] = {{S("__name__"), S("up")}, {S("job"), S("")}, {S("z"), S("long value")}};
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb__labels_encode(&b, mk(v, 3));
    tsdb_labels out;
    assert_int_equal(tsdb__labels_decode(b.p, b.len, &ar, &out), 0);
    assert_true(tsdb_labels_equal(out, mk(v, 3)));
    tsdb_str got;
    assert_int_equal(tsdb__labels_encoded_get(b.p, b.len, S("z"), &got), 1);
    assert_true(tsdb_str_eq(got, S("long value")));
    assert_int_equal(tsdb__labels_encoded_get(b.p, b.len, S("y"), &got), 0);
    /* Every truncation and a trailing byte are corruption, never a crash. */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(tsdb__labels_decode(b.p, n, &ar, &out), TSDB_ECORRUPT);
    tsdb_buf_putc(&b, 0);
    assert_int_equal(tsdb__labels_decode(b.p, b.len, &ar, &out), TSDB_ECORRUPT);
    /* A huge count with few bytes is refused before allocating. */
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0};
    assert_int_equal(tsdb__labels_decode(huge, sizeof huge, &ar, &out), TSDB_ECORRUPT);
    tsdb_buf_fini(&b);
    tsdb_arena_fini(&ar);
}

/* ---- Matchers ---------------------------------------------------------------------------------
 */

static tsdb_arena g_arena;

static int setup_arena(void **state)
{
    (void)state;
    tsdb_arena_init(&g_arena, 0);
    return 0;
}

static int teardown_arena(void **state)
{
    (void)state;
    tsdb_arena_fini(&g_arena);
    return 0;
}

static tsdb_matcher *mm(enum tsdb_match_op op, const char *value)
{
    tsdb_matcher *m = NULL;
    tsdb_err err = {0};
    int rc = tsdb_matcher_new(op, S("l"), tsdb_str_c(value), &g_arena, &m, &err);
    if (rc != 0)
        fail_msg("matcher %s: %s", value, err.msg);
    return m;
}

static int re_match(const char *re, const char *v)
{
    return tsdb_matcher_matches(mm(TSDB_MATCH_RE, re), tsdb_str_c(v));
}

static int re_match_n(const char *re, const char *v, size_t n)
{
    return tsdb_matcher_matches(mm(TSDB_MATCH_RE, re), (tsdb_str){v, n});
}

static void test_matcher_eq_ne(void **state)
{
    (void)state;
    tsdb_matcher *m = mm(TSDB_MATCH_EQ, "foo");
    assert_int_equal(tsdb_matcher_op(m), TSDB_MATCH_EQ);
    assert_true(tsdb_str_eq(tsdb_matcher_name(m), S("l")));
    assert_true(tsdb_str_eq(tsdb_matcher_value(m), S("foo")));
    assert_true(tsdb_matcher_matches(m, S("foo")));
    assert_false(tsdb_matcher_matches(m, S("fo")));
    assert_false(tsdb_matcher_matches(m, S("")));
    assert_false(tsdb__matcher_matches_empty(m));
    /* Regex metacharacters are plain text for = and !=. */
    assert_true(tsdb_matcher_matches(mm(TSDB_MATCH_EQ, "a.*"), S("a.*")));
    assert_false(tsdb_matcher_matches(mm(TSDB_MATCH_EQ, "a.*"), S("abc")));
    m = mm(TSDB_MATCH_NE, "foo");
    assert_false(tsdb_matcher_matches(m, S("foo")));
    assert_true(tsdb_matcher_matches(m, S("bar")));
    assert_true(tsdb_matcher_matches(m, S(""))); /* absent label */
    assert_true(tsdb__matcher_matches_empty(m));
    m = mm(TSDB_MATCH_EQ, "");
    assert_true(tsdb_matcher_matches(m, S("")));
    assert_false(tsdb_matcher_matches(m, S("x")));
    m = mm(TSDB_MATCH_NE, "");
    assert_false(tsdb_matcher_matches(m, S("")));
    assert_true(tsdb_matcher_matches(m, S("x")));
    assert_false(tsdb__matcher_matches_empty(m));
}

static void test_matcher_regex_anchoring(void **state)
{
    (void)state;
    assert_false(re_match("a.", "abc"));
    assert_true(re_match("a.", "ab"));
    assert_false(re_match("b", "abc"));
    assert_true(re_match("abc|b", "abc"));
    /* Alternation must be retried until the whole value matches. */
    assert_true(re_match("a|ab", "ab"));
    assert_true(re_match("(a|ab)(c|bcd)", "abcd"));
    /* A pattern cannot break out of the implicit group. */
    tsdb_matcher *m = NULL;
    tsdb_err err = {0};
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_RE, S("l"), S("a)|(b"), &g_arena, &m, &err),
                     TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "error parsing regexp"));
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_RE, S("l"), S("(abc"), &g_arena, &m, &err),
                     TSDB_EINVAL);
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_NRE, S("l"), S("[z-a]"), &g_arena, &m, &err),
                     TSDB_EINVAL);
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_RE, S("l"), S("*"), &g_arena, &m, &err),
                     TSDB_EINVAL);
}

static void test_matcher_regex_semantics(void **state)
{
    (void)state;
    /* RE2 / Go: '.' does not match a newline unless (?s); '$' is the very end. */
    assert_false(re_match_n("a.b", "a\nb", 3));
    assert_true(re_match_n("(?s)a.b", "a\nb", 3));
    assert_false(re_match_n("a$", "a\n", 2));
    assert_false(re_match_n(".*", "x\ny", 3));
    assert_true(re_match(".*", "anything"));
    assert_true(re_match(".*", ""));
    assert_false(re_match(".+", ""));
    assert_true(re_match(".+", "x"));
    assert_false(re_match_n(".+", "\n", 1));
    assert_true(re_match("(?i)FOO", "foo"));
    assert_true(re_match("[0-9]+", "12345"));
    assert_false(re_match("[0-9]+", "123a"));
    assert_true(re_match("\\d{3}", "123"));
    assert_true(re_match("x\\.y", "x.y"));
    assert_false(re_match("x\\.y", "xzy"));
    assert_true(re_match("f(o|x)+", "foxo"));
    /* UTF-8 mode: '.' is one character, not one byte. */
    assert_true(re_match("h.llo", "h\xc3\xa9llo"));
    assert_true(re_match("\\p{Greek}+", "\xce\xb1\xce\xb2"));
    /* Values that are not valid UTF-8 still get an answer. */
    assert_false(re_match_n("abc", "ab\xff", 3));
    assert_true(re_match_n("ab.*", "ab\xff", 3));
    /* As in Go, each such byte reads as U+FFFD: one character, and anchoring still holds. */
    assert_true(re_match_n("a.b",
                           "a\xff"
                           "b",
                           3));
    assert_false(re_match_n("a..b",
                            "a\xff"
                            "b",
                            3));
    assert_false(re_match_n("f.*",
                            "a\xff"
                            "foo",
                            5));
    assert_true(re_match_n("fo.*", "fo\xff!", 4));
    assert_false(re_match_n("fo", "fo\xff", 3));
    /* Empty regex and empty-matching alternations. */
    assert_true(re_match("", ""));
    assert_false(re_match("", "x"));
    assert_true(re_match("foo|", ""));
    assert_true(re_match("foo|", "foo"));
    assert_false(re_match("foo|", "fo"));
}

/* The DFA matcher (used first) and the backtracking matcher (the fallback) agree. */
static void test_matcher_dfa_vs_backtracking(void **state)
{
    (void)state;
    const char *pats[] = {"(.*a){2}", "a|ab",     "(a|ab)(c|bcd)", "a*b?a*", "(ab|a)*",
                          "[ab]+!",   "(a+)+b",   ".*b.*",         "a{2,3}", "(?:a|b)*a(?:a|b)",
                          "a.?b",     "(a|b|)+!", "(?i)A+B*",      "ab*$",   "x*",
                          "a+?b",     "(?U)a+b",  "\\Aab\\z",      "\\bab"};
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    srand(seed);
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        tsdb_matcher *dfa = mm(TSDB_MATCH_RE, pats[i]);
        tsdb_matcher *bt = mm(TSDB_MATCH_RE, pats[i]);
        tsdb__matcher_no_dfa(bt);
        for (int k = 0; k < 300; k++) {
            char v[12];
            size_t n = (size_t)rand() % sizeof v;
            for (size_t j = 0; j < n; j++)
                v[j] = "ab!B"[rand() % 4];
            tsdb_str sv = {v, n};
            if (tsdb_matcher_matches(dfa, sv) != tsdb_matcher_matches(bt, sv))
                fail_msg("seed %u: %s on \"%.*s\": matchers disagree", seed, pats[i], (int)n, v);
        }
    }
}

/* PCRE2 extensions that RE2 (and so Prometheus) refuses are refused; RE2 syntax is accepted. */
static void test_matcher_re2_syntax(void **state)
{
    (void)state;
    const char *refused[] = {"(a)\\1",  "(?=a)a",  "(?!b)a", "(?<=a)b",  "(?<!a)b", "(?>a+)b",
                             "a++",     "a*+",     "a?+",    "(?R)",     "(a)(?1)", "(?(1)a|b)",
                             "(*SKIP)", "a\\Kb",   "\\g1",   "(?#c)a",   "(?<n>a)", "(?P=n)",
                             "\\8",     "(?|a|b)", "(?C1)a", "[a](?=b)b"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        tsdb_matcher *m = NULL;
        tsdb_err err = {0};
        if (tsdb_matcher_new(TSDB_MATCH_RE, S("l"), tsdb_str_c(refused[i]), &g_arena, &m, &err) !=
            TSDB_EINVAL)
            fail_msg("%s should be refused", refused[i]);
        assert_non_null(strstr(err.msg, "error parsing regexp"));
    }
    const char *accepted[] = {"(?i)a",     "(?i:a)b",      "(?P<name>a)", "(?-s:.)",
                              "(?is)a.b",  "[[:alpha:]]+", "\\p{Greek}",  "\\pL",
                              "\\x{263a}", "\\x41",        "\\012",       "[(?=]",
                              "\\Q(?=\\E", "a{2,}",        "a+?",         "\\d\\D\\s\\S\\w\\W",
                              "\\babc\\B", "a\\.b\\*",     "[\\]]",       "a{,3}"};
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        tsdb_matcher *m = NULL;
        tsdb_err err = {0};
        if (tsdb_matcher_new(TSDB_MATCH_RE, S("l"), tsdb_str_c(accepted[i]), &g_arena, &m, &err) !=
            0)
            fail_msg("%s should be accepted: %s", accepted[i], err.msg);
    }
    assert_true(re_match("\\Q(?=\\E", "(?="));
    assert_true(re_match("[(?=]+", "(?="));
    assert_true(re_match("\\012", "\n"));
}

static void test_matcher_negated_and_empty(void **state)
{
    (void)state;
    tsdb_matcher *m = mm(TSDB_MATCH_NRE, "foo.*");
    assert_false(tsdb_matcher_matches(m, S("foobar")));
    assert_true(tsdb_matcher_matches(m, S("bar")));
    assert_true(tsdb_matcher_matches(m, S("")));
    assert_true(tsdb__matcher_matches_empty(m));
    m = mm(TSDB_MATCH_NRE, ".*");
    assert_false(tsdb_matcher_matches(m, S("")));
    assert_false(tsdb_matcher_matches(m, S("x")));
    m = mm(TSDB_MATCH_RE, ".*");
    assert_true(tsdb__matcher_matches_empty(m));
    m = mm(TSDB_MATCH_RE, "x?");
    assert_true(tsdb__matcher_matches_empty(m));
    m = mm(TSDB_MATCH_RE, "x+");
    assert_false(tsdb__matcher_matches_empty(m));
    m = mm(TSDB_MATCH_NRE, "");
    assert_false(tsdb_matcher_matches(m, S("")));
    assert_true(tsdb_matcher_matches(m, S("a")));
}

static void test_matcher_fast_paths(void **state)
{
    (void)state;
    const tsdb_str *lits;
    size_t n;
    tsdb_matcher *m = mm(TSDB_MATCH_RE, "foo|ba\\.r|");
    assert_int_equal(tsdb__matcher_literals(m, &lits, &n), 1);
    assert_int_equal(n, 3);
    assert_true(tsdb_str_eq(lits[0], S("foo")));
    assert_true(tsdb_str_eq(lits[1], S("ba.r")));
    assert_int_equal(lits[2].len, 0);
    assert_int_equal(tsdb__matcher_literals(mm(TSDB_MATCH_RE, "fo+"), &lits, &n), 0);
    assert_int_equal(tsdb__matcher_literals(mm(TSDB_MATCH_RE, "a\\d"), &lits, &n), 0);
    assert_int_equal(tsdb__matcher_literals(mm(TSDB_MATCH_EQ, "a|b"), &lits, &n), 1);
    assert_int_equal(n, 1);

    /* Fast paths agree with the compiled regex on a spread of values. */
    const char *pats[] = {"foo|bar", "foo", "", "a\\.b|c", ".*", ".+", "x|", "a\\|b"};
    const char *vals[] = {"foo", "bar", "", "foobar", "a.b", "axb", "c", "x", "a|b", "line\nbreak"};
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        char wrapped[64];
        snprintf(wrapped, sizeof wrapped, "(?:%s)", pats[i]);
        tsdb_matcher *fast = mm(TSDB_MATCH_RE, pats[i]);
        tsdb_matcher *slow = mm(TSDB_MATCH_RE, wrapped);
        assert_int_equal(tsdb__matcher_literals(slow, &lits, &n), 0);
        for (size_t j = 0; j < sizeof vals / sizeof *vals; j++) {
            tsdb_str v = tsdb_str_c(vals[j]);
            if (tsdb_matcher_matches(fast, v) != tsdb_matcher_matches(slow, v))
                fail_msg("pattern %s on \"%s\": fast path disagrees", pats[i], vals[j]);
        }
    }
}

static void test_matcher_prefix(void **state)
{
    (void)state;
    struct {
        const char *re, *prefix;
    } cases[] = {
        {"foo.*", "foo"},     {"foo", "foo"},     {"fo*", "f"},       {"foo?bar", "fo"},
        {"foo|bar", ""},      {"(foo|bar)x", ""}, {"a\\.b.*", "a.b"}, {".*foo", ""},
        {"ab[|]c", "ab"},     {"ab(c|d)", "ab"},  {"x{2}", ""},       {"h\xc3\xa9*", "h"},
        {"api-\\d+", "api-"}, {"(?i)foo", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tsdb_str p = tsdb__matcher_prefix(mm(TSDB_MATCH_RE, cases[i].re));
        if (!tsdb_str_eq(p, tsdb_str_c(cases[i].prefix)))
            fail_msg("prefix of %s: got \"%.*s\", want \"%s\"", cases[i].re, (int)p.len, p.p,
                     cases[i].prefix);
    }
}

static void test_matcher_hostile(void **state)
{
    (void)state;
    char subject[4097];
    memset(subject, 'a', 4096);
    subject[4096] = '\0';
    subject[4095] = '!';
    const char *hostile[] = {"(a+)+$", "(a|aa)+b", "(a*)*b", "(?:a|a)*c", "(.*a){20}"};
    int64_t t0 = tsdb_mono_ns();
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        tsdb_matcher *m = mm(TSDB_MATCH_RE, hostile[i]);
        assert_false(tsdb_matcher_matches(m, tsdb_str_c(subject)));
    }
    /* The backtracking fallback is bounded by the match limits (these need ~2^40 steps). */
    char shorter[42];
    memset(shorter, 'a', 41);
    shorter[40] = '!';
    shorter[41] = '\0';
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        tsdb_matcher *m = mm(TSDB_MATCH_RE, hostile[i]);
        tsdb__matcher_no_dfa(m);
        assert_false(tsdb_matcher_matches(m, tsdb_str_c(shorter)));
    }
    int64_t ms = (tsdb_mono_ns() - t0) / 1000000;
    print_message("hostile patterns on 4 KiB: %lld ms\n", (long long)ms);
    assert_true(ms < 5000);

    /* Repeated matching does not grow the arena without bound. */
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    tsdb_matcher *r = NULL;
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_RE, S("l"), S("(a|b)*c(d|e)*"), &ar, &r, NULL), 0);
    size_t before = tsdb_arena_used(&ar);
    for (int i = 0; i < 2000; i++)
        assert_false(tsdb_matcher_matches(r, (tsdb_str){subject, 512}));
    assert_true(tsdb_arena_used(&ar) - before < 1024 * 1024);
    tsdb_arena_fini(&ar);
}

static void test_matchers_match(void **state)
{
    (void)state;
    tsdb_label v[] = {{S("__name__"), S("up")}, {S("job"), S("api")}};
    tsdb_labels l = mk(v, 2);
    tsdb_matcher *ms[3];
    tsdb_err err;
    assert_int_equal(
        tsdb_matcher_new(TSDB_MATCH_EQ, S("__name__"), S("up"), &g_arena, &ms[0], &err), 0);
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_RE, S("job"), S("a.*"), &g_arena, &ms[1], &err),
                     0);
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_EQ, S("zone"), S(""), &g_arena, &ms[2], &err), 0);
    const tsdb_matcher *const *cms = (const tsdb_matcher *const *)ms;
    assert_true(tsdb_matchers_match(cms, 3, l));
    assert_true(tsdb_matchers_match(cms, 0, l));
    assert_int_equal(tsdb_matcher_new(TSDB_MATCH_NE, S("job"), S("api"), &g_arena, &ms[2], &err),
                     0);
    assert_false(tsdb_matchers_match(cms, 3, l));
    assert_int_equal(
        tsdb_matcher_new((enum tsdb_match_op)9, S("a"), S("b"), &g_arena, &ms[0], &err),
        TSDB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_validity),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_sort_and_get),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_cmp_and_equal),
        cmocka_unit_test(test_copy_format),
        cmocka_unit_test(test_stale_nan),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_matcher_eq_ne),
        cmocka_unit_test(test_matcher_regex_anchoring),
        cmocka_unit_test(test_matcher_regex_semantics),
        cmocka_unit_test(test_matcher_dfa_vs_backtracking),
        cmocka_unit_test(test_matcher_re2_syntax),
        cmocka_unit_test(test_matcher_negated_and_empty),
        cmocka_unit_test(test_matcher_fast_paths),
        cmocka_unit_test(test_matcher_prefix),
        cmocka_unit_test(test_matcher_hostile),
        cmocka_unit_test(test_matchers_match),
    };
    return cmocka_run_group_tests(tests, setup_arena, teardown_arena);
}
