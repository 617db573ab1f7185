/* api/main.c -- cairn: the server program. Flags, signals, wiring, shutdown order.
 *
 * Flags use Prometheus' names and syntax (--flag=value or --flag value; booleans also as
 * --flag / --no-flag), so existing command lines and Kubernetes manifests carry over. Startup:
 * open the tsdb (recovery + WAL replay), start the scraper when --config.file is given, start
 * the HTTP server. Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait: SIGHUP reloads the configuration, SIGTERM/SIGINT stop the server (drains
 * requests), then the scraper (writes staleness markers), then close the tsdb (WAL fsync).
 */
#include "api/api.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn.h"
#include "api/params.h"

#define PROM_COMPAT_VERSION "2.42.0"

/* ---- Flags ------------------------------------------------------------------------------------
 */

enum flag_kind { F_STR, F_BOOL };

typedef struct flag {
    const char *name;
    enum flag_kind kind;
    const char *def;
    const char *help;
    const char *val; /* current value (points into argv or def) */
} flag;

static flag flags[] = {
    {"web.listen-address", F_STR, "0.0.0.0:9090", "Address to listen on for the API.", NULL},
    {"web.config.file", F_STR, "", "Path to a web configuration file (TLS, basic auth).", NULL},
    {"web.enable-admin-api", F_BOOL, "false", "Enable the admin endpoints.", NULL},
    {"web.enable-remote-write-receiver", F_BOOL, "true",
     "Accepted for compatibility; the receiver is always on.", NULL},
    {"web.max-connections", F_STR, "512", "Maximum number of simultaneous connections.", NULL},
    {"storage.tsdb.path", F_STR, "data/", "Base path for metrics storage.", NULL},
    {"storage.tsdb.retention.time", F_STR, "15d", "How long to retain samples.", NULL},
    {"storage.tsdb.retention.size", F_STR, "0B",
     "Maximum bytes of storage (B, KB, MB, GB, TB, PB, EB; 0 = off).", NULL},
    {"storage.tsdb.out-of-order-time-window", F_STR, "0s",
     "Accept out-of-order samples this far behind the newest one.", NULL},
    {"config.file", F_STR, "", "Prometheus-style scrape configuration file.", NULL},
    {"query.lookback-delta", F_STR, "5m", "Lookback for instant vector selectors.", NULL},
    {"query.timeout", F_STR, "2m", "Maximum time a query may take.", NULL},
    {"query.max-samples", F_STR, "50000000", "Maximum samples a query may hold in memory.", NULL},
    {"query.max-concurrency", F_STR, "20", "Maximum number of concurrent queries.", NULL},
    {"log.level", F_STR, "info", "Log level: debug, info, warn, error.", NULL},
    {"log.format", F_STR, "logfmt", "Log format: logfmt or json.", NULL},
    {"enable-feature", F_STR, "", "Accepted for compatibility with Prometheus; ignored.", NULL},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static flag *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static const char *fval(const char *name)
{
    flag *f = find_flag(name, strlen(name));
    return f ? f->val : "";
}

static void usage(FILE *out)
{
    fprintf(out, "usage: cairn [<flags>]\n\nThe Cairn time-series database server "
                 "(Prometheus-compatible HTTP API).\n\nFlags:\n");
    fprintf(out, "  -h, --help                  Show this help.\n");
    fprintf(out, "      --version               Show the version.\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", flags[i].name, flags[i].kind == F_BOOL ? "" : "=");
        fprintf(out, "      %-36s %s", left, flags[i].help);
        if (flags[i].def[0] && flags[i].kind == F_STR)
            fprintf(out, " (default: %s)", flags[i].def);
        fprintf(out, "\n");
    }
}

static int is_bool_word(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1")) {
        *out = 1;
        return 1;
    }
    if (!strcasecmp(v, "false") || !strcmp(v, "0")) {
        *out = 0;
        return 1;
    }
    return 0;
}

