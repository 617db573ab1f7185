/* query/func_range.c -- functions over range vectors: rate, increase, delta, irate, idelta,
 * deriv, predict_linear, holt_winters, changes, resets, the *_over_time family,
 * absent_over_time and present_over_time.
 *
 * Windows: at step i a series' window is its samples with t in the closed interval
 * [end - range, end], end = (@ ? @ : t_i) - offset. The ends never decrease from one step to
 * the next, so two indices slide forward over each series' samples: O(samples + steps).
 *
 * Numerics follow Prometheus 2.42: extrapolatedRate (counter resets, extrapolation to the
 * window edges when the first/last sample is within 110% of the average spacing, never below
 * zero for counters), linear regression with compensated (Kahan) sums, Welford variance.
 * Every function but last_over_time drops __name__; two output series with the same label set
 * are an error.
 */
#include "query/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

/* ---- Pure helpers ------------------------------------------------------------------------------
 */

static void kahan_inc(double inc, double *sum, double *c)
{
    double t = *sum + inc;
    if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

/* may_reset 0: the caller knows the window holds no counter reset (and p[0].v >= 0), so the scan
 * for them, which would add nothing, is skipped. */
static int extrapolated_rate(const tsdb_sample *p, size_t n, int64_t wstart, int64_t wend,
                             int is_counter, int is_rate, int may_reset, double *out)
{
    if (n < 2)
        return 0;
    double result = p[n - 1].v - p[0].v;
    if (is_counter && may_reset) {
        double last = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i].v < last)
                result += last;
            last = p[i].v;
        }
    }
    double to_start = (double)(p[0].t - wstart) / 1000;
    double to_end = (double)(wend - p[n - 1].t) / 1000;
    double sampled = (double)(p[n - 1].t - p[0].t) / 1000;
    double avg = sampled / (double)(n - 1);
    if (is_counter && result > 0 && p[0].v >= 0) {
        double to_zero = sampled * (p[0].v / result);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    double threshold = avg * 1.1;
    double interval = sampled;
    interval += to_start < threshold ? to_start : avg / 2;
    interval += to_end < threshold ? to_end : avg / 2;
    double factor = interval / sampled;
    if (is_rate)
        factor /= (double)(wend - wstart) / 1000;
    *out = result * factor;
    return 1;
}

int query__extrapolated_rate(const tsdb_sample *p, size_t n, int64_t wstart, int64_t wend,
                             int is_counter, int is_rate, double *out)
{
    return extrapolated_rate(p, n, wstart, wend, is_counter, is_rate, 1, out);
}

int query__instant_delta(const tsdb_sample *p, size_t n, int is_rate, double *out)
{
    if (n < 2)
        return 0;
    const tsdb_sample *last = &p[n - 1], *prev = &p[n - 2];
    double r;
    if (is_rate && last->v < prev->v)
        r = last->v;
    else
        r = last->v - prev->v;
    int64_t dt = last->t - prev->t;
    if (dt == 0)
        return 0;
    if (is_rate)
        r /= (double)dt / 1000;
    *out = r;
    return 1;
}

void query__linear_regression(const tsdb_sample *p, size_t n, int64_t t0, double *slope,
                              double *intercept)
{
    double sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init = p[0].v;
    int const_y = 1;
    for (size_t i = 0; i < n; i++) {
        if (const_y && i > 0 && p[i].v != init)
            const_y = 0;
        double x = (double)(p[i].t - t0) / 1e3;
        kahan_inc(x, &sx, &cx);
        kahan_inc(p[i].v, &sy, &cy);
        kahan_inc(x * p[i].v, &sxy, &cxy);
        kahan_inc(x * x, &sx2, &cx2);
    }
    if (const_y) {
        if (isinf(init)) {
            *slope = NAN;
            *intercept = NAN;
        } else {
            *slope = 0;
            *intercept = init;
        }
        return;
    }
    double fn = (double)n;
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / fn;
    double var = sx2 - sx * sx / fn;
    *slope = cov / var;
    *intercept = sy / fn - *slope * sx / fn;
}

