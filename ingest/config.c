/* ingest/config.c -- the Prometheus-style scrape configuration (the only user of libyaml).
 *
 * Accepted shape (a subset of prometheus.yml; keys Cairn does not use but Prometheus files
 * commonly carry, such as rule_files or remote_write, are accepted and ignored; any other key is
 * an error naming the key and its line):
 *
 *   global:
 *     scrape_interval: 1m        scrape_timeout: 10s      evaluation_interval: (ignored)
 *     external_labels: {name: value}
 *     sample_limit / label_limit / body_size_limit: defaults for every job
 *   scrape_configs:
 *     - job_name: node                    (required, unique)
 *       scrape_interval / scrape_timeout  (timeout <= interval)
 *       metrics_path: /metrics            scheme: http|https
 *       params: {name: [value, ...]}
 *       honor_labels: false               honor_timestamps: true
 *       sample_limit / label_limit: N     body_size_limit: 10MB
 *       basic_auth: {username, password | password_file}
 *       authorization: {type: Bearer, credentials | credentials_file}
 *       tls_config: {ca_file, cert_file, key_file, server_name, insecure_skip_verify}
 *       static_configs: [{targets: [host:port, ...], labels: {name: value}}]
 *       file_sd_configs: [{files: [glob, ...], refresh_interval: 5m}]
 *       relabel_configs / metric_relabel_configs: [{source_labels, separator, target_label,
 *                                                   regex, modulus, replacement, action}]
 *
 * The file is loaded with libyaml's document API so that every node keeps its line; errors read
 * "path:line: reason". Everything the config keeps is copied into its arena.
 */
#include "ingest/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"
#include "ingest/relabel.h"

#define CONFIG_MAX_BYTES (16u << 20)

typedef struct cctx {
    yaml_document_t *doc;
    const char *name; /* file name for messages */
    tsdb_arena *a;
    tsdb_err *err;
} cctx;

static int cerr(cctx *c, const yaml_node_t *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cerr(cctx *c, const yaml_node_t *n, int code, const char *fmt, ...)
{
    char msg[180];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tsdb_errf(c->err, code, -1, "%s:%d: %s", c->name, n ? (int)n->start_mark.line + 1 : 0,
                     msg);
}

/* ---- Durations and sizes --------------------------------------------------------------------- */

void ingest__duration_format(int64_t ms, char *out, size_t cap)
{
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"y", 365LL * 86400000},
                 {"w", 7LL * 86400000},
                 {"d", 86400000},
                 {"h", 3600000},
                 {"m", 60000},
                 {"s", 1000},
                 {"ms", 1}};
    size_t n = 0;
    if (cap == 0)
        return;
    out[0] = 0;
    if (ms <= 0) {
        snprintf(out, cap, "0s");
        return;
    }
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
        int64_t q = ms / units[k].ms;
        if (q == 0)
            continue;
        ms -= q * units[k].ms;
        int w = snprintf(out + n, cap - n, "%lld%s", (long long)q, units[k].u);
        if (w < 0 || (size_t)w >= cap - n)
            return;
        n += (size_t)w;
    }
}

/* "1024", "10MB", "512KiB": base-2 units as Prometheus' body_size_limit. */
static int size_parse(tsdb_str s, uint64_t *out)
{
    size_t i = 0;
    uint64_t n = 0;
    while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9') {
        if (n > UINT64_MAX / 10)
            return -1;
        n = n * 10 + (uint64_t)(s.p[i++] - '0');
    }
    if (i == 0)
        return -1;
    tsdb_str u = {s.p + i, s.len - i};
    static const char *const names[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    static const char *const inames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int shift = -1;
    if (u.len == 0)
        shift = 0;
    for (int k = 0; k < 6 && shift < 0; k++)
        if ((u.len == strlen(names[k]) && !memcmp(u.p, names[k], u.len)) ||
            (u.len == strlen(inames[k]) && !memcmp(u.p, inames[k], u.len)))
            shift = 10 * k;
    if (shift < 0 || (shift && n > (UINT64_MAX >> shift)))
        return -1;
    *out = n << shift;
    return 0;
}

/* ---- Node helpers ---------------------------------------------------------------------------- */

