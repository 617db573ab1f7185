/* tools/bench_write.c -- `cairnctl bench write URL`: a bounded remote-write load generator.
 *
 * Generates node-exporter-shaped series deterministically from a seed: about 45 metric names
 * per instance (CPU seconds by cpu and mode, memory, network and disk counters by device,
 * filesystem gauges, load, a classic request-duration histogram with 11 buckets, process and Go
 * runtime series), with jittered counters, random-walk gauges and cumulative buckets moving in
 * the units the real exporter reports (whole bytes and packets, hundredths of CPU seconds, whole
 * pages of memory, constants for sizes), so every server receives the same realistic samples.
 * Series are sharded over the connections by index (like Prometheus' queue shards), so one series'
 * samples always travel in order on one connection. Connections move through the data time in
 * rounds (--round, a barrier between rounds), so no connection runs far ahead of another and a
 * server's too-old window is respected.
 *
 * Every request is encoded before the clock starts, so the figure measures the server, not the
 * generator. Output ends with one line of key=value figures.
 */
#include "tools/cairnctl.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "cairn.h"

/* ---- Deterministic generator ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

enum gen_kind { GEN_COUNTER, GEN_GAUGE, GEN_BUCKET, GEN_HSUM, GEN_HCOUNT };

typedef struct gen_series {
    tsdb_label lbls[6];
    size_t n_lbls;
    enum gen_kind kind;
    double v;       /* current value */
    double scale;   /* increment or walk size */
    double quantum; /* values move in multiples of this (1 for integers, 0.01 for centi-units) */
    double p_zero;  /* probability that a counter does not move in a scrape */
    double le;      /* bucket bound (GEN_BUCKET) */
    size_t inst;    /* instance index */
    uint64_t rng;
} gen_series;

static const char *const cpu_modes[] = {"idle",    "iowait", "irq",    "nice",
                                        "softirq", "steal",  "system", "user"};
static const char *const mem_names[] = {
    "node_memory_MemTotal_bytes", "node_memory_MemFree_bytes", "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",  "node_memory_Cached_bytes",  "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes", "node_memory_Active_bytes",  "node_memory_Inactive_bytes",
    "node_memory_Dirty_bytes"};
static const char *const net_names[] = {
    "node_network_receive_bytes_total",   "node_network_transmit_bytes_total",
    "node_network_receive_packets_total", "node_network_transmit_packets_total",
    "node_network_receive_errs_total",    "node_network_transmit_errs_total",
    "node_network_receive_drop_total",    "node_network_transmit_drop_total"};
static const char *const disk_names[] = {
    "node_disk_reads_completed_total", "node_disk_writes_completed_total",
    "node_disk_read_bytes_total", "node_disk_written_bytes_total",
    "node_disk_io_time_seconds_total"};
static const char *const fs_names[] = {"node_filesystem_avail_bytes", "node_filesystem_size_bytes",
                                       "node_filesystem_free_bytes"};
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, INFINITY};

typedef struct gen {
    gen_series *s;
    size_t n, cap;
    tsdb_arena a; /* label strings */
    char inst[32], job[8];
} gen;

static gen_series *gen_add(gen *g, const char *name, enum gen_kind kind, double v, double scale,
                           double quantum, size_t inst, const char *instance)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->s = xrealloc(g->s, g->cap * sizeof(*g->s));
    }
    gen_series *s = &g->s[g->n++];
    memset(s, 0, sizeof *s);
    s->lbls[0] = (tsdb_label){tsdb_str_c("__name__"), tsdb_arena_str(&g->a, tsdb_str_c(name))};
    s->lbls[1] = (tsdb_label){tsdb_str_c("instance"), tsdb_str_c(instance)};
    s->lbls[2] = (tsdb_label){tsdb_str_c("job"), tsdb_str_c("node")};
    s->n_lbls = 3;
    s->kind = kind;
    s->v = v;
    s->scale = scale;
    s->quantum = quantum;
    s->inst = inst;
    return s;
}

static void gen_label(gen *g, gen_series *s, const char *name, const char *value)
{
    s->lbls[s->n_lbls++] = (tsdb_label){tsdb_str_c(name), tsdb_arena_str(&g->a, tsdb_str_c(value))};
    tsdb_labels_sort(s->lbls, s->n_lbls);
}

