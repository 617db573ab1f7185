/* Unit tests for the storage engine's public API (tsdb/db.c, querier.c, compact.c): append and
 * read back through the head, ingest rules, reopen (WAL replay), cut into blocks, merges,
 * deletion, retention, label names and values, snapshot. Every test uses its own temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tsdb/base.h"
#include "tsdb/db.h"
#include "tsdb/hchunks.h"
#include "tsdb/os.h"
#include "tsdb/record.h"
#include "tsdb/tsdb.h"
#include "tsdb/wal.h"

#define HOUR (3600LL * 1000)

static char tmpl[64];

static const char *mktemp_dir(void)
{
    snprintf(tmpl, sizeof(tmpl), "/tmp/cairn-test-db-XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static void rm_dir(const char *d)
{
    tsdb__os_remove_all(d, NULL);
}

static tsdb *open_db(const char *dir, int64_t block_ms)
{
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 0;
    o.index_map_bytes = 64 << 20;
    if (block_ms)
        o.block_ms = block_ms;
    tsdb *db = NULL;
    tsdb_err e;
    int rc = tsdb_open(&o, &db, &e);
    if (rc)
        fprintf(stderr, "open: %s\n", e.msg);
    assert_int_equal(rc, TSDB_OK);
    return db;
}

/* Appends n samples of one series {__name__=name, job=job} at t0, t0+step, ... with v = f(i). */
static tsdb_append_stats put(tsdb *db, const char *name, const char *job, int64_t t0, int64_t step,
                             size_t n, double base)
{
    tsdb_label l[2] = {{TSDB_STR("__name__"), tsdb_str_c(name)},
                       {TSDB_STR("job"), tsdb_str_c(job)}};
    tsdb_sample *s = calloc(n ? n : 1, sizeof(*s));
    for (size_t i = 0; i < n; i++)
        s[i] = (tsdb_sample){t0 + (int64_t)i * step, base + (double)i};
    tsdb_batch_series bs = {{l, 2}, s, n};
    tsdb_batch b = {&bs, 1};
    tsdb_append_stats st;
    tsdb_err e;
    int rc = tsdb_append(db, &b, &st, &e);
    assert_int_equal(rc, TSDB_OK);
    free(s);
    return st;
}

/* Reads all samples of series name (job any) in [mint, maxt]; returns the count, checks the
 * values follow base + i for consecutive steps when check is set. */
static size_t read_series(tsdb *db, const char *name, int64_t mint, int64_t maxt, tsdb_sample *out,
                          size_t cap, size_t *n_series)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    assert_int_equal(
        tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), tsdb_str_c(name), &a, &m, NULL),
        TSDB_OK);
    const tsdb_matcher *ms[1] = {m};
    tsdb_querier *q;
    assert_int_equal(tsdb_querier_open(db, mint, maxt, &q, NULL), TSDB_OK);
    tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, ms, 1, &set, NULL), TSDB_OK);
    tsdb_labels l;
    tsdb_iter *it;
    size_t k = 0, ns = 0;
    while (tsdb_series_next(set, &l, &it) > 0) {
        ns++;
        tsdb_sample s;
        int rc;
        while ((rc = tsdb_iter_next(it, &s)) > 0) {
            if (k < cap)
                out[k] = s;
            k++;
        }
        assert_int_equal(rc, 0);
    }
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
    if (n_series)
        *n_series = ns;
    return k;
}

