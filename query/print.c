/* query/print.c -- AST to canonical PromQL text.
 *
 * The output is what Prometheus 2.42's String() methods print for the same tree: binary
 * operators surrounded by single spaces, "sum by (job) (x)", matchers sorted by their text,
 * numbers as Go prints them ("0.001", "1e+06", "+Inf", "NaN"), strings Go-quoted,
 * durations as model.Duration ("1h30m"), "@ 100.000", "offset -5m". Printing then parsing
 * gives back the same tree, so print(parse(print(parse(x)))) == print(parse(x)).
 */
#include "query/query.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/parse.h"
#include "tsdb/base.h"

/* ---- Scalars ----------------------------------------------------------------------------------
 */

size_t query__fmt_duration(int64_t ms, char *out)
{
    static const struct {
        const char *unit;
        int64_t mult;
        int exact;
    } units[] = {
        {"y", 365LL * 24 * 3600 * 1000, 1},
        {"w", 7LL * 24 * 3600 * 1000, 1},
        {"d", 24LL * 3600 * 1000, 0},
        {"h", 3600LL * 1000, 0},
        {"m", 60LL * 1000, 0},
        {"s", 1000, 0},
        {"ms", 1, 0},
    };
    size_t n = 0;
    if (ms <= 0) {
        memcpy(out, "0s", 3);
        return 2;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        /* Years and weeks only when they divide evenly: "90d" reads better than "12w6d". */
        if (units[i].exact && ms % units[i].mult != 0)
            continue;
        int64_t v = ms / units[i].mult;
        if (v > 0) {
            n += (size_t)snprintf(out + n, 64 - n, "%" PRId64 "%s", v, units[i].unit);
            ms -= v * units[i].mult;
        }
    }
    return n;
}

/* Go's fmt.Sprint of a float64 (strconv 'g' with the shortest digits that round-trip):
 * exponent notation when the decimal exponent is < -4 or >= 6 ("1e+06", "1.234e-05"), fixed
 * otherwise ("100000", "0.0001"). */
