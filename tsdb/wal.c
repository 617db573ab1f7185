/* tsdb/wal.c -- the segmented write-ahead log.
 *
 * Directory: <dir>/00000001, 00000002, ... (8 decimal digits) are segments; checkpoint.NNNNNNNN
 * holds the records that supersede every segment <= NNNNNNNN; *.tmp files are unfinished
 * checkpoints. Replay reads the newest checkpoint, then the segments after it.
 *
 * A segment (and a checkpoint) is a sequence of 32 KiB pages; the last page may be short.
 * A page holds fragments; a fragment never crosses a page, a record never crosses a segment:
 *
 *   fragment: type u8 · len u16le · crc32c u32le (of the payload) · payload[len]
 *   type:     bits 0-2  1 = full record, 2 = first, 3 = middle, 4 = last fragment
 *             bit 3     the record (all its fragments joined) is one zstd frame
 *             bits 4-7  zero
 *   type 0:   padding; the rest of the page is unused. Fewer than 8 bytes left in a page are
 *             padding as well.
 *
 * This is Prometheus' WAL layout (tsdb/docs/format/wal.md) with little-endian lengths and
 * zstd in place of Snappy. Records (tsdb/record.c) of at least TSDB__WAL_ZSTD_MIN bytes are
 * compressed when that makes them smaller.
 *
 * Torn tails: a writer that dies mid-page leaves a short last page, maybe a partial fragment or
 * a first fragment without its last. Replay delivers every complete record before that point,
 * logs the damage, truncates the file after the last good record and continues with the next
 * segment. An open always starts a fresh segment, so a damaged tail is never appended to.
 *
 * Write failures: a batch whose write or fsync fails is cut back from the file (best effort)
 * and the next batch goes to a new segment, so a half-written batch sits at a segment's end
 * where replay treats it as a torn tail.
 */
#include "tsdb/wal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "tsdb/os.h"

#define FT_FULL   1
#define FT_FIRST  2
#define FT_MIDDLE 3
#define FT_LAST   4
#define FT_ZSTD   8

/* zstd's fast level -1: on remote-write SAMPLES records it is about a third cheaper than
 * level 1 for about 7% more bytes, and it runs under the append lock. */
#define WAL_ZSTD_LEVEL (-1)

/* ---- Reading ----------------------------------------------------------------------------------
 */

/* Delivers a joined record, decompressing it if flagged. */
static int deliver(const unsigned char *p, size_t len, int zstd, tsdb_buf *dz, tsdb__wal_fn fn,
                   void *ctx)
{
    if (!zstd)
        return fn(ctx, p, len);
    unsigned long long n = ZSTD_getFrameContentSize(p, len);
    if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > TSDB__WAL_MAX_REC)
        return TSDB_ECORRUPT;
    dz->len = 0;
    tsdb_buf_reserve(dz, (size_t)n + 1);
    size_t got = ZSTD_decompress(dz->p, (size_t)n + 1, p, len);
    if (ZSTD_isError(got) || got != n)
        return TSDB_ECORRUPT;
    return fn(ctx, dz->p, got);
}

