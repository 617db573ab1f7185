/* tsdb/block.c -- immutable block files: a writer and a bounds-checked mmap reader.
 *
 * File <mint>-<maxt>-L<level>-<seq>.blk, little-endian throughout:
 *
 *   offset  size  header (64 bytes)
 *        0     8  magic "CAIRNBLK"
 *        8     4  version (2; version 1 stored DENSE chunks in an older layout and is refused
 *                 with an error naming both versions)
 *       12     4  level
 *       16     8  mint (inclusive, ms)
 *       24     8  maxt (exclusive, ms)
 *       32     8  n_series
 *       40     8  n_chunks
 *       48     8  n_samples
 *       56     4  flags (0)
 *       60     4  crc32c of bytes 0..59
 *
 *   chunk region, from 64: chunk records, each
 *           len u32 · encoding u8 · data[len] · crc32c u32 of encoding and data
 *           encoding 1:    data is one XOR chunk (Prometheus' bytes)
 *           encoding 0x81: data is one DENSE chunk (tsdb/chunk_dense.c). The packing writer
 *                          stores each chunk in whichever of XOR and DENSE is smaller, then
 *                          joins runs of consecutive chunks of a series that DENSE can hold
 *                          (at most GROUP_MAX = 480 samples) into one DENSE chunk when that
 *                          is smaller than the run with its records and metas: so a block's
 *                          chunks need not be the head's chunks
 *           encoding 0x82: data is ref u32 · count u16 big endian · the value part of a DENSE
 *                          chunk whose timestamps equal those of chunk meta ref, an earlier
 *                          chunk stored plainly with encoding 0x81 and the same count (series
 *                          scraped together share their timestamps). The reader joins ref's
 *                          bytes up to the end of its timestamp part (tsdb_dense_ts_len) with
 *                          this value part into one DENSE chunk. The writer remembers up to
 *                          TS_SHARE_MAX_BYTES of timestamp parts per block to find matches, and
 *                          stores series holding DENSE chunks plainly (never in a zstd run)
 *           encoding 2:    data is one zstd frame holding a run: every chunk of one series,
 *                          each as len u32 · encoding u8 (1 or 0x81) · bytes, in meta order;
 *                          all the series' metas point at this record. Used when it saves at
 *                          least an eighth (the writer tries it only for series without
 *                          DENSE chunks).
 *
 *   series table at series_off: n_series × 16 bytes, ids strictly ascending
 *           id u64 · first u32 (index of its first chunk meta) · count u32
 *           the series' metas are first .. first+count-1, and series follow each other, so
 *           the firsts run 0, c0, c0+c1, ... and the counts sum to n_chunks
 *
 *   chunk-meta table at meta_off = series_off + 16 n_series: n_chunks × 24 bytes
 *           mint i64 · maxt i64 (both inclusive) · offset u64 of the chunk record
 *
 *   footer (48 bytes) at meta_off + 24 n_chunks = file size - 48
 *        0     8  series_off
 *        8     8  meta_off
 *       16     4  crc32c of the series table
 *       20     4  crc32c of the chunk-meta table
 *       24    16  reserved (0)
 *       40     4  magic "CBFT"
 *       44     4  crc32c of footer bytes 0..43
 *
 * Fixed-width tables allow a binary search straight on the map. Open checks the header, the
 * footer, both table CRCs and the tables' consistency (sizes, id order, chunk ranges, offsets
 * inside the chunk region), so later lookups need only cheap bounds checks. A chunk's own CRC is
 * checked the first time it is read. Nothing casts a struct onto the map.
 *
 * Tombstones live beside the block in <file>.tomb: magic "CTMB" · n u32 · n × (id u64 ·
 * mint i64 · maxt i64) · crc32c u32 of everything before it. Written atomically.
 */
#include "tsdb/block.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "tsdb/chunk.h"
#include "tsdb/chunk_dense.h"
#include "tsdb/os.h"

#define BLOCK_MAGIC        "CAIRNBLK"
#define FOOTER_MAGIC       0x54464243u /* "CBFT" */
#define TOMB_MAGIC         0x424d5443u /* "CTMB" */
#define BLOCK_VERSION      2
#define SERIES_W           16
#define META_W             24
#define ENC_ZSTD_RUN       2
#define ENC_DENSE_TS       0x82 /* DENSE values sharing an earlier DENSE chunk's timestamps */
#define RUN_MIN_BYTES      256  /* shorter series are not worth a zstd frame */
#define RUN_MAX_BYTES      (64u << 20) /* largest decompressed run a reader accepts */
#define ZSTD_LEVEL         3
#define GROUP_MAX          480 /* most samples in one DENSE chunk: 2 h at 15 s, bounding decode per seek */
#define TS_SHARE_MAX_BYTES (16u << 20) /* timestamp parts the writer remembers for sharing */

/* ---- Chunk encodings --------------------------------------------------------------------- */

size_t tsdb__bchunk_count(const tsdb__bchunk *c)
{
    return c->enc == TSDB__ENC_DENSE ? tsdb_dense_count(c->p, c->len)
                                     : tsdb_chunk_count(c->p, c->len);
}

int tsdb__bchunk_decode(const tsdb__bchunk *c, tsdb_sample *out, size_t cap, size_t *n)
{
    int rc = c->enc == TSDB__ENC_DENSE ? tsdb_dense_decode(c->p, c->len, out, cap, n)
                                       : tsdb_chunk_decode_all(c->p, c->len, out, cap, n);
    return rc == TSDB_OK ? TSDB_OK : TSDB_ECORRUPT;
}

/* On-disk encoding byte <-> chunk_ref encoding; -1 for an unknown byte (ENC_DENSE_TS records
 * are read by chunk_at, which turns them into DENSE chunks). */
static int enc_from_disk(unsigned char e)
{
    return e == TSDB_CHUNK_ENC_XOR     ? TSDB__ENC_XOR
           : e == TSDB_CHUNK_ENC_DENSE ? TSDB__ENC_DENSE
                                       : -1;
}

static unsigned char enc_to_disk(uint8_t enc)
{
    return enc == TSDB__ENC_DENSE ? TSDB_CHUNK_ENC_DENSE : TSDB_CHUNK_ENC_XOR;
}

