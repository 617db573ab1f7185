/* ingest/remote_write.c -- remote-write 1.0 and 2.0 bodies: Snappy + protobuf <-> tsdb batches.
 *
 * The only user of snappy-c.h and protobuf-c in ingest/ (with remote_read.c). Decoding never
 * trusts a declared size:
 *   1. the compressed body must be within the limit (ingest_limits.max_body, 32 MiB default);
 *   2. Snappy's declared uncompressed length must be within the same limit before anything is
 *      allocated for it; the block is then decompressed into the arena (framed Snappy is not
 *      accepted, as the spec requires the block format);
 *   3. remote write 1.0 (the hot path) is read straight off the wire by a small decoder below,
 *      2.0 by protobuf-c; both charge what they allocate to a budget proportional to the body
 *      (protobuf-c through an allocator that bump-allocates from the arena), since a 2-byte
 *      empty sub-message costs tens of bytes of structs;
 *   4. every series' labels are copied out, empty values dropped, sorted and validated
 *      (metric name present, legal names, no duplicates), and limits per request applied.
 * The resulting tsdb_batch points into the arena and dies with it.
 *
 * 1.0: prometheus.WriteRequest{timeseries=1, metadata=3}. 2.0: io.prometheus.write.v2.Request
 * {symbols=4, timeseries=5} where labels are pairs of indices into symbols. Histograms and
 * exemplars are counted, not stored.
 */
#include <snappy-c.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"
#include "ingest/pbarena.h"
#include "ingest/prompb.pb-c.h"
#include "ingest/prompb_v2.pb-c.h"

#define RW_DEFAULT_MAX_BODY (32u << 20)
#define RW_MAX_UNPACK_BYTES ((size_t)1 << 30)

/* ---- Arena allocator for protobuf-c and Snappy (shared with remote_read.c) ----------------- */

void *ingest__pb_alloc(void *data, size_t size)
{
    ingest__pb_arena *p = data;
    if (size > p->budget - p->used) {
        p->over = 1;
        return NULL;
    }
    p->used += size;
    return tsdb_arena_alloc(p->a, size ? size : 1);
}

void ingest__pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* arena memory is released all at once */
}

size_t ingest__pb_budget(size_t n)
{
    size_t b = n * 16 + (1u << 20);
    return b > RW_MAX_UNPACK_BYTES ? RW_MAX_UNPACK_BYTES : b;
}

int ingest__unsnappy(tsdb_arena *a, const void *body, size_t len, size_t max, uint8_t **out,
                     size_t *out_len, tsdb_err *err)
{
    if (len > max)
        return tsdb_errf(err, TSDB_ELIMIT, -1, "body of %zu bytes exceeds the limit of %zu bytes",
                         len, max);
    if (len == 0) {
        *out = tsdb_arena_alloc(a, 1);
        *out_len = 0;
        return TSDB_OK;
    }
    size_t ulen = 0;
    if (snappy_uncompressed_length(body, len, &ulen) != SNAPPY_OK)
        return tsdb_errf(err, TSDB_EINVAL, -1, "snappy: corrupt input (bad length header)");
    if (ulen > max)
        return tsdb_errf(err, TSDB_ELIMIT, -1,
                         "decompressed body of %zu bytes exceeds the limit of %zu bytes", ulen,
                         max);
    uint8_t *buf = tsdb_arena_alloc(a, ulen + 1);
    size_t got = ulen;
    if (snappy_uncompress(body, len, (char *)buf, &got) != SNAPPY_OK || got != ulen)
        return tsdb_errf(err, TSDB_EINVAL, -1, "snappy: corrupt input");
    *out = buf;
    *out_len = ulen;
    return TSDB_OK;
}

