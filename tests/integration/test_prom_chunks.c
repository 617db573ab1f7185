/* test_prom_chunks -- tsdb/chunk.c is bit-identical to the XOR chunks of a real Prometheus.
 *
 * Starts Prometheus (PROMETHEUS=path, default /usr/bin/prometheus) on a free 127.0.0.1 port
 * with a temporary data directory and an empty configuration, remote-writes a few series of
 * chosen samples (counters with jittered timestamps and a 64-bit timestamp jump, a gauge with
 * NaN payloads, infinities and a stale marker, a constant, a single sample, a chunk that ends with
 * the empty trailing byte, tiny subnormals), then remote-reads them as STREAMED_XOR_CHUNKS. For
 * every chunk Prometheus returns, our encoder must produce the same bytes from the samples in the
 * chunk's [min_time, max_time] (Prometheus decides where chunks are cut: 120 samples, time ranges),
 * and our decoder must read the chunk back to exactly those samples. All chunks of a series
 * together must hold every sample sent.
 *
 * PROM_CHUNKS_SEED=<n> fixes the random samples (the seed is printed). PROM_CHUNKS_DUMP=<dir>
 * writes every chunk received there (used to seed fuzz/corpus/chunk). Prometheus is started with
 * PR_SET_PDEATHSIG and killed at the end, on failure too. Ends with "N passed, N failed".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <protobuf-c/protobuf-c.h>
#include <snappy-c.h>

#include "ingest/prompb.pb-c.h"
#include "tsdb/base.h"
#include "tsdb/chunk.h"
#include "tsdb/tsdb.h"

#define READY_TIMEOUT_MS 60000
#define HTTP_TIMEOUT_S   30
#define MAX_SAMPLES      1000

static int n_passed, n_failed;
static pid_t prom_pid = -1;
static char tmpdir[] = "/tmp/cairn-promchunks-XXXXXX";
static int have_tmpdir;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cond) {
        n_passed++;
    } else {
        n_failed++;
        printf("FAIL: ");
        vprintf(fmt, ap);
        printf("\n");
    }
    va_end(ap);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double from_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_hex(const char *what, const unsigned char *p, size_t n)
{
    printf("  %s (%zu bytes):", what, n);
    for (size_t i = 0; i < n; i++)
        printf(" %02X", p[i]);
    printf("\n");
}

/* ---- Prometheus process --------------------------------------------------------------------- */

static void stop_prometheus(void)
{
    if (prom_pid <= 0)
        return;
    kill(prom_pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* up to 10 s */
        if (waitpid(prom_pid, NULL, WNOHANG) == prom_pid) {
            prom_pid = -1;
            return;
        }
        sleep_ms(100);
    }
    kill(prom_pid, SIGKILL);
    waitpid(prom_pid, NULL, 0);
    prom_pid = -1;
}

static void cleanup(void)
{
    stop_prometheus();
    if (have_tmpdir) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
        have_tmpdir = 0;
    }
}

static void on_signal(int sig)
{
    if (prom_pid > 0)
        kill(prom_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int start_prometheus(const char *bin, int port)
{
    char cfg[512], data[512], log[512], a_cfg[600], a_data[600], a_listen[64];
    snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", tmpdir);
    snprintf(data, sizeof(data), "%s/data", tmpdir);
    snprintf(log, sizeof(log), "%s/prometheus.log", tmpdir);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -1;
    fputs("# empty: no scrape jobs, defaults for everything else\n", f);
    fclose(f);
    snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
    snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s", data);
    snprintf(a_listen, sizeof(a_listen), "--web.listen-address=127.0.0.1:%d", port);

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, a_cfg, a_data, a_listen, "--web.enable-remote-write-receiver",
              "--log.level=warn", (char *)NULL);
        _exit(127);
    }
    prom_pid = pid;
    return 0;
}

static void show_prometheus_log(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n 30 '%s/prometheus.log'", tmpdir);
    printf("--- prometheus log (last lines) ---\n");
    fflush(stdout);
    if (system(cmd) != 0)
        printf("(no log)\n");
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    tsdb_buf_put(ud, p, size * n);
    return size * n;
}

/* POSTs (or GETs when body is NULL); returns the HTTP status or -1. Response in *resp. */
static long http(const char *url, const void *body, size_t len, const char *const *headers,
                 tsdb_buf *resp, char *ctype, size_t ctype_len)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        char *ct = NULL;
        if (ctype) {
            ctype[0] = 0;
            if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
                snprintf(ctype, ctype_len, "%s", ct);
        }
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return status;
}