static yaml_node_t *node_at(cctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static tsdb_str scalar(const yaml_node_t *n)
{
    return (tsdb_str){(const char *)n->data.scalar.value, n->data.scalar.length};
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    tsdb_str s = scalar(n);
    return s.len == 0 || (s.len == 1 && s.p[0] == '~') || (s.len == 4 && !memcmp(s.p, "null", 4));
}

static int key_is(tsdb_str k, const char *lit)
{
    return k.len == strlen(lit) && memcmp(k.p, lit, k.len) == 0;
}

static int want_scalar(cctx *c, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE)
        return cerr(c, n, TSDB_EINVAL, "%s must be a single value", what);
    return 0;
}

static int get_str(cctx *c, yaml_node_t *n, const char *what, tsdb_str *out)
{
    if (want_scalar(c, n, what) < 0)
        return TSDB_EINVAL;
    *out = is_null(n) ? (tsdb_str){"", 0} : tsdb_arena_str(c->a, scalar(n));
    return 0;
}

static int get_bool(cctx *c, yaml_node_t *n, const char *what, int *out)
{
    if (want_scalar(c, n, what) < 0)
        return TSDB_EINVAL;
    tsdb_str s = scalar(n);
    static const char *const t[] = {"true", "True", "TRUE", "yes", "on"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "off"};
    for (int i = 0; i < 5; i++) {
        if (key_is(s, t[i])) {
            *out = 1;
            return 0;
        }
        if (key_is(s, f[i])) {
            *out = 0;
            return 0;
        }
    }
    return cerr(c, n, TSDB_EINVAL, "%s: \"%.*s\" is not a boolean", what, (int)s.len, s.p);
}

static int get_dur(cctx *c, yaml_node_t *n, const char *what, int64_t *out)
{
    if (want_scalar(c, n, what) < 0)
        return TSDB_EINVAL;
    tsdb_str s = scalar(n);
    if (tsdb_duration_parse(s, out) < 0)
        return cerr(c, n, TSDB_EINVAL, "%s: not a valid duration string: \"%.*s\"", what,
                    (int)(s.len > 60 ? 60 : s.len), s.p);
    return 0;
}

static int get_uint(cctx *c, yaml_node_t *n, const char *what, uint64_t *out)
{
    if (want_scalar(c, n, what) < 0)
        return TSDB_EINVAL;
    tsdb_str s = scalar(n);
    uint64_t v = 0;
    size_t i = 0;
    for (; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            break;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (i == 0 || i != s.len)
        return cerr(c, n, TSDB_EINVAL, "%s: \"%.*s\" is not a non-negative integer", what,
                    (int)(s.len > 60 ? 60 : s.len), s.p);
    *out = v;
    return 0;
}

static int get_size(cctx *c, yaml_node_t *n, const char *what, uint64_t *out)
{
    if (want_scalar(c, n, what) < 0)
        return TSDB_EINVAL;
    tsdb_str s = scalar(n);
    if (size_parse(s, out) < 0)
        return cerr(c, n, TSDB_EINVAL, "%s: \"%.*s\" is not a size (e.g. 10MB)", what,
                    (int)(s.len > 60 ? 60 : s.len), s.p);
    return 0;
}

/* Iterates a mapping: for each pair calls fn(c, key, keynode, value, ud). */
typedef int (*pair_fn)(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud);

static int each_pair(cctx *c, yaml_node_t *n, const char *what, pair_fn fn, void *ud)
{
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return cerr(c, n, TSDB_EINVAL, "%s must be a mapping", what);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        if (!k || !v)
            return cerr(c, n, TSDB_EINVAL, "%s: broken mapping", what);
        if (k->type != YAML_SCALAR_NODE)
            return cerr(c, k, TSDB_EINVAL, "%s: keys must be plain strings", what);
        int rc = fn(c, scalar(k), k, v, ud);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int unknown_key(cctx *c, yaml_node_t *kn, tsdb_str key, const char *where)
{
    return cerr(c, kn, TSDB_EINVAL, "unknown key \"%.*s\" in %s",
                (int)(key.len > 60 ? 60 : key.len), key.p, where);
}

/* A sequence's items (a null node is an empty list). */
static int seq_items(cctx *c, yaml_node_t *n, const char *what, yaml_node_item_t **b,
                     yaml_node_item_t **e)
{
    if (is_null(n)) {
        *b = *e = NULL;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return cerr(c, n, TSDB_EINVAL, "%s must be a list", what);
    *b = n->data.sequence.items.start;
    *e = n->data.sequence.items.top;
    return 0;
}

static int get_str_list(cctx *c, yaml_node_t *n, const char *what, tsdb_str **out, size_t *n_out)
{
    yaml_node_item_t *b, *e;
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) { /* a single string for a list of one */
        *out = tsdb_arena_alloc(c->a, sizeof **out);
        (*out)[0] = tsdb_arena_str(c->a, scalar(n));
        *n_out = 1;
        return 0;
    }
    int rc = seq_items(c, n, what, &b, &e);
    if (rc < 0)
        return rc;
    size_t cnt = (size_t)(e - b);
    tsdb_str *v = tsdb_arena_calloc(c->a, cnt ? cnt : 1, sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node_at(c, b[i]);
        if (!it || (rc = get_str(c, it, what, &v[i])) < 0)
            return rc < 0 ? rc : cerr(c, n, TSDB_EINVAL, "%s: broken list", what);
    }
    *out = v;
    *n_out = cnt;
    return 0;
}

/* ---- Labels ---------------------------------------------------------------------------------- */

typedef struct lset {
    tsdb_label *v;
    size_t n, cap;
} lset;

static int label_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    lset *l = ud;
    if (!tsdb_label_name_valid(key))
        return cerr(c, kn, TSDB_EINVAL, "\"%.*s\" is not a valid label name",
                    (int)(key.len > 60 ? 60 : key.len), key.p);
    for (size_t i = 0; i < l->n; i++)
        if (tsdb_str_eq(l->v[i].name, key))
            return cerr(c, kn, TSDB_EINVAL, "label \"%.*s\" given twice", (int)key.len, key.p);
    tsdb_str val;
    int rc = get_str(c, vn, "label value", &val);
    if (rc < 0)
        return rc;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        l->v = tsdb_arena_realloc(c->a, l->v, l->cap * sizeof *l->v, nc * sizeof *l->v);
        l->cap = nc;
    }
    l->v[l->n++] = (tsdb_label){tsdb_arena_str(c->a, key), val};
    return 0;
}