int tsdb__wal_scan(const unsigned char *p, size_t len, tsdb__wal_fn fn, void *ctx, size_t *good_end)
{
    tsdb_buf rec, dz;
    tsdb_buf_init(&rec);
    tsdb_buf_init(&dz);
    int in_rec = 0, rec_zstd = 0, rc = TSDB_OK;
    size_t off = 0;
    *good_end = 0;
    while (off < len) {
        size_t page_end = (off / TSDB__WAL_PAGE + 1) * TSDB__WAL_PAGE;
        if (page_end - off <= TSDB__WAL_HDR || p[off] == 0) {
            off = page_end;
            continue;
        }
        if (off + TSDB__WAL_HDR > len) {
            rc = TSDB_ECORRUPT;
            break;
        }
        unsigned type = p[off];
        unsigned ft = type & 7;
        size_t flen = (size_t)p[off + 1] | (size_t)p[off + 2] << 8;
        uint32_t crc = tsdb_get_u32le(p + off + 3);
        const unsigned char *pl = p + off + TSDB__WAL_HDR;
        if ((type & ~0xfu) || ft < FT_FULL || ft > FT_LAST || off + TSDB__WAL_HDR + flen > len ||
            off + TSDB__WAL_HDR + flen > page_end || tsdb_crc32c(0, pl, flen) != crc) {
            rc = TSDB_ECORRUPT;
            break;
        }
        int zstd = (type & FT_ZSTD) != 0;
        off += TSDB__WAL_HDR + flen;
        if (ft == FT_FULL || ft == FT_FIRST) {
            if (in_rec) {
                rc = TSDB_ECORRUPT;
                break;
            }
            rec.len = 0;
            rec_zstd = zstd;
        } else if (!in_rec || zstd != rec_zstd) {
            rc = TSDB_ECORRUPT;
            break;
        }
        if (rec.len + flen > TSDB__WAL_MAX_REC) {
            rc = TSDB_ECORRUPT;
            break;
        }
        if (ft == FT_FULL) {
            rc = deliver(pl, flen, zstd, &dz, fn, ctx);
            in_rec = 0;
        } else {
            tsdb_buf_put(&rec, pl, flen);
            in_rec = ft != FT_LAST;
            if (ft == FT_LAST)
                rc = deliver(rec.p, rec.len, zstd, &dz, fn, ctx);
        }
        if (rc != TSDB_OK)
            break;
        if (!in_rec)
            *good_end = off;
    }
    if (rc == TSDB_OK && in_rec)
        rc = TSDB_ECORRUPT; /* first fragment without its last */
    tsdb_buf_fini(&rec);
    tsdb_buf_fini(&dz);
    return rc;
}

/* Parses "NNNNNNNN" (8 digits) or "checkpoint.NNNNNNNN"; returns 1 = segment, 2 = checkpoint. */
static int parse_name(const char *name, uint32_t *n)
{
    int kind = 1;
    if (strncmp(name, "checkpoint.", 11) == 0) {
        name += 11;
        kind = 2;
    }
    if (strlen(name) != 8)
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint32_t)(name[i] - '0');
    }
    *n = v;
    return kind;
}

/* Replays one file; repairs a damaged tail. */
static int replay_file(const char *path, int repair, tsdb__wal_fn fn, void *ctx, tsdb_err *err)
{
    int fd = -1;
    int rc = tsdb__os_open(path, repair ? O_RDWR : O_RDONLY, 0, &fd, err);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = tsdb__os_fsize(fd, &size, err);
    if (rc || size == 0) {
        tsdb__os_close(fd);
        return rc;
    }
    const void *map = NULL;
    rc = tsdb__os_mmap_ro(fd, (size_t)size, &map, err);
    if (rc) {
        tsdb__os_close(fd);
        return rc;
    }
    size_t good = 0;
    rc = tsdb__wal_scan(map, (size_t)size, fn, ctx, &good);
    tsdb__os_munmap(map, (size_t)size);
    if (rc == TSDB_ECORRUPT) {
        TSDB_LOG_WARN("wal", "%s: torn or corrupt record at byte %zu of %llu; %s", path, good,
                      (unsigned long long)size, repair ? "truncating" : "ignoring the rest");
        rc = TSDB_OK;
        if (repair)
            rc = tsdb__os_ftruncate(fd, good, err);
        if (rc == TSDB_OK && repair)
            rc = tsdb__os_fsync(fd, err);
    }
    tsdb__os_close(fd);
    return rc;
}

