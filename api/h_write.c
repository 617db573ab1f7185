/* api/h_write.c -- the remote-write receiver, POST /api/v1/write (1.0 and 2.0).
 *
 * The protocol version comes from Content-Type: "application/x-protobuf" or
 * "...;proto=prometheus.WriteRequest" is 1.0, "...;proto=io.prometheus.write.v2.Request" 2.0;
 * anything else, or a Content-Encoding other than snappy, is 415. Status codes follow the spec
 * and Prometheus' write_handler: 204 when everything was stored; 400 with the reason for a
 * malformed body, for series with invalid labels and for samples refused as out of order,
 * duplicate or too old (the acceptable ones are kept, and a 4xx tells the sender not to retry); 413
 * for bodies over the limit; 5xx only when storage failed as a whole, so the sender retries. 2.0
 * answers carry the X-Prometheus-Remote-Write-*-Written headers.
 */
#include "api/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive search for needle in s. */
static int contains_ci(tsdb_str s, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= s.len; i++)
        if (strncasecmp(s.p + i, needle, nl) == 0)
            return 1;
    return 0;
}

/* Picks the protocol from Content-Type; returns 0, or -1 after answering 415. */
static int pick_version(api_req *r, api_resp *w, enum ingest_rw_version *ver)
{
    *ver = INGEST_RW_V1;
    const tsdb_str *ce = api__req_header(r, "Content-Encoding");
    if (ce && ce->len > 0 && !(ce->len == 6 && strncasecmp(ce->p, "snappy", 6) == 0)) {
        api__resp_text(w, 415, "text/plain; charset=utf-8",
                       "unsupported Content-Encoding; only snappy is accepted\n");
        return -1;
    }
    const tsdb_str *ct = api__req_header(r, "Content-Type");
    if (!ct || ct->len == 0)
        return 0; /* Prometheus 2.42 does not check; be as lenient for 1.0 */
    if (!contains_ci(*ct, "application/x-protobuf")) {
        api__resp_text(w, 415, "text/plain; charset=utf-8",
                       "unsupported Content-Type; expected application/x-protobuf\n");
        return -1;
    }
    if (contains_ci(*ct, "proto=io.prometheus.write.v2.Request")) {
        *ver = INGEST_RW_V2;
        return 0;
    }
    if (contains_ci(*ct, "proto=") && !contains_ci(*ct, "proto=prometheus.WriteRequest")) {
        api__resp_text(w, 415, "text/plain; charset=utf-8",
                       "unsupported proto= in Content-Type; expected prometheus.WriteRequest or "
                       "io.prometheus.write.v2.Request\n");
        return -1;
    }
    return 0;
}

static void written_headers(api_req *r, api_resp *w, enum ingest_rw_version ver, size_t samples,
                            size_t histograms, size_t exemplars)
{
    if (ver != INGEST_RW_V2)
        return;
    api__resp_header(w, "X-Prometheus-Remote-Write-Samples-Written",
                     tsdb_arena_sprintf(r->arena, "%zu", samples));
    api__resp_header(w, "X-Prometheus-Remote-Write-Histograms-Written",
                     tsdb_arena_sprintf(r->arena, "%zu", histograms));
    api__resp_header(w, "X-Prometheus-Remote-Write-Exemplars-Written",
                     tsdb_arena_sprintf(r->arena, "%zu", exemplars));
}

void api__h_write(api_ctx *c, api_req *r, api_resp *w)
{
    enum ingest_rw_version ver;
    atomic_fetch_add(&c->m.rw_requests, 1);
    if (pick_version(r, w, &ver) < 0)
        return;
    ingest_write wr;
    tsdb_err err = {0};
    int rc = ingest_rw_decode(r->arena, ver, r->body, r->body_len, &c->opts.ingest, &wr, &err);
    if (rc != TSDB_OK) {
        atomic_fetch_add(&c->m.rw_decode_errors, 1);
        written_headers(r, w, ver, 0, 0, 0);
        api__resp_text(
            w, rc == TSDB_ELIMIT ? 413 : 400, "text/plain; charset=utf-8",
            tsdb_arena_sprintf(r->arena, "%s\n", err.msg[0] ? err.msg : tsdb_strerror(rc)));
        return;
    }
    atomic_fetch_add(&c->m.rw_samples_received, wr.n_samples);
    if (wr.n_meta > 0 && c->opts.scraper)
        ingest_scraper_metadata_add(c->opts.scraper, wr.meta, wr.n_meta);
    else if (wr.n_meta > 0)
        api__meta_put(wr.meta, wr.n_meta);

    tsdb_append_stats st = {0};
    rc = tsdb_append(c->db, &wr.batch, &st, &err);
    atomic_fetch_add(&c->m.rw_samples_appended, st.accepted);
    atomic_fetch_add(&c->m.rw_rejected_ooo, st.out_of_order);
    atomic_fetch_add(&c->m.rw_rejected_dup, st.duplicate);
    atomic_fetch_add(&c->m.rw_rejected_too_old, st.too_old);
    atomic_fetch_add(&c->m.rw_rejected_invalid, st.invalid);
    written_headers(r, w, ver, st.accepted, 0, 0);
    if (rc != TSDB_OK) {
        /* Storage could not take the batch: transient for the sender, which retries. */
        TSDB_LOG_ERROR("api", "remote write append failed: %s",
                       err.msg[0] ? err.msg : tsdb_strerror(rc));
        api__resp_text(
            w, rc == TSDB_EINVAL ? 400 : 500, "text/plain; charset=utf-8",
            tsdb_arena_sprintf(r->arena, "%s\n", err.msg[0] ? err.msg : tsdb_strerror(rc)));
        return;
    }
    atomic_fetch_add(&c->m.rw_rejected_invalid, wr.n_invalid_samples);
    if (wr.n_invalid_series > 0) {
        /* The valid series were stored; the sender must not retry the invalid ones. */
        api__resp_text(w, 400, "text/plain; charset=utf-8",
                       tsdb_arena_sprintf(r->arena,
                                          "%s (%zu series with %zu samples dropped for invalid "
                                          "labels; %zu samples stored)\n",
                                          wr.invalid_reason ? wr.invalid_reason : "invalid labels",
                                          wr.n_invalid_series, wr.n_invalid_samples, st.accepted));
        return;
    }
    size_t rejected = st.out_of_order + st.duplicate + st.too_old + st.invalid;
    if (rejected > 0) {
        const char *why = err.msg[0]        ? err.msg
                          : st.out_of_order ? "out of order sample"
                          : st.duplicate    ? "duplicate sample for timestamp"
                          : st.too_old      ? "out of bounds"
                                            : "invalid series";
        api__resp_text(w, 400, "text/plain; charset=utf-8",
                       tsdb_arena_sprintf(r->arena,
                                          "%s (%zu samples rejected: %zu out of order, %zu "
                                          "duplicate, %zu too old, %zu invalid; %zu stored)\n",
                                          why, rejected, st.out_of_order, st.duplicate, st.too_old,
                                          st.invalid, st.accepted));
        return;
    }
    if (wr.n_histograms > 0) {
        /* Float samples were stored; native histograms cannot be, and a retry will not help. */
        api__resp_text(w, 400, "text/plain; charset=utf-8",
                       tsdb_arena_sprintf(r->arena,
                                          "native histograms are not supported: %zu dropped, "
                                          "%zu float samples stored\n",
                                          wr.n_histograms, st.accepted));
        return;
    }
    w->status = 204;
    w->content_type = NULL;
    w->body.len = 0;
}
