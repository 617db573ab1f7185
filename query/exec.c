/* query/exec.c -- query_exec_instant and query_exec_range: set up the evaluation context,
 * open one querier over the planned storage window, evaluate, and shape the result.
 *
 * An instant query is evaluated as a one-step range query at t; a top-level range-vector
 * expression returns the raw samples of each series' window at t. A range query returns a
 * matrix sorted by label set; a scalar becomes one series without labels.
 */
#include "query/query.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/eval.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define QUERY_DEFAULT_LOOKBACK_MS   (5 * 60 * 1000)
#define QUERY_DEFAULT_TIMEOUT_MS    (2 * 60 * 1000)
#define QUERY_DEFAULT_MAX_SAMPLES   50000000
#define QUERY_DEFAULT_SUBQUERY_STEP (60 * 1000)

static int ctx_open(query_eval_ctx *c, tsdb *db, const query_expr *e, const query_steps *st,
                    int64_t q_start, int64_t q_end, const query_opts *o, tsdb_arena *a,
                    tsdb_err *err)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    c->a = a;
    c->err = err;
    c->q_start = q_start;
    c->q_end = q_end;
    c->lookback = o && o->lookback_ms > 0 ? o->lookback_ms : QUERY_DEFAULT_LOOKBACK_MS;
    c->sub_step = QUERY_DEFAULT_SUBQUERY_STEP;
    c->max_samples = o && o->max_samples ? o->max_samples : QUERY_DEFAULT_MAX_SAMPLES;
    int64_t timeout = o && o->timeout_ms > 0 ? o->timeout_ms : QUERY_DEFAULT_TIMEOUT_MS;
    c->deadline_ns = tsdb_mono_ns() + timeout * 1000000;
    c->cancel = o ? o->cancel : NULL;
    tsdb_buf_init(&c->hbuf);
    if (err) {
        err->code = 0;
        err->pos = -1;
        err->msg[0] = '\0';
    }
    query__plan(c, e, st);
    if (c->planned_any && db) {
        int rc = tsdb_querier_open(db, c->mint, c->maxt, &c->q, err);
        if (rc < 0) {
            tsdb_buf_fini(&c->hbuf);
            return rc;
        }
    }
    return 0;
}

static void ctx_close(query_eval_ctx *c)
{
    tsdb_querier_close(c->q);
    c->q = NULL;
    tsdb_buf_fini(&c->hbuf);
}

static int is_range_node(const query_expr *e)
{
    e = query__unparen(e);
    return e->kind == QUERY_NODE_MATRIX_SEL || e->kind == QUERY_NODE_SUBQUERY;
}

int query_exec_instant(tsdb *db, const query_expr *e, int64_t t, const query_opts *o, tsdb_arena *a,
                       query_result *out, tsdb_err *err)
{
    query_steps st = {t, 1, 1};
    query_eval_ctx c;
    int rc = ctx_open(&c, db, e, &st, t, t, o, a, err);
    if (rc < 0)
        return rc;
    query_result r;
    memset(&r, 0, sizeof r);
    query_value v;
    if (is_range_node(e)) {
        rc = query__eval_range(&c, e, &st, &v);
        if (rc == 0) {
            query_series *ss = tsdb_arena_calloc(a, v.n_rs ? v.n_rs : 1, sizeof *ss);
            size_t n = 0;
            int64_t we = query__wend(&v, &st, 0), ws = query__sub_sat(we, v.range);
            for (size_t s = 0; s < v.n_rs; s++) {
                const query_rseries *rs = &v.rs[s];
                size_t lo = 0, hi;
                while (lo < rs->n && rs->pts[lo].t < ws)
                    lo++;
                hi = lo;
                while (hi < rs->n && rs->pts[hi].t <= we)
                    hi++;
                if (hi == lo)
                    continue;
                ss[n].labels = rs->labels;
                ss[n].pts = rs->pts + lo;
                ss[n].n_pts = hi - lo;
                n++;
            }
            r.type = QUERY_MATRIX;
            r.series = ss;
            r.n_series = n;
        }
    } else {
        rc = query__eval(&c, e, &st, &v);
        if (rc == 0) {
            switch (v.kind) {
            case QUERY_V_SCALAR:
                r.type = QUERY_SCALAR;
                r.scalar = (tsdb_sample){t, v.scalar[0]};
                break;
            case QUERY_V_STRING:
                r.type = QUERY_STRING;
                r.scalar.t = t; /* a string answer is stamped with the evaluation time */
                r.string = v.str;
                break;
            case QUERY_V_VECTOR: {
                query_series *ss = tsdb_arena_calloc(a, v.n_vs ? v.n_vs : 1, sizeof *ss);
                tsdb_sample *pts = tsdb_arena_alloc(a, (v.n_vs ? v.n_vs : 1) * sizeof *pts);
                size_t n = 0;
                for (size_t s = 0; s < v.n_vs; s++) {
                    if (!query__ok(&v.vs[s], 0))
                        continue;
                    pts[n] = (tsdb_sample){t, query__v(&v.vs[s], 0)};
                    ss[n].labels = v.vs[s].labels;
                    ss[n].pts = &pts[n];
                    ss[n].n_pts = 1;
                    n++;
                }
                r.type = QUERY_VECTOR;
                r.series = ss;
                r.n_series = n;
                break;
            }
            case QUERY_V_MATRIX:
                rc = query__errf(&c, TSDB_EEXEC, "unexpected range vector");
                break;
            }
        }
    }
    r.samples_loaded = c.samples_loaded;
    ctx_close(&c);
    if (rc < 0)
        return rc;
    *out = r;
    return 0;
}