static void test_append_select(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 0);
    tsdb_append_stats st = put(db, "up", "a", 1000, 15000, 500, 0);
    assert_int_equal(st.accepted, 500);
    assert_int_equal(st.new_series, 1);
    st = put(db, "up", "b", 16000, 15000, 10, 100);
    assert_int_equal(st.new_series, 1);
    assert_int_equal(st.too_old, 10); /* more than block_ms/2 behind the head's maxt */
    st = put(db, "up", "b", 1000 + 490 * 15000, 15000, 10, 100);
    assert_int_equal(st.accepted, 10);
    put(db, "other", "a", 1000 + 490 * 15000, 15000, 10, 0);

    tsdb_sample s[600];
    size_t ns;
    size_t n = read_series(db, "up", 0, INT64_MAX, s, 600, &ns);
    assert_int_equal(ns, 2);
    assert_int_equal(n, 510);
    for (size_t i = 0; i < 500; i++) {
        assert_int_equal(s[i].t, 1000 + (int64_t)i * 15000);
        assert_true(s[i].v == (double)i);
    }
    /* A narrow window keeps only samples inside it (both ends inclusive). */
    n = read_series(db, "up", 16000, 46000, s, 600, &ns);
    assert_int_equal(n, 3);
    assert_int_equal(ns, 1);
    assert_int_equal(s[0].t, 16000);
    assert_int_equal(s[2].t, 46000);

    /* Series come in label order: job=a before job=b. */
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("up"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    tsdb_querier *q;
    assert_int_equal(tsdb_querier_open(db, 0, INT64_MAX, &q, NULL), TSDB_OK);
    tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, ms, 1, &set, NULL), TSDB_OK);
    tsdb_labels l;
    tsdb_iter *it;
    assert_int_equal(tsdb_series_next(set, &l, &it), 1);
    assert_true(tsdb_str_eq(tsdb_labels_get(l, TSDB_STR("job")), TSDB_STR("a")));
    tsdb_sample x;
    assert_int_equal(tsdb_iter_seek(it, 30000, &x), 1);
    assert_int_equal(x.t, 31000);
    assert_int_equal(tsdb_iter_seek(it, 0, &x), 1); /* never backwards */
    assert_int_equal(x.t, 31000);
    assert_int_equal(tsdb_iter_next(it, &x), 1);
    assert_int_equal(x.t, 46000);
    assert_int_equal(tsdb_series_next(set, &l, &it), 1);
    assert_true(tsdb_str_eq(tsdb_labels_get(l, TSDB_STR("job")), TSDB_STR("b")));
    assert_int_equal(tsdb_series_next(set, &l, &it), 0);

    /* Label names and values. */
    tsdb_str *v;
    size_t nv;
    assert_int_equal(tsdb_label_values(q, TSDB_STR("job"), NULL, 0, &a, &v, &nv, NULL), TSDB_OK);
    assert_int_equal(nv, 2);
    assert_int_equal(tsdb_label_names(q, NULL, 0, &a, &v, &nv, NULL), TSDB_OK);
    assert_int_equal(nv, 2);
    tsdb_matcher *m2;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("other"), &a, &m2, NULL);
    const tsdb_matcher *ms2[1] = {m2};
    assert_int_equal(tsdb_label_values(q, TSDB_STR("job"), ms2, 1, &a, &v, &nv, NULL), TSDB_OK);
    assert_int_equal(nv, 1);
    assert_true(tsdb_str_eq(v[0], TSDB_STR("a")));
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);

    tsdb_stats sts;
    tsdb_stats_get(db, &sts);
    assert_int_equal(sts.n_series, 3);
    assert_int_equal(sts.n_samples_head, 520);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_ingest_rules(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 0);
    put(db, "m", "a", 100000, 1000, 10, 0); /* t 100000..109000, v 0..9 */
    tsdb_append_stats st = put(db, "m", "a", 105000, 1000, 1, 5);
    assert_int_equal(st.out_of_order, 1);
    st = put(db, "m", "a", 109000, 1000, 1, 9); /* same t, same value: silent */
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.duplicate, 0);
    st = put(db, "m", "a", 109000, 1000, 1, 7);
    assert_int_equal(st.duplicate, 1);
    st = put(db, "m", "a", 109000 - 3 * HOUR, 1000, 1, 7); /* far below the appendable window */
    assert_int_equal(st.too_old, 1);

    /* Invalid label sets are counted and skipped; the error names the first rejection. */
    tsdb_label bad[1] = {{TSDB_STR("job"), TSDB_STR("x")}}; /* no __name__ */
    tsdb_sample smp = {200000, 1};
    tsdb_batch_series bs = {{bad, 1}, &smp, 1};
    tsdb_batch b = {&bs, 1};
    tsdb_err e;
    assert_int_equal(tsdb_append(db, &b, &st, &e), TSDB_OK);
    assert_int_equal(st.invalid, 1);
    assert_int_equal(e.code, TSDB_EINVAL);

    /* The same new series twice in one batch: one series, samples of both entries. */
    {
        tsdb_label d1[2] = {{TSDB_STR("__name__"), TSDB_STR("twice")},
                            {TSDB_STR("k"), TSDB_STR("v")}};
        tsdb_label d2[2] = {{TSDB_STR("k"), TSDB_STR("v")},
                            {TSDB_STR("__name__"), TSDB_STR("twice")}};
        tsdb_sample s1[2] = {{100000, 1}, {101000, 2}}, s2[2] = {{102000, 3}, {101000, 9}};
        tsdb_batch_series two[2] = {{{d1, 2}, s1, 2}, {{d2, 2}, s2, 2}};
        tsdb_batch tb = {two, 2};
        assert_int_equal(tsdb_append(db, &tb, &st, NULL), TSDB_OK);
        assert_int_equal(st.new_series, 1);
        assert_int_equal(st.accepted, 3);
        assert_int_equal(st.out_of_order, 1);
        tsdb_sample out[8];
        size_t ns;
        assert_int_equal(read_series(db, "twice", 0, INT64_MAX, out, 8, &ns), 3);
        assert_int_equal(ns, 1);
        assert_true(out[2].v == 3.0);
    }

    /* Staleness NaN survives bit for bit. */
    tsdb_label l[2] = {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("job"), TSDB_STR("a")}};
    smp = (tsdb_sample){110000, tsdb_stale_nan()};
    bs = (tsdb_batch_series){{l, 2}, &smp, 1};
    assert_int_equal(tsdb_append(db, &b, &st, NULL), TSDB_OK);
    assert_int_equal(st.accepted, 1);
    tsdb_sample s[32];
    size_t n = read_series(db, "m", 0, INT64_MAX, s, 32, NULL);
    assert_int_equal(n, 11);
    assert_true(tsdb_is_stale_nan(s[10].v));
    for (size_t i = 0; i < 10; i++)
        assert_true(s[i].v == (double)i);

    /* And after a reopen (WAL replay). */
    tsdb_close(db);
    db = open_db(dir, 0);
    n = read_series(db, "m", 0, INT64_MAX, s, 32, NULL);
    assert_int_equal(n, 11);
    assert_true(tsdb_is_stale_nan(s[10].v));
    assert_true(s[9].v == 9.0);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_reopen(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 0);
    char job[16];
    for (int j = 0; j < 50; j++) {
        snprintf(job, sizeof(job), "j%d", j);
        put(db, "r", job, 0, 10000, 300, j);
    }
    tsdb_close(db);
    db = open_db(dir, 0);
    static tsdb_sample s[20000];
    size_t ns;
    size_t n = read_series(db, "r", INT64_MIN, INT64_MAX, s, 20000, &ns);
    assert_int_equal(ns, 50);
    assert_int_equal(n, 50 * 300);
    /* Appends continue where the data ended; the ids did not change. */
    tsdb_append_stats st = put(db, "r", "j0", 3000000, 10000, 5, 0);
    assert_int_equal(st.accepted, 5);
    assert_int_equal(st.new_series, 0);
    st = put(db, "r", "j0", 0, 10000, 1, 0);
    assert_int_equal(st.out_of_order + st.too_old, 1);
    tsdb_close(db);
    rm_dir(dir);
}