static void put_float(tsdb_buf *b, double v)
{
    if (isnan(v)) {
        tsdb_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        tsdb_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e is [-]d[.ddd]e[+-]XX */
    const char *p = e;
    if (*p == '-') {
        tsdb_buf_putc(b, '-');
        p++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++) {
        if (*p != '.')
            digits[nd++] = *p;
    }
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (exp < -4 || exp >= 6) {
        tsdb_buf_putc(b, (unsigned char)digits[0]);
        if (nd > 1) {
            tsdb_buf_putc(b, '.');
            tsdb_buf_put(b, digits + 1, nd - 1);
        }
        tsdb_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp >= 0) {
        for (int i = 0; i <= exp; i++)
            tsdb_buf_putc(b, (size_t)i < nd ? (unsigned char)digits[i] : '0');
        if ((size_t)exp + 1 < nd) {
            tsdb_buf_putc(b, '.');
            tsdb_buf_put(b, digits + exp + 1, nd - (size_t)exp - 1);
        }
    } else {
        tsdb_buf_puts(b, "0.");
        for (int i = 0; i < -exp - 1; i++)
            tsdb_buf_putc(b, '0');
        tsdb_buf_put(b, digits, nd);
    }
}

/* Code point of a valid UTF-8 sequence at p (n bytes left), setting *len; -1 if invalid. */
static long utf8_decode(const unsigned char *p, size_t n, size_t *len)
{
    unsigned c = p[0];
    size_t k;
    unsigned long cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if (k > n)
        return -1;
    for (size_t i = 1; i < k; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return -1;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
        return -1;
    *len = k;
    return (long)cp;
}

/* An approximation of Go's unicode.IsPrint for code points >= 0x80: false for controls,
 * format characters, non-ASCII spaces, separators, private use and non-characters. */
static int rune_printable(long cp)
{
    if (cp < 0xa0 || cp == 0xa0 || cp == 0xad)
        return 0;
    if (cp == 0x61c || cp == 0x1680 || cp == 0x180e || (cp >= 0x2000 && cp <= 0x200f) ||
        (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 ||
        cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb))
        return 0;
    if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000 || (cp & 0xfffe) == 0xfffe)
        return 0;
    return 1;
}

void query__quote(tsdb_buf *b, tsdb_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    tsdb_buf_putc(b, '"');
    for (size_t i = 0; i < s.len;) {
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t k;
            long cp = utf8_decode(p + i, s.len - i, &k);
            if (cp < 0) {
                tsdb_buf_printf(b, "\\x%02x", c);
                i++;
            } else if (rune_printable(cp)) {
                tsdb_buf_put(b, p + i, k);
                i += k;
            } else {
                tsdb_buf_printf(b, cp < 0x10000 ? "\\u%04lx" : "\\U%08lx", (unsigned long)cp);
                i += k;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"':
            tsdb_buf_puts(b, "\\\"");
            break;
        case '\\':
            tsdb_buf_puts(b, "\\\\");
            break;
        case '\a':
            tsdb_buf_puts(b, "\\a");
            break;
        case '\b':
            tsdb_buf_puts(b, "\\b");
            break;
        case '\f':
            tsdb_buf_puts(b, "\\f");
            break;
        case '\n':
            tsdb_buf_puts(b, "\\n");
            break;
        case '\r':
            tsdb_buf_puts(b, "\\r");
            break;
        case '\t':
            tsdb_buf_puts(b, "\\t");
            break;
        case '\v':
            tsdb_buf_puts(b, "\\v");
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                tsdb_buf_printf(b, "\\x%02x", c);
            else
                tsdb_buf_putc(b, (unsigned char)c);
        }
    }
    tsdb_buf_putc(b, '"');
}

/* ---- Nodes ------------------------------------------------------------------------------------
 */

static void put_str(tsdb_buf *b, tsdb_str s)
{
    tsdb_buf_put(b, s.p, s.len);
}

static void put_duration(tsdb_buf *b, int64_t ms)
{
    char d[64];
    size_t n = query__fmt_duration(ms, d);
    tsdb_buf_put(b, d, n);
}

static void put_time_mod(tsdb_buf *b, const query_time_mod *tm)
{
    switch (tm->at) {
    case QUERY_AT_TS:
        tsdb_buf_printf(b, " @ %.3f", (double)tm->at_ms / 1000.0);
        break;
    case QUERY_AT_START:
        tsdb_buf_puts(b, " @ start()");
        break;
    case QUERY_AT_END:
        tsdb_buf_puts(b, " @ end()");
        break;
    case QUERY_AT_NONE:
        break;
    }
    if (tm->offset_ms > 0) {
        tsdb_buf_puts(b, " offset ");
        put_duration(b, tm->offset_ms);
    } else if (tm->offset_ms < 0) {
        tsdb_buf_puts(b, " offset -");
        put_duration(b, -tm->offset_ms);
    }
}

static void put_labels(tsdb_buf *b, const tsdb_str *v, size_t n)
{
    tsdb_buf_putc(b, '(');
    for (size_t i = 0; i < n; i++) {
        if (i)
            tsdb_buf_puts(b, ", ");
        put_str(b, v[i]);
    }
    tsdb_buf_putc(b, ')');
}

static int cmp_text(const void *x, const void *y)
{
    const tsdb_str *a = x, *b = y;
    return tsdb_str_cmp(*a, *b);
}

/* name{matchers} without offset and @. */
static void put_selector(tsdb_buf *b, const query_vector_sel *vs, tsdb_arena *a)
{
    put_str(b, vs->name);
    /* Prometheus sorts the matchers by their printed text, and leaves out a __name__="..."
     * equal to the selector's name (including __name__="" when no name was written). */
    tsdb_str *txt = tsdb_arena_alloc(a, (vs->n_src + 1) * sizeof *txt);
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    size_t n = 0;
    for (size_t i = 0; i < vs->n_src; i++) {
        if (vs->src[i].op == TSDB_MATCH_EQ && tsdb_str_eq(vs->src[i].name, TSDB_STR("__name__")) &&
            tsdb_str_eq(vs->src[i].value, vs->name))
            continue;
        tsdb_buf t;
        tsdb_buf_init(&t);
        put_str(&t, vs->src[i].name);
        tsdb_buf_puts(&t, ops[vs->src[i].op]);
        query__quote(&t, vs->src[i].value);
        txt[n++] = tsdb_arena_str(a, (tsdb_str){(const char *)t.p, t.len});
        tsdb_buf_fini(&t);
    }
    if (n == 0)
        return;
    qsort(txt, n, sizeof *txt, cmp_text);
    tsdb_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            tsdb_buf_putc(b, ',');
        put_str(b, txt[i]);
    }
    tsdb_buf_putc(b, '}');
}