int ingest__snappy(tsdb_arena *a, const uint8_t *raw, size_t n, tsdb_str *out)
{
    size_t cap = snappy_max_compressed_length(n);
    char *c = tsdb_arena_alloc(a, cap + 1);
    size_t clen = cap;
    if (snappy_compress((const char *)raw, n, c, &clen) != SNAPPY_OK)
        return TSDB_EINVAL;
    out->p = c;
    out->len = clen;
    return TSDB_OK;
}

/* ---- Labels -------------------------------------------------------------------------------- */

static size_t lim_or(size_t v, size_t dflt)
{
    return v ? v : dflt;
}

/* Drops empty values, sorts and validates v[0..n) in place; *n shrinks. */
static int finish_labels(tsdb_label *v, size_t *n, const ingest_limits *lim, size_t series_i,
                         tsdb_arena *a, tsdb_err *err)
{
    size_t o = 0;
    for (size_t i = 0; i < *n; i++) {
        if (v[i].value.len == 0)
            continue;
        size_t mlb = lim ? lim->max_label_bytes : 0;
        if (mlb && (v[i].name.len > mlb || v[i].value.len > mlb))
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "series %zu: label %.*s longer than the limit of %zu bytes", series_i,
                             (int)(v[i].name.len > 64 ? 64 : v[i].name.len), v[i].name.p, mlb);
        v[o++] = v[i];
    }
    *n = o;
    if (lim && lim->max_labels && o > lim->max_labels)
        return tsdb_errf(err, TSDB_EINVAL, -1, "series %zu has %zu labels, more than the limit %zu",
                         series_i, o, lim->max_labels);
    tsdb_labels_sort(v, o);
    tsdb_err e; /* not zeroed: it is per series, and read only after a failure wrote it */
    e.msg[0] = 0;
    tsdb_labels l = {v, o};
    if (tsdb_labels_validate(l, 1, &e) != TSDB_OK)
        return tsdb_errf(err, TSDB_EINVAL, -1, "invalid labels for series %s: %s",
                         tsdb_labels_format(l, a), e.msg[0] ? e.msg : "invalid label set");
    return TSDB_OK;
}

/* Validates one series' labels; an invalid one is counted in out (the first reason kept) and
 * left out. Returns 1 to keep the series. */
static int keep_series(tsdb_label *lv, size_t *nl, const ingest_limits *lim, size_t i,
                       size_t n_samples, tsdb_arena *a, ingest_write *out)
{
    tsdb_err e;
    if (finish_labels(lv, nl, lim, i, a, &e) == TSDB_OK)
        return 1;
    out->n_invalid_series++;
    out->n_invalid_samples += n_samples;
    if (!out->invalid_reason)
        out->invalid_reason = tsdb_arena_strndup(a, e.msg, strlen(e.msg));
    return 0;
}

static tsdb_str cstr(const char *s)
{
    return s ? (tsdb_str){s, strlen(s)} : (tsdb_str){"", 0};
}

static const char *const metric_types[] = {"unknown",        "counter", "gauge", "histogram",
                                           "gaugehistogram", "summary", "info",  "stateset"};

static tsdb_str type_name(int t)
{
    if (t < 0 || t >= (int)(sizeof metric_types / sizeof metric_types[0]))
        t = 0;
    return cstr(metric_types[t]);
}

/* ---- 1.0: a direct wire decoder ------------------------------------------------------------
 *
 * Remote write 1.0 is the hot path of ingestion, so its messages are read straight off the wire
 * instead of through protobuf-c: no message structs, no per-string copies. Label names and values
 * point into the decompressed body (which lives in the arena), cut at the first NUL byte as the
 * C strings protobuf-c hands out would be. The rules are the protobuf ones: fields may come in
 * any order and repeat (repeated fields append, scalar fields keep the last value), unknown
 * fields with wire type 0, 1, 2 or 5 are skipped, and a known field with the wrong wire type, a
 * group, field number 0, a varint longer than 10 bytes or a length past its message's end makes
 * the whole request malformed. A TimeSeries is read once into per-request scratch arrays, then
 * copied to the arena at its exact size; what the arena receives is charged against the same
 * budget as the protobuf-c decoders (ingest__pb_budget). */