static int count_type(void *ctx, const unsigned char *p, size_t len)
{
    size_t *counts = ctx;
    int t = tsdb__rec_type(p, len);
    if (t > 0 && t < 8)
        counts[t]++;
    return 0;
}

/* Record counts by type in the data directory's newest checkpoint. */
static void checkpoint_records(const char *dir, size_t counts[8])
{
    char wal[128];
    snprintf(wal, sizeof(wal), "%s/wal", dir);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n;
    memset(counts, 0, 8 * sizeof(size_t));
    assert_int_equal(tsdb__os_list_dir(wal, &a, &names, &n, NULL), TSDB_OK);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], "checkpoint.", 11) != 0)
            continue;
        char path[300];
        snprintf(path, sizeof(path), "%s/%s", wal, names[i]);
        tsdb_buf b;
        tsdb_buf_init(&b);
        assert_int_equal(tsdb__os_read_file(path, 1 << 26, &b, NULL), TSDB_OK);
        size_t good;
        memset(counts, 0, 8 * sizeof(size_t));
        assert_int_equal(tsdb__wal_scan(b.p, b.len, count_type, counts, &good), TSDB_OK);
        tsdb_buf_fini(&b);
    }
    tsdb_arena_fini(&a);
}

static void test_cut_and_compact(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    int64_t B = 10000; /* 10 s blocks */
    tsdb *db = open_db(dir, B);
    /* 3 series, one sample per second over 200 s. */
    for (int64_t t = 0; t < 200000; t += 1000) {
        put(db, "c", "x", t, 1000, 1, (double)t);
        put(db, "c", "y", t, 1000, 1, (double)t);
        if (t < 50000)
            put(db, "c", "z", t, 1000, 1, (double)t);
    }
    tsdb_err e;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    tsdb_stats st;
    tsdb_stats_get(db, &st);
    assert_true(st.n_blocks >= 1);
    assert_true(st.head_mint >= 150000);
    static tsdb_sample s[1000];
    size_t ns;
    size_t n = read_series(db, "c", INT64_MIN, INT64_MAX, s, 1000, &ns);
    assert_int_equal(ns, 3);
    assert_int_equal(n, 200 + 200 + 50);
    for (size_t i = 0; i < 200; i++) {
        assert_int_equal(s[i].t, (int64_t)i * 1000);
        assert_true(s[i].v == (double)(i * 1000));
    }
    /* Queries straddling a block boundary and the head. */
    n = read_series(db, "c", 95000, 175000, s, 1000, &ns);
    assert_int_equal(ns, 2);
    assert_int_equal(n, 2 * 81);

    /* Reopen: blocks + checkpoint + WAL give back the same data. */
    tsdb_close(db);
    db = open_db(dir, B);
    n = read_series(db, "c", INT64_MIN, INT64_MAX, s, 1000, &ns);
    assert_int_equal(ns, 3);
    assert_int_equal(n, 450);
    /* Samples below the newest block are too old now. */
    tsdb_append_stats as = put(db, "c", "x", 5000, 1000, 1, 1);
    assert_int_equal(as.too_old, 1);
    /* Forced cut of the rest; then merges collapse level-0 blocks. */
    assert_true(tsdb_cut_head(db, &e) >= 0);
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    tsdb_stats_get(db, &st);
    n = read_series(db, "c", INT64_MIN, INT64_MAX, s, 1000, &ns);
    assert_int_equal(n, 450);
    for (size_t i = 0; i < 200; i++)
        assert_int_equal(s[i].t, (int64_t)i * 1000);
    assert_true(st.n_blocks < 20);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_checkpoint_chunks(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 10000);
    /* 25 samples per second: closed chunks of 120 inside the window the head keeps. */
    for (int64_t t = 0; t < 40000; t += 2000)
        put(db, "k", "x", t, 40, 50, (double)t / 40);
    tsdb_err e;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    tsdb_close(db);
    size_t counts[8];
    checkpoint_records(dir, counts);
    assert_true(counts[TSDB__REC_SERIES] > 0);
    assert_true(counts[TSDB__REC_CHUNKS] > 0);
    assert_true(counts[TSDB__REC_SAMPLES] > 0);
    db = open_db(dir, 10000);
    static tsdb_sample s[1100];
    size_t n = read_series(db, "k", INT64_MIN, INT64_MAX, s, 1100, NULL);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].t, (int64_t)i * 40);
        assert_true(s[i].v == (double)i);
    }
    /* Appends continue after the replayed chunks. */
    tsdb_append_stats st = put(db, "k", "x", 40000, 40, 10, 1000);
    assert_int_equal(st.accepted, 10);
    st = put(db, "k", "x", 39000, 40, 1, 0);
    assert_int_equal(st.out_of_order, 1);
    tsdb_close(db);
    rm_dir(dir);
}

