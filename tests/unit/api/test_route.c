/* tests/unit/api/test_route.c -- handlers end to end through api__dispatch, without sockets.
 *
 * A real tsdb in a temporary directory, requests built by hand as the server would, answers
 * checked with cJSON: envelope shape, status codes and error types, Grafana's calls, the
 * remote-write receiver (1.0 and 2.0, malformed bodies, limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http.h"
#include "ingest/ingest.h"
#include "ingest/prompb.pb-c.h"
#include "tsdb/chunk.h"

#include <snappy-c.h>

typedef struct fixture {
    char dir[64];
    tsdb *db;
    api_ctx ctx;
    api_ctx *cur; /* the context requests go to (normally &ctx) */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-api-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = f->dir;
    o.no_maintenance = 1;
    o.retention_ms = -1;
    tsdb_err e = {0};
    if (tsdb_open(&o, &f->db, &e) != TSDB_OK)
        fail_msg("tsdb_open: %s", e.msg);
    api_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.enable_admin = 0;
    api__ctx_init(&f->ctx, f->db, &ao);
    f->cur = &f->ctx;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    api__ctx_fini(&f->ctx);
    tsdb_close(f->db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", f->dir);
    free(f);
    return 0;
}

typedef struct call {
    tsdb_arena arena;
    api_req r;
    api_resp w;
    api_kv hdr[4];
    cJSON *json;
} call;

/* Runs method path?query (query string decoded as the server would) with an optional body. */
static void run(fixture *f, call *c, const char *method, const char *path, const char *query,
                const void *body, size_t body_len, const char *ctype)
{
    memset(c, 0, sizeof *c);
    tsdb_arena_init(&c->arena, 0);
    c->r.arena = &c->arena;
    c->r.method = method;
    c->r.path = tsdb_str_c(path);
    if (query)
        assert_int_equal(api__params_parse(&c->r.params, &c->arena, query, strlen(query), NULL),
                         TSDB_OK);
    size_t nh = 0;
    if (ctype) {
        c->hdr[nh].name = TSDB_STR("Content-Type");
        c->hdr[nh++].value = tsdb_str_c(ctype);
    }
    c->r.headers = c->hdr;
    c->r.n_headers = nh;
    c->r.body = body;
    c->r.body_len = body_len;
    api__resp_init(&c->w);
    api__dispatch(f->cur, &c->r, &c->w);
    if (c->w.content_type && !strcmp(c->w.content_type, "application/json")) {
        c->json = cJSON_ParseWithLength((const char *)c->w.body.p, c->w.body.len);
        if (!c->json)
            fail_msg("invalid JSON: %.*s", (int)c->w.body.len, (const char *)c->w.body.p);
    }
}

static void done(call *c)
{
    cJSON_Delete(c->json);
    api__resp_fini(&c->w);
    tsdb_arena_fini(&c->arena);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void expect_error(fixture *f, const char *method, const char *path, const char *query,
                         int status, const char *type, const char *msg_part)
{
    call c;
    run(f, &c, method, path, query, NULL, 0, NULL);
    if (c.w.status != status)
        fail_msg("%s %s?%s: status %d, want %d: %.*s", method, path, query ? query : "", c.w.status,
                 status, (int)c.w.body.len, (const char *)c.w.body.p);
    assert_non_null(c.json);
    assert_string_equal(jstr(c.json, "status"), "error");
    assert_string_equal(jstr(c.json, "errorType"), type);
    const char *msg = jstr(c.json, "error");
    assert_non_null(msg);
    if (msg_part && !strstr(msg, msg_part))
        fail_msg("error \"%s\" lacks \"%s\"", msg, msg_part);
    done(&c);
}

/* Appends series name{job="a", i="<k>"} with n samples at t = 1000*k..., value k + j. */
static void load(fixture *f, const char *name, int n_series, int n_samples, int64_t t0)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_batch_series *bs = tsdb_arena_calloc(&a, (size_t)n_series, sizeof *bs);
    for (int s = 0; s < n_series; s++) {
        tsdb_label *l = tsdb_arena_alloc(&a, 3 * sizeof *l);
        l[0] = (tsdb_label){TSDB_STR("__name__"), tsdb_str_c(name)};
        l[1] = (tsdb_label){TSDB_STR("i"), tsdb_str_c(tsdb_arena_sprintf(&a, "%d", s))};
        l[2] = (tsdb_label){TSDB_STR("job"), TSDB_STR("a")};
        tsdb_sample *sm = tsdb_arena_alloc(&a, (size_t)n_samples * sizeof *sm);
        for (int k = 0; k < n_samples; k++)
            sm[k] = (tsdb_sample){t0 + 15000 * k, s + k};
        bs[s] = (tsdb_batch_series){{l, 3}, sm, (size_t)n_samples};
    }
    tsdb_batch b = {bs, (size_t)n_series};
    tsdb_append_stats st = {0};
    tsdb_err e = {0};
    if (tsdb_append(f->db, &b, &st, &e) != TSDB_OK)
        fail_msg("append: %s", e.msg);
    assert_int_equal(st.accepted, (size_t)(n_series * n_samples));
    tsdb_arena_fini(&a);
}

