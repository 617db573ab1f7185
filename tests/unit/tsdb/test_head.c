/* Unit tests for tsdb/head.c: series lookup by label hash (including forced hash collisions)
 * and by id, ingest rules, chunk cutting (120 samples, block boundaries, the cut floor),
 * copy-out for readers, truncation and garbage collection, tombstones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/chunk.h"
#include "tsdb/head.h"
#include "tsdb/tsdb.h"

static tsdb_labels mk(tsdb_label *v, const char *name, const char *val)
{
    v[0] = (tsdb_label){TSDB_STR("__name__"), tsdb_str_c(name)};
    v[1] = (tsdb_label){TSDB_STR("k"), tsdb_str_c(val)};
    return (tsdb_labels){v, 2};
}

static size_t count_samples(const tsdb__chunk_ref *r, size_t n, int64_t *first, int64_t *last)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        tsdb_chunk_it it;
        tsdb_sample s;
        assert_int_equal(tsdb_chunk_it_init(&it, r[i].p, r[i].len), TSDB_OK);
        while (tsdb_chunk_it_next(&it, &s) > 0) {
            if (total == 0 && first)
                *first = s.t;
            if (last)
                *last = s.t;
            assert_true(s.t >= r[i].mint && s.t <= r[i].maxt);
            total++;
        }
    }
    return total;
}

static void test_lookup(void **state)
{
    (void)state;
    tsdb__head *h = tsdb__head_new(1000000);
    tsdb_label a[2], b[2], c[2];
    tsdb_labels la = mk(a, "m", "a"), lb = mk(b, "m", "b"), lc = mk(c, "m", "c");
    /* a and b share a hash on purpose: lookups must compare labels. */
    tsdb__hseries *sa = tsdb__head_create(h, 1, 77, la);
    tsdb__hseries *sb = tsdb__head_create(h, 2, 77, lb);
    assert_ptr_equal(tsdb__head_get(h, 77, la), sa);
    assert_ptr_equal(tsdb__head_get(h, 77, lb), sb);
    assert_null(tsdb__head_get(h, 77, lc));
    assert_null(tsdb__head_get(h, 78, la));
    assert_ptr_equal(tsdb__head_get_id(h, 2), sb);
    assert_null(tsdb__head_get_id(h, 3));
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    assert_true(tsdb_labels_equal(tsdb__hseries_labels(sb, &ar), lb));
    /* Many series: the maps grow and still find everything. */
    char names[3000][12];
    tsdb_label lv[3000][2];
    for (int i = 0; i < 3000; i++) {
        snprintf(names[i], sizeof(names[i]), "v%d", i);
        tsdb__head_create(h, 100 + (uint64_t)i, (uint64_t)i * 31, mk(lv[i], "n", names[i]));
    }
    for (int i = 0; i < 3000; i++) {
        tsdb__hseries *s = tsdb__head_get(h, (uint64_t)i * 31, (tsdb_labels){lv[i], 2});
        assert_non_null(s);
        assert_int_equal(s->id, 100 + (uint64_t)i);
    }
    tsdb__head_stats st;
    tsdb__head_stats_get(h, &st);
    assert_int_equal(st.n_series, 3002);
    /* GC removes series without data and the maps stay consistent. */
    assert_int_equal(tsdb__head_gc(h, 0), 3002);
    assert_null(tsdb__head_get_id(h, 150));
    assert_null(tsdb__head_get(h, 77, la));
    tsdb_arena_fini(&ar);
    tsdb__head_free(h);
}

static void test_rules_and_chunks(void **state)
{
    (void)state;
    int64_t B = 100000;
    tsdb__head *h = tsdb__head_new(B);
    tsdb_label a[2];
    tsdb__hseries *s = tsdb__head_create(h, 5, 1, mk(a, "m", "a"));
    /* 300 samples, one per 100 ms: chunks close at 120 samples... */
    for (int i = 0; i < 300; i++) {
        assert_int_equal(tsdb__head_check(h, s, i * 100, i, INT64_MIN), 1);
        tsdb__head_apply(h, s, i * 100, i);
    }
    assert_int_equal(tsdb__head_check(h, s, 29900, 299, INT64_MIN), 0);
    assert_int_equal(tsdb__head_check(h, s, 29900, 1, INT64_MIN), TSDB_EDUP);
    assert_int_equal(tsdb__head_check(h, s, 100, 1, INT64_MIN), TSDB_EOOO);
    assert_int_equal(tsdb__head_check(h, s, 40000, 1, 50000), TSDB_ETOO_OLD);
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    tsdb__chunk_ref *r;
    size_t n = tsdb__head_copy(h, 5, INT64_MIN, INT64_MAX, &ar, &r);
    assert_int_equal(n, 3);
    assert_int_equal(count_samples(r, n, NULL, NULL), 300);
    assert_int_equal(tsdb_chunk_count(r[0].p, r[0].len), 120);
    /* ...and at block boundaries (multiples of B). */
    for (int i = 0; i < 20; i++) {
        int64_t t = 95000 + i * 1000;
        assert_int_equal(tsdb__head_check(h, s, t, i, INT64_MIN), 1);
        tsdb__head_apply(h, s, t, i);
    }
    n = tsdb__head_copy(h, 5, INT64_MIN, INT64_MAX, &ar, &r);
    for (size_t i = 0; i < n; i++)
        assert_true(r[i].maxt < B || r[i].mint >= B);
    /* Range filter. */
    n = tsdb__head_copy(h, 5, B, INT64_MAX, &ar, &r);
    assert_int_equal(n, 1);
    int64_t first, last;
    assert_int_equal(count_samples(r, n, &first, &last), 15);
    assert_int_equal(first, B);
    /* The cut floor closes an open chunk that started before it. */
    tsdb__head_set_chunk_floor(h, 112500);
    assert_int_equal(tsdb__head_check(h, s, 120000, 1, INT64_MIN), 1);
    tsdb__head_apply(h, s, 120000, 1);
    n = tsdb__head_copy(h, 5, B, INT64_MAX, &ar, &r);
    assert_int_equal(n, 2);
    assert_int_equal(r[1].mint, 120000);
    /* Truncation drops chunks ending before t; GC keeps series with data. */
    tsdb__head_truncate_chunks(h, B);
    n = tsdb__head_copy(h, 5, INT64_MIN, INT64_MAX, &ar, &r);
    assert_int_equal(n, 2);
    assert_int_equal(tsdb__head_gc(h, B), 0);
    tsdb__head_stats st;
    tsdb__head_stats_get(h, &st);
    assert_int_equal(st.n_samples, 16);
    assert_int_equal(st.mint, B);
    assert_int_equal(st.maxt, 120000);
    tsdb__head_truncate_chunks(h, 200000);
    assert_int_equal(tsdb__head_gc(h, 200000), 1);
    assert_null(tsdb__head_get_id(h, 5));
    tsdb_arena_fini(&ar);
    tsdb__head_free(h);
}