struct tsdb__block {
    char path[4096];          /* immutable; "" for a memory image */
    const unsigned char *map; /* immutable */
    size_t len;
    int fd;
    int mapped;            /* map is ours to unmap */
    tsdb__block_meta meta; /* immutable */
    uint64_t series_off, meta_off;
    uint32_t seq;
    _Atomic int refs;
    _Atomic int deleted;
    _Atomic unsigned char *checked; /* per chunk: CRC verified */
    pthread_mutex_t tomb_lock;      /* guards tombs */
    int64_t *tombs;                 /* triples (id, mint, maxt) sorted by id */
    size_t n_tombs;
};

/* ---- Reader -----------------------------------------------------------------------------------
 */

static int64_t get_i64(const unsigned char *p)
{
    return (int64_t)tsdb_get_u64le(p);
}

static int validate(tsdb__block *b, tsdb_err *err)
{
    const unsigned char *p = b->map;
    size_t len = b->len;
    const char *name = b->path[0] ? b->path : "<memory>";
    if (len < TSDB__BLOCK_HDR + TSDB__BLOCK_FOOTER)
        return TSDB_CORRUPT(err, "block %s: %zu bytes is too short", name, len);
    if (memcmp(p, BLOCK_MAGIC, 8) != 0)
        return TSDB_CORRUPT(err, "block %s: bad magic", name);
    if (tsdb_get_u32le(p + 8) != BLOCK_VERSION)
        return TSDB_CORRUPT(err,
                            "block %s: format version %u is not supported (this build reads "
                            "version %u only; remove the block or read it with an older release)",
                            name, (unsigned)tsdb_get_u32le(p + 8), (unsigned)BLOCK_VERSION);
    if (tsdb_crc32c(0, p, 60) != tsdb_get_u32le(p + 60))
        return TSDB_CORRUPT(err, "block %s: header checksum mismatch", name);
    const unsigned char *f = p + len - TSDB__BLOCK_FOOTER;
    if (tsdb_get_u32le(f + 40) != FOOTER_MAGIC || tsdb_crc32c(0, f, 44) != tsdb_get_u32le(f + 44))
        return TSDB_CORRUPT(err, "block %s: bad footer", name);
    b->meta.level = tsdb_get_u32le(p + 12);
    b->meta.mint = get_i64(p + 16);
    b->meta.maxt = get_i64(p + 24);
    b->meta.n_series = tsdb_get_u64le(p + 32);
    b->meta.n_chunks = tsdb_get_u64le(p + 40);
    b->meta.n_samples = tsdb_get_u64le(p + 48);
    b->series_off = tsdb_get_u64le(f);
    b->meta_off = tsdb_get_u64le(f + 8);
    uint64_t ns = b->meta.n_series, nc = b->meta.n_chunks;
    uint64_t body_end = len - TSDB__BLOCK_FOOTER;
    if (b->meta.mint > b->meta.maxt || ns > len / SERIES_W || nc > len / META_W ||
        b->series_off < TSDB__BLOCK_HDR || b->series_off > body_end ||
        b->meta_off != b->series_off + ns * SERIES_W || b->meta_off > body_end ||
        b->meta_off + nc * META_W != body_end)
        return TSDB_CORRUPT(err, "block %s: inconsistent header and footer", name);
    if (tsdb_crc32c(0, p + b->series_off, ns * SERIES_W) != tsdb_get_u32le(f + 16) ||
        tsdb_crc32c(0, p + b->meta_off, nc * META_W) != tsdb_get_u32le(f + 20))
        return TSDB_CORRUPT(err, "block %s: table checksum mismatch", name);
    uint64_t next_first = 0, prev_id = 0;
    for (uint64_t i = 0; i < ns; i++) {
        const unsigned char *e = p + b->series_off + i * SERIES_W;
        uint64_t id = tsdb_get_u64le(e);
        uint32_t first = tsdb_get_u32le(e + 8), count = tsdb_get_u32le(e + 12);
        if ((i > 0 && id <= prev_id) || first != next_first || count == 0 ||
            (uint64_t)first + count > nc)
            return TSDB_CORRUPT(err, "block %s: bad series table entry %llu", name,
                                (unsigned long long)i);
        next_first = (uint64_t)first + count;
        prev_id = id;
    }
    if (next_first != nc)
        return TSDB_CORRUPT(err, "block %s: series table does not cover the chunks", name);
    for (uint64_t i = 0; i < nc; i++) {
        const unsigned char *e = p + b->meta_off + i * META_W;
        uint64_t off = tsdb_get_u64le(e + 16);
        if (get_i64(e) > get_i64(e + 8) || off < TSDB__BLOCK_HDR || off > b->series_off ||
            b->series_off - off < 9)
            return TSDB_CORRUPT(err, "block %s: bad chunk meta %llu", name, (unsigned long long)i);
    }
    return TSDB_OK;
}

static tsdb__block *block_alloc(void)
{
    tsdb__block *b = xcalloc(1, sizeof(*b));
    b->fd = -1;
    atomic_store(&b->refs, 1);
    pthread_mutex_init(&b->tomb_lock, NULL);
    return b;
}

static void block_free(tsdb__block *b)
{
    if (b->mapped)
        tsdb__os_munmap(b->map, b->len);
    tsdb__os_close(b->fd);
    if (atomic_load(&b->deleted) && b->path[0]) {
        char tomb[4200];
        snprintf(tomb, sizeof(tomb), "%s.tomb", b->path);
        tsdb__os_unlink(b->path, NULL);
        tsdb__os_unlink(tomb, NULL);
    }
    free((void *)b->checked);
    free(b->tombs);
    pthread_mutex_destroy(&b->tomb_lock);
    free(b);
}

static int cmp_tomb(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if ((uint64_t)x[0] != (uint64_t)y[0])
        return (uint64_t)x[0] < (uint64_t)y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static int tomb_load(tsdb__block *b, tsdb_err *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s.tomb", b->path);
    tsdb_buf buf;
    tsdb_buf_init(&buf);
    int rc = tsdb__os_read_file(path, (size_t)1 << 30, &buf, err);
    if (rc == TSDB_ENOTFOUND) {
        tsdb_buf_fini(&buf);
        return TSDB_OK;
    }
    if (rc == TSDB_OK) {
        tsdb_rd r;
        tsdb_rd_init(&r, buf.p, buf.len);
        uint32_t magic = tsdb_rd_u32le(&r), n = tsdb_rd_u32le(&r);
        if (r.err || magic != TOMB_MAGIC || buf.len != 12 + (size_t)n * 24 ||
            tsdb_crc32c(0, buf.p, buf.len - 4) != tsdb_get_u32le(buf.p + buf.len - 4)) {
            rc = TSDB_CORRUPT(err, "tombstones %s are damaged", path);
        } else {
            b->tombs = xmalloc((n ? n : 1) * 3 * sizeof(int64_t));
            for (uint32_t i = 0; i < n; i++) {
                b->tombs[i * 3] = (int64_t)tsdb_rd_u64le(&r);
                b->tombs[i * 3 + 1] = (int64_t)tsdb_rd_u64le(&r);
                b->tombs[i * 3 + 2] = (int64_t)tsdb_rd_u64le(&r);
            }
            b->n_tombs = n;
            qsort(b->tombs, n, 3 * sizeof(int64_t), cmp_tomb);
        }
    }
    tsdb_buf_fini(&buf);
    return rc;
}

static uint32_t seq_from_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return 0;
    const char *p = dot;
    while (p > path && p[-1] >= '0' && p[-1] <= '9')
        p--;
    uint32_t v = 0;
    for (; p < dot; p++)
        v = v * 10 + (uint32_t)(*p - '0');
    return v;
}