int tsdb__wal_replay(const char *dir, int repair, tsdb__wal_fn fn, void *ctx, uint32_t *next_seg,
                     tsdb_err *err)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names = NULL;
    size_t n = 0;
    char path[4096];
    int rc = tsdb__os_list_dir(dir, &a, &names, &n, err);
    if (rc)
        goto out;
    int have_ckpt = 0;
    uint32_t ckpt = 0, max_seg = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        int k = parse_name(names[i], &v);
        if (k == 2 && (!have_ckpt || v > ckpt)) {
            have_ckpt = 1;
            ckpt = v;
        }
        if (k == 1 && v > max_seg)
            max_seg = v;
    }
    /* Remove what the newest checkpoint superseded and unfinished checkpoints. */
    for (size_t i = 0; repair && i < n; i++) {
        uint32_t v;
        int k = parse_name(names[i], &v);
        size_t l = strlen(names[i]);
        int tmp = l > 4 && strcmp(names[i] + l - 4, ".tmp") == 0;
        if (tmp || (have_ckpt && ((k == 1 && v <= ckpt) || (k == 2 && v < ckpt)))) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            tsdb__os_unlink(path, NULL);
        }
    }
    if (have_ckpt) {
        snprintf(path, sizeof(path), "%s/checkpoint.%08u", dir, ckpt);
        rc = replay_file(path, repair, fn, ctx, err);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        if (parse_name(names[i], &v) != 1 || (have_ckpt && v <= ckpt))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = replay_file(path, repair, fn, ctx, err);
        if (rc)
            goto out;
    }
    uint32_t next = max_seg + 1;
    if (have_ckpt && ckpt + 1 > next)
        next = ckpt + 1;
    *next_seg = next;
out:
    tsdb_arena_fini(&a);
    return rc;
}

/* ---- Writing ------------------------------------------------------------------------------------
 */

/* One file written in pages (a segment or a checkpoint). */
typedef struct wfile {
    int fd;
    char path[4096];
    unsigned char page[TSDB__WAL_PAGE];
    size_t page_used, page_flushed; /* bytes of page filled / already written */
    uint64_t page_off;              /* file offset of page[0] */
} wfile;

static uint64_t wf_size(const wfile *f)
{
    return f->page_off + f->page_used;
}

static int wf_open(wfile *f, const char *path, tsdb_err *err)
{
    memset(f, 0, offsetof(wfile, page));
    f->fd = -1;
    f->page_used = f->page_flushed = 0;
    f->page_off = 0;
    snprintf(f->path, sizeof(f->path), "%s", path);
    return tsdb__os_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f->fd, err);
}

static int wf_flush(wfile *f, tsdb_err *err)
{
    if (f->page_flushed == f->page_used)
        return TSDB_OK;
    int rc = tsdb__os_pwrite(f->fd, f->page + f->page_flushed, f->page_used - f->page_flushed,
                             f->page_off + f->page_flushed, err);
    if (rc)
        return rc;
    f->page_flushed = f->page_used;
    if (f->page_used == TSDB__WAL_PAGE) {
        f->page_off += TSDB__WAL_PAGE;
        f->page_used = f->page_flushed = 0;
    }
    return TSDB_OK;
}

/* Frames rec into fragments; zstd says the bytes are a zstd frame. */
static int wf_log(wfile *f, const unsigned char *rec, size_t len, int zstd, tsdb_err *err)
{
    size_t done = 0;
    int first = 1;
    do {
        size_t room = TSDB__WAL_PAGE - f->page_used;
        if (room <= TSDB__WAL_HDR) {
            memset(f->page + f->page_used, 0, room);
            f->page_used = TSDB__WAL_PAGE;
            int rc = wf_flush(f, err);
            if (rc)
                return rc;
            continue;
        }
        size_t take = len - done;
        if (take > room - TSDB__WAL_HDR)
            take = room - TSDB__WAL_HDR;
        int last = done + take == len;
        unsigned type = first && last ? FT_FULL : first ? FT_FIRST : last ? FT_LAST : FT_MIDDLE;
        if (zstd)
            type |= FT_ZSTD;
        unsigned char *h = f->page + f->page_used;
        h[0] = (unsigned char)type;
        h[1] = (unsigned char)take;
        h[2] = (unsigned char)(take >> 8);
        tsdb_put_u32le(h + 3, tsdb_crc32c(0, rec + done, take));
        memcpy(h + TSDB__WAL_HDR, rec + done, take);
        f->page_used += TSDB__WAL_HDR + take;
        done += take;
        first = 0;
        if (f->page_used == TSDB__WAL_PAGE) {
            int rc = wf_flush(f, err);
            if (rc)
                return rc;
        }
    } while (done < len);
    return TSDB_OK;
}

