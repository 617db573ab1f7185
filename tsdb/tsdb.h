/* tsdb/tsdb.h -- the storage engine's public interface (the embedded API).
 *
 * A tsdb is one data directory: a write-ahead log, an in-memory head of Gorilla chunks,
 * immutable memory-mapped block files and one LMDB index. A program opens it, appends batches
 * of samples, and reads through queriers. See tsdb/db.c for the invariants.
 *
 * Threads: one tsdb handle may be shared by any number of threads. Appends are serialised
 * internally (one writer at a time); queriers never block appends for long. A querier, and the
 * sets and iterators it hands out, belong to one thread at a time.
 *
 * Errors: every fallible call returns 0 (TSDB_OK) or a negative TSDB_E* code (tsdb/base.h) and
 * fills the optional trailing tsdb_err with a human message. Out-params are written only on
 * success.
 */
#ifndef TSDB_TSDB_H
#define TSDB_TSDB_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

typedef struct tsdb tsdb;                       /* opaque; one per data directory */
typedef struct tsdb_querier tsdb_querier;       /* opaque; a time range + snapshot */
typedef struct tsdb_series_set tsdb_series_set; /* opaque; owned by its querier */
typedef struct tsdb_iter tsdb_iter;             /* opaque; owned by its querier */

/* ---- Labels, samples, matchers -------------------------------------------------------------- */

typedef struct tsdb_label {
    tsdb_str name, value;
} tsdb_label;

/* A label set: sorted by name, names unique, no empty values (an empty value means "absent"). */
typedef struct tsdb_labels {
    const tsdb_label *v;
    size_t n;
} tsdb_labels;

typedef struct tsdb_sample {
    int64_t t; /* ms since the epoch */
    double v;
} tsdb_sample;

/* The staleness marker: a NaN with this exact bit pattern ends a series (PROTOCOLS.md 2.12). */
#define TSDB_STALE_NAN_BITS 0x7ff0000000000002ULL
int tsdb_is_stale_nan(double v);
double tsdb_stale_nan(void);

/* Label-set helpers (tsdb/labels.c). */
/* Sorts v[0..n) by name in place. */
void tsdb_labels_sort(tsdb_label *v, size_t n);
/* Checks a sorted label set: valid metric/label names, no duplicates, no empty values
 * (callers drop empty ones first), __name__ present when require_name. TSDB_EINVAL + message. */
int tsdb_labels_validate(tsdb_labels l, int require_name, tsdb_err *err);
int tsdb_label_name_valid(tsdb_str name);  /* [a-zA-Z_][a-zA-Z0-9_]* */
int tsdb_metric_name_valid(tsdb_str name); /* [a-zA-Z_:][a-zA-Z0-9_:]* */
/* Value of a label, or an empty str if absent. */
tsdb_str tsdb_labels_get(tsdb_labels l, tsdb_str name);
/* Hash of a sorted label set (keyed siphash over a canonical encoding). */
uint64_t tsdb_labels_hash(tsdb_labels l);
int tsdb_labels_equal(tsdb_labels a, tsdb_labels b);
int tsdb_labels_cmp(tsdb_labels a, tsdb_labels b); /* Prometheus' labels.Compare order */
/* Deep copy into the arena. */
tsdb_labels tsdb_labels_copy(tsdb_labels l, tsdb_arena *a);
/* Formats as {a="b", c="d"} (or name{...}) into a NUL-terminated arena string. */
const char *tsdb_labels_format(tsdb_labels l, tsdb_arena *a);

enum tsdb_match_op { TSDB_MATCH_EQ, TSDB_MATCH_NE, TSDB_MATCH_RE, TSDB_MATCH_NRE };
typedef struct tsdb_matcher tsdb_matcher; /* compiled; lives in the arena given to new */

/* Compiles a matcher. Regexes use RE2 syntax through PCRE2, fully anchored (^(?:re)$), with
 * match and depth limits so a hostile pattern cannot hang a query. The matcher and its compiled
 * code are allocated from a (PCRE2 allocates through the arena) and live until tsdb_arena_fini.
 * Returns TSDB_EINVAL with a message for a bad regex. */
int tsdb_matcher_new(enum tsdb_match_op op, tsdb_str name, tsdb_str value, tsdb_arena *a,
                     tsdb_matcher **out, tsdb_err *err);
