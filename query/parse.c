/* query/parse.c -- PromQL text to AST (recursive descent with precedence climbing).
 *
 * Grammar and precedence follow Prometheus 2.42 (promql/parser/generated_parser.y):
 *
 *   expr      := unary { binop modifiers unary }          by precedence, lowest first:
 *                  or  <  and unless  <  == != > < >= <=  <  + -  <  * / % atan2  <  ^
 *                ^ is right-associative, the rest left-associative.
 *   unary     := ('-' | '+') expr-above-*  |  postfix     (unary binds like *, so -a^b is
 *                                                         -(a^b) and -a*b is (-a)*b; a sign
 *                                                         on a number literal is folded in)
 *   postfix   := primary { '[' dur ']' | '[' dur ':' [dur] ']' | offset ['-'] dur
 *                          | '@' (number | start() | end()) }
 *   primary   := number | string | '(' expr ')' | selector | call | aggregation
 *   modifiers := [bool] [(on | ignoring) labels [(group_left | group_right) [labels]]]
 *   aggregation := aggop [by|without labels] '(' [param ','] expr ')' [by|without labels]
 *
 * Keywords may be metric names where Prometheus allows (sum, by, offset, start, and, ...),
 * and label names inside {...} and grouping clauses. The first error stops the parse; its
 * message and position match what Prometheus 2.42 reports for the same input where the
 * grammars agree. Type errors are found afterwards by check.c.
 */
#include "query/query.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/lex.h"
#include "query/parse.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define MAX_QUERY_LEN (16 << 20) /* bytes; keeps every position in an int */

typedef struct parser {
    tsdb_arena *a;
    query_lexer lx;
    query_token tok;  /* current token */
    query_token peek; /* next token when has_peek */
    int has_peek;
    const char *src;
    int len;
    tsdb_err *err;
    int failed;
    int depth;
    int last_closing; /* end of the last ) ] } duration or number token */
    int agg_depth;    /* aggregation argument lists we are inside */
} parser;

/* ---- Errors ---------------------------------------------------------------------------------- */

int query__parse_errf(tsdb_err *err, const char *src, int len, int pos, const char *fmt, ...)
{
    if (!err)
        return TSDB_EPARSE;
    int line = 1, last_nl = -1;
    if (pos < 0)
        pos = 0;
    if (pos > len)
        pos = len;
    for (int i = 0; i < pos; i++) {
        if (src[i] == '\n') {
            line++;
            last_nl = i;
        }
    }
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = TSDB_EPARSE;
    err->pos = pos;
    int n = snprintf(err->msg, sizeof err->msg, "%d:%d: parse error: ", line, pos - last_nl);
    size_t off = n > 0 && (size_t)n < sizeof err->msg ? (size_t)n : 0;
    size_t room = sizeof err->msg - off - 1, ml = strlen(msg);
    if (ml > room)
        ml = room;
    memcpy(err->msg + off, msg, ml);
    err->msg[off + ml] = 0;
    return TSDB_EPARSE;
}

/* Only the first error is reported, as Prometheus reports the first one it records. Its
 * parser reads a token ahead only when it must, so checks it makes when completing a
 * construct (an unknown function name after the ')') come before a lexer error in the next
 * token; the functions below keep that order. */
