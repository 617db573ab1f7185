/* api/h_federate.c -- GET /federate?match[]=...: the latest sample of every matching series.
 *
 * The text exposition format (0.0.4) another Prometheus scrapes with honor_labels: per metric
 * name a "# TYPE name untyped" line, then "name{labels} value timestamp_ms" lines. A series takes
 * part when its newest sample within the lookback delta (default 5 min) is not a staleness
 * marker, as in Prometheus' web/federate.go. Values use Go's 'g' format like expfmt.
 */
#include "api/http.h"

#include <stdlib.h>
#include <string.h>

typedef struct fed_series {
    tsdb_labels labels;
    tsdb_sample s;
} fed_series;

static int fed_cmp(const void *a, const void *b)
{
    const fed_series *x = a, *y = b;
    tsdb_str nx = tsdb_labels_get(x->labels, TSDB_STR("__name__"));
    tsdb_str ny = tsdb_labels_get(y->labels, TSDB_STR("__name__"));
    int c = tsdb_str_cmp(nx, ny);
    return c ? c : tsdb_labels_cmp(x->labels, y->labels);
}

static void put_label_value(tsdb_buf *b, tsdb_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.p[i];
        if (ch == '\\')
            tsdb_buf_puts(b, "\\\\");
        else if (ch == '"')
            tsdb_buf_puts(b, "\\\"");
        else if (ch == '\n')
            tsdb_buf_puts(b, "\\n");
        else
            tsdb_buf_putc(b, (unsigned char)ch);
    }
}

void api__h_federate(api_ctx *c, api_req *r, api_resp *w)
{
    api_matchset *sets;
    size_t n_sets;
    if (api__parse_matches(r, w, &sets, &n_sets, 0) < 0)
        return;
    int64_t now = tsdb_now_ms();
    int64_t lookback = c->opts.query.lookback_ms > 0 ? c->opts.query.lookback_ms : 300000;
    size_t cap = 64, n = 0;
    fed_series *v = tsdb_arena_alloc(r->arena, cap * sizeof *v);
    for (size_t i = 0; i < n_sets; i++) {
        tsdb_querier *q;
        tsdb_err e = {0};
        int rc = tsdb_querier_open(c->db, now - lookback, now, &q, &e);
        if (rc != TSDB_OK) {
            api__resp_error_code(w, TSDB_EIO, e.msg);
            return;
        }
        tsdb_series_set *ss;
        rc = tsdb_querier_select(q, (const tsdb_matcher *const *)sets[i].ms, sets[i].n, &ss, &e);
        while (rc == TSDB_OK) {
            tsdb_labels l;
            tsdb_iter *it;
            int k = tsdb_series_next(ss, &l, &it);
            if (k <= 0) {
                rc = k;
                break;
            }
            tsdb_sample s, last;
            int have = 0;
            while ((k = tsdb_iter_next(it, &s)) > 0) {
                last = s;
                have = 1;
            }
            if (k < 0) {
                rc = k;
                break;
            }
            if (!have || tsdb_is_stale_nan(last.v))
                continue;
            if (n == cap) {
                v = tsdb_arena_realloc(r->arena, v, cap * sizeof *v, 2 * cap * sizeof *v);
                cap *= 2;
            }
            v[n].labels = tsdb_labels_copy(l, r->arena);
            v[n].s = last;
            n++;
        }
        tsdb_querier_close(q);
        if (rc < 0) {
            api__resp_error_code(w, rc == TSDB_EINVAL ? TSDB_EIO : rc, e.msg);
            return;
        }
    }
    qsort(v, n, sizeof *v, fed_cmp);
    w->status = 200;
    w->content_type = "text/plain; version=0.0.4; charset=utf-8";
    tsdb_buf *b = &w->body;
    b->len = 0;
    tsdb_str prev = {NULL, 0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && tsdb_labels_equal(v[i].labels, v[i - 1].labels))
            continue;
        tsdb_str name = tsdb_labels_get(v[i].labels, TSDB_STR("__name__"));
        if (!prev.p || !tsdb_str_eq(prev, name)) {
            tsdb_buf_puts(b, "# TYPE ");
            tsdb_buf_put(b, name.p, name.len);
            tsdb_buf_puts(b, " untyped\n");
            prev = name;
        }
        tsdb_buf_put(b, name.p, name.len);
        int first = 1;
        for (size_t k = 0; k < v[i].labels.n; k++) {
            const tsdb_label *lb = &v[i].labels.v[k];
            if (lb->name.len == 8 && !memcmp(lb->name.p, "__name__", 8))
                continue;
            tsdb_buf_putc(b, first ? '{' : ',');
            first = 0;
            tsdb_buf_put(b, lb->name.p, lb->name.len);
            tsdb_buf_puts(b, "=\"");
            put_label_value(b, lb->value);
            tsdb_buf_putc(b, '"');
        }
        if (!first)
            tsdb_buf_putc(b, '}');
        char num[32];
        api__fmt_float_g(v[i].s.v, num);
        tsdb_buf_printf(b, " %s %lld\n", num, (long long)v[i].s.t);
    }
}