static int get_labels(cctx *c, yaml_node_t *n, const char *what, tsdb_label **out, size_t *n_out)
{
    lset l = {0};
    int rc = each_pair(c, n, what, label_pair, &l);
    if (rc < 0)
        return rc;
    *out = l.v;
    *n_out = l.n;
    return 0;
}

/* ---- Target groups (static_configs and file_sd files) ---------------------------------------- */

static int tgroup_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    ingest_tgroup *g = ud;
    if (key_is(key, "targets"))
        return get_str_list(c, vn, "targets", &g->targets, &g->n_targets);
    if (key_is(key, "labels"))
        return get_labels(c, vn, "labels", &g->labels, &g->n_labels);
    return unknown_key(c, kn, key, "a target group (expected targets, labels)");
}

static int get_tgroups(cctx *c, yaml_node_t *n, const char *what, ingest_tgroup **out,
                       size_t *n_out)
{
    yaml_node_item_t *b, *e;
    int rc = seq_items(c, n, what, &b, &e);
    if (rc < 0)
        return rc;
    size_t cnt = (size_t)(e - b);
    ingest_tgroup *g = tsdb_arena_calloc(c->a, cnt ? cnt : 1, sizeof *g);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node_at(c, b[i]);
        if (!it)
            return cerr(c, n, TSDB_EINVAL, "%s: broken list", what);
        if ((rc = each_pair(c, it, what, tgroup_pair, &g[i])) < 0)
            return rc;
        g[i].source = (tsdb_str){"", 0};
    }
    *out = g;
    *n_out = cnt;
    return 0;
}

/* ---- Relabel rules --------------------------------------------------------------------------- */

typedef struct rset {
    ingest_relabel_rule *v;
    size_t n;
} rset;

