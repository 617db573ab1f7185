/* query/value.c -- evaluator values: vectors in the arena, label sets, signatures, limits.
 *
 * Label sets are sorted by name (tsdb/tsdb.h), so every derived set (dropped __name__, kept
 * on-labels, a label set or removed) stays sorted by construction and is built in one pass.
 * A signature is the keyed 64-bit hash of a canonical encoding of a subset of the labels
 * (name 0xff value 0xff ...): equal subsets hash equal, which is what vector matching and
 * grouping need (as Prometheus' label hashes).
 *
 * The output builder (query_out) collects series keyed by their full label set; a second value
 * for the same labels at the same step is the "same labelset" execution error.
 */
#include "query/eval.h"
#include "query/parse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

const tsdb_str query__name_label = {"__name__", 8};

/* ---- Errors, limits, deadline -----------------------------------------------------------------
 */

int query__errf(query_eval_ctx *c, int code, const char *fmt, ...)
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

int query__check_deadline(query_eval_ctx *c)
{
    if (c->cancel && *c->cancel)
        return query__errf(c, TSDB_ECANCELED, "query was canceled");
    if (c->deadline_ns && (c->tick++ & 63) == 0 && tsdb_mono_ns() > c->deadline_ns)
        return query__errf(c, TSDB_ETIMEOUT, "query timed out in query execution");
    return 0;
}

int query__account(query_eval_ctx *c, size_t n)
{
    c->cur_samples += n;
    if (c->max_samples && c->cur_samples > c->max_samples)
        return query__errf(c, TSDB_ELIMIT,
                           "query processing would load too many samples into memory in query "
                           "execution");
    return 0;
}

size_t query__value_samples(const query_value *v, size_t n_steps)
{
    size_t n = 0;
    switch (v->kind) {
    case QUERY_V_SCALAR:
        return n_steps;
    case QUERY_V_VECTOR:
        for (size_t i = 0; i < v->n_vs; i++)
            for (size_t j = 0; j < v->vs[i].len; j++)
                n += v->vs[i].ok[j];
        (void)n_steps;
        return n;
    case QUERY_V_MATRIX:
        for (size_t i = 0; i < v->n_rs; i++)
            n += v->rs[i].n;
        return n;
    case QUERY_V_STRING:
        return 0;
    }
    return 0;
}

void query__release(query_eval_ctx *c, query_value *v)
{
    /* The memory stays in the arena until the query ends; the limit follows what Prometheus
     * counts: samples of values still to be consumed. */
    c->cur_samples -= v->held < c->cur_samples ? v->held : c->cur_samples;
    v->held = 0;
}

/* ---- Hash map uint64 -> size_t (open addressing, linear probing) -------------------------------
 */

void query__map_init(query_map *m, size_t hint)
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

