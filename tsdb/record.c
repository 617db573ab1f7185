/* tsdb/record.c -- WAL record codec.
 *
 * A record is the payload the WAL frames into fragments (tsdb/wal.c). Its first byte is the
 * type; the rest is a sequence of entries until the end of the record. Integers are Go-style
 * varints (uvarint: 7 bits per byte, little end first; varint: zig-zag then uvarint).
 *
 *   SERIES (1)      entry: uvarint id · uvarint n_labels · n × (uvarint len · name bytes ·
 *                          uvarint len · value bytes)            labels sorted by name
 *   SAMPLES (2)     uvarint base_id · varint base_t, then
 *                   entry: varint (id - base_id) · varint (t - base_t) · u64le value bits
 *                   base_* are the first entry's id and t (an empty record has no base)
 *   TOMBSTONES (3)  entry: uvarint id · varint mint · varint maxt   (inclusive range)
 *   CHUNKS (4)      entry: uvarint id · varint mint · varint maxt · uvarint len · XOR chunk
 *                   bytes; written only into checkpoints, for the head's closed chunks, so a
 *                   restart does not re-encode them
 *
 * Values are stored as raw IEEE-754 bits, so staleness NaNs come back bit for bit. The decoders
 * are the only code that reads records; they check every length against what is left before
 * allocating, so a hostile record cannot make them allocate more than a few times its size.
 */
#include "tsdb/record.h"

#include <string.h>

/* ---- Encoders ------------------------------------------------------------------------------ */

void tsdb__rec_series_encode(tsdb_buf *b, const tsdb__rec_series *s, size_t n)
{
    tsdb_buf_putc(b, TSDB__REC_SERIES);
    for (size_t i = 0; i < n; i++) {
        tsdb_buf_put_uvarint(b, s[i].id);
        tsdb_buf_put_uvarint(b, s[i].labels.n);
        for (size_t j = 0; j < s[i].labels.n; j++) {
            tsdb_buf_put_str(b, s[i].labels.v[j].name);
            tsdb_buf_put_str(b, s[i].labels.v[j].value);
        }
    }
}

void tsdb__rec_samples_encode(tsdb_buf *b, const tsdb__rec_sample *s, size_t n)
{
    tsdb_buf_putc(b, TSDB__REC_SAMPLES);
    if (n == 0)
        return;
    uint64_t base_id = s[0].id;
    int64_t base_t = s[0].t;
    tsdb_buf_reserve(b, 20 + n * 16);
    tsdb_buf_put_uvarint(b, base_id);
    tsdb_buf_put_varint(b, base_t);
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &s[i].v, 8);
        tsdb_buf_put_varint(b, (int64_t)(s[i].id - base_id));
        tsdb_buf_put_varint(b, (int64_t)((uint64_t)s[i].t - (uint64_t)base_t));
        tsdb_buf_put_u64le(b, bits);
    }
}

void tsdb__rec_tombs_encode(tsdb_buf *b, const tsdb__rec_tomb *s, size_t n)
{
    tsdb_buf_putc(b, TSDB__REC_TOMBSTONES);
    for (size_t i = 0; i < n; i++) {
        tsdb_buf_put_uvarint(b, s[i].id);
        tsdb_buf_put_varint(b, s[i].mint);
        tsdb_buf_put_varint(b, s[i].maxt);
    }
}

void tsdb__rec_chunks_encode(tsdb_buf *b, const tsdb__rec_chunk *s, size_t n)
{
    tsdb_buf_putc(b, TSDB__REC_CHUNKS);
    for (size_t i = 0; i < n; i++) {
        tsdb_buf_put_uvarint(b, s[i].id);
        tsdb_buf_put_varint(b, s[i].mint);
        tsdb_buf_put_varint(b, s[i].maxt);
        tsdb_buf_put_str(b, (tsdb_str){(const char *)s[i].p, s[i].len});
    }
}

/* ---- Decoders ------------------------------------------------------------------------------ */

int tsdb__rec_type(const void *p, size_t len)
{
    if (len < 1)
        return TSDB_ECORRUPT;
    unsigned t = *(const unsigned char *)p;
    if (t < TSDB__REC_SERIES || t > TSDB__REC_CHUNKS)
        return TSDB_ECORRUPT;
    return (int)t;
}

/* Makes room for one more element of size sz in a heap vector. */
static void vec_grow(void **v, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return;
    size_t nc = *cap ? *cap * 2 : 64;
    *v = xrealloc(*v, nc * sz);
    *cap = nc;
}

