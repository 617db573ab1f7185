/* query/eval.h -- the evaluator's internal vocabulary (internal to query/).
 *
 * Every node is evaluated over all steps of the query at once, as Prometheus' engine does: the
 * steps are the times start + i * step for i in [0, n). An instant query is a range query with
 * one step. Values:
 *
 *   scalar         one double per step (always present);
 *   instant vector a list of series, each with a dense value array over the steps and a
 *                  presence byte per step (NaN is a legitimate value, so presence is separate);
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

#define QE_PI 3.14159265358979323846

/* ---- Steps and context ----------------------------------------------------------------------- */

typedef struct qe_steps {
    int64_t start; /* time of step 0, ms */
    int64_t step;  /* ms between steps (> 0; 1 for a single step) */
    size_t n;      /* number of steps (>= 1) */
} qe_steps;

static inline int64_t qe_step_t(const qe_steps *st, size_t i)
{
    return st->start + (int64_t)i * st->step;
}

typedef struct qe_ctx {
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
    unsigned tick;             /* counts qe_check calls */
    int64_t mint, maxt;        /* planned storage window */
    int planned_any;           /* 1 if some selector contributed to mint/maxt */
    tsdb_buf hbuf;             /* scratch for label signatures */
    const query_expr *ts_node; /* the selector whose sample timestamps timestamp() reads */
} qe_ctx;

/* ---- Values ---------------------------------------------------------------------------------- */

typedef struct qe_vseries {
    tsdb_labels labels;
    double *v;   /* [n steps] */
    uint8_t *ok; /* [n steps] 1 = present */
    int64_t *ts; /* [n steps] sample timestamps (argument of timestamp() only), else NULL */
} qe_vseries;

typedef struct qe_rseries {
    tsdb_labels labels;
    tsdb_sample *pts; /* ascending t */
    size_t n;
} qe_rseries;

enum qe_kind { QE_SCALAR, QE_VECTOR, QE_MATRIX, QE_STRING };

typedef struct qe_value {
    enum qe_kind kind;
    double *scalar; /* QE_SCALAR: [n steps] */
    qe_vseries *vs; /* QE_VECTOR */
    size_t n_vs;
    qe_rseries *rs; /* QE_MATRIX: raw samples, stale markers removed */
    size_t n_rs;
    int64_t range;          /* QE_MATRIX: window length, ms */
    int64_t offset;         /* QE_MATRIX: offset, ms */
    int has_at;             /* QE_MATRIX: window end pinned at at - offset */
    int64_t at;             /* QE_MATRIX */
    tsdb_str str;           /* QE_STRING */
    size_t held;            /* samples counted against max_samples for this value */
    const query_expr *node; /* the (paren-unwrapped) expression that produced it */
} qe_value;

/* Window end of step i for a range value. */
static inline int64_t qe_wend(const qe_value *m, const qe_steps *st, size_t i)
{
    return (m->has_at ? m->at : qe_step_t(st, i)) - m->offset;
}

/* ---- Output builder: series keyed by label set ------------------------------------------------
 */

typedef struct qe_map {
    uint64_t *keys;
    size_t *vals;
    uint8_t *used;
    size_t cap, n;
} qe_map;

typedef struct qe_out {
    qe_ctx *c;
    const qe_steps *st;
    qe_vseries *s;
    size_t n, cap;
    qe_map m; /* labels hash -> index */
} qe_out;

/* ---- value.c --------------------------------------------------------------------------------- */