static size_t n_names(tsdb *db)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_querier *q;
    assert_int_equal(tsdb_querier_open(db, INT64_MIN, INT64_MAX, &q, NULL), TSDB_OK);
    tsdb_str *v;
    size_t n;
    assert_int_equal(tsdb_label_values(q, TSDB_STR("__name__"), NULL, 0, &a, &v, &n, NULL),
                     TSDB_OK);
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
    return n;
}

static void test_empty_series_gc(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 10000);
    for (int64_t t = 0; t < 30000; t += 1000)
        put(db, "keep", "x", t, 1000, 1, 1);
    /* A new series whose only sample is refused still got an index entry... */
    tsdb_append_stats st = put(db, "ghost", "x", 0, 1000, 1, 1);
    assert_int_equal(st.too_old, 1);
    assert_int_equal(n_names(db), 2);
    /* ...which goes with the next cut, while series with data stay. */
    assert_int_equal(tsdb_maintain(db, NULL), TSDB_OK);
    assert_int_equal(n_names(db), 1);
    static tsdb_sample s[64];
    assert_int_equal(read_series(db, "keep", INT64_MIN, INT64_MAX, s, 64, NULL), 30);
    tsdb_close(db);
    rm_dir(dir);
}

/* Iterators used round-robin under a tiny memory budget let go of their chunks and read them
 * again, continuing where they were; the samples match a sequential read, also with looks ahead
 * (tsdb_iter_any) in between. */
