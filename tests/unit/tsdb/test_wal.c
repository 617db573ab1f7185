/* Unit tests for tsdb/wal.c: records of every size (multi-page fragments, zstd) round-trip
 * through segments and checkpoints; a torn tail cut at every byte of the last records replays
 * exactly the complete prefix (both on raw segments and through tsdb_open); damaged bytes in the
 * middle are detected by the CRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/os.h"
#include "tsdb/record.h"
#include "tsdb/tsdb.h"
#include "tsdb/wal.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static char dirbuf[64];

static const char *tmpdir(void)
{
    snprintf(dirbuf, sizeof(dirbuf), "/tmp/cairn-test-wal-XXXXXX");
    assert_non_null(mkdtemp(dirbuf));
    return dirbuf;
}

/* Record i: length and content derived from i, so the reader can check it. */
static size_t rec_len(size_t i)
{
    static const size_t lens[] = {1, 7, 100, 5000, 32761, 32768, 70000, 200000, 3};
    return lens[i % (sizeof(lens) / sizeof(lens[0]))];
}

static void rec_fill(unsigned char *p, size_t len, size_t i, int compressible)
{
    for (size_t k = 0; k < len; k++)
        p[k] = compressible ? (unsigned char)(i + k / 64) : (unsigned char)(rnd() ^ i);
    p[0] = (unsigned char)i;
}

typedef struct seen {
    size_t n;
    size_t lens[64];
    unsigned char first[64];
} seen;

static int on_rec(void *ctx, const unsigned char *p, size_t len)
{
    seen *s = ctx;
    if (s->n < 64) {
        s->lens[s->n] = len;
        s->first[s->n] = p[0];
    }
    s->n++;
    return 0;
}

static void test_roundtrip(void **state)
{
    (void)state;
    rng = (uint64_t)time(NULL);
    printf("seed %llu\n", (unsigned long long)rng);
    const char *dir = tmpdir();
    tsdb__wal *w;
    assert_int_equal(tsdb__wal_open(dir, 1, 256 * 1024, &w, NULL), TSDB_OK);
    unsigned char *buf = malloc(200000);
    size_t n = 40;
    for (size_t i = 0; i < n; i++) {
        size_t len = rec_len(i);
        rec_fill(buf, len, i, i % 2);
        assert_int_equal(tsdb__wal_log(w, buf, len, NULL), TSDB_OK);
        if (i % 5 == 0)
            assert_int_equal(tsdb__wal_flush(w, i % 10 == 0, NULL), TSDB_OK);
    }
    assert_true(tsdb__wal_segment(w) > 1); /* 256 KiB segments rolled over */
    tsdb__wal_close(w);
    seen s = {0};
    uint32_t next;
    assert_int_equal(tsdb__wal_replay(dir, 1, on_rec, &s, &next, NULL), TSDB_OK);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s.lens[i], rec_len(i));
        assert_int_equal(s.first[i], (unsigned char)i);
    }
    /* A checkpoint supersedes the segments up to its number. */
    tsdb__wal_ckpt *c;
    assert_int_equal(tsdb__wal_ckpt_begin(dir, next - 1, &c, NULL), TSDB_OK);
    rec_fill(buf, 10, 200, 1);
    assert_int_equal(tsdb__wal_ckpt_log(c, buf, 10, NULL), TSDB_OK);
    assert_int_equal(tsdb__wal_ckpt_commit(c, NULL), TSDB_OK);
    assert_int_equal(tsdb__wal_open(dir, next, 0, &w, NULL), TSDB_OK);
    rec_fill(buf, 20, 201, 1);
    assert_int_equal(tsdb__wal_log(w, buf, 20, NULL), TSDB_OK);
    tsdb__wal_close(w);
    memset(&s, 0, sizeof(s));
    assert_int_equal(tsdb__wal_replay(dir, 1, on_rec, &s, &next, NULL), TSDB_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first[0], 200);
    assert_int_equal(s.first[1], 201);
    free(buf);
    tsdb__os_remove_all(dir, NULL);
}