int tsdb__rec_series_decode(const void *p, size_t len, tsdb_arena *a, tsdb__rec_series **v,
                            size_t *n, size_t *cap)
{
    if (tsdb__rec_type(p, len) != TSDB__REC_SERIES)
        return TSDB_ECORRUPT;
    tsdb_rd r;
    tsdb_rd_init(&r, (const unsigned char *)p + 1, len - 1);
    while (tsdb_rd_left(&r) > 0) {
        uint64_t id = tsdb_rd_uvarint(&r);
        uint64_t nl = tsdb_rd_uvarint(&r);
        /* Each label needs at least two length bytes. */
        if (r.err || nl > TSDB__REC_MAX_LABELS || nl * 2 > tsdb_rd_left(&r))
            return TSDB_ECORRUPT;
        tsdb_label *lv = nl ? tsdb_arena_alloc(a, nl * sizeof(*lv)) : NULL;
        for (size_t i = 0; i < nl; i++) {
            lv[i].name = tsdb_rd_str(&r);
            lv[i].value = tsdb_rd_str(&r);
        }
        if (r.err)
            return TSDB_ECORRUPT;
        vec_grow((void **)v, *n, cap, sizeof(**v));
        (*v)[*n].id = id;
        (*v)[*n].labels.v = lv;
        (*v)[*n].labels.n = nl;
        (*n)++;
    }
    return r.err ? TSDB_ECORRUPT : TSDB_OK;
}

int tsdb__rec_samples_decode(const void *p, size_t len, tsdb__rec_sample **v, size_t *n,
                             size_t *cap)
{
    if (tsdb__rec_type(p, len) != TSDB__REC_SAMPLES)
        return TSDB_ECORRUPT;
    tsdb_rd r;
    tsdb_rd_init(&r, (const unsigned char *)p + 1, len - 1);
    if (tsdb_rd_left(&r) == 0)
        return TSDB_OK;
    uint64_t base_id = tsdb_rd_uvarint(&r);
    int64_t base_t = tsdb_rd_varint(&r);
    if (r.err)
        return TSDB_ECORRUPT;
    /* Every entry is at least 10 bytes: reserve once from what is left. */
    size_t need = *n + tsdb_rd_left(&r) / 10 + 1;
    if (need > *cap) {
        *v = xrealloc(*v, need * sizeof(**v));
        *cap = need;
    }
    while (tsdb_rd_left(&r) > 0) {
        int64_t did = tsdb_rd_varint(&r);
        int64_t dt = tsdb_rd_varint(&r);
        uint64_t bits = tsdb_rd_u64le(&r);
        if (r.err)
            return TSDB_ECORRUPT;
        vec_grow((void **)v, *n, cap, sizeof(**v));
        tsdb__rec_sample *s = &(*v)[*n];
        s->id = base_id + (uint64_t)did;
        s->t = (int64_t)((uint64_t)base_t + (uint64_t)dt);
        memcpy(&s->v, &bits, 8);
        (*n)++;
    }
    return TSDB_OK;
}

int tsdb__rec_tombs_decode(const void *p, size_t len, tsdb__rec_tomb **v, size_t *n, size_t *cap)
{
    if (tsdb__rec_type(p, len) != TSDB__REC_TOMBSTONES)
        return TSDB_ECORRUPT;
    tsdb_rd r;
    tsdb_rd_init(&r, (const unsigned char *)p + 1, len - 1);
    while (tsdb_rd_left(&r) > 0) {
        uint64_t id = tsdb_rd_uvarint(&r);
        int64_t mint = tsdb_rd_varint(&r);
        int64_t maxt = tsdb_rd_varint(&r);
        if (r.err)
            return TSDB_ECORRUPT;
        vec_grow((void **)v, *n, cap, sizeof(**v));
        (*v)[*n] = (tsdb__rec_tomb){id, mint, maxt};
        (*n)++;
    }
    return TSDB_OK;
}

int tsdb__rec_chunks_decode(const void *p, size_t len, tsdb__rec_chunk **v, size_t *n, size_t *cap)
{
    if (tsdb__rec_type(p, len) != TSDB__REC_CHUNKS)
        return TSDB_ECORRUPT;
    tsdb_rd r;
    tsdb_rd_init(&r, (const unsigned char *)p + 1, len - 1);
    while (tsdb_rd_left(&r) > 0) {
        uint64_t id = tsdb_rd_uvarint(&r);
        int64_t mint = tsdb_rd_varint(&r);
        int64_t maxt = tsdb_rd_varint(&r);
        tsdb_str c = tsdb_rd_str(&r);
        if (r.err || mint > maxt)
            return TSDB_ECORRUPT;
        vec_grow((void **)v, *n, cap, sizeof(**v));
        (*v)[*n] = (tsdb__rec_chunk){id, mint, maxt, (const unsigned char *)c.p, c.len};
        (*n)++;
    }
    return TSDB_OK;
}
