/* Unit tests for tsdb/hchunks.c (head chunk files): append and read back before and after the
 * buffer is written, segment rollover, deletion of segments whose chunks are all released, write
 * and open faults through tsdb/os.h (refusal, retry, nothing lost), concurrent readers while a
 * writer appends and releases, and the head keeping chunks in the heap when the files refuse
 * them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/chunk.h"
#include "tsdb/head.h"
#include "tsdb/hchunks.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

static char dirbuf[64];

static const char *tmpdir(void)
{
    snprintf(dirbuf, sizeof(dirbuf), "/tmp/cairn-test-hchunks-XXXXXX");
    assert_non_null(mkdtemp(dirbuf));
    return dirbuf;
}

/* Chunk k: len(k) bytes, each a function of k and its position. */
static size_t chunk_len(uint32_t k)
{
    return 20 + (k * 37) % 300;
}

static void chunk_fill(uint32_t k, unsigned char *p)
{
    size_t n = chunk_len(k);
    for (size_t j = 0; j < n; j++)
        p[j] = (unsigned char)(k * 131 + j * 7 + (j >> 8));
}

static int chunk_ok(tsdb__hchunks *c, uint32_t k, uint64_t ref)
{
    unsigned char want[400], got[400];
    size_t n = chunk_len(k);
    chunk_fill(k, want);
    memset(got, 0xAA, sizeof(got));
    tsdb__hchunks_read(c, ref, n, got);
    return memcmp(want, got, n) == 0;
}

static size_t count_files(const char *dir)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n = 0;
    if (tsdb__os_list_dir(dir, &a, &names, &n, NULL) != TSDB_OK)
        n = 0;
    tsdb_arena_fini(&a);
    return n;
}

static void test_append_read_flush(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/chunks_head", root);
    /* A stale file from an earlier run is removed at open. */
    assert_int_equal(tsdb__os_mkdir_p(dir, NULL), TSDB_OK);
    char stale[160];
    snprintf(stale, sizeof(stale), "%s/00000007", dir);
    assert_int_equal(tsdb__os_write_file_atomic(stale, "x", 1, NULL), TSDB_OK);
    tsdb__hchunks *c;
    assert_int_equal(tsdb__hchunks_open(dir, 1 << 20, 4096, &c, NULL), TSDB_OK);
    assert_false(tsdb__os_exists(stale));
    assert_int_equal(count_files(dir), 0); /* no segment before the first append */

    uint64_t refs[64];
    unsigned char buf[400];
    uint64_t total = 0;
    for (uint32_t k = 0; k < 64; k++) {
        chunk_fill(k, buf);
        assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], NULL), TSDB_OK);
        total += chunk_len(k);
        /* Every chunk so far reads back, whether buffered or written. */
        for (uint32_t j = 0; j <= k; j++)
            assert_true(chunk_ok(c, j, refs[j]));
    }
    tsdb__hchunks_stats st;
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_segments, 1);
    assert_int_equal(st.n_live, 64);
    assert_true(st.buffered > 0 && st.buffered <= 4096);
    char seg[160];
    snprintf(seg, sizeof(seg), "%s/00000001", dir);
    uint64_t size = 0;
    assert_int_equal(tsdb__os_path_size(seg, &size), TSDB_OK);
    assert_int_equal(size + st.buffered, total); /* the buffer holds exactly the tail */
    assert_int_equal(tsdb__hchunks_flush(c, NULL), TSDB_OK);
    assert_int_equal(tsdb__os_path_size(seg, &size), TSDB_OK);
    assert_int_equal(size, total);
    for (uint32_t k = 0; k < 64; k++)
        assert_true(chunk_ok(c, k, refs[k]));
    /* An empty chunk or one larger than the buffer is refused, not stored. */
    uint64_t r;
    assert_int_not_equal(tsdb__hchunks_append(c, buf, 0, &r, NULL), TSDB_OK);
    unsigned char *big = calloc(1, 8192);
    assert_int_not_equal(tsdb__hchunks_append(c, big, 8192, &r, NULL), TSDB_OK);
    free(big);
    tsdb__hchunks_close(c);
    assert_false(tsdb__os_exists(dir));
    tsdb__os_remove_all(root, NULL);
}

