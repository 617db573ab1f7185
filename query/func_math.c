/* query/func_math.c -- element-wise math functions and the scalar/vector conversions:
 * abs ceil floor exp ln log2 log10 sqrt round sgn clamp clamp_min clamp_max, the
 * trigonometric functions, deg rad pi, scalar vector time timestamp sort sort_desc absent.
 *
 * Element-wise functions drop __name__ and keep every other label; two inputs that become the
 * same label set at one step are an error. clamp follows Go's math.Min/Max, which (unlike C's
 * fmin/fmax) propagate NaN.
 */
#include "query/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static double go_max(double a, double b)
{
    if (isinf(a) && a > 0)
        return a;
    if (isinf(b) && b > 0)
        return b;
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? b : a;
    return a > b ? a : b;
}

static double go_min(double a, double b)
{
    if (isinf(a) && a < 0)
        return a;
    if (isinf(b) && b < 0)
        return b;
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? a : b;
    return a < b ? a : b;
}

static double apply(enum query_func_id id, double v, const query_value *args, size_t nargs,
                    size_t i)
{
    switch (id) {
    case QUERY_FN_ABS:
        return fabs(v);
    case QUERY_FN_CEIL:
        return ceil(v);
    case QUERY_FN_FLOOR:
        return floor(v);
    case QUERY_FN_EXP:
        return exp(v);
    case QUERY_FN_LN:
        return log(v);
    case QUERY_FN_LOG2:
        return log2(v);
    case QUERY_FN_LOG10:
        return log10(v);
    case QUERY_FN_SQRT:
        return sqrt(v);
    case QUERY_FN_SGN:
        return v > 0 ? 1 : v < 0 ? -1 : v;
    case QUERY_FN_ROUND: {
        double to = nargs > 1 ? args[1].scalar[i] : 1;
        double inv = 1.0 / to;
        return floor(v * inv + 0.5) / inv;
    }
    case QUERY_FN_CLAMP:
        return go_max(args[1].scalar[i], go_min(args[2].scalar[i], v));
    case QUERY_FN_CLAMP_MAX:
        return go_min(args[1].scalar[i], v);
    case QUERY_FN_CLAMP_MIN:
        return go_max(args[1].scalar[i], v);
    case QUERY_FN_SIN:
        return sin(v);
    case QUERY_FN_COS:
        return cos(v);
    case QUERY_FN_TAN:
        return tan(v);
    case QUERY_FN_ASIN:
        return asin(v);
    case QUERY_FN_ACOS:
        return acos(v);
    case QUERY_FN_ATAN:
        return atan(v);
    case QUERY_FN_SINH:
        return sinh(v);
    case QUERY_FN_COSH:
        return cosh(v);
    case QUERY_FN_TANH:
        return tanh(v);
    case QUERY_FN_ASINH:
        return asinh(v);
    case QUERY_FN_ACOSH:
        return acosh(v);
    case QUERY_FN_ATANH:
        return atanh(v);
    case QUERY_FN_DEG:
        return v * 180 / QUERY_PI;
    case QUERY_FN_RAD:
        return v * QUERY_PI / 180;
    default:
        return NAN;
    }
}

static int elementwise(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                       query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    query_value *in = &args[0];
    if (in->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "expected an instant vector argument");
    query_out o;
    query__out_init(&o, c, st, in->n_vs);
    int rc = 0;
    for (size_t s = 0; s < in->n_vs && rc == 0; s++) {
        const query_vseries *sv = &in->vs[s];
        size_t idx = (size_t)-1;
        for (size_t i = sv->off; i < sv->off + sv->len && rc == 0; i++) {
            if (!query__ok(sv, i))
                continue;
            if (id == QUERY_FN_CLAMP && args[2].scalar[i] < args[1].scalar[i])
                continue;
            double v;
            if (id == QUERY_FN_TIMESTAMP)
                v = (double)(sv->ts ? sv->ts[i - sv->off] : query__step_t(st, i)) / 1000;
            else
                v = apply(id, query__v(sv, i), args, e->u.call.n_args, i);
            if (idx == (size_t)-1)
                idx = query__out_series(&o, query__labels_drop_name(c, sv->labels));
            rc = query__out_put(&o, idx, i, v);
        }
        if (rc == 0)
            rc = query__check_deadline(c);
    }
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}

typedef struct sort_ent {
    double v;
    size_t s;
} sort_ent;