enum tsdb_match_op tsdb_matcher_op(const tsdb_matcher *m);
tsdb_str tsdb_matcher_name(const tsdb_matcher *m);
tsdb_str tsdb_matcher_value(const tsdb_matcher *m);
/* Does value v (empty = label absent) satisfy m? */
int tsdb_matcher_matches(const tsdb_matcher *m, tsdb_str v);
/* Does the label set satisfy every matcher? */
int tsdb_matchers_match(const tsdb_matcher *const *ms, size_t n, tsdb_labels l);

/* ---- Open, close, append -------------------------------------------------------------------- */

typedef struct tsdb_opts {
    const char *dir;          /* data directory, created if missing */
    int64_t retention_ms;     /* 0 = default 15 d; <0 = keep forever */
    uint64_t retention_bytes; /* 0 = off */
    int64_t block_ms;         /* 0 = default 2 h; levels 1x, 5x, 25x */
    size_t wal_segment_bytes; /* 0 = default 128 MiB */
    int wal_fsync_ms;         /* 0 = fsync every batch before returning; >0 = every N ms */
    int64_t ooo_window_ms;    /* out-of-order window; 0 = off (Prometheus' default) */
    size_t index_map_bytes;   /* LMDB map size; 0 = default 16 GiB (sparse) */
    int no_maintenance;       /* 1 = no background thread (tests drive tsdb_maintain) */
    int read_only;            /* 1 = open for inspection: no WAL replay writes, no lock */
} tsdb_opts;

/* Fills o with defaults (dir stays NULL). */
void tsdb_opts_default(tsdb_opts *o);

/* Opens (creating if needed) the data directory: takes the LOCK, opens the index, maps the
 * blocks, replays the WAL (truncating a torn tail), starts the maintenance thread.
 * Returns TSDB_ELOCKED if another process holds the directory, TSDB_EIO/ECORRUPT otherwise. */
int tsdb_open(const tsdb_opts *o, tsdb **out, tsdb_err *err);
/* Stops maintenance, fsyncs the WAL, closes everything. NULL allowed. */
void tsdb_close(tsdb *db);

typedef struct tsdb_batch_series {
    tsdb_labels labels;         /* need not be sorted; validated by tsdb_append */
    const tsdb_sample *samples; /* ascending t within a series */
    size_t n_samples;
} tsdb_batch_series;

typedef struct tsdb_batch {
    const tsdb_batch_series *series;
    size_t n_series;
} tsdb_batch;

typedef struct tsdb_append_stats {
    size_t accepted, new_series, out_of_order, duplicate, too_old, invalid;
} tsdb_append_stats;

/* Appends a batch atomically with respect to other appends: validation, WAL write, head apply.
 * Samples that break ingest rules are counted in st (out_of_order, duplicate, too_old; invalid
 * label sets in invalid) and skipped; the rest are stored. A sample at an existing timestamp with
 * the identical value is accepted silently. When it returns TSDB_OK, the accepted samples are
 * durable per the fsync policy (wal_fsync_ms == 0: on disk). Returns TSDB_EIO/ENOSPC/EFULL when
 * nothing could be made durable; err names the first rejected sample otherwise. */
int tsdb_append(tsdb *db, const tsdb_batch *b, tsdb_append_stats *st, tsdb_err *err);

/* ---- Reading ------------------------------------------------------------------------------- */

/* A querier over [mint, maxt] (both inclusive) on a consistent snapshot: blocks are referenced,
 * head chunks copied as series are selected. Close it promptly: it pins blocks. */
int tsdb_querier_open(tsdb *db, int64_t mint, int64_t maxt, tsdb_querier **out, tsdb_err *err);
/* Series matching all matchers (at least one matcher should not match the empty string).
 * The set belongs to the querier. */
int tsdb_querier_select(tsdb_querier *q, const tsdb_matcher *const *ms, size_t n,
                        tsdb_series_set **out, tsdb_err *err);
/* >0: *lbls and *it describe the next series (valid until the querier closes);
 *  0: no more series;  <0: error code. Series come in ascending label-set order. */
int tsdb_series_next(tsdb_series_set *s, tsdb_labels *lbls, tsdb_iter **it);
/* Samples within the querier's range in ascending t: >0 item / 0 end / <0 error. */
int tsdb_iter_next(tsdb_iter *it, tsdb_sample *out);
/* Moves to the first sample with ts >= t (never backwards); >0 / 0 / <0 as above. */
int tsdb_iter_seek(tsdb_iter *it, int64_t t, tsdb_sample *out);
/* Whether tsdb_iter_next would return a sample (>0 / 0 / <0 as above), without moving the
 * iterator and without keeping its decoded chunks: checking many series holds no memory. */