typedef struct pbr {
    const uint8_t *p, *end;
} pbr;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static int pb_varint(pbr *r, uint64_t *out)
{
    const uint8_t *p = r->p;
    if (p < r->end && *p < 0x80) {
        *out = *p;
        r->p = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p >= r->end)
            return -1;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *out = v;
            r->p = p;
            return 0;
        }
    }
    return -1;
}

/* Reads a field key; 1 = a field (*field, *wt set), 0 = end of the message, -1 = malformed.
 * A key is a varint of at most 5 bytes read as 32 bits (bits past 32 are dropped, as protobuf-c
 * does); field number 0 is malformed. */
static int pb_key(pbr *r, uint32_t *field, unsigned *wt)
{
    const uint8_t *p = r->p;
    if (p >= r->end)
        return 0;
    if (*p < 0x80 && *p >= 8) { /* the usual one-byte key */
        r->p = p + 1;
        *field = *p >> 3;
        *wt = *p & 7;
        return 1;
    }
    uint32_t k = 0;
    for (unsigned i = 0;; i++) {
        if (i == 5 || p >= r->end)
            return -1;
        uint8_t b = *p++;
        k |= (uint32_t)(b & 0x7f) << (7 * i);
        if (b < 0x80)
            break;
    }
    if ((k >> 3) == 0)
        return -1;
    r->p = p;
    *field = k >> 3;
    *wt = k & 7;
    return 1;
}

/* A length-delimited payload as a sub-reader. */
static int pb_len(pbr *r, pbr *sub)
{
    uint64_t n;
    if (pb_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* Skips the value of an unknown field. */
static int pb_skip(pbr *r, unsigned wt)
{
    uint64_t v;
    pbr sub;
    switch (wt) {
    case WT_VARINT:
        return pb_varint(r, &v);
    case WT_I64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case WT_LEN:
        return pb_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1; /* groups and the undefined wire types 6 and 7 */
    }
}

/* A string field as a tsdb_str, cut at its first NUL byte. */
static int pb_str(pbr *r, tsdb_str *out)
{
    pbr sub;
    if (pb_len(r, &sub) < 0)
        return -1;
    size_t n = (size_t)(sub.end - sub.p);
    const void *z = n ? memchr(sub.p, 0, n) : NULL;
    *out = (tsdb_str){(const char *)sub.p, z ? (size_t)((const uint8_t *)z - sub.p) : n};
    return 0;
}

/* prometheus.Label {name = 1, value = 2}. */
static int pb_label(pbr r, tsdb_label *out)
{
    out->name = out->value = (tsdb_str){"", 0};
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        if (f == 1 || f == 2) {
            if (wt != WT_LEN || pb_str(&r, f == 1 ? &out->name : &out->value) < 0)
                return -1;
        } else if (pb_skip(&r, wt) < 0) {
            return -1;
        }
    }
    return k;
}

/* prometheus.Sample {value = 1 (double), timestamp = 2 (int64)}. */
static int pb_sample(pbr r, tsdb_sample *out)
{
    out->t = 0;
    out->v = 0;
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        if (f == 1) {
            if (wt != WT_I64 || r.end - r.p < 8)
                return -1;
            uint64_t bits = tsdb_get_u64le(r.p);
            memcpy(&out->v, &bits, 8);
            r.p += 8;
        } else if (f == 2) {
            uint64_t v;
            if (wt != WT_VARINT || pb_varint(&r, &v) < 0)
                return -1;
            out->t = (int64_t)v;
        } else if (pb_skip(&r, wt) < 0) {
            return -1;
        }
    }
    return k;
}

/* prometheus.Exemplar {labels = 1, value = 2 (double), timestamp = 3 (int64)}: checked, not
 * kept (exemplars are counted only). */