static void test_rollover_and_delete(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ch", root);
    tsdb__hchunks *c;
    assert_int_equal(tsdb__hchunks_open(dir, 4096, 1024, &c, NULL), TSDB_OK);
    enum { N = 400 };
    uint64_t refs[N];
    unsigned char buf[400];
    for (uint32_t k = 0; k < N; k++) {
        chunk_fill(k, buf);
        assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], NULL), TSDB_OK);
        /* A chunk never crosses a segment's end. */
        assert_true((refs[k] & UINT32_MAX) + chunk_len(k) <= 4096);
    }
    tsdb__hchunks_stats st;
    tsdb__hchunks_stats_get(c, &st);
    assert_true(st.n_segments >= 15);
    assert_int_equal(count_files(dir), st.n_segments);
    for (uint32_t k = 0; k < N; k++)
        assert_true(chunk_ok(c, k, refs[k]));

    /* Releasing every chunk of the first segments deletes them; a partly released segment stays. */
    uint32_t last_seg = (uint32_t)(refs[N - 1] >> 32);
    uint32_t k = 0;
    while ((uint32_t)(refs[k] >> 32) < 4)
        tsdb__hchunks_release(c, refs[k++]);
    tsdb__hchunks_release(c, refs[k]); /* the first chunk of segment 4 only */
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_segments, last_seg - 3);
    assert_int_equal(count_files(dir), last_seg - 3);
    char seg[160];
    snprintf(seg, sizeof(seg), "%s/00000003", dir);
    assert_false(tsdb__os_exists(seg));
    snprintf(seg, sizeof(seg), "%s/00000004", dir);
    assert_true(tsdb__os_exists(seg));
    for (uint32_t j = k + 1; j < N; j++)
        assert_true(chunk_ok(c, j, refs[j]));

    /* Releasing everything leaves only the current segment, which keeps taking chunks. */
    for (uint32_t j = k + 1; j < N; j++)
        tsdb__hchunks_release(c, refs[j]);
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_live, 0);
    assert_int_equal(st.n_segments, 1);
    assert_int_equal(count_files(dir), 1);
    uint64_t r;
    chunk_fill(9, buf);
    assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(9), &r, NULL), TSDB_OK);
    assert_true(chunk_ok(c, 9, r));
    /* Releasing an unknown or already released reference changes nothing. */
    tsdb__hchunks_release(c, refs[0]);
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_live, 1);
    tsdb__hchunks_close(c);
    tsdb__os_remove_all(root, NULL);
}

