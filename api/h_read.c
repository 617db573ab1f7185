/* api/h_read.c -- remote read, POST /api/v1/read.
 *
 * Each query's matchers select series over [start, end]; samples are read through the querier.
 * When the client accepts STREAMED_XOR_CHUNKS (Thanos sidecar asks for it first) every series
 * goes out as one frame with its samples re-encoded as Prometheus XOR chunks of at most 120
 * samples; otherwise one Snappy-compressed ReadResponse holds all samples (SAMPLES). A request
 * that would read more than the query sample limit (default 50 M) is refused with 400, as in
 * Prometheus' read handler, before the response is built.
 */
#include "api/http.h"

#include <stdio.h>
#include <string.h>

#define READ_CHUNK_SAMPLES 120

/* Reads every sample of it into an arena array. Counts into *budget; <0 on error/limit. */
static int read_all(tsdb_iter *it, tsdb_arena *a, tsdb_sample **out, size_t *n, size_t *budget)
{
    size_t cap = 64, k = 0;
    tsdb_sample *v = tsdb_arena_alloc(a, cap * sizeof *v);
    for (;;) {
        tsdb_sample s;
        int rc = tsdb_iter_next(it, &s);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        if (*budget == 0)
            return TSDB_ELIMIT;
        (*budget)--;
        if (k == cap) {
            v = tsdb_arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
            cap *= 2;
        }
        v[k++] = s;
    }
    *out = v;
    *n = k;
    return TSDB_OK;
}

void api__h_read(api_ctx *c, api_req *r, api_resp *w)
{
    const tsdb_str *ce = api__req_header(r, "Content-Encoding");
    if (ce && ce->len > 0 && !(ce->len == 6 && !memcmp(ce->p, "snappy", 6))) {
        api__resp_text(w, 415, "text/plain; charset=utf-8", "only snappy is accepted\n");
        return;
    }
    ingest_read_request req;
    tsdb_err e = {0};
    int rc = ingest_rr_decode(r->arena, r->body, r->body_len, &c->opts.ingest, &req, &e);
    if (rc != TSDB_OK) {
        api__resp_text(w, rc == TSDB_ELIMIT ? 413 : 400, "text/plain; charset=utf-8",
                       tsdb_arena_sprintf(r->arena, "%s\n", e.msg));
        return;
    }
    size_t budget = c->opts.query.max_samples ? c->opts.query.max_samples : 50000000;
    ingest_rr_result *results = tsdb_arena_calloc(r->arena, req.n_queries + 1, sizeof *results);
    tsdb_buf *frames = &w->body;
    frames->len = 0;
    for (size_t qi = 0; qi < req.n_queries; qi++) {
        const ingest_rr_query *q = &req.queries[qi];
        const tsdb_matcher **ms = tsdb_arena_alloc(r->arena, (q->n_matchers + 1) * sizeof *ms);
        for (size_t k = 0; k < q->n_matchers; k++) {
            tsdb_matcher *m;
            rc = tsdb_matcher_new(q->matchers[k].op, q->matchers[k].name, q->matchers[k].value,
                                  r->arena, &m, &e);
            if (rc != TSDB_OK) {
                api__resp_text(w, 400, "text/plain; charset=utf-8",
                               tsdb_arena_sprintf(r->arena, "%s\n", e.msg));
                return;
            }
            ms[k] = m;
        }
        tsdb_querier *qr;
        rc = tsdb_querier_open(c->db, q->start_ms, q->end_ms, &qr, &e);
        if (rc != TSDB_OK) {
            api__resp_text(w, 500, "text/plain; charset=utf-8",
                           tsdb_arena_sprintf(r->arena, "%s\n", e.msg));
            return;
        }
        tsdb_series_set *ss;
        rc = tsdb_querier_select(qr, (const tsdb_matcher *const *)ms, q->n_matchers, &ss, &e);
        size_t cap = 16, n = 0;
        ingest_rr_series *sv = tsdb_arena_alloc(r->arena, cap * sizeof *sv);
        while (rc == TSDB_OK) {
            tsdb_labels l;
            tsdb_iter *it;
            int k = tsdb_series_next(ss, &l, &it);
            if (k <= 0) {
                rc = k;
                break;
            }
            tsdb_sample *smp;
            size_t ns;
            rc = read_all(it, r->arena, &smp, &ns, &budget);
            if (rc != TSDB_OK || ns == 0)
                continue;
            l = tsdb_labels_copy(l, r->arena);
            if (req.streamed_chunks) {
                size_t nch = (ns + READ_CHUNK_SAMPLES - 1) / READ_CHUNK_SAMPLES;
                ingest_rr_chunk *ch = tsdb_arena_alloc(r->arena, nch * sizeof *ch);
                for (size_t ci = 0; ci < nch; ci++) {
                    size_t from = ci * READ_CHUNK_SAMPLES;
                    size_t cnt = ns - from < READ_CHUNK_SAMPLES ? ns - from : READ_CHUNK_SAMPLES;
                    tsdb_buf cb;
                    tsdb_buf_init(&cb);
                    tsdb_xor_encode(smp + from, cnt, &cb);
                    void *data = tsdb_arena_alloc(r->arena, cb.len ? cb.len : 1);
                    memcpy(data, cb.p, cb.len);
                    ch[ci] = (ingest_rr_chunk){smp[from].t, smp[from + cnt - 1].t, data, cb.len};
                    tsdb_buf_fini(&cb);
                }
                ingest_rr_append_frame(frames, (int64_t)qi, l, ch, nch, r->arena);
                continue;
            }
            if (n == cap) {
                sv = tsdb_arena_realloc(r->arena, sv, cap * sizeof *sv, 2 * cap * sizeof *sv);
                cap *= 2;
            }
            sv[n++] = (ingest_rr_series){l, smp, ns};
        }
        tsdb_querier_close(qr);
        if (rc == TSDB_ELIMIT) {
            api__resp_text(w, 400, "text/plain; charset=utf-8",
                           "exceeded sample limit for remote read\n");
            return;
        }
        if (rc < 0) {
            api__resp_text(
                w, 500, "text/plain; charset=utf-8",
                tsdb_arena_sprintf(r->arena, "%s\n", e.msg[0] ? e.msg : tsdb_strerror(rc)));
            return;
        }
        results[qi] = (ingest_rr_result){sv, n};
    }
    w->status = 200;
    w->no_compress = 1;
    if (req.streamed_chunks) {
        w->content_type = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
        return;
    }
    tsdb_str out;
    if (ingest_rr_encode_samples(results, req.n_queries, r->arena, &out) != TSDB_OK) {
        api__resp_text(w, 500, "text/plain; charset=utf-8", "encoding the response failed\n");
        return;
    }
    w->body.len = 0;
    tsdb_buf_put(&w->body, out.p, out.len);
    w->content_type = "application/x-protobuf";
    api__resp_header(w, "Content-Encoding", "snappy");
}
