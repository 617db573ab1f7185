/* api/http.h -- what handlers see of HTTP: api_req in, api_resp out, and the server context.
 *
 * api/server.c turns a libmicrohttpd connection into an api_req (method, path, headers, decoded
 * parameters, body, all in the request arena) and sends back an api_resp (status, content type,
 * extra headers, a heap body it takes over). Handlers never see microhttpd, so unit tests build
 * an api_req by hand and call api__dispatch directly.
 */
#ifndef API_HTTP_H
#define API_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "query/query.h"
#include "api/api.h"
#include "api/jsonw.h"
#include "api/params.h"

#define API_MAX_BODY     (32u << 20) /* any request body: remote-write/read bodies, forms */
#define API_MAX_POINTS   11000       /* per series in a range query */
#define API_RESP_HEADERS 12

typedef struct api_req {
    tsdb_arena *arena;     /* request scoped; everything below lives in it */
    const char *method;    /* "GET", "POST", ... */
    tsdb_str path;         /* without the query string and the /prometheus prefix */
    tsdb_str path_arg;     /* pattern capture, e.g. the label name of /label/<n>/values */
    const api_kv *headers; /* request headers as received */
    size_t n_headers;
    api_params params;         /* form body pairs first, then the query string's */
    const unsigned char *body; /* raw body (NULL if none) */
    size_t body_len;
    const volatile int *cancel; /* non-zero once the client went away; may be NULL */
    int can_stream;             /* the server takes a producer (api__resp_stream); 0 in tests */
} api_req;

/* A response body producer: appends the next part of the body to out (about want bytes, more
 * when one indivisible piece is larger) and returns how many bytes it appended; 0 means the
 * body is complete. Everything it reads must live until its done callback runs (the request
 * arena does: the server keeps it until the stream ends or the client hangs up). */
typedef size_t (*api_fill_fn)(void *ctx, tsdb_buf *out, size_t want);
#define API_STREAM_CHUNK (64u << 10)

typedef struct api_resp {
    int status;                       /* 0 until a handler answers */
    const char *content_type;         /* static or arena */
    tsdb_buf body;                    /* heap; the server takes it over */
    api_kv headers[API_RESP_HEADERS]; /* extra headers (static or arena strings) */
    size_t n_headers;
    int no_compress; /* body is already encoded (snappy, protobuf stream) */
    /* Streamed body (set by api__resp_stream when the request can_stream): body, if any, comes
     * first, then whatever fill produces. done (may be NULL) runs exactly once, at the end of
     * the stream, on hang-up, or in api__resp_fini when the producer was never used. */
    api_fill_fn fill;
    void *fill_ctx;
    void (*fill_done)(void *ctx);
} api_resp;

/* Counters exported at /metrics. Status codes are bucketed into the table below. */
#define API_N_CODES 13
extern const int api__codes[API_N_CODES]; /* 200, 204, 400, ..., 0 = other */
#define API_N_ROUTES_MAX 48
#define API_N_QBUCKETS   10
extern const double api__qbuckets[API_N_QBUCKETS];

typedef struct api_metrics {
    atomic_uint_fast64_t http[API_N_ROUTES_MAX][API_N_CODES];
    atomic_uint_fast64_t rw_requests, rw_samples_received, rw_samples_appended;
    atomic_uint_fast64_t rw_rejected_ooo, rw_rejected_dup, rw_rejected_too_old, rw_rejected_invalid,
        rw_decode_errors;
    atomic_uint_fast64_t q_count[2], q_bucket[2][API_N_QBUCKETS]; /* 0 instant, 1 range */
    atomic_uint_fast64_t q_sum_us[2];
} api_metrics;

typedef struct api_ctx {
    tsdb *db;            /* borrowed; written once before db_ready is set, read only after */
    atomic_int db_ready; /* 1 once db is usable; release/acquire ordering for db */
    api_opts opts;       /* copy; immutable */
    int64_t start_ms;    /* process start, for runtimeinfo */
    api_metrics m;
    pthread_mutex_t q_mu; /* guards q_active */
    pthread_cond_t q_cv;
    unsigned q_active;
    atomic_int reload_ok; /* last reload's outcome, for runtimeinfo */
    atomic_int_fast64_t reload_ms;
} api_ctx;

/* ---- Context (route.c) -------------------------------------------------------------------------
 */

/* db may be NULL: the server then answers only health, readiness and status endpoints (503 for
 * the rest, as Prometheus does during startup) until api__ctx_attach. */
void api__ctx_init(api_ctx *c, tsdb *db, const api_opts *o);
void api__ctx_attach(api_ctx *c, tsdb *db);
void api__ctx_fini(api_ctx *c);

/* Routes the request, runs the handler, counts it. Always leaves a complete response in w
 * (404/405 in the JSON envelope when nothing matched). */
void api__dispatch(api_ctx *c, api_req *r, api_resp *w);