static int sort_asc(const void *a, const void *b)
{
    const sort_ent *x = a, *y = b;
    int xn = isnan(x->v), yn = isnan(y->v);
    if (xn != yn)
        return xn - yn; /* NaN last */
    if (!xn && x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return (x->s > y->s) - (x->s < y->s);
}

static int sort_desc(const void *a, const void *b)
{
    const sort_ent *x = a, *y = b;
    int xn = isnan(x->v), yn = isnan(y->v);
    if (xn != yn)
        return xn - yn;
    if (!xn && x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->s > y->s) - (x->s < y->s);
}

static int do_sort(query_eval_ctx *c, const query_steps *st, query_value *in, int desc,
                   query_value *out)
{
    *out = *in;
    in->held = 0; /* the output holds the same samples */
    out->vs = tsdb_arena_alloc(c->a, (in->n_vs ? in->n_vs : 1) * sizeof *out->vs);
    if (in->n_vs)
        memcpy(out->vs, in->vs, in->n_vs * sizeof *in->vs);
    for (size_t s = 0; s < in->n_vs; s++)
        out->vs[s].ts = NULL; /* timestamp(sort(x)) is the evaluation time, as in Prometheus */
    if (st->n != 1 || in->n_vs < 2)
        return 0; /* a range query's result is sorted by labels anyway */
    sort_ent *ents = xmalloc(in->n_vs * sizeof *ents);
    for (size_t s = 0; s < in->n_vs; s++)
        ents[s] = (sort_ent){query__v(&in->vs[s], 0), s};
    qsort(ents, in->n_vs, sizeof *ents, desc ? sort_desc : sort_asc);
    for (size_t s = 0; s < in->n_vs; s++) {
        out->vs[s] = in->vs[ents[s].s];
        out->vs[s].ts = NULL;
    }
    free(ents);
    return 0;
}

int query__func_math(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    memset(out, 0, sizeof *out);
    switch (id) {
    case QUERY_FN_PI:
    case QUERY_FN_TIME:
        out->kind = QUERY_V_SCALAR;
        out->scalar = query__scalar_new(c, st->n);
        for (size_t i = 0; i < st->n; i++)
            out->scalar[i] = id == QUERY_FN_PI ? QUERY_PI : (double)query__step_t(st, i) / 1000;
        return 0;
    case QUERY_FN_SCALAR:
        out->kind = QUERY_V_SCALAR;
        out->scalar = query__scalar_new(c, st->n);
        for (size_t i = 0; i < st->n; i++) {
            size_t cnt = 0;
            double v = NAN;
            for (size_t s = 0; s < args[0].n_vs && cnt < 2; s++)
                if (query__ok(&args[0].vs[s], i)) {
                    cnt++;
                    v = query__v(&args[0].vs[s], i);
                }
            out->scalar[i] = cnt == 1 ? v : NAN;
        }
        return 0;
    case QUERY_FN_VECTOR: {
        query_vseries *s = query__vseries_new(c, st->n, 1);
        for (size_t i = 0; i < st->n; i++) {
            s->v[i] = args[0].scalar[i];
            s->ok[i] = 1;
        }
        out->kind = QUERY_V_VECTOR;
        out->vs = s;
        out->n_vs = 1;
        out->held = st->n;
        return query__account(c, st->n);
    }
    case QUERY_FN_SORT:
    case QUERY_FN_SORT_DESC:
        return do_sort(c, st, &args[0], id == QUERY_FN_SORT_DESC, out);
    case QUERY_FN_ABSENT: {
        query_vseries *s = query__vseries_new(c, st->n, 1);
        s->labels = query__absent_labels(c, e->u.call.args[0]);
        size_t cnt = 0;
        for (size_t i = 0; i < st->n; i++) {
            int any = 0;
            for (size_t k = 0; k < args[0].n_vs && !any; k++)
                any = query__ok(&args[0].vs[k], i);
            if (!any) {
                s->ok[i] = 1;
                s->v[i] = 1;
                cnt++;
            }
        }
        out->kind = QUERY_V_VECTOR;
        out->vs = s;
        out->n_vs = cnt ? 1 : 0;
        out->held = cnt;
        return query__account(c, cnt);
    }
    case QUERY_FN_HISTOGRAM_COUNT:
    case QUERY_FN_HISTOGRAM_SUM:
    case QUERY_FN_HISTOGRAM_FRACTION:
        out->kind = QUERY_V_VECTOR;
        return 0;
    default:
        return elementwise(c, e, st, args, out);
    }
}
