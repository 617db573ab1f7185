/* api/h_meta.c -- /api/v1/series, /api/v1/labels, /api/v1/label/<name>/values, /api/v1/metadata.
 *
 * start/end default to all time; match[] selectors are parsed with the PromQL selector parser
 * and each must hold a matcher that does not match the empty string (Prometheus' rule, which
 * stops "match everything" by accident). Results from several match[] are merged: sorted,
 * unique. limit (0 = none) truncates and adds a warning, as newer Prometheus versions do.
 * Metadata comes from remote-write requests (api__meta_put) and lives in a small process-wide
 * table.
 */
#include "api/http.h"

#include <stdlib.h>
#include <string.h>

/* ---- Shared parameters
 * ---------------------------------------------------------------------------- */

int api__parse_matches(api_req *r, api_resp *w, api_matchset **out, size_t *n_out, int required)
{
    tsdb_str *vals;
    size_t n = api__params_all(&r->params, "match[]", r->arena, &vals);
    if (n == 0 && required) {
        api__resp_error(w, 400, "bad_data", "no match[] parameter provided");
        return -1;
    }
    api_matchset *sets = tsdb_arena_calloc(r->arena, n ? n : 1, sizeof *sets);
    for (size_t i = 0; i < n; i++) {
        tsdb_err e = {0};
        int rc =
            query_parse_selector(r->arena, vals[i].p, vals[i].len, &sets[i].ms, &sets[i].n, &e);
        if (rc != TSDB_OK) {
            api__resp_error(w, 400, "bad_data", "invalid parameter \"match[]\": %s",
                            e.msg[0] ? e.msg : tsdb_strerror(rc));
            return -1;
        }
        int nonempty = 0;
        for (size_t k = 0; k < sets[i].n; k++)
            if (!tsdb_matcher_matches(sets[i].ms[k], (tsdb_str){"", 0}))
                nonempty = 1;
        if (!nonempty) {
            api__resp_error(w, 400, "bad_data",
                            "match[] must contain at least one non-empty matcher");
            return -1;
        }
    }
    *out = sets;
    *n_out = n;
    return 0;
}

int api__parse_range_params(api_req *r, api_resp *w, int64_t *start, int64_t *end)
{
    *start = API_TIME_MIN_MS;
    *end = API_TIME_MAX_MS;
    static const char *const names[] = {"start", "end"};
    int64_t *dst[] = {start, end};
    for (int i = 0; i < 2; i++) {
        const tsdb_str *p = api__params_get(&r->params, names[i]);
        if (!p || p->len == 0)
            continue;
        tsdb_err e;
        if (api__parse_time(*p, dst[i], &e) != TSDB_OK) {
            api__resp_error(w, 400, "bad_data", "invalid parameter \"%s\": %s", names[i], e.msg);
            return -1;
        }
    }
    if (*end < *start) {
        api__resp_error(w, 400, "bad_data", "end timestamp must not be before start time");
        return -1;
    }
    return 0;
}

static int parse_limit(api_req *r, api_resp *w, size_t *limit)
{
    *limit = 0;
    const tsdb_str *p = api__params_get(&r->params, "limit");
    if (!p || p->len == 0)
        return 0;
    char *end;
    long long v = strtoll(p->p, &end, 10);
    if (end != p->p + p->len || v < 0) {
        api__resp_error(w, 400, "bad_data", "limit must be a non-negative integer");
        return -1;
    }
    *limit = (size_t)v;
    return 0;
}

static int open_querier(api_ctx *c, api_resp *w, int64_t start, int64_t end, tsdb_querier **q)
{
    tsdb_err e = {0};
    int rc = tsdb_querier_open(c->db, start, end, q, &e);
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc == TSDB_EINVAL ? TSDB_EIO : rc, e.msg);
        return -1;
    }
    return 0;
}

static int str_cmp_q(const void *a, const void *b)
{
    return tsdb_str_cmp(*(const tsdb_str *)a, *(const tsdb_str *)b);
}

/* Sorts and de-duplicates strings in place; returns the new count. */
static size_t uniq_strs(tsdb_str *v, size_t n)
{
    if (n < 2)
        return n;
    qsort(v, n, sizeof *v, str_cmp_q);
    size_t o = 1;
    for (size_t i = 1; i < n; i++)
        if (!tsdb_str_eq(v[i], v[o - 1]))
            v[o++] = v[i];
    return o;
}

static const char *const limit_warning[] = {"results truncated due to limit"};

