/* query/agg.c -- aggregation operators (sum, avg, min, max, count, group, stddev, stdvar,
 * topk, bottomk, quantile, count_values) with by/without grouping.
 *
 * Each input series belongs to one group for all steps (its grouping labels do not change), so
 * the groups are computed once: the series are ordered by group (stably, so the per-group
 * accumulation order is the input order, as in Prometheus) and each step walks every group's
 * range. Arithmetic follows Prometheus 2.42: avg is an incremental mean that tolerates
 * infinities, stddev/stdvar use Welford's update, min/max replace a NaN accumulator.
 * count_values is the exception: its groups depend on the value, so it keys output series by
 * their label set per point.
 */
#include "query/eval.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

typedef struct ent {
    double v;
    size_t s;
} ent;

/* topk/bottomk select exactly as Prometheus 2.42 does, so ties pick the same series: a binary
 * heap (Go's container/heap) keeping the k best with the worst on top, NaN counting as the
 * worst, where a better sample pops the top and is pushed; the result is then ordered best first by
 * an insertion sort over the heap array (what Go's sort does for the small k it sees in practice).
 */
static int heap_less(const ent *h, size_t i, size_t j, int top)
{
    if (isnan(h[i].v))
        return 1;
    return top ? h[i].v < h[j].v : h[i].v > h[j].v;
}

static void heap_swap(ent *h, size_t i, size_t j)
{
    ent t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void heap_up(ent *h, size_t j, int top)
{
    while (j > 0) {
        size_t i = (j - 1) / 2;
        if (!heap_less(h, j, i, top))
            break;
        heap_swap(h, i, j);
        j = i;
    }
}

static void heap_down(ent *h, size_t i, size_t n, int top)
{
    for (;;) {
        size_t j = 2 * i + 1;
        if (j >= n)
            break;
        if (j + 1 < n && heap_less(h, j + 1, j, top))
            j++;
        if (!heap_less(h, j, i, top))
            break;
        heap_swap(h, i, j);
        i = j;
    }
}

/* Selects the best min(k, n) of in[0..n) into h (capacity >= min(k, n)), ordered best first;
 * returns how many. */
static size_t select_k(const ent *in, size_t n, uint64_t k, ent *h, int top)
{
    size_t m = 0;
    for (size_t x = 0; x < n; x++) {
        double v = in[x].v;
        if (m < k || (top ? h[0].v < v : h[0].v > v) || isnan(h[0].v)) {
            if (m == k) {
                if (k == 1) {
                    h[0] = in[x]; /* replaced in place */
                    continue;
                }
                /* heap.Pop: the top goes last, the rest is sifted, the last dropped */
                heap_swap(h, 0, m - 1);
                heap_down(h, 0, m - 1, top);
                m--;
            }
            h[m] = in[x];
            heap_up(h, m, top);
            m++;
        }
    }
    /* sort.Reverse(heap): j moves left while heap_less(j - 1, j) */
    for (size_t x = 1; x < m; x++)
        for (size_t j = x; j > 0 && heap_less(h, j - 1, j, top); j--)
            heap_swap(h, j, j - 1);
    return m;
}

static tsdb_labels group_labels(query_eval_ctx *c, const query_agg *a, tsdb_labels l)
{
    if (a->without)
        return query__labels_del(c, l, a->grouping, a->n_grouping, 1);
    return query__labels_keep(c, l, a->grouping, a->n_grouping);
}

static int count_values(query_eval_ctx *c, const query_agg *a, const query_steps *st,
                        query_value *in, tsdb_str label, query_value *out)
{
    if (!tsdb_label_name_valid(label))
        return query__errf(c, TSDB_EEXEC, "invalid label name \"%.*s\"", (int)label.len, label.p);
    /* by(...) keeps the value label too */
    tsdb_str *names = tsdb_arena_alloc(c->a, (a->n_grouping + 1) * sizeof *names);
    if (a->n_grouping)
        memcpy(names, a->grouping, a->n_grouping * sizeof *names);
    size_t nn = a->n_grouping;
    if (!a->without)
        names[nn++] = label;
    /* The output label set of a point is its series' grouped labels plus label=value; it is
     * built only the first time a (series group, value) pair occurs, so repeated values cost
     * a hash lookup, not an allocation. */
    int value_kept = !(a->without && query__names_has(a->grouping, a->n_grouping, label));
    uint64_t *base = xmalloc((in->n_vs + 1) * sizeof *base);
    tsdb_labels *bl = xmalloc((in->n_vs + 1) * sizeof *bl);
    for (size_t s = 0; s < in->n_vs; s++) {
        tsdb_labels l = query__labels_del(c, in->vs[s].labels, &label, 1, 0);
        bl[s] = a->without ? query__labels_del(c, l, names, nn, 1)
                           : query__labels_keep(c, l, names, nn);
        base[s] = query__labels_hash(c, bl[s]);
    }
    query_map seen;
    query__map_init(&seen, in->n_vs);
    query_out o;
    query__out_init(&o, c, st, in->n_vs);
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        for (size_t s = 0; s < in->n_vs; s++) {
            if (!query__ok(&in->vs[s], i))
                continue;
            double v = query__v(&in->vs[s], i);
            uint64_t key[2] = {base[s], 0};
            if (value_kept) {
                if (isnan(v))
                    v = NAN; /* every NaN prints as "NaN" */
                memcpy(&key[1], &v, sizeof v);
            }
            uint64_t h = tsdb_hash(key, sizeof key);
            size_t idx;
            if (!query__map_get(&seen, h, &idx)) {
                tsdb_labels l = bl[s];
                if (value_kept)
                    l = query__labels_set(c, l, label, query__fmt_float(c, v));
                idx = query__out_series(&o, l);
                query__map_put(&seen, h, idx);
            }
            query__out_add(&o, idx, i, 1);
        }
        rc = query__check_deadline(c);
    }
    free(base);
    free(bl);
    query__map_fini(&seen);
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}

