/* api/h_admin.c -- health, readiness, reload, /metrics, status endpoints, stubs and admin APIs.
 *
 * buildinfo reports a Prometheus 2.x version ("2.42.0") with Cairn's own version as the
 * revision, and no "features" map, so Grafana treats Cairn as Prometheus and uses the labels API
 * with match[] (PROTOCOLS.md 1.2, 1.4). Rules, alerts, targets and exemplars answer well-formed
 * empty results. The admin endpoints need --web.enable-admin-api (checked in route.c).
 */
#include "api/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"

#define PROM_COMPAT_VERSION "2.42.0"

/* The storage, or NULL while it is still opening (WAL replay). */
static tsdb *ready_db(api_ctx *c)
{
    return atomic_load_explicit(&c->db_ready, memory_order_acquire) ? c->db : NULL;
}

static void rfc3339(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- Health, readiness, reload -----------------------------------------------------------------
 */

void api__h_healthy(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api__resp_text(w, 200, "text/plain; charset=utf-8", "Cairn Server is Healthy.\n");
}

void api__h_ready(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    tsdb_stats st;
    memset(&st, 0, sizeof st);
    tsdb *db = ready_db(c);
    if (db)
        tsdb_stats_get(db, &st);
    if (!db || !st.wal_replayed) {
        api__resp_text(w, 503, "text/plain; charset=utf-8", "Service Unavailable\n");
        return;
    }
    api__resp_text(w, 200, "text/plain; charset=utf-8", "Cairn Server is Ready.\n");
}

int api__reload(api_ctx *c, tsdb_err *err)
{
    int rc = TSDB_OK;
    if (c->opts.reload)
        rc = c->opts.reload(c->opts.reload_ud, err);
    atomic_store(&c->reload_ok, rc == TSDB_OK ? 1 : 0);
    if (rc == TSDB_OK)
        atomic_store(&c->reload_ms, tsdb_now_ms());
    return rc;
}

void api__h_reload(api_ctx *c, api_req *r, api_resp *w)
{
    tsdb_err e = {0};
    int rc = api__reload(c, &e);
    if (rc != TSDB_OK) {
        api__resp_text(w, 500, "text/plain; charset=utf-8",
                       tsdb_arena_sprintf(r->arena, "failed to reload config: %s\n",
                                          e.msg[0] ? e.msg : tsdb_strerror(rc)));
        return;
    }
    api__resp_text(w, 200, "text/plain; charset=utf-8", "");
}

/* ---- /metrics ----------------------------------------------------------------------------------
 */

static void metric_head(tsdb_buf *b, const char *name, const char *type, const char *help)
{
    tsdb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u(tsdb_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    metric_head(b, name, type, help);
    tsdb_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void api__h_metrics(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    tsdb_buf *b = &w->body;
    w->status = 200;
    w->content_type = "text/plain; version=0.0.4; charset=utf-8";
    b->len = 0;

    metric_head(b, "cairn_build_info", "gauge", "Cairn version and Prometheus API level.");
    tsdb_buf_printf(b, "cairn_build_info{version=\"%s\",prometheus_api=\"%s\"} 1\n", CAIRN_VERSION,
                    PROM_COMPAT_VERSION);
    metric_head(b, "process_start_time_seconds", "gauge", "Start time of the process.");
    tsdb_buf_printf(b, "process_start_time_seconds %lld\n", (long long)(c->start_ms / 1000));

    metric_head(b, "cairn_http_requests_total", "counter", "HTTP requests by handler and code.");
    for (size_t i = 0; i < API_N_ROUTES_MAX; i++) {
        if (i >= api__route_count() && i != API_N_ROUTES_MAX - 1)
            continue;
        for (int k = 0; k < API_N_CODES; k++) {
            uint64_t v = atomic_load(&c->m.http[i][k]);
            if (v == 0)
                continue;
            char code[8];
            if (k == API_N_CODES - 1 && api__codes[k] != 503)
                snprintf(code, sizeof code, "other");
            else
                snprintf(code, sizeof code, "%d", api__codes[k]);
            tsdb_buf_printf(b, "cairn_http_requests_total{handler=\"%s\",code=\"%s\"} %llu\n",
                            api__route_name(i), code, (unsigned long long)v);
        }
    }

    metric_u(b, "cairn_remote_write_requests_total", "counter", "Remote-write requests received.",
             atomic_load(&c->m.rw_requests));
    metric_u(b, "cairn_remote_write_decode_errors_total", "counter",
             "Remote-write requests refused as malformed or too large.",
             atomic_load(&c->m.rw_decode_errors));
    metric_u(b, "cairn_remote_write_samples_received_total", "counter",
             "Samples decoded from remote-write requests.", atomic_load(&c->m.rw_samples_received));
    metric_u(b, "cairn_remote_write_samples_appended_total", "counter",
             "Remote-written samples stored.", atomic_load(&c->m.rw_samples_appended));
    metric_head(b, "cairn_remote_write_samples_rejected_total", "counter",
                "Remote-written samples refused, by reason.");
    tsdb_buf_printf(b,
                    "cairn_remote_write_samples_rejected_total{reason=\"out_of_order\"} %llu\n"
                    "cairn_remote_write_samples_rejected_total{reason=\"duplicate\"} %llu\n"
                    "cairn_remote_write_samples_rejected_total{reason=\"too_old\"} %llu\n"
                    "cairn_remote_write_samples_rejected_total{reason=\"invalid\"} %llu\n",
                    (unsigned long long)atomic_load(&c->m.rw_rejected_ooo),
                    (unsigned long long)atomic_load(&c->m.rw_rejected_dup),
                    (unsigned long long)atomic_load(&c->m.rw_rejected_too_old),
                    (unsigned long long)atomic_load(&c->m.rw_rejected_invalid));

    metric_head(b, "cairn_query_duration_seconds", "histogram", "Query evaluation time.");
    static const char *const kinds[] = {"instant", "range"};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < API_N_QBUCKETS; i++) {
            char le[32];
            api__fmt_float(api__qbuckets[i], le);
            tsdb_buf_printf(b, "cairn_query_duration_seconds_bucket{kind=\"%s\",le=\"%s\"} %llu\n",
                            kinds[k], le, (unsigned long long)atomic_load(&c->m.q_bucket[k][i]));
        }
        uint64_t n = atomic_load(&c->m.q_count[k]);
        tsdb_buf_printf(b, "cairn_query_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n",
                        kinds[k], (unsigned long long)n);
        char sum[32];
        api__fmt_float((double)atomic_load(&c->m.q_sum_us[k]) / 1e6, sum);
        tsdb_buf_printf(b, "cairn_query_duration_seconds_sum{kind=\"%s\"} %s\n", kinds[k], sum);
        tsdb_buf_printf(b, "cairn_query_duration_seconds_count{kind=\"%s\"} %llu\n", kinds[k],
                        (unsigned long long)n);
    }

    tsdb *db = ready_db(c);
    metric_u(b, "cairn_ready", "gauge", "1 once the storage is open and serving.", db ? 1 : 0);
    if (!db)
        return;
    tsdb_stats st;
    memset(&st, 0, sizeof st);
    tsdb_stats_get(db, &st);
    metric_u(b, "cairn_tsdb_head_series", "gauge", "Series in the head.", st.n_series);
    metric_u(b, "cairn_tsdb_head_samples", "gauge", "Samples in the head.", st.n_samples_head);
    metric_u(b, "cairn_tsdb_head_chunks", "gauge", "Chunks in the head.", st.n_chunks_head);
    metric_u(b, "cairn_tsdb_blocks_loaded", "gauge", "Blocks on disk.", st.n_blocks);
    metric_u(b, "cairn_tsdb_storage_blocks_bytes", "gauge", "Bytes of block files.",
             st.bytes_blocks);
    metric_u(b, "cairn_tsdb_wal_bytes", "gauge", "Bytes of WAL segments.", st.bytes_wal);
    metric_u(b, "cairn_tsdb_index_bytes", "gauge", "Bytes of the index.", st.bytes_index);
    metric_u(b, "cairn_tsdb_samples_appended_total", "counter", "Samples stored.",
             st.appended_total);
    metric_head(b, "cairn_tsdb_samples_rejected_total", "counter", "Samples refused, by reason.");
    tsdb_buf_printf(b,
                    "cairn_tsdb_samples_rejected_total{reason=\"out_of_order\"} %llu\n"
                    "cairn_tsdb_samples_rejected_total{reason=\"duplicate\"} %llu\n"
                    "cairn_tsdb_samples_rejected_total{reason=\"too_old\"} %llu\n",
                    (unsigned long long)st.rejected_ooo, (unsigned long long)st.rejected_dup,
                    (unsigned long long)st.rejected_too_old);
}

/* ---- Status ------------------------------------------------------------------------------------
 */

void api__h_buildinfo(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "version");
    api__json_str(&j, PROM_COMPAT_VERSION);
    api__json_key(&j, "revision");
    api__json_str(&j, "cairn-" CAIRN_VERSION);
    api__json_key(&j, "branch");
    api__json_str(&j, "main");
    api__json_key(&j, "buildUser");
    api__json_str(&j, "cairn");
    api__json_key(&j, "buildDate");
    api__json_str(&j, __DATE__);
    api__json_key(&j, "goVersion");
    api__json_str(&j, "none (C11)");
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

static const char *flag_value(const api_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->opts.n_flags; i++)
        if (!strcmp(c->opts.flags[2 * i], name))
            return c->opts.flags[2 * i + 1];
    return NULL;
}