/* A success envelope around an array of label values or label sets, produced in parts (many
 * thousands of series make a large body); the items live in the request arena. */
typedef struct list_stream {
    api_json j;
    const tsdb_str *strs;      /* either strs ... */
    const tsdb_labels *labels; /* ... or label sets */
    size_t n, i;
    int truncated, phase; /* phase 0 head, 1 items, 2 done */
} list_stream;

static size_t list_fill(void *ctx, tsdb_buf *out, size_t want)
{
    list_stream *ls = ctx;
    size_t start = out->len;
    api_json *j = &ls->j;
    j->b = out;
    if (ls->phase == 0) {
        api__json_obj_begin(j);
        api__json_key(j, "status");
        api__json_str(j, "success");
        api__json_key(j, "data");
        api__json_arr_begin(j);
        ls->phase = 1;
    }
    while (ls->phase == 1 && out->len - start < want) {
        if (ls->i < ls->n) {
            if (ls->labels)
                api__json_labels(j, ls->labels[ls->i++]);
            else
                api__json_strn(j, ls->strs[ls->i++]);
            continue;
        }
        api__json_arr_end(j);
        api__resp_json_end(NULL, j, limit_warning, ls->truncated ? 1 : 0);
        ls->phase = 2;
    }
    return out->len - start;
}

static void answer_list(api_req *r, api_resp *w, const tsdb_str *strs, const tsdb_labels *labels,
                        size_t n, size_t limit)
{
    list_stream *ls = tsdb_arena_calloc(r->arena, 1, sizeof *ls);
    ls->truncated = limit > 0 && n > limit;
    ls->n = ls->truncated ? limit : n;
    ls->strs = strs;
    ls->labels = labels;
    w->body.len = 0;
    w->status = 200;
    w->content_type = "application/json";
    api__resp_stream(r, w, list_fill, ls, NULL);
}

static void answer_strs(api_req *r, api_resp *w, const tsdb_str *v, size_t n, size_t limit)
{
    answer_list(r, w, v, NULL, n, limit);
}

/* Appends src[0..n) to a growing arena array. */
static void strs_append(tsdb_arena *a, tsdb_str **v, size_t *n, size_t *cap, const tsdb_str *src,
                        size_t ns)
{
    if (ns == 0)
        return;
    if (*n + ns > *cap) {
        size_t ncap = (*n + ns) * 2 + 16;
        *v = tsdb_arena_realloc(a, *v, *cap * sizeof **v, ncap * sizeof **v);
        *cap = ncap;
    }
    memcpy(*v + *n, src, ns * sizeof *src);
    *n += ns;
}

/* ---- /api/v1/series
 * ------------------------------------------------------------------------------ */

static int labels_cmp_q(const void *a, const void *b)
{
    return tsdb_labels_cmp(*(const tsdb_labels *)a, *(const tsdb_labels *)b);
}

void api__h_series(api_ctx *c, api_req *r, api_resp *w)
{
    api_matchset *sets;
    size_t n_sets, limit;
    int64_t start, end;
    if (api__parse_matches(r, w, &sets, &n_sets, 1) < 0 ||
        api__parse_range_params(r, w, &start, &end) < 0 || parse_limit(r, w, &limit) < 0)
        return;
    tsdb_querier *q;
    if (open_querier(c, w, start, end, &q) < 0)
        return;
    tsdb_labels *all = NULL;
    size_t n = 0, cap = 0;
    int rc = TSDB_OK;
    tsdb_err e = {0};
    for (size_t i = 0; i < n_sets && rc == TSDB_OK; i++) {
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
            /* Only series with a sample inside [start, end] count, as in Prometheus. */
            int has = tsdb_iter_any(it);
            if (has < 0) {
                rc = has;
                break;
            }
            if (has == 0)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                all = tsdb_arena_realloc(r->arena, all, cap * sizeof *all, ncap * sizeof *all);
                cap = ncap;
            }
            all[n++] = tsdb_labels_copy(l, r->arena);
            /* One set comes sorted and unique: one past the limit shows the truncation. */
            if (n_sets == 1 && limit > 0 && n > limit)
                break;
        }
    }
    tsdb_querier_close(q);
    if (rc < 0) {
        api__resp_error_code(w, rc == TSDB_EINVAL ? TSDB_EIO : rc, e.msg);
        return;
    }
    if (n_sets > 1 && n > 1) {
        qsort(all, n, sizeof *all, labels_cmp_q);
        size_t o = 1;
        for (size_t i = 1; i < n; i++)
            if (!tsdb_labels_equal(all[i], all[o - 1]))
                all[o++] = all[i];
        n = o;
    }
    answer_list(r, w, NULL, all, n, limit);
}