static void test_faults(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ch", root);
    tsdb__hchunks *c;
    assert_int_equal(tsdb__hchunks_open(dir, 1 << 16, 1024, &c, NULL), TSDB_OK);
    enum { N = 200 };
    uint64_t refs[N];
    int stored[N] = {0};
    unsigned char buf[400];

    /* The disk fills up: the write of a full buffer fails and keeps failing. */
    tsdb__os_fault_arm(TSDB_OS_WRITE, 1, ENOSPC, 1);
    uint32_t k = 0, refused = 0;
    for (; k < 40; k++) {
        chunk_fill(k, buf);
        tsdb_err e;
        int rc = tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], &e);
        stored[k] = rc == TSDB_OK;
        refused += !stored[k];
    }
    assert_true(refused > 0 && refused < 40);
    /* Stored chunks stay readable from the buffer that could not be written. */
    for (uint32_t j = 0; j < k; j++)
        if (stored[j])
            assert_true(chunk_ok(c, j, refs[j]));
    tsdb__hchunks_stats st;
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.failures, refused);
    uint64_t writes = tsdb__os_calls(TSDB_OS_WRITE);
    /* After a failure the layer refuses without touching the disk for a while... */
    for (uint32_t i = 0; i < 100; i++) {
        uint64_t r;
        assert_int_not_equal(tsdb__hchunks_append(c, buf, 30, &r, NULL), TSDB_OK);
    }
    assert_int_equal(tsdb__os_calls(TSDB_OS_WRITE), writes);
    /* ...then, once the disk works again, it writes the buffer and takes chunks again. */
    tsdb__os_fault_clear();
    int ok = 0;
    for (uint32_t i = 0; i < 10000 && !ok; i++) {
        chunk_fill(k, buf);
        ok = tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], NULL) == TSDB_OK;
    }
    assert_true(ok);
    stored[k++] = 1;
    for (; k < N; k++) {
        chunk_fill(k, buf);
        assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], NULL), TSDB_OK);
        stored[k] = 1;
    }
    assert_int_equal(tsdb__hchunks_flush(c, NULL), TSDB_OK);
    for (uint32_t j = 0; j < N; j++)
        if (stored[j])
            assert_true(chunk_ok(c, j, refs[j]));
    tsdb__hchunks_close(c);

    /* A segment that cannot be created or mapped: the append fails, nothing is left behind. */
    static const enum tsdb_os_op ops[] = {TSDB_OS_OPEN, TSDB_OS_MMAP};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(tsdb__hchunks_open(dir, 1 << 16, 1024, &c, NULL), TSDB_OK);
        tsdb__os_fault_arm(ops[i], 1, EIO, 0);
        uint64_t r;
        chunk_fill(1, buf);
        assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(1), &r, NULL), TSDB_EIO);
        tsdb__os_fault_clear();
        assert_int_equal(count_files(dir), 0);
        tsdb__hchunks_stats_get(c, &st);
        assert_int_equal(st.n_segments, 0);
        tsdb__hchunks_close(c);
    }
    tsdb__os_remove_all(root, NULL);
}

static long rss_file_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssFile: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* Reading through the maps makes pages resident in this process; dropping them gives them back
 * and the chunks still read back (from the page cache). */
static void test_drop_pages(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ch", root);
    tsdb__hchunks *c;
    assert_int_equal(tsdb__hchunks_open(dir, 8 << 20, 64 << 10, &c, NULL), TSDB_OK);
    enum { N = 40000 }; /* about 6.8 MB */
    uint64_t *refs = malloc(N * sizeof(*refs));
    unsigned char buf[400];
    for (uint32_t k = 0; k < N; k++) {
        chunk_fill(k, buf);
        assert_int_equal(tsdb__hchunks_append(c, buf, chunk_len(k), &refs[k], NULL), TSDB_OK);
    }
    assert_int_equal(tsdb__hchunks_flush(c, NULL), TSDB_OK);
    long r0 = rss_file_kib();
    if (r0 < 0) { /* no RssFile line: nothing to measure on this kernel */
        tsdb__hchunks_close(c);
        free(refs);
        tsdb__os_remove_all(root, NULL);
        return;
    }
    for (uint32_t k = 0; k < N; k++)
        assert_true(chunk_ok(c, k, refs[k]));
    long r1 = rss_file_kib();
    assert_true(r1 - r0 >= 4 << 10);
    tsdb__hchunks_drop_pages(c);
    long r2 = rss_file_kib();
    assert_true(r1 - r2 >= 4 << 10);
    for (uint32_t k = 0; k < N; k += 97)
        assert_true(chunk_ok(c, k, refs[k]));
    tsdb__hchunks_close(c);
    free(refs);
    tsdb__os_remove_all(root, NULL);
}

/* Concurrency: a writer appends and releases chunks in a table of slots, each guarded by a
 * mutex like the head's stripes; readers copy live slots under the same mutex and check the
 * bytes. */
enum { SLOTS = 64, STRIPES = 8 };

