/* query/func_hist.c -- histogram_quantile over classic histograms (le-labelled buckets).
 *
 * At each step the input series are grouped by all labels except le and __name__; each group's
 * buckets (upper bound from le, cumulative count as value) give one output value:
 * Prometheus 2.42's bucketQuantile, including its fix-ups: buckets with the same bound are
 * merged, counts are forced monotonic (scrapes of buckets are not atomic), a missing +Inf
 * bucket gives NaN, fewer than two buckets or zero observations give NaN, and a quantile in the
 * +Inf bucket returns the second-highest bound. Series without a parsable le are skipped. The
 * native-histogram functions (histogram_count/sum/fraction) see no histograms: empty results.
 */
#include "query/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static int bucket_cmp(const void *a, const void *b)
{
    double x = ((const query_bucket *)a)->upper, y = ((const query_bucket *)b)->upper;
    return (x > y) - (x < y);
}

double query__bucket_quantile(double q, query_bucket *b, size_t n)
{
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    if (n == 0)
        return NAN;
    qsort(b, n, sizeof *b, bucket_cmp);
    if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0))
        return NAN;
    /* Merge buckets with equal bounds. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && b[k - 1].upper == b[i].upper)
            b[k - 1].count += b[i].count;
        else
            b[k++] = b[i];
    }
    n = k;
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (b[i].count > max)
            max = b[i].count;
        else if (b[i].count < max)
            b[i].count = max;
    }
    if (n < 2)
        return NAN;
    double obs = b[n - 1].count;
    if (obs == 0)
        return NAN;
    double rank = q * obs;
    size_t i = 0;
    while (i < n - 1 && !(b[i].count >= rank))
        i++;
    if (i == n - 1)
        return b[n - 2].upper;
    if (i == 0 && b[0].upper <= 0)
        return b[0].upper;
    double start = 0, end = b[i].upper, count = b[i].count;
    if (i > 0) {
        start = b[i - 1].upper;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    return start + (end - start) * (rank / count);
}

static int parse_le(tsdb_str s, double *out)
{
    if (s.len == 0 || s.len > 63)
        return 0;
    char buf[64];
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    const char *p = buf;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!strcmp(p, "Inf") || !strcmp(p, "inf") || !strcmp(p, "+Inf") || !strcmp(p, "Infinity") ||
        !strcmp(p, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 1;
    }
    if (!strcmp(p, "NaN") || !strcmp(p, "nan")) {
        *out = NAN;
        return 1;
    }
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || end == buf)
        return 0;
    *out = v;
    return 1;
}

int query__func_hist(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_VECTOR;
    if (id != QUERY_FN_HISTOGRAM_QUANTILE)
        return 0;
    query_value *in = &args[1];
    if (in->kind != QUERY_V_VECTOR || args[0].kind != QUERY_V_SCALAR)
        return query__errf(c, TSDB_EEXEC, "histogram_quantile: bad arguments");
    static const tsdb_str le = {"le", 2};
    size_t ns = in->n_vs;
    double *upper = xmalloc((ns + 1) * sizeof *upper);
    size_t *gid = xmalloc((ns + 1) * sizeof *gid);
    tsdb_labels *gl = xmalloc((ns + 1) * sizeof *gl);
    query_map gm;
    query__map_init(&gm, ns);
    size_t ng = 0;
    for (size_t s = 0; s < ns; s++) {
        gid[s] = (size_t)-1;
        if (!parse_le(tsdb_labels_get(in->vs[s].labels, le), &upper[s]))
            continue;
        tsdb_labels l = query__labels_del(c, in->vs[s].labels, &le, 1, 1);
        uint64_t h = query__labels_hash(c, l);
        size_t g;
        if (!query__map_get(&gm, h, &g)) {
            g = ng++;
            gl[g] = l;
            query__map_put(&gm, h, g);
        }
        gid[s] = g;
    }
    query__map_fini(&gm);
    size_t *cnt = xcalloc(ng + 1, sizeof *cnt);
    size_t *start = xcalloc(ng + 1, sizeof *start);
    for (size_t s = 0; s < ns; s++)
        if (gid[s] != (size_t)-1)
            start[gid[s] + 1]++;
    for (size_t g = 0; g < ng; g++)
        start[g + 1] += start[g];
    query_bucket *bk = xmalloc((ns + 1) * sizeof *bk);
    size_t *outidx = xmalloc((ng + 1) * sizeof *outidx);
    for (size_t g = 0; g < ng; g++)
        outidx[g] = (size_t)-1;
    query_out o;
    query__out_init(&o, c, st, ng);
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        if ((rc = query__check_deadline(c)) < 0)
            break;
        memset(cnt, 0, (ng + 1) * sizeof *cnt);
        for (size_t s = 0; s < ns; s++) {
            if (gid[s] == (size_t)-1 || !query__ok(&in->vs[s], i))
                continue;
            size_t g = gid[s];
            bk[start[g] + cnt[g]++] = (query_bucket){upper[s], query__v(&in->vs[s], i)};
        }
        for (size_t g = 0; g < ng && rc == 0; g++) {
            if (!cnt[g])
                continue;
            double v = query__bucket_quantile(args[0].scalar[i], bk + start[g], cnt[g]);
            if (outidx[g] == (size_t)-1)
                outidx[g] = query__out_series(&o, gl[g]);
            rc = query__out_put(&o, outidx[g], i, v);
        }
    }
    free(upper);
    free(gid);
    free(gl);
    free(cnt);
    free(start);
    free(bk);
    free(outidx);
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}
