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
    const char *env = getenv("CAIRN_TEST_SEED"); /* replays a reported seed */
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
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
    memset(&w, 0, sizeof w);
    int rc = ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e);
    /* It fits the 16x budget or is refused as too large; it must never crash or be accepted
     * as a valid series without a name. */
    assert_true(rc == TSDB_ELIMIT ||
                (rc == TSDB_OK && w.batch.n_series == 0 && w.n_invalid_series == 1));
    /* Amplification across series: 2^20 empty TimeSeries (2 bytes each on the wire) decode to
     * more than 16x their size, so the budget refuses them. */
    size_t n_ts = 1u << 20;
    raw = tsdb_arena_alloc(&a, 2 * n_ts);
    for (size_t i = 0; i < n_ts; i++) {
        raw[2 * i] = 0x0a;
        raw[2 * i + 1] = 0x00;
    }
    c = compress(&a, raw, 2 * n_ts);
    assert_int_equal(ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e), TSDB_ELIMIT);
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

/* ---- The 1.0 wire decoder against protobuf-c ---------------------------------------------- */

/* What the protobuf-c based decoder made of a 1.0 body: every series whose labels (empty values
 * dropped, sorted) are valid, with its samples (older ones dropped), in request order. */
typedef struct ref_result {
    int ok;
    int field0; /* protobuf-c kept a field numbered 0 as unknown: Go's decoder (Prometheus) and
                 * the wire decoder refuse such a body as malformed */
    tsdb_batch_series *bs;
    size_t n, n_invalid, n_meta, n_hist, n_ex;
} ref_result;

static int has_field0(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    return 0;
}

/* Whether any message of the request holds an unknown field numbered 0. */
static int request_has_field0(const Prometheus__WriteRequest *req)
{
    if (has_field0(&req->base))
        return 1;
    for (size_t i = 0; i < req->n_metadata; i++)
        if (has_field0(&req->metadata[i]->base))
            return 1;
    for (size_t i = 0; i < req->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = req->timeseries[i];
        if (has_field0(&ts->base))
            return 1;
        for (size_t k = 0; k < ts->n_labels; k++)
            if (has_field0(&ts->labels[k]->base))
                return 1;
        for (size_t k = 0; k < ts->n_samples; k++)
            if (has_field0(&ts->samples[k]->base))
                return 1;
        for (size_t k = 0; k < ts->n_exemplars; k++) {
            if (has_field0(&ts->exemplars[k]->base))
                return 1;
            for (size_t j = 0; j < ts->exemplars[k]->n_labels; j++)
                if (has_field0(&ts->exemplars[k]->labels[j]->base))
                    return 1;
        }
    }
    return 0;
}

static ref_result ref_decode_v1(tsdb_arena *a, const uint8_t *raw, size_t n)
{
    ref_result r = {0};
    Prometheus__WriteRequest *req = prometheus__write_request__unpack(NULL, n, raw);
    if (!req)
        return r;
    r.ok = 1;
    r.field0 = request_has_field0(req);
    r.n_meta = req->n_metadata;
    r.bs = tsdb_arena_calloc(a, req->n_timeseries + 1, sizeof *r.bs);
    for (size_t i = 0; i < req->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = req->timeseries[i];
        r.n_hist += ts->n_histograms;
        r.n_ex += ts->n_exemplars;
        tsdb_label *lv = tsdb_arena_alloc(a, (ts->n_labels + 1) * sizeof *lv);
        size_t nl = 0;
        for (size_t k = 0; k < ts->n_labels; k++) {
            tsdb_str name = tsdb_str_c(ts->labels[k]->name),
                     value = tsdb_str_c(ts->labels[k]->value);
            if (value.len > 0)
                lv[nl++] = (tsdb_label){tsdb_arena_str(a, name), tsdb_arena_str(a, value)};
        }
        tsdb_labels_sort(lv, nl);
        if (tsdb_labels_validate((tsdb_labels){lv, nl}, 1, NULL) != TSDB_OK) {
            r.n_invalid++;
            continue;
        }
        tsdb_sample *sv = tsdb_arena_alloc(a, (ts->n_samples + 1) * sizeof *sv);
        size_t ns = 0;
        for (size_t k = 0; k < ts->n_samples; k++) {
            if (ns > 0 && ts->samples[k]->timestamp < sv[ns - 1].t)
                continue;
            sv[ns++] = (tsdb_sample){ts->samples[k]->timestamp, ts->samples[k]->value};
        }
        r.bs[r.n++] = (tsdb_batch_series){{lv, nl}, sv, ns};
    }
    prometheus__write_request__free_unpacked(req, NULL);
    return r;
}