int tsdb__block_open(const char *path, tsdb__block **out, tsdb_err *err)
{
    if (strlen(path) >= 4096)
        return tsdb_errf(err, TSDB_EINVAL, -1, "block path too long");
    tsdb__block *b = block_alloc();
    snprintf(b->path, sizeof(b->path), "%s", path);
    b->seq = seq_from_name(path);
    uint64_t size = 0;
    int rc = tsdb__os_open(path, O_RDONLY, 0, &b->fd, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsize(b->fd, &size, err);
    if (rc == TSDB_OK && size < TSDB__BLOCK_HDR + TSDB__BLOCK_FOOTER)
        rc = TSDB_CORRUPT(err, "block %s: %llu bytes is too short", path, (unsigned long long)size);
    if (rc == TSDB_OK) {
        const void *m;
        rc = tsdb__os_mmap_ro(b->fd, (size_t)size, &m, err);
        if (rc == TSDB_OK) {
            b->map = m;
            b->len = (size_t)size;
            b->mapped = 1;
        }
    }
    if (rc == TSDB_OK)
        rc = validate(b, err);
    if (rc == TSDB_OK)
        rc = tomb_load(b, err);
    if (rc) {
        block_free(b);
        return rc;
    }
    b->checked = xcalloc(b->meta.n_chunks ? b->meta.n_chunks : 1, 1);
    *out = b;
    return TSDB_OK;
}

int tsdb__block_open_mem(const void *p, size_t len, tsdb__block **out, tsdb_err *err)
{
    tsdb__block *b = block_alloc();
    b->map = p;
    b->len = len;
    int rc = validate(b, err);
    if (rc) {
        block_free(b);
        return rc;
    }
    b->checked = xcalloc(b->meta.n_chunks ? b->meta.n_chunks : 1, 1);
    *out = b;
    return TSDB_OK;
}

void tsdb__block_ref(tsdb__block *b)
{
    atomic_fetch_add(&b->refs, 1);
}

void tsdb__block_unref(tsdb__block *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        block_free(b);
}

void tsdb__block_mark_deleted(tsdb__block *b)
{
    atomic_store(&b->deleted, 1);
}

const tsdb__block_meta *tsdb__block_meta_get(const tsdb__block *b)
{
    return &b->meta;
}

const char *tsdb__block_path(const tsdb__block *b)
{
    return b->path;
}

uint64_t tsdb__block_bytes(const tsdb__block *b)
{
    return b->len;
}

uint32_t tsdb__block_seq(const tsdb__block *b)
{
    return b->seq;
}

int tsdb__block_series_at(const tsdb__block *b, size_t i, uint64_t *id, uint32_t *first,
                          uint32_t *count)
{
    if (i >= b->meta.n_series)
        return TSDB_EINVAL;
    const unsigned char *e = b->map + b->series_off + i * SERIES_W;
    *id = tsdb_get_u64le(e);
    *first = tsdb_get_u32le(e + 8);
    *count = tsdb_get_u32le(e + 12);
    return TSDB_OK;
}

/* The record of chunk meta k: its encoding byte and data, CRC-checked once. */
static int record_at(tsdb__block *b, uint32_t k, unsigned char *enc_out, const unsigned char **data,
                     uint32_t *len_out, tsdb_err *err)
{
    if (k >= b->meta.n_chunks)
        return tsdb_errf(err, TSDB_EINVAL, -1, "chunk %u out of range", k);
    const unsigned char *e = b->map + b->meta_off + (uint64_t)k * META_W;
    uint64_t off = tsdb_get_u64le(e + 16);
    /* validate() guaranteed off + 9 <= series_off. */
    uint32_t len = tsdb_get_u32le(b->map + off);
    if ((uint64_t)len > b->series_off - off - 9)
        return TSDB_CORRUPT(err, "block %s: chunk %u overruns the chunk region", b->path, k);
    const unsigned char *enc = b->map + off + 4;
    if (*enc == ENC_ZSTD_RUN)
        return tsdb_errf(err, TSDB_EINVAL, -1,
                         "block %s: chunk %u is in a compressed run (read it by series)", b->path,
                         k);
    if (enc_from_disk(*enc) < 0 && *enc != ENC_DENSE_TS)
        return TSDB_CORRUPT(err, "block %s: chunk %u has unknown encoding %u", b->path, k, *enc);
    if (!atomic_load_explicit(&b->checked[k], memory_order_acquire)) {
        if (tsdb_crc32c(0, enc, (size_t)len + 1) != tsdb_get_u32le(enc + 1 + len))
            return TSDB_CORRUPT(err, "block %s: chunk %u checksum mismatch", b->path, k);
        atomic_store_explicit(&b->checked[k], 1, memory_order_release);
    }
    *enc_out = *enc;
    *data = enc + 1;
    *len_out = len;
    return TSDB_OK;
}

/* Chunk meta k as a chunk. A record sharing another chunk's timestamps is joined with them into
 * one DENSE chunk in the arena (TSDB_EINVAL without an arena). */
static int chunk_at(tsdb__block *b, uint32_t k, tsdb_arena *a, tsdb__bchunk *out, tsdb_err *err)
{
    unsigned char enc;
    const unsigned char *p;
    uint32_t len;
    int rc = record_at(b, k, &enc, &p, &len, err);
    if (rc)
        return rc;
    const unsigned char *e = b->map + b->meta_off + (uint64_t)k * META_W;
    out->mint = get_i64(e);
    out->maxt = get_i64(e + 8);
    out->p = p;
    out->len = len;
    if (enc != ENC_DENSE_TS) {
        out->enc = (uint8_t)enc_from_disk(enc);
        return TSDB_OK;
    }
    if (!a)
        return tsdb_errf(err, TSDB_EINVAL, -1,
                         "block %s: chunk %u shares timestamps (read it by series)", b->path, k);
    /* ref u32 (an earlier chunk stored plainly as DENSE) · count u16 · value part */
    unsigned char renc = 0;
    const unsigned char *rp = NULL;
    uint32_t rlen = 0, ref = len >= 6 ? tsdb_get_u32le(p) : UINT32_MAX;
    if (ref < k)
        rc = record_at(b, ref, &renc, &rp, &rlen, err);
    if (rc && rc != TSDB_EINVAL)
        return rc;
    size_t tl =
        rc == TSDB_OK && ref < k && renc == TSDB_CHUNK_ENC_DENSE ? tsdb_dense_ts_len(rp, rlen) : 0;
    if (tl < 2 || tsdb_dense_count(rp, rlen) != tsdb_dense_count(p + 4, len - 4))
        return TSDB_CORRUPT(err, "block %s: chunk %u shares timestamps with a bad chunk", b->path,
                            k);
    unsigned char *j = tsdb_arena_alloc(a, tl + len - 6);
    memcpy(j, rp, tl);
    memcpy(j + tl, p + 6, len - 6);
    out->p = j;
    out->len = tl + len - 6;
    out->enc = TSDB__ENC_DENSE;
    return TSDB_OK;
}

int tsdb__block_chunk(tsdb__block *b, uint32_t k, tsdb__chunk_ref *out, tsdb_err *err)
{
    tsdb__bchunk c;
    int rc = chunk_at(b, k, NULL, &c, err);
    if (rc == TSDB_OK)
        *out = (tsdb__chunk_ref){c.mint, c.maxt, c.p, c.len};
    return rc;
}

/* Decompresses the run at off (CRC-checked) into the arena and returns the chunks of metas
 * first .. first+count-1 that overlap [mint, maxt]. */
static int read_run(tsdb__block *b, uint32_t first, uint32_t count, uint64_t off, int64_t mint,
                    int64_t maxt, tsdb_arena *a, tsdb__bchunk **out, size_t *n, tsdb_err *err)
{
    uint32_t len = tsdb_get_u32le(b->map + off);
    if ((uint64_t)len > b->series_off - off - 9)
        return TSDB_CORRUPT(err, "block %s: run at %llu overruns the chunk region", b->path,
                            (unsigned long long)off);
    const unsigned char *enc = b->map + off + 4;
    if (tsdb_crc32c(0, enc, (size_t)len + 1) != tsdb_get_u32le(enc + 1 + len))
        return TSDB_CORRUPT(err, "block %s: run at %llu checksum mismatch", b->path,
                            (unsigned long long)off);
    unsigned long long raw = ZSTD_getFrameContentSize(enc + 1, len);
    if (raw == ZSTD_CONTENTSIZE_UNKNOWN || raw == ZSTD_CONTENTSIZE_ERROR || raw > RUN_MAX_BYTES ||
        raw < (unsigned long long)count * 5)
        return TSDB_CORRUPT(err, "block %s: run at %llu has a bad frame header", b->path,
                            (unsigned long long)off);
    unsigned char *dst = tsdb_arena_alloc(a, (size_t)raw ? (size_t)raw : 1);
    size_t got = ZSTD_decompress(dst, (size_t)raw, enc + 1, len);
    if (ZSTD_isError(got) || got != raw)
        return TSDB_CORRUPT(err, "block %s: run at %llu does not decompress", b->path,
                            (unsigned long long)off);
    tsdb__bchunk *r = tsdb_arena_alloc(a, count * sizeof(*r));
    size_t pos = 0, k = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (raw - pos < 4)
            return TSDB_CORRUPT(err, "block %s: run at %llu is short", b->path,
                                (unsigned long long)off);
        if (raw - pos < 5)
            return TSDB_CORRUPT(err, "block %s: run at %llu is short", b->path,
                                (unsigned long long)off);
        uint32_t cl = tsdb_get_u32le(dst + pos);
        int ce = enc_from_disk(dst[pos + 4]);
        pos += 5;
        if (ce < 0)
            return TSDB_CORRUPT(err, "block %s: run at %llu holds an unknown encoding", b->path,
                                (unsigned long long)off);
        if (cl > raw - pos)
            return TSDB_CORRUPT(err, "block %s: run at %llu is short", b->path,
                                (unsigned long long)off);
        const unsigned char *e = b->map + b->meta_off + (uint64_t)(first + i) * META_W;
        if (tsdb_get_u64le(e + 16) != off)
            return TSDB_CORRUPT(err, "block %s: series metas disagree about their run", b->path);
        if (get_i64(e + 8) >= mint && get_i64(e) <= maxt)
            r[k++] = (tsdb__bchunk){get_i64(e), get_i64(e + 8), dst + pos, cl, (uint8_t)ce};
        pos += cl;
    }
    if (pos != raw)
        return TSDB_CORRUPT(err, "block %s: run at %llu has trailing bytes", b->path,
                            (unsigned long long)off);
    *out = r;
    *n = k;
    return TSDB_OK;
}