int qe_check(qe_ctx *c);             /* deadline + cancel: 0 or TSDB_ETIMEOUT/ECANCELED */
int qe_account(qe_ctx *c, size_t n); /* adds n held samples; TSDB_ELIMIT past the max */
/* The value's samples are no longer held (its consumer has produced its own output). */
void qe_release(qe_ctx *c, qe_value *v);
size_t qe_value_samples(const qe_value *v, size_t n_steps);
int qe_errf(qe_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void qe_map_init(qe_map *m, size_t hint);
void qe_map_fini(qe_map *m);
/* Returns 1 and *val if found, else 0. */
int qe_map_get(const qe_map *m, uint64_t key, size_t *val);
void qe_map_put(qe_map *m, uint64_t key, size_t val);

void qe_out_init(qe_out *o, qe_ctx *c, const qe_steps *st, size_t hint);
void qe_out_fini(qe_out *o);
/* Index of the output series with labels l (copied by reference: l must live in the arena). */
size_t qe_out_series(qe_out *o, tsdb_labels l);
/* Sets step i of series idx; TSDB_EEXEC "vector cannot contain metrics with the same labelset"
 * if already set. */
int qe_out_put(qe_out *o, size_t idx, size_t i, double v);
/* Moves the output into a vector value (series with no present step are dropped). */
int qe_out_finish(qe_out *o, qe_value *out);

qe_vseries *qe_vseries_new(qe_ctx *c, size_t n_steps, size_t count);
double *qe_scalar_new(qe_ctx *c, size_t n_steps);

/* Label helpers: results live in the arena (or alias the input when unchanged). */
extern const tsdb_str qe_name_label; /* "__name__" */
tsdb_labels qe_labels_drop_name(qe_ctx *c, tsdb_labels l);
/* Keeps only labels whose names are in names[] (on / by). */
tsdb_labels qe_labels_keep(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n);
/* Removes labels whose names are in names[] (ignoring / without), and __name__ if drop_name. */
tsdb_labels qe_labels_del(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int drop_name);
/* Sets name=value (an empty value removes the label). */
tsdb_labels qe_labels_set(qe_ctx *c, tsdb_labels l, tsdb_str name, tsdb_str value);
/* Signature of the labels in names[] (on = 1) or of all but names[] and __name__ (on = 0). */
uint64_t qe_sig(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int on);
uint64_t qe_labels_hash(qe_ctx *c, tsdb_labels l);
/* Go's labels.String(): {__name__="x", a="b"} with quoted values, for error messages. */
const char *qe_labels_str(qe_ctx *c, tsdb_labels l);
int qe_names_has(const tsdb_str *names, size_t n, tsdb_str name);

/* Go's strconv.FormatFloat(v, 'f', -1, 64) (count_values), into the arena. */
tsdb_str qe_fmt_float(qe_ctx *c, double v);
/* Prometheus' quantile over values v[0..n) (sorted in place). */
double qe_quantile(double q, double *v, size_t n);

/* ---- eval.c ---------------------------------------------------------------------------------- */

int qe_eval(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *out);
/* Fills out (kind QE_MATRIX) for a matrix selector or a subquery. */
int qe_eval_range(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *out);
const query_expr *qe_unparen(const query_expr *e);
/* Plans the storage window of e (and its children) evaluated over st. */
void qe_plan(qe_ctx *c, const query_expr *e, const qe_steps *st);

/* ---- binop.c, agg.c, functions -----------------------------------------------------------------
 */

int qe_binop(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *l, qe_value *r,
             qe_value *out);
double qe_binop_scalar(enum query_binop op, double l, double r, int *keep);
int qe_agg(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *in, qe_value *param,
           qe_value *out);
int qe_call(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *out);

/* func_range.c: range-vector functions (args already evaluated). */
int qe_func_range(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args,
                  qe_value *out);
/* Pure helpers, exposed for unit tests. */
int qe_extrapolated_rate(const tsdb_sample *p, size_t n, int64_t wstart, int64_t wend,
                         int is_counter, int is_rate, double *out);
int qe_instant_delta(const tsdb_sample *p, size_t n, int is_rate, double *out);
void qe_linear_regression(const tsdb_sample *p, size_t n, int64_t t0, double *slope,
                          double *intercept);
int qe_holt_winters(const tsdb_sample *p, size_t n, double sf, double tf, double *out);

/* Labels absent()/absent_over_time() give their output (func_range.c). */
tsdb_labels qe_absent_labels(qe_ctx *c, const query_expr *arg);

/* func_math.c: element-wise and vector/scalar conversion functions. */
int qe_func_math(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args, qe_value *out);
/* func_time.c */
int qe_func_time(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args, qe_value *out);
double qe_date_part(enum query_func_id id, double secs);
/* func_label.c */
int qe_func_label(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args,
                  qe_value *out);
/* func_hist.c */
int qe_func_hist(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args, qe_value *out);
typedef struct qe_bucket {
    double upper, count;
} qe_bucket;
double qe_bucket_quantile(double q, qe_bucket *b, size_t n);

#endif
