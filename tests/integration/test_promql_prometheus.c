/* tests/integration/test_promql_prometheus.c -- Cairn's PromQL engine against Prometheus itself.
 *
 * Generates a deterministic data set (counters with resets and a gap, gauges with jittered
 * timestamps, classic histogram buckets, and a series of NaN / +-Inf / huge values), imports it
 * into a real Prometheus 2.x (promtool tsdb create-blocks-from openmetrics, then prometheus on
 * a free 127.0.0.1 port over that directory) and into a Cairn tsdb, and runs every query of the
 * list below both ways: as instant queries at two times and as range queries with an aligned
 * and an unaligned step. Results must agree: the same series (label sets), the same points, and
 * values equal within 1e-9 relative (NaN equals NaN); a query that fails on one side must fail on
 * the other. Skips (and passes) when prometheus or promtool is not installed. Every wait is
 * bounded; Prometheus is killed on every exit path. Prints "N passed, N failed".
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define T0        1600000000LL /* first sample, seconds */
#define N_SAMPLES 240          /* every 15 s: one hour */

static int n_pass, n_fail;
static pid_t prom_pid = -1;
static char dir[64];
static unsigned port;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void kill_prom(void)
{
    if (prom_pid > 0) {
        kill(prom_pid, SIGKILL);
        waitpid(prom_pid, NULL, 0);
        prom_pid = -1;
    }
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ---- Data -------------------------------------------------------------------------------------
 */

typedef struct series {
    char name[32];
    char l1[16], v1[16], l2[16], v2[16];
    tsdb_sample pts[N_SAMPLES];
    size_t n;
} series;

static series data[32];
static size_t n_data;
static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static series *new_series(const char *name, const char *l1, const char *v1, const char *l2,
                          const char *v2)
{
    series *s = &data[n_data++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->l1, sizeof s->l1, "%s", l1);
    snprintf(s->v1, sizeof s->v1, "%s", v1);
    snprintf(s->l2, sizeof s->l2, "%s", l2);
    snprintf(s->v2, sizeof s->v2, "%s", v2);
    return s;
}

static void gen(void)
{
    static const char *jobs[] = {"a", "b", "c"};
    for (int j = 0; j < 3; j++) {
        for (int inst = 1; inst <= 2; inst++) {
            char is[4];
            snprintf(is, sizeof is, "%d", inst);
            series *c = new_series("req_total", "instance", is, "job", jobs[j]);
            double v = 0;
            for (int i = 0; i < N_SAMPLES; i++) {
                if (j == 1 && i >= 100 && i < 120)
                    continue; /* a five minute gap */
                if (rnd() % 50 == 0)
                    v = 0; /* counter reset */
                v += (double)(rnd() % 11);
                c->pts[c->n++] = (tsdb_sample){(T0 + i * 15) * 1000, v};
            }
            series *g = new_series("temp", "instance", is, "job", jobs[j]);
            for (int i = 0; i < N_SAMPLES; i++) {
                if (j == 0 && inst == 2 && i > 200)
                    break; /* ends early: lookback and absent */
                int64_t t = T0 + i * 15 + (j == 2 ? 3 : 0);
                double x = sin(i / 7.0 + j) * 50 + (double)(rnd() % 1000) / 1000;
                g->pts[g->n++] = (tsdb_sample){t * 1000, round(x * 1000) / 1000};
            }
        }
    }
    static const char *les[] = {"0.1", "0.5", "1", "5", "+Inf"};
    static const int inc[] = {1, 3, 5, 8, 9};
    for (int b = 0; b < 5; b++) {
        series *h = new_series("lat_bucket", "job", "a", "le", les[b]);
        double v = 0;
        for (int i = 0; i < N_SAMPLES; i++) {
            v += inc[b] + (double)(rnd() % 2);
            h->pts[h->n++] = (tsdb_sample){(T0 + i * 15) * 1000, v};
        }
    }
    static const double specials[] = {NAN, INFINITY, -INFINITY, 0, 1e308, -1e308, 1, 2.5, -3};
    for (int k = 0; k < 4; k++) {
        char ks[4];
        snprintf(ks, sizeof ks, "%d", k);
        series *w = new_series("weird", "g", k % 2 ? "1" : "0", "k", ks);
        for (int i = 0; i < N_SAMPLES; i++) {
            double v =
                rnd() % 3 == 0 ? specials[rnd() % 9] : (double)(int64_t)(rnd() % 20000) / 100 - 100;
            w->pts[w->n++] = (tsdb_sample){(T0 + i * 15) * 1000, v};
        }
    }
}

static void fmt_value(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "NaN");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, len, "%.17g", v);
}

