/* api/route.c -- the route table, dispatch, the response envelope and the server context.
 *
 * Routes are a static table {methods, path, handler, name}; a pattern may hold one "*" segment
 * (the label name of /api/v1/label/<name>/values), captured into api_req.path_arg. Every
 * /api/v1 answer, including 404 and 405, uses Prometheus' JSON envelope so Grafana can show the
 * error; other unknown paths get a plain-text 404 like Prometheus.
 */
#include "api/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- Route table ------------------------------------------------------------------------------
 */

enum { M_GET = 1, M_POST = 2, M_HEAD = 4, M_PUT = 8, M_DELETE = 16 };

enum {
    R_ADMIN = 1, /* needs --web.enable-admin-api */
    R_EARLY = 2, /* answered before the storage is open (the rest get 503) */
};

typedef struct api_route {
    unsigned methods;
    const char *path; /* one '*' segment at most */
    api_handler_fn fn;
    int flags; /* R_ADMIN, R_EARLY */
} api_route;

static const api_route routes[] = {
    {M_GET | M_POST, "/api/v1/query", api__h_query, 0},
    {M_GET | M_POST, "/api/v1/query_range", api__h_query_range, 0},
    {M_GET | M_POST, "/api/v1/format_query", api__h_format_query, 0},
    {M_GET | M_POST, "/api/v1/series", api__h_series, 0},
    {M_GET | M_POST, "/api/v1/labels", api__h_labels, 0},
    {M_GET, "/api/v1/label/*/values", api__h_label_values, 0},
    {M_GET, "/api/v1/metadata", api__h_metadata, 0},
    {M_GET | M_POST, "/api/v1/query_exemplars", api__h_exemplars, 0},
    {M_GET, "/api/v1/rules", api__h_rules, 0},
    {M_GET, "/api/v1/alerts", api__h_alerts, 0},
    {M_GET, "/api/v1/targets", api__h_targets, 0},
    {M_GET, "/api/v1/alertmanagers", api__h_alertmanagers, 0},
    {M_POST, "/api/v1/write", api__h_write, 0},
    {M_POST, "/api/v1/read", api__h_read, 0},
    {M_GET, "/api/v1/status/buildinfo", api__h_buildinfo, R_EARLY},
    {M_GET, "/api/v1/status/runtimeinfo", api__h_runtimeinfo, R_EARLY},
    {M_GET, "/api/v1/status/flags", api__h_flags, R_EARLY},
    {M_GET, "/api/v1/status/config", api__h_config, R_EARLY},
    {M_GET, "/api/v1/status/tsdb", api__h_tsdb_status, 0},
    {M_GET, "/api/v1/status/walreplay", api__h_walreplay, R_EARLY},
    {M_POST | M_PUT, "/api/v1/admin/tsdb/delete_series", api__h_admin_delete, R_ADMIN},
    {M_POST | M_PUT, "/api/v1/admin/tsdb/clean_tombstones", api__h_admin_clean, R_ADMIN},
    {M_POST | M_PUT, "/api/v1/admin/tsdb/snapshot", api__h_admin_snapshot, R_ADMIN},
    {M_GET | M_HEAD, "/-/healthy", api__h_healthy, R_EARLY},
    {M_GET | M_HEAD, "/-/ready", api__h_ready, R_EARLY},
    {M_POST | M_PUT, "/-/reload", api__h_reload, 0},
    {M_GET, "/metrics", api__h_metrics, R_EARLY},
    {M_GET, "/federate", api__h_federate, 0},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
_Static_assert(N_ROUTES < API_N_ROUTES_MAX, "route table larger than the metrics table");

const int api__codes[API_N_CODES] = {200, 204, 400, 401, 404, 405, 413,
                                     415, 422, 429, 499, 500, 503};
const double api__qbuckets[API_N_QBUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60};

static unsigned method_bit(const char *m)
{
    if (!strcmp(m, "GET"))
        return M_GET;
    if (!strcmp(m, "POST"))
        return M_POST;
    if (!strcmp(m, "HEAD"))
        return M_HEAD;
    if (!strcmp(m, "PUT"))
        return M_PUT;
    if (!strcmp(m, "DELETE"))
        return M_DELETE;
    return 0;
}

/* Matches path against a pattern; a '*' matches one non-empty segment, captured in arg. */
static int match_path(const char *pat, tsdb_str path, tsdb_str *arg)
{
    size_t i = 0;
    const char *p = pat;
    while (*p) {
        if (*p == '*') {
            size_t s = i;
            while (i < path.len && path.p[i] != '/')
                i++;
            if (i == s)
                return 0;
            arg->p = path.p + s;
            arg->len = i - s;
            p++;
            continue;
        }
        if (i >= path.len || path.p[i] != *p)
            return 0;
        i++;
        p++;
    }
    return i == path.len;
}

static int code_index(int status)
{
    for (int i = 0; i < API_N_CODES; i++)
        if (api__codes[i] == status)
            return i;
    return API_N_CODES - 1;
}

/* Route name for metrics (the pattern itself, like Prometheus' handler label). */
const char *api__route_name(size_t i)
{
    return i < N_ROUTES ? routes[i].path : "other";
}
size_t api__route_count(void)
{
    return N_ROUTES;
}

static int is_api_path(tsdb_str p)
{
    return p.len >= 8 && memcmp(p.p, "/api/v1/", 8) == 0;
}

/* CORS as Prometheus' default (--web.cors.origin '.*'): API answers name the request's Origin,
 * and OPTIONS preflights are answered directly. */
static void cors(const api_req *r, api_resp *w)
{
    const tsdb_str *origin = api__req_header(r, "Origin");
    if (!origin || origin->len == 0 || !is_api_path(r->path))
        return;
    api__resp_header(w, "Access-Control-Allow-Origin",
                     tsdb_arena_strndup(r->arena, origin->p, origin->len));
    api__resp_header(w, "Access-Control-Allow-Headers",
                     "Accept, Authorization, Content-Type, Origin");
    api__resp_header(w, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    api__resp_header(w, "Access-Control-Expose-Headers", "Date");
    api__resp_header(w, "Vary", "Origin");
}

void api__dispatch(api_ctx *c, api_req *r, api_resp *w)
{
    size_t ri = API_N_ROUTES_MAX - 1;
    int path_hit = 0;
    unsigned mb = method_bit(r->method);
    cors(r, w);
    if (!strcmp(r->method, "OPTIONS") && is_api_path(r->path)) {
        w->status = 204;
        goto out;
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        tsdb_str arg = {NULL, 0};
        if (!match_path(routes[i].path, r->path, &arg))
            continue;
        path_hit = 1;
        ri = i;
        if (!(routes[i].methods & mb))
            continue;
        r->path_arg = arg;
        if (!(routes[i].flags & R_EARLY) &&
            !atomic_load_explicit(&c->db_ready, memory_order_acquire)) {
            api__resp_text(w, 503, "text/plain; charset=utf-8", "Service Unavailable\n");
            goto out;
        }
        if ((routes[i].flags & R_ADMIN) && !c->opts.enable_admin) {
            api__resp_error(w, 503, "unavailable", "Admin APIs disabled");
            goto out;
        }
        routes[i].fn(c, r, w);
        if (w->status == 0)
            api__resp_error(w, 500, "internal", "handler produced no response");
        goto out;
    }
    if (path_hit)
        api__resp_error(w, 405, "bad_data", "method %s not allowed", r->method);
    else if (is_api_path(r->path))
        api__resp_error(w, 404, "not_found", "unknown API endpoint %.*s",
                        (int)(r->path.len > 200 ? 200 : r->path.len), r->path.p);
    else
        api__resp_text(w, 404, "text/plain; charset=utf-8", "404 page not found\n");
out:
    atomic_fetch_add(&c->m.http[ri][code_index(w->status)], 1);
}

/* ---- Context -----------------------------------------------------------------------------------
 */

void api__ctx_init(api_ctx *c, tsdb *db, const api_opts *o)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    if (o)
        c->opts = *o;
    if (c->opts.max_concurrent_queries == 0)
        c->opts.max_concurrent_queries = 20;
    c->start_ms = tsdb_now_ms();
    pthread_mutex_init(&c->q_mu, NULL);
    pthread_cond_init(&c->q_cv, NULL);
    if (db)
        api__ctx_attach(c, db);
}

void api__ctx_attach(api_ctx *c, tsdb *db)
{
    c->db = db;
    atomic_store_explicit(&c->db_ready, 1, memory_order_release);
}

void api__ctx_fini(api_ctx *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->q_mu);
    pthread_cond_destroy(&c->q_cv);
}

