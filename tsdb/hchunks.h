/* tsdb/hchunks.h -- head chunk files (internal): closed head chunks kept in segment files read
 * through read-only maps, so they cost page cache instead of process memory.
 *
 * A memory offload, not storage: durability stays with the WAL (whose checkpoints carry closed
 * chunks), so the folder is emptied when opened and when closed, and nothing here is ever read
 * back after a restart. See tsdb/hchunks.c for the layout, buffering and failure handling.
 *
 * A chunk is named by a reference (segment number << 32 | offset) plus its length, which the
 * caller keeps. Thread safety: every function may be called from any thread; an internal mutex
 * guards the segment table and the write buffer. The caller must guarantee that a reference is
 * not released while another thread reads it (the head reads and releases under its series'
 * stripe lock), since the last release of a segment unmaps and deletes it.
 */
#ifndef TSDB_HCHUNKS_H
#define TSDB_HCHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

#define TSDB__HCHUNKS_SEG_BYTES ((uint64_t)128 << 20) /* default segment size */
#define TSDB__HCHUNKS_BUF_BYTES ((size_t)256 << 10)   /* default write buffer */

typedef struct tsdb__hchunks tsdb__hchunks;

/* Creates dir if needed and deletes what it holds (segments of an earlier run). seg_bytes: a
 * segment's size limit (at most 4 GiB; 0 = default); buf_bytes: the write buffer (0 =
 * default, at most seg_bytes). No segment file is created until the first append. */
int tsdb__hchunks_open(const char *dir, uint64_t seg_bytes, size_t buf_bytes, tsdb__hchunks **out,
                       tsdb_err *err);
/* Process-wide sizes used when open is passed 0 (0 = the defaults above), so tests can make the
 * database's chunk files roll over and flush often. Call it before opening. */
void tsdb__hchunks_set_default_sizes(uint64_t seg_bytes, size_t buf_bytes);
/* Unmaps and deletes every segment (NULL allowed). References become invalid. */
void tsdb__hchunks_close(tsdb__hchunks *c);

/* Appends a chunk's bytes; on success *ref names it until released. On failure (a write, open
 * or map error, a chunk larger than a segment) the chunk is not stored and the caller keeps it
 * elsewhere; after a failed write the layer refuses appends for a while without trying the
 * disk, then tries again. */
int tsdb__hchunks_append(tsdb__hchunks *c, const void *p, size_t len, uint64_t *ref, tsdb_err *err);
/* Copies the len bytes of a live reference into dst (from the map, or from the write buffer
 * for bytes not written yet). */
void tsdb__hchunks_read(tsdb__hchunks *c, uint64_t ref, size_t len, void *dst);
/* Drops a reference. A segment whose last live chunk is released, and that is no longer the
 * one appended to, is unmapped and its file deleted. */
void tsdb__hchunks_release(tsdb__hchunks *c, uint64_t ref);
/* Drops the pages of every segment map from the process' resident memory (they stay in the page
 * cache): for after bulk reads such as a head cut and its checkpoint. */
void tsdb__hchunks_drop_pages(tsdb__hchunks *c);
/* Writes buffered bytes to the current segment (appends do so when the buffer fills). */
int tsdb__hchunks_flush(tsdb__hchunks *c, tsdb_err *err);

typedef struct tsdb__hchunks_stats {
    uint64_t n_segments; /* segment files present */
    uint64_t n_live;     /* live references */
    uint64_t buffered;   /* bytes in the write buffer */
    uint64_t failures;   /* appends refused since open */
} tsdb__hchunks_stats;
void tsdb__hchunks_stats_get(tsdb__hchunks *c, tsdb__hchunks_stats *st);

#endif
