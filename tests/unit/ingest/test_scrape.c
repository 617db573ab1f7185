/* tests/unit/ingest/test_scrape.c -- the scrape loop against an in-process HTTP target and a
 * real tsdb in a temporary directory.
 *
 * Checks the stored values and timestamps (report series, exported_ labels, honor_labels,
 * metric relabeling), the exact staleness-marker bits when a series leaves a page and on
 * shutdown, the request headers (Accept, timeout, Authorization), sample_limit failures, and the
 * targets/metadata JSON.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <signal.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"

/* ---- A tiny HTTP target ---------------------------------------------------------------------- */

typedef struct httpd {
    int fd;
    uint16_t port;
    pthread_t th;
    pthread_mutex_t mu;
    int stop;
    char page[4096];
    const char *big; /* when set, served instead of page */
    char ctype[128];
    int status;
    char last_req[4096];
    int n_req;
} httpd;

static void *httpd_main(void *arg)
{
    httpd *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int stop = h->stop;
        pthread_mutex_unlock(&h->mu);
        if (stop)
            break;
        struct pollfd pfd = {h->fd, POLLIN, 0};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        size_t n = 0;
        for (int i = 0; i < 100 && n < sizeof req - 1; i++) {
            ssize_t r = read(c, req + n, sizeof req - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = 0;
        char head[512];
        pthread_mutex_lock(&h->mu);
        memcpy(h->last_req, req, n + 1);
        h->n_req++;
        const char *body = h->big ? h->big : h->page;
        size_t blen = strlen(body);
        int len = snprintf(head, sizeof head,
                           "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n",
                           h->status, h->ctype, blen);
        ssize_t w = write(c, head, (size_t)len);
        for (size_t off = 0; w >= 0 && off < blen; off += (size_t)w)
            w = write(c, body + off, blen - off);
        pthread_mutex_unlock(&h->mu);
        close(c);
    }
    return NULL;
}

static void httpd_start(httpd *h)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    h->status = 200;
    snprintf(h->ctype, sizeof h->ctype, "text/plain; version=0.0.4");
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(h->fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(h->fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(h->fd, (struct sockaddr *)&a, &al);
    h->port = ntohs(a.sin_port);
    pthread_create(&h->th, NULL, httpd_main, h);
}

static void httpd_stop(httpd *h)
{
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    close(h->fd);
    pthread_mutex_destroy(&h->mu);
}

static void httpd_set(httpd *h, int status, const char *page)
{
    pthread_mutex_lock(&h->mu);
    h->big = NULL;
    h->status = status;
    snprintf(h->page, sizeof h->page, "%s", page);
    pthread_mutex_unlock(&h->mu);
}

/* Serves big (borrowed until the next httpd_set*) instead of the small page. */
static void httpd_set_big(httpd *h, const char *big)
{
    pthread_mutex_lock(&h->mu);
    h->big = big;
    pthread_mutex_unlock(&h->mu);
}

static int httpd_requests(httpd *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->n_req;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (at most 10 s) until the target has answered n more requests and the scraper has had
 * time to store the last one. */
static void wait_scrapes(httpd *h, int n)
{
    int want = httpd_requests(h) + n;
    for (int i = 0; i < 1000 && httpd_requests(h) < want; i++)
        sleep_ms(10);
    assert_true(httpd_requests(h) >= want);
    sleep_ms(60);
}

/* ---- Fixture --------------------------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char cfg[128];
    tsdb *db;
    httpd h;
} fx;

static void fx_open(fx *f, const char *yml_fmt)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-scrape-ut-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    httpd_start(&f->h);
    snprintf(f->cfg, sizeof f->cfg, "%s/cairn.yml", f->dir);
    FILE *c = fopen(f->cfg, "w");
    assert_non_null(c);
    for (const char *p = yml_fmt; *p; p++) { /* PORT stands for the target's port */
        if (!strncmp(p, "PORT", 4)) {
            fprintf(c, "%u", f->h.port);
            p += 3;
        } else {
            fputc(*p, c);
        }
    }
    fclose(c);
    tsdb_opts o;
    tsdb_opts_default(&o);
    char data[96];
    snprintf(data, sizeof data, "%s/data", f->dir);
    o.dir = data;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    tsdb_err err;
    int rc = tsdb_open(&o, &f->db, &err);
    if (rc)
        fail_msg("tsdb_open: %s", err.msg);
}

static void fx_close(fx *f)
{
    tsdb_close(f->db);
    httpd_stop(&f->h);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* Samples of the one series selected by name and an optional label=value; returns the count
 * and fills out (up to cap). *lbls gets the label set, formatted. */
static size_t read_series(tsdb *db, const char *name, const char *lname, const char *lval,
                          tsdb_sample *out, size_t cap, char *lbls, size_t lcap)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_querier *q;
    tsdb_err err;
    assert_int_equal(tsdb_querier_open(db, 0, INT64_MAX, &q, &err), 0);
    tsdb_matcher *ms[2];
    size_t nm = 1;
    assert_int_equal(
        tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("__name__"), tsdb_str_c(name), &a, &ms[0], &err),
        0);
    if (lname) {
        assert_int_equal(
            tsdb_matcher_new(TSDB_MATCH_EQ, tsdb_str_c(lname), tsdb_str_c(lval), &a, &ms[1], &err),
            0);
        nm = 2;
    }
    tsdb_series_set *ss;
    assert_int_equal(tsdb_querier_select(q, (const tsdb_matcher *const *)ms, nm, &ss, &err), 0);
    tsdb_labels l;
    tsdb_iter *it;
    size_t n = 0;
    int found = 0;
    while (tsdb_series_next(ss, &l, &it) > 0) {
        found++;
        if (lbls)
            snprintf(lbls, lcap, "%s", tsdb_labels_format(l, &a));
        tsdb_sample s;
        while (tsdb_iter_next(it, &s) > 0) {
            if (n < cap)
                out[n] = s;
            n++;
        }
    }
    if (found > 1)
        fail_msg("%d series named %s", found, name);
    tsdb_querier_close(q);
    tsdb_arena_fini(&a);
    return n;
}

