/* tests/unit/ingest/test_remote_write.c -- remote-write 1.0/2.0 decoding and encoding.
 *
 * Round trips through the encoders, hand-built protobuf messages for what the encoders never
 * produce (metadata, bad label sets, out-of-range symbol references), and hostile bodies:
 * truncated or corrupt Snappy, a huge declared length, garbage protobuf, amplification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ingest.h"
#include "ingest/prompb.pb-c.h"
#include "ingest/prompb_v2.pb-c.h"

static tsdb_str compress(tsdb_arena *a, const void *raw, size_t n)
{
    size_t cap = snappy_max_compressed_length(n);
    char *c = tsdb_arena_alloc(a, cap);
    assert_int_equal(snappy_compress(raw, n, c, &cap), SNAPPY_OK);
    return (tsdb_str){c, cap};
}

/* Packs a v1 request with one series built from name/value pairs. */
static tsdb_str v1_one(tsdb_arena *a, const char *const *kv, size_t n_pairs)
{
    Prometheus__Label lab[8], *lp[8];
    for (size_t i = 0; i < n_pairs; i++) {
        prometheus__label__init(&lab[i]);
        lab[i].name = (char *)kv[2 * i];
        lab[i].value = (char *)kv[2 * i + 1];
        lp[i] = &lab[i];
    }
    Prometheus__Sample sm = PROMETHEUS__SAMPLE__INIT, *smp = &sm;
    sm.timestamp = 1000;
    sm.value = 1.5;
    Prometheus__TimeSeries ts = PROMETHEUS__TIME_SERIES__INIT, *tsp = &ts;
    ts.n_labels = n_pairs;
    ts.labels = lp;
    ts.n_samples = 1;
    ts.samples = &smp;
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_timeseries = 1;
    req.timeseries = &tsp;
    size_t n = prometheus__write_request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(a, n + 1);
    prometheus__write_request__pack(&req, raw);
    return compress(a, raw, n);
}

static void test_roundtrip_v1_v2(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    for (int ver = 0; ver < 2; ver++) {
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        size_t ns = 1 + (size_t)(rand() % 20);
        tsdb_batch_series *bs = tsdb_arena_calloc(&a, ns, sizeof *bs);
        size_t total = 0;
        for (size_t i = 0; i < ns; i++) {
            tsdb_label *l = tsdb_arena_alloc(&a, 3 * sizeof *l);
            l[0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("metric_x")};
            l[1] = (tsdb_label){TSDB_STR("id"), tsdb_str_c(tsdb_arena_sprintf(&a, "%zu", i))};
            l[2] = (tsdb_label){TSDB_STR("job"), TSDB_STR("j")};
            size_t nsm = (size_t)(rand() % 50);
            tsdb_sample *sm = tsdb_arena_alloc(&a, (nsm + 1) * sizeof *sm);
            for (size_t k = 0; k < nsm; k++)
                sm[k] = (tsdb_sample){(int64_t)(k * 1000 + (size_t)rand() % 1000),
                                      (double)rand() / 7.0};
            bs[i] = (tsdb_batch_series){{l, 3}, sm, nsm};
            total += nsm;
        }
        tsdb_batch b = {bs, ns};
        tsdb_str body;
        assert_int_equal(ver ? ingest_rw_encode_v2(&b, &a, &body) : ingest_rw_encode(&b, &a, &body),
                         TSDB_OK);
        ingest_write w;
        tsdb_err e = {0};
        int rc =
            ingest_rw_decode(&a, ver ? INGEST_RW_V2 : INGEST_RW_V1, body.p, body.len, NULL, &w, &e);
        if (rc != TSDB_OK)
            fail_msg("seed %u ver %d: %s", seed, ver, e.msg);
        assert_int_equal(w.batch.n_series, ns);
        assert_int_equal(w.n_samples, total);
        for (size_t i = 0; i < ns; i++) {
            assert_true(tsdb_labels_equal(w.batch.series[i].labels, bs[i].labels));
            assert_int_equal(w.batch.series[i].n_samples, bs[i].n_samples);
            for (size_t k = 0; k < bs[i].n_samples; k++) {
                assert_int_equal(w.batch.series[i].samples[k].t, bs[i].samples[k].t);
                assert_true(w.batch.series[i].samples[k].v == bs[i].samples[k].v);
            }
        }
        /* Decoding 1.0 bytes as 2.0 (or the reverse) must fail cleanly or yield nothing. */
        rc =
            ingest_rw_decode(&a, ver ? INGEST_RW_V1 : INGEST_RW_V2, body.p, body.len, NULL, &w, &e);
        assert_true(rc != TSDB_OK || w.n_samples == 0);
        tsdb_arena_fini(&a);
    }
}