void query__map_fini(query_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static size_t map_slot(const query_map *m, uint64_t key)
{
    size_t i = (size_t)(key ^ (key >> 29)) & (m->cap - 1);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

int query__map_get(const query_map *m, uint64_t key, size_t *val)
{
    size_t i = map_slot(m, key);
    if (!m->used[i])
        return 0;
    *val = m->vals[i];
    return 1;
}

void query__map_put(query_map *m, uint64_t key, size_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        query_map old = *m;
        query__map_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.used[i])
                query__map_put(m, old.keys[i], old.vals[i]);
        query__map_fini(&old);
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

query_vseries *query__vseries_new(query_eval_ctx *c, size_t n_steps, size_t count)
{
    query_vseries *s = tsdb_arena_calloc(c->a, count ? count : 1, sizeof *s);
    for (size_t i = 0; i < count; i++) {
        s[i].v = tsdb_arena_alloc(c->a, n_steps * sizeof(double));
        s[i].ok = tsdb_arena_calloc(c->a, n_steps, 1);
        s[i].off = 0;
        s[i].len = s[i].cap = n_steps;
    }
    return s;
}

size_t query__vseries_from_dense(query_eval_ctx *c, query_vseries *s, const double *v,
                                 const uint8_t *ok, const int64_t *ts, size_t n_steps)
{
    size_t first = 0, last = n_steps, cnt = 0;
    while (first < n_steps && !ok[first])
        first++;
    while (last > first && !ok[last - 1])
        last--;
    s->off = first;
    s->len = s->cap = last - first;
    s->v = NULL;
    s->ok = NULL;
    s->ts = NULL;
    if (s->len == 0)
        return 0;
    s->v = tsdb_arena_alloc(c->a, s->len * sizeof(double));
    s->ok = tsdb_arena_alloc(c->a, s->len);
    memcpy(s->v, v + first, s->len * sizeof(double));
    memcpy(s->ok, ok + first, s->len);
    if (ts) {
        s->ts = tsdb_arena_alloc(c->a, s->len * sizeof(int64_t));
        memcpy(s->ts, ts + first, s->len * sizeof(int64_t));
    }
    for (size_t k = 0; k < s->len; k++)
        cnt += s->ok[k];
    return cnt;
}

double *query__scalar_new(query_eval_ctx *c, size_t n_steps)
{
    return tsdb_arena_alloc(c->a, n_steps * sizeof(double));
}

void query__out_init(query_out *o, query_eval_ctx *c, const query_steps *st, size_t hint)
{
    o->c = c;
    o->st = st;
    o->n = 0;
    o->cap = hint ? hint : 8;
    o->s = xmalloc(o->cap * sizeof *o->s);
    query__map_init(&o->m, hint);
}

void query__out_fini(query_out *o)
{
    free(o->s);
    o->s = NULL;
    query__map_fini(&o->m);
}

size_t query__out_series(query_out *o, tsdb_labels l)
{
    uint64_t h = query__labels_hash(o->c, l);
    size_t idx;
    if (query__map_get(&o->m, h, &idx))
        return idx;
    if (o->n == o->cap) {
        o->cap *= 2;
        o->s = xrealloc(o->s, o->cap * sizeof *o->s);
    }
    idx = o->n++;
    query_vseries *s = &o->s[idx];
    memset(s, 0, sizeof *s);
    s->labels = l;
    query__map_put(&o->m, h, idx);
    return idx;
}

/* Makes step i addressable in s: the span starts at the first step written and grows
 * (doubling, in the arena) as later steps are written. */
static void out_cover(query_out *o, query_vseries *s, size_t i)
{
    if (s->cap == 0) {
        size_t cap = o->st->n - i < 16 ? o->st->n - i : 16;
        s->off = i;
        s->v = tsdb_arena_alloc(o->c->a, cap * sizeof(double));
        s->ok = tsdb_arena_calloc(o->c->a, cap, 1);
        s->cap = cap;
    } else if (i < s->off) {
        /* Not expected (steps are written in order), but handled: rebase the span. */
        size_t shift = s->off - i, cap = s->len + shift;
        double *v = tsdb_arena_alloc(o->c->a, cap * sizeof(double));
        uint8_t *ok = tsdb_arena_calloc(o->c->a, cap, 1);
        memcpy(v + shift, s->v, s->len * sizeof(double));
        memcpy(ok + shift, s->ok, s->len);
        s->v = v;
        s->ok = ok;
        s->off = i;
        s->len += shift;
        s->cap = cap;
        return;
    } else if (i - s->off >= s->cap) {
        size_t need = i - s->off + 1, cap = s->cap * 2;
        if (cap < need)
            cap = need;
        if (cap > o->st->n - s->off)
            cap = o->st->n - s->off;
        s->v = tsdb_arena_realloc(o->c->a, s->v, s->cap * sizeof(double), cap * sizeof(double));
        uint8_t *ok = tsdb_arena_calloc(o->c->a, cap, 1);
        memcpy(ok, s->ok, s->cap);
        s->ok = ok;
        s->cap = cap;
    }
    if (i - s->off >= s->len)
        s->len = i - s->off + 1;
}

int query__out_put(query_out *o, size_t idx, size_t i, double v)
{
    query_vseries *s = &o->s[idx];
    if (query__ok(s, i))
        return query__errf(o->c, TSDB_EEXEC,
                           "vector cannot contain metrics with the same labelset");
    out_cover(o, s, i);
    s->ok[i - s->off] = 1;
    s->v[i - s->off] = v;
    return 0;
}

void query__out_add(query_out *o, size_t idx, size_t i, double v)
{
    query_vseries *s = &o->s[idx];
    if (query__ok(s, i)) {
        s->v[i - s->off] += v;
        return;
    }
    out_cover(o, s, i);
    s->ok[i - s->off] = 1;
    s->v[i - s->off] = v;
}

int query__out_finish(query_out *o, query_value *out)
{
    size_t n = 0, pts = 0;
    query_vseries *vs = tsdb_arena_alloc(o->c->a, (o->n ? o->n : 1) * sizeof *vs);
    for (size_t k = 0; k < o->n; k++) {
        size_t cnt = 0;
        for (size_t i = 0; i < o->s[k].len; i++)
            cnt += o->s[k].ok[i];
        if (cnt) {
            vs[n++] = o->s[k];
            pts += cnt;
        }
    }
    query__out_fini(o);
    memset(out, 0, sizeof *out);
    out->kind = QUERY_V_VECTOR;
    out->vs = vs;
    out->n_vs = n;
    out->held = pts;
    return query__account(o->c, pts);
}

/* ---- Labels -----------------------------------------------------------------------------------
 */

int query__names_has(const tsdb_str *names, size_t n, tsdb_str name)
{
    for (size_t i = 0; i < n; i++)
        if (tsdb_str_eq(names[i], name))
            return 1;
    return 0;
}

static tsdb_labels labels_filter(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n,
                                 int keep, int drop_name)
{
    size_t cnt = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = query__names_has(names, n, l.v[i].name);
        int take = keep ? in : !in;
        if (drop_name && tsdb_str_eq(l.v[i].name, query__name_label))
            take = 0;
        cnt += (size_t)take;
    }
    if (cnt == l.n)
        return l;
    tsdb_label *v = tsdb_arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = query__names_has(names, n, l.v[i].name);
        int take = keep ? in : !in;
        if (drop_name && tsdb_str_eq(l.v[i].name, query__name_label))
            take = 0;
        if (take)
            v[k++] = l.v[i];
    }
    return (tsdb_labels){v, k};
}