static void dump_tail(const tsdb_sample *sm, size_t n)
{
    for (size_t i = n > 4 ? n - 4 : 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &sm[i].v, sizeof b);
        fprintf(stderr, "  sample %zu: t=%lld v=%g bits=%016llx\n", i, (long long)sm[i].t, sm[i].v,
                (unsigned long long)b);
    }
}

static int is_stale(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b == TSDB_STALE_NAN_BITS;
}

/* Did the scrape of job at time t fail (up == 0 at t)? A loaded machine can make a 100 ms scrape
 * time out; such a scrape legitimately writes staleness markers in the middle of a series. */
static int failed_at(tsdb *db, const char *job, int64_t t)
{
    static tsdb_sample up[1024];
    size_t n = read_series(db, "up", "job", job, up, 1024, NULL, 0);
    for (size_t i = 0; i < n && i < 1024; i++)
        if (up[i].t == t)
            return up[i].v == 0.0;
    return 0;
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void test_scrape_store_and_staleness(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
                "scrape_configs:\n"
                "  - job_name: unit\n"
                "    authorization: {credentials: tok3n}\n"
                "    params: {module: [m1], 'a b': ['x&y']}\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT'], labels: {team: a}}]\n"
                "    metric_relabel_configs:\n"
                "      - {source_labels: [__name__], regex: 'dropme', action: drop}\n"
                "  - job_name: dropped\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n"
                "    relabel_configs: [{source_labels: [job], regex: nope, action: keep}]\n");
    httpd_set(&f.h, 200,
              "# HELP a_total Things.\n# TYPE a_total counter\n"
              "a_total{x=\"1\"} 10\na_total{x=\"2\"} 20\n"
              "clash{job=\"inner\",instance=\"i1\",exported_job=\"e\"} 5\n"
              "dropme 1\nwith_ts 3 1000\n");
    ingest_scraper *s;
    tsdb_err err;
    int rc = ingest_scraper_start(f.db, f.cfg, &s, &err);
    if (rc)
        fail_msg("start: %s", err.msg);
    wait_scrapes(&f.h, 3);

    /* Request headers. */
    pthread_mutex_lock(&f.h.mu);
    char req[4096];
    memcpy(req, f.h.last_req, sizeof req);
    pthread_mutex_unlock(&f.h.mu);
    assert_non_null(strstr(req, "GET /metrics?a+b=x%26y&module=m1 HTTP/1.1"));
    assert_non_null(strstr(req, "Accept: application/openmetrics-text;version=1.0.0,"));
    assert_non_null(strstr(req, "text/plain;version=0.0.4;q=0.5"));
    assert_non_null(strstr(req, "X-Prometheus-Scrape-Timeout-Seconds: 0.1\r\n"));
    assert_non_null(strstr(req, "Authorization: Bearer tok3n\r\n"));
    assert_non_null(strstr(req, "Accept-Encoding: gzip"));

    /* The second series leaves the page. */
    httpd_set(&f.h, 200,
              "a_total{x=\"1\"} 11\nclash{job=\"inner\",instance=\"i1\",exported_job=\"e\"} 5\n");
    wait_scrapes(&f.h, 2);

    char *targets;
    tsdb_buf tb;
    tsdb_buf_init(&tb);
    assert_int_equal(ingest_scraper_targets_json(s, NULL, &tb), 0);
    tsdb_buf_putc(&tb, 0);
    targets = (char *)tb.p;
    char want[256];
    snprintf(want, sizeof want,
             "\"labels\":{\"instance\":\"127.0.0.1:%u\",\"job\":\"unit\",\"team\":\"a\"},"
             "\"scrapePool\":\"unit\",\"scrapeUrl\":\"http://127.0.0.1:%u/"
             "metrics?a+b=x%%26y&module=m1\"",
             f.h.port, f.h.port);
    assert_non_null(strstr(targets, want));
    assert_non_null(strstr(targets, "\"health\":\"up\""));
    assert_non_null(strstr(targets, "\"scrapeInterval\":\"100ms\",\"scrapeTimeout\":\"100ms\""));
    /* The keep rule dropped the second job's target: it is listed with its discovered labels. */
    snprintf(want, sizeof want,
             "\"droppedTargets\":[{\"discoveredLabels\":{\"__address__\":\"127.0.0.1:%u\"",
             f.h.port);
    assert_non_null(strstr(targets, want));
    tb.len = 0;
    assert_int_equal(ingest_scraper_targets_json(s, "dropped", &tb), 0);
    tsdb_buf_putc(&tb, 0);
    assert_non_null(strstr((char *)tb.p, "{\"activeTargets\":[],\"droppedTargets\":[{"));
    assert_int_equal(ingest_scraper_targets_json(s, "bogus", &tb), TSDB_EINVAL);
    tb.len = 0;
    ingest_scraper_metadata_json(s, TSDB_STR("a_total"), -1, &tb);
    tsdb_buf_putc(&tb, 0);
    assert_string_equal(
        (char *)tb.p, "{\"a_total\":[{\"type\":\"counter\",\"help\":\"Things.\",\"unit\":\"\"}]}");
    tb.len = 0;
    ingest_scraper_metadata_json(s, TSDB_STR(""), 0, &tb);
    tsdb_buf_putc(&tb, 0);
    assert_string_equal((char *)tb.p, "{}");
    tsdb_buf_fini(&tb);

    int64_t stop_t = tsdb_now_ms();
    ingest_scraper_stop(s);

    tsdb_sample sm[256];
    char lbls[512];
    /* x="2": 20 for the first scrapes, then one stale marker, nothing after it. */
    size_t n = read_series(f.db, "a_total", "x", "2", sm, 256, lbls, sizeof lbls);
    assert_true(n >= 4);
    assert_true(n < 256);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(sm[i].v == 20.0 || (is_stale(sm[i].v) && failed_at(f.db, "unit", sm[i].t)));
    char wantl[256];
    snprintf(wantl, sizeof wantl,
             "a_total{instance=\"127.0.0.1:%u\", job=\"unit\", team=\"a\", "
             "x=\"2\"}",
             f.h.port);
    assert_string_equal(lbls, wantl);
    /* x="1": values 10 then 11, stale only at shutdown (after stop_t - interval). */
    n = read_series(f.db, "a_total", "x", "1", sm, 256, NULL, 0);
    assert_true(n >= 5);
    assert_true(sm[0].v == 10.0);
    assert_true(sm[n - 2].v == 11.0);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    assert_true(sm[n - 1].t >= stop_t);
    for (size_t i = 1; i < n; i++)
        assert_true(sm[i].t > sm[i - 1].t);
    /* honor_labels=false: the page's job/instance become exported_*, and exported_job, already
     * taken, pushes the page's job to exported_exported_job. */
    n = read_series(f.db, "clash", NULL, NULL, sm, 256, lbls, sizeof lbls);
    snprintf(wantl, sizeof wantl,
             "clash{exported_exported_job=\"inner\", exported_instance=\"i1\", exported_job=\"e\", "
             "instance=\"127.0.0.1:%u\", job=\"unit\", team=\"a\"}",
             f.h.port);
    assert_string_equal(lbls, wantl);
    /* dropme was removed by metric_relabel_configs; with_ts kept its own timestamp. */
    assert_int_equal(read_series(f.db, "dropme", NULL, NULL, sm, 256, NULL, 0), 0);
    n = read_series(f.db, "with_ts", NULL, NULL, sm, 256, NULL, 0);
    assert_int_equal(n, 1);
    assert_int_equal(sm[0].t, 1000);
    /* Report series: up 1 each scrape, then stale; the first scrape added 4 series. */
    n = read_series(f.db, "up", "job", "unit", sm, 256, NULL, 0);
    assert_true(n >= 6);
    size_t ups = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        assert_true(sm[i].v == 1.0 || sm[i].v == 0.0);
        ups += sm[i].v == 1.0;
    }
    assert_true(ups >= 4);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    n = read_series(f.db, "scrape_series_added", "job", "unit", sm, 256, NULL, 0);
    assert_true(sm[0].v == 4.0); /* a_total x2, clash, with_ts; dropme is not counted */
    assert_true(sm[1].v == 0.0);
    n = read_series(f.db, "scrape_samples_scraped", "job", "unit", sm, 256, NULL, 0);
    assert_true(sm[0].v == 5.0);
    n = read_series(f.db, "scrape_samples_post_metric_relabeling", "job", "unit", sm, 256, NULL, 0);
    assert_true(sm[0].v == 4.0);
    /* The dropped job never scraped. */
    assert_int_equal(read_series(f.db, "up", "job", "dropped", sm, 256, NULL, 0), 0);
    fx_close(&f);
}