/* Within one series, a sample older than an earlier one is dropped silently (Prometheus). */
static void test_older_samples_in_request_dropped(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_label l[] = {{TSDB_STR("__name__"), TSDB_STR("m")}};
    tsdb_sample s[] = {{1000, 1}, {3000, 3}, {2000, 2}, {3000, 3}, {4000, 4}};
    tsdb_batch_series bs = {{l, 1}, s, 5};
    tsdb_batch b = {&bs, 1};
    tsdb_str body;
    assert_int_equal(ingest_rw_encode(&b, &a, &body), TSDB_OK);
    ingest_write w;
    tsdb_err e = {0};
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, body.p, body.len, NULL, &w, &e), TSDB_OK);
    assert_int_equal(w.batch.series[0].n_samples, 4);
    assert_int_equal(w.n_samples, 4);
    static const int64_t want[] = {1000, 3000, 3000, 4000};
    for (int i = 0; i < 4; i++)
        assert_int_equal(w.batch.series[0].samples[i].t, want[i]);
    tsdb_arena_fini(&a);
}

static void test_labels_sorted_and_empty_dropped(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char *kv[] = {"zone", "z", "__name__", "m", "empty", "", "app", "x"};
    tsdb_str body = v1_one(&a, kv, 4);
    ingest_write w;
    tsdb_err e = {0};
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, body.p, body.len, NULL, &w, &e), TSDB_OK);
    tsdb_labels l = w.batch.series[0].labels;
    assert_int_equal(l.n, 3);
    assert_memory_equal(l.v[0].name.p, "__name__", 8);
    assert_memory_equal(l.v[1].name.p, "app", 3);
    assert_memory_equal(l.v[2].name.p, "zone", 4);
    tsdb_arena_fini(&a);
}

/* One valid series plus one built from kv: the invalid one is dropped and counted, the valid
 * one kept. */
static void expect_invalid(const char *const *kv, size_t n, const char *why)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    Prometheus__Label lab[8], *lp[8], good = PROMETHEUS__LABEL__INIT, *gp = &good;
    for (size_t i = 0; i < n; i++) {
        prometheus__label__init(&lab[i]);
        lab[i].name = (char *)kv[2 * i];
        lab[i].value = (char *)kv[2 * i + 1];
        lp[i] = &lab[i];
    }
    good.name = "__name__";
    good.value = "fine";
    Prometheus__Sample sm = PROMETHEUS__SAMPLE__INIT, *smp = &sm;
    Prometheus__TimeSeries bad = PROMETHEUS__TIME_SERIES__INIT, ok = PROMETHEUS__TIME_SERIES__INIT;
    bad.n_labels = n;
    bad.labels = lp;
    bad.n_samples = 1;
    bad.samples = &smp;
    ok.n_labels = 1;
    ok.labels = &gp;
    ok.n_samples = 1;
    ok.samples = &smp;
    Prometheus__TimeSeries *tsv[] = {&bad, &ok};
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_timeseries = 2;
    req.timeseries = tsv;
    size_t len = prometheus__write_request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(&a, len + 1);
    prometheus__write_request__pack(&req, raw);
    tsdb_str body = compress(&a, raw, len);
    ingest_write w;
    tsdb_err e = {0};
    int rc = ingest_rw_decode(&a, INGEST_RW_V1, body.p, body.len, NULL, &w, &e);
    if (rc != TSDB_OK)
        fail_msg("%s: got %d (%s), want OK with one series dropped", why, rc, e.msg);
    if (w.n_invalid_series != 1 || w.n_invalid_samples != 1 || w.batch.n_series != 1)
        fail_msg("%s: %zu invalid, %zu kept", why, w.n_invalid_series, w.batch.n_series);
    assert_non_null(w.invalid_reason);
    assert_true(strlen(w.invalid_reason) > 0);
    assert_memory_equal(w.batch.series[0].labels.v[0].value.p, "fine", 4);
    tsdb_arena_fini(&a);
}