int api__query_slot_take(api_ctx *c, const api_req *r)
{
    int rc = TSDB_OK;
    int64_t limit_ms = c->opts.query.timeout_ms > 0 ? c->opts.query.timeout_ms : 120000;
    int64_t deadline = tsdb_mono_ns() + limit_ms * 1000000;
    pthread_mutex_lock(&c->q_mu);
    while (c->q_active >= c->opts.max_concurrent_queries) {
        if (r->cancel && *r->cancel) {
            rc = TSDB_ECANCELED;
            break;
        }
        if (tsdb_mono_ns() > deadline) {
            rc = TSDB_ETIMEOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->q_cv, &c->q_mu, &ts);
    }
    if (rc == TSDB_OK)
        c->q_active++;
    pthread_mutex_unlock(&c->q_mu);
    return rc;
}

void api__query_slot_give(api_ctx *c)
{
    pthread_mutex_lock(&c->q_mu);
    c->q_active--;
    pthread_cond_signal(&c->q_cv);
    pthread_mutex_unlock(&c->q_mu);
}

/* ---- Responses ---------------------------------------------------------------------------------
 */

void api__resp_init(api_resp *w)
{
    memset(w, 0, sizeof *w);
    tsdb_buf_init(&w->body);
}

void api__resp_fini(api_resp *w)
{
    if (!w)
        return;
    if (w->fill && w->fill_done)
        w->fill_done(w->fill_ctx);
    w->fill = NULL;
    w->fill_done = NULL;
    tsdb_buf_fini(&w->body);
}