/* A random, valid 1.0 request packed by protobuf-c, sometimes with metadata, exemplars and
 * histograms, label values that are empty or carry odd bytes, and unsorted labels. */
static size_t random_v1(tsdb_arena *a, uint8_t **out)
{
    static const char *const names[] = {"__name__", "job", "instance", "le", "a", "zz", "1bad"};
    static const char *const values[] = {
        "", "x", "node_cpu", "host-1:9100", "\xc3\xa9t\xc3\xa9", "\xff\xfe", "m", "up"};
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_timeseries = (size_t)(rand() % 6);
    req.timeseries = tsdb_arena_alloc(a, (req.n_timeseries + 1) * sizeof *req.timeseries);
    for (size_t i = 0; i < req.n_timeseries; i++) {
        Prometheus__TimeSeries *ts = tsdb_arena_alloc(a, sizeof *ts);
        prometheus__time_series__init(ts);
        ts->n_labels = (size_t)(rand() % 5);
        ts->labels = tsdb_arena_alloc(a, (ts->n_labels + 1) * sizeof *ts->labels);
        for (size_t k = 0; k < ts->n_labels; k++) {
            Prometheus__Label *l = tsdb_arena_alloc(a, sizeof *l);
            prometheus__label__init(l);
            l->name = (char *)(k == 0 && rand() % 4 ? "__name__" : names[rand() % 7]);
            l->value = (char *)values[rand() % 8];
            ts->labels[k] = l;
        }
        ts->n_samples = (size_t)(rand() % 5);
        ts->samples = tsdb_arena_alloc(a, (ts->n_samples + 1) * sizeof *ts->samples);
        for (size_t k = 0; k < ts->n_samples; k++) {
            Prometheus__Sample *sm = tsdb_arena_alloc(a, sizeof *sm);
            prometheus__sample__init(sm);
            sm->timestamp = rand() % 3 ? 1000 * (int64_t)rand() : -(int64_t)rand();
            sm->value = (double)rand() / 3.0;
            ts->samples[k] = sm;
        }
        if (rand() % 4 == 0) {
            ts->n_exemplars = 1;
            ts->exemplars = tsdb_arena_alloc(a, sizeof *ts->exemplars);
            Prometheus__Exemplar *ex = tsdb_arena_alloc(a, sizeof *ex);
            prometheus__exemplar__init(ex);
            ex->value = 2;
            ex->timestamp = 5;
            ts->exemplars[0] = ex;
        }
        if (rand() % 4 == 0) {
            ts->n_histograms = 1;
            ts->histograms = tsdb_arena_alloc(a, sizeof *ts->histograms);
            ts->histograms[0] = (ProtobufCBinaryData){3, (uint8_t *)"\x08\x01\x10"};
        }
        req.timeseries[i] = ts;
    }
    if (rand() % 4 == 0) {
        req.n_metadata = 1;
        req.metadata = tsdb_arena_alloc(a, sizeof *req.metadata);
        Prometheus__MetricMetadata *m = tsdb_arena_alloc(a, sizeof *m);
        prometheus__metric_metadata__init(m);
        m->type = PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
        m->metric_family_name = "up";
        m->help = "h";
        req.metadata[0] = m;
    }
    size_t n = prometheus__write_request__get_packed_size(&req);
    *out = tsdb_arena_alloc(a, n + 64);
    prometheus__write_request__pack(&req, *out);
    return n;
}

