/* ingest/scrape.c -- the scrape loop (the only user of libcurl in ingest/).
 *
 * One thread drives every target through one libcurl multi handle, so targets are scraped
 * concurrently without a thread each. Each job of the configuration is a pool; its targets come
 * from static_configs and file_sd_configs, pass relabel_configs, and are scheduled every
 * scrape_interval at an offset derived from their hash, so a fleet spreads over the interval
 * instead of arriving at once.
 *
 * A scrape: GET scheme://address/metrics_path?params with the Accept header Prometheus 2.42
 * sends (OpenMetrics preferred), gzip, the scrape timeout, basic auth or an Authorization header,
 * TLS options, and a body size limit. The body is parsed completely (ingest/textparse.c) before
 * anything is stored; the target labels are attached (honor_labels or exported_<name>),
 * metric_relabel_configs run, sample_limit and label_limit apply, and one tsdb_append writes the
 * samples, the staleness markers and the report series (up, scrape_duration_seconds,
 * scrape_samples_scraped, scrape_samples_post_metric_relabeling, scrape_series_added).
 * A per-target label cache maps each series' raw text to its final label set, so lines that
 * did not change since the last scrape skip relabeling, sorting, validation and hashing.
 *
 * Staleness (PROTOCOLS.md 2.12): each target remembers the series of its last scrape. A series
 * missing from the next scrape gets a stale NaN at that scrape's time; a failed scrape stores
 * nothing from the body, writes up=0 and marks every remembered series stale. A target that
 * leaves the configuration is kept as a "zombie" for 2 intervals + 10 % and then marked stale at
 * the time its next scrape would have run (if it comes back first, it is revived with its
 * state). ingest_scraper_stop marks everything stale at the current time. Series that carried
 * their own timestamp are not marked (Prometheus does the same).
 *
 * Threads and locks: the scrape thread owns pools, targets and series caches. s->mu guards the
 * pending configuration, the stop flag, every target list (the thread takes it to change a list;
 * readers take it to render /api/v1/targets), the per-target status fields and the metadata
 * store.
 */
#include "ingest/ingest.h"

#include <curl/curl.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/config.h"
#include "ingest/relabel.h"

#define SCRAPE_MAX_BODY    ((size_t)512 << 20) /* when body_size_limit is 0 */
#define SCRAPE_USER_AGENT  "Cairn-scraper/0.1"
#define SCRAPE_SD_CHECK_MS 1000 /* how often file_sd files are stat()ed */
#define SCRAPE_META_MAX    200000
#define SCRAPE_MAX_WAIT_MS 1000

/* ---- Series cache (per target, for staleness) ------------------------------------------------ */

typedef struct sent {
    uint64_t h;
    tsdb_labels l;
    int explicit_ts; /* carried its own timestamp: never marked stale */
} sent;

typedef struct sset {
    tsdb_arena a; /* labels */
    sent *v;
    size_t n, cap;
    uint32_t *idx; /* open addressing: 0 empty, else index + 1 */
    size_t idx_cap;
} sset;

static void sset_init(sset *s)
{
    memset(s, 0, sizeof *s);
    tsdb_arena_init(&s->a, 0);
}

static void sset_clear(sset *s)
{
    tsdb_arena_reset(&s->a);
    s->n = 0;
    if (s->idx)
        memset(s->idx, 0, s->idx_cap * sizeof *s->idx);
}

static void sset_fini(sset *s)
{
    tsdb_arena_fini(&s->a);
    free(s->v);
    free(s->idx);
    memset(s, 0, sizeof *s);
}

static const sent *sset_find(const sset *s, tsdb_labels l, uint64_t h)
{
    if (!s->idx_cap)
        return NULL;
    size_t mask = s->idx_cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t k = s->idx[i];
        if (!k)
            return NULL;
        const sent *e = &s->v[k - 1];
        if (e->h == h && tsdb_labels_equal(e->l, l))
            return e;
    }
}

static void sset_reindex(sset *s, size_t cap)
{
    free(s->idx);
    s->idx = xcalloc(cap, sizeof *s->idx);
    s->idx_cap = cap;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = s->v[k].h & (cap - 1);
        while (s->idx[i])
            i = (i + 1) & (cap - 1);
        s->idx[i] = (uint32_t)(k + 1);
    }
}

/* Adds l (copied); returns 0 if it was already there, 1 if added. */
static int sset_add(sset *s, tsdb_labels l, uint64_t h, int explicit_ts)
{
    if (sset_find(s, l, h))
        return 0;
    if ((s->n + 1) * 2 > s->idx_cap)
        sset_reindex(s, s->idx_cap ? s->idx_cap * 2 : 64);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n] = (sent){h, tsdb_labels_copy(l, &s->a), explicit_ts};
    size_t i = h & (s->idx_cap - 1);
    while (s->idx[i])
        i = (i + 1) & (s->idx_cap - 1);
    s->idx[i] = (uint32_t)(s->n + 1);
    s->n++;
    return 1;
}

/* ---- Label cache (per target) ---------------------------------------------------------------- */

/* Maps the raw text naming a series on the page (name and label set as written) to the label set
 * stored for it after target labels and metric relabeling, as Prometheus' scrapeCache does, so
 * an unchanged line skips building, relabeling, sorting, validating and hashing its labels. The
 * mapping depends only on that text and the job's configuration: the cache is emptied when a
 * reload hands the target a new configuration. Entries not seen by the last successful scrape
 * are dropped once they outnumber the live ones. */
typedef struct cent {
    uint64_t kh;   /* hash of key */
    tsdb_str key;  /* raw series text */
    tsdb_labels l; /* sorted final labels; n == 0: dropped by metric relabeling */
    uint64_t lh;   /* tsdb_labels_hash(l) */
    uint32_t gen;  /* last scrape that saw it */
} cent;

typedef struct scache {
    tsdb_arena a; /* keys and labels */
    cent *v;
    size_t n, cap;
    uint32_t *idx; /* open addressing: 0 empty, else index + 1 */
    size_t idx_cap;
    uint32_t gen;
    size_t seen; /* entries seen in generation gen */
} scache;

static void scache_init(scache *c)
{
    memset(c, 0, sizeof *c);
    tsdb_arena_init(&c->a, 0);
}

static void scache_fini(scache *c)
{
    tsdb_arena_fini(&c->a);
    free(c->v);
    free(c->idx);
    memset(c, 0, sizeof *c);
}

static cent *scache_find(scache *c, tsdb_str key, uint64_t kh)
{
    if (!c->idx_cap)
        return NULL;
    size_t mask = c->idx_cap - 1;
    for (size_t i = kh & mask;; i = (i + 1) & mask) {
        uint32_t k = c->idx[i];
        if (!k)
            return NULL;
        cent *e = &c->v[k - 1];
        if (e->kh == kh && tsdb_str_eq(e->key, key))
            return e;
    }
}

static void scache_reindex(scache *c, size_t cap)
{
    free(c->idx);
    c->idx = xcalloc(cap, sizeof *c->idx);
    c->idx_cap = cap;
    for (size_t k = 0; k < c->n; k++) {
        size_t i = c->v[k].kh & (cap - 1);
        while (c->idx[i])
            i = (i + 1) & (cap - 1);
        c->idx[i] = (uint32_t)(k + 1);
    }
}

/* Adds key -> l (both copied), seen in the current generation. */
static const cent *scache_put(scache *c, tsdb_str key, uint64_t kh, tsdb_labels l, uint64_t lh)
{
    if ((c->n + 1) * 2 > c->idx_cap)
        scache_reindex(c, c->idx_cap ? c->idx_cap * 2 : 256);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    cent *e = &c->v[c->n];
    *e = (cent){kh, tsdb_arena_str(&c->a, key), l.n ? tsdb_labels_copy(l, &c->a) : l, lh, c->gen};
    size_t i = kh & (c->idx_cap - 1);
    while (c->idx[i])
        i = (i + 1) & (c->idx_cap - 1);
    c->idx[i] = (uint32_t)(c->n + 1);
    c->n++;
    c->seen++;
    return e;
}

static void scache_touch(scache *c, cent *e)
{
    if (e->gen != c->gen) {
        e->gen = c->gen;
        c->seen++;
    }
}