/* Adds one instance's series (about 102), with node exporter's value shapes: integer byte and
 * packet counters, CPU seconds in hundredths, page-multiple memory gauges, constants (sizes, boot
 * time), error counters that rarely move. */
static void gen_instance(gen *g, size_t inst)
{
    char buf[64];
    snprintf(buf, sizeof buf, "host-%05zu:9100", inst);
    const char *instance = tsdb_arena_str(&g->a, tsdb_str_c(buf)).p;
    static const double cpu_scale[8] = {14, 0.05, 0.01, 0.02, 0.03, 0.004, 0.4, 0.6};
    for (int cpu = 0; cpu < 4; cpu++)
        for (size_t m = 0; m < 8; m++) {
            gen_series *s =
                gen_add(g, "node_cpu_seconds_total", GEN_COUNTER, round(1e5 * cpu_scale[m]) + cpu,
                        cpu_scale[m], 0.01, inst, instance);
            s->p_zero = m == 2 || m == 5 ? 0.7 : 0;
            snprintf(buf, sizeof buf, "%d", cpu);
            gen_label(g, s, "cpu", buf);
            gen_label(g, s, "mode", cpu_modes[m]);
        }
    for (size_t i = 0; i < 10; i++) {
        int constant = i == 0 || i == 5; /* MemTotal, SwapTotal */
        gen_add(g, mem_names[i], GEN_GAUGE, 4096.0 * (2000000 / (i + 1)), constant ? 0 : 4e6, 4096,
                inst, instance);
    }
    for (size_t i = 0; i < 8; i++)
        for (int d = 0; d < 2; d++) {
            gen_series *s = gen_add(g, net_names[i], GEN_COUNTER, 1e6,
                                    i < 2   ? 2e5
                                    : i < 4 ? 150
                                            : 2,
                                    1, inst, instance);
            s->p_zero = i >= 4 ? 0.97 : 0;
            gen_label(g, s, "device", d ? "lo" : "eth0");
        }
    for (size_t i = 0; i < 5; i++)
        for (int d = 0; d < 2; d++)
            gen_label(g,
                      gen_add(g, disk_names[i], GEN_COUNTER, 5e5,
                              i == 4  ? 0.3
                              : i < 2 ? 40
                                      : 2e5,
                              i == 4  ? 0.001
                              : i < 2 ? 1
                                      : 512,
                              inst, instance),
                      "device", d ? "sdb" : "sda");
    for (size_t i = 0; i < 3; i++)
        for (int d = 0; d < 2; d++) {
            gen_series *s = gen_add(g, fs_names[i], GEN_GAUGE, 4096.0 * 12000000, i == 1 ? 0 : 1e6,
                                    4096, inst, instance);
            gen_label(g, s, "device", d ? "/dev/sda2" : "/dev/sda1");
            gen_label(g, s, "fstype", "ext4");
            gen_label(g, s, "mountpoint", d ? "/boot" : "/");
        }
    gen_add(g, "node_load1", GEN_GAUGE, 1.0, 0.2, 0.01, inst, instance);
    gen_add(g, "node_load5", GEN_GAUGE, 1.0, 0.08, 0.01, inst, instance);
    gen_add(g, "node_load15", GEN_GAUGE, 1.0, 0.03, 0.01, inst, instance);
    gen_add(g, "node_context_switches_total", GEN_COUNTER, 1e7, 3e4, 1, inst, instance);
    gen_add(g, "node_intr_total", GEN_COUNTER, 1e7, 2e4, 1, inst, instance);
    gen_add(g, "node_forks_total", GEN_COUNTER, 1e5, 20, 1, inst, instance);
    gen_add(g, "node_procs_running", GEN_GAUGE, 3, 1.5, 1, inst, instance);
    gen_add(g, "node_procs_blocked", GEN_GAUGE, 0, 0.6, 1, inst, instance);
    for (size_t b = 0; b < 11; b++) {
        gen_series *s =
            gen_add(g, "http_request_duration_seconds_bucket", GEN_BUCKET, 0, 0, 1, inst, instance);
        s->le = buckets[b];
        gen_label(g, s, "handler", "/metrics");
        if (isinf(buckets[b]))
            snprintf(buf, sizeof buf, "+Inf");
        else
            snprintf(buf, sizeof buf, "%g", buckets[b]);
        gen_label(g, s, "le", buf);
    }
    gen_label(
        g, gen_add(g, "http_request_duration_seconds_sum", GEN_HSUM, 0, 0, 0.001, inst, instance),
        "handler", "/metrics");
    gen_label(
        g, gen_add(g, "http_request_duration_seconds_count", GEN_HCOUNT, 0, 0, 1, inst, instance),
        "handler", "/metrics");
    gen_add(g, "node_boot_time_seconds", GEN_GAUGE, 1.7e9, 0, 1, inst, instance);
    gen_add(g, "node_time_seconds", GEN_COUNTER, 1.7e9, 15, 0.001, inst, instance);
    gen_add(g, "process_cpu_seconds_total", GEN_COUNTER, 100, 0.05, 0.01, inst, instance);
    gen_add(g, "process_resident_memory_bytes", GEN_GAUGE, 4096.0 * 5000, 1e5, 4096, inst,
            instance);
    gen_add(g, "process_open_fds", GEN_GAUGE, 10, 1.5, 1, inst, instance);
    gen_add(g, "go_goroutines", GEN_GAUGE, 8, 1.5, 1, inst, instance);
    gen_add(g, "go_memstats_alloc_bytes", GEN_GAUGE, 3e6, 2e5, 8, inst, instance);
}

