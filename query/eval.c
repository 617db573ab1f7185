/* query/eval.c -- the PromQL evaluator: selectors, subqueries, and the walk over the AST.
 *
 * Every node is evaluated once over all steps (query/eval.h). Time rules (Prometheus 2.42):
 *
 *   - A vector selector at step time t reads at ref = (@ ? @ : t) - offset the newest sample
 *     with timestamp in the closed window [ref - lookback, ref]; a staleness marker as that
 *     newest sample means "no value".
 *   - A matrix selector's window at step t is the closed [end - range, end] with
 *     end = (@ ? @ : t) - offset; staleness markers are dropped from range data.
 *   - A subquery expr[range:step] evaluates expr at the multiples of step in
 *     [align_up(first_end - range), last_end] (end as above) and then behaves like a matrix
 *     selector over those points.
 *
 * query__plan walks the tree with the same rules to find the union of storage time a query needs,
 * so one querier (one consistent snapshot) serves every selector, each selector reading its
 * own window once.
 */
#include "query/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

const query_expr *query__unparen(const query_expr *e)
{
    while (e->kind == QUERY_NODE_PAREN)
        e = e->u.paren;
    return e;
}

/* Resolves the @ modifier: 1 and *at when present. */
static int resolve_at(const query_eval_ctx *c, const query_time_mod *tm, int64_t *at)
{
    switch (tm->at) {
    case QUERY_AT_NONE:
        return 0;
    case QUERY_AT_TS:
        *at = tm->at_ms;
        return 1;
    case QUERY_AT_START:
        *at = c->q_start;
        return 1;
    case QUERY_AT_END:
        *at = c->q_end;
        return 1;
    }
    return 0;
}

/* First and last reference time (before lookback/range) of a selector over st. */
static void ref_span(const query_eval_ctx *c, const query_time_mod *tm, const query_steps *st,
                     int64_t *lo, int64_t *hi)
{
    int64_t at;
    if (resolve_at(c, tm, &at)) {
        *lo = *hi = query__sub_sat(at, tm->offset_ms);
    } else {
        *lo = query__sub_sat(st->start, tm->offset_ms);
        *hi = query__sub_sat(query__step_t(st, st->n - 1), tm->offset_ms);
    }
}

/* Inner steps of a subquery evaluated over outer steps st; 0 if there are none. */
static int subquery_steps(const query_eval_ctx *c, const query_expr *e, const query_steps *st,
                          query_steps *inner)
{
    const query_subquery *sq = &e->u.sq;
    int64_t lo, hi;
    ref_span(c, &sq->tm, st, &lo, &hi);
    int64_t step = sq->step_ms > 0 ? sq->step_ms : c->sub_step;
    int64_t from = query__sub_sat(lo, sq->range_ms);
    int64_t start = step * (from / step);
    if (start < from) {
        if (start > INT64_MAX - step)
            return 0;
        start += step;
    }
    if (hi < start)
        return 0;
    inner->start = start;
    inner->step = step;
    inner->n = (size_t)(((uint64_t)hi - (uint64_t)start) / (uint64_t)step) + 1;
    return 1;
}

static void plan_window(query_eval_ctx *c, int64_t mint, int64_t maxt)
{
    if (!c->planned_any || mint < c->mint)
        c->mint = mint;
    if (!c->planned_any || maxt > c->maxt)
        c->maxt = maxt;
    c->planned_any = 1;
}

void query__plan(query_eval_ctx *c, const query_expr *e, const query_steps *st)
{
    int64_t lo, hi;
    switch (e->kind) {
    case QUERY_NODE_NUMBER:
    case QUERY_NODE_STRING:
        return;
    case QUERY_NODE_VECTOR_SEL:
        ref_span(c, &e->u.vs.tm, st, &lo, &hi);
        plan_window(c, query__sub_sat(lo, c->lookback), hi);
        return;
    case QUERY_NODE_MATRIX_SEL:
        ref_span(c, &e->u.ms.vs->u.vs.tm, st, &lo, &hi);
        plan_window(c, query__sub_sat(lo, e->u.ms.range_ms), hi);
        return;
    case QUERY_NODE_SUBQUERY: {
        query_steps inner;
        if (subquery_steps(c, e, st, &inner))
            query__plan(c, e->u.sq.expr, &inner);
        return;
    }
    case QUERY_NODE_UNARY:
        query__plan(c, e->u.un.expr, st);
        return;
    case QUERY_NODE_BINARY:
        query__plan(c, e->u.bin.lhs, st);
        query__plan(c, e->u.bin.rhs, st);
        return;
    case QUERY_NODE_AGG:
        if (e->u.agg.param)
            query__plan(c, e->u.agg.param, st);
        query__plan(c, e->u.agg.expr, st);
        return;
    case QUERY_NODE_CALL:
        for (size_t i = 0; i < e->u.call.n_args; i++)
            query__plan(c, e->u.call.args[i], st);
        return;
    case QUERY_NODE_PAREN:
        query__plan(c, e->u.paren, st);
        return;
    }
}

