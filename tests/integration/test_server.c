/* tests/integration/test_server.c -- bin/cairn over real sockets.
 *
 * Starts the server on 127.0.0.1 with an ephemeral port (read back from its log) and a temporary
 * data directory, then: Grafana's calls, remote write 1.0 and 2.0 in and PromQL out, malformed
 * and oversized bodies (4xx, and the server stays healthy), the JSON envelope on every API error,
 * gzip, /metrics, a clean SIGTERM shutdown and a restart that still has the data. Every wait is
 * bounded; the server is killed on every exit path. Prints "N passed, N failed".
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"

static int n_pass, n_fail;
static pid_t server_pid = -1;
static char dir[64], logpath[128];
static unsigned port;

/* AddressSanitizer keeps freed memory in quarantine, so a server built with it grows its RSS by
 * every byte it allocates, freed or not: peak-memory checks only mean something without it. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define CHECK(cond, ...)                                \
    do {                                                \
        if (cond) {                                     \
            n_pass++;                                   \
        } else {                                        \
            n_fail++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                        \
            printf("\n");                               \
        }                                               \
    } while (0)

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- Server process ----------------------------------------------------------------------- */

static void kill_server(void)
{
    if (server_pid <= 0)
        return;
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

static void on_signal(int sig)
{
    (void)sig;
    if (server_pid > 0)
        kill(server_pid, SIGKILL);
    _exit(2);
}

static int start_server(void)
{
    static int starts;
    snprintf(logpath, sizeof logpath, "%s/server.%d.log", dir, ++starts);
    const char *bin = getenv("BIN");
    char exe[256];
    snprintf(exe, sizeof exe, "%s/cairn", bin ? bin : "bin");
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char data[128];
        snprintf(data, sizeof data, "--storage.tsdb.path=%s/data", dir);
        execl(exe, exe, "--web.listen-address=127.0.0.1:0", data, "--log.level=info",
              "--web.enable-admin-api", (char *)NULL);
        _exit(127);
    }
    server_pid = pid;
    port = 0;
    for (int i = 0; i < 200; i++) { /* 10 s: the port is logged first, "ready" after replay */
        sleep_ms(50);
        FILE *f = fopen(logpath, "r");
        if (!f)
            continue;
        char line[512];
        while (fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on 127.0.0.1:");
            if (p)
                port = (unsigned)atoi(p + strlen("listening on 127.0.0.1:"));
            if (port && strstr(line, "msg=\"ready\"")) {
                fclose(f);
                return 0;
            }
        }
        fclose(f);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            server_pid = -1;
            return -1;
        }
    }
    return -1;
}

/* SIGTERM, then wait up to 10 s for a clean exit. Returns the exit status or -1. */
static int stop_server(void)
{
    if (server_pid <= 0)
        return -1;
    kill(server_pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(server_pid, &st, WNOHANG) == server_pid) {
            server_pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        sleep_ms(50);
    }
    kill_server();
    return -1;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char headers[4096];
    size_t hlen;
    cJSON *json;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    r->body = realloc(r->body, r->len + k + 1);
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = '\0';
    }
    return k;
}

static void resp_free(resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* method GET/POST; body NULL for none; hdrs NULL-terminated list. */
static int http(resp *r, const char *method, const char *path, const void *body, size_t blen,
                const char *const *hdrs, int gzip)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (gzip)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    struct curl_slist *hl = NULL;
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        hl = curl_slist_append(hl, hdrs[i]);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? blen : 0));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        return -1;
    if (r->body)
        r->json = cJSON_Parse(r->body);
    return 0;
}