/* After a successful scrape: keeps only what it saw once the rest dominates. */
static void scache_compact(scache *c)
{
    if (c->n <= 2 * c->seen + 1024)
        return;
    scache nc;
    scache_init(&nc);
    nc.gen = c->gen;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].gen == c->gen)
            scache_put(&nc, c->v[i].key, c->v[i].kh, c->v[i].l, c->v[i].lh);
    scache_fini(c);
    *c = nc;
}

/* ---- Metadata store -------------------------------------------------------------------------- */

typedef struct meta_ent {
    uint64_t h;
    tsdb_str metric, type, help, unit;
} meta_ent;

typedef struct meta_store {
    tsdb_arena a;
    meta_ent *v;
    size_t n, cap;
    uint32_t *idx;
    size_t idx_cap;
} meta_store;

static uint64_t meta_hash(tsdb_str m, tsdb_str t, tsdb_str h, tsdb_str u)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_put_str(&b, m);
    tsdb_buf_put_str(&b, t);
    tsdb_buf_put_str(&b, h);
    tsdb_buf_put_str(&b, u);
    uint64_t r = tsdb_hash(b.p, b.len);
    tsdb_buf_fini(&b);
    return r;
}

static void meta_reindex(meta_store *m, size_t cap)
{
    free(m->idx);
    m->idx = xcalloc(cap, sizeof *m->idx);
    m->idx_cap = cap;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = m->v[k].h & (cap - 1);
        while (m->idx[i])
            i = (i + 1) & (cap - 1);
        m->idx[i] = (uint32_t)(k + 1);
    }
}

/* Caller holds s->mu. */
static void meta_put(meta_store *m, tsdb_str metric, tsdb_str type, tsdb_str help, tsdb_str unit)
{
    if (!metric.len)
        return;
    if (!type.len || (type.len == 7 && !memcmp(type.p, "untyped", 7)))
        type = TSDB_STR("unknown");
    uint64_t h = meta_hash(metric, type, help, unit);
    if (m->idx_cap) {
        for (size_t i = h & (m->idx_cap - 1);; i = (i + 1) & (m->idx_cap - 1)) {
            uint32_t k = m->idx[i];
            if (!k)
                break;
            meta_ent *e = &m->v[k - 1];
            if (e->h == h && tsdb_str_eq(e->metric, metric) && tsdb_str_eq(e->type, type) &&
                tsdb_str_eq(e->help, help) && tsdb_str_eq(e->unit, unit))
                return;
        }
    }
    if (m->n >= SCRAPE_META_MAX)
        return;
    if ((m->n + 1) * 2 > m->idx_cap)
        meta_reindex(m, m->idx_cap ? m->idx_cap * 2 : 256);
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n] = (meta_ent){h, tsdb_arena_str(&m->a, metric), tsdb_arena_str(&m->a, type),
                            tsdb_arena_str(&m->a, help), tsdb_arena_str(&m->a, unit)};
    size_t i = h & (m->idx_cap - 1);
    while (m->idx[i])
        i = (i + 1) & (m->idx_cap - 1);
    m->idx[i] = (uint32_t)(m->n + 1);
    m->n++;
}

/* ---- Scraper structures ---------------------------------------------------------------------- */

typedef struct pool pool;

typedef struct target {
    uint64_t hash;      /* identity: job, labels, URL */
    tsdb_arena arena;   /* labels, URL */
    tsdb_label *labels; /* final target labels, sorted, no "__" names */
    size_t n_labels;
    tsdb_label *disc; /* discovered labels (before relabeling), sorted */
    size_t n_disc;
    char *url;
    char *tls_url;    /* with tls_config.server_name: the URL naming that host (SNI, checks) */
    char *connect_to; /* ... and "name:port:host:port" so libcurl still connects to address */
    char *host_hdr;   /* ... and "Host: address", the header Go would send */
    int64_t interval_ms, timeout_ms;
    pool *pool;
    /* scheduling and the request in flight (scrape thread only) */
    int64_t next_ms;
    CURL *easy;
    int in_flight;
    tsdb_buf body;
    size_t body_limit;
    int body_over;
    struct curl_slist *hdrs;
    struct curl_slist *connect_list;
    char curl_err[CURL_ERROR_SIZE];
    int64_t start_ms, start_mono;
    sset prev;      /* series written by the last scrape */
    scache cache;   /* raw series text -> final labels */
    int64_t last_t; /* time of the last scrape (for zombie markers) */
    int scraped_once;
    /* zombie state */
    int64_t zombie_deadline_ms;
    /* status, guarded by scraper->mu */
    char last_error[512];
    int64_t last_scrape_ms; /* 0 = never */
    double last_duration;
    int health; /* -1 unknown, 0 down, 1 up */
} target;

struct pool {
    ingest_scrape_cfg *cfg; /* points into the scraper's current config */
    target **t;             /* active targets (list changes under s->mu) */
    size_t n_t;
    tsdb_arena dropped_arena; /* discovered labels of dropped targets */
    struct dropped {
        tsdb_label *l;
        size_t n;
    } * dropped;
    size_t n_dropped, cap_dropped;
    /* file_sd */
    tsdb_arena sd_arena;
    ingest_tgroup *sd_groups;
    size_t n_sd_groups;
    char *sd_sig; /* "path mtime size;" over all matched files, to notice changes */
    int64_t sd_next_check_ms, sd_next_refresh_ms;
};

struct ingest_scraper {
    tsdb *db;
    char *path;
    pthread_t thread;
    int thread_started;
    CURLM *multi;
    pthread_mutex_t mu;
    ingest_config *pending; /* guarded by mu */
    int stopping;           /* guarded by mu */
    ingest_config *cfg;     /* scrape thread */
    pool **pools;           /* list changes under mu */
    size_t n_pools;
    target **zombies; /* list changes under mu */
    size_t n_zombies;
    meta_store meta; /* guarded by mu */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- Small helpers --------------------------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
    const tsdb_label *x = a, *y = b;
    return tsdb_str_cmp(x->name, y->name);
}

static int has_prefix(tsdb_str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.p, p, n) == 0;
}

static void lb_add_copy(ingest_lb *lb, const char *name, tsdb_str value, tsdb_arena *a)
{
    ingest__lb_set(lb, tsdb_arena_str(a, tsdb_str_c(name)), tsdb_arena_str(a, value), a);
}

static tsdb_label *labels_dup(const tsdb_label *v, size_t n, tsdb_arena *a)
{
    tsdb_label *o = tsdb_arena_alloc(a, (n ? n : 1) * sizeof *o);
    for (size_t i = 0; i < n; i++)
        o[i] = (tsdb_label){tsdb_arena_str(a, v[i].name), tsdb_arena_str(a, v[i].value)};
    qsort(o, n, sizeof *o, label_cmp);
    return o;
}