void api__h_runtimeinfo(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    char start[40], last[40], cwd[1024];
    rfc3339(c->start_ms, start);
    int64_t rl = atomic_load(&c->reload_ms);
    rfc3339(rl ? rl : c->start_ms, last);
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "/");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *ret = flag_value(c, "storage.tsdb.retention.time");
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "startTime");
    api__json_str(&j, start);
    api__json_key(&j, "CWD");
    api__json_str(&j, cwd);
    api__json_key(&j, "reloadConfigSuccess");
    api__json_bool(&j, rl == 0 || atomic_load(&c->reload_ok));
    api__json_key(&j, "lastConfigTime");
    api__json_str(&j, last);
    api__json_key(&j, "corruptionCount");
    api__json_int(&j, 0);
    api__json_key(&j, "goroutineCount");
    api__json_int(&j, 0);
    api__json_key(&j, "GOMAXPROCS");
    api__json_int(&j, ncpu > 0 ? ncpu : 1);
    api__json_key(&j, "GOGC");
    api__json_str(&j, "");
    api__json_key(&j, "GODEBUG");
    api__json_str(&j, "");
    api__json_key(&j, "storageRetention");
    api__json_str(&j, ret && *ret ? ret : "15d");
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_flags(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    for (size_t i = 0; i < c->opts.n_flags; i++) {
        api__json_key(&j, c->opts.flags[2 * i]);
        api__json_str(&j, c->opts.flags[2 * i + 1] ? c->opts.flags[2 * i + 1] : "");
    }
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_config(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "yaml");
    api__json_str(&j, c->opts.config_yaml ? c->opts.config_yaml : "");
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

static void card_list(api_json *j, const char *key, const tsdb_card_entry *v, size_t n)
{
    api__json_key(j, key);
    api__json_arr_begin(j);
    for (size_t i = 0; i < n; i++) {
        api__json_obj_begin(j);
        api__json_key(j, "name");
        api__json_strn(j, v[i].name);
        api__json_key(j, "value");
        api__json_uint(j, v[i].value);
        api__json_obj_end(j);
    }
    api__json_arr_end(j);
}

void api__h_tsdb_status(api_ctx *c, api_req *r, api_resp *w)
{
    size_t limit = 10;
    const tsdb_str *lp = api__params_get(&r->params, "limit");
    if (lp && lp->len > 0) {
        char *end;
        long v = strtol(lp->p, &end, 10);
        if (end != lp->p + lp->len || v <= 0 || v > 10000) {
            api__resp_error(w, 400, "bad_data", "limit must be a positive number");
            return;
        }
        limit = (size_t)v;
    }
    tsdb_cardinality card;
    memset(&card, 0, sizeof card);
    tsdb_err e = {0};
    int rc = tsdb_cardinality_get(c->db, limit, r->arena, &card, &e);
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc == TSDB_EINVAL ? TSDB_EIO : rc, e.msg);
        return;
    }
    tsdb_stats st;
    memset(&st, 0, sizeof st);
    tsdb_stats_get(c->db, &st);
    int empty = st.head_mint > st.head_maxt;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "headStats");
    api__json_obj_begin(&j);
    api__json_key(&j, "numSeries");
    api__json_uint(&j, st.n_series);
    api__json_key(&j, "numLabelPairs");
    api__json_uint(&j, card.n_by_pair);
    api__json_key(&j, "chunkCount");
    api__json_uint(&j, st.n_chunks_head);
    api__json_key(&j, "minTime");
    api__json_int(&j, empty ? 0 : st.head_mint);
    api__json_key(&j, "maxTime");
    api__json_int(&j, empty ? 0 : st.head_maxt);
    api__json_obj_end(&j);
    card_list(&j, "seriesCountByMetricName", card.by_metric, card.n_by_metric);
    card_list(&j, "labelValueCountByLabelName", card.by_label_name, card.n_by_label_name);
    card_list(&j, "memoryInBytesByLabelName", NULL, 0);
    card_list(&j, "seriesCountByLabelValuePair", card.by_pair, card.n_by_pair);
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_walreplay(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    tsdb_stats st;
    memset(&st, 0, sizeof st);
    tsdb *db = ready_db(c);
    if (db)
        tsdb_stats_get(db, &st);
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "min");
    api__json_int(&j, 0);
    api__json_key(&j, "max");
    api__json_int(&j, 0);
    api__json_key(&j, "current");
    api__json_int(&j, 0);
    api__json_key(&j, "state");
    api__json_str(&j, st.wal_replayed ? "done" : "in progress");
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}