struct shared {
    tsdb__hchunks *c;
    pthread_mutex_t mu[STRIPES];
    uint64_t ref[SLOTS];
    uint32_t key[SLOTS]; /* UINT32_MAX: empty */
    _Atomic int stop, started;
    _Atomic uint64_t reads, bad;
};

static void *reader(void *arg)
{
    struct shared *sh = arg;
    uint64_t x = (uint64_t)(uintptr_t)&x;
    atomic_fetch_add(&sh->started, 1);
    /* Until the writer stops, and at least 1000 reads however the threads are scheduled. */
    uint64_t mine = 0;
    for (int i = 0; i < 20000000 && !(mine >= 1000 && atomic_load(&sh->stop)); i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t s = (size_t)(x >> 33) % SLOTS;
        pthread_mutex_lock(&sh->mu[s % STRIPES]);
        if (sh->key[s] != UINT32_MAX) {
            if (!chunk_ok(sh->c, sh->key[s], sh->ref[s]))
                atomic_fetch_add(&sh->bad, 1);
            atomic_fetch_add(&sh->reads, 1);
            mine++;
        }
        pthread_mutex_unlock(&sh->mu[s % STRIPES]);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ch", root);
    struct shared *sh = calloc(1, sizeof(*sh));
    assert_int_equal(tsdb__hchunks_open(dir, 8192, 2048, &sh->c, NULL), TSDB_OK);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&sh->mu[i], NULL);
    for (int i = 0; i < SLOTS; i++)
        sh->key[i] = UINT32_MAX;
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, sh), 0);
    for (int i = 0; i < 5000 && atomic_load(&sh->started) < 3; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    unsigned char buf[400];
    for (uint32_t k = 0; k < 20000; k++) {
        size_t s = (k * 2654435761u) % SLOTS;
        chunk_fill(k, buf);
        uint64_t ref;
        int rc = tsdb__hchunks_append(sh->c, buf, chunk_len(k), &ref, NULL);
        assert_int_equal(rc, TSDB_OK);
        pthread_mutex_lock(&sh->mu[s % STRIPES]);
        if (sh->key[s] != UINT32_MAX)
            tsdb__hchunks_release(sh->c, sh->ref[s]); /* may delete a segment */
        sh->key[s] = k;
        sh->ref[s] = ref;
        pthread_mutex_unlock(&sh->mu[s % STRIPES]);
    }
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&sh->bad), 0);
    assert_true(atomic_load(&sh->reads) > 0);
    /* Old segments went away as their chunks were replaced. */
    tsdb__hchunks_stats st;
    tsdb__hchunks_stats_get(sh->c, &st);
    assert_int_equal(st.n_live, SLOTS);
    assert_true(st.n_segments <= SLOTS + 1);
    assert_int_equal(count_files(dir), st.n_segments);
    tsdb__hchunks_close(sh->c);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&sh->mu[i]);
    free(sh);
    tsdb__os_remove_all(root, NULL);
}

/* The head with chunk files: copies match a head without them, truncation deletes segments, and
 * chunks the files refuse stay readable from the heap. */
static size_t head_samples(tsdb__head *h, uint64_t id, int64_t *first, int64_t *last)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__chunk_ref *r = NULL;
    size_t n = tsdb__head_copy(h, id, INT64_MIN, INT64_MAX, &a, &r), total = 0;
    for (size_t i = 0; i < n; i++) {
        tsdb_chunk_it it;
        tsdb_sample s;
        assert_int_equal(tsdb_chunk_it_init(&it, r[i].p, r[i].len), TSDB_OK);
        int rc;
        while ((rc = tsdb_chunk_it_next(&it, &s)) > 0) {
            assert_true(s.v == (double)s.t * 0.5 + (double)id);
            if (total == 0)
                *first = s.t;
            *last = s.t;
            total++;
        }
        assert_int_equal(rc, 0);
    }
    tsdb_arena_fini(&a);
    return total;
}