static int wait_ready(int port)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/-/ready", port);
    int64_t deadline = tsdb_mono_ns() + (int64_t)READY_TIMEOUT_MS * 1000000;
    for (int i = 0; i < 1000 && tsdb_mono_ns() < deadline; i++) {
        if (waitpid(prom_pid, NULL, WNOHANG) == prom_pid) {
            prom_pid = -1;
            printf("prometheus exited during startup\n");
            return -1;
        }
        tsdb_buf b;
        tsdb_buf_init(&b);
        long st = http(url, NULL, 0, NULL, &b, NULL, 0);
        tsdb_buf_fini(&b);
        if (st == 200)
            return 0;
        sleep_ms(100);
    }
    printf("prometheus not ready after %d ms\n", READY_TIMEOUT_MS);
    return -1;
}

static int snappy_post(const char *url, const uint8_t *msg, size_t len, const char *const *hdrs,
                       tsdb_buf *resp, char *ctype, size_t ctype_len)
{
    size_t clen = snappy_max_compressed_length(len);
    char *comp = malloc(clen);
    if (!comp || snappy_compress((const char *)msg, len, comp, &clen) != SNAPPY_OK) {
        free(comp);
        return -1;
    }
    long st = http(url, comp, clen, hdrs, resp, ctype, ctype_len);
    free(comp);
    return (int)st;
}

/* ---- Series ------------------------------------------------------------------------------------
 */

typedef struct series {
    const char *name;
    tsdb_sample s[MAX_SAMPLES];
    size_t n;
    size_t covered; /* samples found in Prometheus' chunks */
    int seen;
} series;

enum { S_COUNTER, S_GAUGE, S_CONSTANT, S_SINGLE, S_ALIGNED, S_WIDE, S_TINY, N_SERIES };
static series all[N_SERIES];