static void test_torn_segment(void **state)
{
    (void)state;
    /* Build one segment image with records of mixed sizes, note each record's end. */
    const char *dir = tmpdir();
    tsdb__wal *w;
    assert_int_equal(tsdb__wal_open(dir, 1, 0, &w, NULL), TSDB_OK);
    unsigned char *buf = malloc(200000);
    size_t n = 12;
    for (size_t i = 0; i < n; i++) {
        size_t len = rec_len(i) > 40000 ? 40000 : rec_len(i);
        rec_fill(buf, len, i, 0);
        assert_int_equal(tsdb__wal_log(w, buf, len, NULL), TSDB_OK);
    }
    tsdb__wal_close(w);
    char path[128];
    snprintf(path, sizeof(path), "%s/00000001", dir);
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file(path, 1 << 24, &img, NULL), TSDB_OK);
    size_t good;
    seen s = {0};
    assert_int_equal(tsdb__wal_scan(img.p, img.len, on_rec, &s, &good), TSDB_OK);
    assert_int_equal(s.n, n);
    assert_int_equal(good, img.len);
    /* Record ends from scanning prefixes. */
    size_t ends[16], ne = 0, last = 0;
    for (size_t cut = 0; cut <= img.len; cut++) {
        seen t = {0};
        tsdb__wal_scan(img.p, cut, on_rec, &t, &good);
        if (t.n > ne) {
            assert_int_equal(t.n, ne + 1);
            ends[ne++] = cut;
        }
        assert_true(good <= cut);
        assert_true(good >= last || t.n == ne);
        last = good;
    }
    assert_int_equal(ne, n);
    /* Every cut inside the last three records delivers exactly the complete prefix, and replay
     * truncates the file at the last good record. */
    for (size_t cut = ends[n - 4]; cut <= img.len; cut += 1 + (cut % 97 == 0 ? 0 : 13)) {
        int fd;
        assert_int_equal(tsdb__os_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd, NULL), 0);
        assert_int_equal(tsdb__os_write(fd, img.p, cut, NULL), TSDB_OK);
        tsdb__os_close(fd);
        size_t expect = 0;
        while (expect < n && ends[expect] <= cut)
            expect++;
        seen t = {0};
        uint32_t next;
        assert_int_equal(tsdb__wal_replay(dir, 1, on_rec, &t, &next, NULL), TSDB_OK);
        assert_int_equal(t.n, expect);
        uint64_t size;
        assert_int_equal(tsdb__os_path_size(path, &size), TSDB_OK);
        assert_int_equal(size, expect ? ends[expect - 1] : 0);
    }
    /* A flipped payload byte fails the CRC: records before it survive. */
    img.p[ends[5] + 20] ^= 0x40;
    seen t = {0};
    assert_int_equal(tsdb__wal_scan(img.p, img.len, on_rec, &t, &good), TSDB_ECORRUPT);
    assert_int_equal(t.n, 6);
    assert_int_equal(good, ends[5]);
    tsdb_buf_fini(&img);
    free(buf);
    tsdb__os_remove_all(dir, NULL);
}

/* The v1 WAL segment in tests/golden/tsdb keeps decoding to the same records: SERIES
 * {__name__="up", job="node"} as id 3, 100 samples t = 15 s * i, v = i % 2, one tombstone. */
typedef struct golden {
    int n[5];
} golden;

static int on_golden(void *ctx, const unsigned char *p, size_t len)
{
    golden *g = ctx;
    int type = tsdb__rec_type(p, len);
    assert_true(type > 0 && type < 5);
    g->n[type]++;
    if (type == TSDB__REC_SERIES) {
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        tsdb__rec_series *v = NULL;
        size_t n = 0, cap = 0;
        assert_int_equal(tsdb__rec_series_decode(p, len, &a, &v, &n, &cap), TSDB_OK);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].id, 3);
        assert_true(tsdb_str_eq(tsdb_labels_get(v[0].labels, TSDB_STR("job")), TSDB_STR("node")));
        free(v);
        tsdb_arena_fini(&a);
    } else if (type == TSDB__REC_SAMPLES) {
        tsdb__rec_sample *v = NULL;
        size_t n = 0, cap = 0;
        assert_int_equal(tsdb__rec_samples_decode(p, len, &v, &n, &cap), TSDB_OK);
        assert_int_equal(n, 100);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(v[i].id, 3);
            assert_int_equal(v[i].t, (int64_t)i * 15000);
            assert_true(v[i].v == (double)(i % 2));
        }
        free(v);
    } else if (type == TSDB__REC_TOMBSTONES) {
        tsdb__rec_tomb *v = NULL;
        size_t n = 0, cap = 0;
        assert_int_equal(tsdb__rec_tombs_decode(p, len, &v, &n, &cap), TSDB_OK);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].mint, 15000);
        assert_int_equal(v[0].maxt, 30000);
        free(v);
    }
    return 0;
}