static int form_post(resp *r, const char *path, const char *form)
{
    static const char *const h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    return http(r, "POST", path, form, strlen(form), h, 0);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int is_error_envelope(const resp *r, const char *type)
{
    return r->json && !strcmp(jstr(r->json, "status"), "error") &&
           !strcmp(jstr(r->json, "errorType"), type) &&
           cJSON_IsString(cJSON_GetObjectItem(r->json, "error"));
}

static int healthy(void)
{
    resp r;
    int ok = http(&r, "GET", "/-/healthy", NULL, 0, NULL, 0) == 0 && r.status == 200;
    resp_free(&r);
    return ok;
}

/* ---- Scenarios ---------------------------------------------------------------------------------
 */

static int64_t now_ms;
static int inst_offset; /* added to the instance number of written series */

static void write_batch(int version, const char *name, int n_series, int n_samples, long *status,
                        char *hdrs, size_t hcap)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_batch_series *bs = tsdb_arena_calloc(&a, (size_t)n_series, sizeof *bs);
    for (int s = 0; s < n_series; s++) {
        tsdb_label *l = tsdb_arena_alloc(&a, 2 * sizeof *l);
        l[0] = (tsdb_label){TSDB_STR("__name__"), tsdb_str_c(name)};
        l[1] = (tsdb_label){TSDB_STR("instance"),
                            tsdb_str_c(tsdb_arena_sprintf(&a, "i%d", s + inst_offset))};
        tsdb_sample *sm = tsdb_arena_alloc(&a, (size_t)n_samples * sizeof *sm);
        for (int k = 0; k < n_samples; k++)
            sm[k] = (tsdb_sample){now_ms - (int64_t)(n_samples - 1 - k) * 15000, s * 1000 + k};
        bs[s] = (tsdb_batch_series){{l, 2}, sm, (size_t)n_samples};
    }
    tsdb_batch b = {bs, (size_t)n_series};
    tsdb_str body;
    int rc = version == 2 ? ingest_rw_encode_v2(&b, &a, &body) : ingest_rw_encode(&b, &a, &body);
    CHECK(rc == TSDB_OK, "encode");
    const char *const h1[] = {"Content-Type: application/x-protobuf", "Content-Encoding: snappy",
                              "X-Prometheus-Remote-Write-Version: 0.1.0", NULL};
    const char *const h2[] = {
        "Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request",
        "Content-Encoding: snappy", "X-Prometheus-Remote-Write-Version: 2.0.0", NULL};
    resp r;
    http(&r, "POST", "/api/v1/write", body.p, body.len, version == 2 ? h2 : h1, 0);
    *status = r.status;
    if (hdrs)
        snprintf(hdrs, hcap, "%s", r.headers);
    resp_free(&r);
    tsdb_arena_fini(&a);
}

static void scenario_grafana(void)
{
    resp r;
    form_post(&r, "/api/v1/query", "query=1%2B1&time=4");
    CHECK(r.status == 200 && r.body &&
              !strcmp(r.body, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                              "\"result\":[4,\"2\"]}}"),
          "health check: %ld %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    http(&r, "GET", "/api/v1/query?query=1%2B1&time=4", NULL, 0, NULL, 0);
    CHECK(r.status == 200, "GET query: %ld", r.status);
    resp_free(&r);
    http(&r, "GET", "/api/v1/status/buildinfo", NULL, 0, NULL, 0);
    CHECK(r.status == 200 &&
              !strcmp(jstr(cJSON_GetObjectItem(r.json, "data"), "version"), "2.42.0"),
          "buildinfo");
    resp_free(&r);
    /* /prometheus prefix, as VictoriaMetrics also serves. */
    http(&r, "GET", "/prometheus/api/v1/status/buildinfo", NULL, 0, NULL, 0);
    CHECK(r.status == 200, "prefixed buildinfo: %ld", r.status);
    resp_free(&r);
}

static void scenario_write_and_query(void)
{
    long st;
    char hdrs[4096];
    write_batch(1, "itest_v1", 10, 100, &st, NULL, 0);
    CHECK(st == 204, "remote write 1.0: %ld", st);
    write_batch(2, "itest_v2", 5, 20, &st, hdrs, sizeof hdrs);
    CHECK(st == 204, "remote write 2.0: %ld", st);
    CHECK(strstr(hdrs, "X-Prometheus-Remote-Write-Samples-Written: 100") != NULL,
          "2.0 written header: %s", hdrs);

    resp r;
    char q[512];
    snprintf(q, sizeof q, "query=itest_v1&time=%.3f", (double)now_ms / 1000);
    form_post(&r, "/api/v1/query", q);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "result");
    CHECK(r.status == 200 && cJSON_GetArraySize(res) == 10, "instant query: %ld %s", r.status,
          r.body ? r.body : "");
    resp_free(&r);

    /* Grafana range query: POSTed float start/end/step aligned to the step. */
    int64_t end_s = now_ms / 1000 / 15 * 15, start_s = end_s - 99 * 15;
    snprintf(q, sizeof q, "query=sum(itest_v1)&start=%lld.0&end=%lld.0&step=15.0",
             (long long)start_s, (long long)end_s);
    form_post(&r, "/api/v1/query_range", q);
    res = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "result");
    const cJSON *vals = cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "values");
    CHECK(r.status == 200 &&
              !strcmp(jstr(cJSON_GetObjectItem(r.json, "data"), "resultType"), "matrix") &&
              cJSON_GetArraySize(vals) >= 90,
          "range query: %ld, %d points", r.status, cJSON_GetArraySize(vals));
    resp_free(&r);

    /* Grafana's label calls. */
    snprintf(q, sizeof q, "/api/v1/labels?match%%5B%%5D=itest_v1&start=%lld&end=%lld&limit=40000",
             (long long)start_s - 3600, (long long)end_s + 3600);
    http(&r, "GET", q, NULL, 0, NULL, 0);
    const cJSON *d = cJSON_GetObjectItem(r.json, "data");
    CHECK(r.status == 200 && cJSON_GetArraySize(d) == 2, "labels with match[]: %s",
          r.body ? r.body : "");
    resp_free(&r);
    form_post(&r, "/api/v1/labels", "limit=40000");
    CHECK(r.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")) == 2,
          "POST labels: %s", r.body ? r.body : "");
    resp_free(&r);
    http(&r, "GET", "/api/v1/label/__name__/values?limit=40000", NULL, 0, NULL, 0);
    d = cJSON_GetObjectItem(r.json, "data");
    CHECK(r.status == 200 && cJSON_GetArraySize(d) == 2 &&
              !strcmp(cJSON_GetArrayItem(d, 0)->valuestring, "itest_v1"),
          "label values: %s", r.body ? r.body : "");
    resp_free(&r);
    form_post(&r, "/api/v1/series", "match%5B%5D=%7B__name__%21%3D%22%22%7D&limit=40000");
    CHECK(r.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")) == 15,
          "series match-all: %ld", r.status);
    resp_free(&r);

    /* gzip for large answers when asked. */
    snprintf(q, sizeof q, "/api/v1/query_range?query=itest_v1&start=%lld&end=%lld&step=15",
             (long long)start_s, (long long)end_s);
    http(&r, "GET", q, NULL, 0, NULL, 1);
    CHECK(r.status == 200 && strstr(r.headers, "Content-Encoding: gzip") && r.json,
          "gzip response: %ld", r.status);
    resp_free(&r);
}