static int relabel_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    ingest_relabel_rule *r = ud;
    if (key_is(key, "source_labels")) {
        int rc = get_str_list(c, vn, "source_labels", &r->source, &r->n_source);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < r->n_source; i++)
            if (!tsdb_label_name_valid(r->source[i]))
                return cerr(c, vn, TSDB_EINVAL, "\"%.*s\" is not a valid label name",
                            (int)(r->source[i].len > 60 ? 60 : r->source[i].len), r->source[i].p);
        return 0;
    }
    if (key_is(key, "separator"))
        return get_str(c, vn, "separator", &r->separator);
    if (key_is(key, "target_label"))
        return get_str(c, vn, "target_label", &r->target);
    if (key_is(key, "regex")) {
        int rc = get_str(c, vn, "regex", &r->regex);
        if (rc == 0 && !r->regex.p[0] && is_null(vn))
            r->regex = (tsdb_str){NULL, 0}; /* "regex:" with nothing means the default */
        return rc;
    }
    if (key_is(key, "modulus"))
        return get_uint(c, vn, "modulus", &r->modulus);
    if (key_is(key, "replacement"))
        return get_str(c, vn, "replacement", &r->replacement);
    if (key_is(key, "action")) {
        if (want_scalar(c, vn, "action") < 0)
            return TSDB_EINVAL;
        int act = ingest__relabel_action(scalar(vn));
        if (act < 0)
            return cerr(c, vn, TSDB_EINVAL, "unknown relabel action \"%.*s\"",
                        (int)(vn->data.scalar.length > 40 ? 40 : vn->data.scalar.length),
                        (const char *)vn->data.scalar.value);
        r->action = (enum ingest_relabel_action)act;
        return 0;
    }
    return unknown_key(c, kn, key, "a relabel config");
}

static int get_relabels(cctx *c, yaml_node_t *n, const char *what, ingest_relabel_rule **out,
                        size_t *n_out)
{
    yaml_node_item_t *b, *e;
    int rc = seq_items(c, n, what, &b, &e);
    if (rc < 0)
        return rc;
    size_t cnt = (size_t)(e - b);
    ingest_relabel_rule *v = tsdb_arena_calloc(c->a, cnt ? cnt : 1, sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node_at(c, b[i]);
        if (!it)
            return cerr(c, n, TSDB_EINVAL, "%s: broken list", what);
        v[i].action = INGEST_RELABEL_REPLACE;
        v[i].line = (int)it->start_mark.line + 1;
        if ((rc = each_pair(c, it, what, relabel_pair, &v[i])) < 0)
            return rc;
        tsdb_err e2;
        if ((rc = ingest__relabel_compile(&v[i], c->a, &e2)) < 0)
            return cerr(c, it, rc, "%s: %s", what, e2.msg);
    }
    *out = v;
    *n_out = cnt;
    return 0;
}

/* ---- Scrape configs -------------------------------------------------------------------------- */

typedef struct jctx {
    ingest_scrape_cfg *j;
    int has_interval, has_timeout, has_body, has_sample, has_label;
    /* file_sd accumulation */
    tsdb_str *files;
    size_t n_files, cap_files;
} jctx;

static int basic_auth_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    ingest_scrape_cfg *j = ud;
    if (key_is(key, "username"))
        return get_str(c, vn, "username", &j->ba_user);
    if (key_is(key, "password"))
        return get_str(c, vn, "password", &j->ba_pass);
    if (key_is(key, "password_file"))
        return get_str(c, vn, "password_file", &j->ba_pass_file);
    return unknown_key(c, kn, key, "basic_auth");
}

static int authz_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    ingest_scrape_cfg *j = ud;
    if (key_is(key, "type"))
        return get_str(c, vn, "type", &j->auth_type);
    if (key_is(key, "credentials"))
        return get_str(c, vn, "credentials", &j->auth_cred);
    if (key_is(key, "credentials_file"))
        return get_str(c, vn, "credentials_file", &j->auth_cred_file);
    return unknown_key(c, kn, key, "authorization");
}

static int tls_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    ingest_scrape_cfg *j = ud;
    if (key_is(key, "ca_file"))
        return get_str(c, vn, "ca_file", &j->tls_ca);
    if (key_is(key, "cert_file"))
        return get_str(c, vn, "cert_file", &j->tls_cert);
    if (key_is(key, "key_file"))
        return get_str(c, vn, "key_file", &j->tls_key);
    if (key_is(key, "server_name"))
        return get_str(c, vn, "server_name", &j->tls_server_name);
    if (key_is(key, "insecure_skip_verify"))
        return get_bool(c, vn, "insecure_skip_verify", &j->tls_insecure);
    if (key_is(key, "min_version"))
        return want_scalar(c, vn, "min_version");
    return unknown_key(c, kn, key, "tls_config");
}