static int write_openmetrics(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const char *last = "";
    for (size_t s = 0; s < n_data; s++) {
        if (strcmp(last, data[s].name) != 0) {
            fprintf(f, "# TYPE %s gauge\n", data[s].name);
            last = data[s].name;
        }
        for (size_t i = 0; i < data[s].n; i++) {
            char v[64];
            fmt_value(v, sizeof v, data[s].pts[i].v);
            fprintf(f, "%s{%s=\"%s\",%s=\"%s\"} %s %lld\n", data[s].name, data[s].l1, data[s].v1,
                    data[s].l2, data[s].v2, v, (long long)(data[s].pts[i].t / 1000));
        }
    }
    fprintf(f, "# EOF\n");
    return fclose(f);
}

static int load_cairn(tsdb *db)
{
    for (size_t s = 0; s < n_data; s++) {
        tsdb_label l[3] = {{TSDB_STR("__name__"), tsdb_str_c(data[s].name)},
                           {tsdb_str_c(data[s].l1), tsdb_str_c(data[s].v1)},
                           {tsdb_str_c(data[s].l2), tsdb_str_c(data[s].v2)}};
        tsdb_batch_series bs = {{l, 3}, data[s].pts, data[s].n};
        tsdb_batch b = {&bs, 1};
        tsdb_append_stats st;
        tsdb_err err;
        if (tsdb_append(db, &b, &st, &err) < 0 || st.accepted != data[s].n) {
            printf("load: %s: %zu of %zu accepted\n", data[s].name, st.accepted, data[s].n);
            return -1;
        }
    }
    return 0;
}

/* ---- Prometheus
 * ----------------------------------------------------------------------------------- */

static int run(char *const argv[], int timeout_s)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < timeout_s * 10; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    unsigned p = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return p;
}

typedef struct body {
    char *p;
    size_t len;
} body;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    body *b = ud;
    b->p = realloc(b->p, b->len + sz * n + 1);
    memcpy(b->p + b->len, p, sz * n);
    b->len += sz * n;
    b->p[b->len] = '\0';
    return sz * n;
}

/* GET http://127.0.0.1:port/<path>; the parsed JSON or NULL. */
static cJSON *prom_get(const char *path)
{
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    body b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    cJSON *j = rc == CURLE_OK && b.p ? cJSON_Parse(b.p) : NULL;
    free(b.p);
    return j;
}

static int start_prometheus(void)
{
    char cfg[128], data_dir[128], listen[64];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", dir);
    snprintf(data_dir, sizeof data_dir, "--storage.tsdb.path=%s/prom", dir);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -1;
    fprintf(f, "global:\n  scrape_interval: 1h\nscrape_configs: []\n");
    fclose(f);
    port = free_port();
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%u", port);
    char cfgarg[160];
    snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfg);
    prom_pid = fork();
    if (prom_pid < 0)
        return -1;
    if (prom_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("prometheus", "prometheus", cfgarg, data_dir, listen,
               "--storage.tsdb.retention.time=100000d", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) { /* 30 s */
        cJSON *j = prom_get("/api/v1/query?query=count(temp)&time=1600001000");
        int ok = 0;
        if (j) {
            cJSON *st = cJSON_GetObjectItem(j, "status");
            ok = cJSON_IsString(st) && !strcmp(st->valuestring, "success");
            cJSON_Delete(j);
        }
        if (ok)
            return 0;
        sleep_ms(100);
    }
    return -1;
}

