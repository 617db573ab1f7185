/* query/check.c -- static type checking of a parsed PromQL tree.
 *
 * Follows Prometheus 2.42's checkAST: children are checked before their parent, and the first
 * error found in that order is the one reported, with the same message and position. Besides
 * reporting errors, it settles the vector matching of binary expressions: many-to-many for set
 * operators, and none at all unless both operands are instant vectors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/parse.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

typedef struct checker {
    const char *src;
    int len;
    tsdb_err *err;
    int failed;
} checker;

static int errf(checker *c, int pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int errf(checker *c, int pos, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = 1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    query__parse_errf(c->err, c->src, c->len, pos, "%s", msg);
    return -1;
}

/* Prometheus' DocumentedType names. */
static const char *doc_type(enum query_type t)
{
    switch (t) {
    case QUERY_SCALAR:
        return "scalar";
    case QUERY_VECTOR:
        return "instant vector";
    case QUERY_MATRIX:
        return "range vector";
    case QUERY_STRING:
        return "string";
    }
    return "none";
}

/* Prometheus' ValueType names. */
static const char *value_type(enum query_type t)
{
    switch (t) {
    case QUERY_SCALAR:
        return "scalar";
    case QUERY_VECTOR:
        return "vector";
    case QUERY_MATRIX:
        return "matrix";
    case QUERY_STRING:
        return "string";
    }
    return "none";
}

/* Go %q of s into out (cut to fit). */
static const char *quoted(tsdb_str s, char *out, size_t cap)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    query__quote(&b, s);
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(out, b.p, n);
    out[n] = 0;
    tsdb_buf_fini(&b);
    return out;
}

static int check(checker *c, query_expr *e);

static int expect_type(checker *c, query_expr *e, enum query_type want, const char *context)
{
    if (check(c, e) < 0)
        return -1;
    if (e->type != want)
        return errf(c, e->pos, "expected type %s in %s, got %s", doc_type(want), context,
                    doc_type(e->type));
    return 0;
}

static int check_binary(checker *c, query_expr *e)
{
    query_binary *b = &e->u.bin;
    query_expr *lhs = (query_expr *)b->lhs, *rhs = (query_expr *)b->rhs;
    if (check(c, lhs) < 0 || check(c, rhs) < 0)
        return -1;
    enum query_type lt = lhs->type, rt = rhs->type;
    int is_cmp = query__binop_is_comparison(b->op), is_set = query__binop_is_set(b->op);
    query_matching *m = &b->m;

    if (b->return_bool && !is_cmp)
        return errf(c, b->op_pos, "bool modifier can only be used on comparison operators");
    if (is_cmp && !b->return_bool && lt == QUERY_SCALAR && rt == QUERY_SCALAR)
        return errf(c, b->op_pos, "comparisons between scalars must use BOOL modifier");
    if (is_set && m->card == QUERY_CARD_ONE_TO_ONE)
        m->card = QUERY_CARD_MANY_TO_MANY;
    if (m->on) {
        for (size_t i = 0; i < m->n_labels; i++) {
            for (size_t j = 0; j < m->n_include; j++) {
                if (tsdb_str_eq(m->labels[i], m->include[j]))
                    return errf(c, b->op_pos,
                                "label \"%.*s\" must not occur in ON and GROUP clause at once",
                                (int)m->labels[i].len, m->labels[i].p);
            }
        }
    }
    if (lt != QUERY_SCALAR && lt != QUERY_VECTOR)
        return errf(c, lhs->pos,
                    "binary expression must contain only scalar and instant vector types");
    if (rt != QUERY_SCALAR && rt != QUERY_VECTOR)
        return errf(c, rhs->pos,
                    "binary expression must contain only scalar and instant vector types");
    if (lt != QUERY_VECTOR || rt != QUERY_VECTOR) {
        if (m->n_labels > 0)
            return errf(c, e->pos, "vector matching only allowed between instant vectors");
        memset(m, 0, sizeof *m);
    } else {
        if (is_set) {
            if (m->card == QUERY_CARD_ONE_TO_MANY || m->card == QUERY_CARD_MANY_TO_ONE)
                return errf(c, e->pos, "no grouping allowed for \"%s\" operation",
                            query__binop_str(b->op));
            if (m->card != QUERY_CARD_MANY_TO_MANY)
                return errf(c, e->pos, "set operations must always be many-to-many");
        }
        m->has_matching = 1;
    }
    if ((lt == QUERY_SCALAR || rt == QUERY_SCALAR) && is_set)
        return errf(c, e->pos, "set operator \"%s\" not allowed in binary scalar expression",
                    query__binop_str(b->op));
    e->type = lt == QUERY_SCALAR && rt == QUERY_SCALAR ? QUERY_SCALAR : QUERY_VECTOR;
    return 0;
}