static void test_label_validation(void **state)
{
    (void)state;
    const char *no_name[] = {"job", "x"};
    expect_invalid(no_name, 1, "missing __name__");
    const char *bad_metric[] = {"__name__", "1abc"};
    expect_invalid(bad_metric, 1, "invalid metric name");
    const char *bad_label[] = {"__name__", "m", "a-b", "x"};
    expect_invalid(bad_label, 2, "invalid label name");
    const char *dup[] = {"__name__", "m", "a", "x", "a", "y"};
    expect_invalid(dup, 3, "duplicate label");
    const char *only_empty_name[] = {"__name__", ""};
    expect_invalid(only_empty_name, 1, "empty metric name");
}

static void test_limits_and_garbage(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    ingest_write w;
    tsdb_err e;
    /* Declared uncompressed length 2^32-1. */
    static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, huge, sizeof huge, NULL, &w, &e),
                     TSDB_ELIMIT);
    /* Body over the limit. */
    ingest_limits lim = {.max_body = 4};
    const char *kv[] = {"__name__", "m"};
    tsdb_str body = v1_one(&a, kv, 1);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, body.p, body.len, &lim, &w, &e),
                     TSDB_ELIMIT);
    /* Truncated snappy: every prefix must fail cleanly (or decode to a smaller valid message). */
    for (size_t n = 0; n < body.len; n++) {
        int rc = ingest_rw_decode(&a, INGEST_RW_V1, body.p, n, NULL, &w, &e);
        assert_true(rc == TSDB_EINVAL || rc == TSDB_OK);
    }
    /* Valid snappy of invalid protobuf. */
    static const unsigned char bad_pb[] = {0x0a, 0x7f, 0x01};
    tsdb_str c = compress(&a, bad_pb, sizeof bad_pb);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e), TSDB_EINVAL);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V2, c.p, c.len, NULL, &w, &e), TSDB_EINVAL);
    /* Empty body: an empty request. */
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, "", 0, NULL, &w, &e), TSDB_OK);
    assert_int_equal(w.batch.n_series, 0);
    /* Amplification: 1 MiB of empty samples (2 bytes each on the wire, ~50 bytes decoded)
     * inside one series, with a budget that cannot hold them. */
    size_t n_empty = 1u << 19;
    uint8_t *raw = tsdb_arena_alloc(&a, 2 * n_empty + 16);
    size_t o = 0;
    raw[o++] = 0x0a; /* timeseries, length-delimited */
    size_t inner = 2 * n_empty;
    while (inner >= 0x80) {
        raw[o++] = (uint8_t)(inner | 0x80);
        inner >>= 7;
    }
    raw[o++] = (uint8_t)inner;
    for (size_t i = 0; i < n_empty; i++) {
        raw[o++] = 0x12;
        raw[o++] = 0x00;
    }
    c = compress(&a, raw, o);
    int rc = ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e);
    /* It fits the 16x budget or is refused as too large; it must never crash or be accepted
     * as valid series without a name. */
    assert_true(rc == TSDB_ELIMIT || rc == TSDB_EINVAL);
    /* max_series */
    ingest_limits lim2 = {.max_series = 1};
    tsdb_label l[] = {{TSDB_STR("__name__"), TSDB_STR("m")}};
    tsdb_sample s = {1, 1};
    tsdb_batch_series bs[2] = {{{l, 1}, &s, 1}, {{l, 1}, &s, 1}};
    tsdb_batch b = {bs, 2};
    assert_int_equal(ingest_rw_encode(&b, &a, &body), TSDB_OK);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, body.p, body.len, &lim2, &w, &e),
                     TSDB_ELIMIT);
    tsdb_arena_fini(&a);
}

