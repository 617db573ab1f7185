/* Unit tests for tsdb/block.c: a written block reads back chunk for chunk; every flipped byte
 * is caught (at open for header, tables and footer; at first read for chunk bytes); every
 * truncation is refused at open; a database with a damaged block still opens without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsdb/block.h"
#include "tsdb/chunk.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

static char dirbuf[64];

static const char *tmpdir(void)
{
    snprintf(dirbuf, sizeof(dirbuf), "/tmp/cairn-test-block-XXXXXX");
    assert_non_null(mkdtemp(dirbuf));
    return dirbuf;
}

/* Writes a block of n_series series with 3 chunks of 50 samples each. */
static void write_block_ex(const char *path, size_t n_series, int compress)
{
    tsdb__block_writer *w;
    assert_int_equal(tsdb__block_writer_begin(path, 0, 15000, 0, &w, NULL), TSDB_OK);
    tsdb__block_writer_compress(w, compress);
    for (size_t s = 0; s < n_series; s++) {
        tsdb__chunk_ref refs[3];
        tsdb_chunk_app app[3];
        for (int c = 0; c < 3; c++) {
            tsdb_chunk_app_init(&app[c]);
            for (int i = 0; i < 50; i++)
                tsdb_chunk_app_add(&app[c], c * 5000 + i * 100,
                                   compress ? (double)((i * 7919) % 13) * 0.1
                                            : (double)(s * 1000 + c * 50 + i));
            size_t len;
            const unsigned char *p = tsdb_chunk_app_bytes(&app[c], &len);
            refs[c] = (tsdb__chunk_ref){c * 5000, c * 5000 + 4900, p, len};
        }
        assert_int_equal(tsdb__block_writer_add(w, 10 + s * 3, refs, 3, NULL), TSDB_OK);
        for (int c = 0; c < 3; c++)
            tsdb_chunk_app_fini(&app[c]);
    }
    assert_int_equal(tsdb__block_writer_commit(w, NULL), TSDB_OK);
}

static void write_block(const char *path, size_t n_series)
{
    write_block_ex(path, n_series, 0);
}

/* Reads every chunk of every series; returns 0 or the first error. */
static int read_all(tsdb__block *b, size_t *n_samples)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    size_t total = 0;
    int rc = TSDB_OK;
    const tsdb__block_meta *m = tsdb__block_meta_get(b);
    for (size_t i = 0; i < m->n_series && rc == TSDB_OK; i++) {
        uint64_t id;
        uint32_t f, c;
        tsdb__block_series_at(b, i, &id, &f, &c);
        tsdb__chunk_ref *r;
        size_t n;
        rc = tsdb__block_series(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL);
        for (size_t k = 0; rc == TSDB_OK && k < n; k++) {
            tsdb_chunk_it it;
            tsdb_sample s;
            rc = tsdb_chunk_it_init(&it, r[k].p, r[k].len);
            int x;
            while (rc == TSDB_OK && (x = tsdb_chunk_it_next(&it, &s)) > 0)
                total++;
        }
    }
    tsdb_arena_fini(&a);
    *n_samples = total;
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/0-15000-L0-1.blk", dir);
    write_block(path, 20);
    tsdb__block *b;
    assert_int_equal(tsdb__block_open(path, &b, NULL), TSDB_OK);
    const tsdb__block_meta *m = tsdb__block_meta_get(b);
    assert_int_equal(m->n_series, 20);
    assert_int_equal(m->n_chunks, 60);
    assert_int_equal(m->n_samples, 3000);
    assert_int_equal(tsdb__block_seq(b), 1);
    size_t n;
    assert_int_equal(read_all(b, &n), TSDB_OK);
    assert_int_equal(n, 3000);
    assert_int_equal(tsdb__block_verify(b, NULL), TSDB_OK);
    /* Range filter and missing series. */
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__chunk_ref *r;
    assert_int_equal(tsdb__block_series(b, 13, 5000, 6000, &a, &r, &n, NULL), TSDB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].mint, 5000);
    assert_int_equal(tsdb__block_series(b, 11, INT64_MIN, INT64_MAX, &a, &r, &n, NULL), TSDB_OK);
    assert_int_equal(n, 0);
    assert_true(tsdb__block_has_series(b, 10));
    assert_false(tsdb__block_has_series(b, 12));
    /* Tombstones persist next to the block. */
    uint64_t ids[2] = {10, 13};
    assert_int_equal(tsdb__block_tomb_add(b, ids, 2, 100, 200, NULL), TSDB_OK);
    tsdb__block_unref(b);
    assert_int_equal(tsdb__block_open(path, &b, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_tomb_count(b), 2);
    int64_t *tr;
    assert_int_equal(tsdb__block_tomb_get(b, 13, &a, &tr), 1);
    assert_int_equal(tr[0], 100);
    assert_int_equal(tr[1], 200);
    tsdb__block_unref(b);
    tsdb_arena_fini(&a);
    tsdb__os_remove_all(dir, NULL);
}

