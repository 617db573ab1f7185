/* ingest/config.h -- the scrape configuration, parsed from Prometheus-style YAML
 * (folder-internal; ingest/config.c is the only user of libyaml).
 *
 * A config owns one arena holding every string and array below; it is immutable once loaded and
 * may be read by several threads. Durations are ms.
 */
#ifndef INGEST_CONFIG_H
#define INGEST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/relabel.h"

/* A group of targets sharing labels (static_configs entry or one file_sd group). */
typedef struct ingest_tgroup {
    tsdb_str *targets;
    size_t n_targets;
    tsdb_label *labels;
    size_t n_labels;
    tsdb_str source; /* file path for file_sd groups (__meta_filepath), empty for static */
} ingest_tgroup;

typedef struct ingest_scrape_cfg {
    tsdb_str job_name;
    int64_t interval_ms, timeout_ms;
    tsdb_str metrics_path; /* default /metrics */
    tsdb_str scheme;       /* http or https */
    tsdb_label *params;    /* URL query parameters (one value per name kept in order) */
    size_t n_params;
    int honor_labels;                                    /* default 0 */
    int honor_timestamps;                                /* default 1 */
    uint64_t sample_limit, label_limit, body_size_limit; /* 0 = unlimited */
    /* basic_auth */
    tsdb_str ba_user, ba_pass, ba_pass_file;
    int has_basic_auth;
    /* authorization */
    tsdb_str auth_type, auth_cred, auth_cred_file; /* type defaults to Bearer */
    int has_authorization;
    /* tls_config */
    tsdb_str tls_ca, tls_cert, tls_key, tls_server_name;
    int tls_insecure;
    ingest_tgroup *static_groups;
    size_t n_static;
    tsdb_str *sd_files; /* file_sd_configs globs, over all entries */
    size_t n_sd_files;
    int64_t sd_refresh_ms; /* smallest refresh_interval; default 5 m */
    ingest_relabel_rule *relabel;
    size_t n_relabel;
    ingest_relabel_rule *metric_relabel;
    size_t n_metric_relabel;
} ingest_scrape_cfg;

typedef struct ingest_config {
    tsdb_arena arena;                              /* owns everything below */
    int64_t scrape_interval_ms, scrape_timeout_ms; /* global defaults: 1m, 10s */
    tsdb_label *external_labels;
    size_t n_external_labels;
    ingest_scrape_cfg *jobs;
    size_t n_jobs;
    tsdb_str path; /* the file it came from */
} ingest_config;

/* Parses the YAML file at path. [out] *out: owned, free with ingest__config_free. Errors:
 * TSDB_EIO (unreadable), TSDB_EPARSE (YAML syntax), TSDB_EINVAL (unknown key, bad value), with
 * "path:line: reason" in err. */
int ingest__config_load(const char *path, ingest_config **out, tsdb_err *err);
/* The same over a buffer; name is used in messages. */
int ingest__config_parse(const char *name, const char *text, size_t len, ingest_config **out,
                         tsdb_err *err);
void ingest__config_free(ingest_config *c); /* NULL allowed */

/* Formats ms the way Prometheus prints durations ("1m", "15s", "1m30s", "0s") into out. */
void ingest__duration_format(int64_t ms, char *out, size_t cap);

/* Reads a file_sd file (YAML or JSON: a list of {targets: [...], labels: {...}}) into groups
 * allocated in a. Returns 0 or an error with "path:line: reason". */
int ingest__file_sd_load(const char *path, tsdb_arena *a, ingest_tgroup **out, size_t *n_out,
                         tsdb_err *err);

#endif