void api__resp_stream(const api_req *r, api_resp *w, api_fill_fn fill, void *ctx,
                      void (*done)(void *ctx))
{
    if (r->can_stream) {
        w->fill = fill;
        w->fill_ctx = ctx;
        w->fill_done = done;
        return;
    }
    /* Each call appends at least one byte until the end, so this ends with the body. */
    while (fill(ctx, &w->body, API_STREAM_CHUNK) > 0)
        ;
    if (done)
        done(ctx);
}

void api__resp_header(api_resp *w, const char *name, const char *value)
{
    if (w->n_headers >= API_RESP_HEADERS)
        return;
    w->headers[w->n_headers].name = tsdb_str_c(name);
    w->headers[w->n_headers].value = tsdb_str_c(value);
    w->n_headers++;
}

const tsdb_str *api__req_header(const api_req *r, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name.len == nl && strncasecmp(r->headers[i].name.p, name, nl) == 0)
            return &r->headers[i].value;
    return NULL;
}

void api__resp_json_begin(api_resp *w, api_json *j)
{
    w->body.len = 0;
    w->status = 200;
    w->content_type = "application/json";
    api__json_init(j, &w->body);
    api__json_obj_begin(j);
    api__json_key(j, "status");
    api__json_str(j, "success");
    api__json_key(j, "data");
}

void api__resp_json_end(api_resp *w, api_json *j, const char *const *warnings, size_t n_warnings)
{
    (void)w;
    if (n_warnings > 0) {
        api__json_key(j, "warnings");
        api__json_arr_begin(j);
        for (size_t i = 0; i < n_warnings; i++)
            api__json_str(j, warnings[i]);
        api__json_arr_end(j);
    }
    api__json_obj_end(j);
}

void api__resp_error(api_resp *w, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->body.len = 0;
    w->status = status;
    w->content_type = "application/json";
    api_json j;
    api__json_init(&j, &w->body);
    api__json_obj_begin(&j);
    api__json_key(&j, "status");
    api__json_str(&j, "error");
    api__json_key(&j, "errorType");
    api__json_str(&j, type);
    api__json_key(&j, "error");
    api__json_str(&j, msg);
    api__json_obj_end(&j);
}

void api__resp_error_code(api_resp *w, int code, const char *msg)
{
    if (!msg || !*msg)
        msg = tsdb_strerror(code);
    switch (code) {
    case TSDB_EPARSE:
    case TSDB_EINVAL:
        api__resp_error(w, 400, "bad_data", "%s", msg);
        break;
    case TSDB_EEXEC:
    case TSDB_ELIMIT:
        api__resp_error(w, 422, "execution", "%s", msg);
        break;
    case TSDB_ETIMEOUT:
        api__resp_error(w, 503, "timeout", "%s", msg);
        break;
    case TSDB_ECANCELED:
        api__resp_error(w, 499, "canceled", "%s", msg);
        break;
    case TSDB_ENOTFOUND:
        api__resp_error(w, 404, "not_found", "%s", msg);
        break;
    default:
        api__resp_error(w, 500, "internal", "%s", msg);
        break;
    }
}

void api__resp_text(api_resp *w, int status, const char *content_type, const char *text)
{
    w->body.len = 0;
    w->status = status;
    w->content_type = content_type;
    tsdb_buf_puts(&w->body, text);
}