/* Index of the first series entry with id >= id. */
static size_t series_lower_bound(const tsdb__block *b, uint64_t id)
{
    size_t lo = 0, hi = (size_t)b->meta.n_series;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t v = tsdb_get_u64le(b->map + b->series_off + mid * SERIES_W);
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t tsdb__block_series_overlaps(const tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt)
{
    if (b->meta.maxt <= mint || b->meta.mint > maxt)
        return 0;
    size_t i = series_lower_bound(b, id);
    uint64_t sid;
    uint32_t first, count;
    if (tsdb__block_series_at(b, i, &sid, &first, &count) != TSDB_OK || sid != id)
        return 0;
    size_t n = 0;
    for (uint32_t k = 0; k < count; k++) {
        const unsigned char *e = b->map + b->meta_off + (uint64_t)(first + k) * META_W;
        if (get_i64(e + 8) >= mint && get_i64(e) <= maxt)
            n++;
    }
    return n;
}

int tsdb__block_has_series(const tsdb__block *b, uint64_t id)
{
    size_t i = series_lower_bound(b, id);
    return i < b->meta.n_series && tsdb_get_u64le(b->map + b->series_off + i * SERIES_W) == id;
}

int tsdb__block_series_raw(tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                           tsdb__bchunk **out, size_t *n, tsdb_err *err)
{
    *n = 0;
    if (b->meta.maxt <= mint || b->meta.mint > maxt)
        return TSDB_OK;
    size_t lo = series_lower_bound(b, id);
    if (lo == b->meta.n_series)
        return TSDB_OK;
    uint64_t sid;
    uint32_t first, count;
    tsdb__block_series_at(b, lo, &sid, &first, &count);
    if (sid != id)
        return TSDB_OK;
    /* A compressed run: every meta of the series points at the same record. */
    const unsigned char *m0 = b->map + b->meta_off + (uint64_t)first * META_W;
    uint64_t off0 = tsdb_get_u64le(m0 + 16);
    if (b->map[off0 + 4] == ENC_ZSTD_RUN)
        return read_run(b, first, count, off0, mint, maxt, a, out, n, err);
    tsdb__bchunk *r = NULL;
    size_t k = 0;
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = b->map + b->meta_off + (uint64_t)(first + i) * META_W;
        if (get_i64(e + 8) < mint || get_i64(e) > maxt)
            continue;
        if (!r)
            r = tsdb_arena_alloc(a, (count - i) * sizeof(*r));
        int rc = chunk_at(b, first + i, a, &r[k], err);
        if (rc)
            return rc;
        k++;
    }
    *out = r;
    *n = k;
    return TSDB_OK;
}