/* ---- /api/v1/labels and /api/v1/label/<name>/values
 * ---------------------------------------------- */

/* Answers /api/v1/labels (name == NULL) or the values of one label: the names or values of the
 * series matching any match[] set (all series without match[]) in [start, end], sorted, unique,
 * cut at limit. */
static void answer_label_strs(api_ctx *c, api_req *r, api_resp *w, const tsdb_str *name)
{
    api_matchset *sets;
    size_t n_sets, limit;
    int64_t start, end;
    if (api__parse_matches(r, w, &sets, &n_sets, 0) < 0 ||
        api__parse_range_params(r, w, &start, &end) < 0 || parse_limit(r, w, &limit) < 0)
        return;
    tsdb_querier *q;
    if (open_querier(c, w, start, end, &q) < 0)
        return;
    tsdb_str *all = NULL;
    size_t n = 0, cap = 0;
    int rc = TSDB_OK;
    tsdb_err e = {0};
    for (size_t i = 0; i < (n_sets ? n_sets : 1) && rc == TSDB_OK; i++) {
        const tsdb_matcher *const *ms = n_sets ? (const tsdb_matcher *const *)sets[i].ms : NULL;
        size_t nm = n_sets ? sets[i].n : 0;
        tsdb_str *v;
        size_t nv;
        rc = name ? tsdb_label_values(q, *name, ms, nm, r->arena, &v, &nv, &e)
                  : tsdb_label_names(q, ms, nm, r->arena, &v, &nv, &e);
        if (rc == TSDB_OK)
            strs_append(r->arena, &all, &n, &cap, v, nv);
    }
    tsdb_querier_close(q);
    if (rc < 0) {
        api__resp_error_code(w, rc == TSDB_EINVAL ? TSDB_EIO : rc, e.msg);
        return;
    }
    n = uniq_strs(all, n);
    answer_strs(r, w, all, n, limit);
}

void api__h_labels(api_ctx *c, api_req *r, api_resp *w)
{
    answer_label_strs(c, r, w, NULL);
}

/* Undoes Prometheus' "U__" escaping of UTF-8 label names in URLs: "__" is "_", "_<hex>_" is a
 * code point, anything else is literal. Returns 0, or -1 if malformed. */