/* Bytes rec would take at most in a fresh stream, for the segment-size check. */
static size_t framed_size(size_t len)
{
    return len + (len / (TSDB__WAL_PAGE - TSDB__WAL_HDR) + 2) * (TSDB__WAL_HDR + 8);
}

/* Compresses big records; returns the bytes to frame (rec itself or z->p). The context *cc is
 * created on first use and kept: a fresh one per record (ZSTD_compress) costs about as much as
 * compressing a 20 KiB record. */
static const unsigned char *maybe_compress(const void *rec, size_t *len, int *zstd, tsdb_buf *z,
                                           ZSTD_CCtx **cc)
{
    *zstd = 0;
    if (*len < TSDB__WAL_ZSTD_MIN)
        return rec;
    if (!*cc && !(*cc = ZSTD_createCCtx()))
        return rec;
    size_t bound = ZSTD_compressBound(*len);
    z->len = 0;
    tsdb_buf_reserve(z, bound);
    size_t n = ZSTD_compressCCtx(*cc, z->p, bound, rec, *len, WAL_ZSTD_LEVEL);
    if (ZSTD_isError(n) || n >= *len)
        return rec;
    *zstd = 1;
    *len = n;
    return z->p;
}

#define DIR_MAX 3968 /* leaves room for "/checkpoint.NNNNNNNN.tmp" in a 4096-byte path */

struct tsdb__wal {
    char dir[DIR_MAX];
    size_t seg_bytes;
    uint32_t seg;     /* current segment number */
    wfile f;          /* current segment */
    uint64_t mark;    /* file offset where the current batch started */
    int broken;       /* the next record must start a new segment */
    tsdb_buf z;       /* compression scratch */
    ZSTD_CCtx *zc;    /* compression context, made on first use */
    int retired;      /* fd of the segment ended by tsdb__wal_cut_begin, or -1 (sync_lock) */
    int retired_sync; /* it still needs its fdatasync (sync_lock) */
    pthread_mutex_t sync_lock;        /* guards fd swaps against tsdb__wal_sync_fd, and retired */
    _Atomic uint64_t written, synced; /* bytes written / covered by the last sync */
};

/* Switches to segment seg. The old segment's fd is closed, or with keep_old left in w->retired
 * for tsdb__wal_cut_finish, which fdatasyncs it if sync_old. */