int tsdb__block_series(tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                       tsdb__chunk_ref **out, size_t *n, tsdb_err *err)
{
    tsdb__bchunk *r;
    size_t k;
    int rc = tsdb__block_series_raw(b, id, mint, maxt, a, &r, &k, err);
    if (rc)
        return rc;
    *n = 0;
    if (k == 0)
        return TSDB_OK;
    tsdb__chunk_ref *x = tsdb_arena_alloc(a, k * sizeof(*x));
    for (size_t i = 0; i < k; i++) {
        if (r[i].enc == TSDB__ENC_XOR) {
            x[i] = (tsdb__chunk_ref){r[i].mint, r[i].maxt, r[i].p, r[i].len};
            continue;
        }
        /* DENSE: decode and encode as XOR in the arena. */
        size_t cnt = tsdb__bchunk_count(&r[i]), got;
        tsdb_sample *v = tsdb_arena_alloc(a, (cnt ? cnt : 1) * sizeof(*v));
        if (tsdb__bchunk_decode(&r[i], v, cnt, &got) != TSDB_OK || got == 0)
            return TSDB_CORRUPT(err, "block %s: a chunk of series %llu does not decode", b->path,
                                (unsigned long long)id);
        tsdb_chunk_app app;
        tsdb_chunk_app_init(&app);
        for (size_t j = 0; j < got; j++)
            tsdb_chunk_app_add(&app, v[j].t, v[j].v);
        size_t len;
        const unsigned char *bytes = tsdb_chunk_app_bytes(&app, &len);
        unsigned char *p = tsdb_arena_alloc(a, len);
        memcpy(p, bytes, len);
        tsdb_chunk_app_fini(&app);
        x[i] = (tsdb__chunk_ref){r[i].mint, r[i].maxt, p, len};
    }
    *out = x;
    *n = k;
    return TSDB_OK;
}

int tsdb__block_verify(tsdb__block *b, tsdb_err *err)
{
    tsdb_sample *buf = xmalloc(65536 * sizeof(*buf));
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    int rc = TSDB_OK;
    for (uint64_t i = 0; i < b->meta.n_series && rc == TSDB_OK; i++) {
        uint64_t id;
        uint32_t first, count;
        tsdb__block_series_at(b, (size_t)i, &id, &first, &count);
        tsdb__bchunk *c;
        size_t nc;
        tsdb_arena_reset(&a);
        rc = tsdb__block_series_raw(b, id, INT64_MIN, INT64_MAX, &a, &c, &nc, err);
        if (rc == TSDB_OK && nc != count)
            rc = TSDB_CORRUPT(err, "block %s: series %llu lost chunks", b->path,
                              (unsigned long long)id);
        for (size_t k = 0; rc == TSDB_OK && k < nc; k++) {
            size_t n;
            if (tsdb__bchunk_decode(&c[k], buf, 65536, &n) != TSDB_OK)
                rc = TSDB_CORRUPT(err, "block %s: a chunk of series %llu does not decode", b->path,
                                  (unsigned long long)id);
            else if (n > 0 && (buf[0].t < c[k].mint || buf[n - 1].t > c[k].maxt))
                rc = TSDB_CORRUPT(err, "block %s: a chunk of series %llu is outside its range",
                                  b->path, (unsigned long long)id);
        }
    }
    tsdb_arena_fini(&a);
    free(buf);
    return rc;
}

/* ---- Tombstones -------------------------------------------------------------------------------
 */

int tsdb__block_tomb_add(tsdb__block *b, const uint64_t *ids, size_t n, int64_t mint, int64_t maxt,
                         tsdb_err *err)
{
    if (!b->path[0])
        return tsdb_errf(err, TSDB_EINVAL, -1, "block image has no file");
    pthread_mutex_lock(&b->tomb_lock);
    size_t total = b->n_tombs + n;
    int64_t *v = xmalloc((total ? total : 1) * 3 * sizeof(int64_t));
    if (b->n_tombs)
        memcpy(v, b->tombs, b->n_tombs * 3 * sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        v[(b->n_tombs + i) * 3] = (int64_t)ids[i];
        v[(b->n_tombs + i) * 3 + 1] = mint;
        v[(b->n_tombs + i) * 3 + 2] = maxt;
    }
    qsort(v, total, 3 * sizeof(int64_t), cmp_tomb);
    tsdb_buf buf;
    tsdb_buf_init(&buf);
    tsdb_buf_put_u32le(&buf, TOMB_MAGIC);
    tsdb_buf_put_u32le(&buf, (uint32_t)total);
    for (size_t i = 0; i < total * 3; i++)
        tsdb_buf_put_u64le(&buf, (uint64_t)v[i]);
    tsdb_buf_put_u32le(&buf, tsdb_crc32c(0, buf.p, buf.len));
    char path[4200];
    snprintf(path, sizeof(path), "%s.tomb", b->path);
    int rc = tsdb__os_write_file_atomic(path, buf.p, buf.len, err);
    tsdb_buf_fini(&buf);
    if (rc == TSDB_OK) {
        free(b->tombs);
        b->tombs = v;
        b->n_tombs = total;
    } else {
        free(v);
    }
    pthread_mutex_unlock(&b->tomb_lock);
    return rc;
}