static int unescape_name(tsdb_arena *a, tsdb_str in, tsdb_str *out)
{
    if (in.len < 3 || memcmp(in.p, "U__", 3) != 0) {
        *out = in;
        return 0;
    }
    char *d = tsdb_arena_alloc(a, in.len * 4 + 1);
    size_t o = 0;
    for (size_t i = 3; i < in.len; i++) {
        if (in.p[i] != '_') {
            d[o++] = in.p[i];
            continue;
        }
        if (i + 1 < in.len && in.p[i + 1] == '_') {
            d[o++] = '_';
            i++;
            continue;
        }
        size_t k = i + 1;
        uint32_t cp = 0;
        while (k < in.len && in.p[k] != '_') {
            char ch = in.p[k];
            int hv = ch >= '0' && ch <= '9'   ? ch - '0'
                     : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                     : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                              : -1;
            if (hv < 0 || cp > 0x10FFFF)
                return -1;
            cp = cp * 16 + (uint32_t)hv;
            k++;
        }
        if (k >= in.len || k == i + 1 || cp > 0x10FFFF || cp == 0)
            return -1;
        if (cp < 0x80) {
            d[o++] = (char)cp;
        } else if (cp < 0x800) {
            d[o++] = (char)(0xC0 | cp >> 6);
            d[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            d[o++] = (char)(0xE0 | cp >> 12);
            d[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            d[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            d[o++] = (char)(0xF0 | cp >> 18);
            d[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            d[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            d[o++] = (char)(0x80 | (cp & 0x3F));
        }
        i = k;
    }
    d[o] = '\0';
    out->p = d;
    out->len = o;
    return 0;
}

void api__h_label_values(api_ctx *c, api_req *r, api_resp *w)
{
    tsdb_str name;
    if (unescape_name(r->arena, r->path_arg, &name) < 0 || !tsdb_label_name_valid(name)) {
        api__resp_error(w, 400, "bad_data", "invalid label name: \"%.*s\"",
                        (int)(r->path_arg.len > 200 ? 200 : r->path_arg.len), r->path_arg.p);
        return;
    }
    answer_label_strs(c, r, w, &name);
}

/* ---- /api/v1/metadata
 * ------------------------------------------------------------------------------ */

/* Metric metadata seen in remote-write requests: metric name -> latest (type, help, unit).
 * A process-wide table (there is one server per process); bounded in size. */
#define META_MAX 100000

typedef struct meta_entry {
    char *metric, *type, *help, *unit; /* heap, owned by the table */
} meta_entry;

static pthread_mutex_t meta_mu = PTHREAD_MUTEX_INITIALIZER;
static meta_entry *meta_v; /* sorted by metric */
static size_t meta_n, meta_cap;

static int meta_find(const char *metric, size_t len, size_t *pos)
{
    size_t lo = 0, hi = meta_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = tsdb_str_cmp(tsdb_str_c(meta_v[mid].metric), (tsdb_str){metric, len});
        if (cmp == 0) {
            *pos = mid;
            return 1;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

static void set_field(char **dst, tsdb_str s)
{
    if (*dst && strlen(*dst) == s.len && memcmp(*dst, s.p, s.len) == 0)
        return;
    free(*dst);
    *dst = xstrndup(s.p ? s.p : "", s.len);
}

void api__meta_put(const ingest_metadata *m, size_t n)
{
    pthread_mutex_lock(&meta_mu);
    for (size_t i = 0; i < n; i++) {
        if (m[i].metric.len == 0)
            continue;
        size_t pos;
        if (!meta_find(m[i].metric.p, m[i].metric.len, &pos)) {
            if (meta_n >= META_MAX)
                continue;
            if (meta_n == meta_cap) {
                meta_cap = meta_cap ? meta_cap * 2 : 64;
                meta_v = xrealloc(meta_v, meta_cap * sizeof *meta_v);
            }
            memmove(meta_v + pos + 1, meta_v + pos, (meta_n - pos) * sizeof *meta_v);
            memset(&meta_v[pos], 0, sizeof *meta_v);
            meta_v[pos].metric = xstrndup(m[i].metric.p, m[i].metric.len);
            meta_n++;
        }
        set_field(&meta_v[pos].type, m[i].type);
        set_field(&meta_v[pos].help, m[i].help);
        set_field(&meta_v[pos].unit, m[i].unit);
    }
    pthread_mutex_unlock(&meta_mu);
}

void api__meta_clear(void)
{
    pthread_mutex_lock(&meta_mu);
    for (size_t i = 0; i < meta_n; i++) {
        free(meta_v[i].metric);
        free(meta_v[i].type);
        free(meta_v[i].help);
        free(meta_v[i].unit);
    }
    free(meta_v);
    meta_v = NULL;
    meta_n = meta_cap = 0;
    pthread_mutex_unlock(&meta_mu);
}

void api__h_metadata(api_ctx *c, api_req *r, api_resp *w)
{
    size_t limit;
    if (parse_limit(r, w, &limit) < 0)
        return;
    const tsdb_str *metric = api__params_get(&r->params, "metric");
    api_json j;
    api__resp_json_begin(w, &j);
    if (c->opts.scraper) {
        ingest_scraper_metadata_json(c->opts.scraper, metric ? *metric : (tsdb_str){"", 0},
                                     limit ? (long)limit : -1, &w->body);
        api__json_raw(&j, "");
        api__resp_json_end(w, &j, NULL, 0);
        return;
    }
    api__json_obj_begin(&j);
    pthread_mutex_lock(&meta_mu);
    size_t from = 0, to = meta_n, written = 0;
    if (metric && metric->len > 0) {
        size_t pos;
        if (meta_find(metric->p, metric->len, &pos)) {
            from = pos;
            to = pos + 1;
        } else {
            from = to = 0;
        }
    }
    for (size_t i = from; i < to && (limit == 0 || written < limit); i++, written++) {
        api__json_key(&j, meta_v[i].metric);
        api__json_arr_begin(&j);
        api__json_obj_begin(&j);
        api__json_key(&j, "type");
        api__json_str(&j, meta_v[i].type && *meta_v[i].type ? meta_v[i].type : "unknown");
        api__json_key(&j, "help");
        api__json_str(&j, meta_v[i].help ? meta_v[i].help : "");
        api__json_key(&j, "unit");
        api__json_str(&j, meta_v[i].unit ? meta_v[i].unit : "");
        api__json_obj_end(&j);
        api__json_arr_end(&j);
    }
    pthread_mutex_unlock(&meta_mu);
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}