/* Mutates raw in place (it has 64 spare bytes): flips, truncations, inserted unknown fields or
 * random bytes. Returns the new length. */
static size_t mutate(uint8_t *raw, size_t n)
{
    switch (rand() % 6) {
    case 0:
        if (n > 0)
            raw[rand() % n] ^= (uint8_t)(1u << (rand() % 8));
        return n;
    case 1:
        return n > 0 ? (size_t)rand() % n : 0;
    case 2:
        if (n > 0)
            raw[rand() % n] = (uint8_t)rand();
        return n;
    case 3: { /* an unknown varint field 9 at the front */
        memmove(raw + 2, raw, n);
        raw[0] = 0x48;
        raw[1] = (uint8_t)(rand() & 0x7f);
        return n + 2;
    }
    case 4: { /* random bytes inserted somewhere */
        size_t at = n ? (size_t)rand() % (n + 1) : 0, k = 1 + (size_t)rand() % 4;
        memmove(raw + at + k, raw + at, n - at);
        for (size_t i = 0; i < k; i++)
            raw[at + i] = (uint8_t)rand();
        return n + k;
    }
    default:
        return n;
    }
}

static void dump_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%02x%c", p[i], i + 1 == n ? '\n' : ' ');
}

static void test_v1_matches_protobuf_c(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    size_t agreed_ok = 0, agreed_bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        uint8_t *raw;
        size_t n = random_v1(&a, &raw);
        int mutated = iter % 3 != 0;
        if (mutated)
            n = mutate(raw, n);
        ref_result ref = ref_decode_v1(&a, raw, n);
        tsdb_str c = compress(&a, raw, n);
        ingest_write w;
        tsdb_err e = {0};
        int rc = ingest_rw_decode(&a, INGEST_RW_V1, c.p, c.len, NULL, &w, &e);
        if (!ref.ok) {
            if (!mutated)
                fail_msg("seed %u iter %d: protobuf-c refused an unmutated body", seed, iter);
            if (rc != TSDB_EINVAL) {
                dump_hex(raw, n);
                fail_msg("seed %u iter %d: protobuf-c refused a body the wire decoder took (%d)",
                         seed, iter, rc);
            }
            agreed_bad++;
            tsdb_arena_fini(&a);
            continue;
        }
        if (ref.field0) { /* protobuf-c is laxer than Go here; the wire decoder follows Go */
            assert_int_equal(rc, TSDB_EINVAL);
            agreed_bad++;
            tsdb_arena_fini(&a);
            continue;
        }
        if (rc != TSDB_OK) {
            dump_hex(raw, n);
            fail_msg("seed %u iter %d: protobuf-c decoded, the wire decoder said %s", seed, iter,
                     e.msg);
        }
        agreed_ok++;
        assert_int_equal(w.batch.n_series, ref.n);
        assert_int_equal(w.n_invalid_series, ref.n_invalid);
        assert_int_equal(w.n_meta, ref.n_meta);
        assert_int_equal(w.n_histograms, ref.n_hist);
        assert_int_equal(w.n_exemplars, ref.n_ex);
        for (size_t i = 0; i < ref.n; i++) {
            const tsdb_batch_series *x = &w.batch.series[i], *y = &ref.bs[i];
            if (!tsdb_labels_equal(x->labels, y->labels))
                fail_msg("seed %u iter %d: series %zu labels differ", seed, iter, i);
            assert_int_equal(x->n_samples, y->n_samples);
            for (size_t k = 0; k < y->n_samples; k++) {
                assert_int_equal(x->samples[k].t, y->samples[k].t);
                assert_memory_equal(&x->samples[k].v, &y->samples[k].v, sizeof(double));
            }
        }
        tsdb_arena_fini(&a);
    }
    printf("both decoded %zu bodies, both refused %zu\n", agreed_ok, agreed_bad);
    assert_true(agreed_ok > 5000 && agreed_bad > 1000);
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
        cmocka_unit_test(test_v1_matches_protobuf_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