/* ---- Tests ---------------------------------------------------------------------------------- */

/* Before the storage is attached (WAL replay), only health and status endpoints answer. */
static void test_not_ready(void **state)
{
    fixture *f = *state;
    api_ctx early;
    api_opts ao;
    memset(&ao, 0, sizeof ao);
    api__ctx_init(&early, NULL, &ao);
    f->cur = &early;
    call c;
    run(f, &c, "GET", "/-/healthy", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
    run(f, &c, "GET", "/-/ready", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 503);
    done(&c);
    run(f, &c, "GET", "/api/v1/query", "query=1", NULL, 0, NULL);
    assert_int_equal(c.w.status, 503);
    done(&c);
    run(f, &c, "GET", "/api/v1/status/buildinfo", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
    run(f, &c, "GET", "/metrics", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    tsdb_buf_putc(&c.w.body, '\0');
    assert_non_null(strstr((char *)c.w.body.p, "cairn_ready 0"));
    done(&c);
    api__ctx_attach(&early, f->db);
    run(f, &c, "GET", "/-/ready", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
    run(f, &c, "GET", "/api/v1/query", "query=1", NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
    f->cur = &f->ctx;
    api__ctx_fini(&early);
}

static void test_grafana_health_check(void **state)
{
    fixture *f = *state;
    call c;
    run(f, &c, "POST", "/api/v1/query", "query=1%2B1&time=4", NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    assert_int_equal(c.w.body.len, strlen("{\"status\":\"success\",\"data\":{\"resultType\":"
                                          "\"scalar\",\"result\":[4,\"2\"]}}"));
    assert_memory_equal(c.w.body.p,
                        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[4,"
                        "\"2\"]}}",
                        c.w.body.len);
    done(&c);
    run(f, &c, "GET", "/api/v1/status/buildinfo", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    const cJSON *d = cJSON_GetObjectItem(c.json, "data");
    assert_string_equal(jstr(d, "version"), "2.42.0");
    assert_null(cJSON_GetObjectItem(d, "features"));
    done(&c);
}

static void test_instant_and_range(void **state)
{
    fixture *f = *state;
    load(f, "up", 3, 40, 1000000);
    call c;
    run(f, &c, "GET", "/api/v1/query", "query=up&time=1000.5", NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    const cJSON *d = cJSON_GetObjectItem(c.json, "data");
    assert_string_equal(jstr(d, "resultType"), "vector");
    const cJSON *res = cJSON_GetObjectItem(d, "result");
    assert_int_equal(cJSON_GetArraySize(res), 3);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "value");
    assert_true(fabs(cJSON_GetArrayItem(v, 0)->valuedouble - 1000.5) < 1e-9);
    assert_true(cJSON_IsString(cJSON_GetArrayItem(v, 1)));
    done(&c);

    /* Grafana: POSTed floats for start/end/step. */
    run(f, &c, "POST", "/api/v1/query_range", "query=sum(up)&start=1000&end=1585.0&step=15.0", NULL,
        0, NULL);
    assert_int_equal(c.w.status, 200);
    d = cJSON_GetObjectItem(c.json, "data");
    assert_string_equal(jstr(d, "resultType"), "matrix");
    res = cJSON_GetObjectItem(d, "result");
    assert_int_equal(cJSON_GetArraySize(res), 1);
    const cJSON *vals = cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "values");
    assert_int_equal(cJSON_GetArraySize(vals), 40);
    /* sum over i of (i + k) at step k: 3k + 3 */
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(vals, 2), 1)->valuestring, "9");
    done(&c);

    /* No match: result is [] and never null. */
    run(f, &c, "GET", "/api/v1/query_range", "query=nothing_here&start=0&end=100&step=10", NULL, 0,
        NULL);
    assert_int_equal(c.w.status, 200);
    res = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "result");
    assert_true(cJSON_IsArray(res));
    assert_int_equal(cJSON_GetArraySize(res), 0);
    done(&c);
}

static void test_cors(void **state)
{
    fixture *f = *state;
    call c;
    memset(&c, 0, sizeof c);
    tsdb_arena_init(&c.arena, 0);
    c.r.arena = &c.arena;
    c.r.method = "OPTIONS";
    c.r.path = TSDB_STR("/api/v1/query");
    c.hdr[0] = (api_kv){TSDB_STR("Origin"), TSDB_STR("https://promlens.example")};
    c.r.headers = c.hdr;
    c.r.n_headers = 1;
    api__resp_init(&c.w);
    api__dispatch(f->cur, &c.r, &c.w);
    assert_int_equal(c.w.status, 204);
    int found = 0;
    for (size_t i = 0; i < c.w.n_headers; i++)
        if (!strcmp(c.w.headers[i].name.p, "Access-Control-Allow-Origin"))
            found = !strcmp(c.w.headers[i].value.p, "https://promlens.example");
    assert_true(found);
    done(&c);
}

static void test_query_errors(void **state)
{
    fixture *f = *state;
    expect_error(f, "GET", "/api/v1/query", "query=sum(", 400, "bad_data",
                 "invalid parameter \"query\"");
    expect_error(f, "GET", "/api/v1/query", "query=up&time=yesterday", 400, "bad_data",
                 "invalid parameter \"time\"");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&start=10&end=5&step=1", 400, "bad_data",
                 "end timestamp must not be before start time");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&start=0&end=5&step=0", 400, "bad_data",
                 "zero or negative query resolution step");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&start=0&end=5&step=-1", 400, "bad_data",
                 "zero or negative");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&start=0&end=11001&step=1", 400,
                 "bad_data", "11,000 points");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&start=0&end=5", 400, "bad_data",
                 "invalid parameter \"step\"");
    expect_error(f, "GET", "/api/v1/query_range", "query=up&end=5&step=1", 400, "bad_data",
                 "invalid parameter \"start\"");
    expect_error(f, "GET", "/api/v1/query", "query=up&timeout=soon", 400, "bad_data",
                 "invalid parameter \"timeout\"");
    expect_error(f, "GET", "/api/v1/nope", NULL, 404, "not_found", NULL);
    expect_error(f, "DELETE", "/api/v1/query", "query=1", 405, "bad_data", NULL);
    expect_error(f, "POST", "/api/v1/admin/tsdb/snapshot", NULL, 503, "unavailable", "Admin");
    /* exactly 11,000 points is allowed */
    call c;
    run(f, &c, "GET", "/api/v1/query_range", "query=1&start=0&end=11000&step=1", NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
}