/* ---- Storage reads ------------------------------------------------------------------------------
 */

/* Reads one series' samples in [mint, maxt] into *buf (grown as needed); drop_stale removes
 * staleness markers. Returns the count, or a negative error. */
static long read_series(tsdb_iter *it, int64_t mint, int64_t maxt, int drop_stale,
                        tsdb_sample **buf, size_t *bcap)
{
    size_t k = 0;
    tsdb_sample s;
    int r = tsdb_iter_seek(it, mint, &s);
    while (r > 0 && s.t <= maxt) {
        if (!(drop_stale && tsdb_is_stale_nan(s.v))) {
            if (k == *bcap) {
                *bcap *= 2;
                *buf = xrealloc(*buf, *bcap * sizeof **buf);
            }
            (*buf)[k++] = s;
        }
        r = tsdb_iter_next(it, &s);
    }
    return r < 0 ? r : (long)k;
}

static int select_err(query_eval_ctx *c, int rc, const tsdb_err *e2)
{
    if (c->err)
        *c->err = *e2;
    return rc;
}

/* Names a storage error rc in the context's error unless a more precise one is already there. */
static int read_err(query_eval_ctx *c, int rc)
{
    if (c->err && c->err->code != rc)
        query__errf(c, rc, "%s", tsdb_strerror(rc));
    return rc;
}

/* A copy of n elements of size bytes in the query arena (never NULL, even for n == 0). */
static void *arena_copy(query_eval_ctx *c, const void *p, size_t n, size_t size)
{
    void *r = tsdb_arena_alloc(c->a, (n ? n : 1) * size);
    if (n)
        memcpy(r, p, n * size);
    return r;
}

/* Reads every series matching the selector with samples in [mint, maxt] (all of them are
 * returned even when empty: callers decide). drop_stale removes staleness markers. */
static int fetch(query_eval_ctx *c, const query_vector_sel *vs, int64_t mint, int64_t maxt,
                 int drop_stale, query_rseries **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!c->q)
        return 0;
    tsdb_series_set *set;
    tsdb_err e2;
    int rc = tsdb_querier_select(c->q, vs->matchers, vs->n_matchers, &set, &e2);
    if (rc < 0)
        return select_err(c, rc, &e2);
    size_t cap = 16, n = 0;
    query_rseries *rs = xmalloc(cap * sizeof *rs);
    size_t bcap = 256;
    tsdb_sample *buf = xmalloc(bcap * sizeof *buf);
    for (;;) {
        tsdb_labels l;
        tsdb_iter *it;
        rc = tsdb_series_next(set, &l, &it);
        if (rc <= 0)
            break;
        if ((rc = query__check_deadline(c)) < 0)
            break;
        long got = read_series(it, mint, maxt, drop_stale, &buf, &bcap);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        size_t k = (size_t)got;
        if (n == cap) {
            cap *= 2;
            rs = xrealloc(rs, cap * sizeof *rs);
        }
        rs[n].labels = tsdb_labels_copy(l, c->a);
        rs[n].n = k;
        rs[n].pts = arena_copy(c, buf, k, sizeof *buf);
        n++;
        c->samples_loaded += k;
        if ((rc = query__account(c, k)) < 0)
            break;
    }
    free(buf);
    if (rc < 0) {
        free(rs);
        return read_err(c, rc);
    }
    *out = arena_copy(c, rs, n, sizeof *rs);
    free(rs);
    *n_out = n;
    return 0;
}

/* An instant-vector selector over the steps. Series are read one at a time into a scratch
 * buffer and reduced to their steps at once, so the raw samples of all series are never held
 * together (they count against the sample limit only while their series is being reduced). */