static void test_v2_refs_and_metadata(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    char *syms[] = {"", "__name__", "http_total", "job", "api", "Requests.", "seconds"};
    uint32_t refs[] = {1, 2, 3, 4};
    Io__Prometheus__Write__V2__Sample sm = IO__PROMETHEUS__WRITE__V2__SAMPLE__INIT, *smp = &sm;
    sm.timestamp = 7;
    sm.value = 3;
    Io__Prometheus__Write__V2__Metadata md = IO__PROMETHEUS__WRITE__V2__METADATA__INIT;
    md.type = IO__PROMETHEUS__WRITE__V2__METADATA__METRIC_TYPE__METRIC_TYPE_COUNTER;
    md.help_ref = 5;
    md.unit_ref = 6;
    Io__Prometheus__Write__V2__TimeSeries ts = IO__PROMETHEUS__WRITE__V2__TIME_SERIES__INIT,
                                          *tsp = &ts;
    ts.n_labels_refs = 4;
    ts.labels_refs = refs;
    ts.n_samples = 1;
    ts.samples = &smp;
    ts.metadata = &md;
    Io__Prometheus__Write__V2__Request req = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    req.n_symbols = 7;
    req.symbols = syms;
    req.n_timeseries = 1;
    req.timeseries = &tsp;
    size_t n = io__prometheus__write__v2__request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(&a, n);
    io__prometheus__write__v2__request__pack(&req, raw);
    tsdb_str c = compress(&a, raw, n);
    ingest_write w;
    tsdb_err e = {0};
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V2, c.p, c.len, NULL, &w, &e), TSDB_OK);
    assert_int_equal(w.n_meta, 1);
    assert_memory_equal(w.meta[0].metric.p, "http_total", 10);
    assert_memory_equal(w.meta[0].type.p, "counter", 7);
    assert_memory_equal(w.meta[0].help.p, "Requests.", 9);
    assert_memory_equal(w.meta[0].unit.p, "seconds", 7);

    /* A reference past the symbol table. */
    refs[3] = 99;
    n = io__prometheus__write__v2__request__get_packed_size(&req);
    raw = tsdb_arena_alloc(&a, n);
    io__prometheus__write__v2__request__pack(&req, raw);
    c = compress(&a, raw, n);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V2, c.p, c.len, NULL, &w, &e), TSDB_EINVAL);
    /* An odd number of references. */
    refs[3] = 4;
    ts.n_labels_refs = 3;
    n = io__prometheus__write__v2__request__get_packed_size(&req);
    raw = tsdb_arena_alloc(&a, n);
    io__prometheus__write__v2__request__pack(&req, raw);
    c = compress(&a, raw, n);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V2, c.p, c.len, NULL, &w, &e), TSDB_EINVAL);
    tsdb_arena_fini(&a);
}

static void test_v1_metadata(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    Prometheus__MetricMetadata m = PROMETHEUS__METRIC_METADATA__INIT, *mp = &m;
    m.type = PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE;
    m.metric_family_name = "temp";
    m.help = "Temperature.";
    m.unit = "celsius";
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_metadata = 1;
    req.metadata = &mp;
    size_t n = prometheus__write_request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(&a, n);
    prometheus__write_request__pack(&req, raw);
    tsdb_str c = compress(&a, raw, n);
    ingest_write w;
    tsdb_err e = {0};
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e), TSDB_OK);
    assert_int_equal(w.n_meta, 1);
    assert_memory_equal(w.meta[0].type.p, "gauge", 5);
    assert_memory_equal(w.meta[0].metric.p, "temp", 4);
    tsdb_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_v1_v2),
        cmocka_unit_test(test_labels_sorted_and_empty_dropped),
        cmocka_unit_test(test_older_samples_in_request_dropped),
        cmocka_unit_test(test_label_validation),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_v2_refs_and_metadata),
        cmocka_unit_test(test_v1_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