static int pb_exemplar(pbr r)
{
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        pbr sub;
        tsdb_label l;
        uint64_t v;
        if (f == 1) {
            if (wt != WT_LEN || pb_len(&r, &sub) < 0 || pb_label(sub, &l) < 0)
                return -1;
        } else if (f == 2) {
            if (wt != WT_I64 || pb_skip(&r, wt) < 0)
                return -1;
        } else if (f == 3) {
            if (wt != WT_VARINT || pb_varint(&r, &v) < 0)
                return -1;
        } else if (pb_skip(&r, wt) < 0) {
            return -1;
        }
    }
    return k;
}

/* Per-request scratch for one TimeSeries' labels and samples (heap, grown by doubling). */
typedef struct ts_scratch {
    tsdb_label *lv;
    tsdb_sample *sv;
    size_t n_lv, cap_lv, n_sv, cap_sv;
    size_t exemplars, histograms;
} ts_scratch;

/* prometheus.TimeSeries {labels = 1, samples = 2, exemplars = 3, histograms = 4} into sc. An
 * exemplar is checked and counted; a histogram is bytes, counted. */
static int pb_ts(pbr r, ts_scratch *sc)
{
    sc->n_lv = sc->n_sv = sc->exemplars = sc->histograms = 0;
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        if (f < 1 || f > 4) {
            if (pb_skip(&r, wt) < 0)
                return -1;
            continue;
        }
        pbr sub;
        if (wt != WT_LEN || pb_len(&r, &sub) < 0)
            return -1;
        if (f == 1) {
            if (sc->n_lv == sc->cap_lv) {
                sc->cap_lv = sc->cap_lv ? sc->cap_lv * 2 : 32;
                sc->lv = xrealloc(sc->lv, sc->cap_lv * sizeof *sc->lv);
            }
            if (pb_label(sub, &sc->lv[sc->n_lv++]) < 0)
                return -1;
        } else if (f == 2) {
            if (sc->n_sv == sc->cap_sv) {
                sc->cap_sv = sc->cap_sv ? sc->cap_sv * 2 : 32;
                sc->sv = xrealloc(sc->sv, sc->cap_sv * sizeof *sc->sv);
            }
            if (pb_sample(sub, &sc->sv[sc->n_sv++]) < 0)
                return -1;
        } else if (f == 3) {
            if (pb_exemplar(sub) < 0)
                return -1;
            sc->exemplars++;
        } else {
            sc->histograms++;
        }
    }
    return k;
}

/* prometheus.MetricMetadata {type = 1, metric_family_name = 2, help = 4, unit = 5}; the strings
 * are copied into the arena NUL-terminated, as protobuf-c's were (metadata is rare). */
static int pb_metadata(pbr r, tsdb_arena *a, ingest_metadata *md)
{
    uint64_t type = 0;
    tsdb_str name = {"", 0}, help = {"", 0}, unit = {"", 0};
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        if (f == 1) {
            if (wt != WT_VARINT || pb_varint(&r, &type) < 0)
                return -1;
        } else if (f == 2 || f == 4 || f == 5) {
            if (wt != WT_LEN || pb_str(&r, f == 2 ? &name : f == 4 ? &help : &unit) < 0)
                return -1;
        } else if (pb_skip(&r, wt) < 0) {
            return -1;
        }
    }
    if (k < 0)
        return -1;
    md->metric = tsdb_arena_str(a, name);
    md->type = type_name(type < 8 ? (int)type : 0);
    md->help = tsdb_arena_str(a, help);
    md->unit = tsdb_arena_str(a, unit);
    return 0;
}

/* Charges n bytes against the decode budget; 0 when they fit. */
static int charge(ingest__pb_arena *pa, size_t n)
{
    if (n > pa->budget - pa->used) {
        pa->over = 1;
        return -1;
    }
    pa->used += n;
    return 0;
}

static int malformed_v1(tsdb_err *err)
{
    return tsdb_errf(err, TSDB_EINVAL, -1, "protobuf: malformed prometheus.WriteRequest");
}