static int params_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    (void)kn;
    ingest_scrape_cfg *j = ud;
    tsdb_str *vals;
    size_t nv;
    int rc = get_str_list(c, vn, "params", &vals, &nv);
    if (rc < 0)
        return rc;
    j->params = tsdb_arena_realloc(c->a, j->params, j->n_params * sizeof *j->params,
                                   (j->n_params + nv) * sizeof *j->params);
    for (size_t i = 0; i < nv; i++)
        j->params[j->n_params++] = (tsdb_label){tsdb_arena_str(c->a, key), vals[i]};
    return 0;
}

static int has_suffix(tsdb_str s, const char *suf)
{
    size_t n = strlen(suf);
    return s.len >= n && memcmp(s.p + s.len - n, suf, n) == 0;
}

static int file_sd_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    jctx *jc = ud;
    if (key_is(key, "files")) {
        tsdb_str *f;
        size_t nf;
        int rc = get_str_list(c, vn, "files", &f, &nf);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < nf; i++) {
            if (!has_suffix(f[i], ".json") && !has_suffix(f[i], ".yml") &&
                !has_suffix(f[i], ".yaml"))
                return cerr(c, vn, TSDB_EINVAL,
                            "file_sd_configs: \"%.*s\" must end in .json, .yml or .yaml",
                            (int)(f[i].len > 80 ? 80 : f[i].len), f[i].p);
            const char *slash = strrchr(f[i].p, '/');
            if (slash && strpbrk(f[i].p, "*?[") && strpbrk(f[i].p, "*?[") < slash)
                return cerr(c, vn, TSDB_EINVAL,
                            "file_sd_configs: \"%s\": patterns are allowed only in the last "
                            "path element",
                            f[i].p);
            if (jc->n_files == jc->cap_files) {
                size_t nc = jc->cap_files ? jc->cap_files * 2 : 4;
                jc->files = tsdb_arena_realloc(c->a, jc->files, jc->cap_files * sizeof(tsdb_str),
                                               nc * sizeof(tsdb_str));
                jc->cap_files = nc;
            }
            jc->files[jc->n_files++] = f[i];
        }
        return 0;
    }
    if (key_is(key, "refresh_interval")) {
        int64_t ms;
        int rc = get_dur(c, vn, "refresh_interval", &ms);
        if (rc == 0 && ms > 0 && (jc->j->sd_refresh_ms == 0 || ms < jc->j->sd_refresh_ms))
            jc->j->sd_refresh_ms = ms;
        return rc;
    }
    return unknown_key(c, kn, key, "file_sd_configs");
}

