/* query/value.c -- evaluator values: vectors in the arena, label sets, signatures, limits.
 *
 * Label sets are sorted by name (tsdb/tsdb.h), so every derived set (dropped __name__, kept
 * on-labels, a label set or removed) stays sorted by construction and is built in one pass.
 * A signature is the keyed 64-bit hash of a canonical encoding of a subset of the labels
 * (name 0xff value 0xff ...): equal subsets hash equal, which is what vector matching and
 * grouping need (as Prometheus' label hashes).
 *
 * The output builder (qe_out) collects series keyed by their full label set; a second value
 * for the same labels at the same step is the "same labelset" execution error.
 */
#include "query/eval.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

const tsdb_str qe_name_label = {"__name__", 8};

/* ---- Errors, limits, deadline -----------------------------------------------------------------
 */

int qe_errf(qe_ctx *c, int code, const char *fmt, ...)
{
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        c->err->code = code;
        c->err->pos = -1;
        vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int qe_check(qe_ctx *c)
{
    if (c->cancel && *c->cancel)
        return qe_errf(c, TSDB_ECANCELED, "query was canceled");
    if (c->deadline_ns && (c->tick++ & 63) == 0 && tsdb_mono_ns() > c->deadline_ns)
        return qe_errf(c, TSDB_ETIMEOUT, "query timed out in query execution");
    return 0;
}

int qe_account(qe_ctx *c, size_t n)
{
    c->cur_samples += n;
    if (c->max_samples && c->cur_samples > c->max_samples)
        return qe_errf(c, TSDB_ELIMIT,
                       "query processing would load too many samples into memory in query "
                       "execution");
    return 0;
}

size_t qe_value_samples(const qe_value *v, size_t n_steps)
{
    size_t n = 0;
    switch (v->kind) {
    case QE_SCALAR:
        return n_steps;
    case QE_VECTOR:
        for (size_t i = 0; i < v->n_vs; i++)
            for (size_t j = 0; j < n_steps; j++)
                n += v->vs[i].ok[j];
        return n;
    case QE_MATRIX:
        for (size_t i = 0; i < v->n_rs; i++)
            n += v->rs[i].n;
        return n;
    case QE_STRING:
        return 0;
    }
    return 0;
}

void qe_release(qe_ctx *c, qe_value *v)
{
    /* The memory stays in the arena until the query ends; the limit follows what Prometheus
     * counts: samples of values still to be consumed. */
    c->cur_samples -= v->held < c->cur_samples ? v->held : c->cur_samples;
    v->held = 0;
}

/* ---- Hash map uint64 -> size_t (open addressing, linear probing) -------------------------------
 */

void qe_map_init(qe_map *m, size_t hint)
{
    size_t cap = 16;
    while (cap < hint * 2)
        cap <<= 1;
    m->keys = xcalloc(cap, sizeof *m->keys);
    m->vals = xcalloc(cap, sizeof *m->vals);
    m->used = xcalloc(cap, 1);
    m->cap = cap;
    m->n = 0;
}

void qe_map_fini(qe_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static size_t map_slot(const qe_map *m, uint64_t key)
{
    size_t i = (size_t)(key ^ (key >> 29)) & (m->cap - 1);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

int qe_map_get(const qe_map *m, uint64_t key, size_t *val)
{
    size_t i = map_slot(m, key);
    if (!m->used[i])
        return 0;
    *val = m->vals[i];
    return 1;
}

void qe_map_put(qe_map *m, uint64_t key, size_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        qe_map old = *m;
        qe_map_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.used[i])
                qe_map_put(m, old.keys[i], old.vals[i]);
        qe_map_fini(&old);
    }
    size_t i = map_slot(m, key);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
}

/* ---- Vectors ----------------------------------------------------------------------------------
 */

qe_vseries *qe_vseries_new(qe_ctx *c, size_t n_steps, size_t count)
{
    qe_vseries *s = tsdb_arena_calloc(c->a, count ? count : 1, sizeof *s);
    for (size_t i = 0; i < count; i++) {
        s[i].v = tsdb_arena_alloc(c->a, n_steps * sizeof(double));
        s[i].ok = tsdb_arena_calloc(c->a, n_steps, 1);
    }
    return s;
}

double *qe_scalar_new(qe_ctx *c, size_t n_steps)
{
    return tsdb_arena_alloc(c->a, n_steps * sizeof(double));
}

void qe_out_init(qe_out *o, qe_ctx *c, const qe_steps *st, size_t hint)
{
    o->c = c;
    o->st = st;
    o->n = 0;
    o->cap = hint ? hint : 8;
    o->s = xmalloc(o->cap * sizeof *o->s);
    qe_map_init(&o->m, hint);
}

void qe_out_fini(qe_out *o)
{
    free(o->s);
    o->s = NULL;
    qe_map_fini(&o->m);
}

size_t qe_out_series(qe_out *o, tsdb_labels l)
{
    uint64_t h = qe_labels_hash(o->c, l);
    size_t idx;
    if (qe_map_get(&o->m, h, &idx))
        return idx;
    if (o->n == o->cap) {
        o->cap *= 2;
        o->s = xrealloc(o->s, o->cap * sizeof *o->s);
    }
    idx = o->n++;
    qe_vseries *s = &o->s[idx];
    s->labels = l;
    s->v = tsdb_arena_alloc(o->c->a, o->st->n * sizeof(double));
    s->ok = tsdb_arena_calloc(o->c->a, o->st->n, 1);
    s->ts = NULL;
    qe_map_put(&o->m, h, idx);
    return idx;
}

int qe_out_put(qe_out *o, size_t idx, size_t i, double v)
{
    qe_vseries *s = &o->s[idx];
    if (s->ok[i])
        return qe_errf(o->c, TSDB_EEXEC, "vector cannot contain metrics with the same labelset");
    s->ok[i] = 1;
    s->v[i] = v;
    return 0;
}

int qe_out_finish(qe_out *o, qe_value *out)
{
    size_t n = 0, pts = 0;
    qe_vseries *vs = tsdb_arena_alloc(o->c->a, (o->n ? o->n : 1) * sizeof *vs);
    for (size_t k = 0; k < o->n; k++) {
        size_t cnt = 0;
        for (size_t i = 0; i < o->st->n; i++)
            cnt += o->s[k].ok[i];
        if (cnt) {
            vs[n++] = o->s[k];
            pts += cnt;
        }
    }
    qe_out_fini(o);
    memset(out, 0, sizeof *out);
    out->kind = QE_VECTOR;
    out->vs = vs;
    out->n_vs = n;
    out->held = pts;
    return qe_account(o->c, pts);
}

/* ---- Labels -----------------------------------------------------------------------------------
 */

int qe_names_has(const tsdb_str *names, size_t n, tsdb_str name)
{
    for (size_t i = 0; i < n; i++)
        if (tsdb_str_eq(names[i], name))
            return 1;
    return 0;
}

static tsdb_labels labels_filter(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n,
                                 int keep, int drop_name)
{
    size_t cnt = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = qe_names_has(names, n, l.v[i].name);
        int take = keep ? in : !in;
        if (drop_name && tsdb_str_eq(l.v[i].name, qe_name_label))
            take = 0;
        cnt += (size_t)take;
    }
    if (cnt == l.n)
        return l;
    tsdb_label *v = tsdb_arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = qe_names_has(names, n, l.v[i].name);
        int take = keep ? in : !in;
        if (drop_name && tsdb_str_eq(l.v[i].name, qe_name_label))
            take = 0;
        if (take)
            v[k++] = l.v[i];
    }
    return (tsdb_labels){v, k};
}

