/* ingest/remote_read.c -- remote read: prometheus.ReadRequest in, ReadResponse or chunk frames out.
 *
 * Request: Snappy block + ReadRequest{queries=1 {start_timestamp_ms, end_timestamp_ms,
 * matchers{type EQ/NEQ/RE/NRE, name, value}, hints}, accepted_response_types=2}, decoded with the
 * same size checks and arena allocator as remote write.
 *
 * SAMPLES response: Snappy(ReadResponse{results[] {timeseries[] {labels, samples}}}).
 * STREAMED_XOR_CHUNKS response (storage/remote/chunked.go): a sequence of frames
 *
 *   +----------------------+---------------------------+---------------------------------+
 *   | len: uvarint         | crc32c(message): u32 BE   | ChunkedReadResponse (len bytes) |
 *   +----------------------+---------------------------+---------------------------------+
 *
 * where ChunkedReadResponse{chunked_series[] {labels, chunks[] {min_time_ms, max_time_ms,
 * type XOR=1, data}}, query_index}. Frames are not compressed.
 */
#include <protobuf-c/protobuf-c.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"
#include "ingest/pbarena.h"
#include "ingest/prompb.pb-c.h"

#define RR_DEFAULT_MAX_BODY (32u << 20)

static tsdb_str cstr(const char *s)
{
    return s ? (tsdb_str){s, strlen(s)} : (tsdb_str){"", 0};
}

int ingest_rr_decode(tsdb_arena *a, const void *body, size_t len, const ingest_limits *lim,
                     ingest_read_request *out, tsdb_err *err)
{
    size_t max = lim && lim->max_body ? lim->max_body : RR_DEFAULT_MAX_BODY;
    uint8_t *buf = NULL;
    size_t ulen = 0;
    int rc = ingest__unsnappy(a, body, len, max, &buf, &ulen, err);
    if (rc != TSDB_OK)
        return rc;
    ingest__pb_arena pa = {a, 0, ingest__pb_budget(ulen), 0};
    ProtobufCAllocator al = {ingest__pb_alloc, ingest__pb_free, &pa};
    Prometheus__ReadRequest *req = prometheus__read_request__unpack(&al, ulen, buf);
    if (!req) {
        if (pa.over)
            return tsdb_errf(err, TSDB_ELIMIT, -1, "read request too large to decode");
        return tsdb_errf(err, TSDB_EINVAL, -1, "protobuf: malformed prometheus.ReadRequest");
    }
    ingest_rr_query *qs = tsdb_arena_calloc(a, req->n_queries + 1, sizeof *qs);
    for (size_t i = 0; i < req->n_queries; i++) {
        const Prometheus__Query *q = req->queries[i];
        ingest_rr_matcher *ms = tsdb_arena_calloc(a, q->n_matchers + 1, sizeof *ms);
        for (size_t k = 0; k < q->n_matchers; k++) {
            const Prometheus__LabelMatcher *m = q->matchers[k];
            switch ((int)m->type) {
            case 0:
                ms[k].op = TSDB_MATCH_EQ;
                break;
            case 1:
                ms[k].op = TSDB_MATCH_NE;
                break;
            case 2:
                ms[k].op = TSDB_MATCH_RE;
                break;
            case 3:
                ms[k].op = TSDB_MATCH_NRE;
                break;
            default:
                return tsdb_errf(err, TSDB_EINVAL, -1, "query %zu: unknown matcher type %d", i,
                                 (int)m->type);
            }
            ms[k].name = cstr(m->name);
            ms[k].value = cstr(m->value);
        }
        qs[i].start_ms = q->start_timestamp_ms;
        qs[i].end_ms = q->end_timestamp_ms;
        qs[i].matchers = ms;
        qs[i].n_matchers = q->n_matchers;
    }
    int streamed = 0;
    for (size_t i = 0; i < req->n_accepted_response_types; i++)
        if ((int)req->accepted_response_types[i] == 1)
            streamed = 1;
    out->queries = qs;
    out->n_queries = req->n_queries;
    out->streamed_chunks = streamed;
    return TSDB_OK;
}

static char *arena_cstr(tsdb_arena *a, tsdb_str s)
{
    return tsdb_arena_strndup(a, s.p ? s.p : "", s.len);
}