static int too_large(tsdb_err *err)
{
    return tsdb_errf(err, TSDB_ELIMIT, -1, "write request too large to decode");
}

/* prometheus.WriteRequest {timeseries = 1, metadata = 3}. A first pass counts the series and
 * metadata (and checks the top-level framing) so their arrays are allocated once. */
static int decode_v1(tsdb_arena *a, ingest__pb_arena *pa, const uint8_t *buf, size_t len,
                     const ingest_limits *lim, ingest_write *out, tsdb_err *err)
{
    pbr top = {buf, buf + len}, r = top;
    size_t n_ts = 0, n_md = 0;
    uint32_t f;
    unsigned wt;
    int k;
    while ((k = pb_key(&r, &f, &wt)) > 0) {
        if (f == 1 || f == 3) {
            pbr sub;
            if (wt != WT_LEN || pb_len(&r, &sub) < 0)
                return malformed_v1(err);
            if (f == 1)
                n_ts++;
            else
                n_md++;
        } else if (pb_skip(&r, wt) < 0) {
            return malformed_v1(err);
        }
    }
    if (k < 0)
        return malformed_v1(err);
    if (lim && lim->max_series && n_ts > lim->max_series)
        return tsdb_errf(err, TSDB_ELIMIT, -1, "%zu series in one request, more than the limit %zu",
                         n_ts, lim->max_series);
    if (charge(pa, (n_ts + 1) * sizeof(tsdb_batch_series) + (n_md + 1) * sizeof(ingest_metadata)))
        return too_large(err);
    tsdb_batch_series *bs = tsdb_arena_alloc(a, (n_ts + 1) * sizeof *bs);
    ingest_metadata *md = tsdb_arena_calloc(a, n_md + 1, sizeof *md);
    size_t n_samples = 0, n_hist = 0, n_ex = 0, n_kept = 0, i_ts = 0, i_md = 0;
    ts_scratch sc;
    memset(&sc, 0, sizeof sc);
    int rc = TSDB_OK;
    r = top;
    while (rc == TSDB_OK && pb_key(&r, &f, &wt) > 0) {
        if (f != 1 && f != 3) {
            pb_skip(&r, wt);
            continue;
        }
        pbr sub;
        pb_len(&r, &sub);
        if (f == 3) {
            if (pb_metadata(sub, a, &md[i_md++]) < 0)
                rc = malformed_v1(err);
            continue;
        }
        size_t i = i_ts++;
        if (pb_ts(sub, &sc) < 0) {
            rc = malformed_v1(err);
            break;
        }
        n_hist += sc.histograms;
        n_ex += sc.exemplars;
        if (charge(pa, (sc.n_lv + 1) * sizeof(tsdb_label) + (sc.n_sv + 1) * sizeof(tsdb_sample))) {
            rc = too_large(err);
            break;
        }
        tsdb_label *lv = tsdb_arena_alloc(a, (sc.n_lv + 1) * sizeof *lv);
        if (sc.n_lv)
            memcpy(lv, sc.lv, sc.n_lv * sizeof *lv);
        size_t nl = sc.n_lv;
        if (!keep_series(lv, &nl, lim, i, sc.n_sv, a, out))
            continue;
        /* A sample older than one before it in the same request is dropped silently, as
         * Prometheus' receiver does; equal timestamps are left to the storage rules. */
        tsdb_sample *sv = tsdb_arena_alloc(a, (sc.n_sv + 1) * sizeof *sv);
        size_t ns = 0;
        for (size_t j = 0; j < sc.n_sv; j++) {
            if (ns > 0 && sc.sv[j].t < sv[ns - 1].t)
                continue;
            sv[ns++] = sc.sv[j];
        }
        bs[n_kept].labels = (tsdb_labels){lv, nl};
        bs[n_kept].samples = sv;
        bs[n_kept].n_samples = ns;
        n_kept++;
        n_samples += ns;
    }
    free(sc.lv);
    free(sc.sv);
    if (rc)
        return rc;
    out->batch.series = bs;
    out->batch.n_series = n_kept;
    out->meta = md;
    out->n_meta = n_md;
    out->n_samples = n_samples;
    out->n_histograms = n_hist;
    out->n_exemplars = n_ex;
    return TSDB_OK;
}

