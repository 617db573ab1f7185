/* tsdb/hchunks.c -- head chunk files: closed head chunks appended to segment files and read
 * back through read-only maps.
 *
 * Layout. dir/NNNNNNNN (8 decimal digits, the segment number) holds chunk bytes back to back,
 * with no header and no framing: the head keeps each chunk's reference (segment << 32 | offset)
 * and length. Nothing is ever read back after a restart (the WAL rebuilds the head), so the files
 * carry no checksums and open empties the folder.
 *
 * Memory. Bytes reach the files through pwrite, never through a writable map, so written pages
 * are page cache, not this process' resident memory; each segment is mapped read-only once, at
 * its full size limit, when it is created (pages past the end of the file are never touched:
 * only written bytes are read). Reading a chunk faults its pages in; the kernel may drop them
 * again at any time, and tsdb__hchunks_drop_pages drops them after bulk reads (a head cut reads
 * every chunk it persists and its checkpoint every chunk it keeps).
 *
 * Write buffer. Appends copy into one buffer holding the not yet written tail of the current
 * segment, [buf_off, buf_off + buf_len); it is written when full, before a new segment starts,
 * and by tsdb__hchunks_flush. Reads of bytes at or after buf_off are served from the buffer
 * under the mutex; older bytes are copied from the map without it.
 *
 * Failures. A failed write leaves the buffer as it was (its chunks stay readable from it) and
 * makes appends fail for the next RETRY_AFTER calls without touching the disk; then the write is
 * tried again. A failed segment creation is handled the same way. The caller keeps chunks it
 * could not append in its own memory, so an error never loses data.
 *
 * Deletion. Each segment counts its live references. When the count reaches zero and the
 * segment is not the current one (or becomes non-current with a zero count), it leaves the table
 * under the mutex and is unmapped, closed and unlinked outside it. Safe because a reference is
 * only read while the caller guarantees it is live (see tsdb/hchunks.h).
 */
#include "tsdb/hchunks.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/os.h"

#define RETRY_AFTER 4096 /* appends refused after a failure before the disk is tried again */
#define NAME_MAX_   32

struct seg {
    uint32_t id;
    int fd;
    const unsigned char *map; /* seg_bytes long, read-only */
    uint64_t size;            /* bytes appended, buffered ones included */
    uint64_t live;            /* live references */
};

struct tsdb__hchunks {
    char *dir;
    uint64_t seg_bytes;
    pthread_mutex_t mu;
    struct seg **segs; /* ascending id; the last one is current when cur != NULL */
    size_t n_segs, cap_segs;
    struct seg *cur;
    uint32_t next_id;
    unsigned char *buf;
    size_t buf_cap, buf_len;
    uint64_t buf_off; /* offset in cur of buf[0] */
    uint64_t refuse;  /* appends still to refuse after a failure */
    uint64_t n_live, failures;
};

static void seg_path(const tsdb__hchunks *c, uint32_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%08u", c->dir, id);
}

/* Unmaps, closes and deletes a segment already out of the table. */
static void seg_destroy(tsdb__hchunks *c, struct seg *s)
{
    size_t cap = strlen(c->dir) + NAME_MAX_;
    char *path = xmalloc(cap);
    seg_path(c, s->id, path, cap);
    tsdb__os_munmap(s->map, (size_t)c->seg_bytes);
    tsdb__os_close(s->fd);
    tsdb__os_unlink(path, NULL);
    free(path);
    free(s);
}

static _Atomic uint64_t default_seg_bytes, default_buf_bytes;

void tsdb__hchunks_set_default_sizes(uint64_t seg_bytes, size_t buf_bytes)
{
    atomic_store(&default_seg_bytes, seg_bytes);
    atomic_store(&default_buf_bytes, buf_bytes);
}