/* ---- Comparison
 * ---------------------------------------------------------------------------------------- */

static int same(double a, double b)
{
    if (isnan(a) && isnan(b))
        return 1;
    if (a == b)
        return 1;
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b));
}

static double json_value(const cJSON *v)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : "NaN";
    if (!strcmp(s, "+Inf"))
        return INFINITY;
    if (!strcmp(s, "-Inf"))
        return -INFINITY;
    if (!strcmp(s, "NaN"))
        return NAN;
    return strtod(s, NULL);
}

static int labels_match(const cJSON *metric, tsdb_labels l)
{
    if ((size_t)cJSON_GetArraySize(metric) != l.n)
        return 0;
    for (size_t i = 0; i < l.n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)l.v[i].name.len, l.v[i].name.p);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(metric, name);
        if (!cJSON_IsString(v) || strlen(v->valuestring) != l.v[i].value.len ||
            memcmp(v->valuestring, l.v[i].value.p, l.v[i].value.len) != 0)
            return 0;
    }
    return 1;
}

static void url_escape(const char *q, char *out, size_t len)
{
    size_t k = 0;
    for (; *q && k + 4 < len; q++) {
        unsigned char ch = (unsigned char)*q;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '.')
            out[k++] = (char)ch;
        else
            k += (size_t)snprintf(out + k, len - k, "%%%02X", ch);
    }
    out[k] = '\0';
}