/* Rounds x to a multiple of q. */
static double quantize(double x, double q)
{
    return q > 0 ? round(x / q) * q : x;
}

/* Advances series i by one scrape. Histogram parts of an instance are computed together. */
static void gen_step(gen *g, size_t i, uint64_t *rng, double *hist_obs)
{
    gen_series *s = &g->s[i];
    switch (s->kind) {
    case GEN_COUNTER:
        if (s->p_zero > 0 && rng_unit(rng) < s->p_zero)
            break;
        s->v = quantize(s->v + s->scale * (0.5 + rng_unit(rng)), s->quantum);
        break;
    case GEN_GAUGE:
        if (s->scale > 0)
            s->v = quantize(fabs(s->v + s->scale * (rng_unit(rng) - 0.5)), s->quantum);
        break;
    case GEN_BUCKET: {
        /* Observations of this scrape: hist_obs[0..10] are counts per bucket, cumulative. */
        size_t b = 0;
        while (b < 11 && buckets[b] != s->le)
            b++;
        s->v += hist_obs[b];
        break;
    }
    case GEN_HSUM:
        s->v = quantize(s->v + hist_obs[11], s->quantum);
        break;
    case GEN_HCOUNT:
        s->v += hist_obs[10];
        break;
    }
}

/* ---- Requests ----------------------------------------------------------------------------- */

typedef struct req {
    char *body;
    size_t len;
    size_t n_samples;
    size_t round;
} req;

typedef struct conn {
    req *reqs;
    size_t n_reqs, cap;
    /* results */
    size_t sent_samples, ok, errors, err_4xx, err_5xx, err_net;
    long last_code;
    char last_err[200];
    pthread_t th;
} conn;

typedef struct bench {
    const char *url;
    conn *conns;
    size_t n_conns, n_rounds;
    pthread_barrier_t barrier;
    double timeout_s;
} bench;

static void conn_push(conn *c, req r)
{
    if (c->n_reqs == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->reqs = xrealloc(c->reqs, c->cap * sizeof(*c->reqs));
    }
    c->reqs[c->n_reqs++] = r;
}

static size_t discard_body(char *p, size_t sz, size_t n, void *ctx)
{
    conn *c = ctx;
    size_t len = sz * n;
    if (c->last_err[0] == '\0' && len > 0)
        snprintf(c->last_err, sizeof c->last_err, "%.*s", (int)(len < 199 ? len : 199), p);
    return len;
}

typedef struct thread_arg {
    bench *b;
    conn *c;
} thread_arg;