static void fill_head(tsdb__head *h, int n_series, int64_t n_samples)
{
    tsdb_label lv[2];
    char val[16];
    tsdb__hseries *s[8];
    for (int i = 0; i < n_series; i++) {
        snprintf(val, sizeof(val), "s%d", i);
        lv[0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("m")};
        lv[1] = (tsdb_label){TSDB_STR("k"), tsdb_str_c(val)};
        tsdb_labels l = {lv, 2};
        s[i] = tsdb__head_create(h, (uint64_t)i + 1, tsdb_labels_hash(l), l);
    }
    for (int64_t t = 0; t < n_samples; t++)
        for (int i = 0; i < n_series; i++) {
            double v = (double)(t * 1000) * 0.5 + (double)(i + 1);
            assert_int_equal(tsdb__head_check(h, s[i], t * 1000, v, INT64_MIN), 1);
            tsdb__head_apply(h, s[i], t * 1000, v);
        }
}

static void test_head_files(void **state)
{
    (void)state;
    const char *root = tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ch", root);
    const int64_t B = 100000; /* block_ms: 100 samples per block */
    tsdb__head *plain = tsdb__head_new(B), *h = tsdb__head_new(B);
    tsdb__hchunks *c;
    assert_int_equal(tsdb__hchunks_open(dir, 8192, 1024, &c, NULL), TSDB_OK);
    tsdb__head_set_files(h, c);
    fill_head(plain, 8, 1000);
    fill_head(h, 8, 1000);
    tsdb__hchunks_stats st;
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_live, 8 * 9); /* 10 blocks of 100 samples: 9 closed chunks each */
    assert_true(st.n_segments > 1);
    for (uint64_t id = 1; id <= 8; id++) {
        int64_t f0, l0, f1, l1;
        assert_int_equal(head_samples(plain, id, &f0, &l0), 1000);
        assert_int_equal(head_samples(h, id, &f1, &l1), 1000);
        assert_true(f0 == f1 && l0 == l1);
    }
    /* Truncation releases the chunks of the first blocks; their segments go away. */
    uint64_t before = st.n_segments;
    tsdb__head_truncate_chunks(h, 6 * B);
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_live, 8 * 3);
    assert_true(st.n_segments < before);
    assert_int_equal(count_files(dir), st.n_segments);
    for (uint64_t id = 1; id <= 8; id++) {
        int64_t f, l;
        assert_int_equal(head_samples(h, id, &f, &l), 400);
        assert_int_equal(f, 6 * B);
        assert_int_equal(l, 999000);
    }
    tsdb__head_free(plain);
    tsdb__head_free(h); /* closes the files and removes their folder */
    assert_false(tsdb__os_exists(dir));

    /* Writes fail for good: every chunk stays in the heap and reads back whole. */
    h = tsdb__head_new(B);
    assert_int_equal(tsdb__hchunks_open(dir, 8192, 1024, &c, NULL), TSDB_OK);
    tsdb__head_set_files(h, c);
    tsdb__os_fault_arm(TSDB_OS_WRITE, 1, ENOSPC, 1);
    fill_head(h, 8, 1000);
    tsdb__os_fault_clear();
    tsdb__hchunks_stats_get(c, &st);
    assert_true(st.failures > 0);
    assert_true(st.n_live < 8 * 9);
    for (uint64_t id = 1; id <= 8; id++) {
        int64_t f, l;
        assert_int_equal(head_samples(h, id, &f, &l), 1000);
        assert_int_equal(f, 0);
        assert_int_equal(l, 999000);
    }
    tsdb__head_truncate_chunks(h, 10 * B);
    tsdb__hchunks_stats_get(c, &st);
    assert_int_equal(st.n_live, 0);
    tsdb__head_free(h);
    tsdb__os_remove_all(root, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_read_flush),
        cmocka_unit_test(test_rollover_and_delete),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_drop_pages),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_head_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