/* Reads a small secret file, trimming surrounding whitespace. NULL on error. Owned. */
static char *read_secret(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t b = 0;
    while (b < n && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\n' || buf[b] == '\r'))
        b++;
    while (n > b &&
           (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    return xstrndup(buf + b, n - b);
}

/* ---- JSON output ----------------------------------------------------------------------------- */

static void json_str(tsdb_buf *b, tsdb_str s)
{
    tsdb_buf_putc(b, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') {
            tsdb_buf_putc(b, '\\');
            tsdb_buf_putc(b, c);
        } else if (c == '\n') {
            tsdb_buf_puts(b, "\\n");
        } else if (c == '\t') {
            tsdb_buf_puts(b, "\\t");
        } else if (c == '\r') {
            tsdb_buf_puts(b, "\\r");
        } else if (c < 0x20) {
            tsdb_buf_printf(b, "\\u%04x", c);
        } else {
            tsdb_buf_putc(b, c);
        }
    }
    tsdb_buf_putc(b, '"');
}

static void json_cstr(tsdb_buf *b, const char *s)
{
    json_str(b, tsdb_str_c(s));
}

static void json_labels(tsdb_buf *b, const tsdb_label *v, size_t n)
{
    tsdb_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            tsdb_buf_putc(b, ',');
        json_str(b, v[i].name);
        tsdb_buf_putc(b, ':');
        json_str(b, v[i].value);
    }
    tsdb_buf_putc(b, '}');
}

/* RFC 3339 in UTC with milliseconds, Go's zero time for "never". */
static void json_time(tsdb_buf *b, int64_t ms)
{
    if (ms <= 0) {
        tsdb_buf_puts(b, "\"0001-01-01T00:00:00Z\"");
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    tsdb_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* ---- Targets from configuration -------------------------------------------------------------- */

static int address_has_port(tsdb_str a)
{
    if (a.len && a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        return rb && (size_t)(rb - a.p) + 1 < a.len && rb[1] == ':';
    }
    return memchr(a.p, ':', a.len) != NULL;
}

/* Go's url.QueryEscape: unreserved bytes as they are, space as '+', the rest as %XX. */
static void url_query_escape(tsdb_buf *u, tsdb_str s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            tsdb_buf_putc(u, c);
        } else if (c == ' ') {
            tsdb_buf_putc(u, '+');
        } else {
            tsdb_buf_putc(u, '%');
            tsdb_buf_putc(u, (unsigned char)hex[c >> 4]);
            tsdb_buf_putc(u, (unsigned char)hex[c & 15]);
        }
    }
}

/* Query parameters in url.Values.Encode order: by name, values of one name as given. */
static void url_put_params(tsdb_buf *u, tsdb_label *qp, size_t n, int first)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: stable, and n is small */
        for (size_t k = i; k > 0 && tsdb_str_cmp(qp[k - 1].name, qp[k].name) > 0; k--) {
            tsdb_label x = qp[k];
            qp[k] = qp[k - 1];
            qp[k - 1] = x;
        }
    for (size_t i = 0; i < n; i++) {
        tsdb_buf_putc(u, first && i == 0 ? '?' : '&');
        url_query_escape(u, qp[i].name);
        tsdb_buf_putc(u, '=');
        url_query_escape(u, qp[i].value);
    }
}

/* Builds one target from a discovered address and its group (Prometheus' PopulateLabels).
 * Returns a new target, or NULL when relabeling dropped it or it is invalid (then the discovered
 * labels are recorded as dropped). */
static target *target_build(ingest_scraper *s, pool *p, const ingest_tgroup *g, tsdb_str addr,
                            int64_t now)
{
    ingest_scrape_cfg *cfg = p->cfg;
    tsdb_arena tmp;
    tsdb_arena_init(&tmp, 0);
    ingest_lb lb = {0};
    for (size_t i = 0; i < g->n_labels; i++)
        ingest__lb_set(&lb, g->labels[i].name, g->labels[i].value, &tmp);
    ingest__lb_set(&lb, TSDB_STR("__address__"), addr, &tmp);
    if (g->source.len)
        ingest__lb_set(&lb, TSDB_STR("__meta_filepath"), g->source, &tmp);
    char ibuf[32], tbuf[32];
    ingest__duration_format(cfg->interval_ms, ibuf, sizeof ibuf);
    ingest__duration_format(cfg->timeout_ms, tbuf, sizeof tbuf);
    struct {
        const char *n;
        tsdb_str v;
    } defs[] = {{"job", cfg->job_name},
                {"__scrape_interval__", tsdb_str_c(ibuf)},
                {"__scrape_timeout__", tsdb_str_c(tbuf)},
                {"__metrics_path__", cfg->metrics_path},
                {"__scheme__", cfg->scheme}};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!ingest__lb_get(&lb, tsdb_str_c(defs[i].n)).len)
            lb_add_copy(&lb, defs[i].n, defs[i].v, &tmp);
    for (size_t i = 0; i < cfg->n_params; i++) {
        char *pn = tsdb_arena_sprintf(&tmp, "__param_%.*s", (int)cfg->params[i].name.len,
                                      cfg->params[i].name.p);
        if (!ingest__lb_get(&lb, tsdb_str_c(pn)).len)
            ingest__lb_set(&lb, tsdb_str_c(pn), cfg->params[i].value, &tmp);
    }
    tsdb_label *disc = labels_dup(lb.v, lb.n, &tmp);
    size_t n_disc = lb.n;

    target *t = NULL;
    const char *why = NULL;
    if (!ingest__relabel(cfg->relabel, cfg->n_relabel, &lb, &tmp))
        goto dropped;
    tsdb_str address = ingest__lb_get(&lb, TSDB_STR("__address__"));
    tsdb_str scheme = ingest__lb_get(&lb, TSDB_STR("__scheme__"));
    if (!address.len || memchr(address.p, '/', address.len)) {
        why = "invalid or missing __address__";
        goto dropped;
    }
    if (!address_has_port(address)) {
        address = tsdb_str_c(tsdb_arena_sprintf(&tmp, "%.*s:%s", (int)address.len, address.p,
                                                has_prefix(scheme, "https") ? "443" : "80"));
        ingest__lb_set(&lb, TSDB_STR("__address__"), address, &tmp);
    }
    int64_t interval = cfg->interval_ms, timeout = cfg->timeout_ms;
    if (tsdb_duration_parse(ingest__lb_get(&lb, TSDB_STR("__scrape_interval__")), &interval) < 0 ||
        tsdb_duration_parse(ingest__lb_get(&lb, TSDB_STR("__scrape_timeout__")), &timeout) < 0 ||
        interval <= 0 || timeout <= 0 || timeout > interval) {
        why = "invalid __scrape_interval__ or __scrape_timeout__";
        goto dropped;
    }
    if (!ingest__lb_get(&lb, TSDB_STR("instance")).len)
        ingest__lb_set(&lb, TSDB_STR("instance"), address, &tmp);

    t = xcalloc(1, sizeof *t);
    tsdb_arena_init(&t->arena, 4096);
    /* URL: scheme://address/path?params, __param_* labels overriding the config's first value. */
    tsdb_buf u;
    tsdb_buf_init(&u);
    tsdb_str path = ingest__lb_get(&lb, TSDB_STR("__metrics_path__"));
    tsdb_buf_printf(&u, "%.*s://%.*s%s%.*s", (int)scheme.len, scheme.p, (int)address.len, address.p,
                    (path.len && path.p[0] == '/') ? "" : "/", (int)path.len, path.p);
    int first = !memchr(path.p, '?', path.len);
    tsdb_label *qp = tsdb_arena_alloc(&tmp, (cfg->n_params + lb.n + 1) * sizeof *qp);
    size_t n_qp = 0;
    for (size_t i = 0; i < cfg->n_params; i++) {
        int seen = 0;
        for (size_t k = 0; k < i; k++)
            seen |= tsdb_str_eq(cfg->params[k].name, cfg->params[i].name);
        tsdb_str v = cfg->params[i].value;
        if (!seen) {
            char *pn = tsdb_arena_sprintf(&tmp, "__param_%.*s", (int)cfg->params[i].name.len,
                                          cfg->params[i].name.p);
            tsdb_str lv = ingest__lb_get(&lb, tsdb_str_c(pn));
            if (lv.len)
                v = lv;
        }
        qp[n_qp++] = (tsdb_label){cfg->params[i].name, v};
    }
    for (size_t i = 0; i < lb.n; i++) {
        if (!has_prefix(lb.v[i].name, "__param_"))
            continue;
        tsdb_str pn = {lb.v[i].name.p + 8, lb.v[i].name.len - 8};
        int in_cfg = 0;
        for (size_t k = 0; k < cfg->n_params; k++)
            in_cfg |= tsdb_str_eq(cfg->params[k].name, pn);
        if (!in_cfg)
            qp[n_qp++] = (tsdb_label){pn, lb.v[i].value};
    }
    url_put_params(&u, qp, n_qp, first);
    t->url = tsdb_arena_strndup(&t->arena, (const char *)u.p, u.len);
    if (cfg->tls_server_name.len && has_prefix(scheme, "https")) {
        /* Go sets tls.Config.ServerName; libcurl gets the same effect by naming server_name in
         * the URL and connecting to the real address through CURLOPT_CONNECT_TO. */
        const char *colon = NULL;
        for (size_t i = address.len; i > 0; i--)
            if (address.p[i - 1] == ':') {
                colon = address.p + i - 1;
                break;
            }
        if (colon) {
            size_t hl = (size_t)(colon - address.p);
            const char *rest = t->url + scheme.len + 3 + address.len;
            t->tls_url = tsdb_arena_sprintf(&t->arena, "%.*s://%s%s%s", (int)scheme.len, scheme.p,
                                            cfg->tls_server_name.p, colon, rest);
            t->connect_to = tsdb_arena_sprintf(&t->arena, "%s%s:%.*s%s", cfg->tls_server_name.p,
                                               colon, (int)hl, address.p, colon);
            t->host_hdr = tsdb_arena_sprintf(&t->arena, "Host: %.*s", (int)address.len, address.p);
        }
    }
    tsdb_buf_fini(&u);
    /* Final labels: without the reserved "__" names. */
    size_t n = 0;
    for (size_t i = 0; i < lb.n; i++)
        if (!has_prefix(lb.v[i].name, "__"))
            lb.v[n++] = lb.v[i];
    t->labels = labels_dup(lb.v, n, &t->arena);
    t->n_labels = n;
    t->disc = labels_dup(disc, n_disc, &t->arena);
    t->n_disc = n_disc;
    t->interval_ms = interval;
    t->timeout_ms = timeout;
    t->pool = p;
    t->health = -1;
    {
        tsdb_buf id;
        tsdb_buf_init(&id);
        tsdb_buf_put_str(&id, cfg->job_name);
        tsdb_buf_puts(&id, t->url);
        for (size_t i = 0; i < t->n_labels; i++) {
            tsdb_buf_put_str(&id, t->labels[i].name);
            tsdb_buf_put_str(&id, t->labels[i].value);
        }
        t->hash = tsdb_hash(id.p, id.len);
        tsdb_buf_fini(&id);
    }
    /* Spread targets over the interval: the first scrape lands at hash mod interval. */
    int64_t base = now - now % interval;
    t->next_ms = base + (int64_t)(t->hash % (uint64_t)interval);
    if (t->next_ms < now)
        t->next_ms += interval;
    sset_init(&t->prev);
    scache_init(&t->cache);
    tsdb_buf_init(&t->body);
    tsdb_arena_fini(&tmp);
    return t;