/* ---- 2.0 ----------------------------------------------------------------------------------- */

static int decode_v2(tsdb_arena *a, ProtobufCAllocator *al, ingest__pb_arena *pa,
                     const uint8_t *buf, size_t len, const ingest_limits *lim, ingest_write *out,
                     tsdb_err *err)
{
    Io__Prometheus__Write__V2__Request *req =
        io__prometheus__write__v2__request__unpack(al, len, buf);
    if (!req) {
        if (pa->over)
            return tsdb_errf(err, TSDB_ELIMIT, -1, "write request too large to decode");
        return tsdb_errf(err, TSDB_EINVAL, -1,
                         "protobuf: malformed io.prometheus.write.v2.Request");
    }
    if (lim && lim->max_series && req->n_timeseries > lim->max_series)
        return tsdb_errf(err, TSDB_ELIMIT, -1, "%zu series in one request, more than the limit %zu",
                         req->n_timeseries, lim->max_series);
    size_t nsym = req->n_symbols;
    tsdb_str *sym = tsdb_arena_alloc(a, (nsym + 1) * sizeof *sym);
    for (size_t i = 0; i < nsym; i++)
        sym[i] = cstr(req->symbols[i]);

    tsdb_batch_series *bs = tsdb_arena_calloc(a, req->n_timeseries + 1, sizeof *bs);
    ingest_metadata *md = tsdb_arena_calloc(a, req->n_timeseries + 1, sizeof *md);
    size_t n_md = 0, n_samples = 0, n_hist = 0, n_ex = 0, n_kept = 0;
    for (size_t i = 0; i < req->n_timeseries; i++) {
        const Io__Prometheus__Write__V2__TimeSeries *ts = req->timeseries[i];
        if (ts->n_labels_refs % 2 != 0)
            return tsdb_errf(err, TSDB_EINVAL, -1, "series %zu: odd number of label references", i);
        size_t nl = ts->n_labels_refs / 2;
        tsdb_label *lv = tsdb_arena_alloc(a, (nl + 1) * sizeof *lv);
        for (size_t k = 0; k < nl; k++) {
            uint32_t rn = ts->labels_refs[2 * k], rv = ts->labels_refs[2 * k + 1];
            if (rn >= nsym || rv >= nsym)
                return tsdb_errf(err, TSDB_EINVAL, -1,
                                 "series %zu: label reference out of range of %zu symbols", i,
                                 nsym);
            lv[k].name = sym[rn];
            lv[k].value = sym[rv];
        }
        if (!keep_series(lv, &nl, lim, i, ts->n_samples, a, out))
            continue;
        tsdb_sample *sv = tsdb_arena_alloc(a, (ts->n_samples + 1) * sizeof *sv);
        size_t ns = 0;
        for (size_t k = 0; k < ts->n_samples; k++) {
            /* A sample older than one before it in the same request is dropped silently, as
             * Prometheus' receiver does; equal timestamps are left to the storage rules. */
            if (ns > 0 && ts->samples[k]->timestamp < sv[ns - 1].t)
                continue;
            sv[ns].t = ts->samples[k]->timestamp;
            sv[ns].v = ts->samples[k]->value;
            ns++;
        }
        bs[n_kept].labels = (tsdb_labels){lv, nl};
        bs[n_kept].samples = sv;
        bs[n_kept].n_samples = ns;
        n_kept++;
        n_samples += ns;
        n_hist += ts->n_histograms;
        n_ex += ts->n_exemplars;
        const Io__Prometheus__Write__V2__Metadata *m = ts->metadata;
        if (m && (m->type != 0 || m->help_ref != 0 || m->unit_ref != 0)) {
            if (m->help_ref >= nsym || m->unit_ref >= nsym)
                return tsdb_errf(err, TSDB_EINVAL, -1,
                                 "series %zu: metadata reference out of range", i);
            md[n_md].metric = tsdb_labels_get(bs[n_kept - 1].labels, TSDB_STR("__name__"));
            md[n_md].type = type_name((int)m->type);
            md[n_md].help = sym[m->help_ref];
            md[n_md].unit = sym[m->unit_ref];
            n_md++;
        }
    }
    out->batch.series = bs;
    out->batch.n_series = n_kept;
    out->meta = md;
    out->n_meta = n_md;
    out->n_samples = n_samples;
    out->n_histograms = n_hist;
    out->n_exemplars = n_ex;
    return TSDB_OK;
}

