/* tests/unit/api/test_stream.c -- produced (streamed) answers are the same bytes as whole ones.
 *
 * A real tsdb in a temporary directory. Each request runs twice through api__dispatch: once as
 * the unit tests and non-streaming callers do (the body comes back whole), once with can_stream
 * set, where the handler leaves a producer that is drained here in parts of various sizes, as
 * the server does. The bodies must be identical and valid JSON, and a producer that is dropped
 * half way (a client that hung up) must be released by api__resp_fini.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http.h"

typedef struct fixture {
    char dir[64];
    tsdb *db;
    api_ctx ctx;
} fixture;

#define N_SERIES  300
#define N_SAMPLES 120
#define T0        1700000000000LL

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-api-stream-XXXXXX");
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
    api__ctx_init(&f->ctx, f->db, &ao);

    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_batch_series *bs = tsdb_arena_calloc(&a, N_SERIES, sizeof *bs);
    for (int s = 0; s < N_SERIES; s++) {
        tsdb_label *l = tsdb_arena_alloc(&a, 3 * sizeof *l);
        l[0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("sm")};
        l[1] = (tsdb_label){TSDB_STR("instance"), tsdb_str_c(tsdb_arena_sprintf(&a, "h%03d", s))};
        l[2] = (tsdb_label){TSDB_STR("q"), tsdb_str_c(s % 7 ? "plain" : "a\"b\\c\n\xc3\xa9")};
        tsdb_sample *sm = tsdb_arena_alloc(&a, N_SAMPLES * sizeof *sm);
        for (int k = 0; k < N_SAMPLES; k++)
            sm[k] = (tsdb_sample){T0 + (int64_t)k * 15000 + (k % 3), s * 0.25 + k / 7.0};
        bs[s] = (tsdb_batch_series){{l, 3}, sm, N_SAMPLES};
    }
    tsdb_batch b = {bs, N_SERIES};
    tsdb_append_stats st;
    if (tsdb_append(f->db, &b, &st, &e) != TSDB_OK)
        fail_msg("tsdb_append: %s", e.msg);
    assert_int_equal(st.accepted, (size_t)N_SERIES * N_SAMPLES);
    tsdb_arena_fini(&a);
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
} call;

static void run(fixture *f, call *c, const char *path, const char *query, int can_stream)
{
    memset(c, 0, sizeof *c);
    tsdb_arena_init(&c->arena, 0);
    c->r.arena = &c->arena;
    c->r.method = "GET";
    c->r.path = tsdb_str_c(path);
    c->r.can_stream = can_stream;
    assert_int_equal(api__params_parse(&c->r.params, &c->arena, query, strlen(query), NULL),
                     TSDB_OK);
    api__resp_init(&c->w);
    api__dispatch(&f->ctx, &c->r, &c->w);
}

static void done(call *c)
{
    api__resp_fini(&c->w);
    tsdb_arena_fini(&c->arena);
}

/* Counts done callbacks through a wrapper around the handler's own. */
static int n_done;
static void (*inner_done)(void *);
static void counting_done(void *ctx)
{
    n_done++;
    if (inner_done)
        inner_done(ctx);
}

/* Whole body vs. a producer drained in parts of `want` bytes; returns the whole body's length. */
static size_t compare(fixture *f, const char *path, const char *query, size_t want,
                      int expect_producer)
{
    call whole, part;
    run(f, &whole, path, query, 0);
    assert_int_equal(whole.w.status, 200);
    assert_null(whole.w.fill);
    cJSON *j = cJSON_ParseWithLength((const char *)whole.w.body.p, whole.w.body.len);
    if (!j)
        fail_msg("invalid JSON from %s?%s", path, query);
    cJSON_Delete(j);

    run(f, &part, path, query, 1);
    assert_int_equal(part.w.status, 200);
    if (expect_producer)
        assert_non_null(part.w.fill);
    tsdb_buf out;
    tsdb_buf_init(&out);
    tsdb_buf_put(&out, part.w.body.p, part.w.body.len);
    if (part.w.fill) {
        size_t calls = 0, n;
        while ((n = part.w.fill(part.w.fill_ctx, &out, want)) > 0) {
            calls++;
            assert_true(calls <= whole.w.body.len); /* each call appends at least a byte */
        }
        assert_int_equal(part.w.fill(part.w.fill_ctx, &out, want), 0); /* stays finished */
        /* Parts stay near `want`: one series (well under 16 KiB here) may overshoot it. */
        size_t body_after_first = whole.w.body.len - part.w.body.len;
        assert_true(calls >= body_after_first / (want + 16384));
    }
    if (out.len != whole.w.body.len || memcmp(out.p, whole.w.body.p, out.len) != 0)
        fail_msg("%s?%s: produced %zu bytes differ from the whole %zu", path, query, out.len,
                 whole.w.body.len);
    size_t len = whole.w.body.len;
    tsdb_buf_fini(&out);
    done(&whole);
    done(&part);
    return len;
}