static void test_metadata_endpoints(void **state)
{
    fixture *f = *state;
    load(f, "http_requests_total", 2, 3, 2000000);
    load(f, "other_metric", 1, 3, 2000000);
    call c;
    run(f, &c, "GET", "/api/v1/labels", "match[]=http_requests_total&start=0&end=99999&limit=40000",
        NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    const cJSON *d = cJSON_GetObjectItem(c.json, "data");
    assert_int_equal(cJSON_GetArraySize(d), 3);
    assert_string_equal(cJSON_GetArrayItem(d, 0)->valuestring, "__name__");
    assert_string_equal(cJSON_GetArrayItem(d, 1)->valuestring, "i");
    done(&c);

    run(f, &c, "GET", "/api/v1/label/__name__/values", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    d = cJSON_GetObjectItem(c.json, "data");
    assert_int_equal(cJSON_GetArraySize(d), 2);
    assert_string_equal(cJSON_GetArrayItem(d, 0)->valuestring, "http_requests_total");
    done(&c);

    /* U__-escaped name: "U__i" is "i"; "U___6a_ob" is "job" spelled with an escape. */
    run(f, &c, "GET", "/api/v1/label/U___6a_ob/values", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    d = cJSON_GetObjectItem(c.json, "data");
    assert_int_equal(cJSON_GetArraySize(d), 1);
    assert_string_equal(cJSON_GetArrayItem(d, 0)->valuestring, "a");
    done(&c);
    expect_error(f, "GET", "/api/v1/label/U___zz_/values", NULL, 400, "bad_data",
                 "invalid label name");

    run(f, &c, "GET", "/api/v1/label/i/values", "match[]=http_requests_total&limit=1", NULL, 0,
        NULL);
    assert_int_equal(c.w.status, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "data")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "warnings")), 1);
    done(&c);

    run(f, &c, "POST", "/api/v1/series",
        "match[]=http_requests_total&match[]={__name__=~\"other.*\"}&start=0&end=99999", NULL, 0,
        NULL);
    assert_int_equal(c.w.status, 200);
    d = cJSON_GetObjectItem(c.json, "data");
    assert_int_equal(cJSON_GetArraySize(d), 3);
    assert_string_equal(jstr(cJSON_GetArrayItem(d, 2), "__name__"), "other_metric");
    done(&c);

    expect_error(f, "GET", "/api/v1/series", NULL, 400, "bad_data", "no match[]");
    expect_error(f, "GET", "/api/v1/series", "match[]={job=~\".*\"}", 400, "bad_data",
                 "non-empty matcher");
    expect_error(f, "GET", "/api/v1/labels", "match[]={", 400, "bad_data", "match[]");
    expect_error(f, "GET", "/api/v1/label/1bad/values", NULL, 400, "bad_data",
                 "invalid label name");

    run(f, &c, "GET", "/api/v1/rules", NULL, NULL, 0, NULL);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "groups")));
    done(&c);
    run(f, &c, "GET", "/api/v1/query_exemplars", "query=test&start=1&end=2", NULL, 0, NULL);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(c.json, "data")));
    done(&c);
    run(f, &c, "GET", "/api/v1/status/tsdb", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    done(&c);
    run(f, &c, "GET", "/metrics", NULL, NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    tsdb_buf_putc(&c.w.body, '\0');
    assert_non_null(strstr((char *)c.w.body.p, "cairn_http_requests_total{handler=\"/api/v1/"
                                               "series\",code=\"400\"} 2"));
    done(&c);
}

static void test_remote_write(void **state)
{
    fixture *f = *state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_label l[] = {{TSDB_STR("job"), TSDB_STR("rw")}, {TSDB_STR("__name__"), TSDB_STR("rw_m")}};
    tsdb_sample s[] = {{5000000, 1}, {5015000, 2}, {5030000, 3}};
    tsdb_batch_series bs = {{l, 2}, s, 3};
    tsdb_batch b = {&bs, 1};
    tsdb_str body;
    call c;

    /* 2.0 first (1.0 needs its schema; both encoders are exercised in the ingest tests). */
    assert_int_equal(ingest_rw_encode_v2(&b, &a, &body), TSDB_OK);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request");
    assert_int_equal(c.w.status, 204);
    int found = 0;
    for (size_t i = 0; i < c.w.n_headers; i++)
        if (!strcmp(c.w.headers[i].name.p, "X-Prometheus-Remote-Write-Samples-Written")) {
            assert_string_equal(c.w.headers[i].value.p, "3");
            found = 1;
        }
    assert_true(found);
    done(&c);

    run(f, &c, "GET", "/api/v1/query", "query=rw_m{job=\"rw\"}&time=5030", NULL, 0, NULL);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "result");
    assert_int_equal(cJSON_GetArraySize(res), 1);
    done(&c);

    /* 1.0 with the plain content type, a new series. */
    tsdb_label l1[] = {{TSDB_STR("__name__"), TSDB_STR("rw_v1")}};
    tsdb_sample s1[] = {{6000000, 42}};
    tsdb_batch_series bs1 = {{l1, 1}, s1, 1};
    tsdb_batch b1 = {&bs1, 1};
    assert_int_equal(ingest_rw_encode(&b1, &a, &body), TSDB_OK);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len, "application/x-protobuf");
    assert_int_equal(c.w.status, 204);
    assert_int_equal(c.w.n_headers, 0);
    done(&c);
    run(f, &c, "GET", "/api/v1/query", "query=rw_v1&time=6000", NULL, 0, NULL);
    res = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "result");
    assert_int_equal(cJSON_GetArraySize(res), 1);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "value"), 1)
            ->valuestring,
        "42");
    done(&c);

    /* One valid and one nameless series: 400, and the valid one is stored anyway. */
    tsdb_label l2[] = {{TSDB_STR("job"), TSDB_STR("x")}};
    tsdb_label l3[] = {{TSDB_STR("__name__"), TSDB_STR("rw_partial")}};
    tsdb_sample s3[] = {{6100000, 7}};
    tsdb_batch_series bs2[] = {{{l2, 1}, s3, 1}, {{l3, 1}, s3, 1}};
    tsdb_batch b2 = {bs2, 2};
    assert_int_equal(ingest_rw_encode(&b2, &a, &body), TSDB_OK);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len, "application/x-protobuf");
    assert_int_equal(c.w.status, 400);
    tsdb_buf_putc(&c.w.body, '\0');
    assert_non_null(strstr((char *)c.w.body.p, "1 series with 1 samples dropped"));
    done(&c);
    run(f, &c, "GET", "/api/v1/query", "query=rw_partial&time=6100", NULL, 0, NULL);
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "result")), 1);
    done(&c);

    /* Re-sending the same samples with other values: rejected as duplicates -> 400. */
    s[0].v = 10;
    s[1].v = 20;
    s[2].v = 30;
    assert_int_equal(ingest_rw_encode_v2(&b, &a, &body), TSDB_OK);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request");
    assert_int_equal(c.w.status, 400);
    done(&c);

    /* Malformed bodies. */
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01};
    run(f, &c, "POST", "/api/v1/write", NULL, junk, sizeof junk, "application/x-protobuf");
    assert_true(c.w.status == 413 || c.w.status == 400);
    done(&c);
    static const unsigned char truncated[] = {0x20, 0x00, 0x61};
    run(f, &c, "POST", "/api/v1/write", NULL, truncated, sizeof truncated,
        "application/x-protobuf");
    assert_int_equal(c.w.status, 400);
    done(&c);
    /* Declared length 2^32-1 (varint ff ff ff ff 0f): over the 32 MiB limit -> 413. */
    run(f, &c, "POST", "/api/v1/write", NULL, junk, 5, "application/x-protobuf");
    assert_int_equal(c.w.status, 413);
    done(&c);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len, "application/json");
    assert_int_equal(c.w.status, 415);
    done(&c);
    run(f, &c, "POST", "/api/v1/write", NULL, body.p, body.len,
        "application/x-protobuf;proto=example.Other");
    assert_int_equal(c.w.status, 415);
    done(&c);
    expect_error(f, "GET", "/api/v1/write", NULL, 405, "bad_data", NULL);
    tsdb_arena_fini(&a);
}