static void scenario_bad_input(void)
{
    const char *const h1[] = {"Content-Type: application/x-protobuf", "Content-Encoding: snappy",
                              NULL};
    resp r;
    /* Truncated snappy. */
    static const unsigned char trunc[] = {0x40, 0x00, 0x0a, 0x05};
    http(&r, "POST", "/api/v1/write", trunc, sizeof trunc, h1, 0);
    CHECK(r.status == 400, "truncated snappy: %ld", r.status);
    resp_free(&r);
    /* Snappy literal of bad protobuf: varint len 3, literal tag (2<<2), bytes 0a 7f 01. */
    static const unsigned char badpb[] = {0x03, 0x08, 0x0a, 0x7f, 0x01};
    http(&r, "POST", "/api/v1/write", badpb, sizeof badpb, h1, 0);
    CHECK(r.status == 400, "bad protobuf: %ld", r.status);
    resp_free(&r);
    /* Huge declared length. */
    static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    http(&r, "POST", "/api/v1/write", huge, sizeof huge, h1, 0);
    CHECK(r.status == 413, "huge declared length: %ld", r.status);
    resp_free(&r);
    /* A series with no labels (empty label set): missing metric name. */
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_label l[] = {{TSDB_STR("job"), TSDB_STR("")}};
    tsdb_sample s = {now_ms, 1};
    tsdb_batch_series bs = {{l, 1}, &s, 1};
    tsdb_batch b = {&bs, 1};
    tsdb_str body;
    ingest_rw_encode(&b, &a, &body);
    http(&r, "POST", "/api/v1/write", body.p, body.len, h1, 0);
    CHECK(r.status == 400, "empty labels: %ld", r.status);
    resp_free(&r);
    const char *const hz[] = {"Content-Type: application/x-protobuf", "Content-Encoding: gzip",
                              NULL};
    http(&r, "POST", "/api/v1/write", body.p, body.len, hz, 0);
    CHECK(r.status == 415, "gzip encoding: %ld", r.status);
    resp_free(&r);
    tsdb_arena_fini(&a);

    /* A body announced larger than the limit: refused before it is sent. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char got[512] = {0};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        const char *req = "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          "application/x-protobuf\r\nContent-Length: 100000000\r\n\r\n";
        if (write(fd, req, strlen(req)) > 0) {
            ssize_t n = read(fd, got, sizeof got - 1);
            if (n > 0)
                got[n] = '\0';
        }
    }
    close(fd);
    CHECK(strstr(got, " 413 ") != NULL, "oversized Content-Length: %.60s", got);

    /* API errors always come in the envelope. */
    form_post(&r, "/api/v1/query", "query=sum(");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "bad query");
    resp_free(&r);
    form_post(&r, "/api/v1/query_range", "query=up&start=10&end=5&step=1");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "end before start");
    resp_free(&r);
    form_post(&r, "/api/v1/query_range", "query=up&start=0&end=20000&step=1");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "11,000 points");
    resp_free(&r);
    form_post(&r, "/api/v1/query_range", "query=up&start=0&end=10&step=0");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "step 0");
    resp_free(&r);
    form_post(&r, "/api/v1/query", "query=up&time=%zz");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "bad escape");
    resp_free(&r);
    http(&r, "GET", "/api/v1/unknown", NULL, 0, NULL, 0);
    CHECK(r.status == 404 && is_error_envelope(&r, "not_found"), "unknown endpoint");
    resp_free(&r);
    http(&r, "GET", "/api/v1/series", NULL, 0, NULL, 0);
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "series without match[]");
    resp_free(&r);
    http(&r, "PUT", "/api/v1/query?query=1", NULL, 0, NULL, 0);
    CHECK(r.status == 405 && is_error_envelope(&r, "bad_data"), "method not allowed: %ld",
          r.status);
    resp_free(&r);
    CHECK(healthy(), "healthy after bad input");
}