/* Sum of all samples' values, to compare a compressed block with a plain one. */
static double value_sum(tsdb__block *b)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    double sum = 0;
    const tsdb__block_meta *m = tsdb__block_meta_get(b);
    for (size_t i = 0; i < m->n_series; i++) {
        uint64_t id;
        uint32_t f, c;
        tsdb__block_series_at(b, i, &id, &f, &c);
        tsdb__chunk_ref *r;
        size_t n;
        assert_int_equal(tsdb__block_series(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL),
                         TSDB_OK);
        assert_int_equal(n, c);
        for (size_t k = 0; k < n; k++) {
            tsdb_chunk_it it;
            tsdb_sample s;
            assert_int_equal(tsdb_chunk_it_init(&it, r[k].p, r[k].len), TSDB_OK);
            while (tsdb_chunk_it_next(&it, &s) > 0) {
                assert_true(s.t >= r[k].mint && s.t <= r[k].maxt);
                sum += s.v * (double)(id % 7 + 1);
            }
        }
    }
    tsdb_arena_fini(&a);
    return sum;
}

static void test_compressed_runs(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char plain[128], packed[128];
    snprintf(plain, sizeof(plain), "%s/a.blk", dir);
    snprintf(packed, sizeof(packed), "%s/b.blk", dir);
    /* Same chunks twice: once plain, once as zstd runs (values above 2^53 that are no integers:
     * DENSE cannot hold them). */
    tsdb__block_writer *w1, *w2;
    assert_int_equal(tsdb__block_writer_begin(plain, 0, 15000, 0, &w1, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_writer_begin(packed, 0, 15000, 0, &w2, NULL), TSDB_OK);
    tsdb__block_writer_compress(w2, 1);
    for (uint64_t id = 1; id <= 30; id++) {
        tsdb__chunk_ref refs[3];
        tsdb_chunk_app app[3];
        for (int c = 0; c < 3; c++) {
            tsdb_chunk_app_init(&app[c]);
            for (int i = 0; i < 120; i++)
                tsdb_chunk_app_add(&app[c], c * 5000 + i * 40,
                                   (double)((i * 7) % 5 + 1) * 1e20 / 3.0);
            size_t len;
            const unsigned char *p = tsdb_chunk_app_bytes(&app[c], &len);
            refs[c] = (tsdb__chunk_ref){c * 5000, c * 5000 + 119 * 40, p, len};
        }
        /* Short series stay plain even in the compressed block. */
        size_t n = id % 10 == 0 ? 1 : 3;
        assert_int_equal(tsdb__block_writer_add(w1, id, refs, n, NULL), TSDB_OK);
        assert_int_equal(tsdb__block_writer_add(w2, id, refs, n, NULL), TSDB_OK);
        for (int c = 0; c < 3; c++)
            tsdb_chunk_app_fini(&app[c]);
    }
    assert_int_equal(tsdb__block_writer_commit(w1, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_writer_commit(w2, NULL), TSDB_OK);
    tsdb__block *b1, *b2;
    assert_int_equal(tsdb__block_open(plain, &b1, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_open(packed, &b2, NULL), TSDB_OK);
    assert_true(tsdb__block_bytes(b2) < tsdb__block_bytes(b1) * 3 / 4);
    assert_int_equal(tsdb__block_meta_get(b2)->n_samples, tsdb__block_meta_get(b1)->n_samples);
    assert_true(value_sum(b1) == value_sum(b2));
    assert_int_equal(tsdb__block_verify(b2, NULL), TSDB_OK);
    tsdb__chunk_ref c;
    assert_int_equal(tsdb__block_chunk(b2, 0, &c, NULL), TSDB_EINVAL);
    /* Every flipped byte of the compressed image is caught at open or read. */
    size_t len = tsdb__block_bytes(b2);
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file(packed, 1 << 20, &img, NULL), TSDB_OK);
    unsigned char *copy = malloc(len);
    for (size_t i = 0; i < len; i += 3) {
        memcpy(copy, img.p, len);
        copy[i] ^= 0x10;
        tsdb__block *b;
        int rc = tsdb__block_open_mem(copy, len, &b, NULL);
        if (rc == TSDB_OK) {
            rc = tsdb__block_verify(b, NULL);
            tsdb__block_unref(b);
        }
        assert_int_equal(rc, TSDB_ECORRUPT);
    }
    free(copy);
    tsdb_buf_fini(&img);
    tsdb__block_unref(b1);
    tsdb__block_unref(b2);
    tsdb__os_remove_all(dir, NULL);
}

/* Appends to refs/app the head chunks of samples s[0..n), cut every per samples. */
static size_t head_chunks(const tsdb_sample *s, size_t n, size_t per, tsdb_chunk_app *app,
                          tsdb__chunk_ref *refs)
{
    size_t nc = 0;
    for (size_t i = 0; i < n; i += per) {
        tsdb_chunk_app_init(&app[nc]);
        size_t end = i + per < n ? i + per : n;
        for (size_t j = i; j < end; j++)
            tsdb_chunk_app_add(&app[nc], s[j].t, s[j].v);
        size_t len;
        const unsigned char *p = tsdb_chunk_app_bytes(&app[nc], &len);
        refs[nc] = (tsdb__chunk_ref){s[i].t, s[end - 1].t, p, len};
        nc++;
    }
    return nc;
}

/* The packing writer joins consecutive head chunks into DENSE chunks of up to 480 samples,
 * keeps a chunk DENSE cannot hold (a staleness marker) on its own between two joined runs,
 * does not join overlapping chunks, and every sample reads back bit for bit, by range too. */
static void test_dense_groups(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/g.blk", dir);
    static tsdb_sample s[3][1500];
    for (size_t i = 0; i < 1500; i++) {
        s[0][i] = (tsdb_sample){(int64_t)i * 15000 + (int64_t)(i * 7 % 5) - 2,
                                round((double)i * 14.37) * 0.01};
        s[1][i] = (tsdb_sample){(int64_t)i * 15000, 4096.0 * (double)(1000 + i % 17)};
        s[2][i] = s[1][i];
    }
    uint64_t stale = TSDB_STALE_NAN_BITS;
    memcpy(&s[1][600].v, &stale, 8); /* chunk 5 of series 2 */
    tsdb__block_writer *w;
    assert_int_equal(tsdb__block_writer_begin(path, 0, 1500 * 15000, 1, &w, NULL), TSDB_OK);
    tsdb__block_writer_compress(w, 1);
    tsdb_chunk_app app[16];
    tsdb__chunk_ref refs[16];
    /* Series 1: 1500 samples in head chunks of 120 -> DENSE chunks of 480, 480, 480 and 60. */
    size_t nc = head_chunks(s[0], 1500, 120, app, refs);
    assert_int_equal(tsdb__block_writer_add(w, 1, refs, nc, NULL), TSDB_OK);
    for (size_t c = 0; c < nc; c++)
        tsdb_chunk_app_fini(&app[c]);
    /* Series 2: chunks 0-3 join, chunk 4 is alone, chunk 5 stays XOR, chunks 6-7 join. */
    nc = head_chunks(s[1], 960, 120, app, refs);
    assert_int_equal(tsdb__block_writer_add(w, 2, refs, nc, NULL), TSDB_OK);
    for (size_t c = 0; c < nc; c++)
        tsdb_chunk_app_fini(&app[c]);
    /* Series 3: two chunks over the same time are not joined. */
    nc = head_chunks(s[2], 240, 120, app, refs);
    refs[1] = refs[0];
    assert_int_equal(tsdb__block_writer_add(w, 3, refs, 2, NULL), TSDB_OK);
    for (size_t c = 0; c < nc; c++)
        tsdb_chunk_app_fini(&app[c]);
    assert_int_equal(tsdb__block_writer_commit(w, NULL), TSDB_OK);

    tsdb__block *b;
    assert_int_equal(tsdb__block_open(path, &b, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_verify(b, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_meta_get(b)->n_samples, 1500 + 960 + 240);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__bchunk *r;
    size_t n;
    static const size_t want_n[3] = {4, 4, 2};
    static const size_t want_counts[3][4] = {
        {480, 480, 480, 60}, {480, 120, 120, 240}, {120, 120, 0, 0}};
    static tsdb_sample got[1500];
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(tsdb__block_series_raw(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL),
                         TSDB_OK);
        assert_int_equal(n, want_n[id - 1]);
        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
            size_t cnt = tsdb__bchunk_count(&r[k]), m;
            assert_int_equal(cnt, want_counts[id - 1][k]);
            assert_int_equal(r[k].enc, id == 2 && k == 2 ? TSDB__ENC_XOR : TSDB__ENC_DENSE);
            assert_int_equal(tsdb__bchunk_decode(&r[k], got, 1500, &m), TSDB_OK);
            assert_int_equal(m, cnt);
            assert_int_equal(r[k].mint, got[0].t);
            assert_int_equal(r[k].maxt, got[m - 1].t);
            const tsdb_sample *want = id == 3 ? s[2] : s[id - 1] + at;
            assert_memory_equal(got, want, m * sizeof(*got));
            at += m;
        }
    }
    /* A range inside the third DENSE chunk of series 1 (samples 960-1439) selects it only. */
    assert_int_equal(tsdb__block_series_raw(b, 1, 1000 * 15000, 1001 * 15000, &a, &r, &n, NULL),
                     TSDB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tsdb__bchunk_count(&r[0]), 480);
    assert_int_equal(r[0].mint, s[0][960].t);
    tsdb_arena_fini(&a);
    tsdb__block_unref(b);
    tsdb__os_remove_all(dir, NULL);
}

/* Rewrites the CRC of the chunk record at off after an edit. */
static void fix_record_crc(unsigned char *img, uint64_t off)
{
    uint32_t len = tsdb_get_u32le(img + off);
    tsdb_put_u32le(img + off + 5 + len, tsdb_crc32c(0, img + off + 4, (size_t)len + 1));
}

/* Series scraped together share timestamps: the second series' DENSE chunk stores only its
 * values and a reference, reads back bit for bit, and a reference to a later chunk, to an XOR
 * chunk or to a chunk of another count is refused. */
static void test_shared_timestamps(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/s.blk", dir);
    static tsdb_sample s[4][240];
    for (size_t i = 0; i < 240; i++) {
        int64_t t = (int64_t)i * 15000 + (int64_t)(i * 7 % 5) - 2 + 10;
        s[0][i] = (tsdb_sample){t, (double)(i * 13 % 7)};
        s[1][i] = (tsdb_sample){t, round((double)i * 14.37) * 0.01};
        s[2][i] = (tsdb_sample){t, (double)(i % 2 + 1) * 1e20 / 3.0}; /* XOR: above 2^53 */
        s[3][i] = (tsdb_sample){t + (i == 100), 4096.0 * (double)(i % 5)};
    }
    tsdb__block_writer *w;
    assert_int_equal(tsdb__block_writer_begin(path, 0, 240 * 15000, 0, &w, NULL), TSDB_OK);
    tsdb__block_writer_compress(w, 1);
    tsdb_chunk_app app[2];
    tsdb__chunk_ref refs[2];
    for (uint64_t id = 1; id <= 4; id++) {
        size_t nc = head_chunks(s[id - 1], 240, 120, app, refs);
        assert_int_equal(tsdb__block_writer_add(w, id, refs, nc, NULL), TSDB_OK);
        for (size_t c = 0; c < nc; c++)
            tsdb_chunk_app_fini(&app[c]);
    }
    assert_int_equal(tsdb__block_writer_commit(w, NULL), TSDB_OK);
    tsdb__block *b;
    assert_int_equal(tsdb__block_open(path, &b, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_verify(b, NULL), TSDB_OK);
    /* Chunks: 0 series 1 (DENSE, 240), 1 series 2 (shares 0's timestamps), 2-3 series 3 (XOR),
     * 4 series 4 (its own timestamps: one differs). */
    assert_int_equal(tsdb__block_meta_get(b)->n_chunks, 5);
    tsdb__chunk_ref c;
    assert_int_equal(tsdb__block_chunk(b, 0, &c, NULL), TSDB_OK);
    assert_int_equal(tsdb__block_chunk(b, 1, &c, NULL), TSDB_EINVAL);
    assert_int_equal(tsdb__block_chunk(b, 4, &c, NULL), TSDB_OK);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    static tsdb_sample got[240];
    for (uint64_t id = 1; id <= 4; id++) {
        tsdb__bchunk *r;
        size_t n, at = 0;
        assert_int_equal(tsdb__block_series_raw(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL),
                         TSDB_OK);
        for (size_t k = 0; k < n; k++) {
            size_t m;
            assert_int_equal(tsdb__bchunk_decode(&r[k], got, 240, &m), TSDB_OK);
            assert_memory_equal(got, s[id - 1] + at, m * sizeof(*got));
            at += m;
        }
        assert_int_equal(at, 240);
    }
    tsdb__block_unref(b);

    /* Bad references, each with a valid record CRC. */
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file(path, 1 << 20, &img, NULL), TSDB_OK);
    uint64_t meta_off = tsdb_get_u64le(img.p + img.len - 48 + 8);
    uint64_t off1 = tsdb_get_u64le(img.p + meta_off + 24 + 16);
    assert_int_equal(img.p[off1 + 4], 0x82);
    assert_int_equal(tsdb_get_u32le(img.p + off1 + 5), 0);
    static const uint32_t bad_ref[] = {1, 2, 4, 0xffffffffu};
    for (size_t t = 0; t < 5; t++) {
        unsigned char *copy = malloc(img.len);
        memcpy(copy, img.p, img.len);
        if (t < 4)
            tsdb_put_u32le(copy + off1 + 5, bad_ref[t]); /* itself, XOR, later, none */
        else
            copy[off1 + 10] ^= 1; /* a count that differs from chunk 0's */
        fix_record_crc(copy, off1);
        tsdb__block *x;
        assert_int_equal(tsdb__block_open_mem(copy, img.len, &x, NULL), TSDB_OK);
        tsdb__bchunk *r;
        size_t n;
        assert_int_equal(tsdb__block_series_raw(x, 2, INT64_MIN, INT64_MAX, &a, &r, &n, NULL),
                         TSDB_ECORRUPT);
        assert_int_equal(tsdb__block_verify(x, NULL), TSDB_ECORRUPT);
        tsdb__block_unref(x);
        free(copy);
    }
    tsdb_buf_fini(&img);
    tsdb_arena_fini(&a);
    tsdb__os_remove_all(dir, NULL);
}

/* Reads all samples of series id through tsdb__block_series (XOR for every stored encoding). */
static size_t golden_series(tsdb__block *b, uint64_t id, tsdb_sample *out, size_t cap)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__chunk_ref *r;
    size_t n, k = 0;
    assert_int_equal(tsdb__block_series(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL), TSDB_OK);
    for (size_t c = 0; c < n; c++) {
        tsdb_chunk_it it;
        tsdb_sample x;
        assert_int_equal(tsdb_chunk_it_init(&it, r[c].p, r[c].len), TSDB_OK);
        while (tsdb_chunk_it_next(&it, &x) > 0) {
            assert_true(k < cap);
            assert_true(x.t >= r[c].mint && x.t <= r[c].maxt);
            out[k++] = x;
        }
    }
    tsdb_arena_fini(&a);
    return k;
}

/* The v2 block in tests/golden/tsdb (written by format version 2) keeps opening with the same
 * content, one series per stored encoding: series 3 = 200 samples t = i s, v = i / 2, written
 * as two head chunks and joined into one DENSE chunk; series 5 = 240 samples v = (i * 7 % 5 +
 * 1) * 1e20 / 3 (above 2^53, no integers: not DENSE) as XOR chunks in a zstd run; series 9 =
 * 5 staleness markers in a plain XOR chunk. */
static void test_golden_v2(void **state)
{
    (void)state;
    tsdb__block *b;
    assert_int_equal(tsdb__block_open("tests/golden/tsdb/v2-block.blk", &b, NULL), TSDB_OK);
    const tsdb__block_meta *m = tsdb__block_meta_get(b);
    assert_int_equal(m->mint, 0);
    assert_int_equal(m->maxt, 240000);
    assert_int_equal(m->level, 1);
    assert_int_equal(m->n_series, 3);
    assert_int_equal(m->n_chunks, 4);
    assert_int_equal(m->n_samples, 445);
    assert_int_equal(tsdb__block_verify(b, NULL), TSDB_OK);
    static tsdb_sample s[300];
    assert_int_equal(golden_series(b, 3, s, 300), 200);
    for (size_t i = 0; i < 200; i++) {
        assert_int_equal(s[i].t, (int64_t)i * 1000);
        assert_true(s[i].v == (double)i * 0.5);
    }
    assert_int_equal(golden_series(b, 5, s, 300), 240);
    for (size_t i = 0; i < 240; i++) {
        assert_int_equal(s[i].t, (int64_t)i * 1000);
        assert_true(s[i].v == (double)((i * 7) % 5 + 1) * 1e20 / 3.0);
    }
    assert_int_equal(golden_series(b, 9, s, 300), 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(tsdb_is_stale_nan(s[i].v));
    /* Positional access: DENSE and XOR chunks as stored; run members only by series. */
    tsdb__chunk_ref c;
    assert_int_equal(tsdb__block_chunk(b, 0, &c, NULL), TSDB_OK);
    assert_int_equal(tsdb_chunk_count(c.p, c.len), 200);
    assert_int_equal(tsdb__block_chunk(b, 1, &c, NULL), TSDB_EINVAL);
    assert_int_equal(tsdb__block_chunk(b, 3, &c, NULL), TSDB_OK);
    assert_int_equal(tsdb_chunk_count(c.p, c.len), 5);
    tsdb__block_unref(b);
}

/* The v1 block (an older DENSE layout) is refused with an error that names both versions. */
static void test_golden_v1_refused(void **state)
{
    (void)state;
    tsdb__block *b = NULL;
    tsdb_err e;
    assert_int_equal(tsdb__block_open("tests/golden/tsdb/v1-block.blk", &b, &e), TSDB_ECORRUPT);
    assert_null(b);
    assert_non_null(strstr(e.msg, "format version 1 is not supported"));
    assert_non_null(strstr(e.msg, "version 2"));
}

static void test_corruption(void **state)
{
    (void)state;
    const char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/0-15000-L0-1.blk", dir);
    write_block(path, 4);
    tsdb_buf img;
    tsdb_buf_init(&img);
    assert_int_equal(tsdb__os_read_file(path, 1 << 20, &img, NULL), TSDB_OK);
    unsigned char *copy = malloc(img.len);
    size_t caught_open = 0, caught_read = 0;
    for (size_t i = 0; i < img.len; i++) {
        memcpy(copy, img.p, img.len);
        copy[i] ^= 0x21;
        tsdb__block *b;
        int rc = tsdb__block_open_mem(copy, img.len, &b, NULL);
        if (rc != TSDB_OK) {
            assert_int_equal(rc, TSDB_ECORRUPT);
            caught_open++;
            continue;
        }
        size_t n;
        rc = read_all(b, &n);
        tsdb__block_unref(b);
        /* Bytes outside header/tables/footer are chunk bytes: the chunk CRC catches them. */
        assert_int_equal(rc, TSDB_ECORRUPT);
        caught_read++;
    }
    assert_int_equal(caught_open + caught_read, img.len);
    assert_true(caught_open >= 64 + 48);
    for (size_t len = 0; len < img.len; len++) {
        tsdb__block *b;
        assert_int_equal(tsdb__block_open_mem(img.p, len, &b, NULL), TSDB_ECORRUPT);
    }
    free(copy);

    /* A database with one damaged block opens, leaves it out and serves the rest. */
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.block_ms = 10000;
    o.index_map_bytes = 64 << 20;
    char dbdir[128];
    snprintf(dbdir, sizeof(dbdir), "%s/db", dir);
    o.dir = dbdir;
    tsdb *db;
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    tsdb_label l[1] = {{TSDB_STR("__name__"), TSDB_STR("x")}};
    for (int64_t t = 0; t < 60000; t += 1000) {
        tsdb_sample s = {t, 1};
        tsdb_batch_series bs = {{l, 1}, &s, 1};
        tsdb_batch b = {&bs, 1};
        assert_int_equal(tsdb_append(db, &b, NULL, NULL), TSDB_OK);
    }
    assert_true(tsdb_cut_head(db, NULL) == 1);
    assert_true(tsdb_cut_head(db, NULL) == 1);
    tsdb_stats st;
    tsdb_stats_get(db, &st);
    assert_int_equal(st.n_blocks, 2);
    tsdb_close(db);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t nn;
    char bdir[160], victim[400];
    snprintf(bdir, sizeof(bdir), "%s/blocks", dbdir);
    assert_int_equal(tsdb__os_list_dir(bdir, &a, &names, &nn, NULL), TSDB_OK);
    assert_int_equal(nn, 2);
    snprintf(victim, sizeof(victim), "%s/%s", bdir, names[0]);
    assert_int_equal(truncate(victim, 100), 0);
    assert_int_equal(tsdb_open(&o, &db, NULL), TSDB_OK);
    tsdb_stats_get(db, &st);
    assert_int_equal(st.n_blocks, 1);
    tsdb_close(db);
    tsdb_arena_fini(&a);
    tsdb_buf_fini(&img);
    tsdb__os_remove_all(dir, NULL);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_compressed_runs),
        cmocka_unit_test(test_dense_groups), cmocka_unit_test(test_shared_timestamps),
        cmocka_unit_test(test_golden_v2),    cmocka_unit_test(test_golden_v1_refused),
        cmocka_unit_test(test_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