static void test_stats_and_federate(void **state)
{
    fixture *f = *state;
    load(f, "fed_metric", 2, 10, 8000000);
    call c;
    run(f, &c, "GET", "/api/v1/query", "query=fed_metric&time=8100&stats=all", NULL, 0, NULL);
    assert_int_equal(c.w.status, 200);
    const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "data"), "stats");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "timings"), "evalTotalTime"));
    const cJSON *smp =
        cJSON_GetObjectItem(cJSON_GetObjectItem(st, "samples"), "totalQueryableSamples");
    assert_true(cJSON_IsNumber(smp) && smp->valuedouble > 0);
    done(&c);

    /* Latest samples at 8000000 + 9 * 15000 = 8135000; "now" pinned one minute later. */
    tsdb_clock_pin(8195000);
    run(f, &c, "GET", "/federate", "match[]=fed_metric", NULL, 0, NULL);
    tsdb_clock_pin(0);
    assert_int_equal(c.w.status, 200);
    tsdb_buf_putc(&c.w.body, '\0');
    assert_string_equal((char *)c.w.body.p, "# TYPE fed_metric untyped\n"
                                            "fed_metric{i=\"0\",job=\"a\"} 9 8135000\n"
                                            "fed_metric{i=\"1\",job=\"a\"} 10 8135000\n");
    done(&c);
}