/* Route pattern of table entry i ("other" past the end), and the table size, for /metrics. */
const char *api__route_name(size_t i);
size_t api__route_count(void);

/* Calls opts.reload (if any) and records the outcome for runtimeinfo. */
int api__reload(api_ctx *c, tsdb_err *err);

/* Takes a query slot (waits while max_concurrent_queries run); 0 or TSDB_ECANCELED. */
int api__query_slot_take(api_ctx *c, const api_req *r);
void api__query_slot_give(api_ctx *c);

/* ---- Responses (route.c) --------------------------------------------------------------------- */

void api__resp_init(api_resp *w);
void api__resp_fini(api_resp *w);
void api__resp_header(api_resp *w, const char *name, const char *value);
/* Request header value (case-insensitive name), or NULL. */
const tsdb_str *api__req_header(const api_req *r, const char *name);
/* Starts a success envelope: {"status":"success","data": -- the caller writes data, then calls
 * api__resp_json_end, which adds warnings (if any) and closes the object. */
void api__resp_json_begin(api_resp *w, api_json *j);
void api__resp_json_end(api_resp *w, api_json *j, const char *const *warnings, size_t n_warnings);
/* {"status":"error","errorType":type,"error":msg} with the given status. */
void api__resp_error(api_resp *w, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an engine/storage error code to errorType + status and answers. */
void api__resp_error_code(api_resp *w, int code, const char *msg);
void api__resp_text(api_resp *w, int status, const char *content_type, const char *text);
/* Answers with a produced body (status and content type set by the caller): hands the producer
 * to the server when r->can_stream, otherwise runs it to the end into w->body at once (same
 * bytes) and calls done. */
void api__resp_stream(const api_req *r, api_resp *w, api_fill_fn fill, void *ctx,
                      void (*done)(void *ctx));

/* ---- Handlers -------------------------------------------------------------------------------- */

typedef void (*api_handler_fn)(api_ctx *c, api_req *r, api_resp *w);

void api__h_query(api_ctx *c, api_req *r, api_resp *w);
void api__h_query_range(api_ctx *c, api_req *r, api_resp *w);
void api__h_format_query(api_ctx *c, api_req *r, api_resp *w);
void api__h_series(api_ctx *c, api_req *r, api_resp *w);
void api__h_labels(api_ctx *c, api_req *r, api_resp *w);
void api__h_label_values(api_ctx *c, api_req *r, api_resp *w);
void api__h_metadata(api_ctx *c, api_req *r, api_resp *w);
void api__h_write(api_ctx *c, api_req *r, api_resp *w);
void api__h_read(api_ctx *c, api_req *r, api_resp *w);
void api__h_federate(api_ctx *c, api_req *r, api_resp *w);
void api__h_healthy(api_ctx *c, api_req *r, api_resp *w);
void api__h_ready(api_ctx *c, api_req *r, api_resp *w);
void api__h_reload(api_ctx *c, api_req *r, api_resp *w);
void api__h_metrics(api_ctx *c, api_req *r, api_resp *w);
void api__h_buildinfo(api_ctx *c, api_req *r, api_resp *w);
void api__h_runtimeinfo(api_ctx *c, api_req *r, api_resp *w);
void api__h_flags(api_ctx *c, api_req *r, api_resp *w);
void api__h_config(api_ctx *c, api_req *r, api_resp *w);
void api__h_tsdb_status(api_ctx *c, api_req *r, api_resp *w);
void api__h_walreplay(api_ctx *c, api_req *r, api_resp *w);
void api__h_exemplars(api_ctx *c, api_req *r, api_resp *w);
void api__h_rules(api_ctx *c, api_req *r, api_resp *w);
void api__h_alerts(api_ctx *c, api_req *r, api_resp *w);
void api__h_targets(api_ctx *c, api_req *r, api_resp *w);
void api__h_alertmanagers(api_ctx *c, api_req *r, api_resp *w);
void api__h_admin_delete(api_ctx *c, api_req *r, api_resp *w);
void api__h_admin_clean(api_ctx *c, api_req *r, api_resp *w);
void api__h_admin_snapshot(api_ctx *c, api_req *r, api_resp *w);

/* One parsed match[] selector. */
typedef struct api_matchset {
    const tsdb_matcher **ms;
    size_t n;
} api_matchset;

/* Shared by handlers (h_meta.c): parses every match[] into matcher lists (each must have a
 * matcher that does not match ""). Answers 400 and returns <0 on a bad selector, or when
 * required and none was given. */
int api__parse_matches(api_req *r, api_resp *w, api_matchset **out, size_t *n_out, int required);
/* Remote-written metric metadata for /api/v1/metadata (h_meta.c): stores copies. */
void api__meta_put(const ingest_metadata *m, size_t n);
void api__meta_clear(void);

/* Optional start/end (defaults: all time); answers 400 and returns <0 when malformed. */
int api__parse_range_params(api_req *r, api_resp *w, int64_t *start, int64_t *end);

#endif
