/* tsdb/head.h -- the in-memory head (internal): recent series and their Gorilla chunks.
 *
 * Locking (DESIGN 2.6): the head has one writer at a time (the caller holds db->append_lock),
 * which alone creates series, checks ingest rules and appends samples. Readers find series by id
 * under the map read lock and copy chunk bytes under the series' stripe lock. Removing series
 * (truncation) needs the append lock and the map write lock.
 *
 * Memory: closed chunks go to the head chunk files (tsdb/hchunks.h) when the database has them,
 * so a series holds only its open chunk and a small reference per closed one. I/O happens only
 * there; a chunk the files refuse stays in the heap.
 */
#ifndef TSDB_HEAD_H
#define TSDB_HEAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/chunk.h"
#include "tsdb/hchunks.h"
#include "tsdb/tsdb.h"

#define TSDB__HEAD_STRIPES 4096

/* A closed chunk, 24 bytes: its bytes live in the head chunk files (tsdb/hchunks.h) or, without
 * them or when writing them failed, in an exact-size heap copy. Its last timestamp is mint +
 * span: the appender cuts a chunk before it spans 2^32 ms (about 49 days), and replay refuses
 * closed chunks that do, or that are over TSDB__HCHUNK_MAX_LEN bytes or TSDB__HCHUNK_MAX_N
 * samples (the head cuts at TSDB_CHUNK_SAMPLES_MAX, far below). */
typedef struct tsdb__hchunk {
    int64_t mint;
    union {
        unsigned char *p; /* in_file == 0: heap copy, exactly len bytes */
        uint64_t ref;     /* in_file == 1: chunk file reference */
    } at;
    uint32_t span;
    uint32_t len : 20, n : 11, in_file : 1;
} tsdb__hchunk;
#define TSDB__HCHUNK_MAX_LEN ((1u << 20) - 1)
#define TSDB__HCHUNK_MAX_N   ((1u << 11) - 1)

/* Out-of-order samples of a series, sorted by t, unique t (allocated on the first one). */
typedef struct tsdb__hooo {
    uint32_t n, cap;
    tsdb_sample v[];
} tsdb__hooo;

/* One allocation per series: the fields, then the compact labels (next to the id and hash that
 * map lookups compare first). 128 bytes before the labels. */
typedef struct tsdb__hseries {
    /* Writer only (append lock). */
    int64_t last_t; /* INT64_MIN when the series has no sample yet */
    uint64_t last_bits;
    int64_t app_end; /* the open chunk must be cut before this t (block boundary) */
    /* Guarded by the stripe lock (writer changes under it; readers copy under it). */
    int64_t app_mint;     /* first t of the open chunk (its last is app.t) */
    tsdb_chunk_app app;   /* open chunk; app.n == 0 when there is none */
    tsdb__hchunk *chunks; /* closed chunks, ascending */
    uint32_t n_chunks, cap_chunks;
    tsdb__hooo *ooo; /* NULL until the first out-of-order sample */
    /* Immutable after creation. */
    uint64_t id, hash;
    uint32_t lbl_len;
    uint16_t n_labels;
    /* Writer only. */
    uint8_t wal_logged; /* a SERIES record for it is in the current WAL */
    /* Immutable: compact labels, n_labels × (uvarint len, name, uvarint len, value). */
    unsigned char lbl[];
} tsdb__hseries;

/* Out-of-order samples a series may hold before more are refused. */
#define TSDB__HEAD_OOO_MAX 4096

/* A chunk copied out for a reader (bytes in the reader's arena). */
typedef struct tsdb__chunk_ref {
    int64_t mint, maxt;
    const unsigned char *p;
    size_t len;
} tsdb__chunk_ref;

typedef struct tsdb__head tsdb__head;

tsdb__head *tsdb__head_new(int64_t block_ms);
void tsdb__head_free(tsdb__head *h); /* NULL allowed; closes the chunk files */
/* Before the first sample: from now on closed chunks go to these chunk files (the head owns
 * and closes them). Without files every closed chunk stays in the heap. */
void tsdb__head_set_files(tsdb__head *h, tsdb__hchunks *files);

/* Writer: finds the series with sorted labels l and hash, or NULL. */
tsdb__hseries *tsdb__head_get(tsdb__head *h, uint64_t hash, tsdb_labels l);
/* Writer: starts loading the map slot of a label hash (a lookup follows soon). */
void tsdb__head_prefetch(tsdb__head *h, uint64_t hash);
/* Writer: starts loading the id map slot of id (replay looks ahead). */
void tsdb__head_prefetch_id(tsdb__head *h, uint64_t id);
/* Writer: the series with this id, or NULL. */
tsdb__hseries *tsdb__head_get_id(tsdb__head *h, uint64_t id);
/* Writer: creates a series (id must be new to the head). */
tsdb__hseries *tsdb__head_create(tsdb__head *h, uint64_t id, uint64_t hash, tsdb_labels l);
/* Decodes a series' compact labels into the arena. */
tsdb_labels tsdb__hseries_labels(const tsdb__hseries *s, tsdb_arena *a);

