/* Crash and I/O-fault tests for the storage engine.
 *
 * Faults: through tsdb/os.h's table, the Nth write, fsync or rename fails while batches are
 * appended and the head is cut into blocks; after reopening, every batch tsdb_append
 * acknowledged is there, sample for sample.
 *
 * Crash: a forked child appends batches with fsync-per-batch (and cuts blocks now and then) and
 * reports each acknowledged batch through a pipe; the parent SIGKILLs it at a random moment,
 * reopens the directory and checks every acknowledged sample. Repeated a bounded number of
 * times on the same directory (CRASH_TEST_SEED=<n> reruns one sequence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/hchunks.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

#define N_SERIES 10
#define STEP     1000

static char dirbuf[64];

static const char *tmpdir(void)
{
    snprintf(dirbuf, sizeof(dirbuf), "/tmp/cairn-test-crash-XXXXXX");
    assert_non_null(mkdtemp(dirbuf));
    return dirbuf;
}

static int db_open(const char *dir, tsdb **db)
{
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 0;
    o.block_ms = 20 * STEP;
    o.wal_segment_bytes = 128 * 1024;
    o.index_map_bytes = 64 << 20;
    return tsdb_open(&o, db, NULL);
}

/* Batch b: one sample per series at t = b * STEP, value b * 100 + series. */
static int append_batch(tsdb *db, int b)
{
    char vals[N_SERIES][8];
    tsdb_label l[N_SERIES][2];
    tsdb_sample s[N_SERIES];
    tsdb_batch_series bs[N_SERIES];
    for (int i = 0; i < N_SERIES; i++) {
        snprintf(vals[i], sizeof(vals[i]), "s%d", i);
        l[i][0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("crash")};
        l[i][1] = (tsdb_label){TSDB_STR("id"), tsdb_str_c(vals[i])};
        s[i] = (tsdb_sample){(int64_t)b * STEP, b * 100.0 + i};
        bs[i] = (tsdb_batch_series){{l[i], 2}, &s[i], 1};
    }
    tsdb_batch batch = {bs, N_SERIES};
    tsdb_append_stats st;
    int rc = tsdb_append(db, &batch, &st, NULL);
    if (rc == TSDB_OK && st.accepted != N_SERIES)
        return TSDB_EINVAL;
    return rc;
}

/* Marks present[b] for every batch whose samples are all there with the right values. */
static void check_batches(tsdb *db, uint8_t *present, int max_b)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("crash"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    tsdb_querier *q;
    assert_int_equal(tsdb_querier_open(db, INT64_MIN, INT64_MAX, &q, NULL), TSDB_OK);
    tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, ms, 1, &set, NULL), TSDB_OK);
    int *count = calloc((size_t)max_b + 1, sizeof(int));
    tsdb_labels l;
    tsdb_iter *it;
    while (tsdb_series_next(set, &l, &it) > 0) {
        tsdb_str id = tsdb_labels_get(l, TSDB_STR("id"));
        int si = atoi(id.p + 1);
        tsdb_sample s;
        int rc;
        while ((rc = tsdb_iter_next(it, &s)) > 0) {
            int b = (int)(s.t / STEP);
            if (b <= max_b && s.v == b * 100.0 + si)
                count[b]++;
        }
        assert_int_equal(rc, 0);
    }
    for (int b = 0; b <= max_b; b++)
        present[b] = count[b] == N_SERIES;
    free(count);
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
}

static void run_fault(enum tsdb_os_op op, uint64_t nth)
{
    const char *dir = tmpdir();
    tsdb *db;
    tsdb__os_fault_clear();
    assert_int_equal(db_open(dir, &db), TSDB_OK);
    uint8_t acked[200] = {0};
    int b;
    for (b = 1; b <= 20; b++)
        acked[b] = append_batch(db, b) == TSDB_OK;
    tsdb__os_fault_arm(op, nth, op == TSDB_OS_WRITE ? ENOSPC : EIO, 0);
    for (; b <= 150; b++) {
        acked[b] = append_batch(db, b) == TSDB_OK;
        if (b % 40 == 0)
            tsdb_cut_head(db, NULL);
    }
    tsdb__os_fault_clear();
    tsdb_close(db);
    assert_int_equal(db_open(dir, &db), TSDB_OK);
    uint8_t present[200];
    check_batches(db, present, 150);
    for (b = 1; b <= 150; b++)
        if (acked[b] && !present[b]) {
            fprintf(stderr, "op %d nth %llu: acknowledged batch %d lost\n", (int)op,
                    (unsigned long long)nth, b);
            fail();
        }
    tsdb_close(db);
    tsdb__os_remove_all(dir, NULL);
}

static void test_faults(void **state)
{
    (void)state;
    for (uint64_t nth = 1; nth <= 40; nth += 3) {
        run_fault(TSDB_OS_WRITE, nth);
        run_fault(TSDB_OS_FSYNC, nth);
    }
    for (uint64_t nth = 1; nth <= 6; nth++)
        run_fault(TSDB_OS_RENAME, nth);
}

static void child(const char *dir, int fd, int start)
{
    tsdb *db;
    if (db_open(dir, &db) != TSDB_OK)
        _exit(2);
    for (int b = start; b < start + 100000; b++) {
        if (append_batch(db, b) == TSDB_OK) {
            if (write(fd, &b, sizeof(b)) != (ssize_t)sizeof(b))
                _exit(3);
        }
        if (b % 64 == 0)
            tsdb_cut_head(db, NULL);
    }
    _exit(0);
}

static void test_kill9(void **state)
{
    (void)state;
    const char *env = getenv("CRASH_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("CRASH_TEST_SEED=%u\n", seed);
    srand(seed);
    const char *dir = tmpdir();
    int next = 1;
    int max_acked = 0;
    for (int round = 0; round < 6; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(dir, p[1], next);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(20 + rand() % 300) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int b, st;
        while (read(p[0], &b, sizeof(b)) == (ssize_t)sizeof(b))
            if (b > max_acked)
                max_acked = b;
        close(p[0]);
        waitpid(pid, &st, 0);
        tsdb *db;
        assert_int_equal(db_open(dir, &db), TSDB_OK);
        uint8_t *present = calloc((size_t)max_acked + 2, 1);
        check_batches(db, present, max_acked);
        for (b = 1; b <= max_acked; b++)
            if (!present[b]) {
                fprintf(stderr, "round %d: acknowledged batch %d of %d lost\n", round, b,
                        max_acked);
                fail();
            }
        free(present);
        tsdb_close(db);
        next = max_acked + 1;
    }
    printf("%d batches acknowledged over 6 kills\n", max_acked);
    tsdb__os_remove_all(dir, NULL);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_ERROR);
    tsdb__hchunks_set_default_sizes(8192, 1024); /* chunk files roll over and flush often */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