int ingest_rw_decode(tsdb_arena *a, enum ingest_rw_version ver, const void *body, size_t len,
                     const ingest_limits *lim, ingest_write *out, tsdb_err *err)
{
    size_t max = lim_or(lim ? lim->max_body : 0, RW_DEFAULT_MAX_BODY);
    uint8_t *buf = NULL;
    size_t ulen = 0;
    int rc = ingest__unsnappy(a, body, len, max, &buf, &ulen, err);
    if (rc != TSDB_OK)
        return rc;
    ingest__pb_arena pa = {a, 0, ingest__pb_budget(ulen), 0};
    ProtobufCAllocator al = {ingest__pb_alloc, ingest__pb_free, &pa};
    ingest_write w;
    memset(&w, 0, sizeof w);
    if (ver == INGEST_RW_V2)
        rc = decode_v2(a, &al, &pa, buf, ulen, lim, &w, err);
    else
        rc = decode_v1(a, &pa, buf, ulen, lim, &w, err);
    if (rc == TSDB_OK)
        *out = w;
    return rc;
}

/* ---- Encoding (tools and tests) ------------------------------------------------------------ */

/* protobuf-c wants mutable char* for strings; the packer only reads them. */
static char *arena_cstr(tsdb_arena *a, tsdb_str s)
{
    return tsdb_arena_strndup(a, s.p ? s.p : "", s.len);
}

int ingest_rw_encode(const tsdb_batch *b, tsdb_arena *a, tsdb_str *out)
{
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
    req.n_timeseries = b->n_series;
    req.timeseries = tsdb_arena_alloc(a, (b->n_series + 1) * sizeof *req.timeseries);
    for (size_t i = 0; i < b->n_series; i++) {
        const tsdb_batch_series *s = &b->series[i];
        Prometheus__TimeSeries *ts = tsdb_arena_alloc(a, sizeof *ts);
        prometheus__time_series__init(ts);
        ts->n_labels = s->labels.n;
        ts->labels = tsdb_arena_alloc(a, (s->labels.n + 1) * sizeof *ts->labels);
        for (size_t k = 0; k < s->labels.n; k++) {
            Prometheus__Label *l = tsdb_arena_alloc(a, sizeof *l);
            prometheus__label__init(l);
            l->name = arena_cstr(a, s->labels.v[k].name);
            l->value = arena_cstr(a, s->labels.v[k].value);
            ts->labels[k] = l;
        }
        ts->n_samples = s->n_samples;
        ts->samples = tsdb_arena_alloc(a, (s->n_samples + 1) * sizeof *ts->samples);
        for (size_t k = 0; k < s->n_samples; k++) {
            Prometheus__Sample *sm = tsdb_arena_alloc(a, sizeof *sm);
            prometheus__sample__init(sm);
            sm->timestamp = s->samples[k].t;
            sm->value = s->samples[k].v;
            ts->samples[k] = sm;
        }
        req.timeseries[i] = ts;
    }
    size_t n = prometheus__write_request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(a, n + 1);
    prometheus__write_request__pack(&req, raw);
    return ingest__snappy(a, raw, n, out);
}