static int eval_vector_sel(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                           query_value *out)
{
    const query_vector_sel *vs = &e->u.vs;
    int64_t lo, hi, at = 0;
    int has_at = resolve_at(c, &vs->tm, &at);
    ref_span(c, &vs->tm, st, &lo, &hi);
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_VECTOR;
    out->node = e;
    if (!c->q)
        return 0;
    tsdb_series_set *set;
    tsdb_err e2;
    int rc = tsdb_querier_select(c->q, vs->matchers, vs->n_matchers, &set, &e2);
    if (rc < 0)
        return select_err(c, rc, &e2);
    int64_t mint = query__sub_sat(lo, c->lookback);
    size_t cap = 16, k = 0, pts = 0;
    query_vseries *vv = xmalloc(cap * sizeof *vv);
    size_t bcap = 256;
    tsdb_sample *buf = xmalloc(bcap * sizeof *buf);
    /* Dense scratch for one series at a time; only its span of present steps is kept. */
    double *sv = xmalloc(st->n * sizeof *sv);
    uint8_t *sok = xmalloc(st->n);
    int64_t *sts = c->ts_node == e ? xmalloc(st->n * sizeof *sts) : NULL;
    for (;;) {
        tsdb_labels l;
        tsdb_iter *it;
        rc = tsdb_series_next(set, &l, &it);
        if (rc <= 0)
            break;
        if ((rc = query__check_deadline(c)) < 0)
            break;
        long got = read_series(it, mint, hi, 0, &buf, &bcap);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        size_t np = (size_t)got, j = 0, any = 0;
        c->samples_loaded += np;
        if ((rc = query__account(c, np)) < 0)
            break;
        const tsdb_sample *p = buf;
        memset(sok, 0, st->n);
        for (size_t i = 0; i < st->n; i++) {
            int64_t ref = query__sub_sat(has_at ? at : query__step_t(st, i), vs->tm.offset_ms);
            while (j < np && p[j].t <= ref)
                j++;
            /* p[j-1] is the newest sample at or before ref */
            if (j == 0)
                continue;
            const tsdb_sample *last = &p[j - 1];
            if (last->t < query__sub_sat(ref, c->lookback) || tsdb_is_stale_nan(last->v))
                continue;
            sok[i] = 1;
            sv[i] = last->v;
            if (sts)
                sts[i] = last->t;
            any++;
        }
        /* The raw samples are no longer held once reduced to steps. */
        c->cur_samples -= np < c->cur_samples ? np : c->cur_samples;
        if (!any)
            continue;
        if (k == cap) {
            cap *= 2;
            vv = xrealloc(vv, cap * sizeof *vv);
        }
        vv[k].labels = tsdb_labels_copy(l, c->a);
        pts += query__vseries_from_dense(c, &vv[k], sv, sok, sts, st->n);
        k++;
    }
    free(buf);
    free(sv);
    free(sok);
    free(sts);
    if (rc < 0) {
        free(vv);
        return read_err(c, rc);
    }
    out->vs = arena_copy(c, vv, k, sizeof *vv);
    free(vv);
    out->n_vs = k;
    out->held = pts;
    return query__account(c, pts);
}

/* Converts an instant-vector or scalar value over inner steps into raw series. */
static void steps_to_raw(query_eval_ctx *c, const query_value *v, const query_steps *st,
                         query_rseries **out, size_t *n_out)
{
    if (v->kind == QUERY_V_SCALAR) {
        query_rseries *r = tsdb_arena_calloc(c->a, 1, sizeof *r);
        r->pts = tsdb_arena_alloc(c->a, st->n * sizeof *r->pts);
        for (size_t i = 0; i < st->n; i++)
            r->pts[i] = (tsdb_sample){query__step_t(st, i), v->scalar[i]};
        r->n = st->n;
        *out = r;
        *n_out = 1;
        return;
    }
    query_rseries *r = tsdb_arena_calloc(c->a, v->n_vs ? v->n_vs : 1, sizeof *r);
    size_t k = 0;
    for (size_t s = 0; s < v->n_vs; s++) {
        const query_vseries *vs = &v->vs[s];
        size_t cnt = 0;
        for (size_t x = 0; x < vs->len; x++)
            cnt += vs->ok[x];
        if (!cnt)
            continue;
        r[k].labels = vs->labels;
        r[k].pts = tsdb_arena_alloc(c->a, cnt * sizeof *r[k].pts);
        size_t m = 0;
        for (size_t x = 0; x < vs->len; x++)
            if (vs->ok[x])
                r[k].pts[m++] = (tsdb_sample){query__step_t(st, vs->off + x), vs->v[x]};
        r[k].n = m;
        k++;
    }
    *out = r;
    *n_out = k;
}