static tsdb_str read_request(tsdb_arena *a, int streamed, int64_t start, int64_t end,
                             const char *metric)
{
    Prometheus__LabelMatcher m = PROMETHEUS__LABEL_MATCHER__INIT, *mp = &m;
    m.type = PROMETHEUS__LABEL_MATCHER__TYPE__EQ;
    m.name = "__name__";
    m.value = (char *)metric;
    Prometheus__Query q = PROMETHEUS__QUERY__INIT, *qp = &q;
    q.start_timestamp_ms = start;
    q.end_timestamp_ms = end;
    q.n_matchers = 1;
    q.matchers = &mp;
    Prometheus__ReadRequest__ResponseType types[] = {
        PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS,
        PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__SAMPLES};
    Prometheus__ReadRequest rr = PROMETHEUS__READ_REQUEST__INIT;
    rr.n_queries = 1;
    rr.queries = &qp;
    rr.n_accepted_response_types = streamed ? 2 : 0;
    rr.accepted_response_types = types;
    size_t n = prometheus__read_request__get_packed_size(&rr);
    uint8_t *raw = tsdb_arena_alloc(a, n + 1);
    prometheus__read_request__pack(&rr, raw);
    size_t cap = snappy_max_compressed_length(n);
    char *c = tsdb_arena_alloc(a, cap);
    assert_int_equal(snappy_compress((char *)raw, n, c, &cap), SNAPPY_OK);
    return (tsdb_str){c, cap};
}

