/* Unit tests for tsdb/arena.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tsdb/base.h"

static void test_alignment_and_contents(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 256);
    char *prev[200];
    for (int i = 0; i < 200; i++) {
        size_t sz = (size_t)(i % 37) + 1;
        char *p = tsdb_arena_alloc(&a, sz);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, i, sz);
        prev[i] = p;
    }
    /* Earlier allocations are untouched by later ones. */
    for (int i = 0; i < 200; i++) {
        size_t sz = (size_t)(i % 37) + 1;
        for (size_t k = 0; k < sz; k++)
            assert_int_equal((unsigned char)prev[i][k], (unsigned char)i);
    }
    assert_true(tsdb_arena_used(&a) >= 200 * 16);
    tsdb_arena_fini(&a);
    assert_int_equal(tsdb_arena_used(&a), 0);
}

static void test_large_and_realloc(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 1024);
    char *small = tsdb_arena_alloc(&a, 10);
    strcpy(small, "keep");
    char *big = tsdb_arena_alloc(&a, 1 << 20);
    memset(big, 7, 1 << 20);
    char *small2 = tsdb_arena_alloc(&a, 10);
    /* A large allocation gets its own chunk: the small ones keep sharing the first. */
    assert_true(small2 > small && small2 - small < 1024);
    assert_string_equal(small, "keep");
    char *g = tsdb_arena_realloc(&a, small, 5, 4000);
    assert_string_equal(g, "keep");
    char *s = tsdb_arena_sprintf(&a, "%d-%s", 42, "x");
    assert_string_equal(s, "42-x");
    tsdb_str c = tsdb_arena_str(&a, TSDB_STR("abc"));
    assert_int_equal(c.len, 3);
    assert_int_equal(c.p[3], '\0');
    int *z = tsdb_arena_calloc(&a, 100, sizeof(int));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    tsdb_arena_reset(&a);
    assert_int_equal(tsdb_arena_used(&a), 0);
    char *again = tsdb_arena_alloc(&a, 32);
    memset(again, 1, 32);
    tsdb_arena_fini(&a);
}

static void test_zeroed_arena_works(void **state)
{
    (void)state;
    tsdb_arena a;
    memset(&a, 0, sizeof a);
    void *p = tsdb_arena_alloc(&a, 100);
    assert_non_null(p);
    tsdb_arena_fini(&a);
    tsdb_arena_fini(&a); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_contents),
        cmocka_unit_test(test_large_and_realloc),
        cmocka_unit_test(test_zeroed_arena_works),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