static void test_query_range_parts(void **state)
{
    fixture *f = *state;
    char q[256];
    snprintf(q, sizeof q, "query=sm&start=%lld&end=%lld&step=15", T0 / 1000,
             T0 / 1000 + (N_SAMPLES - 1) * 15);
    static const size_t wants[] = {1, 7, 100, 4096, API_STREAM_CHUNK, 1u << 30};
    size_t len = 0;
    for (size_t i = 0; i < sizeof wants / sizeof *wants; i++)
        len = compare(f, "/api/v1/query_range", q, wants[i], 1);
    assert_true(len > (size_t)N_SERIES * N_SAMPLES * 10);
    /* An aggregation at another step. */
    snprintf(q, sizeof q, "query=sum+by(q)(sm)&start=%lld&end=%lld&step=60", T0 / 1000,
             T0 / 1000 + (N_SAMPLES - 1) * 15);
    compare(f, "/api/v1/query_range", q, 13, 1);
    /* stats=all (timings differ run to run): the produced answer carries them and parses. */
    snprintf(q, sizeof q, "query=sm&start=%lld&end=%lld&step=15&stats=all", T0 / 1000,
             T0 / 1000 + (N_SAMPLES - 1) * 15);
    call c;
    run(f, &c, "/api/v1/query_range", q, 1);
    assert_non_null(c.w.fill);
    while (c.w.fill(c.w.fill_ctx, &c.w.body, 333) > 0)
        ;
    cJSON *j = cJSON_ParseWithLength((const char *)c.w.body.p, c.w.body.len);
    assert_non_null(j);
    const cJSON *d = cJSON_GetObjectItem(j, "data");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "result")), N_SERIES);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "stats"), "timings"));
    cJSON_Delete(j);
    done(&c);
}

static void test_instant_parts(void **state)
{
    fixture *f = *state;
    char q[128];
    snprintf(q, sizeof q, "query=sm&time=%lld", T0 / 1000 + 600);
    compare(f, "/api/v1/query", q, 5, 1);
    snprintf(q, sizeof q, "query=sm%%5B1m%%5D&time=%lld", T0 / 1000 + 600);
    compare(f, "/api/v1/query", q, 64, 1);
    compare(f, "/api/v1/query", "query=1%2B1&time=4", 3, 1);        /* scalar */
    compare(f, "/api/v1/query", "query=%22s%22&time=4", 2, 1);      /* string */
    compare(f, "/api/v1/query", "query=nothing_here&time=4", 1, 1); /* empty vector */
}

static void test_meta_parts(void **state)
{
    fixture *f = *state;
    compare(f, "/api/v1/series", "match%5B%5D=sm", 50, 1);
    compare(f, "/api/v1/series", "match%5B%5D=sm&limit=10", 3, 1); /* with the warning */
    compare(f, "/api/v1/series", "match%5B%5D=none", 1, 1);
    compare(f, "/api/v1/label/instance/values", "", 9, 1);
    compare(f, "/api/v1/labels", "", 2, 1);
}

/* A producer dropped after one part (the client went away) is released exactly once. */
static void test_dropped_producer(void **state)
{
    fixture *f = *state;
    char q[256];
    snprintf(q, sizeof q, "query=sm&start=%lld&end=%lld&step=15", T0 / 1000,
             T0 / 1000 + (N_SAMPLES - 1) * 15);
    call c;
    run(f, &c, "/api/v1/query_range", q, 1);
    assert_non_null(c.w.fill);
    inner_done = c.w.fill_done;
    c.w.fill_done = counting_done;
    n_done = 0;
    assert_true(c.w.fill(c.w.fill_ctx, &c.w.body, 1000) >= 1000);
    done(&c);
    assert_int_equal(n_done, 1);
    assert_null(c.w.fill);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_query_range_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instant_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_producer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