static int series_cmp(const void *a, const void *b)
{
    return tsdb_labels_cmp(((const query_series *)a)->labels, ((const query_series *)b)->labels);
}

int query_exec_range(tsdb *db, const query_expr *e, int64_t start, int64_t end, int64_t step,
                     const query_opts *o, tsdb_arena *a, query_result *out, tsdb_err *err)
{
    if (step <= 0)
        return tsdb_errf(err, TSDB_EINVAL, -1,
                         "zero or negative query resolution step widths are not accepted. "
                         "Try a positive integer");
    if (end < start)
        return tsdb_errf(err, TSDB_EINVAL, -1, "end timestamp must not be before start time");
    if (start < 0 && end > INT64_MAX + start)
        return tsdb_errf(err, TSDB_EINVAL, -1, "query range too long");
    enum query_type ty = query_expr_type(e);
    if (ty != QUERY_SCALAR && ty != QUERY_VECTOR)
        return tsdb_errf(err, TSDB_EINVAL, -1,
                         "invalid expression type \"%s\" for range query, must be Scalar or "
                         "instant Vector",
                         ty == QUERY_MATRIX ? "range vector" : "string");
    query_steps st = {start, step, (size_t)((end - start) / step) + 1};
    size_t max = o && o->max_samples ? o->max_samples : QUERY_DEFAULT_MAX_SAMPLES;
    if (st.n > max) /* even a scalar holds one sample per step */
        return tsdb_errf(err, TSDB_ELIMIT, -1,
                         "query processing would load too many samples into memory in query "
                         "execution");
    query_eval_ctx c;
    int rc = ctx_open(&c, db, e, &st, start, end, o, a, err);
    if (rc < 0)
        return rc;
    query_result r;
    memset(&r, 0, sizeof r);
    r.type = QUERY_MATRIX;
    query_value v;
    rc = query__eval(&c, e, &st, &v);
    if (rc == 0 && v.kind == QUERY_V_SCALAR) {
        query_series *ss = tsdb_arena_calloc(a, 1, sizeof *ss);
        tsdb_sample *pts = tsdb_arena_alloc(a, st.n * sizeof *pts);
        for (size_t i = 0; i < st.n; i++)
            pts[i] = (tsdb_sample){query__step_t(&st, i), v.scalar[i]};
        ss->pts = pts;
        ss->n_pts = st.n;
        r.series = ss;
        r.n_series = 1;
    } else if (rc == 0 && v.kind == QUERY_V_VECTOR) {
        query_series *ss = tsdb_arena_calloc(a, v.n_vs ? v.n_vs : 1, sizeof *ss);
        size_t n = 0;
        for (size_t s = 0; s < v.n_vs; s++) {
            const query_vseries *vs = &v.vs[s];
            size_t cnt = 0;
            for (size_t x = 0; x < vs->len; x++)
                cnt += vs->ok[x];
            if (!cnt)
                continue;
            tsdb_sample *pts = tsdb_arena_alloc(a, cnt * sizeof *pts);
            size_t k = 0;
            for (size_t x = 0; x < vs->len; x++)
                if (vs->ok[x])
                    pts[k++] = (tsdb_sample){query__step_t(&st, vs->off + x), vs->v[x]};
            ss[n].labels = v.vs[s].labels;
            ss[n].pts = pts;
            ss[n].n_pts = k;
            n++;
        }
        qsort(ss, n, sizeof *ss, series_cmp);
        r.series = ss;
        r.n_series = n;
    } else if (rc == 0) {
        rc = query__errf(&c, TSDB_EINVAL, "invalid expression type for range query");
    }
    r.samples_loaded = c.samples_loaded;
    ctx_close(&c);
    if (rc < 0)
        return rc;
    *out = r;
    return 0;
}