static int job_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    jctx *jc = ud;
    ingest_scrape_cfg *j = jc->j;
    if (key_is(key, "job_name"))
        return get_str(c, vn, "job_name", &j->job_name);
    if (key_is(key, "scrape_interval")) {
        jc->has_interval = 1;
        return get_dur(c, vn, "scrape_interval", &j->interval_ms);
    }
    if (key_is(key, "scrape_timeout")) {
        jc->has_timeout = 1;
        return get_dur(c, vn, "scrape_timeout", &j->timeout_ms);
    }
    if (key_is(key, "metrics_path"))
        return get_str(c, vn, "metrics_path", &j->metrics_path);
    if (key_is(key, "scheme"))
        return get_str(c, vn, "scheme", &j->scheme);
    if (key_is(key, "params"))
        return each_pair(c, vn, "params", params_pair, j);
    if (key_is(key, "honor_labels"))
        return get_bool(c, vn, "honor_labels", &j->honor_labels);
    if (key_is(key, "honor_timestamps"))
        return get_bool(c, vn, "honor_timestamps", &j->honor_timestamps);
    if (key_is(key, "sample_limit")) {
        jc->has_sample = 1;
        return get_uint(c, vn, "sample_limit", &j->sample_limit);
    }
    if (key_is(key, "label_limit")) {
        jc->has_label = 1;
        return get_uint(c, vn, "label_limit", &j->label_limit);
    }
    if (key_is(key, "body_size_limit")) {
        jc->has_body = 1;
        return get_size(c, vn, "body_size_limit", &j->body_size_limit);
    }
    if (key_is(key, "basic_auth")) {
        j->has_basic_auth = 1;
        return each_pair(c, vn, "basic_auth", basic_auth_pair, j);
    }
    if (key_is(key, "authorization")) {
        j->has_authorization = 1;
        return each_pair(c, vn, "authorization", authz_pair, j);
    }
    if (key_is(key, "tls_config"))
        return each_pair(c, vn, "tls_config", tls_pair, j);
    if (key_is(key, "static_configs"))
        return get_tgroups(c, vn, "static_configs", &j->static_groups, &j->n_static);
    if (key_is(key, "file_sd_configs")) {
        yaml_node_item_t *b, *e;
        int rc = seq_items(c, vn, "file_sd_configs", &b, &e);
        for (yaml_node_item_t *it = b; rc == 0 && it < e; it++) {
            yaml_node_t *n = node_at(c, *it);
            rc = n ? each_pair(c, n, "file_sd_configs", file_sd_pair, jc)
                   : cerr(c, vn, TSDB_EINVAL, "file_sd_configs: broken list");
        }
        return rc;
    }
    if (key_is(key, "relabel_configs"))
        return get_relabels(c, vn, "relabel_configs", &j->relabel, &j->n_relabel);
    if (key_is(key, "metric_relabel_configs"))
        return get_relabels(c, vn, "metric_relabel_configs", &j->metric_relabel,
                            &j->n_metric_relabel);
    /* Accepted for compatibility with Prometheus files; they change nothing here. */
    static const char *const ignored[] = {"follow_redirects",
                                          "enable_http2",
                                          "track_timestamps_staleness",
                                          "scrape_protocols",
                                          "label_name_length_limit",
                                          "label_value_length_limit",
                                          "target_limit",
                                          "keep_dropped_targets",
                                          "enable_compression"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (key_is(key, ignored[i]))
            return 0;
    return unknown_key(c, kn, key, "scrape_configs");
}

typedef struct gctx {
    ingest_config *cfg;
    uint64_t sample_limit, label_limit, body_size_limit;
    yaml_node_t *jobs; /* scrape_configs node, parsed after global */
    yaml_node_t *global;
} gctx;

static int global_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    gctx *g = ud;
    if (key_is(key, "scrape_interval"))
        return get_dur(c, vn, "scrape_interval", &g->cfg->scrape_interval_ms);
    if (key_is(key, "scrape_timeout"))
        return get_dur(c, vn, "scrape_timeout", &g->cfg->scrape_timeout_ms);
    if (key_is(key, "external_labels"))
        return get_labels(c, vn, "external_labels", &g->cfg->external_labels,
                          &g->cfg->n_external_labels);
    if (key_is(key, "sample_limit"))
        return get_uint(c, vn, "sample_limit", &g->sample_limit);
    if (key_is(key, "label_limit"))
        return get_uint(c, vn, "label_limit", &g->label_limit);
    if (key_is(key, "body_size_limit"))
        return get_size(c, vn, "body_size_limit", &g->body_size_limit);
    static const char *const ignored[] = {
        "evaluation_interval",      "query_log_file", "label_name_length_limit",
        "label_value_length_limit", "target_limit",   "keep_dropped_targets",
        "scrape_protocols"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (key_is(key, ignored[i]))
            return 0;
    return unknown_key(c, kn, key, "global");
}

