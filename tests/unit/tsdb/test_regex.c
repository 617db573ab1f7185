/* Unit tests for tsdb/regex.c: whole-input matching and Go regexp.Expand-style replacement
 * templates ($1, ${1}, $name, ${name}, $$, malformed $), as label_replace uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

/* Returns the expansion, or "<nomatch>". */
static const char *rep(tsdb_arena *a, const char *pat, const char *in, const char *tmpl)
{
    tsdb_regex *re;
    tsdb_err err;
    if (tsdb_regex_new(tsdb_str_c(pat), a, &re, &err) < 0)
        fail_msg("compile %s: %s", pat, err.msg);
    tsdb_str out;
    int rc = tsdb_regex_replace(re, tsdb_str_c(in), tsdb_str_c(tmpl), a, &out);
    assert_true(rc >= 0);
    return rc ? out.p : "<nomatch>";
}

static void test_expand(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    assert_string_equal(rep(&a, "(.*)-(.*)", "ab-cd", "$2.$1"), "cd.ab");
    assert_string_equal(rep(&a, "(.*)-(.*)", "ab-cd", "${1}x"), "abx");
    /* $1x names the group "1x", which does not exist: empty */
    assert_string_equal(rep(&a, "(.*)-(.*)", "ab-cd", "$1x"), "");
    assert_string_equal(rep(&a, "(?P<first>[a-z]+)-.*", "ab-cd", "<$first>"), "<ab>");
    assert_string_equal(rep(&a, "(?P<first>[a-z]+)-.*", "ab-cd", "${first}s"), "abs");
    assert_string_equal(rep(&a, "(.*)", "v", "$$1 costs $"), "$1 costs $");
    assert_string_equal(rep(&a, "(.*)", "v", "${1"), "${1");
    assert_string_equal(rep(&a, "(a)|(b)", "b", "[$1][$2][$3]"), "[][b][]");
    assert_string_equal(rep(&a, "(.*)", "", "x${1}y"), "xy");
    assert_string_equal(rep(&a, "(.*)", "q", "x$1y"), "x");
    tsdb_arena_fini(&a);
}

static void test_anchoring(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    /* The whole input must match: no partial matches, and $ does not accept a trailing \n. */
    assert_string_equal(rep(&a, "b", "abc", "x"), "<nomatch>");
    assert_string_equal(rep(&a, "a|ab", "ab", "x"), "x");
    assert_string_equal(rep(&a, "a.*", "ab\n", "x"), "<nomatch>");
    assert_string_equal(rep(&a, "(?i:AB)c", "abc", "ok"), "ok");
    assert_string_equal(rep(&a, "(.*?)(c*)", "abcc", "$1|$2"), "ab|cc");
    tsdb_regex *re;
    tsdb_err err;
    assert_int_equal(tsdb_regex_new(TSDB_STR("(unclosed"), &a, &re, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "error parsing regexp"));
    tsdb_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_anchoring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