/* Returns 0 to run, 1 to exit successfully (help/version), -1 on a bad flag. */
static int parse_flags(int argc, char **argv)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        flags[i].val = flags[i].def;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("cairn, version %s (Prometheus API %s)\n", CAIRN_VERSION, PROM_COMPAT_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "cairn: unexpected argument \"%s\"\n", a);
            return -1;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        flag *f = find_flag(name, nlen);
        int negated = 0;
        if (!f && nlen > 3 && !strncmp(name, "no-", 3)) {
            f = find_flag(name + 3, nlen - 3);
            negated = f && f->kind == F_BOOL;
            if (!negated)
                f = NULL;
        }
        if (!f) {
            fprintf(stderr, "cairn: unknown flag --%.*s (see --help)\n", (int)nlen, name);
            return -1;
        }
        if (f->kind == F_BOOL) {
            int b = !negated;
            if (eq && !is_bool_word(eq + 1, &b)) {
                fprintf(stderr, "cairn: --%s expects true or false, got \"%s\"\n", f->name, eq + 1);
                return -1;
            }
            if (eq && negated)
                b = !b;
            f->val = b ? "true" : "false";
            continue;
        }
        if (eq) {
            f->val = eq + 1;
        } else if (i + 1 < argc) {
            f->val = argv[++i];
        } else {
            fprintf(stderr, "cairn: --%s needs a value\n", f->name);
            return -1;
        }
    }
    return 0;
}

/* ---- Value parsing -------------------------------------------------------------------------- */

static int parse_dur(const char *name, int64_t *ms)
{
    const char *v = fval(name);
    tsdb_err e;
    if (api__parse_duration(tsdb_str_c(v), ms, &e) != TSDB_OK || *ms < 0) {
        fprintf(stderr, "cairn: --%s: invalid duration \"%s\"\n", name, v);
        return -1;
    }
    return 0;
}

static int parse_uint(const char *name, uint64_t max, uint64_t *out)
{
    const char *v = fval(name);
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || v[0] == '-' || x > max) {
        fprintf(stderr, "cairn: --%s: invalid number \"%s\"\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Prometheus' units.Base2Bytes: an integer and B, KB, MB, GB, TB, PB or EB (powers of 1024). */
static int parse_bytes(const char *name, uint64_t *out)
{
    const char *v = fval(name);
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || v[0] == '-')
        goto bad;
    if (*end == '\0' && x == 0) {
        *out = 0;
        return 0;
    }
    for (int u = 0; u < 7; u++) {
        if (strcasecmp(end, units[u]) == 0) {
            uint64_t m = (uint64_t)1 << (10 * u);
            if (x > UINT64_MAX / m)
                goto bad;
            *out = x * m;
            return 0;
        }
    }
bad:
    fprintf(stderr, "cairn: --%s: invalid size \"%s\" (e.g. 512MB, 10GB)\n", name, v);
    return -1;
}

/* "host:port", "[v6]:port" or ":port". */
static int parse_listen(const char *v, char *host, size_t hcap, uint16_t *port)
{
    const char *colon = strrchr(v, ':');
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - v);
    if (hl >= hcap)
        return -1;
    memcpy(host, v, hl);
    host[hl] = '\0';
    if (hl == 0)
        snprintf(host, hcap, "0.0.0.0");
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || p > 65535)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* ---- Web configuration (--web.config.file) ----------------------------------------------------
 */

/* The subset of Prometheus' web config Cairn honours:
 *   tls_server_config: { cert_file: <path>, key_file: <path> }
 *   basic_auth_users: { <user>: <crypt(3) hash, e.g. bcrypt $2y$...> }
 * Read line by line: a key without indentation opens a section, indented "k: v" lines fill it.
 * Values may be quoted. Anything else is an error, so a typo does not silently disable auth. */
typedef struct web_cfg {
    char *cert_pem, *key_pem;
    char **users; /* user, hash, ... */
    size_t n_users;
    char *text;
} web_cfg;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