static void scenario_admin_metrics(void)
{
    resp r;
    http(&r, "GET", "/metrics", NULL, 0, NULL, 0);
    CHECK(r.status == 200 && r.body &&
              strstr(r.body, "cairn_remote_write_samples_appended_total ") &&
              strstr(r.body, "cairn_http_requests_total{handler=\"/api/v1/write\",code=\"204\"}"),
          "metrics");
    resp_free(&r);
    http(&r, "GET", "/-/ready", NULL, 0, NULL, 0);
    CHECK(r.status == 200, "ready: %ld", r.status);
    resp_free(&r);
    form_post(&r, "/-/reload", "");
    CHECK(r.status == 200, "reload: %ld", r.status);
    resp_free(&r);
    http(&r, "GET", "/api/v1/status/flags", NULL, 0, NULL, 0);
    CHECK(r.status == 200 &&
              !strcmp(jstr(cJSON_GetObjectItem(r.json, "data"), "web.enable-admin-api"), "true"),
          "flags");
    resp_free(&r);
    http(&r, "GET", "/api/v1/status/runtimeinfo", NULL, 0, NULL, 0);
    CHECK(r.status == 200, "runtimeinfo");
    resp_free(&r);
    http(&r, "GET", "/api/v1/status/tsdb", NULL, 0, NULL, 0);
    CHECK(r.status == 200 && cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "headStats"),
          "status/tsdb: %ld", r.status);
    resp_free(&r);
    /* Admin API (enabled for this server): snapshot, delete a series, clean tombstones. */
    form_post(&r, "/api/v1/admin/tsdb/snapshot", "");
    const char *name = jstr(cJSON_GetObjectItem(r.json, "data"), "name");
    char snap[256];
    snprintf(snap, sizeof snap, "%s/data/snapshots/%s", dir, name);
    CHECK(r.status == 200 && *name && access(snap, F_OK) == 0, "snapshot: %ld %s", r.status,
          r.body ? r.body : "");
    resp_free(&r);
    form_post(&r, "/api/v1/admin/tsdb/delete_series", "match%5B%5D=itest_v2");
    CHECK(r.status == 204, "delete_series: %ld %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    char q[256];
    snprintf(q, sizeof q, "query=count(itest_v2)&time=%.3f", (double)now_ms / 1000);
    form_post(&r, "/api/v1/query", q);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "result");
    CHECK(r.status == 200 && cJSON_GetArraySize(res) == 0, "deleted series gone: %s",
          r.body ? r.body : "");
    resp_free(&r);
    form_post(&r, "/api/v1/admin/tsdb/clean_tombstones", "");
    CHECK(r.status == 204, "clean_tombstones: %ld", r.status);
    resp_free(&r);
    form_post(&r, "/api/v1/admin/tsdb/delete_series", "");
    CHECK(r.status == 400 && is_error_envelope(&r, "bad_data"), "delete_series without match[]");
    resp_free(&r);

    http(&r, "GET", "/api/v1/alerts", NULL, 0, NULL, 0);
    CHECK(r.status == 200 &&
              cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "alerts")),
          "alerts");
    resp_free(&r);
}

