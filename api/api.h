/* api/api.h -- the HTTP server: the Prometheus HTTP API over a tsdb. */
#ifndef API_API_H
#define API_API_H

#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "query/query.h"
#include "ingest/ingest.h"

typedef struct api_server api_server;

typedef struct api_opts {
    const char *addr; /* listen address; default "0.0.0.0" */
    uint16_t port;    /* 0 picks an ephemeral port (see api_server_port) */
    unsigned threads; /* 0 = number of CPUs */
    ingest_limits ingest;
    query_opts query;
    unsigned max_concurrent_queries; /* 0 = 20 */
    int enable_admin;
    const char *data_dir;     /* for admin snapshots (<data_dir>/snapshots/<name>) */
    unsigned max_connections; /* 0 = 512 */
    /* Shown by /api/v1/status/flags and /config; borrowed for the server's life. */
    const char *const *flags; /* name, value, name, value, ... */
    size_t n_flags;           /* number of pairs */
    const char *config_yaml;  /* NULL = empty */
    /* Called by POST /-/reload (and by the program on SIGHUP); NULL = nothing to reload. */
    int (*reload)(void *ud, tsdb_err *err);
    void *reload_ud;
    /* Basic auth: users and their bcrypt/crypt(3) hashes; NULL/0 = off. */
    const char *const *auth_users; /* user, hash, user, hash, ... */
    size_t n_auth_users;
    /* TLS (PEM contents, not paths); NULL = plain HTTP. */
    const char *tls_cert_pem, *tls_key_pem;
    /* Scraper for /api/v1/targets and /api/v1/metadata; NULL = none (borrowed). */
    ingest_scraper *scraper;
} api_opts;

/* Starts listening. db may be NULL: until api_server_attach, /-/healthy answers 200, /-/ready
 * and the query API 503 (as Prometheus does during WAL replay), so orchestrators can tell a
 * starting server from a dead one. */
int api_server_start(tsdb *db, const api_opts *o, api_server **out, tsdb_err *err);
/* Hands the opened storage (and the scraper, if any) to a server started with db == NULL; it
 * becomes ready. Call once. */
void api_server_attach(api_server *s, tsdb *db, ingest_scraper *scraper);
uint16_t api_server_port(const api_server *s);
/* Runs the reload hook as POST /-/reload does (for SIGHUP); 0 or its error. */
int api_server_reload(api_server *s, tsdb_err *err);
void api_server_stop(api_server *s); /* drains, then returns; NULL allowed */

#endif