static void make_series(int64_t base)
{
    series *s;

    /* A counter scraped every 15 s with +-2 s jitter, one 10-minute gap (a 64-bit dod), a reset,
     * NaN and the stale marker. */
    s = &all[S_COUNTER];
    s->name = "cairn_chunk_counter";
    int64_t t = base;
    double v = 0;
    for (size_t i = 0; i < 300; i++) {
        t += 15000 + (int64_t)(rnd() % 4001) - 2000;
        if (i == 77)
            t += 600000;
        v += (double)(rnd() % 50);
        if (i == 150)
            v = 3;
        s->s[i].t = t;
        s->s[i].v = v;
        if (i == 40)
            s->s[i].v = NAN;
        if (i == 41 || i == 200)
            s->s[i].v = from_bits(TSDB_STALE_NAN_BITS);
    }
    s->n = 300;

    /* A random-walk gauge with irregular steps (including 1 ms and dods in every bucket), NaN
     * payloads, infinities and a subnormal. */
    s = &all[S_GAUGE];
    s->name = "cairn_chunk_gauge";
    t = base + 7;
    v = 100;
    static const int64_t steps[] = {15000, 1, 30000, 9000, 15000, 60000, 15000, 15003, 14997};
    for (size_t i = 0; i < 250; i++) {
        t += steps[rnd() % (sizeof(steps) / sizeof(steps[0]))];
        v += ((double)(rnd() % 20001) - 10000.0) / 1000.0;
        s->s[i].t = t;
        s->s[i].v = v;
        switch (i) {
        case 10:
            s->s[i].v = INFINITY;
            break;
        case 11:
            s->s[i].v = -INFINITY;
            break;
        case 12:
            s->s[i].v = from_bits(0x7ff8000000000001ULL);
            break;
        case 13:
            s->s[i].v = from_bits(0xfff8000000000000ULL);
            break;
        case 14:
            /* Not -0.0: proto3 leaves a double equal to 0 off the wire, so remote write
             * cannot carry the sign of zero (tests/unit/tsdb/test_chunk.c covers it). */
            s->s[i].v = from_bits(1); /* the smallest subnormal */
            break;
        case 90:
            s->s[i].v = from_bits(TSDB_STALE_NAN_BITS);
            break;
        default:
            break;
        }
    }
    s->n = 250;

    /* A constant every 15 s. */
    s = &all[S_CONSTANT];
    s->name = "cairn_chunk_constant";
    for (size_t i = 0; i < 130; i++) {
        s->s[i].t = base + 3 + (int64_t)i * 15000;
        s->s[i].v = 1;
    }
    s->n = 130;

    /* One sample: the chunk ends with the empty byte after the 64 value bits. */
    s = &all[S_SINGLE];
    s->name = "cairn_chunk_single";
    s->s[0].t = base + 1234;
    s->s[0].v = 42.5;
    s->n = 1;

    /* Three samples whose last XOR has 8 significant bits ending on a byte boundary. */
    s = &all[S_ALIGNED];
    s->name = "cairn_chunk_aligned";
    uint64_t v1 = 0x1FULL << 40, v2 = v1 ^ (0xFFULL << 33);
    s->s[0].t = base + 5;
    s->s[0].v = 0.0;
    s->s[1].t = base + 15005;
    s->s[1].v = from_bits(v1);
    s->s[2].t = base + 30005;
    s->s[2].v = from_bits(v2);
    s->n = 3;

    /* Random 64-bit patterns (wide XOR windows) at random small steps. */
    s = &all[S_WIDE];
    s->name = "cairn_chunk_wide";
    t = base + 11;
    for (size_t i = 0; i < 140; i++) {
        t += 1 + (int64_t)(rnd() % 40000);
        uint64_t b = rnd() >> (rnd() % 20) << (rnd() % 20);
        if ((b & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL)
            b &= ~0x4000000000000000ULL; /* keep NaNs to the chosen ones above */
        s->s[i].t = t;
        s->s[i].v = from_bits(b);
    }
    s->n = 140;

    /* Subnormals of a few bits: XORs with 32 and more leading zeros, where the 5-bit field
     * caps the count at 31. */
    s = &all[S_TINY];
    s->name = "cairn_chunk_tiny";
    t = base + 13;
    for (size_t i = 0; i < 125; i++) {
        t += 15000;
        s->s[i].t = t;
        s->s[i].v = from_bits(rnd() & ((1ULL << (1 + rnd() % 40)) - 1));
    }
    s->n = 125;
}

static int remote_write(int port)
{
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    Prometheus__TimeSeries ts[N_SERIES], *tsp[N_SERIES];
    Prometheus__Label lab[N_SERIES][2], *labp[N_SERIES][2];
    static Prometheus__Sample smp[N_SERIES][MAX_SAMPLES];
    static Prometheus__Sample *smpp[N_SERIES][MAX_SAMPLES];
    for (int i = 0; i < N_SERIES; i++) {
        prometheus__time_series__init(&ts[i]);
        prometheus__label__init(&lab[i][0]);
        prometheus__label__init(&lab[i][1]);
        lab[i][0].name = "__name__";
        lab[i][0].value = (char *)all[i].name;
        lab[i][1].name = "job";
        lab[i][1].value = "chunktest";
        labp[i][0] = &lab[i][0];
        labp[i][1] = &lab[i][1];
        ts[i].labels = labp[i];
        ts[i].n_labels = 2;
        for (size_t k = 0; k < all[i].n; k++) {
            prometheus__sample__init(&smp[i][k]);
            smp[i][k].timestamp = all[i].s[k].t;
            smp[i][k].value = all[i].s[k].v;
            smpp[i][k] = &smp[i][k];
        }
        ts[i].samples = smpp[i];
        ts[i].n_samples = all[i].n;
        tsp[i] = &ts[i];
    }
    req.timeseries = tsp;
    req.n_timeseries = N_SERIES;
    size_t len = prometheus__write_request__get_packed_size(&req);
    uint8_t *msg = malloc(len);
    prometheus__write_request__pack(&req, msg);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/write", port);
    static const char *const hdrs[] = {"Content-Encoding: snappy",
                                       "Content-Type: application/x-protobuf",
                                       "X-Prometheus-Remote-Write-Version: 0.1.0", NULL};
    tsdb_buf resp;
    tsdb_buf_init(&resp);
    int st = snappy_post(url, msg, len, hdrs, &resp, NULL, 0);
    free(msg);
    if (st != 204)
        printf("remote write: HTTP %d: %.*s\n", st, (int)resp.len, (const char *)resp.p);
    tsdb_buf_fini(&resp);
    return st == 204 ? 0 : -1;
}

/* ---- Checking chunks ----------------------------------------------------------------------- */

static void dump_chunk(const char *name, int k, const uint8_t *p, size_t len)
{
    const char *dir = getenv("PROM_CHUNKS_DUMP");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/prom-%s-%d", dir, name, k);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, len, f);
        fclose(f);
    }
}