size_t tsdb__block_tomb_get(tsdb__block *b, uint64_t id, tsdb_arena *a, int64_t **ranges)
{
    pthread_mutex_lock(&b->tomb_lock);
    size_t lo = 0, hi = b->n_tombs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uint64_t)b->tombs[mid * 3] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < b->n_tombs && (uint64_t)b->tombs[end * 3] == id)
        end++;
    size_t n = end - lo;
    if (n) {
        int64_t *r = tsdb_arena_alloc(a, n * 2 * sizeof(int64_t));
        for (size_t i = 0; i < n; i++) {
            r[2 * i] = b->tombs[(lo + i) * 3 + 1];
            r[2 * i + 1] = b->tombs[(lo + i) * 3 + 2];
        }
        *ranges = r;
    }
    pthread_mutex_unlock(&b->tomb_lock);
    return n;
}

size_t tsdb__block_tomb_count(tsdb__block *b)
{
    pthread_mutex_lock(&b->tomb_lock);
    size_t n = b->n_tombs;
    pthread_mutex_unlock(&b->tomb_lock);
    return n;
}

/* ---- Writer ------------------------------------------------------------------------------------
 */

struct tsdb__block_writer {
    char path[4096], tmp[4200], dir[4096];
    int fd;
    uint64_t off;    /* bytes written (or buffered) so far */
    tsdb_buf out;    /* pending bytes */
    tsdb_buf series; /* series table */
    tsdb_buf metas;  /* chunk-meta table */
    int64_t mint, maxt;
    uint32_t level;
    uint64_t n_series, n_chunks, n_samples, last_id;
    int compress;    /* write series as zstd runs when that pays */
    tsdb_buf run, z; /* run scratch */
    ZSTD_CCtx *cctx;
    tsdb_buf dense;   /* DENSE encodings of the current series' chunks */
    tsdb_sample *smp; /* decode scratch */
    size_t cap_smp;
    tsdb__bchunk *sel; /* the chosen encoding of each chunk */
    size_t cap_sel;
    tsdb__bchunk *in; /* tsdb__block_writer_add's chunks, tagged XOR */
    size_t cap_in;
    struct pack_info *pk; /* per input chunk while packing */
    size_t cap_pk;
    struct ts_ent *tse; /* timestamp parts written plainly, open addressing */
    size_t tse_cap, tse_n, tse_bytes;
};

/* A DENSE chunk's timestamp part already in the block, by the meta index of its chunk. */
typedef struct ts_ent {
    uint64_t h;
    unsigned char *bytes; /* NULL: free slot */
    uint32_t len, idx;
} ts_ent;

static int ts_find(const tsdb__block_writer *w, const unsigned char *p, size_t len, uint32_t *idx)
{
    if (w->tse_cap == 0)
        return 0;
    uint64_t h = tsdb_hash(p, len);
    for (size_t i = h & (w->tse_cap - 1);; i = (i + 1) & (w->tse_cap - 1)) {
        const ts_ent *e = &w->tse[i];
        if (!e->bytes)
            return 0;
        if (e->h == h && e->len == len && memcmp(e->bytes, p, len) == 0) {
            *idx = e->idx;
            return 1;
        }
    }
}

static void ts_put(ts_ent *tab, size_t cap, ts_ent e)
{
    size_t i = e.h & (cap - 1);
    while (tab[i].bytes)
        i = (i + 1) & (cap - 1);
    tab[i] = e;
}

static void ts_add(tsdb__block_writer *w, const unsigned char *p, size_t len, uint32_t idx)
{
    if (w->tse_bytes + len > TS_SHARE_MAX_BYTES)
        return;
    if ((w->tse_n + 1) * 4 > w->tse_cap * 3) {
        size_t cap = w->tse_cap ? w->tse_cap * 2 : 1024;
        ts_ent *tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < w->tse_cap; i++)
            if (w->tse[i].bytes)
                ts_put(tab, cap, w->tse[i]);
        free(w->tse);
        w->tse = tab;
        w->tse_cap = cap;
    }
    ts_ent e = {tsdb_hash(p, len), xmalloc(len), (uint32_t)len, idx};
    memcpy(e.bytes, p, len);
    ts_put(w->tse, w->tse_cap, e);
    w->tse_n++;
    w->tse_bytes += len;
}

static void ts_free(tsdb__block_writer *w)
{
    for (size_t i = 0; i < w->tse_cap; i++)
        free(w->tse[i].bytes);
    free(w->tse);
}

typedef struct pack_info {
    size_t start, n;  /* its samples in smp */
    size_t len, off;  /* its chosen size; 1 + offset in dense, or 0 for the input's bytes */
    size_t grp;       /* for output k: 1 + offset in dense of its bytes, or 0 */
    uint8_t enc;      /* its chosen encoding */
    uint8_t dense_ok; /* DENSE can hold its samples */
} pack_info;

void tsdb__block_writer_compress(tsdb__block_writer *w, int on)
{
    w->compress = on;
}

static int bw_drain(tsdb__block_writer *w, size_t keep, tsdb_err *err)
{
    if (w->out.len <= keep)
        return TSDB_OK;
    int rc = tsdb__os_write(w->fd, w->out.p, w->out.len, err);
    w->out.len = 0;
    return rc;
}

int tsdb__block_writer_begin(const char *path, int64_t mint, int64_t maxt, uint32_t level,
                             tsdb__block_writer **out, tsdb_err *err)
{
    if (strlen(path) >= 4000)
        return tsdb_errf(err, TSDB_EINVAL, -1, "block path too long");
    tsdb__block_writer *w = xcalloc(1, sizeof(*w));
    snprintf(w->path, sizeof(w->path), "%s", path);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
    snprintf(w->dir, sizeof(w->dir), "%s", path);
    char *slash = strrchr(w->dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(w->dir, sizeof(w->dir), ".");
    w->mint = mint;
    w->maxt = maxt;
    w->level = level;
    tsdb_buf_init(&w->out);
    tsdb_buf_init(&w->series);
    tsdb_buf_init(&w->metas);
    tsdb_buf_init(&w->run);
    tsdb_buf_init(&w->z);
    tsdb_buf_init(&w->dense);
    w->fd = -1;
    int rc = tsdb__os_open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &w->fd, err);
    if (rc) {
        tsdb__block_writer_abort(w);
        return rc;
    }
    unsigned char zero[TSDB__BLOCK_HDR] = {0};
    tsdb_buf_put(&w->out, zero, sizeof(zero));
    w->off = TSDB__BLOCK_HDR;
    *out = w;
    return TSDB_OK;
}

