/* Unit tests for tsdb/err.c and tsdb/alloc.c: the error table and tsdb_str helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"

static void test_codes_are_negative_and_named(void **state)
{
    (void)state;
    assert_true(TSDB_ENOMEM > -200 && TSDB__ERR_LAST <= -100);
    assert_string_equal(tsdb_strerror(TSDB_OK), "success");
    assert_string_equal(tsdb_strerror(TSDB_EINVAL), "invalid argument");
    assert_string_equal(tsdb_strerror(TSDB_EFULL), "index map full");
    assert_string_equal(tsdb_errname(TSDB_ECORRUPT), "ECORRUPT");
    assert_string_equal(tsdb_strerror(-1), "unknown error");
    assert_string_equal(tsdb_strerror(TSDB__ERR_LAST), "unknown error");
    /* Every code between the bounds has a distinct message. */
    for (int c = TSDB__ERR_FIRST + 1; c < TSDB__ERR_LAST; c++)
        for (int d = c + 1; d < TSDB__ERR_LAST; d++)
            assert_string_not_equal(tsdb_strerror(c), tsdb_strerror(d));
}

static void test_errf_fills_and_returns(void **state)
{
    (void)state;
    tsdb_err e;
    assert_int_equal(tsdb_errf(&e, TSDB_EPARSE, 7, "unexpected %s", "')'"), TSDB_EPARSE);
    assert_int_equal(e.code, TSDB_EPARSE);
    assert_int_equal(e.pos, 7);
    assert_string_equal(e.msg, "unexpected ')'");
    assert_int_equal(tsdb_errf(NULL, TSDB_EIO, -1, "x"), TSDB_EIO);
    /* Long messages are cut, never overflow. */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tsdb_errf(&e, TSDB_EINVAL, -1, "%s", big);
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
}

static void test_str_helpers(void **state)
{
    (void)state;
    tsdb_str a = TSDB_STR("abc"), b = tsdb_str_c("abd"), c = tsdb_str_c("ab");
    assert_int_equal(a.len, 3);
    assert_true(tsdb_str_eq(a, tsdb_str_c("abc")));
    assert_false(tsdb_str_eq(a, b));
    assert_true(tsdb_str_cmp(a, b) < 0);
    assert_true(tsdb_str_cmp(b, a) > 0);
    assert_true(tsdb_str_cmp(c, a) < 0);
    assert_int_equal(tsdb_str_cmp(a, a), 0);
    /* Bytes compare unsigned, whether the first byte decides or a later one does. */
    assert_true(tsdb_str_cmp(tsdb_str_c("\xc3\xa9"), tsdb_str_c("z")) > 0);
    assert_true(tsdb_str_cmp(tsdb_str_c("z"), tsdb_str_c("\xc3\xa9")) < 0);
    assert_true(tsdb_str_cmp(tsdb_str_c("a\xc3"), tsdb_str_c("az")) > 0);
    assert_true(tsdb_str_cmp(tsdb_str_c(""), tsdb_str_c("a")) < 0);
    assert_true(tsdb_str_cmp(tsdb_str_c("b"), tsdb_str_c("")) > 0);
    assert_int_equal(tsdb_str_c(NULL).len, 0);
    char *d = xstrndup("hello", 3);
    assert_string_equal(d, "hel");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_negative_and_named),
        cmocka_unit_test(test_errf_fills_and_returns),
        cmocka_unit_test(test_str_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