static void *conn_run(void *arg)
{
    thread_arg *ta = arg;
    bench *b = ta->b;
    conn *c = ta->c;
    CURL *curl = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/x-protobuf");
    h = curl_slist_append(h, "Content-Encoding: snappy");
    h = curl_slist_append(h, "X-Prometheus-Remote-Write-Version: 0.1.0");
    h = curl_slist_append(h, "User-Agent: cairnctl-bench/" CAIRN_VERSION);
    curl_easy_setopt(curl, CURLOPT_URL, b->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(b->timeout_s * 1000));
    size_t next = 0;
    for (size_t round = 0; round < b->n_rounds; round++) {
        for (; next < c->n_reqs && c->reqs[next].round == round; next++) {
            req *r = &c->reqs[next];
            c->last_err[0] = '\0';
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r->body);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)r->len);
            CURLcode rc = curl_easy_perform(curl);
            long code = 0;
            if (rc == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
            c->last_code = code;
            if (rc != CURLE_OK) {
                c->errors++;
                c->err_net++;
                snprintf(c->last_err, sizeof c->last_err, "%s", curl_easy_strerror(rc));
            } else if (code / 100 == 2) {
                c->ok++;
                c->sent_samples += r->n_samples;
            } else {
                c->errors++;
                if (code / 100 == 4)
                    c->err_4xx++;
                else
                    c->err_5xx++;
            }
        }
        pthread_barrier_wait(&b->barrier);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return NULL;
}

static void bw_usage(FILE *f)
{
    fprintf(
        f, "usage: cairnctl bench write URL [options]\n"
           "  URL                  remote-write endpoint, e.g. http://127.0.0.1:9090/api/v1/write\n"
           "  --series=N           series (default 10000; ~102 per instance)\n"
           "  --interval=D         scrape interval (default 15s)\n"
           "  --duration=D         data time span (default 1h)\n"
           "  --start=T            first timestamp (default: now - duration)\n"
           "  --batch=N            samples per request (default 2000)\n"
           "  --connections=N      concurrent connections (default 4)\n"
           "  --round=D            data time per round; connections sync between rounds "
           "(default 10m)\n"
           "  --seed=N             generator seed (default 1)\n"
           "  --timeout=SECONDS    per-request timeout (default 60)\n"
           "  --dry-run            generate and encode, print the size, send nothing\n"
           "examples:\n"
           "  cairnctl bench write http://127.0.0.1:9090/api/v1/write --series=10000 "
           "--duration=1h\n");
}

/* Encodes one request from entries (series index, sample) into c. */
static void encode_req(gen *g, const size_t *idx, const tsdb_sample *smp, size_t n, size_t round,
                       conn *c, tsdb_arena *scratch, size_t *bytes)
{
    tsdb_batch_series *bs = tsdb_arena_alloc(scratch, n * sizeof(*bs));
    for (size_t i = 0; i < n; i++) {
        bs[i].labels = (tsdb_labels){g->s[idx[i]].lbls, g->s[idx[i]].n_lbls};
        bs[i].samples = &smp[i];
        bs[i].n_samples = 1;
    }
    tsdb_batch batch = {bs, n};
    tsdb_str out;
    if (ingest_rw_encode(&batch, scratch, &out) != TSDB_OK) {
        fprintf(stderr, "cairnctl: encoding failed\n");
        exit(1);
    }
    req r = {xmalloc(out.len ? out.len : 1), out.len, n, round};
    memcpy(r.body, out.p, out.len);
    *bytes += out.len;
    conn_push(c, r);
    tsdb_arena_reset(scratch);
}