static void test_golden_v1(void **state)
{
    (void)state;
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file("tests/golden/tsdb/v1-wal-segment", 1 << 20, &img, NULL),
                     TSDB_OK);
    golden g = {{0}};
    size_t good;
    assert_int_equal(tsdb__wal_scan(img.p, img.len, on_golden, &g, &good), TSDB_OK);
    assert_int_equal(good, img.len);
    assert_int_equal(g.n[TSDB__REC_SERIES], 1);
    assert_int_equal(g.n[TSDB__REC_SAMPLES], 1);
    assert_int_equal(g.n[TSDB__REC_TOMBSTONES], 1);
    tsdb_buf_fini(&img);
}

/* ---- Through the database ---------------------------------------------------------------------
 */

static tsdb *db_open(const char *dir)
{
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 0;
    o.index_map_bytes = 64 << 20;
    tsdb *db = NULL;
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    return db;
}

static void append_batch(tsdb *db, int b)
{
    tsdb_label l[2][2] = {{{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("k"), TSDB_STR("a")}},
                          {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("k"), TSDB_STR("b")}}};
    tsdb_sample s[2][3];
    for (int i = 0; i < 3; i++) {
        s[0][i] = (tsdb_sample){b * 10 + i, b};
        s[1][i] = (tsdb_sample){b * 10 + i, -b};
    }
    tsdb_batch_series bs[2] = {{{l[0], 2}, s[0], 3}, {{l[1], 2}, s[1], 3}};
    tsdb_batch batch = {bs, 2};
    tsdb_append_stats st;
    assert_int_equal(tsdb_append(db, &batch, &st, NULL), TSDB_OK);
    assert_int_equal(st.accepted, 6);
}

static size_t count_samples(tsdb *db)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), TSDB_STR("m"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    tsdb_querier *q;
    assert_int_equal(tsdb_querier_open(db, INT64_MIN, INT64_MAX, &q, NULL), TSDB_OK);
    tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, ms, 1, &set, NULL), TSDB_OK);
    tsdb_labels l;
    tsdb_iter *it;
    size_t n = 0;
    while (tsdb_series_next(set, &l, &it) > 0) {
        tsdb_sample s;
        int64_t prev = INT64_MIN;
        while (tsdb_iter_next(it, &s) > 0) {
            assert_true(s.t > prev);
            assert_true(s.v == (double)(s.t / 10) || s.v == -(double)(s.t / 10));
            prev = s.t;
            n++;
        }
    }
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
    return n;
}

static void test_torn_db(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char copy[128], seg[160], cmd[512];
    snprintf(copy, sizeof(copy), "%s.orig", dir);
    tsdb *db = db_open(dir);
    int nb = 8;
    for (int b = 1; b <= nb; b++)
        append_batch(db, b);
    tsdb_close(db);
    /* The series were created in batch 1, so later batches are one SAMPLES record each. */
    snprintf(seg, sizeof(seg), "%s/wal/00000001", dir);
    uint64_t full;
    assert_int_equal(tsdb__os_path_size(seg, &full), TSDB_OK);
    snprintf(cmd, sizeof(cmd), "cp -r %s %s", dir, copy);
    assert_int_equal(system(cmd), 0);
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file(seg, 1 << 20, &img, NULL), TSDB_OK);
    size_t rec_size = 0;
    /* Size of one SAMPLES batch record: the file grows by it per batch. */
    {
        size_t good;
        seen s = {0};
        tsdb__wal_scan(img.p, img.len, on_rec, &s, &good);
        assert_int_equal(s.n, 1 + nb);
        rec_size = s.lens[s.n - 1] + TSDB__WAL_HDR;
    }
    size_t prev_batches = 0;
    for (uint64_t cut = full - 2 * rec_size; cut <= full; cut++) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -r %s %s", dir, copy, dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(truncate(seg, (off_t)cut), 0);
        db = db_open(dir);
        size_t n = count_samples(db);
        size_t complete = nb - (cut < full) - (cut < full - rec_size);
        assert_int_equal(n, complete * 6);
        assert_true(complete >= prev_batches);
        prev_batches = complete;
        /* The database keeps working after the repair. */
        append_batch(db, 100);
        tsdb_close(db);
        db = db_open(dir);
        assert_int_equal(count_samples(db), (complete + 1) * 6);
        tsdb_close(db);
    }
    tsdb_buf_fini(&img);
    tsdb__os_remove_all(dir, NULL);
    tsdb__os_remove_all(copy, NULL);
}

