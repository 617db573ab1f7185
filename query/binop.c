/* query/binop.c -- binary operators: scalar/scalar, vector/scalar and vector matching.
 *
 * Semantics of Prometheus 2.42:
 *   - Arithmetic (+ - * / % ^, but not atan2) drops __name__; comparisons filter (keeping the
 * vector side's value and name) unless `bool` turns them into 0/1 (and drops __name__).
 *   - Vector/vector: each side's series get a signature from on(...) labels or from all labels
 *     but ignoring(...) ones and __name__. One-to-one and many-to-one (group_left) match every
 *     "many" series with the single "one" series of equal signature present at that step;
 *     group_right swaps the sides. A second "one" series of a signature at a step is the
 *     many-to-many error; a second "many" series in one-to-one matching is the
 *     "must be explicit" error.
 *   - Set operators (and, or, unless) compare signatures per step and keep labels unchanged.
 *
 * Signatures and result label sets depend only on labels, so they are computed once per
 * series (or per matched pair), and the per-step work is array lookups.
 */
#include "query/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static int drops_name(enum query_binop op)
{
    switch (op) {
    case QUERY_OP_ADD:
    case QUERY_OP_SUB:
    case QUERY_OP_MUL:
    case QUERY_OP_DIV:
    case QUERY_OP_MOD:
    case QUERY_OP_POW:
        return 1; /* atan2 keeps __name__ in 2.42 */
    default:
        return 0;
    }
}

static int is_comparison(enum query_binop op)
{
    return op == QUERY_OP_EQL || op == QUERY_OP_NEQ || op == QUERY_OP_GTR || op == QUERY_OP_LSS ||
           op == QUERY_OP_GTE || op == QUERY_OP_LTE;
}

double query__binop_scalar(enum query_binop op, double l, double r, int *keep)
{
    *keep = 1;
    switch (op) {
    case QUERY_OP_ADD:
        return l + r;
    case QUERY_OP_SUB:
        return l - r;
    case QUERY_OP_MUL:
        return l * r;
    case QUERY_OP_DIV:
        return l / r;
    case QUERY_OP_MOD:
        return fmod(l, r);
    case QUERY_OP_POW:
        return pow(l, r);
    case QUERY_OP_ATAN2:
        return atan2(l, r);
    case QUERY_OP_EQL:
        *keep = l == r;
        return l;
    case QUERY_OP_NEQ:
        *keep = l != r;
        return l;
    case QUERY_OP_GTR:
        *keep = l > r;
        return l;
    case QUERY_OP_LSS:
        *keep = l < r;
        return l;
    case QUERY_OP_GTE:
        *keep = l >= r;
        return l;
    case QUERY_OP_LTE:
        *keep = l <= r;
        return l;
    default:
        *keep = 0;
        return NAN;
    }
}

static int scalar_scalar(query_eval_ctx *c, const query_binary *b, const query_steps *st,
                         query_value *l, query_value *r, query_value *out)
{
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_SCALAR;
    out->scalar = query__scalar_new(c, st->n);
    for (size_t i = 0; i < st->n; i++) {
        int keep;
        double v = query__binop_scalar(b->op, l->scalar[i], r->scalar[i], &keep);
        if (is_comparison(b->op))
            v = keep ? 1 : 0;
        out->scalar[i] = v;
    }
    return 0;
}