static void *fail(parser *p, int pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void *fail(parser *p, int pos, const char *fmt, ...)
{
    if (p->failed)
        return NULL;
    p->failed = 1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    query__parse_errf(p->err, p->src, p->len, pos, "%s", msg);
    return NULL;
}

/* "unexpected <token>[ in <context>][, expected <what>]" at the current token. Inside an
 * aggregation's arguments, an error without its own context is "in aggregation" (the
 * innermost error rule of Prometheus' grammar). */
static void *unexpected(parser *p, const char *context, const char *expected)
{
    char d[160];
    if (!context && p->agg_depth > 0)
        context = "aggregation";
    query__tok_desc(&p->lx, p->tok, d, sizeof d);
    return fail(p, p->tok.pos, "unexpected %s%s%s%s%s", d, context ? " in " : "",
                context ? context : "", expected ? ", expected " : "", expected ? expected : "");
}

/* ---- Tokens -------------------------------------------------------------------------------- */

static query_token lex(parser *p)
{
    if (p->has_peek) {
        p->has_peek = 0;
        return p->peek;
    }
    return query__lex_next(&p->lx);
}

/* Moves to the next token; a lexer error is reported as soon as it is read. Returns 0 or -1. */
static int advance(parser *p)
{
    if (p->failed)
        return -1;
    p->tok = lex(p);
    switch (p->tok.type) {
    case QT_ERROR:
        fail(p, p->tok.pos, "%s", p->lx.err);
        return -1;
    case QT_RPAREN:
    case QT_RBRACE:
    case QT_RBRACKET:
    case QT_DURATION:
    case QT_NUMBER:
        p->last_closing = p->tok.pos + p->tok.len;
        break;
    default:
        break;
    }
    return 0;
}

/* The token after the current one (without consuming it). */
static query_token peek(parser *p)
{
    if (!p->has_peek) {
        p->peek = query__lex_next(&p->lx);
        p->has_peek = 1;
    }
    return p->peek;
}

/* ---- Operators ------------------------------------------------------------------------------ */

int query__binop_is_comparison(enum query_binop op)
{
    return op >= QUERY_OP_EQL && op <= QUERY_OP_LTE;
}

int query__binop_is_set(enum query_binop op)
{
    return op == QUERY_OP_AND || op == QUERY_OP_OR || op == QUERY_OP_UNLESS;
}

const char *query__binop_str(enum query_binop op)
{
    static const char *const s[] = {"+", "-", "*",  "/",  "%",   "^",  "==",     "!=",
                                    ">", "<", ">=", "<=", "and", "or", "unless", "atan2"};
    return (unsigned)op < sizeof s / sizeof s[0] ? s[op] : "?";
}

const char *query__agg_str(enum query_agg_op op)
{
    static const char *const s[] = {"sum",   "avg",     "min",      "max",
                                    "count", "group",   "stddev",   "stdvar",
                                    "topk",  "bottomk", "quantile", "count_values"};
    return (unsigned)op < sizeof s / sizeof s[0] ? s[op] : "?";
}

/* Binary operator of a token and its precedence (higher binds tighter), or 0. */
static int binop_of(enum query_tok t, enum query_binop *op)
{
    switch (t) {
    case QT_LOR:
        *op = QUERY_OP_OR;
        return 1;
    case QT_LAND:
        *op = QUERY_OP_AND;
        return 2;
    case QT_LUNLESS:
        *op = QUERY_OP_UNLESS;
        return 2;
    case QT_EQLC:
        *op = QUERY_OP_EQL;
        return 3;
    case QT_NEQ:
        *op = QUERY_OP_NEQ;
        return 3;
    case QT_GTR:
        *op = QUERY_OP_GTR;
        return 3;
    case QT_LSS:
        *op = QUERY_OP_LSS;
        return 3;
    case QT_GTE:
        *op = QUERY_OP_GTE;
        return 3;
    case QT_LTE:
        *op = QUERY_OP_LTE;
        return 3;
    case QT_ADD:
        *op = QUERY_OP_ADD;
        return 4;
    case QT_SUB:
        *op = QUERY_OP_SUB;
        return 4;
    case QT_MUL:
        *op = QUERY_OP_MUL;
        return 5;
    case QT_DIV:
        *op = QUERY_OP_DIV;
        return 5;
    case QT_MOD:
        *op = QUERY_OP_MOD;
        return 5;
    case QT_ATAN2:
        *op = QUERY_OP_ATAN2;
        return 5;
    case QT_POW:
        *op = QUERY_OP_POW;
        return 6;
    default:
        return 0;
    }
}

#define PREC_MUL 5
#define PREC_POW 6

/* ---- Nodes --------------------------------------------------------------------------------- */

static query_expr *node(parser *p, enum query_node_kind kind, int pos)
{
    query_expr *e = tsdb_arena_calloc(p->a, 1, sizeof *e);
    e->kind = kind;
    e->pos = pos;
    e->end = pos;
    e->height = 1;
    return e;
}

/* Sets e's height from a child; fails past QUERY_MAX_DEPTH. */
static int grow(parser *p, query_expr *e, const query_expr *child)
{
    if (child && child->height + 1 > e->height)
        e->height = child->height + 1;
    if (e->height > QUERY_MAX_DEPTH) {
        fail(p, e->pos, "expression nesting too deep (more than %d levels)", QUERY_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static tsdb_str tok_str(parser *p, query_token t)
{
    return tsdb_arena_str(p->a, (tsdb_str){p->src + t.pos, (size_t)t.len});
}

/* ---- Grouping labels ----------------------------------------------------------------------- */

static int tok_is_label_word(enum query_tok t)
{
    switch (t) {
    case QT_IDENT:
    case QT_METRIC_IDENT:
    case QT_LAND:
    case QT_LOR:
    case QT_LUNLESS:
    case QT_ATAN2:
    case QT_START:
    case QT_END:
        return 1;
    case QT_WITHOUT:
        return 0;
    default:
        return query__tok_is_agg(t) || query__tok_is_keyword(t);
    }
}

/* '(' [label {',' label}] [','] ')' at the current token; leaves the token after ')'. */
static int parse_labels(parser *p, const tsdb_str **out, size_t *n_out)
{
    if (p->tok.type != QT_LPAREN) {
        unexpected(p, "grouping opts", "\"(\"");
        return -1;
    }
    size_t n = 0, cap = 4;
    tsdb_str *v = tsdb_arena_alloc(p->a, cap * sizeof *v);
    if (advance(p) < 0)
        return -1;
    for (;;) {
        if (p->tok.type == QT_RPAREN)
            break;
        if (!tok_is_label_word(p->tok.type) || p->tok.type == QT_METRIC_IDENT) {
            unexpected(p, "grouping opts", "label");
            return -1;
        }
        if (n == cap) {
            v = tsdb_arena_realloc(p->a, v, cap * sizeof *v, 2 * cap * sizeof *v);
            cap *= 2;
        }
        v[n++] = tok_str(p, p->tok);
        if (advance(p) < 0)
            return -1;
        if (p->tok.type == QT_COMMA) {
            if (advance(p) < 0)
                return -1;
            continue;
        }
        if (p->tok.type != QT_RPAREN) {
            unexpected(p, "grouping opts", "\",\" or \")\"");
            return -1;
        }
    }
    if (advance(p) < 0)
        return -1;
    *out = v;
    *n_out = n;
    return 0;
}

/* ---- Selectors ------------------------------------------------------------------------------ */

static query_expr *parse_expr(parser *p, int min_prec);

/* [name] ['{' matchers '}'] starting at the current token (a name or '{'). Each matcher is
 * compiled as soon as it is read, so a bad regex is reported where Prometheus reports it. */
static query_expr *parse_vector_selector(parser *p)
{
    query_expr *e = node(p, QUERY_NODE_VECTOR_SEL, p->tok.pos);
    e->type = QUERY_VECTOR;
    query_vector_sel *vs = &e->u.vs;
    size_t n = 0, cap = 4;
    query_matcher_src *src = tsdb_arena_alloc(p->a, cap * sizeof *src);
    /* ms[0] is the metric name matcher if there is a name. */
    const tsdb_matcher **ms = tsdb_arena_alloc(p->a, (cap + 1) * sizeof *ms);
    size_t k = 0;
    tsdb_err merr;
    if (p->tok.type != QT_LBRACE) {
        vs->name = tok_str(p, p->tok);
        e->end = p->tok.pos + p->tok.len;
        tsdb_matcher *m;
        if (tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), vs->name, p->a, &m, &merr) < 0)
            return fail(p, e->pos, "%s", merr.msg);
        ms[k++] = m;
        if (advance(p) < 0)
            return NULL;
    }
    if (p->tok.type == QT_LBRACE) {
        if (advance(p) < 0)
            return NULL;
        for (;;) {
            if (p->tok.type == QT_RBRACE)
                break;
            if (p->tok.type != QT_IDENT)
                return unexpected(p, "label matching", "identifier or \"}\"");
            query_matcher_src m;
            int mpos = p->tok.pos;
            m.name = tok_str(p, p->tok);
            if (advance(p) < 0)
                return NULL;
            switch (p->tok.type) {
            case QT_ASSIGN:
                m.op = TSDB_MATCH_EQ;
                break;
            case QT_NEQ:
                m.op = TSDB_MATCH_NE;
                break;
            case QT_EQL_REGEX:
                m.op = TSDB_MATCH_RE;
                break;
            case QT_NEQ_REGEX:
                m.op = TSDB_MATCH_NRE;
                break;
            default:
                return unexpected(p, "label matching", "label matching operator");
            }
            if (advance(p) < 0)
                return NULL;
            if (p->tok.type != QT_STRING)
                return unexpected(p, "label matching", "string");
            m.value = query__unquote(p->a, p->src + p->tok.pos, (size_t)p->tok.len);
            if (n == cap) {
                src = tsdb_arena_realloc(p->a, src, cap * sizeof *src, 2 * cap * sizeof *src);
                ms = tsdb_arena_realloc(p->a, ms, (cap + 1) * sizeof *ms,
                                        (2 * cap + 1) * sizeof *ms);
                cap *= 2;
            }
            src[n++] = m;
            tsdb_matcher *cm;
            merr.msg[0] = 0;
            if (tsdb_matcher_new(m.op, m.name, m.value, p->a, &cm, &merr) < 0)
                return fail(p, mpos, "%s", merr.msg[0] ? merr.msg : "invalid matcher");
            ms[k++] = cm;
            if (advance(p) < 0)
                return NULL;
            if (p->tok.type == QT_COMMA) {
                if (advance(p) < 0)
                    return NULL;
                continue;
            }
            if (p->tok.type != QT_RBRACE)
                return unexpected(p, "label matching", "\",\" or \"}\"");
        }
        e->end = p->tok.pos + 1;
        if (advance(p) < 0)
            return NULL;
    }
    vs->src = src;
    vs->n_src = n;
    vs->matchers = ms;
    vs->n_matchers = k;
    return e;
}

/* ---- Postfix: ranges, subqueries, offset, @ ---------------------------------------------- */

/* The offset/@ slot of e, or NULL with an error. */
static query_time_mod *time_mod_of(parser *p, query_expr *e, const char *what)
{
    switch (e->kind) {
    case QUERY_NODE_VECTOR_SEL:
        return &e->u.vs.tm;
    case QUERY_NODE_MATRIX_SEL:
        return &((query_expr *)e->u.ms.vs)->u.vs.tm;
    case QUERY_NODE_SUBQUERY:
        return &e->u.sq.tm;
    default:
        fail(p, e->pos,
             "%s modifier must be preceded by an instant vector selector or range vector "
             "selector or a subquery",
             what);
        return NULL;
    }
}

/* A DURATION token's value in ms; > 0 unless allow_zero. */
static int duration_value(parser *p, int64_t *ms)
{
    char msg[120];
    if (query__parse_duration_msg(p->src + p->tok.pos, (size_t)p->tok.len, ms, msg, sizeof msg) <
        0) {
        fail(p, p->tok.pos, "%s", msg);
        return -1;
    }
    if (*ms == 0) {
        fail(p, p->tok.pos, "duration must be greater than 0");
        return -1;
    }
    return 0;
}

static query_expr *parse_range(parser *p, query_expr *e)
{
    int lb = p->tok.pos;
    int64_t range, step = 0;
    if (advance(p) < 0)
        return NULL;
    if (p->tok.type != QT_DURATION)
        return unexpected(p, "subquery selector", "duration");
    if (duration_value(p, &range) < 0 || advance(p) < 0)
        return NULL;
    if (p->tok.type == QT_RBRACKET) {
        if (e->kind != QUERY_NODE_VECTOR_SEL)
            return fail(p, lb, "ranges only allowed for vector selectors");
        if (e->u.vs.tm.offset_ms != 0)
            return fail(p, lb, "no offset modifiers allowed before range");
        /* Prometheus 2.42 checks only a fixed timestamp here: x @ end()[5m] is accepted. */
        if (e->u.vs.tm.at == QUERY_AT_TS)
            return fail(p, lb, "no @ modifiers allowed before range");
        query_expr *m = node(p, QUERY_NODE_MATRIX_SEL, e->pos);
        m->type = QUERY_MATRIX;
        m->u.ms.vs = e;
        m->u.ms.range_ms = range;
        m->end = p->tok.pos + 1;
        if (grow(p, m, e) < 0 || advance(p) < 0)
            return NULL;
        return m;
    }
    if (p->tok.type != QT_COLON)
        return unexpected(p, "subquery or range", "\":\" or \"]\"");
    if (advance(p) < 0)
        return NULL;
    if (p->tok.type == QT_DURATION) {
        if (duration_value(p, &step) < 0 || advance(p) < 0)
            return NULL;
        if (p->tok.type != QT_RBRACKET)
            return unexpected(p, "subquery selector", "\"]\"");
    } else if (p->tok.type != QT_RBRACKET) {
        return unexpected(p, "subquery selector", "duration or \"]\"");
    }
    query_expr *s = node(p, QUERY_NODE_SUBQUERY, e->pos);
    s->type = QUERY_MATRIX;
    s->u.sq.expr = e;
    s->u.sq.range_ms = range;
    s->u.sq.step_ms = step;
    s->end = p->tok.pos + 1;
    if (grow(p, s, e) < 0 || advance(p) < 0)
        return NULL;
    return s;
}

static query_expr *parse_offset(parser *p, query_expr *e)
{
    int neg = 0;
    int64_t d;
    if (advance(p) < 0)
        return NULL;
    if (p->tok.type == QT_SUB) {
        neg = 1;
        if (advance(p) < 0)
            return NULL;
    }
    if (p->tok.type != QT_DURATION)
        return unexpected(p, "offset", "duration");
    if (duration_value(p, &d) < 0)
        return NULL;
    query_time_mod *tm = time_mod_of(p, e, "offset");
    if (!tm)
        return NULL;
    if (tm->offset_ms != 0)
        return fail(p, e->pos, "offset may not be set multiple times");
    tm->offset_ms = neg ? -d : d;
    e->end = p->tok.pos + p->tok.len;
    if (advance(p) < 0)
        return NULL;
    return e;
}

static query_expr *parse_at(parser *p, query_expr *e)
{
    if (advance(p) < 0)
        return NULL;
    enum query_at kind = QUERY_AT_TS;
    double ts = 0;
    if (p->tok.type == QT_START || p->tok.type == QT_END) {
        kind = p->tok.type == QT_START ? QUERY_AT_START : QUERY_AT_END;
        if (advance(p) < 0)
            return NULL;
        if (p->tok.type != QT_LPAREN)
            return unexpected(p, "@", "timestamp");
        if (advance(p) < 0)
            return NULL;
        if (p->tok.type != QT_RPAREN)
            return unexpected(p, "@", "timestamp");
    } else {
        int neg = 0;
        if (p->tok.type == QT_ADD || p->tok.type == QT_SUB) {
            neg = p->tok.type == QT_SUB;
            if (advance(p) < 0)
                return NULL;
        }
        if (p->tok.type != QT_NUMBER)
            return unexpected(p, "@", "timestamp");
        char msg[160];
        if (query__parse_number(p->src + p->tok.pos, (size_t)p->tok.len, &ts, msg, sizeof msg) < 0)
            return fail(p, p->tok.pos, "%s", msg);
        if (neg)
            ts = -ts;
        /* The timestamp must fit int64 milliseconds. */
        if (isnan(ts) || isinf(ts) || ts * 1000.0 >= 9223372036854775807.0 ||
            ts * 1000.0 <= -9223372036854775807.0) {
            if (isnan(ts) || isinf(ts))
                return fail(p, e->pos, "timestamp out of bounds for @ modifier: %s",
                            isnan(ts) ? "NaN"
                            : ts > 0  ? "+Inf"
                                      : "-Inf");
            return fail(p, e->pos, "timestamp out of bounds for @ modifier: %f", ts);
        }
    }
    query_time_mod *tm = time_mod_of(p, e, "@");
    if (!tm)
        return NULL;
    if (tm->at != QUERY_AT_NONE)
        return fail(p, e->pos, "@ <timestamp> may not be set multiple times");
    tm->at = kind;
    if (kind == QUERY_AT_TS)
        tm->at_ms = (int64_t)llround(ts * 1000.0);
    e->end = p->tok.pos + p->tok.len;
    if (advance(p) < 0)
        return NULL;
    return e;
}

static query_expr *parse_postfix(parser *p, query_expr *e)
{
    while (e && !p->failed) {
        switch (p->tok.type) {
        case QT_LBRACKET:
            e = parse_range(p, e);
            break;
        case QT_OFFSET:
            e = parse_offset(p, e);
            break;
        case QT_AT:
            e = parse_at(p, e);
            break;
        default:
            return e;
        }
    }
    return p->failed ? NULL : e;
}

/* ---- Calls and aggregations -------------------------------------------------------------- */

/* Tokens that may start a metric name. */
static int tok_is_metric_word(enum query_tok t)
{
    switch (t) {
    case QT_IDENT:
    case QT_METRIC_IDENT:
    case QT_LAND:
    case QT_LOR:
    case QT_LUNLESS:
    case QT_OFFSET:
    case QT_BY:
    case QT_WITHOUT:
    case QT_START:
    case QT_END:
        return 1;
    default:
        return query__tok_is_agg(t);
    }
}

/* Tokens that may start an expression. */
static int tok_starts_expr(enum query_tok t)
{
    switch (t) {
    case QT_NUMBER:
    case QT_STRING:
    case QT_LPAREN:
    case QT_LBRACE:
    case QT_ADD:
    case QT_SUB:
        return 1;
    default:
        return tok_is_metric_word(t);
    }
}

/* '(' [expr {',' expr}] ')' at the current token; leaves ')' as the current token. */
static int parse_args(parser *p, query_expr *parent, query_expr ***out, size_t *n_out)
{
    size_t n = 0, cap = 4;
    query_expr **v = tsdb_arena_alloc(p->a, cap * sizeof *v);
    if (advance(p) < 0) /* past '(' */
        return -1;
    if (p->tok.type != QT_RPAREN) {
        for (;;) {
            query_expr *arg = parse_expr(p, 0);
            if (!arg)
                return -1;
            if (grow(p, parent, arg) < 0)
                return -1;
            if (n == cap) {
                v = tsdb_arena_realloc(p->a, v, cap * sizeof *v, 2 * cap * sizeof *v);
                cap *= 2;
            }
            v[n++] = arg;
            if (p->tok.type == QT_RPAREN)
                break;
            if (p->tok.type != QT_COMMA) {
                unexpected(p, NULL, NULL);
                return -1;
            }
            int comma = p->tok.pos;
            if (advance(p) < 0)
                return -1;
            /* Prometheus reduces "args ','" whenever no expression can follow. */
            if (!tok_starts_expr(p->tok.type)) {
                fail(p, comma, "trailing commas not allowed in function call args");
                return -1;
            }
        }
    }
    parent->end = p->tok.pos + 1; /* the caller advances past ')' */
    *out = v;
    *n_out = n;
    return 0;
}

static query_expr *parse_call(parser *p)
{
    query_token name = p->tok;
    query_expr *e = node(p, QUERY_NODE_CALL, name.pos);
    if (advance(p) < 0) /* now at '(' */
        return NULL;
    query_expr **args;
    size_t n;
    if (parse_args(p, e, &args, &n) < 0)
        return NULL;
    const query_func *fn = query_func_lookup(p->src + name.pos, (size_t)name.len);
    if (!fn)
        return fail(p, name.pos, "unknown function with name \"%.*s\"", name.len,
                    p->src + name.pos);
    e->u.call.fn = fn;
    e->u.call.args = (const query_expr *const *)args;
    e->u.call.n_args = n;
    e->type = fn->ret;
    if (advance(p) < 0) /* past ')' */
        return NULL;
    return e;
}

static int parse_agg_modifier(parser *p, query_agg *agg)
{
    agg->without = p->tok.type == QT_WITHOUT;
    if (advance(p) < 0)
        return -1;
    return parse_labels(p, &agg->grouping, &agg->n_grouping);
}

static query_expr *parse_aggregation(parser *p)
{
    query_expr *e = node(p, QUERY_NODE_AGG, p->tok.pos);
    e->type = QUERY_VECTOR;
    query_agg *agg = &e->u.agg;
    agg->op = (enum query_agg_op)(p->tok.type - QT_AGG_FIRST);
    if (advance(p) < 0)
        return NULL;
    int have_mod = 0;
    if (p->tok.type == QT_BY || p->tok.type == QT_WITHOUT) {
        if (parse_agg_modifier(p, agg) < 0)
            return NULL;
        have_mod = 1;
    }
    if (p->tok.type != QT_LPAREN)
        return unexpected(p, "aggregation", NULL);
    query_expr **args;
    size_t n;
    p->agg_depth++;
    int rc = parse_args(p, e, &args, &n);
    p->agg_depth--;
    if (rc < 0 || advance(p) < 0) /* past ')' */
        return NULL;
    if (!have_mod && (p->tok.type == QT_BY || p->tok.type == QT_WITHOUT)) {
        if (parse_agg_modifier(p, agg) < 0)
            return NULL;
    }
    e->end = p->last_closing;
    if (n == 0)
        return fail(p, e->pos, "no arguments for aggregate expression provided");
    size_t want = 1;
    if (agg->op == QUERY_AGG_TOPK || agg->op == QUERY_AGG_BOTTOMK ||
        agg->op == QUERY_AGG_QUANTILE || agg->op == QUERY_AGG_COUNT_VALUES) {
        want = 2;
        agg->param = args[0];
    }
    if (n != want)
        return fail(p, e->pos,
                    "wrong number of arguments for aggregate expression provided, expected %zu, "
                    "got %zu",
                    want, n);
    agg->expr = args[want - 1];
    return e;
}

/* ---- Expressions ---------------------------------------------------------------------------- */

static query_expr *parse_primary(parser *p)
{
    query_token t = p->tok;
    char msg[160];
    switch (t.type) {
    case QT_NUMBER: {
        query_expr *e = node(p, QUERY_NODE_NUMBER, t.pos);
        e->type = QUERY_SCALAR;
        e->end = t.pos + t.len;
        if (query__parse_number(p->src + t.pos, (size_t)t.len, &e->u.num, msg, sizeof msg) < 0)
            return fail(p, t.pos, "%s", msg);
        if (advance(p) < 0)
            return NULL;
        return e;
    }
    case QT_STRING: {
        query_expr *e = node(p, QUERY_NODE_STRING, t.pos);
        e->type = QUERY_STRING;
        e->end = t.pos + t.len;
        e->u.str = query__unquote(p->a, p->src + t.pos, (size_t)t.len);
        if (advance(p) < 0)
            return NULL;
        return e;
    }
    case QT_LPAREN: {
        query_expr *e = node(p, QUERY_NODE_PAREN, t.pos);
        if (advance(p) < 0)
            return NULL;
        query_expr *in = parse_expr(p, 0);
        if (!in)
            return NULL;
        if (p->tok.type != QT_RPAREN)
            return unexpected(p, NULL, NULL);
        e->u.paren = in;
        e->type = in->type;
        e->end = p->tok.pos + 1;
        if (grow(p, e, in) < 0 || advance(p) < 0)
            return NULL;
        return e;
    }
    case QT_LBRACE:
        return parse_vector_selector(p);
    case QT_IDENT:
        if (peek(p).type == QT_LPAREN)
            return parse_call(p);
        return parse_vector_selector(p);
    default:
        break;
    }
    if (query__tok_is_agg(t.type)) {
        enum query_tok n = peek(p).type;
        if (n == QT_LPAREN || n == QT_BY || n == QT_WITHOUT)
            return parse_aggregation(p);
    }
    if (tok_is_metric_word(t.type))
        return parse_vector_selector(p);
    return unexpected(p, NULL, NULL);
}

static query_expr *parse_unary(parser *p)
{
    if (p->tok.type == QT_ADD || p->tok.type == QT_SUB) {
        query_token t = p->tok;
        if (advance(p) < 0)
            return NULL;
        query_expr *in = parse_expr(p, PREC_POW);
        if (!in)
            return NULL;
        if (in->kind == QUERY_NODE_NUMBER) {
            if (t.type == QT_SUB)
                in->u.num = -in->u.num;
            in->pos = t.pos;
            return in;
        }
        query_expr *e = node(p, QUERY_NODE_UNARY, t.pos);
        e->u.un.op = t.type == QT_SUB ? QUERY_OP_SUB : QUERY_OP_ADD;
        e->u.un.expr = in;
        e->type = in->type;
        e->end = in->end;
        if (grow(p, e, in) < 0)
            return NULL;
        return e;
    }
    query_expr *e = parse_primary(p);
    if (!e)
        return NULL;
    return parse_postfix(p, e);
}

/* bool, on/ignoring (...), group_left/group_right [(...)] after a binary operator. */
static int parse_bin_modifiers(parser *p, query_binary *b)
{
    query_matching *m = &b->m;
    m->card = QUERY_CARD_ONE_TO_ONE;
    if (p->tok.type == QT_BOOL) {
        b->return_bool = 1;
        if (advance(p) < 0)
            return -1;
    }
    if (p->tok.type != QT_ON && p->tok.type != QT_IGNORING)
        return 0;
    m->on = p->tok.type == QT_ON;
    if (advance(p) < 0 || parse_labels(p, &m->labels, &m->n_labels) < 0)
        return -1;
    if (p->tok.type == QT_GROUP_LEFT || p->tok.type == QT_GROUP_RIGHT) {
        m->card = p->tok.type == QT_GROUP_LEFT ? QUERY_CARD_MANY_TO_ONE : QUERY_CARD_ONE_TO_MANY;
        if (advance(p) < 0)
            return -1;
        if (p->tok.type == QT_LPAREN && parse_labels(p, &m->include, &m->n_include) < 0)
            return -1;
    }
    /* Kept only when both sides turn out to be vectors (see check.c). */
    m->has_matching = 1;
    return 0;
}

static query_expr *parse_expr(parser *p, int min_prec)
{
    if (++p->depth > QUERY_MAX_DEPTH) {
        p->depth--;
        return fail(p, p->tok.pos, "expression nesting too deep (more than %d levels)",
                    QUERY_MAX_DEPTH);
    }
    query_expr *lhs = parse_unary(p);
    while (lhs && !p->failed) {
        enum query_binop op;
        int prec = binop_of(p->tok.type, &op);
        if (prec == 0 || prec < min_prec)
            break;
        query_expr *e = node(p, QUERY_NODE_BINARY, lhs->pos);
        query_binary *b = &e->u.bin;
        b->op = op;
        b->op_pos = p->tok.pos;
        b->lhs = lhs;
        if (advance(p) < 0 || parse_bin_modifiers(p, b) < 0) {
            lhs = NULL;
            break;
        }
        /* ^ is right-associative: its right side may hold another ^. */
        query_expr *rhs = parse_expr(p, op == QUERY_OP_POW ? prec : prec + 1);
        if (!rhs) {
            lhs = NULL;
            break;
        }
        b->rhs = rhs;
        e->end = rhs->end;
        e->type =
            lhs->type == QUERY_SCALAR && rhs->type == QUERY_SCALAR ? QUERY_SCALAR : QUERY_VECTOR;
        if (grow(p, e, lhs) < 0 || grow(p, e, rhs) < 0) {
            lhs = NULL;
            break;
        }
        lhs = e;
    }
    p->depth--;
    return p->failed ? NULL : lhs;
}

/* ---- Entry points ---------------------------------------------------------------------------- */

static int parser_init(parser *p, tsdb_arena *a, const char *src, size_t len, tsdb_err *err)
{
    memset(p, 0, sizeof *p);
    p->a = a;
    p->src = src ? src : "";
    p->err = err;
    if (len > MAX_QUERY_LEN) {
        if (err)
            tsdb_errf(err, TSDB_EPARSE, 0, "parse error: query too long (%zu bytes, max %d)", len,
                      MAX_QUERY_LEN);
        return TSDB_EPARSE;
    }
    p->len = (int)len;
    query__lex_init(&p->lx, p->src, p->len);
    if (advance(p) < 0)
        return TSDB_EPARSE;
    return 0;
}

int query_parse(tsdb_arena *a, const char *src, size_t len, query_expr **out, tsdb_err *err)
{
    parser p;
    int rc = parser_init(&p, a, src, len, err);
    if (rc < 0)
        return rc;
    if (p.tok.type == QT_EOF)
        return query__parse_errf(err, p.src, p.len, 0, "no expression found in input");
    query_expr *e = parse_expr(&p, 0);
    if (e && p.tok.type != QT_EOF)
        unexpected(&p, NULL, NULL);
    if (p.failed || !e)
        return TSDB_EPARSE;
    rc = query__check(e, p.src, p.len, err);
    if (rc < 0)
        return rc;
    *out = e;
    return 0;
}

int query_parse_selector(tsdb_arena *a, const char *src, size_t len, const tsdb_matcher ***ms,
                         size_t *n, tsdb_err *err)
{
    parser p;
    int rc = parser_init(&p, a, src, len, err);
    if (rc < 0)
        return rc;
    if (p.tok.type != QT_LBRACE && !tok_is_metric_word(p.tok.type)) {
        unexpected(&p, NULL, NULL);
        return TSDB_EPARSE;
    }
    query_expr *e = parse_vector_selector(&p);
    if (e && p.tok.type != QT_EOF)
        unexpected(&p, NULL, NULL);
    if (p.failed || !e)
        return TSDB_EPARSE;
    *ms = (const tsdb_matcher **)e->u.vs.matchers;
    *n = e->u.vs.n_matchers;
    return 0;
}

enum query_type query_expr_type(const query_expr *e)
{
    return e->type;
}