static int top_pair(cctx *c, tsdb_str key, yaml_node_t *kn, yaml_node_t *vn, void *ud)
{
    gctx *g = ud;
    if (key_is(key, "global")) {
        g->global = vn;
        return 0;
    }
    if (key_is(key, "scrape_configs")) {
        g->jobs = vn;
        return 0;
    }
    static const char *const ignored[] = {"rule_files",  "alerting", "remote_write",
                                          "remote_read", "storage",  "tracing"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (key_is(key, ignored[i]))
            return 0;
    return unknown_key(c, kn, key, "the top level");
}

static int job_finish(cctx *c, yaml_node_t *n, gctx *g, jctx *jc)
{
    ingest_scrape_cfg *j = jc->j;
    ingest_config *cfg = g->cfg;
    if (j->job_name.len == 0)
        return cerr(c, n, TSDB_EINVAL, "job_name is empty or missing");
    if (!jc->has_interval)
        j->interval_ms = cfg->scrape_interval_ms;
    if (!jc->has_timeout) {
        j->timeout_ms = cfg->scrape_timeout_ms;
        if (j->timeout_ms > j->interval_ms)
            j->timeout_ms = j->interval_ms;
    }
    if (j->interval_ms <= 0)
        return cerr(c, n, TSDB_EINVAL, "scrape_interval must be positive for job \"%s\"",
                    j->job_name.p);
    if (j->timeout_ms <= 0)
        return cerr(c, n, TSDB_EINVAL, "scrape_timeout must be positive for job \"%s\"",
                    j->job_name.p);
    if (j->timeout_ms > j->interval_ms)
        return cerr(c, n, TSDB_EINVAL,
                    "scrape timeout greater than scrape interval for scrape config with job "
                    "name \"%s\"",
                    j->job_name.p);
    if (!j->metrics_path.len)
        j->metrics_path = TSDB_STR("/metrics");
    if (!j->scheme.len)
        j->scheme = TSDB_STR("http");
    if (!key_is(j->scheme, "http") && !key_is(j->scheme, "https"))
        return cerr(c, n, TSDB_EINVAL, "unsupported scheme \"%s\" for job \"%s\"", j->scheme.p,
                    j->job_name.p);
    if (!jc->has_sample)
        j->sample_limit = g->sample_limit;
    if (!jc->has_label)
        j->label_limit = g->label_limit;
    if (!jc->has_body)
        j->body_size_limit = g->body_size_limit;
    if (j->has_basic_auth && j->ba_pass.len && j->ba_pass_file.len)
        return cerr(c, n, TSDB_EINVAL,
                    "at most one of basic_auth password & password_file must be configured");
    if (j->has_authorization) {
        if (j->has_basic_auth)
            return cerr(c, n, TSDB_EINVAL,
                        "at most one of basic_auth and authorization must be configured");
        if (j->auth_cred.len && j->auth_cred_file.len)
            return cerr(c, n, TSDB_EINVAL,
                        "at most one of authorization credentials & credentials_file must be "
                        "configured");
        if (!j->auth_type.len)
            j->auth_type = TSDB_STR("Bearer");
        if (j->auth_type.len == 5 && !strncasecmp(j->auth_type.p, "basic", 5))
            return cerr(c, n, TSDB_EINVAL,
                        "authorization type cannot be set to \"basic\", use \"basic_auth\" "
                        "instead");
    }
    if (j->tls_cert.len && !j->tls_key.len)
        return cerr(c, n, TSDB_EINVAL, "tls_config: cert_file given without key_file");
    if (j->tls_key.len && !j->tls_cert.len)
        return cerr(c, n, TSDB_EINVAL, "tls_config: key_file given without cert_file");
    j->sd_files = jc->files;
    j->n_sd_files = jc->n_files;
    if (j->n_sd_files && !j->sd_refresh_ms)
        j->sd_refresh_ms = 5 * 60000;
    for (size_t k = 0; k < cfg->n_jobs; k++)
        if (tsdb_str_eq(cfg->jobs[k].job_name, j->job_name))
            return cerr(c, n, TSDB_EINVAL, "found multiple scrape configs with job name \"%s\"",
                        j->job_name.p);
    return 0;
}

static int parse_root(cctx *c, yaml_node_t *root, ingest_config *cfg)
{
    gctx g = {.cfg = cfg};
    int rc = each_pair(c, root, "the configuration", top_pair, &g);
    if (rc < 0)
        return rc;
    if (g.global && (rc = each_pair(c, g.global, "global", global_pair, &g)) < 0)
        return rc;
    if (cfg->scrape_timeout_ms > cfg->scrape_interval_ms)
        return cerr(c, g.global, TSDB_EINVAL, "global scrape timeout greater than scrape interval");
    if (!g.jobs)
        return 0;
    yaml_node_item_t *b, *e;
    if ((rc = seq_items(c, g.jobs, "scrape_configs", &b, &e)) < 0)
        return rc;
    size_t cnt = (size_t)(e - b);
    cfg->jobs = tsdb_arena_calloc(c->a, cnt ? cnt : 1, sizeof *cfg->jobs);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *n = node_at(c, b[i]);
        if (!n)
            return cerr(c, g.jobs, TSDB_EINVAL, "scrape_configs: broken list");
        jctx jc = {.j = &cfg->jobs[cfg->n_jobs]};
        jc.j->honor_timestamps = 1;
        if ((rc = each_pair(c, n, "scrape_configs", job_pair, &jc)) < 0)
            return rc;
        if ((rc = job_finish(c, n, &g, &jc)) < 0)
            return rc;
        cfg->n_jobs++;
    }
    return 0;
}