tsdb_labels query__labels_drop_name(query_eval_ctx *c, tsdb_labels l)
{
    return labels_filter(c, l, NULL, 0, 0, 1);
}

tsdb_labels query__labels_keep(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n)
{
    return labels_filter(c, l, names, n, 1, 0);
}

tsdb_labels query__labels_del(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n,
                              int drop_name)
{
    return labels_filter(c, l, names, n, 0, drop_name);
}

tsdb_labels query__labels_set(query_eval_ctx *c, tsdb_labels l, tsdb_str name, tsdb_str value)
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

uint64_t query__sig(query_eval_ctx *c, tsdb_labels l, const tsdb_str *names, size_t n, int on)
{
    c->hbuf.len = 0;
    for (size_t i = 0; i < l.n; i++) {
        int in = query__names_has(names, n, l.v[i].name);
        if (on ? in : (!in && !tsdb_str_eq(l.v[i].name, query__name_label)))
            sig_add(&c->hbuf, &l.v[i]);
    }
    return tsdb_hash(c->hbuf.p ? (const void *)c->hbuf.p : "", c->hbuf.len);
}

uint64_t query__labels_hash(query_eval_ctx *c, tsdb_labels l)
{
    c->hbuf.len = 0;
    for (size_t i = 0; i < l.n; i++)
        sig_add(&c->hbuf, &l.v[i]);
    return tsdb_hash(c->hbuf.p ? (const void *)c->hbuf.p : "", c->hbuf.len);
}

const char *query__labels_str(query_eval_ctx *c, tsdb_labels l)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_putc(&b, '{');
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            tsdb_buf_puts(&b, ", ");
        tsdb_buf_put(&b, l.v[i].name.p, l.v[i].name.len);
        tsdb_buf_putc(&b, '=');
        query__quote(&b, l.v[i].value); /* Go's strconv.Quote, as labels.String() */
    }
    tsdb_buf_putc(&b, '}');
    char *s = tsdb_arena_strndup(c->a, (const char *)b.p, b.len);
    tsdb_buf_fini(&b);
    return s;
}

/* ---- Numbers ----------------------------------------------------------------------------------
 */

tsdb_str query__fmt_float(query_eval_ctx *c, double v)
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

double query__quantile(double q, double *v, size_t n)
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