tsdb_labels qe_labels_drop_name(qe_ctx *c, tsdb_labels l)
{
    return labels_filter(c, l, NULL, 0, 0, 1);
}

tsdb_labels qe_labels_keep(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n)
{
    return labels_filter(c, l, names, n, 1, 0);
}

tsdb_labels qe_labels_del(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int drop_name)
{
    return labels_filter(c, l, names, n, 0, drop_name);
}

tsdb_labels qe_labels_set(qe_ctx *c, tsdb_labels l, tsdb_str name, tsdb_str value)
{
    tsdb_label *v = tsdb_arena_alloc(c->a, (l.n + 1) * sizeof *v);
    size_t k = 0, i = 0;
    while (i < l.n && tsdb_str_cmp(l.v[i].name, name) < 0)
        v[k++] = l.v[i++];
    if (value.len)
        v[k++] = (tsdb_label){name, value};
    if (i < l.n && tsdb_str_eq(l.v[i].name, name))
        i++;
    while (i < l.n)
        v[k++] = l.v[i++];
    return (tsdb_labels){v, k};
}

static void sig_add(tsdb_buf *b, const tsdb_label *lb)
{
    tsdb_buf_put(b, lb->name.p, lb->name.len);
    tsdb_buf_putc(b, 0xff);
    tsdb_buf_put(b, lb->value.p, lb->value.len);
    tsdb_buf_putc(b, 0xff);
}