int query__eval_range(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *out)
{
    e = query__unparen(e);
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_MATRIX;
    out->node = e;
    if (e->kind == QUERY_NODE_MATRIX_SEL) {
        const query_expr *vn = e->u.ms.vs;
        const query_vector_sel *vs = &vn->u.vs;
        int64_t lo, hi;
        ref_span(c, &vs->tm, st, &lo, &hi);
        out->range = e->u.ms.range_ms;
        out->offset = vs->tm.offset_ms;
        out->has_at = resolve_at(c, &vs->tm, &out->at);
        int rc = fetch(c, vs, query__sub_sat(lo, out->range), hi, 1, &out->rs, &out->n_rs);
        for (size_t s = 0; rc == 0 && s < out->n_rs; s++)
            out->held += out->rs[s].n;
        return rc;
    }
    if (e->kind == QUERY_NODE_SUBQUERY) {
        const query_subquery *sq = &e->u.sq;
        out->range = sq->range_ms;
        out->offset = sq->tm.offset_ms;
        out->has_at = resolve_at(c, &sq->tm, &out->at);
        query_steps inner;
        if (!subquery_steps(c, e, st, &inner))
            return 0;
        if (c->max_samples && inner.n > c->max_samples)
            return query__errf(c, TSDB_ELIMIT,
                               "query processing would load too many samples into memory in query "
                               "execution");
        query_value iv;
        int rc = query__eval(c, sq->expr, &inner, &iv);
        if (rc < 0)
            return rc;
        steps_to_raw(c, &iv, &inner, &out->rs, &out->n_rs);
        query__release(c, &iv);
        for (size_t s = 0; s < out->n_rs; s++)
            out->held += out->rs[s].n;
        return query__account(c, out->held);
    }
    return query__errf(c, TSDB_EEXEC, "expected a range vector expression");
}

/* ---- Nodes ------------------------------------------------------------------------------------
 */

static int eval_unary(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *out)
{
    int rc = query__eval(c, e->u.un.expr, st, out);
    if (rc < 0 || e->u.un.op != QUERY_OP_SUB)
        return rc;
    if (out->kind == QUERY_V_SCALAR) {
        double *v = query__scalar_new(c, st->n);
        for (size_t i = 0; i < st->n; i++)
            v[i] = -out->scalar[i];
        out->scalar = v;
        return 0;
    }
    if (out->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "unary minus on a non-numeric value");
    query_vseries *ns = tsdb_arena_alloc(c->a, (out->n_vs ? out->n_vs : 1) * sizeof *ns);
    query_map m;
    query__map_init(&m, out->n_vs);
    for (size_t s = 0; s < out->n_vs; s++) {
        ns[s] = out->vs[s]; /* same span and presence */
        ns[s].labels = query__labels_drop_name(c, out->vs[s].labels);
        ns[s].ts = NULL;
        ns[s].v = tsdb_arena_alloc(c->a, (ns[s].len ? ns[s].len : 1) * sizeof(double));
        for (size_t x = 0; x < ns[s].len; x++)
            ns[s].v[x] = -out->vs[s].v[x];
        uint64_t h = query__labels_hash(c, ns[s].labels);
        size_t dummy;
        if (query__map_get(&m, h, &dummy)) {
            query__map_fini(&m);
            return query__errf(c, TSDB_EEXEC,
                               "vector cannot contain metrics with the same labelset");
        }
        query__map_put(&m, h, s);
    }
    query__map_fini(&m);
    out->vs = ns;
    out->node = e;
    return 0;
}