/* Symbol table for 2.0: linear-probing map from string to index, in the arena. */
typedef struct symtab {
    tsdb_str *v;
    size_t n, cap;
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t n_slot;
} symtab;

static uint32_t sym_ref(symtab *t, tsdb_arena *a, tsdb_str s)
{
    uint64_t h = tsdb_hash(s.p ? s.p : "", s.len);
    for (size_t i = h & (t->n_slot - 1);; i = (i + 1) & (t->n_slot - 1)) {
        if (t->slot[i] == 0) {
            if (t->n == t->cap) {
                size_t ncap = t->cap * 2;
                t->v = tsdb_arena_realloc(a, t->v, t->cap * sizeof *t->v, ncap * sizeof *t->v);
                t->cap = ncap;
            }
            t->v[t->n] = s;
            t->slot[i] = (uint32_t)++t->n;
            return (uint32_t)(t->n - 1);
        }
        if (tsdb_str_eq(t->v[t->slot[i] - 1], s))
            return t->slot[i] - 1;
    }
}

int ingest_rw_encode_v2(const tsdb_batch *b, tsdb_arena *a, tsdb_str *out)
{
    size_t max_syms = 1;
    for (size_t i = 0; i < b->n_series; i++)
        max_syms += 2 * b->series[i].labels.n;
    symtab st = {0};
    st.cap = 16;
    st.v = tsdb_arena_alloc(a, st.cap * sizeof *st.v);
    st.n_slot = 16;
    while (st.n_slot < max_syms * 2)
        st.n_slot <<= 1;
    st.slot = tsdb_arena_calloc(a, st.n_slot, sizeof *st.slot);
    sym_ref(&st, a, (tsdb_str){"", 0});

    Io__Prometheus__Write__V2__Request req = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    req.n_timeseries = b->n_series;
    req.timeseries = tsdb_arena_alloc(a, (b->n_series + 1) * sizeof *req.timeseries);
    for (size_t i = 0; i < b->n_series; i++) {
        const tsdb_batch_series *s = &b->series[i];
        Io__Prometheus__Write__V2__TimeSeries *ts = tsdb_arena_alloc(a, sizeof *ts);
        io__prometheus__write__v2__time_series__init(ts);
        ts->n_labels_refs = 2 * s->labels.n;
        ts->labels_refs = tsdb_arena_alloc(a, (2 * s->labels.n + 1) * sizeof(uint32_t));
        for (size_t k = 0; k < s->labels.n; k++) {
            ts->labels_refs[2 * k] = sym_ref(&st, a, s->labels.v[k].name);
            ts->labels_refs[2 * k + 1] = sym_ref(&st, a, s->labels.v[k].value);
        }
        ts->n_samples = s->n_samples;
        ts->samples = tsdb_arena_alloc(a, (s->n_samples + 1) * sizeof *ts->samples);
        for (size_t k = 0; k < s->n_samples; k++) {
            Io__Prometheus__Write__V2__Sample *sm = tsdb_arena_alloc(a, sizeof *sm);
            io__prometheus__write__v2__sample__init(sm);
            sm->timestamp = s->samples[k].t;
            sm->value = s->samples[k].v;
            ts->samples[k] = sm;
        }
        req.timeseries[i] = ts;
    }
    req.n_symbols = st.n;
    req.symbols = tsdb_arena_alloc(a, (st.n + 1) * sizeof *req.symbols);
    for (size_t i = 0; i < st.n; i++)
        req.symbols[i] = arena_cstr(a, st.v[i]);
    size_t n = io__prometheus__write__v2__request__get_packed_size(&req);
    uint8_t *raw = tsdb_arena_alloc(a, n + 1);
    io__prometheus__write__v2__request__pack(&req, raw);
    return ingest__snappy(a, raw, n, out);
}
