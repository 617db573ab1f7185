/* query/func_label.c -- label_replace and label_join.
 *
 * Both rewrite one label of every input series and keep the rest (including __name__). The new
 * label set depends only on the old one, so it is computed once per series. label_replace's
 * regex must match the whole source value; its replacement expands $1 / ${name} groups (Go's
 * regexp.Expand, implemented by tsdb_regex_replace). An empty result removes the label. Two
 * series that end up with the same labels at one step are an error.
 */
#include "query/eval.h"

#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static int emit(query_eval_ctx *c, const query_steps *st, const query_value *in,
                const tsdb_labels *nl, query_value *out)
{
    query_out o;
    query__out_init(&o, c, st, in->n_vs);
    int rc = 0;
    for (size_t s = 0; s < in->n_vs && rc == 0; s++) {
        size_t idx = (size_t)-1;
        for (size_t i = in->vs[s].off; i < in->vs[s].off + in->vs[s].len && rc == 0; i++) {
            if (!query__ok(&in->vs[s], i))
                continue;
            if (idx == (size_t)-1)
                idx = query__out_series(&o, nl[s]);
            rc = query__out_put(&o, idx, i, query__v(&in->vs[s], i));
        }
    }
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}

int query__func_label(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                      query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    size_t na = e->u.call.n_args;
    query_value *in = &args[0];
    if (in->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "expected an instant vector argument");
    for (size_t k = 1; k < na; k++)
        if (args[k].kind != QUERY_V_STRING)
            return query__errf(c, TSDB_EEXEC, "expected a string argument");
    tsdb_str dst = args[1].str;
    tsdb_labels *nl = tsdb_arena_alloc(c->a, (in->n_vs ? in->n_vs : 1) * sizeof *nl);
    if (id == QUERY_FN_LABEL_REPLACE) {
        tsdb_str repl = args[2].str, src = args[3].str, pat = args[4].str;
        tsdb_regex *re;
        tsdb_err e2;
        if (tsdb_regex_new(pat, c->a, &re, &e2) < 0)
            return query__errf(c, TSDB_EEXEC, "invalid regular expression in label_replace(): %.*s",
                               (int)pat.len, pat.p);
        if (!tsdb_label_name_valid(dst))
            return query__errf(c, TSDB_EEXEC,
                               "invalid destination label name in label_replace(): %.*s",
                               (int)dst.len, dst.p);
        for (size_t s = 0; s < in->n_vs; s++) {
            tsdb_str res;
            int rc =
                tsdb_regex_replace(re, tsdb_labels_get(in->vs[s].labels, src), repl, c->a, &res);
            if (rc < 0)
                return query__errf(c, TSDB_EEXEC, "label_replace(): regex match limit exceeded");
            nl[s] = rc > 0 ? query__labels_set(c, in->vs[s].labels, dst, res) : in->vs[s].labels;
        }
    } else {
        tsdb_str sep = args[2].str;
        if (!tsdb_label_name_valid(dst))
            return query__errf(c, TSDB_EEXEC,
                               "invalid destination label name in label_join(): %.*s", (int)dst.len,
                               dst.p);
        for (size_t k = 3; k < na; k++)
            if (!tsdb_label_name_valid(args[k].str))
                return query__errf(c, TSDB_EEXEC, "invalid source label name in label_join(): %.*s",
                                   (int)args[k].str.len, args[k].str.p);
        tsdb_buf b;
        tsdb_buf_init(&b);
        for (size_t s = 0; s < in->n_vs; s++) {
            b.len = 0;
            for (size_t k = 3; k < na; k++) {
                if (k > 3)
                    tsdb_buf_put(&b, sep.p, sep.len);
                tsdb_str v = tsdb_labels_get(in->vs[s].labels, args[k].str);
                tsdb_buf_put(&b, v.p, v.len);
            }
            tsdb_str joined = tsdb_arena_str(c->a, (tsdb_str){b.p ? (const char *)b.p : "", b.len});
            nl[s] = query__labels_set(c, in->vs[s].labels, dst, joined);
        }
        tsdb_buf_fini(&b);
    }
    return emit(c, st, in, nl, out);
}