static void check_chunk(series *s, int k, const Prometheus__Chunk *c)
{
    ok(c->type == PROMETHEUS__CHUNK__ENCODING__XOR, "%s chunk %d: encoding %d, want XOR", s->name,
       k, (int)c->type);
    dump_chunk(s->name, k, c->data.data, c->data.len);

    /* The samples we sent that fall into the chunk's time range. */
    size_t lo = 0;
    while (lo < s->n && s->s[lo].t < c->min_time_ms)
        lo++;
    size_t hi = lo;
    while (hi < s->n && s->s[hi].t <= c->max_time_ms)
        hi++;
    size_t n = hi - lo;
    s->covered += n;

    tsdb_chunk_app a;
    tsdb_chunk_app_init(&a);
    for (size_t i = lo; i < hi; i++)
        tsdb_chunk_app_add(&a, s->s[i].t, s->s[i].v);
    size_t len;
    const unsigned char *ours = tsdb_chunk_app_bytes(&a, &len);
    int same = len == c->data.len && memcmp(ours, c->data.data, len) == 0;
    ok(same, "%s chunk %d [%lld, %lld], %zu samples: bytes differ from Prometheus'", s->name, k,
       (long long)c->min_time_ms, (long long)c->max_time_ms, n);
    if (!same) {
        print_hex("prometheus", c->data.data, c->data.len);
        print_hex("cairn", ours, len);
    }
    tsdb_chunk_app_fini(&a);

    /* Our decoder reads Prometheus' bytes back to what was sent. */
    static tsdb_sample out[65536];
    size_t got = 0;
    int rc = tsdb_chunk_decode_all(c->data.data, c->data.len, out, 65536, &got);
    ok(rc == 0 && got == n, "%s chunk %d: decode_all rc %d, %zu samples, want %zu", s->name, k, rc,
       got, n);
    if (rc == 0 && got == n) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (out[i].t != s->s[lo + i].t || bits_of(out[i].v) != bits_of(s->s[lo + i].v)) {
                if (bad++ < 3)
                    printf("  sample %zu: got (%lld, %016llx) want (%lld, %016llx)\n", i,
                           (long long)out[i].t, (unsigned long long)bits_of(out[i].v),
                           (long long)s->s[lo + i].t, (unsigned long long)bits_of(s->s[lo + i].v));
            }
        }
        ok(bad == 0, "%s chunk %d: %zu decoded samples differ", s->name, k, bad);
    }
    ok(n > 0 && c->min_time_ms == s->s[lo].t && c->max_time_ms == s->s[hi - 1].t,
       "%s chunk %d: [%lld, %lld] does not start and end on samples sent", s->name, k,
       (long long)c->min_time_ms, (long long)c->max_time_ms);
}

static series *find_series(const Prometheus__ChunkedSeries *cs)
{
    for (size_t i = 0; i < cs->n_labels; i++) {
        if (strcmp(cs->labels[i]->name, "__name__") != 0)
            continue;
        for (int k = 0; k < N_SERIES; k++)
            if (strcmp(cs->labels[i]->value, all[k].name) == 0)
                return &all[k];
    }
    return NULL;
}

static int64_t read_uvarint(const uint8_t *p, size_t len, size_t *off)
{
    uint64_t x = 0;
    for (unsigned s = 0; s < 64 && *off < len; s += 7) {
        uint8_t b = p[(*off)++];
        x |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80))
            return x > (uint64_t)INT64_MAX ? -1 : (int64_t)x;
    }
    return -1;
}