static int open_segment(tsdb__wal *w, uint32_t seg, int keep_old, int sync_old, tsdb_err *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%08u", w->dir, seg);
    wfile nf;
    nf.fd = -1;
    int rc = wf_open(&nf, path, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync_dir(w->dir, err);
    if (rc) {
        tsdb__os_close(nf.fd);
        return rc;
    }
    pthread_mutex_lock(&w->sync_lock);
    int old = w->f.fd;
    memcpy(&w->f, &nf, offsetof(wfile, page));
    w->f.page_used = w->f.page_flushed = 0;
    w->f.page_off = 0;
    w->seg = seg;
    w->mark = 0;
    if (keep_old) {
        w->retired = old;
        w->retired_sync = sync_old;
    }
    pthread_mutex_unlock(&w->sync_lock);
    if (!keep_old)
        tsdb__os_close(old);
    return TSDB_OK;
}

int tsdb__wal_open(const char *dir, uint32_t seg, size_t seg_bytes, tsdb__wal **out, tsdb_err *err)
{
    if (strlen(dir) >= DIR_MAX)
        return tsdb_errf(err, TSDB_EINVAL, -1, "wal directory path too long");
    tsdb__wal *w = xcalloc(1, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "%s", dir);
    w->seg_bytes = seg_bytes ? seg_bytes : (size_t)128 << 20;
    if (w->seg_bytes < 4 * TSDB__WAL_PAGE)
        w->seg_bytes = 4 * TSDB__WAL_PAGE;
    w->f.fd = -1;
    w->retired = -1;
    tsdb_buf_init(&w->z);
    pthread_mutex_init(&w->sync_lock, NULL);
    int rc = tsdb__os_mkdir_p(dir, err);
    if (rc == TSDB_OK)
        rc = open_segment(w, seg ? seg : 1, 0, 0, err);
    if (rc) {
        tsdb__wal_close(w);
        return rc;
    }
    *out = w;
    return TSDB_OK;
}

void tsdb__wal_close(tsdb__wal *w)
{
    if (!w)
        return;
    tsdb__wal_cut_finish(w, NULL);
    if (w->f.fd >= 0 && !w->broken) {
        if (wf_flush(&w->f, NULL) == TSDB_OK)
            tsdb__os_fdatasync(w->f.fd, NULL);
    }
    tsdb__os_close(w->f.fd);
    tsdb_buf_fini(&w->z);
    ZSTD_freeCCtx(w->zc);
    pthread_mutex_destroy(&w->sync_lock);
    free(w);
}

void tsdb__wal_mark(tsdb__wal *w)
{
    w->mark = wf_size(&w->f);
}

int tsdb__wal_cut(tsdb__wal *w, uint32_t *closed, tsdb_err *err)
{
    /* The ended segment is synced before the next one starts, so a failure leaves the writer
     * where it was (tsdb__wal_rollback then truncates the batch in the current segment). */
    int rc = tsdb__wal_cut_finish(w, err);
    if (rc)
        return rc;
    if (!w->broken) {
        rc = wf_flush(&w->f, err);
        if (rc == TSDB_OK)
            rc = tsdb__os_fdatasync(w->f.fd, err);
        if (rc)
            return rc;
    }
    uint32_t prev = w->seg;
    rc = open_segment(w, prev + 1, 0, 0, err);
    if (rc)
        return rc;
    w->broken = 0;
    if (closed)
        *closed = prev;
    return TSDB_OK;
}

int tsdb__wal_cut_begin(tsdb__wal *w, uint32_t *closed, tsdb_err *err)
{
    int rc = tsdb__wal_cut_finish(w, err);
    if (rc)
        return rc;
    int sync = !w->broken;
    if (sync && (rc = wf_flush(&w->f, err)) != TSDB_OK)
        return rc;
    uint32_t prev = w->seg;
    rc = open_segment(w, prev + 1, 1, sync, err);
    if (rc)
        return rc;
    w->broken = 0;
    if (closed)
        *closed = prev;
    return TSDB_OK;
}

int tsdb__wal_cut_finish(tsdb__wal *w, tsdb_err *err)
{
    /* The writer (segment full) and the maintenance thread may both finish a pending cut. */
    pthread_mutex_lock(&w->sync_lock);
    int fd = w->retired, sync = w->retired_sync;
    w->retired = -1;
    pthread_mutex_unlock(&w->sync_lock);
    if (fd < 0)
        return TSDB_OK;
    int rc = sync ? tsdb__os_fdatasync(fd, err) : TSDB_OK;
    tsdb__os_close(fd);
    return rc;
}

int tsdb__wal_log(tsdb__wal *w, const void *rec, size_t len, tsdb_err *err)
{
    if (len == 0 || len > TSDB__WAL_MAX_REC)
        return tsdb_errf(err, TSDB_EINVAL, -1, "wal record of %zu bytes", len);
    int zstd;
    const unsigned char *p = maybe_compress(rec, &len, &zstd, &w->z, &w->zc);
    uint64_t size = wf_size(&w->f);
    if (w->broken || (size > 0 && size + framed_size(len) > w->seg_bytes)) {
        int rc = tsdb__wal_cut(w, NULL, err);
        if (rc)
            return rc;
        w->mark = 0;
    }
    return wf_log(&w->f, p, len, zstd, err);
}

int tsdb__wal_flush(tsdb__wal *w, int sync, tsdb_err *err)
{
    int rc = wf_flush(&w->f, err);
    if (rc)
        return rc;
    atomic_store(&w->written, ((uint64_t)w->seg << 40) + wf_size(&w->f));
    if (sync) {
        rc = tsdb__os_fdatasync(w->f.fd, err);
        if (rc == TSDB_OK)
            atomic_store(&w->synced, atomic_load(&w->written));
    }
    return rc;
}

void tsdb__wal_rollback(tsdb__wal *w)
{
    if (tsdb__os_ftruncate(w->f.fd, w->mark, NULL) == TSDB_OK)
        tsdb__os_fdatasync(w->f.fd, NULL);
    w->broken = 1;
}

int tsdb__wal_sync_fd(tsdb__wal *w, tsdb_err *err)
{
    uint64_t target = atomic_load(&w->written);
    if (target == atomic_load(&w->synced))
        return TSDB_OK;
    pthread_mutex_lock(&w->sync_lock);
    int rc = tsdb__os_fdatasync(w->f.fd, err);
    pthread_mutex_unlock(&w->sync_lock);
    if (rc == TSDB_OK)
        atomic_store(&w->synced, target);
    return rc;
}

uint32_t tsdb__wal_segment(const tsdb__wal *w)
{
    return w->seg;
}

/* ---- Checkpoints
 * --------------------------------------------------------------------------------- */

struct tsdb__wal_ckpt {
    char dir[DIR_MAX];
    char final[4000];
    uint32_t upto;
    wfile f;
    tsdb_buf z;
    ZSTD_CCtx *zc;
};

int tsdb__wal_ckpt_begin(const char *dir, uint32_t upto, tsdb__wal_ckpt **out, tsdb_err *err)
{
    if (strlen(dir) >= DIR_MAX)
        return tsdb_errf(err, TSDB_EINVAL, -1, "wal directory path too long");
    tsdb__wal_ckpt *c = xcalloc(1, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    snprintf(c->final, sizeof(c->final), "%s/checkpoint.%08u", dir, upto);
    c->upto = upto;
    tsdb_buf_init(&c->z);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->final);
    c->f.fd = -1;
    int rc = wf_open(&c->f, tmp, err);
    if (rc) {
        tsdb_buf_fini(&c->z);
        free(c);
        return rc;
    }
    *out = c;
    return TSDB_OK;
}

int tsdb__wal_ckpt_log(tsdb__wal_ckpt *c, const void *rec, size_t len, tsdb_err *err)
{
    if (len == 0 || len > TSDB__WAL_MAX_REC)
        return tsdb_errf(err, TSDB_EINVAL, -1, "checkpoint record of %zu bytes", len);
    int zstd;
    const unsigned char *p = maybe_compress(rec, &len, &zstd, &c->z, &c->zc);
    return wf_log(&c->f, p, len, zstd, err);
}

void tsdb__wal_ckpt_abort(tsdb__wal_ckpt *c)
{
    if (!c)
        return;
    tsdb__os_close(c->f.fd);
    tsdb__os_unlink(c->f.path, NULL);
    tsdb_buf_fini(&c->z);
    ZSTD_freeCCtx(c->zc);
    free(c);
}

int tsdb__wal_ckpt_commit(tsdb__wal_ckpt *c, tsdb_err *err)
{
    int rc = wf_flush(&c->f, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync(c->f.fd, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_rename(c->f.path, c->final, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync_dir(c->dir, err);
    if (rc) {
        tsdb__wal_ckpt_abort(c);
        return rc;
    }
    tsdb__os_close(c->f.fd);
    /* The checkpoint is durable: what it supersedes may go. */
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n;
    if (tsdb__os_list_dir(c->dir, &a, &names, &n, NULL) == TSDB_OK) {
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            int k = parse_name(names[i], &v);
            if ((k == 1 && v <= c->upto) || (k == 2 && v < c->upto)) {
                char path[4400];
                snprintf(path, sizeof(path), "%s/%s", c->dir, names[i]);
                tsdb__os_unlink(path, NULL);
            }
        }
    }
    tsdb_arena_fini(&a);
    tsdb_buf_fini(&c->z);
    ZSTD_freeCCtx(c->zc);
    free(c);
    return TSDB_OK;
}