static void test_tombstones(void **state)
{
    (void)state;
    tsdb__head *h = tsdb__head_new(0);
    tsdb__head_tomb_add(h, 9, 10, 20);
    tsdb__head_tomb_add(h, 3, 5, 6);
    tsdb__head_tomb_add(h, 9, 30, 40);
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    int64_t *r;
    assert_int_equal(tsdb__head_tomb_get(h, 9, &ar, &r), 2);
    assert_int_equal(r[0], 10);
    assert_int_equal(r[3], 40);
    assert_int_equal(tsdb__head_tomb_get(h, 4, &ar, &r), 0);
    tsdb__head_tomb_truncate(h, 25);
    assert_int_equal(tsdb__head_tomb_get(h, 9, &ar, &r), 1);
    assert_int_equal(tsdb__head_tomb_get(h, 3, &ar, &r), 0);
    int64_t *all;
    assert_int_equal(tsdb__head_tomb_all(h, &all), 1);
    assert_int_equal(all[0], 9);
    free(all);
    tsdb_arena_fini(&ar);
    tsdb__head_free(h);
}

/* A closed chunk keeps its end as a 32-bit span from its start: with a block range longer than
 * 2^32 ms, sparse samples cut a chunk before it spans that, ends read back exactly (also for
 * negative and extreme timestamps), and replay refuses a chunk spanning more. */
static void test_long_spans(void **state)
{
    (void)state;
    tsdb__head *h = tsdb__head_new(INT64_MAX / 2);
    tsdb_label a[2], b[2];
    tsdb__hseries *s = tsdb__head_create(h, 7, 1, mk(a, "m", "a"));
    const int64_t t[] = {-3000000000000LL, -2999000000000LL, -2998999999999LL, 0, 1000,
                         4294967295LL,     4294967296LL,     9000000000LL};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(tsdb__head_check(h, s, t[i], (double)i, INT64_MIN), 1);
        tsdb__head_apply(h, s, t[i], (double)i);
    }
    tsdb_arena ar;
    tsdb_arena_init(&ar, 0);
    tsdb__chunk_ref *r;
    size_t n = tsdb__head_copy(h, 7, INT64_MIN, INT64_MAX, &ar, &r);
    int64_t first, last;
    assert_int_equal(count_samples(r, n, &first, &last), 8);
    assert_int_equal(first, t[0]);
    assert_int_equal(last, t[7]);
    for (size_t i = 0; i < n; i++)
        assert_true((uint64_t)r[i].maxt - (uint64_t)r[i].mint <= UINT32_MAX);
    /* Cuts: t0 t1 t2 (spanning 1e9 ms) | 0 1000 4294967295 (exactly 2^32 - 1) | 4294967296 | 9e9.
     */
    assert_int_equal(n, 4);
    assert_int_equal(r[0].maxt, t[2]);
    assert_int_equal(r[1].mint, 0);
    assert_int_equal(r[1].maxt, 4294967295LL);
    assert_int_equal(r[2].mint, 4294967296LL);
    assert_int_equal(r[2].maxt, 4294967296LL);
    /* Replay: a closed chunk spanning more than 2^32 ms is corrupt; a shorter one is taken. */
    tsdb__hseries *s2 = tsdb__head_create(h, 8, 2, mk(b, "m", "b"));
    tsdb_chunk_app app;
    tsdb_chunk_app_init(&app);
    tsdb_chunk_app_add(&app, 10, 1);
    tsdb_chunk_app_add(&app, 10 + 4294967296LL, 2);
    size_t len;
    const unsigned char *p = tsdb_chunk_app_bytes(&app, &len);
    assert_int_equal(tsdb__head_add_chunk(h, s2, 10, 10 + 4294967296LL, p, len), TSDB_ECORRUPT);
    tsdb_chunk_app_reset(&app);
    tsdb_chunk_app_add(&app, 10, 1);
    tsdb_chunk_app_add(&app, 10 + 4294967295LL, 2);
    p = tsdb_chunk_app_bytes(&app, &len);
    assert_int_equal(tsdb__head_add_chunk(h, s2, 10, 10 + 4294967295LL, p, len), 1);
    n = tsdb__head_copy(h, 8, INT64_MIN, INT64_MAX, &ar, &r);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].maxt, 10 + 4294967295LL);
    tsdb_chunk_app_fini(&app);
    tsdb_arena_fini(&ar);
    tsdb__head_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_rules_and_chunks),
        cmocka_unit_test(test_tombstones),
        cmocka_unit_test(test_long_spans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
