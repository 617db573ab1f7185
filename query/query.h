/* query/query.h -- the PromQL engine's public interface.
 *
 * Parse PromQL text into an AST (in the caller's arena), print an AST back to canonical text,
 * and evaluate it as an instant or a range query against a tsdb. Results live in the arena
 * given to exec. Semantics follow Prometheus 2.42 (float samples only).
 *
 * Thread-safety: every call is reentrant; an arena belongs to one thread at a time.
 */
#ifndef QUERY_QUERY_H
#define QUERY_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

typedef struct query_expr query_expr; /* AST; lives in the arena given to query_parse */

enum query_type { QUERY_SCALAR, QUERY_VECTOR, QUERY_MATRIX, QUERY_STRING };

typedef struct query_series {
    tsdb_labels labels;
    const tsdb_sample *pts; /* ascending t */
    size_t n_pts;
} query_series;

/* Instant query: SCALAR (scalar), STRING (string), VECTOR (series with one point each, at t),
 * MATRIX (a range-vector expression: the raw samples of each series).
 * Range query: always MATRIX (a scalar result becomes one series with no labels). */
typedef struct query_result {
    enum query_type type;
    const query_series *series;
    size_t n_series;
    tsdb_sample scalar;
    tsdb_str string;
    const char *const *warnings; /* NULL or n_warnings strings */
    size_t n_warnings;
    uint64_t samples_loaded; /* total samples read from storage */
} query_result;

typedef struct query_opts {
    int64_t lookback_ms;        /* 0 = 5 min */
    int64_t timeout_ms;         /* 0 = 2 min */
    size_t max_samples;         /* 0 = 50 M: max samples held at once */
    const volatile int *cancel; /* optional: non-zero cancels (TSDB_ECANCELED) */
} query_opts;

/* Parses src[0..len). On error returns TSDB_EPARSE with err->pos the byte offset and err->msg
 * reading like Prometheus 2.42's ("1:8: parse error: unexpected ...", line:column, 1-based).
 * Type-checks the AST. */
int query_parse(tsdb_arena *a, const char *src, size_t len, query_expr **out, tsdb_err *err);
/* Canonical PromQL text of e (NUL-terminated, in the arena). */
int query_print(const query_expr *e, tsdb_arena *a, tsdb_str *out);
/* The static type of a parsed expression. */
enum query_type query_expr_type(const query_expr *e);
/* Parses a PromQL duration ("1h30m", "5m", "250ms") into ms; TSDB_EINVAL if malformed. */
int query_parse_duration(const char *s, size_t len, int64_t *ms);
/* Parses a series selector (for match[] parameters) into matchers in the arena. */
int query_parse_selector(tsdb_arena *a, const char *src, size_t len, const tsdb_matcher ***ms,
                         size_t *n, tsdb_err *err);

/* Evaluates e at time t (ms). Errors: TSDB_EEXEC (execution error, e.g. many-to-many matching),
 * TSDB_ELIMIT (max samples), TSDB_ETIMEOUT, TSDB_ECANCELED, storage errors. */
int query_exec_instant(tsdb *db, const query_expr *e, int64_t t, const query_opts *o, tsdb_arena *a,
                       query_result *out, tsdb_err *err);
/* Evaluates e at start, start+step, ... <= end. */
int query_exec_range(tsdb *db, const query_expr *e, int64_t start, int64_t end, int64_t step,
                     const query_opts *o, tsdb_arena *a, query_result *out, tsdb_err *err);

#endif