static void test_iterator_budget(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 100000);
    for (int64_t t = 0; t < 300000; t += 250) {
        put(db, "lru", "a", t, 1, 1, (double)(t % 7));
        put(db, "lru", "b", t, 1, 1, (double)(t % 11));
        put(db, "lru", "c", t, 1, 1, (double)(t % 13));
    }
    assert_true(tsdb_cut_head(db, NULL) == 1); /* [0, 100000) in a block, the rest in the head */
    static tsdb_sample ref[3][1300];
    size_t nref[3] = {0, 0, 0};
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("lru"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    for (int pass = 0; pass < 2; pass++) {
        tsdb__querier_set_budget(pass == 0 ? 0 : 1);
        tsdb_querier *q;
        assert_int_equal(tsdb_querier_open(db, 50000, 250000, &q, NULL), TSDB_OK);
        tsdb_series_set *set;
        assert_int_equal(tsdb_querier_select(q, ms, 1, &set, NULL), TSDB_OK);
        tsdb_iter *its[3];
        tsdb_labels l;
        for (int i = 0; i < 3; i++)
            assert_int_equal(tsdb_series_next(set, &l, &its[i]), 1);
        if (pass == 0) {
            for (int i = 0; i < 3; i++) {
                tsdb_sample x;
                while (tsdb_iter_next(its[i], &x) > 0)
                    ref[i][nref[i]++] = x;
            }
            assert_int_equal(nref[0], 801);
        } else {
            size_t got[3] = {0, 0, 0};
            for (int step = 0; step < 4000; step++) {
                int i = step % 3;
                tsdb_sample x;
                if (step % 50 == 13) { /* a look ahead does not move the iterator */
                    assert_int_equal(tsdb_iter_any(its[i]), got[i] < nref[i] ? 1 : 0);
                    continue;
                }
                int rc = step % 50 == 7 ? tsdb_iter_seek(its[i], ref[i][got[i]].t, &x)
                                        : tsdb_iter_next(its[i], &x);
                if (rc <= 0)
                    continue;
                if (step % 50 == 7 && got[i] > 0 && x.t == ref[i][got[i] - 1].t)
                    continue; /* seek to the current sample stays there */
                assert_true(got[i] < nref[i]);
                assert_int_equal(x.t, ref[i][got[i]].t);
                assert_true(x.v == ref[i][got[i]].v);
                got[i]++;
            }
            for (int i = 0; i < 3; i++) {
                assert_int_equal(got[i], nref[i]);
                assert_int_equal(tsdb_iter_any(its[i]), 0);
            }
        }
        tsdb_querier_close(q);
    }
    tsdb__querier_set_budget(0);
    tsdb_arena_fini(&a);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_delete(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    int64_t B = 10000;
    tsdb *db = open_db(dir, B);
    for (int64_t t = 0; t < 100000; t += 1000) {
        put(db, "d", "x", t, 1000, 1, 1);
        put(db, "d", "y", t, 1000, 1, 2);
    }
    tsdb_err e;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("job"), TSDB_STR("x"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    /* Delete a range crossing blocks and the head. */
    assert_int_equal(tsdb_delete(db, ms, 1, 20000, 89999, &e), TSDB_OK);
    char bdir[128];
    snprintf(bdir, sizeof(bdir), "%s/blocks", dir);
    assert_true(tsdb__os_dir_bytes(bdir, ".tomb") > 0);
    static tsdb_sample s[500];
    size_t n = read_series(db, "d", INT64_MIN, INT64_MAX, s, 500, NULL);
    assert_int_equal(n, 100 + 30);
    tsdb_close(db);
    db = open_db(dir, B);
    n = read_series(db, "d", INT64_MIN, INT64_MAX, s, 500, NULL);
    assert_int_equal(n, 130);
    /* A maintenance pass applies tombstones for good: no block keeps a tombstone file. */
    while (tsdb_cut_head(db, &e) > 0)
        ;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    n = read_series(db, "d", INT64_MIN, INT64_MAX, s, 500, NULL);
    assert_int_equal(n, 130);
    assert_int_equal(tsdb__os_dir_bytes(bdir, ".tomb"), 0);
    tsdb_stats stt;
    tsdb_stats_get(db, &stt);
    assert_int_equal(stt.n_samples_head, 0);
    tsdb_close(db);
    tsdb_arena_fini(&a);
    rm_dir(dir);
}

static void test_retention(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.block_ms = 10000;
    o.retention_ms = 30000;
    o.index_map_bytes = 64 << 20;
    tsdb *db;
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    for (int64_t t = 0; t < 100000; t += 1000) {
        put(db, "old", "x", t, 1000, 1, 1);
        if (t >= 60000)
            put(db, "new", "x", t, 1000, 1, 1);
    }
    tsdb_err e;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    static tsdb_sample s[500];
    size_t n = read_series(db, "old", INT64_MIN, INT64_MAX, s, 500, NULL);
    assert_true(n < 100);
    assert_true(s[0].t >= 100000 - 30000 - 10000);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_snapshot_and_cardinality(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    char d2[128];
    snprintf(d2, sizeof(d2), "%s-snap", dir);
    tsdb *db = open_db(dir, 10000);
    {
        /* An empty database has an empty summary. */
        tsdb_arena e0;
        tsdb_arena_init(&e0, 0);
        tsdb_cardinality c0;
        assert_int_equal(tsdb_cardinality_get(db, 10, &e0, &c0, NULL), TSDB_OK);
        assert_int_equal(c0.n_series, 0);
        assert_int_equal(c0.n_by_metric + c0.n_by_pair + c0.n_by_label_name, 0);
        tsdb_arena_fini(&e0);
    }
    for (int64_t t = 0; t < 40000; t += 1000) {
        put(db, "s", "x", t, 1000, 1, 1);
        put(db, "s", "y", t, 1000, 1, 2);
        put(db, "u", "x", t, 1000, 1, 2);
    }
    tsdb_err e;
    assert_int_equal(tsdb_maintain(db, &e), TSDB_OK);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_cardinality c;
    assert_int_equal(tsdb_cardinality_get(db, 10, &a, &c, &e), TSDB_OK);
    assert_int_equal(c.n_series, 3);
    assert_int_equal(c.n_by_metric, 2);
    assert_true(tsdb_str_eq(c.by_metric[0].name, TSDB_STR("s")));
    assert_int_equal(c.by_metric[0].value, 2);
    assert_int_equal(tsdb_snapshot(db, d2, &e), TSDB_OK);
    tsdb_close(db);
    db = open_db(d2, 10000);
    static tsdb_sample s[500];
    size_t n = read_series(db, "s", INT64_MIN, INT64_MAX, s, 500, NULL);
    assert_int_equal(n, 80);
    tsdb_close(db);
    tsdb_arena_fini(&a);
    rm_dir(dir);
    rm_dir(d2);
}

static void test_out_of_order_window(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 0;
    o.block_ms = 100000;
    o.ooo_window_ms = 60000;
    o.index_map_bytes = 64 << 20;
    tsdb *db;
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    /* Even seconds in order, then odd seconds late, newest first. */
    for (int64_t t = 0; t <= 150000; t += 2000)
        put(db, "o", "x", t, 1000, 1, (double)t);
    tsdb_append_stats st;
    for (int64_t t = 149000; t > 0; t -= 2000) {
        st = put(db, "o", "x", t, 1000, 1, (double)t);
        if (t >= 90000)
            assert_int_equal(st.accepted, 1);
        else
            assert_int_equal(st.accepted + st.out_of_order + st.too_old, 1);
    }
    st = put(db, "o", "x", 149000, 1000, 1, 5.0); /* same t, other value */
    assert_int_equal(st.duplicate, 1);
    static tsdb_sample s[400];
    size_t n = read_series(db, "o", 90000, 150000, s, 400, NULL);
    assert_int_equal(n, 61);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].t, 90000 + (int64_t)i * 1000);
        assert_true(s[i].v == (double)s[i].t);
    }
    /* Survives replay, a cut (the block merges both kinds) and a checkpoint. */
    tsdb_close(db);
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    assert_int_equal(read_series(db, "o", 90000, 150000, s, 400, NULL), 61);
    assert_true(tsdb_cut_head(db, NULL) >= 1);
    while (tsdb_cut_head(db, NULL) > 0)
        ;
    n = read_series(db, "o", 90000, 150000, s, 400, NULL);
    assert_int_equal(n, 61);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s[i].t, 90000 + (int64_t)i * 1000);
    tsdb_close(db);
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    assert_int_equal(read_series(db, "o", 90000, 150000, s, 400, NULL), 61);
    tsdb_close(db);
    rm_dir(dir);
}