/* Several clients at once: writers appending new samples, readers querying, and a health probe
 * that must keep answering. Every answer must be 2xx. */
typedef struct worker {
    int id, errors, done;
} worker;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    for (int i = 0; i < 40; i++) {
        resp r;
        if (wk->id % 2 == 0) {
            tsdb_arena a;
            tsdb_arena_init(&a, 0);
            tsdb_label l[] = {
                {TSDB_STR("__name__"), TSDB_STR("conc_metric")},
                {TSDB_STR("worker"), tsdb_str_c(tsdb_arena_sprintf(&a, "w%d", wk->id))}};
            tsdb_sample smp = {now_ms + 1000 * i, i};
            tsdb_batch_series bs = {{l, 2}, &smp, 1};
            tsdb_batch b = {&bs, 1};
            tsdb_str body;
            ingest_rw_encode(&b, &a, &body);
            const char *const h[] = {"Content-Type: application/x-protobuf", NULL};
            if (http(&r, "POST", "/api/v1/write", body.p, body.len, h, 0) != 0 || r.status != 204)
                wk->errors++;
            tsdb_arena_fini(&a);
        } else {
            char q[256];
            snprintf(q, sizeof q, "query=sum(itest_v1)%%20%%2B%%20count(conc_metric)&time=%.3f",
                     (double)now_ms / 1000 + 50);
            if (form_post(&r, "/api/v1/query", q) != 0 || r.status != 200)
                wk->errors++;
        }
        resp_free(&r);
        wk->done++;
    }
    return NULL;
}

static void scenario_concurrency(void)
{
    enum { N = 8 };
    pthread_t th[N];
    worker wk[N];
    for (int i = 0; i < N; i++) {
        wk[i] = (worker){i, 0, 0};
        pthread_create(&th[i], NULL, worker_main, &wk[i]);
    }
    int probes_ok = 0;
    for (int i = 0; i < 10; i++) {
        probes_ok += healthy();
        sleep_ms(20);
    }
    int errors = 0, done = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        errors += wk[i].errors;
        done += wk[i].done;
    }
    CHECK(errors == 0 && done == N * 40, "concurrent writes and queries: %d errors of %d", errors,
          done);
    CHECK(probes_ok == 10, "health probes under load: %d of 10", probes_ok);
    resp r;
    char q[256];
    snprintf(q, sizeof q, "query=count(conc_metric)&time=%.3f", (double)now_ms / 1000 + 50);
    form_post(&r, "/api/v1/query", q);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "result");
    const cJSON *v =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "value"), 1);
    CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, "4"), "all writers' series stored: %s",
          r.body ? r.body : "");
    resp_free(&r);
}

/* kB from a /proc/<pid>/status field, or -1. */
static long proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            v = atol(line + fl + 1);
    fclose(f);
    return v;
}

typedef struct rss_watch {
    pid_t pid;
    long before, peak;
    atomic_int stop;
} rss_watch;

static void *rss_main(void *arg)
{
    rss_watch *w = arg;
    for (int i = 0; i < 20000 && !atomic_load(&w->stop); i++) { /* at most ~40 s */
        long v = proc_status_kb(w->pid, "VmRSS");
        if (v > w->peak)
            w->peak = v;
        sleep_ms(2);
    }
    return NULL;
}

/* GETs path while a thread samples the server's VmRSS every 2 ms; *grow_kb = peak - before. */
static void measure_peak(const char *path, resp *r, long *grow_kb)
{
    sleep_ms(300); /* memory freed by earlier requests goes back first */
    rss_watch rw = {server_pid, 0, 0, 0};
    rw.before = proc_status_kb(server_pid, "VmRSS");
    pthread_t th;
    int th_ok = pthread_create(&th, NULL, rss_main, &rw) == 0;
    http(r, "GET", path, NULL, 0, NULL, 0);
    atomic_store(&rw.stop, 1);
    if (th_ok)
        pthread_join(th, NULL);
    *grow_kb = th_ok && rw.before > 0 && rw.peak > 0 ? rw.peak - rw.before : -1;
}