static int load_web_cfg(const char *path, web_cfg *w)
{
    memset(w, 0, sizeof *w);
    w->text = read_file(path, 1 << 20, NULL);
    if (!w->text) {
        fprintf(stderr, "cairn: --web.config.file: cannot read %s\n", path);
        return -1;
    }
    char *cert = NULL, *key = NULL;
    int section = 0; /* 1 tls, 2 users */
    int lineno = 0;
    for (char *save = NULL, *line = strtok_r(w->text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash && (hash == line || hash[-1] == ' ') && strncmp(line, "  ", 2) != 0)
            *hash = '\0';
        if (!*trim(line))
            continue;
        int indented = line[0] == ' ' || line[0] == '\t';
        char *colon = strchr(line, ':');
        if (!colon) {
            fprintf(stderr, "cairn: %s:%d: expected \"key: value\"\n", path, lineno);
            return -1;
        }
        *colon = '\0';
        char *k = trim(line), *v = trim(colon + 1);
        if (!indented) {
            if (!strcmp(k, "tls_server_config"))
                section = 1;
            else if (!strcmp(k, "basic_auth_users"))
                section = 2;
            else if (!strcmp(k, "http_server_config"))
                section = 3;
            else {
                fprintf(stderr, "cairn: %s:%d: unsupported key \"%s\"\n", path, lineno, k);
                return -1;
            }
            continue;
        }
        if (section == 1 && !strcmp(k, "cert_file"))
            cert = v;
        else if (section == 1 && !strcmp(k, "key_file"))
            key = v;
        else if (section == 2 && *v) {
            w->users = xrealloc(w->users, (w->n_users + 1) * 2 * sizeof *w->users);
            w->users[2 * w->n_users] = k;
            w->users[2 * w->n_users + 1] = v;
            w->n_users++;
        } else if (section == 3 || section == 1) {
            continue; /* other TLS/HTTP options: ignored */
        } else {
            fprintf(stderr, "cairn: %s:%d: unexpected \"%s\"\n", path, lineno, k);
            return -1;
        }
    }
    if ((cert != NULL) != (key != NULL)) {
        fprintf(stderr, "cairn: %s: tls_server_config needs both cert_file and key_file\n", path);
        return -1;
    }
    if (cert) {
        w->cert_pem = read_file(cert, 1 << 20, NULL);
        w->key_pem = read_file(key, 1 << 20, NULL);
        if (!w->cert_pem || !w->key_pem) {
            fprintf(stderr, "cairn: %s: cannot read TLS certificate or key\n", path);
            return -1;
        }
    }
    return 0;
}

static void free_web_cfg(web_cfg *w)
{
    free(w->cert_pem);
    free(w->key_pem);
    free(w->users);
    free(w->text);
}

/* ---- Reload -------------------------------------------------------------------------------------
 */

typedef struct app {
    ingest_scraper *scraper;
} app;

/* The reload hook: re-reads the scrape configuration (if any). */
static int reload_config(void *ud, tsdb_err *err)
{
    app *ap = ud;
    if (!ap->scraper)
        return TSDB_OK;
    int rc = ingest_scraper_reload(ap->scraper, err);
    if (rc == TSDB_OK)
        TSDB_LOG_INFO("main", "configuration reloaded");
    else
        TSDB_LOG_ERROR("main", "configuration reload failed: %s", err ? err->msg : "");
    return rc;
}

