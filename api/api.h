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
    const char *addr;  /* listen address; default "0.0.0.0" */
    uint16_t port;     /* 0 picks an ephemeral port (see api_server_port) */
    unsigned threads;  /* 0 = number of CPUs */
    ingest_limits ingest;
    query_opts query;
    unsigned max_concurrent_queries; /* 0 = 20 */
    int enable_admin;
} api_opts;

int api_server_start(tsdb *db, const api_opts *o, api_server **out, tsdb_err *err);
uint16_t api_server_port(const api_server *s);
void api_server_stop(api_server *s); /* drains, then returns; NULL allowed */

#endif