dropped:
    if (why)
        TSDB_LOG_WARN("scrape", "job=%s target=%.*s dropped: %s", cfg->job_name.p, (int)addr.len,
                      addr.p, why);
    pthread_mutex_lock(&s->mu);
    if (p->n_dropped == p->cap_dropped) {
        p->cap_dropped = p->cap_dropped ? p->cap_dropped * 2 : 16;
        p->dropped = xrealloc(p->dropped, p->cap_dropped * sizeof *p->dropped);
    }
    p->dropped[p->n_dropped].l = labels_dup(disc, n_disc, &p->dropped_arena);
    p->dropped[p->n_dropped].n = n_disc;
    p->n_dropped++;
    pthread_mutex_unlock(&s->mu);
    tsdb_arena_fini(&tmp);
    return NULL;
}

static void target_free(ingest_scraper *s, target *t)
{
    if (!t)
        return;
    if (t->easy) {
        if (t->in_flight)
            curl_multi_remove_handle(s->multi, t->easy);
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->hdrs);
    curl_slist_free_all(t->connect_list);
    tsdb_buf_fini(&t->body);
    sset_fini(&t->prev);
    scache_fini(&t->cache);
    tsdb_arena_fini(&t->arena);
    free(t);
}

/* ---- Appending ------------------------------------------------------------------------------- */

/* A batch of one-sample series in an arena. */
typedef struct sbatch {
    tsdb_arena *a;
    tsdb_batch_series *s;
    tsdb_sample *smp;
    size_t n, cap;
} sbatch;

static void sbatch_add(sbatch *b, tsdb_labels l, int64_t t, double v)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        b->s = tsdb_arena_realloc(b->a, b->s, b->cap * sizeof *b->s, nc * sizeof *b->s);
        b->smp = tsdb_arena_realloc(b->a, b->smp, b->cap * sizeof *b->smp, nc * sizeof *b->smp);
        /* Series point at their sample: fix them after the move. */
        for (size_t i = 0; i < b->n; i++)
            b->s[i].samples = &b->smp[i];
        b->cap = nc;
    }
    b->smp[b->n] = (tsdb_sample){t, v};
    b->s[b->n] = (tsdb_batch_series){l, &b->smp[b->n], 1};
    b->n++;
}

static void sbatch_write(ingest_scraper *s, sbatch *b, const char *what)
{
    if (!b->n)
        return;
    tsdb_batch batch = {b->s, b->n};
    tsdb_append_stats st;
    tsdb_err err;
    memset(&st, 0, sizeof st);
    err.msg[0] = 0;
    int rc = tsdb_append(s->db, &batch, &st, &err);
    if (rc < 0)
        TSDB_LOG_WARN("scrape", "append of %s failed: %s", what, err.msg);
    else if (st.out_of_order || st.duplicate || st.too_old || st.invalid)
        TSDB_LOG_DEBUG("scrape",
                       "append of %s: %zu out of order, %zu duplicate, %zu too old, %zu invalid "
                       "(first: %s)",
                       what, st.out_of_order, st.duplicate, st.too_old, st.invalid, err.msg);
}

static const char *const report_names[] = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added"};

/* The target's labels plus __name__=name, sorted, in a. */
static tsdb_labels report_labels(const target *t, const char *name, tsdb_arena *a)
{
    tsdb_label *v = tsdb_arena_alloc(a, (t->n_labels + 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < t->n_labels; i++)
        if (!tsdb_str_eq(t->labels[i].name, TSDB_STR("__name__")))
            v[n++] = t->labels[i];
    v[n++] = (tsdb_label){TSDB_STR("__name__"), tsdb_str_c(name)};
    qsort(v, n, sizeof *v, label_cmp);
    return (tsdb_labels){v, n};
}

/* Stale markers at time ts for every remembered series and the report series. A marker must
 * come after the last sample (a scrape may have been stored in the same millisecond). */
static void add_all_stale(const target *t, sbatch *b, int64_t ts)
{
    if (t->scraped_once && ts <= t->last_t)
        ts = t->last_t + 1;
    for (size_t i = 0; i < t->prev.n; i++)
        if (!t->prev.v[i].explicit_ts)
            sbatch_add(b, t->prev.v[i].l, ts, tsdb_stale_nan());
    if (t->scraped_once)
        for (size_t i = 0; i < sizeof report_names / sizeof report_names[0]; i++)
            sbatch_add(b, report_labels(t, report_names[i], b->a), ts, tsdb_stale_nan());
}

/* ---- Processing a response ------------------------------------------------------------------- */

typedef struct fam_meta {
    tsdb_str name, type, help, unit;
} fam_meta;

/* Attaches the target labels to a scraped label set (Prometheus' mutateSampleLabels). */
static void attach_target_labels(const target *t, int honor, ingest_lb *lb, tsdb_arena *a)
{
    if (honor) {
        for (size_t i = 0; i < t->n_labels; i++)
            if (!ingest__lb_get(lb, t->labels[i].name).len)
                ingest__lb_set(lb, t->labels[i].name, t->labels[i].value, a);
        return;
    }
    size_t n0 = lb->n;
    tsdb_label *exposed = tsdb_arena_alloc(a, (n0 ? n0 : 1) * sizeof *exposed);
    memcpy(exposed, lb->v, n0 * sizeof *exposed);
    for (size_t i = 0; i < t->n_labels; i++) {
        tsdb_str name = t->labels[i].name;
        tsdb_str old = ingest__lb_get(lb, name);
        ingest__lb_set(lb, name, t->labels[i].value, a);
        if (!old.len)
            continue;
        /* exported_<name>, prefixed again while that name is taken. */
        tsdb_str nn = name;
        for (int depth = 0; depth < 16; depth++) {
            nn = tsdb_str_c(tsdb_arena_sprintf(a, "exported_%.*s", (int)nn.len, nn.p));
            int taken = 0;
            for (size_t k = 0; k < n0; k++)
                taken |= tsdb_str_eq(exposed[k].name, nn);
            for (size_t k = 0; k < t->n_labels; k++)
                taken |= tsdb_str_eq(t->labels[k].name, nn);
            if (!taken)
                break;
        }
        ingest__lb_set(lb, nn, old, a);
    }
}

static void flush_fam(fam_meta *cur, fam_meta **list, size_t *n, size_t *cap, tsdb_arena *a)
{
    if (!cur->name.len)
        return;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        *list = tsdb_arena_realloc(a, *list, *cap * sizeof **list, nc * sizeof **list);
        *cap = nc;
    }
    (*list)[(*n)++] = *cur;
    memset(cur, 0, sizeof *cur);
}