static void test_remote_read(void **state)
{
    fixture *f = *state;
    load(f, "rr_metric", 2, 300, 7000000);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    call c;

    /* SAMPLES */
    tsdb_str body = read_request(&a, 0, 7000000, 7000000 + 15000 * 299, "rr_metric");
    run(f, &c, "POST", "/api/v1/read", NULL, body.p, body.len, "application/x-protobuf");
    assert_int_equal(c.w.status, 200);
    assert_string_equal(c.w.content_type, "application/x-protobuf");
    size_t ulen;
    assert_int_equal(snappy_uncompressed_length((char *)c.w.body.p, c.w.body.len, &ulen),
                     SNAPPY_OK);
    char *u = malloc(ulen);
    assert_int_equal(snappy_uncompress((char *)c.w.body.p, c.w.body.len, u, &ulen), SNAPPY_OK);
    Prometheus__ReadResponse *rr = prometheus__read_response__unpack(NULL, ulen, (uint8_t *)u);
    assert_non_null(rr);
    assert_int_equal(rr->n_results, 1);
    assert_int_equal(rr->results[0]->n_timeseries, 2);
    assert_int_equal(rr->results[0]->timeseries[1]->n_samples, 300);
    assert_true(rr->results[0]->timeseries[1]->samples[5]->value == 1 + 5);
    prometheus__read_response__free_unpacked(rr, NULL);
    free(u);
    done(&c);

    /* STREAMED_XOR_CHUNKS, half the range: frames with XOR chunks of <= 120 samples. */
    body = read_request(&a, 1, 7000000, 7000000 + 15000 * 149, "rr_metric");
    run(f, &c, "POST", "/api/v1/read", NULL, body.p, body.len, "application/x-protobuf");
    assert_int_equal(c.w.status, 200);
    assert_non_null(strstr(c.w.content_type, "proto=prometheus.ChunkedReadResponse"));
    tsdb_rd rd;
    tsdb_rd_init(&rd, c.w.body.p, c.w.body.len);
    int frames = 0;
    size_t samples = 0;
    while (tsdb_rd_left(&rd) > 0) {
        uint64_t len = tsdb_rd_uvarint(&rd);
        uint32_t crc = tsdb_rd_u32be(&rd);
        const uint8_t *msg = tsdb_rd_bytes(&rd, (size_t)len);
        assert_int_equal(rd.err, 0);
        assert_int_equal(crc, tsdb_crc32c(0, msg, (size_t)len));
        Prometheus__ChunkedReadResponse *cr =
            prometheus__chunked_read_response__unpack(NULL, (size_t)len, msg);
        assert_non_null(cr);
        assert_int_equal(cr->query_index, 0);
        for (size_t s = 0; s < cr->n_chunked_series; s++) {
            for (size_t k = 0; k < cr->chunked_series[s]->n_chunks; k++) {
                const Prometheus__Chunk *ch = cr->chunked_series[s]->chunks[k];
                assert_int_equal(ch->type, PROMETHEUS__CHUNK__ENCODING__XOR);
                tsdb_sample out[200];
                size_t n;
                assert_int_equal(tsdb_chunk_decode_all(ch->data.data, ch->data.len, out, 200, &n),
                                 TSDB_OK);
                assert_true(n <= 120);
                assert_int_equal(out[0].t, ch->min_time_ms);
                assert_int_equal(out[n - 1].t, ch->max_time_ms);
                samples += n;
            }
        }
        prometheus__chunked_read_response__free_unpacked(cr, NULL);
        frames++;
    }
    assert_int_equal(frames, 2);
    assert_int_equal(samples, 300);
    done(&c);

    /* Garbage body */
    run(f, &c, "POST", "/api/v1/read", NULL, "\x05\x00", 2, "application/x-protobuf");
    assert_int_equal(c.w.status, 400);
    done(&c);
    tsdb_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grafana_health_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instant_and_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_federate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
