/* Concurrency test (run under TSan by `make tsan`): an appender thread, query threads and a
 * maintenance thread (cuts, merges, retention, deletions, statistics) work on one database for a
 * bounded time. Readers check that every series they see is in ascending time order with the
 * values the writer wrote, and afterwards every appended sample is readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/hchunks.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

#define WRITERS       1
#define SERIES_PER_WR 100
#define BATCHES       400

static tsdb *db;
static atomic_int writers_done;
static atomic_long reads, read_errors;

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    char names[SERIES_PER_WR + 1][16];
    tsdb_label l[SERIES_PER_WR + 1][2];
    tsdb_sample s[SERIES_PER_WR + 1];
    tsdb_batch_series bs[SERIES_PER_WR + 1];
    for (int i = 0; i < SERIES_PER_WR; i++) {
        snprintf(names[i], sizeof(names[i]), "w%d-%d", w, i);
        l[i][0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("cc")};
        l[i][1] = (tsdb_label){TSDB_STR("s"), tsdb_str_c(names[i])};
    }
    /* One more series that the maintenance thread keeps deleting from. */
    l[SERIES_PER_WR][0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("victim")};
    l[SERIES_PER_WR][1] = (tsdb_label){TSDB_STR("s"), TSDB_STR("v")};
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i <= SERIES_PER_WR; i++) {
            s[i] = (tsdb_sample){(int64_t)b * 1000, (double)b};
            bs[i] = (tsdb_batch_series){{l[i], 2}, &s[i], 1};
        }
        tsdb_batch batch = {bs, SERIES_PER_WR + 1};
        tsdb_append_stats st;
        if (tsdb_append(db, &batch, &st, NULL) != TSDB_OK || st.accepted != SERIES_PER_WR + 1)
            atomic_fetch_add(&read_errors, 1);
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static long read_once(int64_t mint, int64_t maxt)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_RE, TSDB_STR("s"), TSDB_STR("w.*"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    tsdb_querier *q;
    long n = 0;
    if (tsdb_querier_open(db, mint, maxt, &q, NULL) != TSDB_OK) {
        atomic_fetch_add(&read_errors, 1);
        tsdb_arena_fini(&a);
        return 0;
    }
    tsdb_series_set *set;
    if (tsdb_querier_select(q, ms, 1, &set, NULL) == TSDB_OK) {
        tsdb_labels l;
        tsdb_iter *it;
        while (tsdb_series_next(set, &l, &it) > 0) {
            tsdb_sample s;
            int64_t prev = INT64_MIN;
            int rc;
            while ((rc = tsdb_iter_next(it, &s)) > 0) {
                if (s.t <= prev || s.v != (double)(s.t / 1000) || s.t < mint || s.t > maxt)
                    atomic_fetch_add(&read_errors, 1);
                prev = s.t;
                n++;
            }
            if (rc < 0)
                atomic_fetch_add(&read_errors, 1);
        }
    } else {
        atomic_fetch_add(&read_errors, 1);
    }
    tsdb_str *v;
    size_t nv;
    tsdb_label_values(q, TSDB_STR("s"), NULL, 0, &a, &v, &nv, NULL);
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
    return n;
}

static void *reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000 && atomic_load(&writers_done) < WRITERS; i++) {
        read_once(i % 7 * 20000, i % 7 * 20000 + 150000);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static void *maint(void *arg)
{
    (void)arg;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("victim"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    for (int i = 0; i < 2000 && atomic_load(&writers_done) < WRITERS; i++) {
        tsdb_maintain(db, NULL);
        if (i % 5 == 0)
            tsdb_delete(db, ms, 1, (int64_t)i * 500, (int64_t)i * 500 + 3000, NULL);
        if (i % 7 == 0) {
            tsdb_stats st;
            tsdb_stats_get(db, &st);
            tsdb_cardinality c;
            tsdb_cardinality_get(db, 5, &a, &c, NULL);
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    tsdb_arena_fini(&a);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/cairn-test-conc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.block_ms = 20000;
    o.wal_fsync_ms = 5;
    o.retention_ms = -1;
    o.index_map_bytes = 64 << 20;
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    pthread_t w[WRITERS], r[2], m;
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    pthread_create(&m, NULL, maint, NULL);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    pthread_join(m, NULL);
    assert_int_equal(atomic_load(&read_errors), 0);
    /* Everything written is readable, before and after a reopen. */
    assert_int_equal(read_once(INT64_MIN, INT64_MAX), (long)WRITERS * SERIES_PER_WR * BATCHES);
    tsdb_close(db);
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    assert_int_equal(read_once(INT64_MIN, INT64_MAX), (long)WRITERS * SERIES_PER_WR * BATCHES);
    tsdb_close(db);
    printf("%ld reads during appends\n", atomic_load(&reads));
    tsdb__os_remove_all(dir, NULL);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_WARN);
    tsdb__hchunks_set_default_sizes(8192, 1024); /* chunk files roll over and flush often */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