static int check_call(checker *c, query_expr *e)
{
    const query_call *call = &e->u.call;
    const query_func *fn = call->fn;
    int nargs = fn->n_args, got = (int)call->n_args;
    if (fn->variadic == 0) {
        if (nargs != got)
            return errf(c, e->pos, "expected %d argument(s) in call to \"%s\", got %d", nargs,
                        fn->name, got);
    } else {
        int na = nargs - 1;
        if (na > got)
            return errf(c, e->pos, "expected at least %d argument(s) in call to \"%s\", got %d", na,
                        fn->name, got);
        if (fn->variadic > 0 && na + fn->variadic < got)
            return errf(c, e->pos, "expected at most %d argument(s) in call to \"%s\", got %d",
                        na + fn->variadic, fn->name, got);
    }
    char ctx[64];
    snprintf(ctx, sizeof ctx, "call to function \"%s\"", fn->name);
    for (int i = 0; i < got; i++) {
        int ti = i;
        if (i >= nargs) {
            if (fn->variadic == 0)
                break;
            ti = nargs - 1;
        }
        if (expect_type(c, (query_expr *)call->args[i], fn->arg_types[ti], ctx) < 0)
            return -1;
    }
    e->type = fn->ret;
    return 0;
}

static int check_selector(checker *c, query_expr *e)
{
    const query_vector_sel *vs = &e->u.vs;
    char q1[120], q2[120];
    if (vs->name.len) {
        for (size_t i = 0; i < vs->n_src; i++) {
            if (tsdb_str_eq(vs->src[i].name, TSDB_STR("__name__")))
                return errf(c, e->pos, "metric name must not be set twice: %s or %s",
                            quoted(vs->name, q1, sizeof q1),
                            quoted(vs->src[i].value, q2, sizeof q2));
        }
        return 0;
    }
    for (size_t i = 0; i < vs->n_matchers; i++) {
        if (!tsdb_matcher_matches(vs->matchers[i], (tsdb_str){"", 0}))
            return 0;
    }
    return errf(c, e->pos, "vector selector must contain at least one non-empty matcher");
}

static int check(checker *c, query_expr *e)
{
    switch (e->kind) {
    case QUERY_NODE_NUMBER:
        e->type = QUERY_SCALAR;
        return 0;
    case QUERY_NODE_STRING:
        e->type = QUERY_STRING;
        return 0;
    case QUERY_NODE_VECTOR_SEL:
        e->type = QUERY_VECTOR;
        return check_selector(c, e);
    case QUERY_NODE_MATRIX_SEL:
        e->type = QUERY_MATRIX;
        return check(c, (query_expr *)e->u.ms.vs);
    case QUERY_NODE_SUBQUERY: {
        query_expr *in = (query_expr *)e->u.sq.expr;
        e->type = QUERY_MATRIX;
        if (check(c, in) < 0)
            return -1;
        if (in->type != QUERY_VECTOR)
            return errf(c, e->pos, "subquery is only allowed on instant vector, got %s instead",
                        value_type(in->type));
        return 0;
    }
    case QUERY_NODE_UNARY: {
        query_expr *in = (query_expr *)e->u.un.expr;
        if (check(c, in) < 0)
            return -1;
        e->type = in->type;
        if (in->type != QUERY_SCALAR && in->type != QUERY_VECTOR)
            return errf(c, e->pos,
                        "unary expression only allowed on expressions of type scalar or instant "
                        "vector, got \"%s\"",
                        doc_type(in->type));
        return 0;
    }
    case QUERY_NODE_BINARY:
        return check_binary(c, e);
    case QUERY_NODE_AGG: {
        query_agg *agg = &e->u.agg;
        e->type = QUERY_VECTOR;
        if (expect_type(c, (query_expr *)agg->expr, QUERY_VECTOR, "aggregation expression") < 0)
            return -1;
        if (agg->op == QUERY_AGG_TOPK || agg->op == QUERY_AGG_BOTTOMK ||
            agg->op == QUERY_AGG_QUANTILE)
            return expect_type(c, (query_expr *)agg->param, QUERY_SCALAR, "aggregation parameter");
        if (agg->op == QUERY_AGG_COUNT_VALUES)
            return expect_type(c, (query_expr *)agg->param, QUERY_STRING, "aggregation parameter");
        return 0;
    }
    case QUERY_NODE_CALL:
        return check_call(c, e);
    case QUERY_NODE_PAREN: {
        query_expr *in = (query_expr *)e->u.paren;
        if (check(c, in) < 0)
            return -1;
        e->type = in->type;
        return 0;
    }
    }
    return errf(c, e->pos, "unknown node type");
}

int query__check(query_expr *e, const char *src, int len, tsdb_err *err)
{
    checker c = {src, len, err, 0};
    return check(&c, e) < 0 ? TSDB_EPARSE : 0;
}