static Prometheus__Label **pb_labels(tsdb_arena *a, tsdb_labels l)
{
    Prometheus__Label **v = tsdb_arena_alloc(a, (l.n + 1) * sizeof *v);
    for (size_t k = 0; k < l.n; k++) {
        Prometheus__Label *x = tsdb_arena_alloc(a, sizeof *x);
        prometheus__label__init(x);
        x->name = arena_cstr(a, l.v[k].name);
        x->value = arena_cstr(a, l.v[k].value);
        v[k] = x;
    }
    return v;
}

int ingest_rr_encode_samples(const ingest_rr_result *res, size_t n, tsdb_arena *a, tsdb_str *out)
{
    Prometheus__ReadResponse rr = PROMETHEUS__READ_RESPONSE__INIT;
    rr.n_results = n;
    rr.results = tsdb_arena_alloc(a, (n + 1) * sizeof *rr.results);
    for (size_t i = 0; i < n; i++) {
        Prometheus__QueryResult *qr = tsdb_arena_alloc(a, sizeof *qr);
        prometheus__query_result__init(qr);
        qr->n_timeseries = res[i].n_series;
        qr->timeseries = tsdb_arena_alloc(a, (res[i].n_series + 1) * sizeof *qr->timeseries);
        for (size_t s = 0; s < res[i].n_series; s++) {
            const ingest_rr_series *src = &res[i].series[s];
            Prometheus__TimeSeries *ts = tsdb_arena_alloc(a, sizeof *ts);
            prometheus__time_series__init(ts);
            ts->n_labels = src->labels.n;
            ts->labels = pb_labels(a, src->labels);
            ts->n_samples = src->n_samples;
            ts->samples = tsdb_arena_alloc(a, (src->n_samples + 1) * sizeof *ts->samples);
            Prometheus__Sample *sv = tsdb_arena_alloc(a, (src->n_samples + 1) * sizeof *sv);
            for (size_t k = 0; k < src->n_samples; k++) {
                prometheus__sample__init(&sv[k]);
                sv[k].timestamp = src->samples[k].t;
                sv[k].value = src->samples[k].v;
                ts->samples[k] = &sv[k];
            }
            qr->timeseries[s] = ts;
        }
        rr.results[i] = qr;
    }
    size_t len = prometheus__read_response__get_packed_size(&rr);
    uint8_t *raw = tsdb_arena_alloc(a, len + 1);
    prometheus__read_response__pack(&rr, raw);
    return ingest__snappy(a, raw, len, out);
}

int ingest_rr_append_frame(tsdb_buf *out, int64_t query_index, tsdb_labels labels,
                           const ingest_rr_chunk *chunks, size_t n_chunks, tsdb_arena *a)
{
    Prometheus__ChunkedSeries cs = PROMETHEUS__CHUNKED_SERIES__INIT, *csp = &cs;
    cs.n_labels = labels.n;
    cs.labels = pb_labels(a, labels);
    cs.n_chunks = n_chunks;
    cs.chunks = tsdb_arena_alloc(a, (n_chunks + 1) * sizeof *cs.chunks);
    Prometheus__Chunk *cv = tsdb_arena_alloc(a, (n_chunks + 1) * sizeof *cv);
    for (size_t i = 0; i < n_chunks; i++) {
        prometheus__chunk__init(&cv[i]);
        cv[i].min_time_ms = chunks[i].mint;
        cv[i].max_time_ms = chunks[i].maxt;
        cv[i].type = PROMETHEUS__CHUNK__ENCODING__XOR;
        cv[i].data.data = (uint8_t *)(uintptr_t)chunks[i].data;
        cv[i].data.len = chunks[i].len;
        cs.chunks[i] = &cv[i];
    }
    Prometheus__ChunkedReadResponse resp = PROMETHEUS__CHUNKED_READ_RESPONSE__INIT;
    resp.n_chunked_series = 1;
    resp.chunked_series = &csp;
    resp.query_index = query_index;
    size_t len = prometheus__chunked_read_response__get_packed_size(&resp);
    uint8_t *raw = tsdb_arena_alloc(a, len + 1);
    prometheus__chunked_read_response__pack(&resp, raw);
    tsdb_buf_put_uvarint(out, len);
    tsdb_buf_put_u32be(out, tsdb_crc32c(0, raw, len));
    tsdb_buf_put(out, raw, len);
    return TSDB_OK;
}