static void test_failures_store_nothing(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
                "scrape_configs:\n"
                "  - job_name: lim\n"
                "    sample_limit: 2\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n"
                "  - job_name: big\n"
                "    body_size_limit: 16B\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n"
                "  - job_name: lim2\n"
                "    honor_labels: true\n"
                "    label_limit: 3\n"
                "    static_configs: [{targets: ['localhost:PORT']}]\n");
    httpd_set(&f.h, 200, "m{a=\"1\"} 1\n");
    ingest_scraper *s;
    tsdb_err err;
    assert_int_equal(ingest_scraper_start(f.db, f.cfg, &s, &err), 0);
    wait_scrapes(&f.h, 12); /* three targets share the server */
    /* Three samples > sample_limit 2; four labels > label_limit 3. */
    httpd_set(&f.h, 200, "m{a=\"1\"} 2\nm{a=\"2\"} 2\nm{a=\"3\"} 2\n");
    wait_scrapes(&f.h, 12); /* three targets share the server */
    tsdb_buf tb;
    tsdb_buf_init(&tb);
    ingest_scraper_targets_json(s, "active", &tb);
    tsdb_buf_putc(&tb, 0);
    assert_non_null(strstr((char *)tb.p, "\"lastError\":\"sample limit exceeded (limit: 2)\""));
    assert_non_null(
        strstr((char *)tb.p, "\"lastError\":\"body size limit exceeded (limit: 16 bytes)\""));
    tsdb_buf_fini(&tb);
    /* A server error, then a garbage page. */
    httpd_set(&f.h, 500, "m{a=\"9\"} 9\n");
    wait_scrapes(&f.h, 12); /* three targets share the server */
    httpd_set(&f.h, 200, "m{a=\"8\"} 8\nm{a=\n");
    wait_scrapes(&f.h, 12); /* three targets share the server */
    tsdb_buf_init(&tb);
    ingest_scraper_targets_json(s, "active", &tb);
    tsdb_buf_putc(&tb, 0);
    assert_non_null(strstr((char *)tb.p, "\"lastError\":\"2:5: expected '\\\"' to start"));
    assert_non_null(strstr((char *)tb.p, "\"health\":\"down\""));
    tsdb_buf_fini(&tb);
    /* Duplicate label names fail the scrape. */
    httpd_set(&f.h, 200, "m{a=\"7\"} 1\nm{b=\"1\",b=\"2\"} 1\n");
    wait_scrapes(&f.h, 12);
    tsdb_buf_init(&tb);
    ingest_scraper_targets_json(s, "active", &tb);
    tsdb_buf_putc(&tb, 0);
    assert_non_null(strstr((char *)tb.p, "\"lastError\":\"line 2: label name \\\"b\\\" is not "
                                         "unique: invalid sample\""));
    tsdb_buf_fini(&tb);
    ingest_scraper_stop(s);

    tsdb_sample sm[512];
    /* Only the value 1 was ever stored for m{a="1"} (both jobs write it, under their own job
     * label), followed by a stale marker when the failing scrapes began. */
    size_t n = read_series(f.db, "m", "job", "lim", sm, 512, NULL, 0);
    assert_true(n >= 2);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(sm[i].v == 1.0);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    assert_int_equal(read_series(f.db, "m", "a", "2", sm, 512, NULL, 0), 0);
    assert_int_equal(read_series(f.db, "m", "a", "9", sm, 512, NULL, 0), 0);
    assert_int_equal(read_series(f.db, "m", "a", "8", sm, 512, NULL, 0), 0);
    assert_int_equal(read_series(f.db, "m", "a", "7", sm, 512, NULL, 0), 0);
    /* up: 1s, then 0s, then the shutdown marker. */
    n = read_series(f.db, "up", "job", "lim", sm, 512, NULL, 0);
    size_t ones = 0;
    while (ones + 1 < n && sm[ones].v == 1.0)
        ones++;
    assert_true(ones >= 2);
    assert_true(ones + 1 < n);
    for (size_t i = ones; i + 1 < n; i++)
        assert_true(sm[i].v == 0.0);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    /* label_limit 3 on lim2: m{a,instance,job,__name__} is 4 labels: always failing. */
    assert_int_equal(read_series(f.db, "m", "job", "lim2", sm, 512, NULL, 0), 0);
    /* body_size_limit 16: the first page (11 bytes) was stored, the 33-byte one was not. */
    n = read_series(f.db, "m", "job", "big", sm, 512, NULL, 0);
    assert_true(n >= 2 && sm[0].v == 1.0 && is_stale(sm[n - 1].v));
    fx_close(&f);
}