typedef struct scrape_result {
    size_t scraped, post_relabel, added;
    char err[512];
} scrape_result;

/* Parses the body and builds the samples. Returns 0, or <0 with res->err set (nothing from the
 * body may then be stored). cur receives the series written. */
static int process_body(ingest_scraper *s, target *t, const char *ctype, sbatch *b, sset *cur,
                        scrape_result *res, tsdb_arena *a)
{
    ingest_scrape_cfg *cfg = t->pool->cfg;
    enum ingest_text_format fmt = ingest_text_format_of(tsdb_str_c(ctype));
    ingest_text *p = ingest_text_new((const char *)t->body.p, t->body.len, fmt);
    ingest_text_keep_created(p, 1); /* Prometheus 2.42 stores OpenMetrics _created samples */
    const char *body0 = (const char *)t->body.p, *body1 = body0 + t->body.len;
    ingest_text_entry e;
    tsdb_err perr;
    fam_meta fam = {0}, *fams = NULL;
    size_t n_fams = 0, cap_fams = 0;
    int rc = 0, r;
    ingest_lb lb = {0};
    scache *sc = &t->cache;
    sc->gen++;
    sc->seen = 0;
    while ((r = ingest_text_next(p, &e, &perr)) > 0) {
        if (e.kind != INGEST_TEXT_SERIES) {
            if (!tsdb_str_eq(fam.name, e.name)) {
                flush_fam(&fam, &fams, &n_fams, &cap_fams, a);
                fam.name = tsdb_arena_str(a, e.name);
            }
            tsdb_str txt = tsdb_arena_str(a, e.text);
            if (e.kind == INGEST_TEXT_HELP)
                fam.help = txt;
            else if (e.kind == INGEST_TEXT_TYPE)
                fam.type = txt;
            else
                fam.unit = txt;
            continue;
        }
        res->scraped++;
        uint64_t kh = tsdb_hash(e.series.p, e.series.len);
        cent *ce = scache_find(sc, e.series, kh);
        tsdb_labels l;
        uint64_t h;
        if (ce) {
            scache_touch(sc, ce);
            if (!ce->l.n)
                continue; /* dropped by metric relabeling */
            res->post_relabel++;
            if (cfg->sample_limit && res->post_relabel > cfg->sample_limit) {
                snprintf(res->err, sizeof res->err, "sample limit exceeded (limit: %llu)",
                         (unsigned long long)cfg->sample_limit);
                rc = TSDB_ELIMIT;
                break;
            }
            l = ce->l;
            h = ce->lh;
            goto store;
        }
        lb.n = 0;
        for (size_t i = 0; i < e.n_labels; i++) {
            tsdb_label sl = e.labels[i];
            if (!sl.value.len)
                continue;
            /* Strings outside the body live in the parser's scratch: copy them. */
            if (sl.name.p < body0 || sl.name.p >= body1)
                sl.name = tsdb_arena_str(a, sl.name);
            if (sl.value.p < body0 || sl.value.p >= body1)
                sl.value = tsdb_arena_str(a, sl.value);
            if (ingest__lb_get(&lb, sl.name).len) {
                snprintf(res->err, sizeof res->err,
                         "line %d: label name \"%.*s\" is not unique: invalid sample", e.line,
                         (int)(sl.name.len > 100 ? 100 : sl.name.len), sl.name.p);
                rc = TSDB_EINVAL;
                break;
            }
            ingest__lb_set(&lb, sl.name, sl.value, a);
        }
        if (rc < 0)
            break;
        attach_target_labels(t, cfg->honor_labels, &lb, a);
        if (cfg->n_metric_relabel &&
            !ingest__relabel(cfg->metric_relabel, cfg->n_metric_relabel, &lb, a)) {
            scache_put(sc, e.series, kh, (tsdb_labels){NULL, 0}, 0);
            continue;
        }
        if (cfg->label_limit && lb.n > cfg->label_limit) {
            snprintf(res->err, sizeof res->err,
                     "label_limit exceeded (metric: %.*s, number of labels: %zu, limit: %llu)",
                     (int)(e.name.len > 50 ? 50 : e.name.len), e.name.p, lb.n,
                     (unsigned long long)cfg->label_limit);
            rc = TSDB_ELIMIT;
            break;
        }
        res->post_relabel++;
        if (cfg->sample_limit && res->post_relabel > cfg->sample_limit) {
            snprintf(res->err, sizeof res->err, "sample limit exceeded (limit: %llu)",
                     (unsigned long long)cfg->sample_limit);
            rc = TSDB_ELIMIT;
            break;
        }
        tsdb_label *v = tsdb_arena_alloc(a, lb.n * sizeof *v);
        memcpy(v, lb.v, lb.n * sizeof *v);
        qsort(v, lb.n, sizeof *v, label_cmp);
        l = (tsdb_labels){v, lb.n};
        tsdb_err verr;
        if (tsdb_labels_validate(l, 1, &verr) < 0) {
            snprintf(res->err, sizeof res->err, "invalid metric name or label names: %.200s",
                     verr.msg);
            rc = TSDB_EINVAL;
            break;
        }
        h = tsdb_labels_hash(l);
        scache_put(sc, e.series, kh, l, h);
    store:;
        int explicit_ts = e.has_t && cfg->honor_timestamps;
        if (!sset_add(cur, l, h, explicit_ts))
            continue; /* the same series twice in one page: keep the first */
        if (!sset_find(&t->prev, l, h))
            res->added++;
        sbatch_add(b, cur->v[cur->n - 1].l, explicit_ts ? e.t : t->start_ms, e.v);
    }
    if (r < 0 && rc == 0) {
        snprintf(res->err, sizeof res->err, "%s", perr.msg);
        rc = r;
    }
    ingest_text_free(p);
    if (rc == 0)
        scache_compact(sc);
    /* Metadata read before a failure is kept, as Prometheus' scrape cache keeps it. */
    flush_fam(&fam, &fams, &n_fams, &cap_fams, a);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n_fams; i++)
        meta_put(&s->meta, fams[i].name, fams[i].type, fams[i].help, fams[i].unit);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Stores the outcome of one scrape of t: the body's samples when failure is NULL (and the body
 * parses), staleness markers, the report series, and the target's status. */
static void store_scrape(ingest_scraper *s, target *t, const char *ctype, const char *failure,
                         double dur)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    sbatch b = {.a = &a};
    sset cur;
    sset_init(&cur);
    scrape_result res;
    memset(&res, 0, sizeof res);
    int ok = 0;
    if (failure)
        snprintf(res.err, sizeof res.err, "%s", failure);
    else
        ok = process_body(s, t, ctype, &b, &cur, &res, &a) == 0;
    if (!ok) {
        /* Nothing from the body: drop what was built and treat the scrape as empty. */
        b.n = 0;
        sset_clear(&cur);
        res.scraped = res.post_relabel = res.added = 0;
    }
    /* Series of the last scrape that are gone now get a staleness marker. */
    for (size_t i = 0; i < t->prev.n; i++) {
        const sent *pe = &t->prev.v[i];
        if (!pe->explicit_ts && !sset_find(&cur, pe->l, pe->h))
            sbatch_add(&b, pe->l, t->start_ms, tsdb_stale_nan());
    }
    double rv[5] = {ok ? 1 : 0, dur, (double)res.scraped, (double)res.post_relabel,
                    (double)res.added};
    for (size_t i = 0; i < 5; i++)
        sbatch_add(&b, report_labels(t, report_names[i], &a), t->start_ms, rv[i]);
    sbatch_write(s, &b, "a scrape");
    /* cur becomes the remembered set. */
    sset tmp = t->prev;
    t->prev = cur;
    sset_fini(&tmp);
    t->last_t = t->start_ms;
    t->scraped_once = 1;
    if (!ok)
        TSDB_LOG_DEBUG("scrape", "job=%s url=%s failed: %s", t->pool->cfg->job_name.p, t->url,
                       res.err);
    pthread_mutex_lock(&s->mu);
    snprintf(t->last_error, sizeof t->last_error, "%s", ok ? "" : res.err);
    t->last_scrape_ms = t->start_ms;
    t->last_duration = dur;
    t->health = ok;
    pthread_mutex_unlock(&s->mu);
    tsdb_arena_fini(&a);
    t->body.len = 0;
    if (t->body.cap > ((size_t)8 << 20)) { /* do not pin a huge page between scrapes */
        tsdb_buf_fini(&t->body);
        tsdb_buf_init(&t->body);
    }
}

