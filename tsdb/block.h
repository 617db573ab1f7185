/* tsdb/block.h -- immutable block files (internal): writer and mmap reader. Layout in
 * tsdb/block.c.
 *
 * A block is reference-counted: the block list holds one reference, every querier that uses it
 * another. The last unref unmaps it and, if it was marked deleted, unlinks its files. Readers
 * may use a block from any thread; tombstones are guarded by the block's own mutex.
 */
#ifndef TSDB_BLOCK_H
#define TSDB_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/head.h"

#define TSDB__BLOCK_HDR    64
#define TSDB__BLOCK_FOOTER 48

typedef struct tsdb__block_meta {
    int64_t mint, maxt; /* [mint, maxt) */
    uint32_t level;     /* 0 = cut from the head; 1, 2 = merged 5x, 25x */
    uint64_t n_series, n_chunks, n_samples;
} tsdb__block_meta;

typedef struct tsdb__block tsdb__block;

/* A block chunk in its stored encoding. */
#define TSDB__ENC_XOR   0
#define TSDB__ENC_DENSE 1
typedef struct tsdb__bchunk {
    int64_t mint, maxt;
    const unsigned char *p;
    size_t len;
    uint8_t enc; /* TSDB__ENC_XOR or TSDB__ENC_DENSE */
} tsdb__bchunk;

/* Samples a chunk of either encoding declares (0 if too short). */
size_t tsdb__bchunk_count(const tsdb__bchunk *c);
/* Decodes a whole chunk of either encoding into out (capacity cap); TSDB_ECORRUPT if bad. */
int tsdb__bchunk_decode(const tsdb__bchunk *c, tsdb_sample *out, size_t cap, size_t *n);

/* Maps and validates path (header, footer, table CRCs, table consistency). */
int tsdb__block_open(const char *path, tsdb__block **out, tsdb_err *err);
/* Validates an image in borrowed memory (fuzzing, tools): no file, no tombstones. */
int tsdb__block_open_mem(const void *p, size_t len, tsdb__block **out, tsdb_err *err);
void tsdb__block_ref(tsdb__block *b);
void tsdb__block_unref(tsdb__block *b); /* NULL allowed */
/* The files go when the last reference does. */
void tsdb__block_mark_deleted(tsdb__block *b);

const tsdb__block_meta *tsdb__block_meta_get(const tsdb__block *b);
const char *tsdb__block_path(const tsdb__block *b); /* "" for a memory image */
uint64_t tsdb__block_bytes(const tsdb__block *b);
uint32_t tsdb__block_seq(const tsdb__block *b); /* from the file name; 0 if none */

/* Chunks of series id overlapping [mint, maxt], CRC-checked; the array is in the arena and the
 * bytes point into the map (valid while a reference is held) or, for a compressed run or a
 * chunk sharing another's timestamps, into the arena. 0 chunks if the block lacks the series. */
int tsdb__block_series(tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                       tsdb__chunk_ref **out, size_t *n, tsdb_err *err);
/* The same chunks in their stored encodings (DENSE ones are not converted to XOR). */
int tsdb__block_series_raw(tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                           tsdb__bchunk **out, size_t *n, tsdb_err *err);
/* Number of series id's chunks overlapping [mint, maxt], from the meta table alone (no chunk
 * is read); 0 if the block lacks the series. */
size_t tsdb__block_series_overlaps(const tsdb__block *b, uint64_t id, int64_t mint, int64_t maxt);
/* Does the block hold series id? */
int tsdb__block_has_series(const tsdb__block *b, uint64_t id);
/* Positional access for compaction and tools. */
int tsdb__block_series_at(const tsdb__block *b, size_t i, uint64_t *id, uint32_t *first,
                          uint32_t *count);
/* Chunk k of an uncompressed series, its bytes as stored (pointing into the map): XOR, or DENSE
 * (tsdb_chunk_count works on both; tsdb__block_series gives XOR). TSDB_EINVAL for a chunk
 * inside a compressed run or one sharing another chunk's timestamps: read those through
 * tsdb__block_series. */
int tsdb__block_chunk(tsdb__block *b, uint32_t k, tsdb__chunk_ref *out, tsdb_err *err);
/* Deep check: every chunk's CRC and encoding. */
int tsdb__block_verify(tsdb__block *b, tsdb_err *err);

/* Tombstones: deleted [mint, maxt] ranges per series, persisted in <path>.tomb. */
int tsdb__block_tomb_add(tsdb__block *b, const uint64_t *ids, size_t n, int64_t mint, int64_t maxt,
                         tsdb_err *err);
size_t tsdb__block_tomb_get(tsdb__block *b, uint64_t id, tsdb_arena *a, int64_t **ranges);
size_t tsdb__block_tomb_count(tsdb__block *b);

/* Writer: series must come in ascending id order; chunks of a series in ascending time. */
typedef struct tsdb__block_writer tsdb__block_writer;
int tsdb__block_writer_begin(const char *path, int64_t mint, int64_t maxt, uint32_t level,
                             tsdb__block_writer **out, tsdb_err *err);
/* Packs (default off): each XOR chunk becomes DENSE when that is smaller (tsdb/chunk_dense.h),
 * runs of consecutive chunks become one DENSE chunk of up to 1024 samples when that is smaller,
 * a DENSE chunk whose timestamps equal an earlier one's stores only its values, and a series
 * without DENSE chunks becomes one zstd-compressed run when that saves at least an eighth. */
void tsdb__block_writer_compress(tsdb__block_writer *w, int on);
int tsdb__block_writer_add(tsdb__block_writer *w, uint64_t id, const tsdb__chunk_ref *c, size_t n,
                           tsdb_err *err);
/* Same, for chunks in either encoding (a merge copying stored chunks). */
int tsdb__block_writer_add_raw(tsdb__block_writer *w, uint64_t id, const tsdb__bchunk *c, size_t n,
                               tsdb_err *err);
/* Writes tables, footer and header, fsyncs, renames path.tmp to path, fsyncs the directory.
 * Frees w in every case. */
int tsdb__block_writer_commit(tsdb__block_writer *w, tsdb_err *err);
void tsdb__block_writer_abort(tsdb__block_writer *w); /* NULL allowed */

#endif