static void test_reload_and_bad_config(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
                "scrape_configs:\n"
                "  - job_name: one\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n"
                "  - job_name: two\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n");
    httpd_set(&f.h, 200, "r 1\n");
    ingest_scraper *s;
    tsdb_err err;
    assert_int_equal(ingest_scraper_start(f.db, f.cfg, &s, &err), 0);
    wait_scrapes(&f.h, 8); /* two targets share the server */
    /* A broken file: the error names the key and line, the old config keeps running. */
    FILE *c = fopen(f.cfg, "w");
    fprintf(c, "scrape_configs:\n  - job_name: one\n    scrape_timeout: 1s\n"
               "    scrape_interval: 100ms\n");
    fclose(c);
    assert_int_equal(ingest_scraper_reload(s, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "cairn.yml:2: scrape timeout greater than scrape interval"));
    wait_scrapes(&f.h, 2);
    /* Remove job two. */
    c = fopen(f.cfg, "w");
    fprintf(c,
            "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
            "scrape_configs:\n  - job_name: one\n"
            "    static_configs: [{targets: ['127.0.0.1:%u']}]\n",
            f.h.port);
    fclose(c);
    assert_int_equal(ingest_scraper_reload(s, &err), 0);
    sleep_ms(600); /* 2 intervals + 10 % for the removed target's markers, and margin */
    tsdb_buf tb;
    tsdb_buf_init(&tb);
    ingest_scraper_targets_json(s, NULL, &tb);
    tsdb_buf_putc(&tb, 0);
    assert_null(strstr((char *)tb.p, "\"scrapePool\":\"two\""));
    assert_non_null(strstr((char *)tb.p, "\"scrapePool\":\"one\""));
    tsdb_buf_fini(&tb);
    tsdb_sample sm[256];
    size_t n = read_series(f.db, "r", "job", "two", sm, 256, NULL, 0);
    assert_true(n >= 2);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    size_t n_two = n;
    /* Job one was not interrupted: no stale marker before shutdown. */
    n = read_series(f.db, "r", "job", "one", sm, 256, NULL, 0);
    for (size_t i = 0; i < n; i++)
        assert_true(!is_stale(sm[i].v) || failed_at(f.db, "one", sm[i].t));
    ingest_scraper_stop(s);
    /* Shutdown adds nothing for the removed target (its markers were written already). */
    assert_int_equal(read_series(f.db, "r", "job", "two", sm, 256, NULL, 0), n_two);
    n = read_series(f.db, "r", "job", "one", sm, 256, NULL, 0);
    if (!is_stale(sm[n - 1].v))
        dump_tail(sm, n);
    assert_true(is_stale(sm[n - 1].v));
    fx_close(&f);
}