/* A transfer ended: turns libcurl's outcome into a failure message or a body to store. */
static void finish_scrape(ingest_scraper *s, target *t, CURLcode cres)
{
    double dur = (double)(tsdb_mono_ns() - t->start_mono) / 1e9;
    char failure[512];
    long status = 0;
    char *ctype = NULL;
    if (t->body_over) {
        snprintf(failure, sizeof failure, "body size limit exceeded (limit: %zu bytes)",
                 t->body_limit);
    } else if (cres == CURLE_OPERATION_TIMEDOUT) {
        snprintf(failure, sizeof failure, "Get \"%.200s\": context deadline exceeded", t->url);
    } else if (cres != CURLE_OK) {
        snprintf(failure, sizeof failure, "Get \"%.200s\": %.200s", t->url,
                 t->curl_err[0] ? t->curl_err : curl_easy_strerror(cres));
    } else if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status), status != 200) {
        snprintf(failure, sizeof failure, "server returned HTTP status %ld", status);
    } else {
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ctype);
        store_scrape(s, t, ctype ? ctype : "", NULL, dur);
        return;
    }
    store_scrape(s, t, "", failure, dur);
}

/* ---- Starting a request ---------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    target *t = ud;
    size_t n = size * nmemb;
    if (t->body.len + n > t->body_limit) {
        t->body_over = 1;
        return 0; /* aborts the transfer */
    }
    tsdb_buf_put(&t->body, ptr, n);
    return n;
}

static void start_scrape(ingest_scraper *s, target *t, int64_t now)
{
    ingest_scrape_cfg *cfg = t->pool->cfg;
    if (!t->easy)
        t->easy = curl_easy_init();
    else
        curl_easy_reset(t->easy);
    CURL *e = t->easy;
    if (!e)
        return;
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
    char hdr[512];
    t->hdrs = curl_slist_append(t->hdrs, "Accept: " INGEST_SCRAPE_ACCEPT);
    snprintf(hdr, sizeof hdr, "X-Prometheus-Scrape-Timeout-Seconds: %g",
             (double)t->timeout_ms / 1000.0);
    t->hdrs = curl_slist_append(t->hdrs, hdr);
    if (cfg->has_authorization) {
        char *cred = cfg->auth_cred_file.len ? read_secret(cfg->auth_cred_file.p)
                                             : xstrndup(cfg->auth_cred.p, cfg->auth_cred.len);
        if (cred) {
            tsdb_buf h;
            tsdb_buf_init(&h);
            tsdb_buf_printf(&h, "Authorization: %s %s", cfg->auth_type.p, cred);
            tsdb_buf_putc(&h, 0);
            t->hdrs = curl_slist_append(t->hdrs, (const char *)h.p);
            tsdb_buf_fini(&h);
            free(cred);
        }
    }
    curl_easy_setopt(e, CURLOPT_URL, t->tls_url ? t->tls_url : t->url);
    if (t->connect_to) {
        curl_slist_free_all(t->connect_list);
        t->connect_list = curl_slist_append(NULL, t->connect_to);
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, t->connect_list);
        t->hdrs = curl_slist_append(t->hdrs, t->host_hdr);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, SCRAPE_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
    if (cfg->has_basic_auth) {
        char *pass = cfg->ba_pass_file.len ? read_secret(cfg->ba_pass_file.p)
                                           : xstrndup(cfg->ba_pass.p, cfg->ba_pass.len);
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, cfg->ba_user.p ? cfg->ba_user.p : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, pass ? pass : "");
        free(pass);
    }
    if (cfg->tls_ca.len)
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->tls_ca.p);
    if (cfg->tls_cert.len)
        curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->tls_cert.p);
    if (cfg->tls_key.len)
        curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->tls_key.p);
    if (cfg->tls_insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    t->curl_err[0] = 0;
    t->body.len = 0;
    t->body_over = 0;
    t->body_limit = cfg->body_size_limit ? (size_t)cfg->body_size_limit : SCRAPE_MAX_BODY;
    t->start_ms = now;
    t->start_mono = tsdb_mono_ns();
    if (curl_multi_add_handle(s->multi, e) != CURLM_OK)
        return;
    t->in_flight = 1;
}

/* ---- Configuration and target sync ----------------------------------------------------------- */

static void pool_free(ingest_scraper *s, pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_t; i++)
        target_free(s, p->t[i]);
    free(p->t);
    free(p->dropped);
    tsdb_arena_fini(&p->dropped_arena);
    tsdb_arena_fini(&p->sd_arena);
    free(p->sd_sig);
    free(p);
}

/* Takes t out of service: aborts its request and schedules its staleness markers. */
static void zombify(ingest_scraper *s, target *t, int64_t now)
{
    if (t->in_flight) {
        curl_multi_remove_handle(s->multi, t->easy);
        t->in_flight = 0;
    }
    if (!t->scraped_once) {
        target_free(s, t);
        return;
    }
    int64_t iv = t->interval_ms;
    t->zombie_deadline_ms = t->last_t + 2 * iv + iv / 10;
    if (t->zombie_deadline_ms < now)
        t->zombie_deadline_ms = now;
    t->pool = NULL;
    s->zombies = xrealloc(s->zombies, (s->n_zombies + 1) * sizeof *s->zombies);
    s->zombies[s->n_zombies++] = t;
}

/* Finds (and removes) a target with this hash in list; NULL if none. */
static target *take_target(target **list, size_t *n, uint64_t hash)
{
    for (size_t i = 0; i < *n; i++) {
        if (list[i] && list[i]->hash == hash) {
            target *t = list[i];
            list[i] = list[--*n];
            return t;
        }
    }
    return NULL;
}

/* Recomputes p's targets from its config and file_sd groups. Targets already in p->t (or in the
 * zombie list) with the same identity keep their state; the others become zombies. Called by the
 * scrape thread (the only writer of p->t) without holding s->mu. */
static void pool_sync(ingest_scraper *s, pool *p, int64_t now)
{
    ingest_scrape_cfg *cfg = p->cfg;
    size_t n_old = p->n_t;
    target **old = xmalloc((n_old ? n_old : 1) * sizeof *old);
    if (n_old)
        memcpy(old, p->t, n_old * sizeof *old);
    target **nt = NULL;
    size_t n_nt = 0, cap = 0;
    pthread_mutex_lock(&s->mu);
    p->n_dropped = 0;
    tsdb_arena_reset(&p->dropped_arena);
    pthread_mutex_unlock(&s->mu);
    for (int pass = 0; pass < 2; pass++) {
        const ingest_tgroup *gs = pass ? p->sd_groups : cfg->static_groups;
        size_t ng = pass ? p->n_sd_groups : cfg->n_static;
        for (size_t gi = 0; gi < ng; gi++) {
            for (size_t ti = 0; ti < gs[gi].n_targets; ti++) {
                target *t = target_build(s, p, &gs[gi], gs[gi].targets[ti], now);
                if (!t)
                    continue;
                int dup = 0;
                for (size_t k = 0; k < n_nt; k++)
                    dup |= nt[k]->hash == t->hash;
                if (dup) {
                    target_free(s, t);
                    continue;
                }
                target *keep = take_target(old, &n_old, t->hash);
                if (!keep) {
                    pthread_mutex_lock(&s->mu);
                    keep = take_target(s->zombies, &s->n_zombies, t->hash);
                    pthread_mutex_unlock(&s->mu);
                }
                if (keep) {
                    keep->pool = p;
                    /* The new configuration may relabel differently. */
                    scache_fini(&keep->cache);
                    scache_init(&keep->cache);
                    pthread_mutex_lock(&s->mu); /* the targets JSON reads the durations */
                    keep->interval_ms = t->interval_ms;
                    keep->timeout_ms = t->timeout_ms;
                    pthread_mutex_unlock(&s->mu);
                    target_free(s, t);
                    t = keep;
                }
                t->pool = p;
                if (n_nt == cap) {
                    cap = cap ? cap * 2 : 16;
                    nt = xrealloc(nt, cap * sizeof *nt);
                }
                nt[n_nt++] = t;
            }
        }
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n_old; i++)
        zombify(s, old[i], now);
    free(p->t);
    p->t = nt;
    p->n_t = n_nt;
    pthread_mutex_unlock(&s->mu);
    free(old);
}