/* ---- Loading --------------------------------------------------------------------------------- */

/* Parses text into a document; fills err on a YAML syntax error. */
static int load_doc(const char *name, const char *text, size_t len, yaml_document_t *doc,
                    tsdb_err *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return tsdb_errf(err, TSDB_ENOMEM, -1, "%s: cannot initialize the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, doc)) {
        rc = tsdb_errf(err, TSDB_EPARSE, (int)parser.problem_offset, "%s:%d: YAML error: %s%s%s",
                       name, (int)parser.problem_mark.line + 1,
                       parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                       parser.context ? parser.context : "");
    }
    yaml_parser_delete(&parser);
    return rc;
}

int ingest__config_parse(const char *name, const char *text, size_t len, ingest_config **out,
                         tsdb_err *err)
{
    if (len > CONFIG_MAX_BYTES)
        return tsdb_errf(err, TSDB_ELIMIT, -1, "%s: larger than %u bytes", name, CONFIG_MAX_BYTES);
    yaml_document_t doc;
    int rc = load_doc(name, text, len, &doc, err);
    if (rc < 0)
        return rc;
    ingest_config *cfg = xcalloc(1, sizeof *cfg);
    tsdb_arena_init(&cfg->arena, 0);
    cfg->scrape_interval_ms = 60000;
    cfg->scrape_timeout_ms = 10000;
    cfg->path = tsdb_arena_str(&cfg->arena, tsdb_str_c(name));
    cctx c = {&doc, name, &cfg->arena, err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null(root))
        rc = parse_root(&c, root, cfg);
    yaml_document_delete(&doc);
    if (rc < 0) {
        ingest__config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* Reads a whole regular file (at most max bytes) into a heap buffer. */
static int read_file(const char *path, size_t max, char **buf, size_t *len, tsdb_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tsdb_errf(err, TSDB_EIO, -1, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = xmalloc(cap);
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                rc = tsdb_errf(err, TSDB_ELIMIT, -1, "%s: larger than %zu bytes", path, max);
                break;
            }
            cap *= 2;
            b = xrealloc(b, cap);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                rc = tsdb_errf(err, TSDB_EIO, -1, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (rc == 0 && n > max)
        rc = tsdb_errf(err, TSDB_ELIMIT, -1, "%s: larger than %zu bytes", path, max);
    if (rc < 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

int ingest__config_load(const char *path, ingest_config **out, tsdb_err *err)
{
    char *buf;
    size_t len;
    int rc = read_file(path, CONFIG_MAX_BYTES, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = ingest__config_parse(path, buf, len, out, err);
    free(buf);
    return rc;
}

void ingest__config_free(ingest_config *c)
{
    if (!c)
        return;
    tsdb_arena_fini(&c->arena);
    free(c);
}

int ingest_config_check(const char *path, tsdb_err *err)
{
    ingest_config *c;
    int rc = ingest__config_load(path, &c, err);
    if (rc == 0)
        ingest__config_free(c);
    return rc;
}

int ingest__file_sd_load(const char *path, tsdb_arena *a, ingest_tgroup **out, size_t *n_out,
                         tsdb_err *err)
{
    char *buf;
    size_t len;
    int rc = read_file(path, CONFIG_MAX_BYTES, &buf, &len, err);
    if (rc < 0)
        return rc;
    yaml_document_t doc;
    rc = load_doc(path, buf, len, &doc, err);
    free(buf);
    if (rc < 0)
        return rc;
    cctx c = {&doc, path, a, err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    ingest_tgroup *g = NULL;
    size_t n = 0;
    if (root && !is_null(root))
        rc = get_tgroups(&c, root, "file_sd file", &g, &n);
    yaml_document_delete(&doc);
    if (rc < 0)
        return rc;
    tsdb_str src = tsdb_arena_str(a, tsdb_str_c(path));
    for (size_t i = 0; i < n; i++)
        g[i].source = src;
    *out = g;
    *n_out = n;
    return 0;
}