int tsdb__hchunks_open(const char *dir, uint64_t seg_bytes, size_t buf_bytes, tsdb__hchunks **out,
                       tsdb_err *err)
{
    if (seg_bytes == 0)
        seg_bytes = atomic_load(&default_seg_bytes);
    if (seg_bytes == 0)
        seg_bytes = TSDB__HCHUNKS_SEG_BYTES;
    if (seg_bytes > UINT32_MAX || seg_bytes > SIZE_MAX)
        return tsdb_errf(err, TSDB_EINVAL, -1, "head chunk segments larger than 4 GiB");
    if (buf_bytes == 0)
        buf_bytes = (size_t)atomic_load(&default_buf_bytes);
    if (buf_bytes == 0)
        buf_bytes = TSDB__HCHUNKS_BUF_BYTES;
    if (buf_bytes > seg_bytes)
        buf_bytes = (size_t)seg_bytes;
    int rc = TSDB_OK;
    if (tsdb__os_exists(dir))
        rc = tsdb__os_remove_all(dir, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_mkdir_p(dir, err);
    if (rc)
        return rc;
    tsdb__hchunks *c = xcalloc(1, sizeof(*c));
    size_t n = strlen(dir);
    c->dir = xmalloc(n + 1);
    memcpy(c->dir, dir, n + 1);
    c->seg_bytes = seg_bytes;
    c->buf_cap = buf_bytes;
    c->next_id = 1;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return TSDB_OK;
}

void tsdb__hchunks_close(tsdb__hchunks *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_segs; i++)
        seg_destroy(c, c->segs[i]);
    free(c->segs);
    free(c->buf);
    tsdb__os_remove_all(c->dir, NULL);
    pthread_mutex_destroy(&c->mu);
    free(c->dir);
    free(c);
}

/* Writes the buffer (mutex held). */
static int flush_locked(tsdb__hchunks *c, tsdb_err *err)
{
    if (c->buf_len == 0)
        return TSDB_OK;
    int rc = tsdb__os_pwrite(c->cur->fd, c->buf, c->buf_len, c->buf_off, err);
    if (rc)
        return rc;
    c->buf_off += c->buf_len;
    c->buf_len = 0;
    return TSDB_OK;
}

/* Index of segment id in the table, or n_segs (mutex held). */
static size_t seg_find(const tsdb__hchunks *c, uint32_t id)
{
    size_t lo = 0, hi = c->n_segs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->segs[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_segs && c->segs[lo]->id == id ? lo : c->n_segs;
}

static struct seg *seg_remove(tsdb__hchunks *c, size_t i)
{
    struct seg *s = c->segs[i];
    memmove(&c->segs[i], &c->segs[i + 1], (c->n_segs - i - 1) * sizeof(*c->segs));
    c->n_segs--;
    return s;
}

/* Ends the current segment (its buffer written) and starts a new one. *dead receives the old
 * segment when nothing references it any more, for the caller to destroy outside the mutex. */
static int roll_locked(tsdb__hchunks *c, struct seg **dead, tsdb_err *err)
{
    int rc = c->cur ? flush_locked(c, err) : TSDB_OK;
    if (rc)
        return rc;
    size_t cap = strlen(c->dir) + NAME_MAX_;
    char *path = xmalloc(cap);
    seg_path(c, c->next_id, path, cap);
    struct seg *s = xcalloc(1, sizeof(*s));
    s->id = c->next_id;
    s->fd = -1;
    rc = tsdb__os_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, &s->fd, err);
    const void *map = NULL;
    if (rc == TSDB_OK)
        rc = tsdb__os_mmap_ro(s->fd, (size_t)c->seg_bytes, &map, err);
    if (rc) {
        tsdb__os_close(s->fd);
        tsdb__os_unlink(path, NULL);
        free(path);
        free(s);
        return rc;
    }
    free(path);
    s->map = map;
    c->next_id++;
    if (c->cur && c->cur->live == 0)
        *dead = seg_remove(c, c->n_segs - 1);
    if (c->n_segs == c->cap_segs) {
        c->cap_segs = c->cap_segs ? c->cap_segs * 2 : 4;
        c->segs = xrealloc(c->segs, c->cap_segs * sizeof(*c->segs));
    }
    c->segs[c->n_segs++] = s;
    c->cur = s;
    c->buf_off = 0;
    c->buf_len = 0;
    return TSDB_OK;
}

