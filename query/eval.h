/* query/eval.h -- the evaluator's internal vocabulary (internal to query/).
 *
 * Every node is evaluated over all steps of the query at once, as Prometheus' engine does: the
 * steps are the times start + i * step for i in [0, n). An instant query is a range query with
 * one step. Values:
 *
 *   scalar         one double per step (always present);
 *   instant vector a list of series, each with a value array and a presence byte per step
 *                  (NaN is a legitimate value, so presence is separate) over the span of
 *                  steps from its first to its last point;
 *   range vector   raw samples per series plus the window geometry (range, offset, @): range
 *                  functions slide a window over the samples, one window per step;
 *   string         a literal.
 *
 * Everything lives in the query arena. Label sets of output series are built once per series
 * (labels never depend on the step), so matching and grouping cost one hash per series.
 */
#ifndef QUERY_EVAL_H
#define QUERY_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define QUERY_PI 3.14159265358979323846

/* ---- Steps and context ----------------------------------------------------------------------- */

typedef struct query_steps {
    int64_t start; /* time of step 0, ms */
    int64_t step;  /* ms between steps (> 0; 1 for a single step) */
    size_t n;      /* number of steps (>= 1) */
} query_steps;

/* a - b, saturated to the int64 range: absurd @ and offset values must not overflow. */
static inline int64_t query__sub_sat(int64_t a, int64_t b)
{
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    return a - b;
}

static inline int64_t query__step_t(const query_steps *st, size_t i)
{
    return st->start + (int64_t)i * st->step;
}

typedef struct query_eval_ctx {
    tsdb *db;        /* may be NULL (no selectors can be evaluated) */
    tsdb_querier *q; /* opened over [mint, maxt] when the AST has selectors */
    tsdb_arena *a;   /* everything evaluated lives here */
    tsdb_err *err;   /* may be NULL */
    int64_t q_start; /* the query's start and end, for @ start() / @ end() */
    int64_t q_end;
    int64_t lookback; /* ms */
    int64_t sub_step; /* default subquery step, ms */
    size_t max_samples;
    size_t cur_samples; /* samples currently held by live values */
    uint64_t samples_loaded;
    int64_t deadline_ns; /* 0 = none */
    const volatile int *cancel;
    unsigned tick;             /* counts query__check_deadline calls */
    int64_t mint, maxt;        /* planned storage window */
    int planned_any;           /* 1 if some selector contributed to mint/maxt */
    tsdb_buf hbuf;             /* scratch for label signatures */
    const query_expr *ts_node; /* the selector whose sample timestamps timestamp() reads */
} query_eval_ctx;

/* ---- Values ---------------------------------------------------------------------------------- */

/* An instant-vector series over the steps. Only the span of steps from its first to its last
 * point is stored (series come and go within long range queries): element k of the arrays is
 * step off + k, for k < len. Read it with query__ok / query__v. */
typedef struct query_vseries {
    tsdb_labels labels;
    double *v;   /* [len] */
    uint8_t *ok; /* [len] 1 = present */
    int64_t *ts; /* [len] sample timestamps (argument of timestamp() only), else NULL */
    size_t off;  /* step of element 0 */
    size_t len;  /* steps stored */
    size_t cap;  /* elements allocated (builder growth) */
} query_vseries;

static inline int query__ok(const query_vseries *s, size_t i)
{
    return i - s->off < s->len && s->ok[i - s->off]; /* i < off wraps to a huge value */
}

static inline double query__v(const query_vseries *s, size_t i)
{
    return s->v[i - s->off];
}

typedef struct query_rseries {
    tsdb_labels labels;
    tsdb_sample *pts; /* ascending t */
    size_t n;
} query_rseries;

enum query_value_kind { QUERY_V_SCALAR, QUERY_V_VECTOR, QUERY_V_MATRIX, QUERY_V_STRING };

typedef struct query_value {
    enum query_value_kind kind;
    double *scalar;    /* QUERY_V_SCALAR: [n steps] */
    query_vseries *vs; /* QUERY_V_VECTOR */
    size_t n_vs;
    query_rseries *rs; /* QUERY_V_MATRIX: raw samples, stale markers removed */
    size_t n_rs;
    int64_t range;          /* QUERY_V_MATRIX: window length, ms */
    int64_t offset;         /* QUERY_V_MATRIX: offset, ms */
    int has_at;             /* QUERY_V_MATRIX: window end pinned at at - offset */
    int64_t at;             /* QUERY_V_MATRIX */
    tsdb_str str;           /* QUERY_V_STRING */
    size_t held;            /* samples counted against max_samples for this value */
    const query_expr *node; /* the (paren-unwrapped) expression that produced it */
} query_value;

/* Window end of step i for a range value. */
static inline int64_t query__wend(const query_value *m, const query_steps *st, size_t i)
{
    return query__sub_sat(m->has_at ? m->at : query__step_t(st, i), m->offset);
}

/* ---- Output builder: series keyed by label set ------------------------------------------------
 */

typedef struct query_map {
    uint64_t *keys;
    size_t *vals;
    uint8_t *used;
    size_t cap, n;
} query_map;

typedef struct query_out {
    query_eval_ctx *c;
    const query_steps *st;
    query_vseries *s;
    size_t n, cap;
    query_map m; /* labels hash -> index */
} query_out;

/* ---- value.c --------------------------------------------------------------------------------- */