/* Writer: checks one sample against the ingest rules and, if acceptable, records it as the
 * series' last sample. Returns 1 = append it, 0 = identical to the last sample (accept silently),
 * TSDB_EOOO / TSDB_EDUP / TSDB_ETOO_OLD. */
int tsdb__head_check(tsdb__head *h, tsdb__hseries *s, int64_t t, double v, int64_t min_valid);
/* Writer: for a sample tsdb__head_check refused as out of order or too old, checks it against
 * the out-of-order window (t >= ooo_min): 2 = store it out of order, 0 = identical to a stored
 * out-of-order sample, TSDB_EDUP, or TSDB_EOOO when outside the window or the series holds
 * TSDB__HEAD_OOO_MAX out-of-order samples already. */
int tsdb__head_check_ooo(tsdb__head *h, tsdb__hseries *s, int64_t t, double v, int64_t ooo_min);
/* Writer: stores an out-of-order sample (takes the stripe lock). */
void tsdb__head_apply_ooo(tsdb__head *h, tsdb__hseries *s, int64_t t, double v);
/* Writer: appends an accepted sample to the series' chunks (takes the stripe lock). */
void tsdb__head_apply(tsdb__head *h, tsdb__hseries *s, int64_t t, double v);

/* Reader: copies the chunks of series id overlapping [mint, maxt] into the arena; *out is an
 * arena array, sorted by mint. Returns the count (0 if the series is not in the head). */
size_t tsdb__head_copy(tsdb__head *h, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                       tsdb__chunk_ref **out);

/* Snapshot of the series pointers, sorted by id (heap array, caller frees). Only the thread that
 * truncates (maintenance) may use the pointers after the call. */
tsdb__hseries **tsdb__head_list(tsdb__head *h, size_t *n);
/* Copies chunks of s overlapping [mint, maxt] like tsdb__head_copy, for a listed series. */
size_t tsdb__head_copy_series(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt,
                              tsdb_arena *a, tsdb__chunk_ref **out);

/* Which parts tsdb__head_copy_parts copies. */
#define TSDB__HEAD_CLOSED 1 /* closed in-order chunks */
#define TSDB__HEAD_OPEN   2 /* the open chunk */
#define TSDB__HEAD_OOO    4 /* out-of-order samples, encoded as chunks */
#define TSDB__HEAD_ALL    7
size_t tsdb__head_copy_parts(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt, int parts,
                             tsdb_arena *a, tsdb__chunk_ref **out);
/* All parts at once, consistently: the first *n_closed refs are closed in-order chunks. */
size_t tsdb__head_copy_split(tsdb__head *h, tsdb__hseries *s, int64_t mint, tsdb_arena *a,
                             tsdb__chunk_ref **out, size_t *n_closed);
/* Writer (replay): adds a closed chunk after the series' data. Returns 1 added, 0 skipped
 * (the series has an open chunk or data at or after mint), TSDB_ECORRUPT if the bytes do not
 * decode to strictly increasing samples from mint to maxt. */
int tsdb__head_add_chunk(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt,
                         const unsigned char *p, size_t len);

/* Maintenance: from now on an open chunk that started before t is closed when a sample at or
 * after t arrives, so no chunk spans t (a cut that ends inside a block range). */
void tsdb__head_set_chunk_floor(tsdb__head *h, int64_t t);
/* Maintenance: after reading many closed chunks (a cut, a checkpoint), drops their file pages
 * from resident memory (see tsdb__hchunks_drop_pages); nothing without chunk files. */
void tsdb__head_drop_pages(tsdb__head *h);
/* Maintenance: drops chunks that end before t (their data is in a block). */
void tsdb__head_truncate_chunks(tsdb__head *h, int64_t t);
/* Maintenance with the append lock held: removes series with no chunks whose last sample is
 * before t; recomputes the head's time range. Returns how many were removed. */
size_t tsdb__head_gc(tsdb__head *h, int64_t t);
/* Like tsdb__head_gc; also returns (heap array, caller frees) the ids of removed series that
 * never held a sample in this head: their index entries may be orphans. */
size_t tsdb__head_gc_empty(tsdb__head *h, int64_t t, uint64_t **empty, size_t *n_empty);

/* Statistics (approximate under concurrent appends). */
typedef struct tsdb__head_stats {
    uint64_t n_series, n_samples, n_chunks;
    int64_t mint, maxt; /* INT64_MAX / INT64_MIN when empty */
} tsdb__head_stats;
void tsdb__head_stats_get(tsdb__head *h, tsdb__head_stats *st);

/* Head tombstones (deleted ranges of head series), guarded by their own lock. */
void tsdb__head_tomb_add(tsdb__head *h, uint64_t id, int64_t mint, int64_t maxt);
/* Copies the tombstones of id into the arena; returns the count. */
size_t tsdb__head_tomb_get(tsdb__head *h, uint64_t id, tsdb_arena *a, int64_t **ranges);
/* All tombstones (heap copy, caller frees): triples id, mint, maxt. */
size_t tsdb__head_tomb_all(tsdb__head *h, int64_t **triples);
/* Drops tombstones that end before t. */
void tsdb__head_tomb_truncate(tsdb__head *h, int64_t t);

#endif