/* Re-reads the file_sd files of p when their set, size or mtime changed or the refresh interval
 * passed. Returns 1 if the groups changed. */
static int pool_sd_refresh(pool *p, int64_t now)
{
    ingest_scrape_cfg *cfg = p->cfg;
    if (!cfg->n_sd_files || now < p->sd_next_check_ms)
        return 0;
    p->sd_next_check_ms = now + SCRAPE_SD_CHECK_MS;
    tsdb_buf sig;
    tsdb_buf_init(&sig);
    glob_t *gl = xcalloc(cfg->n_sd_files, sizeof *gl);
    for (size_t i = 0; i < cfg->n_sd_files; i++) {
        if (glob(cfg->sd_files[i].p, 0, NULL, &gl[i]) != 0)
            continue;
        for (size_t k = 0; k < gl[i].gl_pathc; k++) {
            struct stat st;
            if (stat(gl[i].gl_pathv[k], &st) == 0)
                tsdb_buf_printf(&sig, "%s %lld.%09ld %lld %llu;", gl[i].gl_pathv[k],
                                (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
                                (long long)st.st_size, (unsigned long long)st.st_ino);
        }
    }
    tsdb_buf_putc(&sig, 0);
    int changed =
        !p->sd_sig || strcmp(p->sd_sig, (const char *)sig.p) != 0 || now >= p->sd_next_refresh_ms;
    if (changed) {
        free(p->sd_sig);
        p->sd_sig = xstrndup((const char *)sig.p, sig.len);
        p->sd_next_refresh_ms = now + cfg->sd_refresh_ms;
        tsdb_arena_reset(&p->sd_arena);
        p->sd_groups = NULL;
        p->n_sd_groups = 0;
        size_t cap = 0;
        for (size_t i = 0; i < cfg->n_sd_files; i++) {
            for (size_t k = 0; k < gl[i].gl_pathc; k++) {
                ingest_tgroup *g;
                size_t ng;
                tsdb_err err;
                if (ingest__file_sd_load(gl[i].gl_pathv[k], &p->sd_arena, &g, &ng, &err) < 0) {
                    TSDB_LOG_WARN("scrape", "file_sd: %s", err.msg);
                    continue;
                }
                if (p->n_sd_groups + ng > cap) {
                    size_t nc = (p->n_sd_groups + ng) * 2;
                    p->sd_groups = tsdb_arena_realloc(&p->sd_arena, p->sd_groups, cap * sizeof *g,
                                                      nc * sizeof *g);
                    cap = nc;
                }
                memcpy(p->sd_groups + p->n_sd_groups, g, ng * sizeof *g);
                p->n_sd_groups += ng;
            }
        }
    }
    for (size_t i = 0; i < cfg->n_sd_files; i++)
        globfree(&gl[i]);
    free(gl);
    tsdb_buf_fini(&sig);
    return changed;
}

/* Installs cfg (taking ownership): builds new pools, reusing targets of the old ones. */
static void apply_config(ingest_scraper *s, ingest_config *cfg, int64_t now)
{
    pool **np = xcalloc(cfg->n_jobs ? cfg->n_jobs : 1, sizeof *np);
    for (size_t j = 0; j < cfg->n_jobs; j++) {
        pool *p = xcalloc(1, sizeof *p);
        p->cfg = &cfg->jobs[j];
        tsdb_arena_init(&p->dropped_arena, 0);
        tsdb_arena_init(&p->sd_arena, 0);
        pool_sd_refresh(p, now);
        pool *op = NULL;
        for (size_t k = 0; k < s->n_pools; k++)
            if (s->pools[k] && tsdb_str_eq(s->pools[k]->cfg->job_name, p->cfg->job_name))
                op = s->pools[k];
        if (op) { /* p is not published yet: only op's list needs the lock */
            pthread_mutex_lock(&s->mu);
            p->t = op->t;
            p->n_t = op->n_t;
            op->t = NULL;
            op->n_t = 0;
            pthread_mutex_unlock(&s->mu);
        }
        pool_sync(s, p, now);
        np[j] = p;
    }
    pthread_mutex_lock(&s->mu);
    pool **oldp = s->pools;
    size_t n_oldp = s->n_pools;
    for (size_t k = 0; k < n_oldp; k++) {
        for (size_t i = 0; i < oldp[k]->n_t; i++)
            zombify(s, oldp[k]->t[i], now);
        oldp[k]->n_t = 0;
    }
    s->pools = np;
    s->n_pools = cfg->n_jobs;
    ingest_config *oc = s->cfg;
    s->cfg = cfg;
    pthread_mutex_unlock(&s->mu);
    for (size_t k = 0; k < n_oldp; k++)
        pool_free(s, oldp[k]);
    free(oldp);
    ingest__config_free(oc);
}

/* ---- The scrape thread ----------------------------------------------------------------------- */

static void reap_zombies(ingest_scraper *s, int64_t now)
{
    for (size_t i = 0; i < s->n_zombies;) {
        target *t = s->zombies[i];
        if (now < t->zombie_deadline_ms) {
            i++;
            continue;
        }
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        sbatch b = {.a = &a};
        add_all_stale(t, &b, t->last_t + t->interval_ms);
        sbatch_write(s, &b, "staleness markers");
        tsdb_arena_fini(&a);
        pthread_mutex_lock(&s->mu);
        s->zombies[i] = s->zombies[--s->n_zombies];
        pthread_mutex_unlock(&s->mu);
        target_free(s, t);
    }
}

static void *scrape_main(void *arg)
{
    ingest_scraper *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->stopping;
        ingest_config *pend = s->pending;
        s->pending = NULL;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        int64_t now = tsdb_now_ms();
        if (pend)
            apply_config(s, pend, now);
        for (size_t k = 0; k < s->n_pools; k++) {
            pool *p = s->pools[k];
            if (pool_sd_refresh(p, now))
                pool_sync(s, p, now);
        }
        int64_t wait = SCRAPE_MAX_WAIT_MS;
        for (size_t k = 0; k < s->n_pools; k++) {
            pool *p = s->pools[k];
            for (size_t i = 0; i < p->n_t; i++) {
                target *t = p->t[i];
                if (t->next_ms - now > t->interval_ms) /* the wall clock went back */
                    t->next_ms = now + (int64_t)(t->hash % (uint64_t)t->interval_ms);
                if (!t->in_flight && t->next_ms <= now) {
                    start_scrape(s, t, now);
                    t->next_ms += t->interval_ms;
                    if (t->next_ms <= now) /* fell behind: skip the missed ticks */
                        t->next_ms += ((now - t->next_ms) / t->interval_ms + 1) * t->interval_ms;
                }
                if (!t->in_flight && t->next_ms - now < wait)
                    wait = t->next_ms - now;
            }
        }
        reap_zombies(s, now);
        int running = 0;
        curl_multi_perform(s->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            void *priv = NULL;
            CURLcode cres = m->data.result;
            CURL *e = m->easy_handle;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            target *t = priv;
            curl_multi_remove_handle(s->multi, e);
            if (t) {
                t->in_flight = 0;
                finish_scrape(s, t, cres);
            }
            wait = 0;
        }
        long ct = -1;
        curl_multi_timeout(s->multi, &ct);
        if (ct >= 0 && ct < wait)
            wait = ct;
        if (wait < 0)
            wait = 0;
        if (running || wait > 0)
            curl_multi_poll(s->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }
    return NULL;
}

/* ---- Public ---------------------------------------------------------------------------------- */

int ingest_scraper_start(tsdb *db, const char *config_path, ingest_scraper **out, tsdb_err *err)
{
    ingest_config *cfg;
    int rc = ingest__config_load(config_path, &cfg, err);
    if (rc < 0)
        return rc;
    pthread_once(&curl_once, curl_init_once);
    ingest_scraper *s = xcalloc(1, sizeof *s);
    s->db = db;
    s->path = xstrndup(config_path, strlen(config_path));
    pthread_mutex_init(&s->mu, NULL);
    tsdb_arena_init(&s->meta.a, 0);
    s->multi = curl_multi_init();
    if (!s->multi) {
        rc = tsdb_errf(err, TSDB_ENOMEM, -1, "cannot create a libcurl multi handle");
        goto fail;
    }
    s->pending = cfg;
    cfg = NULL;
    if (pthread_create(&s->thread, NULL, scrape_main, s) != 0) {
        rc = tsdb_errf(err, TSDB_EIO, -1, "cannot start the scrape thread");
        goto fail;
    }
    s->thread_started = 1;
    TSDB_LOG_INFO("scrape", "scraper started with %s", config_path);
    *out = s;
    return 0;
fail:
    ingest__config_free(cfg);
    ingest_scraper_stop(s);
    return rc;
}

int ingest_scraper_reload(ingest_scraper *s, tsdb_err *err)
{
    ingest_config *cfg;
    int rc = ingest__config_load(s->path, &cfg, err);
    if (rc < 0) {
        TSDB_LOG_WARN("scrape", "reload of %s failed, keeping the running configuration: %s",
                      s->path, err ? err->msg : "");
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    ingest__config_free(s->pending);
    s->pending = cfg;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    TSDB_LOG_INFO("scrape", "configuration %s reloaded", s->path);
    return 0;
}

void ingest_scraper_stop(ingest_scraper *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_mutex_unlock(&s->mu);
        curl_multi_wakeup(s->multi);
        pthread_join(s->thread, NULL);
    }
    /* Every series the scraper wrote ends now. */
    int64_t now = tsdb_now_ms();
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    sbatch b = {.a = &a};
    for (size_t k = 0; k < s->n_pools; k++)
        for (size_t i = 0; i < s->pools[k]->n_t; i++)
            add_all_stale(s->pools[k]->t[i], &b, now);
    for (size_t i = 0; i < s->n_zombies; i++)
        add_all_stale(s->zombies[i], &b, now);
    if (s->db)
        sbatch_write(s, &b, "shutdown staleness markers");
    tsdb_arena_fini(&a);
    for (size_t k = 0; k < s->n_pools; k++)
        pool_free(s, s->pools[k]);
    free(s->pools);
    for (size_t i = 0; i < s->n_zombies; i++)
        target_free(s, s->zombies[i]);
    free(s->zombies);
    ingest__config_free(s->cfg);
    ingest__config_free(s->pending);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    tsdb_arena_fini(&s->meta.a);
    free(s->meta.v);
    free(s->meta.idx);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int ingest_scraper_targets_json(ingest_scraper *s, const char *state, tsdb_buf *out)
{
    int active = 1, dropped = 1;
    if (state && *state && strcmp(state, "any") != 0) {
        active = !strcmp(state, "active");
        dropped = !strcmp(state, "dropped");
        if (!active && !dropped)
            return TSDB_EINVAL;
    }
    tsdb_buf_puts(out, "{\"activeTargets\":[");
    pthread_mutex_lock(&s->mu);
    int first = 1;
    for (size_t k = 0; active && k < s->n_pools; k++) {
        pool *p = s->pools[k];
        for (size_t i = 0; i < p->n_t; i++) {
            target *t = p->t[i];
            char iv[32], to[32];
            ingest__duration_format(t->interval_ms, iv, sizeof iv);
            ingest__duration_format(t->timeout_ms, to, sizeof to);
            if (!first)
                tsdb_buf_putc(out, ',');
            first = 0;
            tsdb_buf_puts(out, "{\"discoveredLabels\":");
            json_labels(out, t->disc, t->n_disc);
            tsdb_buf_puts(out, ",\"labels\":");
            json_labels(out, t->labels, t->n_labels);
            tsdb_buf_puts(out, ",\"scrapePool\":");
            json_str(out, p->cfg->job_name);
            tsdb_buf_puts(out, ",\"scrapeUrl\":");
            json_cstr(out, t->url);
            tsdb_buf_puts(out, ",\"globalUrl\":");
            json_cstr(out, t->url);
            tsdb_buf_puts(out, ",\"lastError\":");
            json_cstr(out, t->last_error);
            tsdb_buf_puts(out, ",\"lastScrape\":");
            json_time(out, t->last_scrape_ms);
            tsdb_buf_printf(out, ",\"lastScrapeDuration\":%.9g", t->last_duration);
            tsdb_buf_printf(out, ",\"health\":\"%s\"",
                            t->health < 0 ? "unknown"
                            : t->health   ? "up"
                                          : "down");
            tsdb_buf_printf(out, ",\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\"}", iv, to);
        }
    }
    tsdb_buf_puts(out, "],\"droppedTargets\":[");
    first = 1;
    for (size_t k = 0; dropped && k < s->n_pools; k++) {
        pool *p = s->pools[k];
        for (size_t i = 0; i < p->n_dropped; i++) {
            if (!first)
                tsdb_buf_putc(out, ',');
            first = 0;
            tsdb_buf_puts(out, "{\"discoveredLabels\":");
            json_labels(out, p->dropped[i].l, p->dropped[i].n);
            tsdb_buf_putc(out, '}');
        }
    }
    pthread_mutex_unlock(&s->mu);
    tsdb_buf_puts(out, "]}");
    return 0;
}

/* By metric name, then in insertion order (entries live in one array). */
static int meta_ptr_cmp(const void *a, const void *b)
{
    const meta_ent *x = *(const meta_ent *const *)a, *y = *(const meta_ent *const *)b;
    int c = tsdb_str_cmp(x->metric, y->metric);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

void ingest_scraper_metadata_json(ingest_scraper *s, tsdb_str metric, long limit, tsdb_buf *out)
{
    tsdb_buf_putc(out, '{');
    if (!s) {
        tsdb_buf_putc(out, '}');
        return;
    }
    pthread_mutex_lock(&s->mu);
    const meta_ent **ord = xmalloc((s->meta.n ? s->meta.n : 1) * sizeof *ord);
    size_t n = 0;
    for (size_t i = 0; i < s->meta.n; i++)
        if (!metric.len || tsdb_str_eq(s->meta.v[i].metric, metric))
            ord[n++] = &s->meta.v[i];
    qsort(ord, n, sizeof *ord, meta_ptr_cmp);
    long metrics = 0;
    for (size_t i = 0; i < n; i++) {
        const meta_ent *e = ord[i];
        int new_metric = i == 0 || !tsdb_str_eq(ord[i - 1]->metric, e->metric);
        if (new_metric) {
            if (limit >= 0 && metrics >= limit)
                break;
            if (i)
                tsdb_buf_puts(out, "],");
            json_str(out, e->metric);
            tsdb_buf_puts(out, ":[");
            metrics++;
        } else {
            tsdb_buf_putc(out, ',');
        }
        tsdb_buf_puts(out, "{\"type\":");
        json_str(out, e->type);
        tsdb_buf_puts(out, ",\"help\":");
        json_str(out, e->help);
        tsdb_buf_puts(out, ",\"unit\":");
        json_str(out, e->unit);
        tsdb_buf_putc(out, '}');
    }
    if (metrics)
        tsdb_buf_putc(out, ']');
    pthread_mutex_unlock(&s->mu);
    free(ord);
    tsdb_buf_putc(out, '}');
}

void ingest_scraper_metadata_add(ingest_scraper *s, const ingest_metadata *m, size_t n)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++)
        meta_put(&s->meta, m[i].metric, m[i].type, m[i].help, m[i].unit);
    pthread_mutex_unlock(&s->mu);
}