int query__check_deadline(query_eval_ctx *c); /* deadline + cancel: 0 or TSDB_ETIMEOUT/ECANCELED */
int query__account(query_eval_ctx *c, size_t n); /* adds n held samples; TSDB_ELIMIT past the max */
/* The value's samples are no longer held (its consumer has produced its own output). */
void query__release(query_eval_ctx *c, query_value *v);
size_t query__value_samples(const query_value *v, size_t n_steps);
int query__errf(query_eval_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void query__map_init(query_map *m, size_t hint);
void query__map_fini(query_map *m);
/* Returns 1 and *val if found, else 0. */
int query__map_get(const query_map *m, uint64_t key, size_t *val);
void query__map_put(query_map *m, uint64_t key, size_t val);

void query__out_init(query_out *o, query_eval_ctx *c, const query_steps *st, size_t hint);
void query__out_fini(query_out *o);
/* Index of the output series with labels l (copied by reference: l must live in the arena). */
size_t query__out_series(query_out *o, tsdb_labels l);
/* Sets step i of series idx; TSDB_EEXEC "vector cannot contain metrics with the same labelset"
 * if already set. */
int query__out_put(query_out *o, size_t idx, size_t i, double v);
/* Adds v to step i of series idx (count_values). */
void query__out_add(query_out *o, size_t idx, size_t i, double v);
/* Moves the output into a vector value (series with no present step are dropped). */
int query__out_finish(query_out *o, query_value *out);

/* count series covering all n_steps steps, none present yet. */
query_vseries *query__vseries_new(query_eval_ctx *c, size_t n_steps, size_t count);
/* Stores the present steps of dense scratch arrays v/ok/ts[0..n_steps) (ts may be NULL) in s as
 * a span in the arena; returns the number of present steps (0: s is empty). */
size_t query__vseries_from_dense(query_eval_ctx *c, query_vseries *s, const double *v,
                                 const uint8_t *ok, const int64_t *ts, size_t n_steps);
double *query__scalar_new(query_eval_ctx *c, size_t n_steps);

/* Label helpers: results live in the arena (or alias the input when unchanged). */
extern const tsdb_str query__name_label; /* "__name__" */
tsdb_labels query__labels_drop_name(query_eval_ctx *c, tsdb_labels l);
/* Keeps only labels whose names are in names[] (on / by). */
tsdb_labels query__labels_keep(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n);
/* Removes labels whose names are in names[] (ignoring / without), and __name__ if drop_name. */
tsdb_labels query__labels_del(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n,
                              int drop_name);
/* Sets name=value (an empty value removes the label). */
tsdb_labels query__labels_set(query_eval_ctx *c, tsdb_labels l, tsdb_str name, tsdb_str value);
/* Signature of the labels in names[] (on = 1) or of all but names[] and __name__ (on = 0). */
uint64_t query__sig(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int on);
uint64_t query__labels_hash(query_eval_ctx *c, tsdb_labels l);
/* Go's labels.String(): {__name__="x", a="b"} with quoted values, for error messages. */
const char *query__labels_str(query_eval_ctx *c, tsdb_labels l);
int query__names_has(const tsdb_str *names, size_t n, tsdb_str name);

/* Go's strconv.FormatFloat(v, 'f', -1, 64) (count_values), into the arena. */
tsdb_str query__fmt_float(query_eval_ctx *c, double v);
/* Prometheus' quantile over values v[0..n) (sorted in place). */
double query__quantile(double q, double *v, size_t n);

/* ---- eval.c ---------------------------------------------------------------------------------- */

int query__eval(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *out);
/* Fills out (kind QUERY_V_MATRIX) for a matrix selector or a subquery. */
int query__eval_range(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *out);
const query_expr *query__unparen(const query_expr *e);
/* Plans the storage window of e (and its children) evaluated over st. */
void query__plan(query_eval_ctx *c, const query_expr *e, const query_steps *st);

/* ---- binop.c, agg.c, functions -----------------------------------------------------------------
 */

int query__binop(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *l,
                 query_value *r, query_value *out);
double query__binop_scalar(enum query_binop op, double l, double r, int *keep);
int query__agg(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *in,
               query_value *param, query_value *out);
int query__call(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *out);

/* func_range.c: range-vector functions (args already evaluated). */
int query__func_range(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *args, query_value *out);
/* Pure helpers, exposed for unit tests. */
int query__extrapolated_rate(const tsdb_sample *p, size_t n, int64_t wstart, int64_t wend,
                             int is_counter, int is_rate, double *out);
int query__instant_delta(const tsdb_sample *p, size_t n, int is_rate, double *out);
void query__linear_regression(const tsdb_sample *p, size_t n, int64_t t0, double *slope,
                              double *intercept);
int query__holt_winters(const tsdb_sample *p, size_t n, double sf, double tf, double *out);

/* Labels absent()/absent_over_time() give their output (func_range.c). */
tsdb_labels query__absent_labels(query_eval_ctx *c, const query_expr *arg);

/* func_math.c: element-wise and vector/scalar conversion functions. */
int query__func_math(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out);
/* func_time.c */
int query__func_time(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out);
double query__date_part(enum query_func_id id, double secs);
/* func_label.c */
int query__func_label(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *args, query_value *out);
/* func_hist.c */
int query__func_hist(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out);
typedef struct query_bucket {
    double upper, count;
} query_bucket;
double query__bucket_quantile(double q, query_bucket *b, size_t n);

#endif