/* Sends a raw GET, reads about `keep` bytes of the answer, then closes the socket. Returns the
 * bytes read. */
static size_t get_and_hang_up(const char *path, int gzip, size_t keep)
{
    char req[1024];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path,
                      gzip ? "Accept-Encoding: gzip\r\n" : "");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, req, (size_t)rl) == (ssize_t)rl) {
        char buf[1024];
        for (int i = 0; i < 1000 && got < keep; i++) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    close(fd);
    return got;
}

/* A large range answer (2,000 series x 241 steps) is streamed: plain and gzip decode to the same
 * JSON, the server's peak memory grows by much less than the body, and clients that hang up
 * mid-stream leave it healthy (and, under the sanitizers, leak nothing: checked at shutdown). */
static void scenario_stream(void)
{
    long st;
    write_batch(1, "stream_load", 2000, 200, &st, NULL, 0);
    CHECK(st == 204, "load for streaming: %ld", st);
    /* 40 minutes at a 10 s step inside the 50 minutes of data: 241 points per series. */
    char q[512];
    snprintf(q, sizeof q, "/api/v1/query_range?query=stream_load&start=%.3f&end=%.3f&step=10",
             (double)(now_ms - 2400000) / 1000, (double)now_ms / 1000);

    /* Peak memory: the same selection answered with an empty result (every point filtered
     * out) costs the evaluation alone; the full answer must not add anything near its body. */
    char qf[512];
    snprintf(qf, sizeof qf, "%.*s%%20%%3E%%201e18%s", (int)(strchr(q, '&') - q), q, strchr(q, '&'));
    resp plain, gz;
    long grow_eval = -1, grow_full = -1;
    measure_peak(qf, &gz, &grow_eval);
    CHECK(gz.status == 200 && gz.len < 200, "filtered query: %ld %s", gz.status,
          gz.body ? gz.body : "");
    resp_free(&gz);
    measure_peak(q, &plain, &grow_full);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(plain.json, "data"), "result");
    const cJSON *vals = cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "values");
    CHECK(plain.status == 200 && plain.json && cJSON_GetArraySize(res) == 2000 &&
              cJSON_GetArraySize(vals) == 241,
          "large range query: %ld, %d series, %d points", plain.status, cJSON_GetArraySize(res),
          cJSON_GetArraySize(vals));
    CHECK(strstr(plain.headers, "Transfer-Encoding: chunked") != NULL,
          "large answer streamed (chunked): %s", plain.headers);
    if (UNDER_ASAN)
        printf("stream: peak RSS not checked under AddressSanitizer (quarantine)\n");
    if (!UNDER_ASAN && grow_eval >= 0 && grow_full >= 0) {
        /* The engine's result matrix (16 bytes a point) exists either way; beyond it, the JSON
         * of the answer must cost a small fraction of its size (it used to be held whole). */
        long pts = 0;
        for (int i = 0; i < cJSON_GetArraySize(res); i++)
            pts += cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(res, i), "values"));
        long extra_kb = grow_full - grow_eval - pts * 16 / 1024;
        printf("stream: body %zu bytes, %ld points; server peak RSS growth %ld kB for the answer, "
               "%ld kB for the same evaluation with an empty answer\n",
               plain.len, pts, grow_full, grow_eval);
        CHECK(extra_kb * 1024 < (long)(plain.len / 4),
              "answer adds %ld kB of peak RSS beyond its result for a %zu kB body", extra_kb,
              plain.len / 1024);
    }

    http(&gz, "GET", q, NULL, 0, NULL, 1);
    CHECK(gz.status == 200 && strstr(gz.headers, "Content-Encoding: gzip") != NULL,
          "large answer gzip: %ld", gz.status);
    CHECK(gz.json && gz.len == plain.len && plain.body && gz.body &&
              memcmp(gz.body, plain.body, plain.len) == 0,
          "gzip and plain bodies identical (%zu vs %zu bytes)", gz.len, plain.len);
    resp_free(&gz);
    resp_free(&plain);

    /* Series and label values are produced the same way. */
    http(&gz, "GET", "/api/v1/series?match%5B%5D=stream_load", NULL, 0, NULL, 1);
    CHECK(gz.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(gz.json, "data")) == 2000,
          "series streamed: %ld", gz.status);
    resp_free(&gz);
    http(&gz, "GET", "/api/v1/label/instance/values", NULL, 0, NULL, 0);
    CHECK(gz.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(gz.json, "data")) >= 2000,
          "label values streamed: %ld", gz.status);
    resp_free(&gz);

    /* Clients that read a few KB and hang up, plain and gzip. */
    for (int k = 0; k < 4; k++) {
        size_t got = get_and_hang_up(q, k & 1, 4096);
        CHECK(got >= 4096, "partial read %d: %zu bytes", k, got);
    }
    CHECK(healthy(), "healthy after hang-ups");
    http(&plain, "GET", q, NULL, 0, NULL, 1);
    res = cJSON_GetObjectItem(cJSON_GetObjectItem(plain.json, "data"), "result");
    CHECK(plain.status == 200 && cJSON_GetArraySize(res) == 2000, "query after hang-ups: %ld",
          plain.status);
    resp_free(&plain);
}