int cairnctl_bench_write(int argc, char **argv)
{
    const char *url = NULL;
    size_t n_series = 10000, batch = 2000, n_conns = 4;
    int64_t interval = 15000, duration = 3600000, start = INT64_MIN, round_ms = 600000;
    uint64_t seed = 1;
    double timeout_s = 60;
    int dry = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (strcmp(argv[i], "--help") == 0) {
            bw_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry = 1;
        } else if ((r = cairnctl_opt(argc, argv, &i, "series", &v)) > 0) {
            n_series = strtoull(v, NULL, 10);
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "batch", &v)) > 0) {
            batch = strtoull(v, NULL, 10);
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "connections", &v)) > 0) {
            n_conns = strtoull(v, NULL, 10);
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "seed", &v)) > 0) {
            seed = strtoull(v, NULL, 10);
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "timeout", &v)) > 0) {
            timeout_s = strtod(v, NULL);
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "interval", &v)) > 0) {
            r = cairnctl_parse_duration(v, &interval) == 0 ? 1 : -1;
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "duration", &v)) > 0) {
            r = cairnctl_parse_duration(v, &duration) == 0 ? 1 : -1;
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "round", &v)) > 0) {
            r = cairnctl_parse_duration(v, &round_ms) == 0 ? 1 : -1;
        } else if (r == 0 && (r = cairnctl_opt(argc, argv, &i, "start", &v)) > 0) {
            r = cairnctl_parse_time(v, &start) == 0 ? 1 : -1;
        } else if (r == 0 && argv[i][0] != '-' && url == NULL) {
            url = argv[i];
            r = 1;
        } else if (r == 0) {
            fprintf(stderr, "cairnctl: unknown argument %s\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "cairnctl: bad value for %s\n", argv[i]);
            return 2;
        }
    }
    if ((url == NULL && !dry) || n_series == 0 || batch == 0 || n_conns == 0 || n_conns > 256 ||
        interval <= 0 || duration < 0 || round_ms <= 0 || !(timeout_s > 0)) {
        bw_usage(stderr);
        return 2;
    }
    if (n_series > 10000000 || duration / interval > 1000000) {
        fprintf(stderr, "cairnctl: workload too large (at most 10M series, 1M steps)\n");
        return 2;
    }
    size_t steps = (size_t)(duration / interval);
    if (steps == 0)
        steps = 1;
    if (start == INT64_MIN)
        start = (tsdb_now_ms() - duration) / 1000 * 1000;

    gen g;
    memset(&g, 0, sizeof g);
    tsdb_arena_init(&g.a, 0);
    size_t n_inst = (n_series + 101) / 102;
    for (size_t i = 0; i < n_inst; i++)
        gen_instance(&g, i);
    g.n = n_series < g.n ? n_series : g.n;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < g.n; i++)
        g.s[i].rng = rng_next(&rng) | 1;

    bench b;
    memset(&b, 0, sizeof b);
    b.url = url;
    b.n_conns = n_conns;
    b.timeout_s = timeout_s;
    b.conns = xcalloc(n_conns, sizeof(*b.conns));
    b.n_rounds = (size_t)((int64_t)steps * interval / round_ms) + 1;

    /* Per connection, the pending entries of the request being filled. */
    size_t **idx = xcalloc(n_conns, sizeof(*idx));
    tsdb_sample **smp = xcalloc(n_conns, sizeof(*smp));
    size_t *fill = xcalloc(n_conns, sizeof(*fill));
    for (size_t c = 0; c < n_conns; c++) {
        idx[c] = xmalloc(batch * sizeof(**idx));
        smp[c] = xmalloc(batch * sizeof(**smp));
    }
    tsdb_arena scratch;
    tsdb_arena_init(&scratch, 1 << 20);
    double *inst_jitter = xcalloc(n_inst, sizeof(double));
    double *hist = xcalloc(n_inst * 12, sizeof(double));
    size_t total_bytes = 0, total_samples = 0;
    int64_t t_gen0 = tsdb_mono_ns();
    for (size_t k = 0; k < steps; k++) {
        int64_t base = start + (int64_t)k * interval;
        size_t rnd = (size_t)((int64_t)k * interval / round_ms);
        for (size_t in = 0; in < n_inst; in++) {
            inst_jitter[in] = round((rng_unit(&rng) - 0.5) * 4); /* +-2 ms scrape jitter */
            double *h = &hist[in * 12];
            double obs = floor(20 + 20 * rng_unit(&rng)), cum = 0;
            for (size_t bk = 0; bk < 11; bk++) {
                cum += floor(obs * (bk < 10 ? 0.09 : 0.1) * (0.5 + rng_unit(&rng)));
                if (cum > obs || bk == 10)
                    cum = obs;
                h[bk] = cum;
            }
            h[11] = round(obs * 0.2 * (0.5 + rng_unit(&rng)) * 1000) / 1000;
        }
        for (size_t i = 0; i < g.n; i++) {
            gen_series *s = &g.s[i];
            gen_step(&g, i, &s->rng, &hist[s->inst * 12]);
            size_t c = i % n_conns;
            idx[c][fill[c]] = i;
            smp[c][fill[c]] = (tsdb_sample){base + (int64_t)inst_jitter[s->inst], s->v};
            if (++fill[c] == batch) {
                encode_req(&g, idx[c], smp[c], fill[c], rnd, &b.conns[c], &scratch, &total_bytes);
                total_samples += fill[c];
                fill[c] = 0;
            }
        }
        /* A request never spans rounds. */
        int64_t next_round = (int64_t)(k + 1) * interval / round_ms;
        if (k + 1 == steps || (size_t)next_round != rnd) {
            for (size_t c = 0; c < n_conns; c++) {
                if (fill[c] == 0)
                    continue;
                encode_req(&g, idx[c], smp[c], fill[c], rnd, &b.conns[c], &scratch, &total_bytes);
                total_samples += fill[c];
                fill[c] = 0;
            }
        }
    }
    double gen_s = (double)(tsdb_mono_ns() - t_gen0) / 1e9;
    size_t n_reqs = 0;
    for (size_t c = 0; c < n_conns; c++)
        n_reqs += b.conns[c].n_reqs;
    fprintf(stderr,
            "generated %zu series x %zu steps = %zu samples in %zu requests (%.1f MiB "
            "compressed) in %.1fs\n",
            g.n, steps, total_samples, n_reqs, (double)total_bytes / (1 << 20), gen_s);

    int status = 0;
    if (!dry) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        pthread_barrier_init(&b.barrier, NULL, (unsigned)n_conns);
        thread_arg *ta = xcalloc(n_conns, sizeof(*ta));
        int64_t t0 = tsdb_mono_ns();
        for (size_t c = 0; c < n_conns; c++) {
            ta[c] = (thread_arg){&b, &b.conns[c]};
            pthread_create(&b.conns[c].th, NULL, conn_run, &ta[c]);
        }
        for (size_t c = 0; c < n_conns; c++)
            pthread_join(b.conns[c].th, NULL);
        double secs = (double)(tsdb_mono_ns() - t0) / 1e9;
        pthread_barrier_destroy(&b.barrier);
        size_t sent = 0, errors = 0, e4 = 0, e5 = 0, en = 0;
        for (size_t c = 0; c < n_conns; c++) {
            conn *cn = &b.conns[c];
            sent += cn->sent_samples;
            errors += cn->errors;
            e4 += cn->err_4xx;
            e5 += cn->err_5xx;
            en += cn->err_net;
            if (cn->errors)
                fprintf(stderr, "connection %zu: %zu errors, last HTTP %ld: %s\n", c, cn->errors,
                        cn->last_code, cn->last_err);
        }
        printf("samples=%zu requests=%zu seconds=%.3f samples_per_sec=%.0f errors=%zu "
               "errors_4xx=%zu errors_5xx=%zu errors_net=%zu\n",
               sent, n_reqs, secs, secs > 0 ? (double)sent / secs : 0.0, errors, e4, e5, en);
        status = errors ? 1 : 0;
        free(ta);
        curl_global_cleanup();
    } else {
        printf("samples=%zu requests=%zu bytes=%zu\n", total_samples, n_reqs, total_bytes);
    }
    for (size_t c = 0; c < n_conns; c++) {
        for (size_t r = 0; r < b.conns[c].n_reqs; r++)
            free(b.conns[c].reqs[r].body);
        free(b.conns[c].reqs);
        free(idx[c]);
        free(smp[c]);
    }
    free(idx);
    free(smp);
    free(fill);
    free(b.conns);
    free(inst_jitter);
    free(hist);
    free(g.s);
    tsdb_arena_fini(&g.a);
    tsdb_arena_fini(&scratch);
    return status;
}