static int vector_scalar(query_eval_ctx *c, const query_binary *b, const query_steps *st,
                         query_value *vec, const double *sc, int swap, query_value *out)
{
    query_out o;
    query__out_init(&o, c, st, vec->n_vs);
    int rc = 0;
    int drop = drops_name(b->op) || b->return_bool;
    for (size_t s = 0; s < vec->n_vs && rc == 0; s++) {
        const query_vseries *in = &vec->vs[s];
        tsdb_labels lb = drop ? query__labels_drop_name(c, in->labels) : in->labels;
        size_t idx = (size_t)-1;
        for (size_t i = in->off; i < in->off + in->len; i++) {
            if (!query__ok(in, i))
                continue;
            double lv = query__v(in, i), rv = sc[i];
            if (swap) {
                double t = lv;
                lv = rv;
                rv = t;
            }
            int keep;
            double v = query__binop_scalar(b->op, lv, rv, &keep);
            if (is_comparison(b->op) && swap)
                v = rv;
            if (b->return_bool) {
                v = keep ? 1 : 0;
                keep = 1;
            }
            if (!keep)
                continue;
            if (idx == (size_t)-1)
                idx = query__out_series(&o, lb);
            if ((rc = query__out_put(&o, idx, i, v)) < 0)
                break;
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

/* Dense group ids for signatures. */
typedef struct sig_groups {
    query_map m;
    size_t n;
} sig_groups;

static size_t group_id(sig_groups *g, uint64_t sig, int create)
{
    size_t id;
    if (query__map_get(&g->m, sig, &id))
        return id;
    if (!create)
        return (size_t)-1;
    id = g->n++;
    query__map_put(&g->m, sig, id);
    return id;
}

static int set_op(query_eval_ctx *c, const query_binary *b, const query_steps *st, query_value *l,
                  query_value *r, query_value *out)
{
    const query_matching *m = &b->m;
    const tsdb_str *names = m->has_matching ? m->labels : NULL;
    size_t nn = m->has_matching ? m->n_labels : 0;
    int on = m->has_matching ? m->on : 0;
    sig_groups g;
    query__map_init(&g.m, l->n_vs + r->n_vs);
    g.n = 0;
    size_t *lg = xmalloc((l->n_vs + 1) * sizeof *lg);
    size_t *rg = xmalloc((r->n_vs + 1) * sizeof *rg);
    for (size_t s = 0; s < l->n_vs; s++)
        lg[s] = group_id(&g, query__sig(c, l->vs[s].labels, names, nn, on), 1);
    for (size_t s = 0; s < r->n_vs; s++)
        rg[s] = group_id(&g, query__sig(c, r->vs[s].labels, names, nn, on), 1);
    query__map_fini(&g.m);
    size_t *stamp = xcalloc(g.n + 1, sizeof *stamp);
    query_out o;
    query__out_init(&o, c, st, l->n_vs + r->n_vs);
    size_t *lidx = xmalloc((l->n_vs + 1) * sizeof *lidx);
    size_t *ridx = xmalloc((r->n_vs + 1) * sizeof *ridx);
    for (size_t s = 0; s < l->n_vs; s++)
        lidx[s] = (size_t)-1;
    for (size_t s = 0; s < r->n_vs; s++)
        ridx[s] = (size_t)-1;
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        size_t mark = i + 1;
        /* "and"/"unless" look at the right side's signatures, "or" at the left's. */
        if (b->op == QUERY_OP_OR) {
            for (size_t s = 0; s < l->n_vs; s++)
                if (query__ok(&l->vs[s], i))
                    stamp[lg[s]] = mark;
            for (size_t s = 0; s < l->n_vs && rc == 0; s++) {
                if (!query__ok(&l->vs[s], i))
                    continue;
                if (lidx[s] == (size_t)-1)
                    lidx[s] = query__out_series(&o, l->vs[s].labels);
                rc = query__out_put(&o, lidx[s], i, query__v(&l->vs[s], i));
            }
            for (size_t s = 0; s < r->n_vs && rc == 0; s++) {
                if (!query__ok(&r->vs[s], i) || stamp[rg[s]] == mark)
                    continue;
                if (ridx[s] == (size_t)-1)
                    ridx[s] = query__out_series(&o, r->vs[s].labels);
                rc = query__out_put(&o, ridx[s], i, query__v(&r->vs[s], i));
            }
        } else {
            for (size_t s = 0; s < r->n_vs; s++)
                if (query__ok(&r->vs[s], i))
                    stamp[rg[s]] = mark;
            int want = b->op == QUERY_OP_AND;
            for (size_t s = 0; s < l->n_vs && rc == 0; s++) {
                if (!query__ok(&l->vs[s], i) || (stamp[lg[s]] == mark) != want)
                    continue;
                if (lidx[s] == (size_t)-1)
                    lidx[s] = query__out_series(&o, l->vs[s].labels);
                rc = query__out_put(&o, lidx[s], i, query__v(&l->vs[s], i));
            }
        }
        if (rc == 0)
            rc = query__check_deadline(c);
    }
    free(lg);
    free(rg);
    free(stamp);
    free(lidx);
    free(ridx);
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}

/* Prometheus' resultMetric: the label set of a matched pair. */
static tsdb_labels result_labels(query_eval_ctx *c, const query_binary *b, tsdb_labels many,
                                 tsdb_labels one)
{
    const query_matching *m = &b->m;
    tsdb_labels l = many;
    if (drops_name(b->op))
        l = query__labels_drop_name(c, l);
    if (m->card == QUERY_CARD_ONE_TO_ONE) {
        if (m->on)
            l = query__labels_keep(c, l, m->labels, m->n_labels);
        else
            l = query__labels_del(c, l, m->labels, m->n_labels, 0);
    }
    for (size_t k = 0; k < m->n_include; k++)
        l = query__labels_set(c, l, m->include[k], tsdb_labels_get(one, m->include[k]));
    if (b->return_bool)
        l = query__labels_drop_name(c, l);
    return l;
}

static int vector_vector(query_eval_ctx *c, const query_binary *b, const query_steps *st,
                         query_value *l, query_value *r, query_value *out)
{
    const query_matching *m = &b->m;
    int swapped = m->card == QUERY_CARD_ONE_TO_MANY;
    query_value *mv = swapped ? r : l, *ov = swapped ? l : r;
    sig_groups g;
    query__map_init(&g.m, ov->n_vs);
    g.n = 0;
    size_t *og = xmalloc((ov->n_vs + 1) * sizeof *og);
    size_t *mg = xmalloc((mv->n_vs + 1) * sizeof *mg);
    for (size_t s = 0; s < ov->n_vs; s++)
        og[s] = group_id(&g, query__sig(c, ov->vs[s].labels, m->labels, m->n_labels, m->on), 1);
    for (size_t s = 0; s < mv->n_vs; s++)
        mg[s] = group_id(&g, query__sig(c, mv->vs[s].labels, m->labels, m->n_labels, m->on), 0);
    query__map_fini(&g.m);
    size_t *ostamp = xcalloc(g.n + 1, sizeof *ostamp);
    size_t *oidx = xcalloc(g.n + 1, sizeof *oidx);
    size_t *mstamp = xcalloc(g.n + 1, sizeof *mstamp);
    query_map pairs;
    query__map_init(&pairs, mv->n_vs);
    query_out o;
    query__out_init(&o, c, st, mv->n_vs);
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        size_t mark = i + 1;
        /* As in Prometheus, a step where one side has no sample matches nothing and checks
         * nothing: duplicates on the other side are no error there. */
        int m_any = 0;
        for (size_t s = 0; s < mv->n_vs && !m_any; s++)
            m_any = query__ok(&mv->vs[s], i);
        if (!m_any)
            continue;
        for (size_t s = 0; s < ov->n_vs && rc == 0; s++) {
            if (!query__ok(&ov->vs[s], i))
                continue;
            size_t gid = og[s];
            if (ostamp[gid] == mark) {
                tsdb_labels ml =
                    m->on ? query__labels_keep(c, ov->vs[s].labels, m->labels, m->n_labels)
                          : query__labels_del(c, ov->vs[s].labels, m->labels, m->n_labels, 1);
                rc = query__errf(c, TSDB_EEXEC,
                                 "found duplicate series for the match group %s on the %s "
                                 "hand-side of the operation: [%s, %s];many-to-many matching not "
                                 "allowed: matching labels must be unique on one side",
                                 query__labels_str(c, ml), swapped ? "left" : "right",
                                 query__labels_str(c, ov->vs[s].labels),
                                 query__labels_str(c, ov->vs[oidx[gid]].labels));
                break;
            }
            ostamp[gid] = mark;
            oidx[gid] = s;
        }
        for (size_t s = 0; s < mv->n_vs && rc == 0; s++) {
            if (!query__ok(&mv->vs[s], i))
                continue;
            size_t gid = mg[s];
            if (gid == (size_t)-1 || ostamp[gid] != mark)
                continue;
            size_t os = oidx[gid];
            double vl = query__v(&mv->vs[s], i), vr = query__v(&ov->vs[os], i);
            if (swapped) {
                double t = vl;
                vl = vr;
                vr = t;
            }
            int keep;
            double v = query__binop_scalar(b->op, vl, vr, &keep);
            if (b->return_bool) {
                v = keep ? 1 : 0;
                keep = 1;
            }
            if (!keep)
                continue;
            if (m->card == QUERY_CARD_ONE_TO_ONE) {
                if (mstamp[gid] == mark) {
                    rc = query__errf(c, TSDB_EEXEC,
                                     "multiple matches for labels: many-to-one matching must be "
                                     "explicit (group_left/group_right)");
                    break;
                }
                mstamp[gid] = mark;
            }
            uint64_t key = (uint64_t)s * (uint64_t)(ov->n_vs + 1) + (uint64_t)os;
            size_t idx;
            if (!query__map_get(&pairs, key, &idx)) {
                idx =
                    query__out_series(&o, result_labels(c, b, mv->vs[s].labels, ov->vs[os].labels));
                query__map_put(&pairs, key, idx);
            }
            if (query__ok(&o.s[idx], i)) {
                rc = query__errf(c, TSDB_EEXEC,
                                 m->card == QUERY_CARD_ONE_TO_ONE
                                     ? "vector cannot contain metrics with the same labelset"
                                     : "multiple matches for labels: grouping labels must "
                                       "ensure unique matches");
                break;
            }
            rc = query__out_put(&o, idx, i, v);
        }
        if (rc == 0)
            rc = query__check_deadline(c);
    }
    free(og);
    free(mg);
    free(ostamp);
    free(oidx);
    free(mstamp);
    query__map_fini(&pairs);
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}

int query__binop(query_eval_ctx *c, const query_expr *e, const query_steps *st, query_value *l,
                 query_value *r, query_value *out)
{
    const query_binary *b = &e->u.bin;
    if (l->kind == QUERY_V_SCALAR && r->kind == QUERY_V_SCALAR)
        return scalar_scalar(c, b, st, l, r, out);
    if (l->kind == QUERY_V_VECTOR && r->kind == QUERY_V_SCALAR)
        return vector_scalar(c, b, st, l, r->scalar, 0, out);
    if (l->kind == QUERY_V_SCALAR && r->kind == QUERY_V_VECTOR)
        return vector_scalar(c, b, st, r, l->scalar, 1, out);
    if (l->kind != QUERY_V_VECTOR || r->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "binary operator on unsupported operand types");
    if (b->op == QUERY_OP_AND || b->op == QUERY_OP_OR || b->op == QUERY_OP_UNLESS)
        return set_op(c, b, st, l, r, out);
    if (b->m.card == QUERY_CARD_MANY_TO_MANY)
        return query__errf(c, TSDB_EEXEC, "many-to-many only allowed for set operators");
    return vector_vector(c, b, st, l, r, out);
}