/* The ops whose value at a step depends only on that step's samples, in input order: computed
 * group by group and series by series, each step keeping its own accumulator, which reads each
 * series' samples once, in memory order (the step-major walk below touches every series at every
 * step). Per step the same operations run in the same order, so the results are the same. */
static int is_streaming_op(int op)
{
    switch (op) {
    case QUERY_AGG_SUM:
    case QUERY_AGG_AVG:
    case QUERY_AGG_MAX:
    case QUERY_AGG_MIN:
    case QUERY_AGG_COUNT:
    case QUERY_AGG_GROUP:
    case QUERY_AGG_STDDEV:
    case QUERY_AGG_STDVAR:
        return 1;
    default:
        return 0;
    }
}

/* First step with a sample in sv, or SIZE_MAX. */
static size_t first_step(const query_vseries *sv)
{
    for (size_t x = 0; x < sv->len; x++)
        if (sv->ok[x])
            return sv->off + x;
    return SIZE_MAX;
}

typedef struct gfirst {
    size_t step, g;
} gfirst;

static int gfirst_cmp(const void *a, const void *b)
{
    const gfirst *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

/* Output series are created in the order the step-major walk would create them: by the first
 * step where the group has a sample, then by group. */
static int agg_streaming(query_eval_ctx *c, int op, const query_steps *st, const query_value *in,
                         size_t ng, const size_t *gstart, const size_t *order,
                         const tsdb_labels *glabels, query_out *o)
{
    size_t n = st->n;
    gfirst *gf = xmalloc((ng + 1) * sizeof *gf);
    for (size_t g = 0; g < ng; g++) {
        gf[g] = (gfirst){SIZE_MAX, g};
        for (size_t k = gstart[g]; k < gstart[g + 1]; k++) {
            size_t f = first_step(&in->vs[order[k]]);
            if (f < gf[g].step)
                gf[g].step = f;
        }
    }
    qsort(gf, ng, sizeof *gf, gfirst_cmp);
    size_t *gout = xmalloc((ng + 1) * sizeof *gout);
    for (size_t r = 0; r < ng; r++)
        gout[gf[r].g] =
            gf[r].step == SIZE_MAX ? (size_t)-1 : query__out_series(o, glabels[gf[r].g]);
    free(gf);

    uint32_t *cnt = xcalloc(n ? n : 1, sizeof *cnt);
    double *val = xmalloc((n ? n : 1) * sizeof *val);
    int need_mean = op == QUERY_AGG_AVG || op == QUERY_AGG_STDDEV || op == QUERY_AGG_STDVAR;
    double *mean = need_mean ? xmalloc(n * sizeof *mean) : NULL;
    double *acc = need_mean ? xmalloc(n * sizeof *acc) : NULL;
    int rc = 0;
    for (size_t g = 0; g < ng && rc == 0; g++) {
        if (gout[g] == (size_t)-1)
            continue;
        size_t lo = n, hi = 0;
        for (size_t k = gstart[g]; k < gstart[g + 1] && rc == 0; k++) {
            if ((k & 1023) == 1023 && (rc = query__check_deadline(c)) < 0)
                break;
            const query_vseries *sv = &in->vs[order[k]];
            const uint8_t *ok = sv->ok;
            const double *vv = sv->v;
            size_t off = sv->off, len = sv->len;
            if (off >= n)
                continue;
            if (len > n - off)
                len = n - off;
            if (len == 0)
                continue;
            if (off < lo)
                lo = off;
            if (off + len > hi)
                hi = off + len;
            for (size_t x = 0; x < len; x++) {
                if (!ok[x])
                    continue;
                size_t i = off + x;
                double v = vv[x];
                uint32_t cn = ++cnt[i];
                if (cn == 1) {
                    val[i] = v;
                    if (need_mean) {
                        mean[i] = v;
                        acc[i] = 0;
                    }
                    continue;
                }
                switch (op) {
                case QUERY_AGG_SUM:
                    val[i] += v;
                    break;
                case QUERY_AGG_AVG: {
                    double dn = (double)cn;
                    double m = mean[i];
                    if (isinf(m)) {
                        if (isinf(v) && (m > 0) == (v > 0))
                            break;
                        if (!isinf(v) && !isnan(v))
                            break;
                    }
                    mean[i] = m + (v / dn - m / dn);
                    break;
                }
                case QUERY_AGG_MAX:
                    if (val[i] < v || isnan(val[i]))
                        val[i] = v;
                    break;
                case QUERY_AGG_MIN:
                    if (val[i] > v || isnan(val[i]))
                        val[i] = v;
                    break;
                case QUERY_AGG_STDDEV:
                case QUERY_AGG_STDVAR: {
                    double delta = v - mean[i];
                    mean[i] += delta / (double)cn;
                    acc[i] += delta * (v - mean[i]);
                    break;
                }
                default:
                    break;
                }
            }
        }
        for (size_t i = lo; i < hi; i++) {
            if (!cnt[i])
                continue;
            double res;
            switch (op) {
            case QUERY_AGG_AVG:
                res = mean[i];
                break;
            case QUERY_AGG_COUNT:
                res = (double)cnt[i];
                break;
            case QUERY_AGG_GROUP:
                res = 1;
                break;
            case QUERY_AGG_STDVAR:
                res = acc[i] / (double)cnt[i];
                break;
            case QUERY_AGG_STDDEV:
                res = sqrt(acc[i] / (double)cnt[i]);
                break;
            default: /* sum, max, min */
                res = val[i];
                break;
            }
            cnt[i] = 0;
            if (rc == 0)
                rc = query__out_put(o, gout[g], i, res);
        }
        if (rc == 0)
            rc = query__check_deadline(c);
    }
    free(cnt);
    free(val);
    free(mean);
    free(acc);
    free(gout);
    return rc;
}

int query__agg(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *in,
               query_value *param, query_value *out)
{
    const query_agg *a = &e->u.agg;
    if (in->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "aggregation over a non-vector value");
    if (a->op == QUERY_AGG_COUNT_VALUES) {
        if (!param || param->kind != QUERY_V_STRING)
            return query__errf(c, TSDB_EEXEC, "count_values needs a string parameter");
        return count_values(c, a, st, in, param->str, out);
    }
    int is_k = a->op == QUERY_AGG_TOPK || a->op == QUERY_AGG_BOTTOMK;
    if ((is_k || a->op == QUERY_AGG_QUANTILE) && (!param || param->kind != QUERY_V_SCALAR))
        return query__errf(c, TSDB_EEXEC, "aggregation needs a scalar parameter");
    if (is_k) {
        for (size_t i = 0; i < st->n; i++) {
            double k = param->scalar[i];
            if (!(k >= -9.2233720368547758e18 && k <= 9.2233720368547758e18))
                return query__errf(c, TSDB_EEXEC, "Scalar value %s overflows int64",
                                   query__fmt_float(c, k).p);
        }
    }

    /* Groups, in order of first appearance. */
    size_t ns = in->n_vs;
    size_t *gid = xmalloc((ns + 1) * sizeof *gid);
    tsdb_labels *glabels = xmalloc((ns + 1) * sizeof *glabels);
    query_map gm;
    query__map_init(&gm, ns);
    size_t ng = 0;
    for (size_t s = 0; s < ns; s++) {
        tsdb_labels gl = group_labels(c, a, in->vs[s].labels);
        uint64_t h = query__labels_hash(c, gl);
        size_t g;
        if (!query__map_get(&gm, h, &g)) {
            g = ng++;
            glabels[g] = gl;
            query__map_put(&gm, h, g);
        }
        gid[s] = g;
    }
    query__map_fini(&gm);
    /* Counting sort of series by group, stable. */
    size_t *gstart = xcalloc(ng + 1, sizeof *gstart);
    size_t *order = xmalloc((ns + 1) * sizeof *order);
    for (size_t s = 0; s < ns; s++)
        gstart[gid[s] + 1]++;
    for (size_t g = 0; g < ng; g++)
        gstart[g + 1] += gstart[g];
    size_t *fill = xmalloc((ng + 1) * sizeof *fill);
    memcpy(fill, gstart, (ng + 1) * sizeof *fill);
    for (size_t s = 0; s < ns; s++)
        order[fill[gid[s]]++] = s;
    free(fill);

    query_out o;
    query__out_init(&o, c, st, is_k ? ns : ng);
    if (is_streaming_op(a->op)) {
        int rc = agg_streaming(c, a->op, st, in, ng, gstart, order, glabels, &o);
        free(order);
        free(gstart);
        free(glabels);
        free(gid);
        if (rc < 0) {
            query__out_fini(&o);
            return rc;
        }
        return query__out_finish(&o, out);
    }
    size_t *gout = xmalloc((ng + 1) * sizeof *gout);
    for (size_t g = 0; g < ng; g++)
        gout[g] = (size_t)-1;
    size_t *sout = NULL;
    if (is_k) {
        sout = xmalloc((ns + 1) * sizeof *sout);
        for (size_t s = 0; s < ns; s++)
            sout[s] = (size_t)-1;
    }
    ent *buf = xmalloc((ns + 1) * sizeof *buf);
    ent *hbuf = is_k ? xmalloc((ns + 1) * sizeof *hbuf) : NULL;
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        if (is_k && (int64_t)param->scalar[i] < 1)
            continue;
        for (size_t g = 0; g < ng && rc == 0; g++) {
            size_t cnt = 0;
            double val = 0, mean = 0, acc = 0;
            for (size_t k = gstart[g]; k < gstart[g + 1]; k++) {
                const query_vseries *sv = &in->vs[order[k]];
                if (!query__ok(sv, i))
                    continue;
                double v = query__v(sv, i);
                cnt++;
                if (cnt == 1) {
                    val = v;
                    mean = v;
                    acc = 0;
                    buf[0] = (ent){v, order[k]};
                    continue;
                }
                buf[cnt - 1] = (ent){v, order[k]};
                switch (a->op) {
                case QUERY_AGG_SUM:
                    val += v;
                    break;
                case QUERY_AGG_AVG: {
                    double n = (double)cnt;
                    if (isinf(mean)) {
                        if (isinf(v) && (mean > 0) == (v > 0))
                            break;
                        if (!isinf(v) && !isnan(v))
                            break;
                    }
                    mean += v / n - mean / n;
                    break;
                }
                case QUERY_AGG_MAX:
                    if (val < v || isnan(val))
                        val = v;
                    break;
                case QUERY_AGG_MIN:
                    if (val > v || isnan(val))
                        val = v;
                    break;
                case QUERY_AGG_STDDEV:
                case QUERY_AGG_STDVAR: {
                    double delta = v - mean;
                    mean += delta / (double)cnt;
                    acc += delta * (v - mean);
                    break;
                }
                default:
                    break;
                }
            }
            if (!cnt)
                continue;
            double res;
            switch (a->op) {
            case QUERY_AGG_SUM:
            case QUERY_AGG_MAX:
            case QUERY_AGG_MIN:
                res = val;
                break;
            case QUERY_AGG_AVG:
                res = mean;
                break;
            case QUERY_AGG_COUNT:
                res = (double)cnt;
                break;
            case QUERY_AGG_GROUP:
                res = 1;
                break;
            case QUERY_AGG_STDVAR:
                res = acc / (double)cnt;
                break;
            case QUERY_AGG_STDDEV:
                res = sqrt(acc / (double)cnt);
                break;
            case QUERY_AGG_QUANTILE: {
                double *vals = xmalloc(cnt * sizeof *vals);
                for (size_t k = 0; k < cnt; k++)
                    vals[k] = buf[k].v;
                res = query__quantile(param->scalar[i], vals, cnt);
                free(vals);
                break;
            }
            case QUERY_AGG_TOPK:
            case QUERY_AGG_BOTTOMK: {
                size_t take = select_k(buf, cnt, (uint64_t)(int64_t)param->scalar[i], hbuf,
                                       a->op == QUERY_AGG_TOPK);
                for (size_t k = 0; k < take && rc == 0; k++) {
                    size_t s = hbuf[k].s;
                    if (sout[s] == (size_t)-1)
                        sout[s] = query__out_series(&o, in->vs[s].labels);
                    rc = query__out_put(&o, sout[s], i, hbuf[k].v);
                }
                continue;
            }
            default:
                res = NAN;
                break;
            }
            if (gout[g] == (size_t)-1)
                gout[g] = query__out_series(&o, glabels[g]);
            rc = query__out_put(&o, gout[g], i, res);
        }
        if (rc == 0)
            rc = query__check_deadline(c);
    }
    free(buf);
    free(hbuf);
    free(sout);
    free(gout);
    free(order);
    free(gstart);
    free(glabels);
    free(gid);
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}