/* A reload that changes metric_relabel_configs of a kept target applies the new rules at once (its
 * label cache is dropped), and a page that swaps most of its series keeps storing them right. */
static void test_relabel_change_and_cache_turnover(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
                "scrape_configs:\n"
                "  - job_name: one\n"
                "    static_configs: [{targets: ['127.0.0.1:PORT']}]\n");
    httpd_set(&f.h, 200, "r 1\n");
    ingest_scraper *s;
    tsdb_err err;
    assert_int_equal(ingest_scraper_start(f.db, f.cfg, &s, &err), 0);
    wait_scrapes(&f.h, 3);
    FILE *c = fopen(f.cfg, "w");
    fprintf(c,
            "global: {scrape_interval: 100ms, scrape_timeout: 100ms}\n"
            "scrape_configs:\n  - job_name: one\n"
            "    static_configs: [{targets: ['127.0.0.1:%u']}]\n"
            "    metric_relabel_configs: [{target_label: added, replacement: 'yes'}]\n",
            f.h.port);
    fclose(c);
    assert_int_equal(ingest_scraper_reload(s, &err), 0);
    wait_scrapes(&f.h, 3);

    /* 1500 series, then a page with none of them, then the 1500 again. */
    char *big = malloc(64 * 1500);
    size_t n = 0;
    for (int i = 0; i < 1500; i++)
        n += (size_t)snprintf(big + n, 64 * 1500 - n, "big{i=\"%d\"} %d\n", i, i);
    pthread_mutex_lock(&f.h.mu);
    f.h.status = 200;
    pthread_mutex_unlock(&f.h.mu);
    httpd_set_big(&f.h, big);
    wait_scrapes(&f.h, 3);
    httpd_set(&f.h, 200, "r 2\n");
    wait_scrapes(&f.h, 3);
    httpd_set_big(&f.h, big);
    wait_scrapes(&f.h, 3);
    ingest_scraper_stop(s);
    free(big);

    tsdb_sample sm[256];
    /* The rule applies from the first scrape after the reload. */
    size_t m = read_series(f.db, "r", "added", "yes", sm, 256, NULL, 0);
    assert_true(m >= 3);
    assert_true(sm[0].v == 1.0);
    assert_true(is_stale(sm[m - 1].v));
    /* The series without the label ended with a stale marker at the reload. */
    m = read_series(f.db, "r", "added", "", sm, 256, NULL, 0);
    assert_true(m >= 2);
    assert_true(is_stale(sm[m - 1].v));
    /* big{i="1499"}: its value in both periods, a stale marker in between and at the end. */
    m = read_series(f.db, "big", "i", "1499", sm, 256, NULL, 0);
    size_t vals = 0, stale = 0;
    for (size_t i = 0; i < m; i++) {
        if (is_stale(sm[i].v))
            stale++;
        else if (sm[i].v == 1499.0)
            vals++;
        else
            fail_msg("unexpected value %g", sm[i].v);
    }
    assert_true(vals >= 4);
    assert_true(stale >= 2);
    fx_close(&f);
}

int main(void)
{
    /* The in-process targets may write to a scraper that already hung up (a timeout): that must
     * be an EPIPE for the target, not a signal that kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_store_and_staleness),
        cmocka_unit_test(test_failures_store_nothing),
        cmocka_unit_test(test_reload_and_bad_config),
        cmocka_unit_test(test_relabel_change_and_cache_turnover),
    };
    tsdb_log_set_level(TSDB_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