int tsdb__hchunks_append(tsdb__hchunks *c, const void *p, size_t len, uint64_t *ref, tsdb_err *err)
{
    if (len == 0 || len > c->seg_bytes || len > c->buf_cap)
        return tsdb_errf(err, TSDB_EINVAL, -1, "head chunk of %zu bytes does not fit a segment",
                         len);
    struct seg *dead = NULL;
    int rc = TSDB_OK;
    pthread_mutex_lock(&c->mu);
    if (c->refuse > 0) {
        c->refuse--;
        c->failures++;
        pthread_mutex_unlock(&c->mu);
        return tsdb_errf(err, TSDB_EIO, -1, "head chunk files unavailable after a write error");
    }
    if (!c->cur || c->cur->size + len > c->seg_bytes)
        rc = roll_locked(c, &dead, err);
    else if (c->buf_len + len > c->buf_cap)
        rc = flush_locked(c, err);
    if (rc == TSDB_OK) {
        if (!c->buf)
            c->buf = xmalloc(c->buf_cap);
        struct seg *s = c->cur;
        memcpy(c->buf + c->buf_len, p, len);
        c->buf_len += len;
        *ref = (uint64_t)s->id << 32 | s->size;
        s->size += len;
        s->live++;
        c->n_live++;
    } else {
        c->refuse = RETRY_AFTER;
        c->failures++;
    }
    pthread_mutex_unlock(&c->mu);
    if (dead)
        seg_destroy(c, dead);
    return rc;
}

void tsdb__hchunks_read(tsdb__hchunks *c, uint64_t ref, size_t len, void *dst)
{
    uint32_t id = (uint32_t)(ref >> 32);
    uint64_t off = ref & UINT32_MAX;
    pthread_mutex_lock(&c->mu);
    if (c->cur && c->cur->id == id && off >= c->buf_off) {
        memcpy(dst, c->buf + (off - c->buf_off), len);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    size_t i = seg_find(c, id);
    const unsigned char *map = i < c->n_segs ? c->segs[i]->map : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!map) { /* a reference that is not live: a caller bug */
        TSDB_LOG_ERROR("hchunks", "read of a released chunk reference %llx",
                       (unsigned long long)ref);
        memset(dst, 0, len);
        return;
    }
    memcpy(dst, map + off, len);
}

void tsdb__hchunks_release(tsdb__hchunks *c, uint64_t ref)
{
    uint32_t id = (uint32_t)(ref >> 32);
    struct seg *dead = NULL;
    pthread_mutex_lock(&c->mu);
    size_t i = seg_find(c, id);
    if (i < c->n_segs && c->segs[i]->live > 0) {
        struct seg *s = c->segs[i];
        s->live--;
        c->n_live--;
        if (s->live == 0 && s != c->cur)
            dead = seg_remove(c, i);
    }
    pthread_mutex_unlock(&c->mu);
    if (dead)
        seg_destroy(c, dead);
}

void tsdb__hchunks_drop_pages(tsdb__hchunks *c)
{
    /* Under the mutex, so no segment is unmapped (and its range reused) meanwhile. */
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_segs; i++)
        tsdb__os_unmap_pages(c->segs[i]->map, (size_t)c->seg_bytes);
    pthread_mutex_unlock(&c->mu);
}

int tsdb__hchunks_flush(tsdb__hchunks *c, tsdb_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = c->cur ? flush_locked(c, err) : TSDB_OK;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void tsdb__hchunks_stats_get(tsdb__hchunks *c, tsdb__hchunks_stats *st)
{
    pthread_mutex_lock(&c->mu);
    st->n_segments = c->n_segs;
    st->n_live = c->n_live;
    st->buffered = c->buf_len;
    st->failures = c->failures;
    pthread_mutex_unlock(&c->mu);
}