int query__eval(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *out)
{
    int rc = query__check_deadline(c);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    switch (e->kind) {
    case QUERY_NODE_NUMBER:
        out->kind = QUERY_V_SCALAR;
        out->scalar = query__scalar_new(c, st->n);
        for (size_t i = 0; i < st->n; i++)
            out->scalar[i] = e->u.num;
        out->node = e;
        return 0;
    case QUERY_NODE_STRING:
        out->kind = QUERY_V_STRING;
        out->str = e->u.str;
        out->node = e;
        return 0;
    case QUERY_NODE_VECTOR_SEL:
        return eval_vector_sel(c, e, st, out);
    case QUERY_NODE_MATRIX_SEL:
    case QUERY_NODE_SUBQUERY:
        return query__eval_range(c, e, st, out);
    case QUERY_NODE_PAREN:
        return query__eval(c, e->u.paren, st, out);
    case QUERY_NODE_UNARY:
        return eval_unary(c, e, st, out);
    case QUERY_NODE_BINARY: {
        query_value l, r;
        if ((rc = query__eval(c, e->u.bin.lhs, st, &l)) < 0)
            return rc;
        if ((rc = query__eval(c, e->u.bin.rhs, st, &r)) < 0)
            return rc;
        rc = query__binop(c, e, st, &l, &r, out);
        query__release(c, &l);
        query__release(c, &r);
        if (rc >= 0)
            out->node = e;
        return rc;
    }
    case QUERY_NODE_AGG: {
        query_value p, in;
        memset(&p, 0, sizeof p);
        if (e->u.agg.param && (rc = query__eval(c, e->u.agg.param, st, &p)) < 0)
            return rc;
        if ((rc = query__eval(c, e->u.agg.expr, st, &in)) < 0)
            return rc;
        rc = query__agg(c, e, st, &in, e->u.agg.param ? &p : NULL, out);
        query__release(c, &in);
        if (rc >= 0)
            out->node = e;
        return rc;
    }
    case QUERY_NODE_CALL:
        rc = query__call(c, e, st, out);
        if (rc >= 0)
            out->node = e;
        return rc;
    }
    return query__errf(c, TSDB_EEXEC, "unknown expression node");
}

/* ---- Function calls
 * ------------------------------------------------------------------------------ */

static int dispatch(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                    query_value *args, query_value *out)
{
    const query_call *call = &e->u.call;
    switch (call->fn->id) {
    case QUERY_FN_ABSENT_OVER_TIME:
    case QUERY_FN_AVG_OVER_TIME:
    case QUERY_FN_CHANGES:
    case QUERY_FN_COUNT_OVER_TIME:
    case QUERY_FN_DELTA:
    case QUERY_FN_DERIV:
    case QUERY_FN_HOLT_WINTERS:
    case QUERY_FN_IDELTA:
    case QUERY_FN_INCREASE:
    case QUERY_FN_IRATE:
    case QUERY_FN_LAST_OVER_TIME:
    case QUERY_FN_MAX_OVER_TIME:
    case QUERY_FN_MIN_OVER_TIME:
    case QUERY_FN_PREDICT_LINEAR:
    case QUERY_FN_PRESENT_OVER_TIME:
    case QUERY_FN_QUANTILE_OVER_TIME:
    case QUERY_FN_RATE:
    case QUERY_FN_RESETS:
    case QUERY_FN_STDDEV_OVER_TIME:
    case QUERY_FN_STDVAR_OVER_TIME:
    case QUERY_FN_SUM_OVER_TIME:
        return query__func_range(c, e, st, args, out);
    case QUERY_FN_DAYS_IN_MONTH:
    case QUERY_FN_DAY_OF_MONTH:
    case QUERY_FN_DAY_OF_WEEK:
    case QUERY_FN_DAY_OF_YEAR:
    case QUERY_FN_HOUR:
    case QUERY_FN_MINUTE:
    case QUERY_FN_MONTH:
    case QUERY_FN_YEAR:
        return query__func_time(c, e, st, args, out);
    case QUERY_FN_LABEL_JOIN:
    case QUERY_FN_LABEL_REPLACE:
        return query__func_label(c, e, st, args, out);
    case QUERY_FN_HISTOGRAM_QUANTILE:
    case QUERY_FN_HISTOGRAM_COUNT:
    case QUERY_FN_HISTOGRAM_SUM:
    case QUERY_FN_HISTOGRAM_FRACTION:
        return query__func_hist(c, e, st, args, out);
    default:
        return query__func_math(c, e, st, args, out);
    }
}

int query__call(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *out)
{
    const query_call *call = &e->u.call;
    size_t na = call->n_args;
    query_value *args = tsdb_arena_calloc(c->a, na ? na : 1, sizeof *args);
    if (call->fn->id == QUERY_FN_TIMESTAMP && na == 1)
        c->ts_node = query__unparen(call->args[0]); /* only a direct selector keeps sample times */
    for (size_t i = 0; i < na; i++) {
        const query_expr *a = query__unparen(call->args[i]);
        int rc;
        if (a->kind == QUERY_NODE_MATRIX_SEL || a->kind == QUERY_NODE_SUBQUERY)
            rc = query__eval_range(c, a, st, &args[i]);
        else
            rc = query__eval(c, call->args[i], st, &args[i]);
        if (rc < 0)
            return rc;
    }
    int rc = dispatch(c, e, st, args, out);
    for (size_t i = 0; i < na; i++)
        query__release(c, &args[i]);
    return rc;
}