static void test_lock(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb *db = open_db(dir, 0);
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    /* Another process is refused while this one holds the directory. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tsdb *other = NULL;
        int rc = tsdb_open(&o, &other, NULL);
        _exit(rc == TSDB_ELOCKED ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* A read-only open needs no lock and sees the data. */
    put(db, "ro", "x", 1000, 1000, 5, 0);
    tsdb *db2 = NULL;
    o.read_only = 1;
    assert_int_equal(tsdb_open(&o, &db2, NULL), TSDB_OK);
    static tsdb_sample s[8];
    assert_int_equal(read_series(db2, "ro", INT64_MIN, INT64_MAX, s, 8, NULL), 5);
    tsdb_label l[1] = {{TSDB_STR("__name__"), TSDB_STR("ro")}};
    tsdb_sample one = {9000, 1};
    tsdb_batch_series bs = {{l, 1}, &one, 1};
    tsdb_batch b = {&bs, 1};
    assert_int_equal(tsdb_append(db2, &b, NULL, NULL), TSDB_EINVAL);
    tsdb_close(db2);
    tsdb_close(db);
    rm_dir(dir);
}

/* Closed head chunks live in chunks_head/ (small segments here, see main): they read back, a cut
 * deletes the segments it empties, close removes the folder, reopening rebuilds it from the WAL,
 * and a read-only open leaves the writer's files alone. */