int tsdb_iter_any(tsdb_iter *it);
/* Sorted, unique label names (of series matching ms, or all if n == 0) in the arena. */
int tsdb_label_names(tsdb_querier *q, const tsdb_matcher *const *ms, size_t n, tsdb_arena *a,
                     tsdb_str **out, size_t *n_out, tsdb_err *err);
/* Sorted, unique values of a label name (restricted to series matching ms if n > 0). */
int tsdb_label_values(tsdb_querier *q, tsdb_str name, const tsdb_matcher *const *ms, size_t n,
                      tsdb_arena *a, tsdb_str **out, size_t *n_out, tsdb_err *err);
/* Frees all sets and iterators, drops block refs, ends the index read txn. NULL allowed. */
void tsdb_querier_close(tsdb_querier *q);

/* ---- Administration -------------------------------------------------------------------------- */

/* Deletes samples of series matching ms within [mint, maxt] (tombstones; data is dropped at
 * the next compaction). */
int tsdb_delete(tsdb *db, const tsdb_matcher *const *ms, size_t n, int64_t mint, int64_t maxt,
                tsdb_err *err);

typedef struct tsdb_stats {
    uint64_t n_series;       /* series in the head */
    uint64_t n_samples_head; /* samples in the head */
    uint64_t n_chunks_head;
    uint64_t n_blocks;
    uint64_t bytes_blocks;        /* bytes of block files on disk */
    uint64_t bytes_wal;           /* bytes of WAL segments on disk */
    uint64_t bytes_index;         /* bytes of the LMDB data file */
    int64_t head_mint, head_maxt; /* INT64_MAX/INT64_MIN when the head is empty */
    int64_t mint, maxt;           /* over blocks and head */
    uint64_t appended_total, rejected_ooo, rejected_dup, rejected_too_old;
    int wal_replayed; /* 1 once open finished replaying */
} tsdb_stats;

void tsdb_stats_get(tsdb *db, tsdb_stats *st);

/* Cardinality summary for /api/v1/status/tsdb: top-n entries of each list, into the arena. */
typedef struct tsdb_card_entry {
    tsdb_str name;
    uint64_t value;
} tsdb_card_entry;
typedef struct tsdb_cardinality {
    uint64_t n_series;
    tsdb_card_entry *by_metric; /* series count per metric name */
    size_t n_by_metric;
    tsdb_card_entry *by_label_name; /* distinct values per label name */
    size_t n_by_label_name;
    tsdb_card_entry *by_pair; /* series count per name=value */
    size_t n_by_pair;
} tsdb_cardinality;
int tsdb_cardinality_get(tsdb *db, size_t top_n, tsdb_arena *a, tsdb_cardinality *out,
                         tsdb_err *err);

/* Appends the Prometheus XOR chunk encoding (chunkenc.XORChunk.Bytes()) of s[0..n) to out, for
 * remote read's streamed chunks (tsdb/xorpub.c). n <= 65535 and t ascending, else TSDB_EINVAL. */
int tsdb_xor_encode(const tsdb_sample *s, size_t n, tsdb_buf *out);

/* Tests/tools: persist the head's oldest block range now (even if short); returns the number of
 * blocks written (>= 0) or an error. */
int tsdb_cut_head(tsdb *db, tsdb_err *err);
/* Tests/tools: one compaction + retention pass now. */
int tsdb_maintain(tsdb *db, tsdb_err *err);
/* Writes a consistent copy of the data directory (blocks + head as a block) into dir. */
int tsdb_snapshot(tsdb *db, const char *dir, tsdb_err *err);

/* ---- Regular expressions with captures (tsdb/regex.c) --------------------------------------- */

typedef struct tsdb_regex tsdb_regex; /* compiled; lives in the arena given to new */

/* Compiles an RE2-syntax pattern that must match a whole input (as ^(?:pattern)$). The regex
 * lives until tsdb_arena_fini of a; one thread uses it at a time. TSDB_EINVAL + message for a
 * bad pattern. */
int tsdb_regex_new(tsdb_str pattern, tsdb_arena *a, tsdb_regex **out, tsdb_err *err);
/* If re matches all of input, expands replacement ($1, ${1}, $name, ${name}, $$ as Go's
 * regexp.Expand) into *out (NUL-terminated, in a) and returns 1; returns 0 when it does not
 * match, TSDB_ELIMIT if the match hit the backtracking limits. */
int tsdb_regex_replace(const tsdb_regex *re, tsdb_str input, tsdb_str replacement, tsdb_arena *a,
                       tsdb_str *out);

#endif