int query__holt_winters(const tsdb_sample *p, size_t n, double sf, double tf, double *out)
{
    if (n < 2)
        return 0;
    double s0 = 0, s1 = p[0].v, b = p[1].v - p[0].v;
    for (size_t i = 1; i < n; i++) {
        double x = sf * p[i].v;
        if (i > 1)
            b = tf * (s1 - s0) + (1 - tf) * b;
        double y = (1 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    *out = s1;
    return 1;
}

/* ---- Window reductions -------------------------------------------------------------------------
 */

static double avg_over(const tsdb_sample *p, size_t n)
{
    double mean = 0, c = 0, cnt = 0;
    for (size_t i = 0; i < n; i++) {
        cnt++;
        double v = p[i].v;
        if (isinf(mean)) {
            if (isinf(v) && (mean > 0) == (v > 0))
                continue;
            if (!isinf(v) && !isnan(v))
                continue;
        }
        kahan_inc(v / cnt - mean / cnt, &mean, &c);
    }
    if (isinf(mean))
        return mean;
    return mean + c;
}

static double var_over(const tsdb_sample *p, size_t n)
{
    double cnt = 0, mean = 0, cm = 0, aux = 0, ca = 0;
    for (size_t i = 0; i < n; i++) {
        cnt++;
        double delta = p[i].v - (mean + cm);
        kahan_inc(delta / cnt, &mean, &cm);
        kahan_inc(delta * (p[i].v - (mean + cm)), &aux, &ca);
    }
    return (aux + ca) / cnt;
}

/* Labels for absent()/absent_over_time(): the equality matchers of a selector argument, minus
 * __name__ and minus any name constrained more than once or by a non-equality matcher. */
tsdb_labels query__absent_labels(query_eval_ctx *c, const query_expr *arg)
{
    const query_expr *e = query__unparen(arg);
    if (e->kind == QUERY_NODE_MATRIX_SEL)
        e = e->u.ms.vs;
    tsdb_labels l = {NULL, 0};
    if (e->kind != QUERY_NODE_VECTOR_SEL)
        return l;
    const query_vector_sel *vs = &e->u.vs;
    tsdb_str *bad = tsdb_arena_alloc(c->a, (vs->n_src + 1) * sizeof *bad);
    size_t nbad = 0;
    for (size_t i = 0; i < vs->n_src; i++) {
        const query_matcher_src *m = &vs->src[i];
        if (tsdb_str_eq(m->name, query__name_label))
            continue;
        if (m->op == TSDB_MATCH_EQ && tsdb_labels_get(l, m->name).len == 0 &&
            !query__names_has(bad, nbad, m->name))
            l = query__labels_set(c, l, m->name, m->value);
        else
            bad[nbad++] = m->name;
    }
    return query__labels_del(c, l, bad, nbad, 0);
}

int query__func_range(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    size_t mi = id == QUERY_FN_QUANTILE_OVER_TIME ? 1 : 0;
    query_value *m = &args[mi];
    if (m->kind != QUERY_V_MATRIX)
        return query__errf(c, TSDB_EEXEC, "expected a range vector argument");
    int rc = 0;
    if (id == QUERY_FN_ABSENT_OVER_TIME) {
        query_out o;
        query__out_init(&o, c, st, 1);
        uint8_t *seen = tsdb_arena_calloc(c->a, st->n, 1);
        for (size_t s = 0; s < m->n_rs; s++) {
            const query_rseries *r = &m->rs[s];
            size_t lo = 0, hi = 0;
            for (size_t i = 0; i < st->n; i++) {
                int64_t we = query__wend(m, st, i), ws = query__sub_sat(we, m->range);
                while (lo < r->n && r->pts[lo].t < ws)
                    lo++;
                if (hi < lo)
                    hi = lo;
                while (hi < r->n && r->pts[hi].t <= we)
                    hi++;
                if (hi > lo)
                    seen[i] = 1;
            }
        }
        size_t idx = query__out_series(&o, query__absent_labels(c, m->node));
        for (size_t i = 0; i < st->n; i++)
            if (!seen[i])
                (void)query__out_put(&o, idx, i, 1); /* each step once: cannot collide */
        return query__out_finish(&o, out);
    }

    query_vseries *res = tsdb_arena_alloc(c->a, (m->n_rs ? m->n_rs : 1) * sizeof *res);
    size_t nres = 0, pts = 0;
    query_map seen;
    query__map_init(&seen, m->n_rs);
    /* Dense scratch for one series at a time; only its span of present steps is kept. */
    double *sv = xmalloc(st->n * sizeof *sv);
    uint8_t *sok = xmalloc(st->n);
    /* rate/increase: drops[k] counts the counter resets (a value below the one before) among
     * samples 1..k of the series, so a window without one skips the scan for them. */
    int counter = id == QUERY_FN_RATE || id == QUERY_FN_INCREASE;
    uint32_t *drops = NULL;
    size_t drops_cap = 0;
    for (size_t s = 0; s < m->n_rs && rc == 0; s++) {
        const query_rseries *r = &m->rs[s];
        query_vseries *o = &res[nres];
        memset(sok, 0, st->n);
        if (counter && r->n > 0) {
            if (r->n > drops_cap) {
                drops_cap = r->n;
                drops = xrealloc(drops, drops_cap * sizeof *drops);
            }
            drops[0] = 0;
            for (size_t k = 1; k < r->n; k++)
                drops[k] = drops[k - 1] + (r->pts[k].v < r->pts[k - 1].v);
        }
        size_t lo = 0, hi = 0, any = 0;
        for (size_t i = 0; i < st->n; i++) {
            int64_t we = query__wend(m, st, i), ws = query__sub_sat(we, m->range);
            while (lo < r->n && r->pts[lo].t < ws)
                lo++;
            if (hi < lo)
                hi = lo;
            while (hi < r->n && r->pts[hi].t <= we)
                hi++;
            size_t n = hi - lo;
            if (n == 0)
                continue;
            const tsdb_sample *p = r->pts + lo;
            double v = 0;
            int have = 1;
            switch (id) {
            case QUERY_FN_RATE:
            case QUERY_FN_INCREASE: {
                int may_reset = !(p[0].v >= 0) || drops[hi - 1] != drops[lo];
                have = extrapolated_rate(p, n, ws, we, 1, id == QUERY_FN_RATE, may_reset, &v);
                break;
            }
            case QUERY_FN_DELTA:
                have = query__extrapolated_rate(p, n, ws, we, 0, 0, &v);
                break;
            case QUERY_FN_IRATE:
                have = query__instant_delta(p, n, 1, &v);
                break;
            case QUERY_FN_IDELTA:
                have = query__instant_delta(p, n, 0, &v);
                break;
            case QUERY_FN_DERIV: {
                double icpt;
                have = n >= 2;
                if (have)
                    query__linear_regression(p, n, p[0].t, &v, &icpt);
                break;
            }
            case QUERY_FN_PREDICT_LINEAR: {
                double slope, icpt;
                have = n >= 2;
                if (have) {
                    query__linear_regression(p, n, query__step_t(st, i), &slope, &icpt);
                    v = slope * args[1].scalar[i] + icpt;
                }
                break;
            }
            case QUERY_FN_HOLT_WINTERS: {
                /* As in Prometheus, the factors are checked only where there are samples. */
                double sf = args[1].scalar[i], tf = args[2].scalar[i];
                if (sf <= 0 || sf >= 1)
                    rc = query__errf(c, TSDB_EEXEC,
                                     "invalid smoothing factor. Expected: 0 < sf < 1, got: %f", sf);
                else if (tf <= 0 || tf >= 1)
                    rc = query__errf(c, TSDB_EEXEC,
                                     "invalid trend factor. Expected: 0 < tf < 1, got: %f", tf);
                have = rc == 0 && query__holt_winters(p, n, sf, tf, &v);
                break;
            }
            case QUERY_FN_CHANGES:
            case QUERY_FN_RESETS: {
                double cnt = 0;
                for (size_t k = 1; k < n; k++) {
                    double a = p[k - 1].v, b = p[k].v;
                    if (id == QUERY_FN_CHANGES ? (a != b && !(isnan(a) && isnan(b))) : b < a)
                        cnt++;
                }
                v = cnt;
                break;
            }
            case QUERY_FN_AVG_OVER_TIME:
                v = avg_over(p, n);
                break;
            case QUERY_FN_COUNT_OVER_TIME:
                v = (double)n;
                break;
            case QUERY_FN_SUM_OVER_TIME: {
                double sum = 0, cc = 0;
                for (size_t k = 0; k < n; k++)
                    kahan_inc(p[k].v, &sum, &cc);
                v = isinf(sum) ? sum : sum + cc;
                break;
            }
            case QUERY_FN_MAX_OVER_TIME:
                v = p[0].v;
                for (size_t k = 0; k < n; k++)
                    if (p[k].v > v || isnan(v))
                        v = p[k].v;
                break;
            case QUERY_FN_MIN_OVER_TIME:
                v = p[0].v;
                for (size_t k = 0; k < n; k++)
                    if (p[k].v < v || isnan(v))
                        v = p[k].v;
                break;
            case QUERY_FN_STDDEV_OVER_TIME:
                v = sqrt(var_over(p, n));
                break;
            case QUERY_FN_STDVAR_OVER_TIME:
                v = var_over(p, n);
                break;
            case QUERY_FN_LAST_OVER_TIME:
                v = p[n - 1].v;
                break;
            case QUERY_FN_PRESENT_OVER_TIME:
                v = 1;
                break;
            case QUERY_FN_QUANTILE_OVER_TIME: {
                double *vals = xmalloc(n * sizeof *vals);
                for (size_t k = 0; k < n; k++)
                    vals[k] = p[k].v;
                v = query__quantile(args[0].scalar[i], vals, n);
                free(vals);
                break;
            }
            default:
                have = 0;
                break;
            }
            if (rc < 0)
                break;
            if (!have)
                continue;
            sv[i] = v;
            sok[i] = 1;
            any++;
        }
        if (rc < 0)
            break;
        if (!any)
            continue;
        o->labels =
            id == QUERY_FN_LAST_OVER_TIME ? r->labels : query__labels_drop_name(c, r->labels);
        uint64_t h = query__labels_hash(c, o->labels);
        size_t dummy;
        if (query__map_get(&seen, h, &dummy)) {
            rc = query__errf(c, TSDB_EEXEC, "vector cannot contain metrics with the same labelset");
            break;
        }
        query__map_put(&seen, h, s);
        pts += query__vseries_from_dense(c, o, sv, sok, NULL, st->n);
        nres++;
        rc = query__check_deadline(c);
    }
    free(sv);
    free(sok);
    free(drops);
    query__map_fini(&seen);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_VECTOR;
    out->vs = res;
    out->n_vs = nres;
    out->held = pts;
    return query__account(c, pts);
}