static size_t n_segments(const char *dir)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/chunks_head", dir);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n = 0;
    if (tsdb__os_list_dir(p, &a, &names, &n, NULL) != TSDB_OK)
        n = 0;
    tsdb_arena_fini(&a);
    return n;
}

static void check_head_series(tsdb *db, const char *name, int64_t from, size_t want)
{
    static tsdb_sample s[4000];
    size_t n = read_series(db, name, INT64_MIN, INT64_MAX, s, 4000, NULL);
    assert_int_equal(n, want);
    for (size_t i = 0; i < n; i++) {
        int64_t t = from + (int64_t)i * 1000;
        assert_int_equal(s[i].t, t);
        assert_true(s[i].v == (double)(t / 1000));
    }
}

static void test_head_chunk_files(void **state)
{
    (void)state;
    const char *dir = mktemp_dir();
    tsdb__hchunks_set_default_sizes(1024, 512); /* about 6 chunks per segment */
    tsdb *db = open_db(dir, 600000);            /* blocks of 600 samples */
    static const char *names[] = {"f0", "f1", "f2", "f3"};
    for (int64_t t = 0; t < 3000; t += 100) /* rounds well inside the too-old limit */
        for (int i = 0; i < 4; i++)
            put(db, names[i], "x", t * 1000, 1000, 100, (double)t);
    size_t segs = n_segments(dir);
    assert_true(segs > 1);
    for (int i = 0; i < 4; i++)
        check_head_series(db, names[i], 0, 3000);

    /* A read-only reader of the same directory neither empties nor changes chunks_head/. */
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.read_only = 1;
    o.block_ms = 600000;
    tsdb *ro = NULL;
    assert_int_equal(tsdb_open(&o, &ro, NULL), TSDB_OK);
    check_head_series(ro, "f2", 0, 3000);
    tsdb_close(ro);
    assert_int_equal(n_segments(dir), segs);
    check_head_series(db, "f2", 0, 3000);

    /* Cutting the first blocks releases their chunks; emptied segments are deleted. */
    tsdb_err e;
    assert_int_equal(tsdb_cut_head(db, &e), 1);
    assert_true(n_segments(dir) + 3 <= segs);
    for (int i = 0; i < 4; i++)
        check_head_series(db, names[i], 0, 3000);
    tsdb_close(db);
    char p[256];
    snprintf(p, sizeof(p), "%s/chunks_head", dir);
    assert_false(tsdb__os_exists(p));

    /* Reopen: the WAL (checkpoint chunks and samples) refills the head and its files. */
    db = open_db(dir, 600000);
    for (int i = 0; i < 4; i++)
        check_head_series(db, names[i], 0, 3000);
    put(db, "f0", "x", 3000000, 1000, 1000, 3000);
    check_head_series(db, "f0", 0, 4000);
    assert_true(n_segments(dir) > 0);
    tsdb_close(db);
    rm_dir(dir);
    tsdb__hchunks_set_default_sizes(4096, 1024);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_WARN);
    tsdb__hchunks_set_default_sizes(4096, 1024); /* chunk files roll over and flush often */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_select),
        cmocka_unit_test(test_ingest_rules),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_cut_and_compact),
        cmocka_unit_test(test_checkpoint_chunks),
        cmocka_unit_test(test_empty_series_gc),
        cmocka_unit_test(test_iterator_budget),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_snapshot_and_cardinality),
        cmocka_unit_test(test_out_of_order_window),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_head_chunk_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