/* Compares one query; returns 1 if both sides agree, else prints why and returns 0. */
static int compare(tsdb *db, const char *q, int range, int64_t start, int64_t end, int64_t step)
{
    char esc[1024], path[1400];
    url_escape(q, esc, sizeof esc);
    if (range)
        snprintf(path, sizeof path, "/api/v1/query_range?query=%s&start=%.3f&end=%.3f&step=%.3f",
                 esc, start / 1000.0, end / 1000.0, step / 1000.0);
    else
        snprintf(path, sizeof path, "/api/v1/query?query=%s&time=%.3f", esc, start / 1000.0);
    cJSON *pj = prom_get(path);
    if (!pj) {
        printf("FAIL %s: no answer from Prometheus\n", q);
        return 0;
    }
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    query_expr *e;
    query_result r;
    tsdb_err err;
    int rc = query_parse(&a, q, strlen(q), &e, &err);
    if (rc == 0)
        rc = range ? query_exec_range(db, e, start, end, step, NULL, &a, &r, &err)
                   : query_exec_instant(db, e, start, NULL, &a, &r, &err);
    const cJSON *status = cJSON_GetObjectItem(pj, "status");
    int prom_ok = cJSON_IsString(status) && !strcmp(status->valuestring, "success");
    int ok = 1;
    const char *mode = range ? "range" : "instant";
    if (!prom_ok || rc < 0) {
        if (prom_ok != (rc >= 0)) {
            const cJSON *pe = cJSON_GetObjectItem(pj, "error");
            printf("FAIL %s (%s at %lld): Prometheus %s, Cairn %s\n", q, mode, (long long)start,
                   prom_ok ? "succeeds" : (cJSON_IsString(pe) ? pe->valuestring : "fails"),
                   rc < 0 ? err.msg : "succeeds");
            ok = 0;
        }
        goto out;
    }
    const cJSON *d = cJSON_GetObjectItem(pj, "data");
    const char *type = cJSON_GetObjectItem(d, "resultType")->valuestring;
    const cJSON *res = cJSON_GetObjectItem(d, "result");
    if (!strcmp(type, "scalar")) {
        double pv = json_value(cJSON_GetArrayItem(res, 1));
        if (r.type != QUERY_SCALAR || !same(pv, r.scalar.v)) {
            printf("FAIL %s (%s): scalar %.17g vs %.17g\n", q, mode, pv, r.scalar.v);
            ok = 0;
        }
        goto out;
    }
    int is_vector = !strcmp(type, "vector");
    if ((size_t)cJSON_GetArraySize(res) != r.n_series) {
        printf("FAIL %s (%s at %lld): %d series from Prometheus, %zu from Cairn\n", q, mode,
               (long long)start, cJSON_GetArraySize(res), r.n_series);
        ok = 0;
        goto out;
    }
    for (size_t s = 0; s < r.n_series && ok; s++) {
        const query_series *cs = &r.series[s];
        const cJSON *ps = NULL, *it;
        cJSON_ArrayForEach(it, res)
        {
            if (labels_match(cJSON_GetObjectItem(it, "metric"), cs->labels)) {
                ps = it;
                break;
            }
        }
        if (!ps) {
            printf("FAIL %s (%s at %lld): %s only from Cairn\n", q, mode, (long long)start,
                   tsdb_labels_format(cs->labels, &a));
            ok = 0;
            break;
        }
        if (is_vector) {
            const cJSON *pv = cJSON_GetObjectItem(ps, "value");
            double v = json_value(cJSON_GetArrayItem(pv, 1));
            if (!same(v, cs->pts[0].v)) {
                printf("FAIL %s (%s at %lld): %s %.17g vs %.17g\n", q, mode, (long long)start,
                       tsdb_labels_format(cs->labels, &a), v, cs->pts[0].v);
                ok = 0;
            }
            continue;
        }
        const cJSON *vals = cJSON_GetObjectItem(ps, "values");
        if ((size_t)cJSON_GetArraySize(vals) != cs->n_pts) {
            printf("FAIL %s (%s at %lld): %s has %d points in Prometheus, %zu in Cairn\n", q, mode,
                   (long long)start, tsdb_labels_format(cs->labels, &a), cJSON_GetArraySize(vals),
                   cs->n_pts);
            ok = 0;
            break;
        }
        size_t k = 0;
        cJSON_ArrayForEach(it, vals)
        {
            int64_t t = (int64_t)llround(cJSON_GetArrayItem(it, 0)->valuedouble * 1000);
            double v = json_value(cJSON_GetArrayItem(it, 1));
            if (t != cs->pts[k].t || !same(v, cs->pts[k].v)) {
                printf("FAIL %s (%s at %lld): %s point %zu: %lld %.17g vs %lld %.17g\n", q, mode,
                       (long long)start, tsdb_labels_format(cs->labels, &a), k, (long long)t, v,
                       (long long)cs->pts[k].t, cs->pts[k].v);
                ok = 0;
                break;
            }
            k++;
        }
    }
out:
    cJSON_Delete(pj);
    tsdb_arena_fini(&a);
    return ok;
}