/* ---- Stubs -------------------------------------------------------------------------------------
 */

void api__h_exemplars(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_raw(&j, "[]");
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_rules(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_raw(&j, "{\"groups\":[]}");
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_alerts(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_raw(&j, "{\"alerts\":[]}");
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_alertmanagers(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_raw(&j, "{\"activeAlertmanagers\":[],\"droppedAlertmanagers\":[]}");
    api__resp_json_end(w, &j, NULL, 0);
}

void api__h_targets(api_ctx *c, api_req *r, api_resp *w)
{
    api_json j;
    if (!c->opts.scraper) {
        api__resp_json_begin(w, &j);
        api__json_raw(&j, "{\"activeTargets\":[],\"droppedTargets\":[]}");
        api__resp_json_end(w, &j, NULL, 0);
        return;
    }
    const tsdb_str *sp = api__params_get(&r->params, "state");
    const char *state = sp && sp->len ? sp->p : NULL;
    api__resp_json_begin(w, &j);
    size_t mark = w->body.len;
    if (ingest_scraper_targets_json(c->opts.scraper, state, &w->body) != TSDB_OK) {
        w->body.len = mark;
        api__resp_error(w, 400, "bad_data", "invalid state parameter");
        return;
    }
    api__json_raw(&j, ""); /* the scraper wrote the data value */
    api__resp_json_end(w, &j, NULL, 0);
}

/* ---- Admin -------------------------------------------------------------------------------------
 */

void api__h_admin_delete(api_ctx *c, api_req *r, api_resp *w)
{
    api_matchset *sets;
    size_t n_sets;
    int64_t start, end;
    if (api__parse_matches(r, w, &sets, &n_sets, 1) < 0 ||
        api__parse_range_params(r, w, &start, &end) < 0)
        return;
    for (size_t i = 0; i < n_sets; i++) {
        tsdb_err e = {0};
        int rc =
            tsdb_delete(c->db, (const tsdb_matcher *const *)sets[i].ms, sets[i].n, start, end, &e);
        if (rc != TSDB_OK) {
            api__resp_error(w, 500, "internal", "%s", e.msg[0] ? e.msg : tsdb_strerror(rc));
            return;
        }
    }
    w->status = 204;
}

void api__h_admin_clean(api_ctx *c, api_req *r, api_resp *w)
{
    (void)r;
    tsdb_err e = {0};
    int rc = tsdb_maintain(c->db, &e);
    if (rc != TSDB_OK) {
        api__resp_error(w, 500, "internal", "%s", e.msg[0] ? e.msg : tsdb_strerror(rc));
        return;
    }
    w->status = 204;
}

void api__h_admin_snapshot(api_ctx *c, api_req *r, api_resp *w)
{
    const char *dir = c->opts.data_dir ? c->opts.data_dir : "data";
    char *snaps = tsdb_arena_sprintf(r->arena, "%s/snapshots", dir);
    if (mkdir(snaps, 0755) != 0 && errno != EEXIST) {
        api__resp_error(w, 500, "internal", "create snapshot directory: %s", strerror(errno));
        return;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    uint64_t rnd = tsdb_hash(&now, sizeof now) ^ (uint64_t)tsdb_mono_ns();
    char *name = tsdb_arena_sprintf(r->arena, "%s-%016llx", ts, (unsigned long long)rnd);
    char *path = tsdb_arena_sprintf(r->arena, "%s/%s", snaps, name);
    tsdb_err e = {0};
    int rc = tsdb_snapshot(c->db, path, &e);
    if (rc != TSDB_OK) {
        api__resp_error(w, 500, "internal", "create snapshot: %s",
                        e.msg[0] ? e.msg : tsdb_strerror(rc));
        return;
    }
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_obj_begin(&j);
    api__json_key(&j, "name");
    api__json_str(&j, name);
    api__json_obj_end(&j);
    api__resp_json_end(w, &j, NULL, 0);
}
