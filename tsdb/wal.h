/* tsdb/wal.h -- the segmented write-ahead log (internal). Layout in tsdb/wal.c.
 *
 * A tsdb__wal is used by one thread at a time (the appender, under db->append_lock), except
 * tsdb__wal_sync_fd, which the maintenance thread may call concurrently.
 */
#ifndef TSDB_WAL_H
#define TSDB_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

#define TSDB__WAL_PAGE     32768
#define TSDB__WAL_HDR      7
#define TSDB__WAL_MAX_REC  (64u << 20) /* largest record, compressed or not */
#define TSDB__WAL_ZSTD_MIN 4096        /* records at least this long are zstd-compressed */

/* Called once per complete record; rec is borrowed for the call. Non-zero stops the scan and
 * is returned. */
typedef int (*tsdb__wal_fn)(void *ctx, const unsigned char *rec, size_t len);

/* Decodes the fragments of one segment image. Calls fn for each complete record. *good_end is
 * the offset just past the last complete record. Returns 0 at a clean end, TSDB_ECORRUPT at a
 * torn or damaged fragment (nothing after it is delivered), or fn's non-zero result. */
int tsdb__wal_scan(const unsigned char *p, size_t len, tsdb__wal_fn fn, void *ctx,
                   size_t *good_end);

/* Replays dir: the newest checkpoint, then every later segment in order. A torn or corrupt
 * segment tail is logged and (when repair) truncated at its last good record; replay goes on
 * with the next segment. Stale files (temporary checkpoints, segments a checkpoint superseded)
 * are removed when repair. *next_seg is one past the highest segment number seen (>= 1). */
int tsdb__wal_replay(const char *dir, int repair, tsdb__wal_fn fn, void *ctx, uint32_t *next_seg,
                     tsdb_err *err);

typedef struct tsdb__wal tsdb__wal;

/* Starts writing dir/<seg> (a new segment). seg_bytes 0 = 128 MiB. */
int tsdb__wal_open(const char *dir, uint32_t seg, size_t seg_bytes, tsdb__wal **out, tsdb_err *err);
/* Flushes, fsyncs and closes. NULL allowed. */
void tsdb__wal_close(tsdb__wal *w);
/* Remembers the current end as the start of a batch (for rollback). */
void tsdb__wal_mark(tsdb__wal *w);
/* Appends one record (buffered; full pages are written as they fill). A record never crosses a
 * segment: a new segment is started first when it would not fit. */
int tsdb__wal_log(tsdb__wal *w, const void *rec, size_t len, tsdb_err *err);
/* Writes buffered bytes to the file; with sync also fdatasyncs it. */
int tsdb__wal_flush(tsdb__wal *w, int sync, tsdb_err *err);
/* After a failed log/flush: cuts the file back to the mark (best effort) and makes the next
 * record start a new segment, so a half-written batch can never be replayed in the middle. */
void tsdb__wal_rollback(tsdb__wal *w);
/* fdatasyncs the current segment if anything was written since the last sync. Safe to call
 * from another thread than the writer. */
int tsdb__wal_sync_fd(tsdb__wal *w, tsdb_err *err);
/* Ends the current segment (flushed and fsynced) and starts the next; *closed is the number of
 * the segment just closed. */
int tsdb__wal_cut(tsdb__wal *w, uint32_t *closed, tsdb_err *err);
/* tsdb__wal_cut in two steps, so the fdatasync of the ended segment can run without the append
 * lock: _begin flushes it and starts the next segment (appends may go on at once), _finish
 * fdatasyncs and closes it. Call _finish before relying on the ended segment being durable
 * (before a checkpoint that supersedes it). _begin (also when tsdb__wal_log starts a new
 * segment because the current one is full) and tsdb__wal_close finish a pending one first;
 * _finish may run in another thread than the writer. */
int tsdb__wal_cut_begin(tsdb__wal *w, uint32_t *closed, tsdb_err *err);
int tsdb__wal_cut_finish(tsdb__wal *w, tsdb_err *err);
uint32_t tsdb__wal_segment(const tsdb__wal *w);

/* Checkpoints: dir/checkpoint.<upto> holds records that supersede segments <= upto. */
typedef struct tsdb__wal_ckpt tsdb__wal_ckpt;
int tsdb__wal_ckpt_begin(const char *dir, uint32_t upto, tsdb__wal_ckpt **out, tsdb_err *err);
int tsdb__wal_ckpt_log(tsdb__wal_ckpt *c, const void *rec, size_t len, tsdb_err *err);
/* Makes the checkpoint durable (fsync, rename, fsync dir), then deletes the segments and the
 * older checkpoints it supersedes. Frees c in every case. */
int tsdb__wal_ckpt_commit(tsdb__wal_ckpt *c, tsdb_err *err);
void tsdb__wal_ckpt_abort(tsdb__wal_ckpt *c); /* NULL allowed; removes the temporary file */

#endif