static const char *queries[] = {
    "req_total",
    "rate(req_total[1m])",
    "rate(req_total[5m])",
    "increase(req_total[2m])",
    "irate(req_total[1m])",
    "idelta(temp[1m])",
    "delta(temp[3m])",
    "deriv(temp[5m])",
    "predict_linear(temp[5m], 600)",
    "holt_winters(temp[10m], 0.5, 0.3)",
    "changes(req_total[5m])",
    "resets(req_total[10m])",
    "sum by (job) (rate(req_total[5m]))",
    "avg without (instance) (temp)",
    "max(temp) by (instance)",
    "stddev(temp)",
    "stdvar by (job) (temp)",
    "topk(3, rate(req_total[1m]))",
    "bottomk by (job) (1, temp)",
    "quantile(0.3, temp)",
    "count_values(\"v\", floor(temp / 20))",
    "temp > bool 10",
    "temp * on(job, instance) group_left rate(req_total[1m])",
    "rate(req_total[1m]) / on(job) group_left sum by (job) (rate(req_total[1m]))",
    "temp and on(job) req_total",
    "temp or on(job) req_total",
    "temp unless on(instance) temp < 0",
    "temp + on(job) temp",
    "-temp",
    "histogram_quantile(0.9, rate(lat_bucket[5m]))",
    "max_over_time(temp[2m])",
    "avg_over_time(temp[3m])",
    "quantile_over_time(0.9, temp[5m])",
    "stddev_over_time(temp[5m])",
    "last_over_time(temp[2m])",
    "absent_over_time(req_total{job=\"b\"}[1m])",
    "present_over_time(temp{job=\"a\"}[1m])",
    "timestamp(temp)",
    "timestamp(sort(temp))",
    "rate(req_total[5m:30s])",
    "max_over_time(rate(req_total[1m])[10m:1m])",
    "avg_over_time(temp[10m:] offset 5m)",
    "temp offset -2m",
    "rate(req_total[5m] @ 1600002000)",
    "sum_over_time(temp[5m:1m] @ 1600001234)",
    "max_over_time(temp[10m:30s] @ end())",
    "scalar(sum(temp)) * 2",
    "label_replace(temp, \"x\", \"$1-$1\", \"job\", \"(.)\")",
    "label_join(temp, \"y\", \":\", \"job\", \"instance\")",
    "clamp(temp, -10, 10)",
    "round(temp, 5)",
    "hour(timestamp(temp))",
    "sum(weird) by (g)",
    "avg(weird)",
    "max by (g) (weird)",
    "quantile(0.5, weird)",
    "topk(2, weird)",
    "sort_desc(weird)",
    "rate(weird[1m])",
    "avg_over_time(weird[2m])",
    "stddev_over_time(weird[2m])",
    "weird / 0",
    "weird % 3",
    "year(weird)",
    "count_values(\"v\", weird)",
};

int main(void)
{
    if (run((char *[]){"prometheus", "--version", NULL}, 20) != 0 ||
        run((char *[]){"promtool", "--version", NULL}, 20) != 0) {
        printf("prometheus or promtool not installed: skipped\n0 passed, 0 failed\n");
        return 0;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    snprintf(dir, sizeof dir, "/tmp/cairn-promql-prom-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gen();
    char om[128], promdir[128], cairndir[128];
    snprintf(om, sizeof om, "%s/data.om", dir);
    snprintf(promdir, sizeof promdir, "%s/prom", dir);
    snprintf(cairndir, sizeof cairndir, "%s/cairn", dir);
    tsdb *db = NULL;
    int rc = 1;
    if (write_openmetrics(om) < 0 ||
        run((char *[]){"promtool", "tsdb", "create-blocks-from", "openmetrics", om, promdir, NULL},
            120) != 0) {
        printf("FAIL: promtool could not import the data\n");
        n_fail++;
        goto done;
    }
    if (start_prometheus() < 0) {
        printf("FAIL: prometheus did not start\n");
        n_fail++;
        goto done;
    }
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = cairndir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    o.retention_ms = -1;
    o.block_ms = 24 * 3600 * 1000;
    tsdb_err err;
    if (tsdb_open(&o, &db, &err) < 0 || load_cairn(db) < 0) {
        printf("FAIL: cairn could not load the data\n");
        n_fail++;
        goto done;
    }
    for (size_t k = 0; k < sizeof queries / sizeof queries[0]; k++) {
        const char *q = queries[k];
        int ok = compare(db, q, 0, (T0 + 1234) * 1000 + 500, 0, 0) &&
                 compare(db, q, 0, (T0 + 3000) * 1000, 0, 0) &&
                 compare(db, q, 1, (T0 + 300) * 1000, (T0 + 3500) * 1000, 60000) &&
                 compare(db, q, 1, (T0 + 1000) * 1000, (T0 + 1111) * 1000, 37000);
        if (ok)
            n_pass++;
        else
            n_fail++;
    }
    rc = 0;
done:
    kill_prom();
    tsdb_close(db);
    rm_rf(dir);
    curl_global_cleanup();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return rc || n_fail ? 1 : 0;
}