static void put_expr(tsdb_buf *b, const query_expr *e, tsdb_arena *a)
{
    switch (e->kind) {
    case QUERY_NODE_NUMBER:
        put_float(b, e->u.num);
        return;
    case QUERY_NODE_STRING:
        query__quote(b, e->u.str);
        return;
    case QUERY_NODE_VECTOR_SEL:
        put_selector(b, &e->u.vs, a);
        put_time_mod(b, &e->u.vs.tm);
        return;
    case QUERY_NODE_MATRIX_SEL: {
        const query_vector_sel *vs = &e->u.ms.vs->u.vs;
        put_selector(b, vs, a);
        tsdb_buf_putc(b, '[');
        put_duration(b, e->u.ms.range_ms);
        tsdb_buf_putc(b, ']');
        put_time_mod(b, &vs->tm);
        return;
    }
    case QUERY_NODE_SUBQUERY:
        put_expr(b, e->u.sq.expr, a);
        tsdb_buf_putc(b, '[');
        put_duration(b, e->u.sq.range_ms);
        tsdb_buf_putc(b, ':');
        if (e->u.sq.step_ms != 0)
            put_duration(b, e->u.sq.step_ms);
        tsdb_buf_putc(b, ']');
        put_time_mod(b, &e->u.sq.tm);
        return;
    case QUERY_NODE_UNARY:
        tsdb_buf_puts(b, query__binop_str(e->u.un.op));
        put_expr(b, e->u.un.expr, a);
        return;
    case QUERY_NODE_BINARY: {
        const query_binary *bin = &e->u.bin;
        const query_matching *m = &bin->m;
        if (bin->op == QUERY_OP_POW && bin->lhs->kind == QUERY_NODE_NUMBER &&
            isinf(bin->lhs->u.num) && bin->lhs->u.num > 0) {
            /* "+Inf ^ 2" would read back as +(Inf ^ 2): a unary plus binds looser than ^.
             * (Prometheus prints "+Inf" here and does not round-trip.) */
            tsdb_buf_puts(b, "Inf");
        } else {
            put_expr(b, bin->lhs, a);
        }
        tsdb_buf_putc(b, ' ');
        tsdb_buf_puts(b, query__binop_str(bin->op));
        if (bin->return_bool)
            tsdb_buf_puts(b, " bool");
        if (m->has_matching && (m->n_labels > 0 || m->on)) {
            tsdb_buf_puts(b, m->on ? " on " : " ignoring ");
            put_labels(b, m->labels, m->n_labels);
            if (m->card == QUERY_CARD_MANY_TO_ONE || m->card == QUERY_CARD_ONE_TO_MANY) {
                tsdb_buf_puts(b,
                              m->card == QUERY_CARD_MANY_TO_ONE ? " group_left " : " group_right ");
                put_labels(b, m->include, m->n_include);
            }
        }
        tsdb_buf_putc(b, ' ');
        put_expr(b, bin->rhs, a);
        return;
    }
    case QUERY_NODE_AGG: {
        const query_agg *agg = &e->u.agg;
        tsdb_buf_puts(b, query__agg_str(agg->op));
        if (agg->without || agg->n_grouping > 0) {
            tsdb_buf_puts(b, agg->without ? " without " : " by ");
            put_labels(b, agg->grouping, agg->n_grouping);
            tsdb_buf_putc(b, ' ');
        }
        tsdb_buf_putc(b, '(');
        if (agg->param) {
            put_expr(b, agg->param, a);
            tsdb_buf_puts(b, ", ");
        }
        put_expr(b, agg->expr, a);
        tsdb_buf_putc(b, ')');
        return;
    }
    case QUERY_NODE_CALL:
        tsdb_buf_puts(b, e->u.call.fn->name);
        tsdb_buf_putc(b, '(');
        for (size_t i = 0; i < e->u.call.n_args; i++) {
            if (i)
                tsdb_buf_puts(b, ", ");
            put_expr(b, e->u.call.args[i], a);
        }
        tsdb_buf_putc(b, ')');
        return;
    case QUERY_NODE_PAREN:
        tsdb_buf_putc(b, '(');
        put_expr(b, e->u.paren, a);
        tsdb_buf_putc(b, ')');
        return;
    }
}

int query_print(const query_expr *e, tsdb_arena *a, tsdb_str *out)
{
    if (!e || !a || !out)
        return TSDB_EINVAL;
    tsdb_buf b;
    tsdb_buf_init(&b);
    put_expr(&b, e, a);
    *out = tsdb_arena_str(a, (tsdb_str){(const char *)b.p, b.len});
    tsdb_buf_fini(&b);
    return 0;
}