uint64_t qe_sig(qe_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int on)
{
    c->hbuf.len = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = qe_names_has(names, n, l.v[i].name);
        if (on ? in : (!in && !tsdb_str_eq(l.v[i].name, qe_name_label)))
            sig_add(&c->hbuf, &l.v[i]);
    }
    return tsdb_hash(c->hbuf.p ? (const void *)c->hbuf.p : "", c->hbuf.len);
}

uint64_t qe_labels_hash(qe_ctx *c, tsdb_labels l)
{
    c->hbuf.len = 0;
    for (size_t i = 0; i < l.n; i++)
        sig_add(&c->hbuf, &l.v[i]);
    return tsdb_hash(c->hbuf.p ? (const void *)c->hbuf.p : "", c->hbuf.len);
}

const char *qe_labels_str(qe_ctx *c, tsdb_labels l)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_putc(&b, '{');
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            tsdb_buf_puts(&b, ", ");
        tsdb_buf_put(&b, l.v[i].name.p, l.v[i].name.len);
        tsdb_buf_puts(&b, "=\"");
        for (size_t k = 0; k < l.v[i].value.len; k++) {
            unsigned char ch = (unsigned char)l.v[i].value.p[k];
            if (ch == '"' || ch == '\\') {
                tsdb_buf_putc(&b, '\\');
                tsdb_buf_putc(&b, ch);
            } else if (ch == '\n') {
                tsdb_buf_puts(&b, "\\n");
            } else if (ch < 0x20 || ch == 0x7f) {
                tsdb_buf_printf(&b, "\\x%02x", ch);
            } else {
                tsdb_buf_putc(&b, ch);
            }
        }
        tsdb_buf_putc(&b, '"');
    }
    tsdb_buf_putc(&b, '}');
    char *s = tsdb_arena_strndup(c->a, (const char *)b.p, b.len);
    tsdb_buf_fini(&b);
    return s;
}

/* ---- Numbers ----------------------------------------------------------------------------------
 */

tsdb_str qe_fmt_float(qe_ctx *c, double v)
{
    if (isnan(v))
        return TSDB_STR("NaN");
    if (isinf(v))
        return v > 0 ? TSDB_STR("+Inf") : TSDB_STR("-Inf");
    /* Shortest round-tripping digits, then laid out without an exponent. */
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e = [-]d.ddddde[+-]xx */
    char digits[24];
    size_t nd = 0;
    const char *p = e;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char buf[400];
    size_t k = 0;
    if (neg)
        buf[k++] = '-';
    int point = exp10 + 1; /* digits before the decimal point */
    if (point <= 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -point; i++)
            buf[k++] = '0';
        for (size_t i = 0; i < nd; i++)
            buf[k++] = digits[i];
    } else {
        for (int i = 0; i < point; i++)
            buf[k++] = (size_t)i < nd ? digits[i] : '0';
        if ((size_t)point < nd) {
            buf[k++] = '.';
            for (size_t i = (size_t)point; i < nd; i++)
                buf[k++] = digits[i];
        }
    }
    if (k == 2 && buf[0] == '-' && buf[1] == '0')
        return TSDB_STR("-0");
    return tsdb_arena_str(c->a, (tsdb_str){buf, k});
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x))
        return isnan(y) ? 0 : -1;
    if (isnan(y))
        return 1;
    return (x > y) - (x < y);
}

double qe_quantile(double q, double *v, size_t n)
{
    if (n == 0 || isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    qsort(v, n, sizeof *v, cmp_double);
    double rank = q * (double)(n - 1);
    double lo = floor(rank);
    size_t lower = lo < 0 ? 0 : (size_t)lo;
    size_t upper = lower + 1 < n ? lower + 1 : n - 1;
    double w = rank - lo;
    return v[lower] * (1 - w) + v[upper] * w;
}