/* ---- Main
 * ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int pr = parse_flags(argc, argv);
    if (pr != 0)
        return pr > 0 ? 0 : 2;

    enum tsdb_log_level lvl;
    if (tsdb_log_parse_level(fval("log.level"), &lvl) != TSDB_OK) {
        fprintf(stderr, "cairn: --log.level: expected debug, info, warn or error, got \"%s\"\n",
                fval("log.level"));
        return 2;
    }
    tsdb_log_set_level(lvl);
    const char *lf = fval("log.format");
    if (strcmp(lf, "logfmt") != 0 && strcmp(lf, "json") != 0) {
        fprintf(stderr, "cairn: --log.format: expected logfmt or json, got \"%s\"\n", lf);
        return 2;
    }
    tsdb_log_set_json(!strcmp(lf, "json"));

    int64_t retention_ms, lookback_ms, timeout_ms, ooo_ms;
    uint64_t retention_bytes, max_samples, max_conc, max_conns;
    char host[128];
    uint16_t port;
    if (parse_dur("storage.tsdb.retention.time", &retention_ms) < 0 ||
        parse_dur("query.lookback-delta", &lookback_ms) < 0 ||
        parse_dur("query.timeout", &timeout_ms) < 0 ||
        parse_dur("storage.tsdb.out-of-order-time-window", &ooo_ms) < 0 ||
        parse_bytes("storage.tsdb.retention.size", &retention_bytes) < 0 ||
        parse_uint("query.max-samples", SIZE_MAX, &max_samples) < 0 ||
        parse_uint("query.max-concurrency", 100000, &max_conc) < 0 ||
        parse_uint("web.max-connections", 100000, &max_conns) < 0)
        return 2;
    if (parse_listen(fval("web.listen-address"), host, sizeof host, &port) < 0) {
        fprintf(stderr, "cairn: --web.listen-address: expected host:port, got \"%s\"\n",
                fval("web.listen-address"));
        return 2;
    }
    if (max_conc == 0) {
        fprintf(stderr, "cairn: --query.max-concurrency must be at least 1\n");
        return 2;
    }
    web_cfg wc;
    memset(&wc, 0, sizeof wc);
    if (fval("web.config.file")[0] && load_web_cfg(fval("web.config.file"), &wc) < 0) {
        free_web_cfg(&wc);
        return 2;
    }
    char *config_text = NULL;
    if (fval("config.file")[0]) {
        config_text = read_file(fval("config.file"), 16 << 20, NULL);
        if (!config_text) {
            fprintf(stderr, "cairn: --config.file: cannot read %s\n", fval("config.file"));
            free_web_cfg(&wc);
            return 2;
        }
    }

    /* Block the signals we handle before any thread starts, so only sigwait sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    tsdb *db = NULL;
    api_server *srv = NULL;
    app ap = {NULL};
    tsdb_err err = {0};

    tsdb_opts to;
    tsdb_opts_default(&to);
    to.dir = fval("storage.tsdb.path");
    to.retention_ms = retention_ms;
    to.retention_bytes = retention_bytes;
    to.ooo_window_ms = ooo_ms;
    TSDB_LOG_INFO("main", "starting Cairn %s, data in %s", CAIRN_VERSION, to.dir);

    /* Listen first: while the WAL replays, /-/healthy answers 200 and /-/ready 503, as with
     * Prometheus, so a liveness probe does not kill a server that is only slow to start. */
    const char *flag_pairs[2 * N_FLAGS];
    for (size_t i = 0; i < N_FLAGS; i++) {
        flag_pairs[2 * i] = flags[i].name;
        flag_pairs[2 * i + 1] = flags[i].val;
    }
    api_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.addr = host;
    ao.port = port;
    ao.query.lookback_ms = lookback_ms;
    ao.query.timeout_ms = timeout_ms;
    ao.query.max_samples = (size_t)max_samples;
    ao.max_concurrent_queries = (unsigned)max_conc;
    ao.max_connections = (unsigned)max_conns;
    ao.enable_admin = !strcmp(fval("web.enable-admin-api"), "true");
    ao.data_dir = to.dir;
    ao.flags = flag_pairs;
    ao.n_flags = N_FLAGS;
    ao.config_yaml = config_text;
    ao.reload = reload_config;
    ao.reload_ud = &ap;
    ao.auth_users = (const char *const *)wc.users;
    ao.n_auth_users = wc.n_users;
    ao.tls_cert_pem = wc.cert_pem;
    ao.tls_key_pem = wc.key_pem;
    int rc = api_server_start(NULL, &ao, &srv, &err);
    if (rc != TSDB_OK) {
        fprintf(stderr, "cairn: %s\n", err.msg[0] ? err.msg : tsdb_strerror(rc));
        goto out;
    }
    TSDB_LOG_INFO("main", "listening on %s:%u", host, (unsigned)api_server_port(srv));

    rc = tsdb_open(&to, &db, &err);
    if (rc != TSDB_OK) {
        fprintf(stderr, "cairn: opening storage at %s: %s\n", to.dir,
                err.msg[0] ? err.msg : tsdb_strerror(rc));
        goto out;
    }
    if (config_text) {
        rc = ingest_scraper_start(db, fval("config.file"), &ap.scraper, &err);
        if (rc != TSDB_OK) {
            fprintf(stderr, "cairn: --config.file: %s\n", err.msg[0] ? err.msg : tsdb_strerror(rc));
            goto out;
        }
    }
    api_server_attach(srv, db, ap.scraper);
    TSDB_LOG_INFO("main", "ready");
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            tsdb_err re = {0};
            api_server_reload(srv, &re);
            continue;
        }
        TSDB_LOG_INFO("main", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    status = 0;
out:
    api_server_stop(srv);
    ingest_scraper_stop(ap.scraper);
    tsdb_close(db);
    free(config_text);
    free_web_cfg(&wc);
    if (status == 0)
        TSDB_LOG_INFO("main", "stopped");
    return status;
}