static void remote_read(int port, int64_t mint, int64_t maxt)
{
    Prometheus__ReadRequest req = PROMETHEUS__READ_REQUEST__INIT;
    Prometheus__Query q = PROMETHEUS__QUERY__INIT;
    Prometheus__LabelMatcher m = PROMETHEUS__LABEL_MATCHER__INIT, *mp = &m;
    Prometheus__Query *qp = &q;
    Prometheus__ReadRequest__ResponseType rt =
        PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS;
    m.type = PROMETHEUS__LABEL_MATCHER__TYPE__RE;
    m.name = "__name__";
    m.value = "cairn_chunk_.*";
    q.start_timestamp_ms = mint;
    q.end_timestamp_ms = maxt;
    q.matchers = &mp;
    q.n_matchers = 1;
    req.queries = &qp;
    req.n_queries = 1;
    req.accepted_response_types = &rt;
    req.n_accepted_response_types = 1;
    size_t len = prometheus__read_request__get_packed_size(&req);
    uint8_t *msg = malloc(len);
    prometheus__read_request__pack(&req, msg);

    char url[128], ctype[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/read", port);
    static const char *const hdrs[] = {"Content-Encoding: snappy",
                                       "Content-Type: application/x-protobuf",
                                       "X-Prometheus-Remote-Read-Version: 0.1.0", NULL};
    tsdb_buf resp;
    tsdb_buf_init(&resp);
    int st = snappy_post(url, msg, len, hdrs, &resp, ctype, sizeof(ctype));
    free(msg);
    ok(st == 200, "remote read: HTTP %d: %.*s", st, (int)(resp.len < 300 ? resp.len : 300),
       (const char *)resp.p);
    ok(strstr(ctype, "application/x-streamed-protobuf") != NULL &&
           strstr(ctype, "proto=prometheus.ChunkedReadResponse") != NULL,
       "remote read: content type '%s'", ctype);

    /* Frames: uvarint length, CRC-32C (big endian) of the message, the message. */
    size_t off = 0;
    int frames = 0, chunk_no[N_SERIES] = {0};
    while (st == 200 && off < resp.len && frames < 10000) {
        int64_t flen = read_uvarint(resp.p, resp.len, &off);
        if (flen < 0 || resp.len - off < 4 || (uint64_t)(resp.len - off - 4) < (uint64_t)flen) {
            ok(0, "remote read: truncated frame at byte %zu", off);
            break;
        }
        uint32_t crc = (uint32_t)resp.p[off] << 24 | (uint32_t)resp.p[off + 1] << 16 |
                       (uint32_t)resp.p[off + 2] << 8 | resp.p[off + 3];
        off += 4;
        const uint8_t *body = resp.p + off;
        off += (size_t)flen;
        frames++;
        ok(tsdb_crc32c(0, body, (size_t)flen) == crc, "frame %d: CRC-32C mismatch", frames);
        Prometheus__ChunkedReadResponse *cr =
            prometheus__chunked_read_response__unpack(NULL, (size_t)flen, body);
        if (!cr) {
            ok(0, "frame %d: not a ChunkedReadResponse", frames);
            break;
        }
        ok(cr->query_index == 0, "frame %d: query_index %lld", frames, (long long)cr->query_index);
        for (size_t i = 0; i < cr->n_chunked_series; i++) {
            const Prometheus__ChunkedSeries *cs = cr->chunked_series[i];
            series *s = find_series(cs);
            if (!s) {
                ok(0, "frame %d: a series we did not write", frames);
                continue;
            }
            s->seen = 1;
            int si = (int)(s - all);
            for (size_t k = 0; k < cs->n_chunks; k++)
                check_chunk(s, chunk_no[si]++, cs->chunks[k]);
        }
        prometheus__chunked_read_response__free_unpacked(cr, NULL);
    }
    ok(frames > 0, "remote read: no frames");
    for (int i = 0; i < N_SERIES; i++) {
        ok(all[i].seen, "%s: not returned", all[i].name);
        ok(all[i].covered == all[i].n, "%s: chunks hold %zu of %zu samples sent", all[i].name,
           all[i].covered, all[i].n);
        printf("%-24s %4zu samples in %d chunk(s)\n", all[i].name, all[i].n, chunk_no[i]);
    }
    tsdb_buf_fini(&resp);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *bin = getenv("PROMETHEUS");
    if (!bin)
        bin = "/usr/bin/prometheus";
    if (access(bin, X_OK) != 0) {
        printf("prometheus not found at %s (install the 'prometheus' package, or set "
               "PROMETHEUS=/path/to/prometheus)\n",
               bin);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    const char *env = getenv("PROM_CHUNKS_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("seed %llu (rerun with PROM_CHUNKS_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    rng_state = seed;

    if (!mkdtemp(tmpdir)) {
        printf("mkdtemp: %s\n0 passed, 1 failed\n", strerror(errno));
        return 1;
    }
    have_tmpdir = 1;
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int port = free_port();
    ok(port > 0, "no free port");
    int started = port > 0 && start_prometheus(bin, port) == 0;
    ok(started, "could not start %s", bin);
    if (started && wait_ready(port) == 0) {
        /* Within the head's first block range and far from compaction: the last 90 minutes. */
        int64_t now = tsdb_now_ms();
        int64_t base = now - 90 * 60 * 1000;
        make_series(base);
        int64_t maxt = base;
        for (int i = 0; i < N_SERIES; i++)
            if (all[i].s[all[i].n - 1].t > maxt)
                maxt = all[i].s[all[i].n - 1].t;
        int wrote = remote_write(port) == 0;
        ok(wrote, "remote write rejected");
        if (wrote)
            remote_read(port, base - 1, maxt + 1);
    } else {
        ok(0, "prometheus did not become ready");
    }
    if (n_failed)
        show_prometheus_log();
    stop_prometheus();
    curl_global_cleanup();
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