int tsdb__block_writer_add(tsdb__block_writer *w, uint64_t id, const tsdb__chunk_ref *c, size_t n,
                           tsdb_err *err)
{
    if (n > w->cap_in) {
        w->cap_in = n * 2;
        w->in = xrealloc(w->in, w->cap_in * sizeof(*w->in));
    }
    for (size_t i = 0; i < n; i++)
        w->in[i] = (tsdb__bchunk){c[i].mint, c[i].maxt, c[i].p, c[i].len, TSDB__ENC_XOR};
    return tsdb__block_writer_add_raw(w, id, w->in, n, err);
}

/* Chooses the stored form of a series' chunks into w->sel and returns their number: each chunk
 * in whichever of XOR and DENSE is smaller, then runs of consecutive chunks that DENSE can hold
 * (time-ordered, at most GROUP_MAX samples) as one DENSE chunk when that is smaller than the run's
 * chunks with their records and metas. A lone chunk keeps its own encoding. */
static size_t pack_chunks(tsdb__block_writer *w, const tsdb__bchunk *c, size_t n)
{
    if (n > w->cap_sel) {
        w->cap_sel = n * 2;
        w->sel = xrealloc(w->sel, w->cap_sel * sizeof(*w->sel));
    }
    if (n > w->cap_pk) {
        w->cap_pk = n * 2;
        w->pk = xrealloc(w->pk, w->cap_pk * sizeof(*w->pk));
    }
    /* Decode every chunk into one array. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += tsdb__bchunk_count(&c[i]);
    if (total > w->cap_smp) {
        w->cap_smp = total < 256 ? 256 : total;
        w->smp = xrealloc(w->smp, w->cap_smp * sizeof(*w->smp));
    }
    w->dense.len = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        pack_info *k = &w->pk[i];
        size_t got = 0;
        k->start = at;
        k->n = 0;
        k->dense_ok = 0;
        k->off = 0;
        if (tsdb__bchunk_decode(&c[i], w->smp + at, w->cap_smp - at, &got) == TSDB_OK && got > 0) {
            k->n = got;
            at += got;
            k->dense_ok = c[i].enc == TSDB__ENC_DENSE;
        }
        k->len = c[i].len;
        k->enc = c[i].enc;
        if (c[i].enc != TSDB__ENC_XOR || k->n == 0)
            continue;
        size_t before = w->dense.len;
        if (tsdb_dense_encode(w->smp + k->start, k->n, &w->dense) != TSDB_OK)
            continue;
        k->dense_ok = 1;
        if (w->dense.len - before >= c[i].len) {
            w->dense.len = before;
            continue;
        }
        k->off = before + 1; /* 0 = the input's bytes */
        k->len = w->dense.len - before;
        k->enc = TSDB__ENC_DENSE;
    }
    /* Group runs; each output is (first input, last input, bytes). */
    size_t n_out = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, cnt = w->pk[i].n, sum = w->pk[i].len;
        while (w->pk[i].dense_ok && j + 1 < n && w->pk[j + 1].dense_ok &&
               cnt + w->pk[j + 1].n <= GROUP_MAX &&
               w->smp[w->pk[j + 1].start].t > w->smp[w->pk[j].start + w->pk[j].n - 1].t) {
            j++;
            cnt += w->pk[j].n;
            sum += w->pk[j].len + META_W + 9;
        }
        tsdb__bchunk *o = &w->sel[n_out++];
        *o = c[i];
        o->len = w->pk[i].len;
        o->enc = w->pk[i].enc;
        o->p = w->pk[i].off ? NULL : c[i].p;
        w->pk[n_out - 1].grp = w->pk[i].off;
        if (j > i) {
            size_t before = w->dense.len;
            if (tsdb_dense_encode(w->smp + w->pk[i].start, cnt, &w->dense) == TSDB_OK &&
                w->dense.len - before < sum) {
                o->maxt = c[j].maxt;
                o->len = w->dense.len - before;
                o->enc = TSDB__ENC_DENSE;
                o->p = NULL;
                w->pk[n_out - 1].grp = before + 1;
                i = j + 1;
                continue;
            }
            w->dense.len = before;
        }
        i++;
    }
    /* The dense buffer no longer moves: point the outputs at it. */
    for (size_t i = 0; i < n_out; i++)
        if (w->sel[i].p == NULL)
            w->sel[i].p = w->dense.p + w->pk[i].grp - 1;
    return n_out;
}

