/* tsdb/index.h -- the LMDB series index: ids, label sets, postings, names and values.
 *
 * The one cross-block structure. Series ids are global and never reused; every series ever
 * appended (head or blocks) has an entry until garbage collection removes series with no data
 * left. Only tsdb/index.c includes lmdb.h.
 *
 * Threads: one writer at a time (callers hold db->append_lock or are single-threaded); read
 * handles (tsdb_index_rd) may be used from any one thread at a time (MDB_NOTLS) and must be
 * ended promptly.
 */
#ifndef TSDB_INDEX_H
#define TSDB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

typedef struct tsdb_index tsdb_index;
typedef struct tsdb_index_rd tsdb_index_rd;

/* Opens or creates the environment in dir (a folder: data.mdb, lock.mdb). map_bytes 0 = 16 GiB.
 * MDB_MAP_FULL during a write grows the map (doubling) and retries, or returns TSDB_EFULL. */
int tsdb__index_open(const char *dir, size_t map_bytes, int read_only, tsdb_index **out,
                     tsdb_err *err);
void tsdb__index_close(tsdb_index *ix);

/* Resolves n label sets (sorted, validated) to series ids in ONE write transaction, creating ids
 * for the new ones. created[i] (if created != NULL) is set to 1 for new series. */
int tsdb__index_resolve(tsdb_index *ix, const tsdb_labels *sets, size_t n, uint64_t *ids,
                        uint8_t *created, tsdb_err *err);
/* Ensures series id exists with labels l (WAL replay: idempotent; keeps next id above id). */
int tsdb__index_put_series(tsdb_index *ix, uint64_t id, tsdb_labels l, tsdb_err *err);
/* Removes series (label records, postings, term counts) in one transaction (garbage collection). */
int tsdb__index_delete_series(tsdb_index *ix, const uint64_t *ids, size_t n, tsdb_err *err);
/* Next id that would be allocated. */
uint64_t tsdb__index_next_id(tsdb_index *ix);

/* Read handles: a read transaction for a consistent view. */
int tsdb__index_rd_begin(tsdb_index *ix, tsdb_index_rd **out, tsdb_err *err);
void tsdb__index_rd_end(tsdb_index_rd *r); /* NULL allowed */
/* Labels of a series, copied into the arena. TSDB_ENOTFOUND if unknown. */
int tsdb__index_rd_labels(tsdb_index_rd *r, uint64_t id, tsdb_arena *a, tsdb_labels *out);
/* Id of an exact label set, TSDB_ENOTFOUND if absent. */
int tsdb__index_rd_lookup(tsdb_index_rd *r, tsdb_labels l, uint64_t *id);
/* Sorted ids of series matching every matcher (in the arena). */
int tsdb__index_rd_select(tsdb_index_rd *r, const tsdb_matcher *const *ms, size_t n, tsdb_arena *a,
                          uint64_t **ids, size_t *n_ids, tsdb_err *err);
/* All label names / all values of one name, sorted, unique, in the arena. */
int tsdb__index_rd_names(tsdb_index_rd *r, tsdb_arena *a, tsdb_str **out, size_t *n);
int tsdb__index_rd_values(tsdb_index_rd *r, tsdb_str name, tsdb_arena *a, tsdb_str **out,
                          size_t *n);
/* Number of series with label name=value (postings length). */
int tsdb__index_rd_count(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n);
/* Calls fn for every series in id order (recovery, GC, tools); stops on non-zero return. */
int tsdb__index_rd_each(tsdb_index_rd *r, tsdb_arena *scratch,
                        int (*fn)(void *ctx, uint64_t id, tsdb_labels l), void *ctx);

/* Writes a compacted, consistent copy of the index into dir (created; dir/data.mdb). Callers
 * keep writers out while it runs (map growth must not happen under the copy). */
int tsdb__index_copy(tsdb_index *ix, const char *dir, tsdb_err *err);
/* Bytes of data.mdb on disk. */
uint64_t tsdb__index_disk_bytes(tsdb_index *ix);

/* Tests: select checks the remaining matchers against stored labels once at most n candidates
 * are left (default 1024); 0 forces pure postings algebra. */
void tsdb__index_set_filter_max(tsdb_index *ix, size_t n);
/* Budget of the in-memory term string cache (default 64 MiB) and the bytes it holds now. */
void tsdb__index_set_cache_max(tsdb_index *ix, size_t bytes);
size_t tsdb__index_cache_bytes(tsdb_index *ix);
/* Tests: every hashed term key (long values) collides, to exercise collision handling. */
void tsdb__index_set_weak_hash(tsdb_index *ix, int on);
/* Fuzzing: decodes p[0..n) both as the postings chunk of ids starting at first (every id below
 * limit) and as a series record. Returns 1 | 2 for what decoded (1: the postings chunk, 2: the
 * series record, 0: neither); aborts only if the two postings decoders (the run walker and the
 * id expander) disagree about a chunk both accept. */
int tsdb__index_fuzz_decode(uint64_t first, uint64_t limit, const unsigned char *p, size_t n);
/* Tests: writes (val != NULL) or deletes a raw entry of database db ("meta", "series", "terms",
 * "tstr", "postings") in its own transaction, to check that damage is detected. */
int tsdb__index_poke(tsdb_index *ix, const char *db, const void *key, size_t klen, const void *val,
                     size_t vlen);

#endif
