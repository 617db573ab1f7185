/* Unit tests for tsdb/postings.c: intersect, merge, subtract and sort_unique against a naive
 * reference on random inputs (the seed is printed), including the galloping paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/base.h"
#include "tsdb/postings.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic from the printed seed. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* A strictly ascending list of n ids drawn from [0, span). */
static size_t rand_list(uint64_t *out, size_t n, uint64_t span)
{
    for (size_t i = 0; i < n; i++)
        out[i] = rnd() % span;
    return tsdb__postings_sort_unique(out, n);
}

static int contains(const uint64_t *v, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == x)
            return 1;
    }
    return 0;
}

static void check_ascending(const uint64_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        assert_true(v[i - 1] < v[i]);
}

static void test_known_cases(void **state)
{
    (void)state;
    uint64_t a[] = {1, 3, 5, 7, 9}, b[] = {2, 3, 4, 9, 10}, out[10];
    size_t n = tsdb__postings_intersect(a, 5, b, 5, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 9);
    n = tsdb__postings_merge(a, 5, b, 5, out);
    uint64_t want_merge[] = {1, 2, 3, 4, 5, 7, 9, 10};
    assert_int_equal(n, 8);
    assert_memory_equal(out, want_merge, sizeof want_merge);
    n = tsdb__postings_subtract(a, 5, b, 5, out);
    uint64_t want_sub[] = {1, 5, 7};
    assert_int_equal(n, 3);
    assert_memory_equal(out, want_sub, sizeof want_sub);
    assert_int_equal(tsdb__postings_intersect(a, 0, b, 5, out), 0);
    assert_int_equal(tsdb__postings_merge(a, 0, b, 0, out), 0);
    assert_int_equal(tsdb__postings_subtract(a, 5, b, 0, out), 5);
    assert_memory_equal(out, a, sizeof a);
    uint64_t u[] = {5, 1, 5, UINT64_MAX, 0, 1};
    n = tsdb__postings_sort_unique(u, 6);
    uint64_t want_u[] = {0, 1, 5, UINT64_MAX};
    assert_int_equal(n, 4);
    assert_memory_equal(u, want_u, sizeof want_u);
}

static void test_random_vs_reference(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) | 1;
    print_message("seed %llu\n", (unsigned long long)seed);
    rng_state = seed;
    enum { MAXN = 3000 };
    uint64_t *a = malloc(MAXN * sizeof *a), *b = malloc(MAXN * sizeof *b);
    uint64_t *out = malloc(2 * MAXN * sizeof *out), *ref = malloc(2 * MAXN * sizeof *ref);
    for (int iter = 0; iter < 400; iter++) {
        /* Mix of similar sizes and very different sizes (galloping), dense and sparse. */
        size_t na = (size_t)(rnd() % (iter % 3 == 0 ? 20 : MAXN));
        size_t nb = (size_t)(rnd() % MAXN);
        uint64_t span = iter % 2 ? 4000 : UINT64_MAX;
        na = rand_list(a, na, span);
        nb = rand_list(b, nb, span);
        if (iter % 4 == 1) { /* swap so the short side is b */
            uint64_t *t = a;
            a = b;
            b = t;
            size_t tn = na;
            na = nb;
            nb = tn;
        }

        size_t nr = 0;
        for (size_t i = 0; i < na; i++) {
            if (contains(b, nb, a[i]))
                ref[nr++] = a[i];
        }
        size_t n = tsdb__postings_intersect(a, na, b, nb, out);
        check_ascending(out, n);
        if (n != nr || (n && memcmp(out, ref, n * sizeof *out) != 0))
            fail_msg("intersect mismatch: seed %llu iter %d", (unsigned long long)seed, iter);

        nr = 0;
        for (size_t i = 0; i < na; i++) {
            if (!contains(b, nb, a[i]))
                ref[nr++] = a[i];
        }
        n = tsdb__postings_subtract(a, na, b, nb, out);
        check_ascending(out, n);
        if (n != nr || (n && memcmp(out, ref, n * sizeof *out) != 0))
            fail_msg("subtract mismatch: seed %llu iter %d", (unsigned long long)seed, iter);

        memcpy(ref, a, na * sizeof *a);
        memcpy(ref + na, b, nb * sizeof *b);
        nr = tsdb__postings_sort_unique(ref, na + nb);
        n = tsdb__postings_merge(a, na, b, nb, out);
        check_ascending(out, n);
        if (n != nr || (n && memcmp(out, ref, n * sizeof *out) != 0))
            fail_msg("merge mismatch: seed %llu iter %d", (unsigned long long)seed, iter);

        /* In place: intersect and subtract may write over their first input. */
        memcpy(ref, a, na * sizeof *a);
        n = tsdb__postings_subtract(ref, na, b, nb, ref);
        assert_int_equal(n, tsdb__postings_subtract(a, na, b, nb, out));
        assert_memory_equal(ref, out, n * sizeof *out);
        memcpy(ref, a, na * sizeof *a);
        n = tsdb__postings_intersect(ref, na, b, nb, ref);
        assert_int_equal(n, tsdb__postings_intersect(a, na, b, nb, out));
        assert_memory_equal(ref, out, n * sizeof *out);
    }
    free(a);
    free(b);
    free(out);
    free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_cases),
        cmocka_unit_test(test_random_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
