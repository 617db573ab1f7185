/* ingest/remote_write.c -- remote-write 1.0 and 2.0 bodies: Snappy + protobuf <-> tsdb batches.
 *
 * The only user of snappy-c.h and protobuf-c in ingest/ (with remote_read.c). Decoding never
 * trusts a declared size:
 *   1. the compressed body must be within the limit (ingest_limits.max_body, 32 MiB default);
 *   2. Snappy's declared uncompressed length must be within the same limit before anything is
 *      allocated for it; the block is then decompressed into the arena (framed Snappy is not
 *      accepted, as the spec requires the block format);
 *   3. protobuf-c unpacks through an allocator that bump-allocates from the arena (nothing is
 *      freed piecemeal) and refuses to hand out more than a budget proportional to the body,
 *      since a 2-byte empty sub-message costs ~50 bytes of structs;
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
    tsdb_err e = {0};
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
    tsdb_err e = {0};
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

/* ---- 1.0 ----------------------------------------------------------------------------------- */

static int decode_v1(tsdb_arena *a, ProtobufCAllocator *al, ingest__pb_arena *pa,
                     const uint8_t *buf, size_t len, const ingest_limits *lim, ingest_write *out,
                     tsdb_err *err)
{
    Prometheus__WriteRequest *req = prometheus__write_request__unpack(al, len, buf);
    if (!req) {
        if (pa->over)
            return tsdb_errf(err, TSDB_ELIMIT, -1, "write request too large to decode");
        return tsdb_errf(err, TSDB_EINVAL, -1, "protobuf: malformed prometheus.WriteRequest");
    }
    if (lim && lim->max_series && req->n_timeseries > lim->max_series)
        return tsdb_errf(err, TSDB_ELIMIT, -1, "%zu series in one request, more than the limit %zu",
                         req->n_timeseries, lim->max_series);
    tsdb_batch_series *bs = tsdb_arena_calloc(a, req->n_timeseries + 1, sizeof *bs);
    size_t n_samples = 0, n_hist = 0, n_ex = 0, n_kept = 0;
    for (size_t i = 0; i < req->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = req->timeseries[i];
        n_hist += ts->n_histograms;
        n_ex += ts->n_exemplars;
        tsdb_label *lv = tsdb_arena_alloc(a, (ts->n_labels + 1) * sizeof *lv);
        size_t nl = ts->n_labels;
        for (size_t k = 0; k < nl; k++) {
            lv[k].name = cstr(ts->labels[k]->name);
            lv[k].value = cstr(ts->labels[k]->value);
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
    }
    ingest_metadata *md = tsdb_arena_calloc(a, req->n_metadata + 1, sizeof *md);
    for (size_t i = 0; i < req->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = req->metadata[i];
        md[i].metric = cstr(m->metric_family_name);
        md[i].type = type_name((int)m->type);
        md[i].help = cstr(m->help);
        md[i].unit = cstr(m->unit);
    }
    out->batch.series = bs;
    out->batch.n_series = n_kept;
    out->meta = md;
    out->n_meta = req->n_metadata;
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
        rc = decode_v1(a, &al, &pa, buf, ulen, lim, &w, err);
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