/* A cut in two steps: records logged between _begin and _finish land in the next segment, the
 * ended segment is fdatasynced by _finish (whose failure is reported once and closes it), and
 * replay sees every record in order. A segment-full cut finishes a pending one first. */
static void test_cut_two_steps(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    tsdb__wal *w;
    assert_int_equal(tsdb__wal_open(dir, 1, 256 * 1024, &w, NULL), TSDB_OK);
    unsigned char buf[100];
    size_t n = 0;
    for (int round = 0; round < 3; round++) {
        rec_fill(buf, sizeof buf, n, 1);
        assert_int_equal(tsdb__wal_log(w, buf, sizeof buf, NULL), TSDB_OK);
        n++;
        uint32_t before = tsdb__wal_segment(w), closed = 0;
        assert_int_equal(tsdb__wal_cut_begin(w, &closed, NULL), TSDB_OK);
        assert_int_equal(closed, before);
        assert_int_equal(tsdb__wal_segment(w), before + 1);
        rec_fill(buf, sizeof buf, n, 1);
        assert_int_equal(tsdb__wal_log(w, buf, sizeof buf, NULL), TSDB_OK);
        assert_int_equal(tsdb__wal_flush(w, 0, NULL), TSDB_OK);
        n++;
        uint64_t syncs = tsdb__os_calls(TSDB_OS_FSYNC);
        if (round == 1) {
            tsdb__os_fault_arm(TSDB_OS_FSYNC, 1, 0, 0); /* EIO */
            assert_int_equal(tsdb__wal_cut_finish(w, NULL), TSDB_EIO);
            tsdb__os_fault_clear();
        } else {
            assert_int_equal(tsdb__wal_cut_finish(w, NULL), TSDB_OK);
        }
        assert_int_equal(tsdb__os_calls(TSDB_OS_FSYNC), syncs + 1);
        /* Nothing is pending any more. */
        assert_int_equal(tsdb__wal_cut_finish(w, NULL), TSDB_OK);
        assert_int_equal(tsdb__os_calls(TSDB_OS_FSYNC), syncs + 1);
    }
    /* A pending cut, then segments filled by big records: _begin inside tsdb__wal_log finishes
     * the pending one, and a later _finish finds nothing to do. */
    uint32_t closed;
    assert_int_equal(tsdb__wal_cut_begin(w, &closed, NULL), TSDB_OK);
    static unsigned char big[200000];
    for (int i = 0; i < 3; i++) {
        rec_fill(big, sizeof big, n, 0);
        assert_int_equal(tsdb__wal_log(w, big, sizeof big, NULL), TSDB_OK);
        n++;
    }
    uint64_t syncs = tsdb__os_calls(TSDB_OS_FSYNC);
    assert_int_equal(tsdb__wal_cut_finish(w, NULL), TSDB_OK);
    assert_int_equal(tsdb__os_calls(TSDB_OS_FSYNC), syncs);
    tsdb__wal_close(w);
    seen s = {0};
    uint32_t next;
    assert_int_equal(tsdb__wal_replay(dir, 1, on_rec, &s, &next, NULL), TSDB_OK);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s.first[i], (unsigned char)i);
    tsdb__os_remove_all(dir, NULL);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_cut_two_steps),
        cmocka_unit_test(test_torn_segment), cmocka_unit_test(test_golden_v1),
        cmocka_unit_test(test_torn_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