int tsdb__block_writer_add_raw(tsdb__block_writer *w, uint64_t id, const tsdb__bchunk *c, size_t n,
                               tsdb_err *err)
{
    if (n == 0)
        return TSDB_OK;
    if (w->n_series > 0 && id <= w->last_id)
        return tsdb_errf(err, TSDB_EINVAL, -1, "block writer: series %llu out of order",
                         (unsigned long long)id);
    if (w->compress)
        n = pack_chunks(w, c, n);
    else if (n > w->cap_sel) {
        w->cap_sel = n * 2;
        w->sel = xrealloc(w->sel, w->cap_sel * sizeof(*w->sel));
    }
    if (!w->compress)
        memcpy(w->sel, c, n * sizeof(*c));
    c = w->sel;

    tsdb_buf_put_u64le(&w->series, id);
    tsdb_buf_put_u32le(&w->series, (uint32_t)w->n_chunks);
    tsdb_buf_put_u32le(&w->series, (uint32_t)n);
    /* A series with DENSE chunks is stored plainly: its timestamp parts can then be shared. */
    size_t raw = 0;
    int any_dense = 0;
    for (size_t i = 0; i < n; i++) {
        raw += 5 + c[i].len;
        any_dense |= c[i].enc == TSDB__ENC_DENSE;
    }
    if (w->compress && !any_dense && raw >= RUN_MIN_BYTES && raw <= RUN_MAX_BYTES) {
        w->run.len = 0;
        for (size_t i = 0; i < n; i++) {
            tsdb_buf_put_u32le(&w->run, (uint32_t)c[i].len);
            tsdb_buf_putc(&w->run, enc_to_disk(c[i].enc));
            tsdb_buf_put(&w->run, c[i].p, c[i].len);
        }
        if (!w->cctx)
            w->cctx = ZSTD_createCCtx();
        size_t bound = ZSTD_compressBound(raw);
        w->z.len = 0;
        tsdb_buf_reserve(&w->z, bound);
        size_t zn =
            w->cctx ? ZSTD_compressCCtx(w->cctx, w->z.p, bound, w->run.p, raw, ZSTD_LEVEL) : 0;
        if (w->cctx && !ZSTD_isError(zn) && zn < raw - raw / 8) {
            uint64_t off = w->off;
            for (size_t i = 0; i < n; i++) {
                tsdb_buf_put_u64le(&w->metas, (uint64_t)c[i].mint);
                tsdb_buf_put_u64le(&w->metas, (uint64_t)c[i].maxt);
                tsdb_buf_put_u64le(&w->metas, off);
                w->n_samples += tsdb__bchunk_count(&c[i]);
            }
            size_t start = w->out.len;
            tsdb_buf_put_u32le(&w->out, (uint32_t)zn);
            tsdb_buf_putc(&w->out, ENC_ZSTD_RUN);
            tsdb_buf_put(&w->out, w->z.p, zn);
            tsdb_buf_put_u32le(&w->out, tsdb_crc32c(0, w->out.p + start + 4, zn + 1));
            w->off += zn + 9;
            w->n_chunks += n;
            w->n_series++;
            w->last_id = id;
            return bw_drain(w, (size_t)1 << 20, err);
        }
    }
    for (size_t i = 0; i < n; i++) {
        tsdb_buf_put_u64le(&w->metas, (uint64_t)c[i].mint);
        tsdb_buf_put_u64le(&w->metas, (uint64_t)c[i].maxt);
        tsdb_buf_put_u64le(&w->metas, w->off);
        size_t start = w->out.len, len = c[i].len, tl = 0;
        uint32_t ref = 0;
        if (w->compress && c[i].enc == TSDB__ENC_DENSE)
            tl = tsdb_dense_ts_len(c[i].p, c[i].len);
        if (tl > 6 && ts_find(w, c[i].p, tl, &ref)) {
            /* ref · count · value part */
            len = 4 + 2 + c[i].len - tl;
            tsdb_buf_put_u32le(&w->out, (uint32_t)len);
            tsdb_buf_putc(&w->out, ENC_DENSE_TS);
            tsdb_buf_put_u32le(&w->out, ref);
            tsdb_buf_put(&w->out, c[i].p, 2);
            tsdb_buf_put(&w->out, c[i].p + tl, c[i].len - tl);
        } else {
            if (tl > 6)
                ts_add(w, c[i].p, tl, (uint32_t)(w->n_chunks + i));
            tsdb_buf_put_u32le(&w->out, (uint32_t)len);
            tsdb_buf_putc(&w->out, enc_to_disk(c[i].enc));
            tsdb_buf_put(&w->out, c[i].p, len);
        }
        tsdb_buf_put_u32le(&w->out, tsdb_crc32c(0, w->out.p + start + 4, len + 1));
        w->off += len + 9;
        w->n_samples += tsdb__bchunk_count(&c[i]);
    }
    w->n_chunks += n;
    w->n_series++;
    w->last_id = id;
    return bw_drain(w, (size_t)1 << 20, err);
}

int tsdb__block_writer_commit(tsdb__block_writer *w, tsdb_err *err)
{
    uint64_t series_off = w->off, meta_off = series_off + w->series.len;
    tsdb_buf_put(&w->out, w->series.p, w->series.len);
    tsdb_buf_put(&w->out, w->metas.p, w->metas.len);
    size_t fstart = w->out.len;
    tsdb_buf_put_u64le(&w->out, series_off);
    tsdb_buf_put_u64le(&w->out, meta_off);
    tsdb_buf_put_u32le(&w->out, tsdb_crc32c(0, w->series.p, w->series.len));
    tsdb_buf_put_u32le(&w->out, tsdb_crc32c(0, w->metas.p, w->metas.len));
    tsdb_buf_put_u64le(&w->out, 0);
    tsdb_buf_put_u64le(&w->out, 0);
    tsdb_buf_put_u32le(&w->out, FOOTER_MAGIC);
    tsdb_buf_put_u32le(&w->out, tsdb_crc32c(0, w->out.p + fstart, 44));
    unsigned char h[TSDB__BLOCK_HDR];
    memset(h, 0, sizeof(h));
    memcpy(h, BLOCK_MAGIC, 8);
    tsdb_put_u32le(h + 8, BLOCK_VERSION);
    tsdb_put_u32le(h + 12, w->level);
    tsdb_put_u64le(h + 16, (uint64_t)w->mint);
    tsdb_put_u64le(h + 24, (uint64_t)w->maxt);
    tsdb_put_u64le(h + 32, w->n_series);
    tsdb_put_u64le(h + 40, w->n_chunks);
    tsdb_put_u64le(h + 48, w->n_samples);
    tsdb_put_u32le(h + 60, tsdb_crc32c(0, h, 60));
    int rc = bw_drain(w, 0, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_pwrite(w->fd, h, sizeof(h), 0, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync(w->fd, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_rename(w->tmp, w->path, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync_dir(w->dir, err);
    if (rc) {
        tsdb__block_writer_abort(w);
        return rc;
    }
    tsdb__os_close(w->fd);
    tsdb_buf_fini(&w->out);
    tsdb_buf_fini(&w->series);
    tsdb_buf_fini(&w->metas);
    tsdb_buf_fini(&w->run);
    tsdb_buf_fini(&w->z);
    tsdb_buf_fini(&w->dense);
    free(w->smp);
    free(w->sel);
    free(w->in);
    free(w->pk);
    ts_free(w);
    ZSTD_freeCCtx(w->cctx);
    free(w);
    return TSDB_OK;
}

void tsdb__block_writer_abort(tsdb__block_writer *w)
{
    if (!w)
        return;
    tsdb__os_close(w->fd);
    tsdb__os_unlink(w->tmp, NULL);
    tsdb_buf_fini(&w->out);
    tsdb_buf_fini(&w->series);
    tsdb_buf_fini(&w->metas);
    tsdb_buf_fini(&w->run);
    tsdb_buf_fini(&w->z);
    tsdb_buf_fini(&w->dense);
    free(w->smp);
    free(w->sel);
    free(w->in);
    free(w->pk);
    ts_free(w);
    ZSTD_freeCCtx(w->cctx);
    free(w);
}