/* A client that gives up on a long query: the server notices the closed socket, stops the
 * evaluation and counts the request as 499 (Prometheus' "canceled"). */
static void scenario_cancel(void)
{
    long st = 204;
    for (int k = 0; k < 4 && st == 204; k++) {
        inst_offset = 2000 * k;
        write_batch(1, "cancel_load", 2000, 200, &st, NULL, 0);
    }
    inst_offset = 0;
    CHECK(st == 204, "load for cancel: %ld", st);
    int64_t end_s = now_ms / 1000, start_s = end_s - 3600;
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "query=count(quantile_over_time(0.5,cancel_load%%5B1h%%5D)%%3E0)&start=%lld&"
                      "end=%lld&step=1",
                      (long long)start_s, (long long)end_s);
    char req[1024];
    int rl = snprintf(req, sizeof req,
                      "POST /api/v1/query_range HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
                      bl, body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sent = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
               write(fd, req, (size_t)rl) == (ssize_t)rl;
    sleep_ms(250);
    close(fd);
    int canceled = 0;
    for (int i = 0; i < 100 && sent && !canceled; i++) { /* up to 10 s */
        resp r;
        http(&r, "GET", "/metrics", NULL, 0, NULL, 0);
        canceled = r.body && strstr(r.body, "cairn_http_requests_total{handler=\"/api/v1/"
                                            "query_range\",code=\"499\"} 1") != NULL;
        resp_free(&r);
        if (!canceled)
            sleep_ms(100);
    }
    CHECK(canceled, "query canceled when the client hung up (499)");
    CHECK(healthy(), "healthy after cancel");
}

int main(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGALRM, on_signal);
    alarm(240);
    atexit(kill_server);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof dir, "/tmp/cairn-itest-XXXXXX");
    if (!mkdtemp(dir)) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 - 60000;

    if (start_server() < 0) {
        printf("server did not start; log:\n");
        char cmd[256];
        snprintf(cmd, sizeof cmd, "cat %s", logpath);
        if (system(cmd) != 0)
            printf("(no log)\n");
        n_fail++;
        goto out;
    }
    CHECK(healthy(), "healthy");
    scenario_grafana();
    scenario_write_and_query();
    scenario_bad_input();
    scenario_admin_metrics();
    scenario_concurrency();
    scenario_stream();
    scenario_cancel();
    CHECK(stop_server() == 0, "clean shutdown on SIGTERM");

    /* Restart on the same directory: the data is back after WAL replay. */
    if (start_server() == 0) {
        resp r;
        char q[256];
        snprintf(q, sizeof q, "query=count(itest_v1)&time=%.3f", (double)now_ms / 1000);
        form_post(&r, "/api/v1/query", q);
        const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "result");
        const cJSON *v =
            cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "value"), 1);
        CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, "10"), "data after restart: %s",
              r.body ? r.body : "");
        resp_free(&r);
        CHECK(stop_server() == 0, "second clean shutdown");
    } else {
        CHECK(0, "restart");
    }
out:
    kill_server();
    if (n_fail == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            printf("cleanup failed\n");
    } else {
        printf("server logs kept in %s\n", dir);
    }
    curl_global_cleanup();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
