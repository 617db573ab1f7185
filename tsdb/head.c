/* tsdb/head.c -- the in-memory head: series found by label hash or id, each with closed
 * Gorilla chunks and one open chunk.
 *
 * Series. A series is created by the writer once the index has given it an id. Its labels are
 * kept in a compact form (uvarint length + bytes for every name and value) because the querier
 * reads labels from the index; the head only needs them to resolve hash collisions and to write
 * SERIES records into checkpoints.
 *
 * Out of order. With an out-of-order window, samples older than a series' last one go to a
 * small sorted array beside the chunks; readers get them encoded as extra chunks (split at
 * block boundaries), which may overlap the in-order ones. Readers and the block writer merge
 * overlapping chunks, keeping the in-order sample when both hold a timestamp.
 *
 * Chunks. Samples go to the open chunk, which is closed after TSDB_CHUNK_SAMPLES_MAX samples or
 * when a sample reaches the next block boundary (a multiple of block_ms). So no chunk ever spans
 * two blocks, and cutting the head into a block moves whole chunks without re-encoding. A closed
 * chunk's bytes go to the head chunk files (tsdb/hchunks.h: page cache, not heap) and the series
 * keeps a 32-byte reference; without files, or when they refuse it (write error, full disk), the
 * bytes go to an exact-size heap copy instead, so nothing is lost. The open chunk's buffer is
 * reset in place, keeping a capacity that suits the series' chunks. Readers copy closed chunks
 * from the files under the stripe lock, and truncation releases file chunks under the same lock,
 * so a segment the files delete (all its chunks released) is never being read.
 *
 * Maps. Two open-addressing tables of 8-byte slots (label hash -> series, several series per hash
 * allowed; id -> series), each slot a tagged series pointer. Only the writer (append lock held)
 * mutates them, under the map write lock; readers take the read lock. The writer reads them without
 * locking, since nobody else changes them.
 *
 * Locks. A series' chunk fields are guarded by one of TSDB__HEAD_STRIPES mutexes chosen by id, so
 * a series costs no lock memory. Order: map lock -> stripe lock. The tombstone list has its own
 * mutex, taken alone.
 */
#include "tsdb/head.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tsdb__head {
    int64_t block_ms;             /* immutable */
    pthread_rwlock_t map_lock;    /* guards the two maps against readers */
    struct hmap *by_hash, *by_id; /* see "Maps" */
    pthread_mutex_t stripes[TSDB__HEAD_STRIPES];
    _Atomic uint64_t n_series, n_samples, n_chunks;
    _Atomic int64_t mint, maxt;
    _Atomic int64_t chunk_floor; /* see tsdb__head_set_chunk_floor */
    tsdb__hchunks *files;        /* NULL: closed chunks stay in the heap */
    pthread_mutex_t tomb_lock;
    int64_t *tombs; /* triples (id, mint, maxt) sorted by id, then mint */
    size_t n_tombs, cap_tombs;
};

/* ---- Open-addressing u64 -> series map (linear probing, backward-shift deletion) ------------ */

/* A slot is a series pointer (malloc-aligned, so its low 3 bits are zero) with 3 bits of the
 * key's hash in those bits: 8 bytes a slot, and 7 in 8 non-matching slots are passed over
 * without reading their series. The key itself is read from the series (its id or label hash). */
_Static_assert(_Alignof(max_align_t) >= 8, "series pointers need 3 free low bits");
#define HM_TAG ((uintptr_t)7)

struct hmap {
    uintptr_t *e; /* 0 = empty */
    size_t cap;   /* power of two */
    size_t n;
    int by_id; /* key: 1 = the series' id, 0 = its label hash */
};

static uint64_t hm_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static size_t hm_slot(const struct hmap *m, uint64_t k)
{
    return (size_t)hm_mix(k) & (m->cap - 1);
}

static uintptr_t hm_tag(uint64_t k)
{
    return (uintptr_t)(hm_mix(k) >> 61);
}

static tsdb__hseries *hm_val(uintptr_t e)
{
    return (tsdb__hseries *)(e & ~HM_TAG);
}

static uint64_t hm_key(const struct hmap *m, const tsdb__hseries *s)
{
    return m->by_id ? s->id : s->hash;
}

static struct hmap *hm_new(size_t cap, int by_id)
{
    struct hmap *m = xcalloc(1, sizeof(*m));
    m->cap = cap;
    m->by_id = by_id;
    m->e = xcalloc(cap, sizeof(*m->e));
    return m;
}

static void hm_free(struct hmap *m)
{
    if (!m)
        return;
    free(m->e);
    free(m);
}

static void hm_insert_raw(struct hmap *m, uint64_t k, tsdb__hseries *v)
{
    size_t i = hm_slot(m, k);
    while (m->e[i])
        i = (i + 1) & (m->cap - 1);
    m->e[i] = (uintptr_t)v | hm_tag(k);
    m->n++;
}

/* Builds a bigger table aside, so the caller can swap it in under the write lock. */
static struct hmap *hm_grown(const struct hmap *m)
{
    struct hmap *g = hm_new(m->cap * 2, m->by_id);
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i])
            hm_insert_raw(g, hm_key(m, hm_val(m->e[i])), hm_val(m->e[i]));
    return g;
}

/* Iteration over the entries with key k: start with *pos = SIZE_MAX. */
static tsdb__hseries *hm_next(const struct hmap *m, uint64_t k, size_t *pos)
{
    size_t i = *pos == SIZE_MAX ? hm_slot(m, k) : ((*pos + 1) & (m->cap - 1));
    uintptr_t tag = hm_tag(k);
    while (m->e[i]) {
        if ((m->e[i] & HM_TAG) == tag && hm_key(m, hm_val(m->e[i])) == k) {
            *pos = i;
            return hm_val(m->e[i]);
        }
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

static void hm_delete(struct hmap *m, uint64_t k, const tsdb__hseries *v)
{
    size_t i = hm_slot(m, k);
    while (m->e[i] && hm_val(m->e[i]) != v)
        i = (i + 1) & (m->cap - 1);
    if (!m->e[i])
        return;
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->e[j])
            break;
        size_t home = hm_slot(m, hm_key(m, hm_val(m->e[j])));
        int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            m->e[hole] = m->e[j];
            hole = j;
        }
    }
    m->e[hole] = 0;
    m->n--;
}

/* ---- Compact labels ------------------------------------------------------------------------- */

static size_t uv_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static unsigned char *uv_put(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Reads a uvarint from trusted memory (written by uv_put). */
static const unsigned char *uv_get(const unsigned char *p, size_t *v)
{
    size_t r = 0;
    int shift = 0;
    while (*p & 0x80) {
        r |= (size_t)(*p++ & 0x7f) << shift;
        shift += 7;
    }
    *v = r | (size_t)*p++ << shift;
    return p;
}

static int lbl_equal(const tsdb__hseries *s, tsdb_labels l)
{
    if (s->n_labels != l.n)
        return 0;
    const unsigned char *p = s->lbl;
    for (size_t i = 0; i < l.n; i++) {
        size_t n;
        p = uv_get(p, &n);
        if (n != l.v[i].name.len || memcmp(p, l.v[i].name.p, n) != 0)
            return 0;
        p += n;
        p = uv_get(p, &n);
        if (n != l.v[i].value.len || memcmp(p, l.v[i].value.p, n) != 0)
            return 0;
        p += n;
    }
    return 1;
}

tsdb_labels tsdb__hseries_labels(const tsdb__hseries *s, tsdb_arena *a)
{
    tsdb_label *v = tsdb_arena_alloc(a, (s->n_labels ? s->n_labels : 1) * sizeof(*v));
    char *dst = tsdb_arena_alloc(a, s->lbl_len + 1);
    memcpy(dst, s->lbl, s->lbl_len);
    const unsigned char *p = (const unsigned char *)dst;
    for (size_t i = 0; i < s->n_labels; i++) {
        size_t n;
        p = uv_get(p, &n);
        v[i].name = (tsdb_str){(const char *)p, n};
        p += n;
        p = uv_get(p, &n);
        v[i].value = (tsdb_str){(const char *)p, n};
        p += n;
    }
    return (tsdb_labels){v, s->n_labels};
}

/* ---- Life cycle ------------------------------------------------------------------------------ */

tsdb__head *tsdb__head_new(int64_t block_ms)
{
    tsdb__head *h = xcalloc(1, sizeof(*h));
    h->block_ms = block_ms > 0 ? block_ms : 2 * 3600 * 1000;
    pthread_rwlock_init(&h->map_lock, NULL);
    pthread_mutex_init(&h->tomb_lock, NULL);
    for (size_t i = 0; i < TSDB__HEAD_STRIPES; i++)
        pthread_mutex_init(&h->stripes[i], NULL);
    h->by_hash = hm_new(1024, 0);
    h->by_id = hm_new(1024, 1);
    atomic_store(&h->mint, INT64_MAX);
    atomic_store(&h->maxt, INT64_MIN);
    atomic_store(&h->chunk_floor, INT64_MIN);
    return h;
}

/* ---- Closed chunk bytes ---------------------------------------------------------------------- */

/* Stores the bytes of a closed chunk: in the chunk files when they take it, else in the heap. */
static void chunk_store(tsdb__head *h, tsdb__hchunk *c, const unsigned char *p, size_t len)
{
    c->len = len & TSDB__HCHUNK_MAX_LEN; /* callers keep len within the limit */
    if (h->files) {
        tsdb_err e;
        if (tsdb__hchunks_append(h->files, p, len, &c->at.ref, &e) == TSDB_OK) {
            c->in_file = 1;
            return;
        }
    }
    c->in_file = 0;
    c->at.p = xmalloc(len);
    memcpy(c->at.p, p, len);
}

_Static_assert(sizeof(tsdb__hchunk) == 24, "a closed chunk reference is 24 bytes");
_Static_assert(TSDB_CHUNK_SAMPLES_MAX <= TSDB__HCHUNK_MAX_N, "closed chunks count their samples");

static int64_t chunk_maxt(const tsdb__hchunk *c)
{
    return (int64_t)((uint64_t)c->mint + c->span);
}

/* Copies a closed chunk's bytes (stripe lock held). */
static void chunk_read(tsdb__head *h, const tsdb__hchunk *c, unsigned char *dst)
{
    if (c->in_file)
        tsdb__hchunks_read(h->files, c->at.ref, c->len, dst);
    else
        memcpy(dst, c->at.p, c->len);
}

/* Drops a closed chunk's bytes (stripe lock held, or the series unreachable). */
static void chunk_drop(tsdb__head *h, tsdb__hchunk *c)
{
    if (c->in_file)
        tsdb__hchunks_release(h->files, c->at.ref);
    else
        free(c->at.p);
}

/* Room for one more closed chunk: grows by half (from 2), not doubling, since most series keep
 * only a few chunks between cuts. */
static tsdb__hchunk *chunk_push(tsdb__hseries *s)
{
    if (s->n_chunks == s->cap_chunks) {
        s->cap_chunks = s->cap_chunks < 2 ? 2 : s->cap_chunks + s->cap_chunks / 2;
        s->chunks = xrealloc(s->chunks, s->cap_chunks * sizeof(*s->chunks));
    }
    return &s->chunks[s->n_chunks++];
}

void tsdb__head_set_files(tsdb__head *h, tsdb__hchunks *files)
{
    tsdb__hchunks_close(h->files);
    h->files = files;
}

static void series_free(tsdb__head *h, tsdb__hseries *s)
{
    for (uint32_t i = 0; i < s->n_chunks; i++)
        chunk_drop(h, &s->chunks[i]);
    free(s->chunks);
    tsdb_chunk_app_fini(&s->app);
    free(s->ooo);
    free(s);
}

void tsdb__head_free(tsdb__head *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->by_id->cap; i++)
        if (h->by_id->e[i])
            series_free(h, hm_val(h->by_id->e[i]));
    tsdb__hchunks_close(h->files);
    hm_free(h->by_hash);
    hm_free(h->by_id);
    for (size_t i = 0; i < TSDB__HEAD_STRIPES; i++)
        pthread_mutex_destroy(&h->stripes[i]);
    pthread_rwlock_destroy(&h->map_lock);
    pthread_mutex_destroy(&h->tomb_lock);
    free(h->tombs);
    free(h);
}

static pthread_mutex_t *stripe(tsdb__head *h, uint64_t id)
{
    return &h->stripes[id & (TSDB__HEAD_STRIPES - 1)];
}

/* ---- Writer ---------------------------------------------------------------------------------- */

tsdb__hseries *tsdb__head_get(tsdb__head *h, uint64_t hash, tsdb_labels l)
{
    size_t pos = SIZE_MAX;
    tsdb__hseries *s;
    while ((s = hm_next(h->by_hash, hash, &pos)) != NULL)
        if (lbl_equal(s, l))
            return s;
    return NULL;
}

void tsdb__head_prefetch(tsdb__head *h, uint64_t hash)
{
    const struct hmap *m = h->by_hash;
    __builtin_prefetch(&m->e[hm_slot(m, hash)]);
}

void tsdb__head_prefetch_id(tsdb__head *h, uint64_t id)
{
    const struct hmap *m = h->by_id;
    __builtin_prefetch(&m->e[hm_slot(m, id)]);
}

tsdb__hseries *tsdb__head_get_id(tsdb__head *h, uint64_t id)
{
    size_t pos = SIZE_MAX;
    return hm_next(h->by_id, id, &pos);
}

static void map_put(tsdb__head *h, struct hmap **mp, uint64_t k, tsdb__hseries *v)
{
    struct hmap *m = *mp;
    if ((m->n + 1) * 10 > m->cap * 7) {
        struct hmap *g = hm_grown(m);
        pthread_rwlock_wrlock(&h->map_lock);
        *mp = g;
        hm_insert_raw(g, k, v);
        pthread_rwlock_unlock(&h->map_lock);
        hm_free(m);
        return;
    }
    pthread_rwlock_wrlock(&h->map_lock);
    hm_insert_raw(m, k, v);
    pthread_rwlock_unlock(&h->map_lock);
}

tsdb__hseries *tsdb__head_create(tsdb__head *h, uint64_t id, uint64_t hash, tsdb_labels l)
{
    size_t len = 0;
    for (size_t i = 0; i < l.n; i++)
        len +=
            uv_len(l.v[i].name.len) + l.v[i].name.len + uv_len(l.v[i].value.len) + l.v[i].value.len;
    tsdb__hseries *s = xcalloc(1, offsetof(tsdb__hseries, lbl) + len);
    s->id = id;
    s->hash = hash;
    unsigned char *p = s->lbl;
    for (size_t i = 0; i < l.n; i++) {
        p = uv_put(p, l.v[i].name.len);
        memcpy(p, l.v[i].name.p, l.v[i].name.len);
        p += l.v[i].name.len;
        p = uv_put(p, l.v[i].value.len);
        memcpy(p, l.v[i].value.p, l.v[i].value.len);
        p += l.v[i].value.len;
    }
    s->lbl_len = (uint32_t)len;
    s->n_labels = (uint16_t)l.n;
    s->last_t = INT64_MIN;
    tsdb_chunk_app_init(&s->app);
    map_put(h, &h->by_hash, hash, s);
    map_put(h, &h->by_id, id, s);
    atomic_fetch_add(&h->n_series, 1);
    return s;
}

int tsdb__head_check(tsdb__head *h, tsdb__hseries *s, int64_t t, double v, int64_t min_valid)
{
    (void)h;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    if (t < min_valid)
        return TSDB_ETOO_OLD;
    if (s->last_t != INT64_MIN) {
        if (t == s->last_t)
            return bits == s->last_bits ? 0 : TSDB_EDUP;
        if (t < s->last_t)
            return TSDB_EOOO;
    }
    s->last_t = t;
    s->last_bits = bits;
    return 1;
}

/* Index of the first out-of-order sample with t >= t0. */
static uint32_t n_ooo(const tsdb__hseries *s)
{
    return s->ooo ? s->ooo->n : 0;
}

static uint32_t ooo_lower_bound(const tsdb__hseries *s, int64_t t0)
{
    uint32_t lo = 0, hi = n_ooo(s);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->ooo->v[mid].t < t0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int tsdb__head_check_ooo(tsdb__head *h, tsdb__hseries *s, int64_t t, double v, int64_t ooo_min)
{
    (void)h;
    if (t < ooo_min)
        return TSDB_EOOO;
    uint32_t i = ooo_lower_bound(s, t);
    if (i < n_ooo(s) && s->ooo->v[i].t == t) {
        uint64_t a, b;
        memcpy(&a, &v, 8);
        memcpy(&b, &s->ooo->v[i].v, 8);
        return a == b ? 0 : TSDB_EDUP;
    }
    return n_ooo(s) >= TSDB__HEAD_OOO_MAX ? TSDB_EOOO : 2;
}

void tsdb__head_apply_ooo(tsdb__head *h, tsdb__hseries *s, int64_t t, double v)
{
    pthread_mutex_t *mu = &h->stripes[s->id & (TSDB__HEAD_STRIPES - 1)];
    pthread_mutex_lock(mu);
    uint32_t i = ooo_lower_bound(s, t);
    int added = 0;
    uint32_t n = n_ooo(s);
    if (!(i < n && s->ooo->v[i].t == t)) {
        if (!s->ooo || n == s->ooo->cap) {
            uint32_t cap = s->ooo ? s->ooo->cap * 2 : 8;
            s->ooo = xrealloc(s->ooo, sizeof(*s->ooo) + cap * sizeof(tsdb_sample));
            s->ooo->n = n;
            s->ooo->cap = cap;
        }
        memmove(&s->ooo->v[i + 1], &s->ooo->v[i], (n - i) * sizeof(tsdb_sample));
        s->ooo->v[i] = (tsdb_sample){t, v};
        s->ooo->n++;
        added = 1;
    }
    pthread_mutex_unlock(mu);
    if (!added)
        return;
    atomic_fetch_add_explicit(&h->n_samples, 1, memory_order_relaxed);
    int64_t cur = atomic_load_explicit(&h->mint, memory_order_relaxed);
    while (t < cur && !atomic_compare_exchange_weak(&h->mint, &cur, t))
        ;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Closes the open chunk (stripe lock held). */
static void close_chunk(tsdb__head *h, tsdb__hseries *s)
{
    size_t len;
    const unsigned char *b = tsdb_chunk_app_bytes(&s->app, &len);
    tsdb__hchunk *c = chunk_push(s);
    chunk_store(h, c, b, len);
    c->n = s->app.n & TSDB__HCHUNK_MAX_N;
    c->mint = s->app_mint;
    c->span = (uint32_t)((uint64_t)s->app.t - (uint64_t)s->app_mint);
    tsdb_chunk_app_reset(&s->app);
}

void tsdb__head_apply(tsdb__head *h, tsdb__hseries *s, int64_t t, double v)
{
    pthread_mutex_t *mu = stripe(h, s->id);
    pthread_mutex_lock(mu);
    int64_t cf = atomic_load_explicit(&h->chunk_floor, memory_order_relaxed);
    if (s->app.n > 0 &&
        (s->app.n >= TSDB_CHUNK_SAMPLES_MAX || t >= s->app_end || (s->app_mint < cf && t >= cf) ||
         (uint64_t)t - (uint64_t)s->app_mint > UINT32_MAX))
        close_chunk(h, s);
    if (s->app.n == 0) {
        s->app_mint = t;
        s->app_end = (floor_div(t, h->block_ms) + 1) * h->block_ms;
        atomic_fetch_add_explicit(&h->n_chunks, 1, memory_order_relaxed);
    }
    tsdb_chunk_app_add(&s->app, t, v);
    pthread_mutex_unlock(mu);
    atomic_fetch_add_explicit(&h->n_samples, 1, memory_order_relaxed);
    int64_t cur = atomic_load_explicit(&h->maxt, memory_order_relaxed);
    while (t > cur && !atomic_compare_exchange_weak(&h->maxt, &cur, t))
        ;
    cur = atomic_load_explicit(&h->mint, memory_order_relaxed);
    while (t < cur && !atomic_compare_exchange_weak(&h->mint, &cur, t))
        ;
}

/* ---- Readers ----------------------------------------------------------------------------------
 */

/* Copies the overlapping chunks (stripe lock held): closed ones, the open one and the
 * out-of-order samples as chunks, as the parts mask selects. */
static size_t copy_locked(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt, int parts,
                          tsdb_arena *a, tsdb__chunk_ref **out)
{
    int64_t block_ms = h->block_ms;
    size_t n = 0;
    uint32_t n_closed = parts & TSDB__HEAD_CLOSED ? s->n_chunks : 0;
    for (uint32_t i = 0; i < n_closed; i++)
        if (chunk_maxt(&s->chunks[i]) >= mint && s->chunks[i].mint <= maxt)
            n++;
    int app = (parts & TSDB__HEAD_OPEN) && s->app.n > 0 && s->app.t >= mint && s->app_mint <= maxt;
    uint32_t o_lo = 0, o_hi = 0;
    if ((parts & TSDB__HEAD_OOO) && n_ooo(s)) {
        o_lo = o_hi = ooo_lower_bound(s, mint);
        while (o_hi < n_ooo(s) && s->ooo->v[o_hi].t <= maxt)
            o_hi++;
    }
    /* Out-of-order samples become chunks of at most TSDB_CHUNK_SAMPLES_MAX, split at block
     * boundaries: at most one chunk per sample. */
    size_t n_ooo_max = o_hi - o_lo;
    if (n + (size_t)app + n_ooo_max == 0)
        return 0;
    tsdb__chunk_ref *r = tsdb_arena_alloc(a, (n + (size_t)app + n_ooo_max) * sizeof(*r));
    size_t k = 0;
    for (uint32_t i = 0; i < n_closed; i++) {
        const tsdb__hchunk *c = &s->chunks[i];
        if (chunk_maxt(c) < mint || c->mint > maxt)
            continue;
        unsigned char *p = tsdb_arena_alloc(a, c->len);
        chunk_read(h, c, p);
        r[k++] = (tsdb__chunk_ref){c->mint, chunk_maxt(c), p, c->len};
    }
    if (app) {
        size_t len;
        const unsigned char *b = tsdb_chunk_app_bytes(&s->app, &len);
        unsigned char *p = tsdb_arena_alloc(a, len);
        memcpy(p, b, len);
        r[k++] = (tsdb__chunk_ref){s->app_mint, s->app.t, p, len};
    }
    for (uint32_t i = o_lo; i < o_hi;) {
        int64_t end = (floor_div(s->ooo->v[i].t, block_ms) + 1) * block_ms;
        tsdb_chunk_app ca;
        tsdb_chunk_app_init(&ca);
        uint32_t j = i;
        while (j < o_hi && j - i < TSDB_CHUNK_SAMPLES_MAX && s->ooo->v[j].t < end) {
            tsdb_chunk_app_add(&ca, s->ooo->v[j].t, s->ooo->v[j].v);
            j++;
        }
        size_t len;
        const unsigned char *b = tsdb_chunk_app_bytes(&ca, &len);
        unsigned char *p = tsdb_arena_alloc(a, len);
        memcpy(p, b, len);
        tsdb_chunk_app_fini(&ca);
        r[k++] = (tsdb__chunk_ref){s->ooo->v[i].t, s->ooo->v[j - 1].t, p, len};
        i = j;
    }
    *out = r;
    return k;
}

size_t tsdb__head_copy(tsdb__head *h, uint64_t id, int64_t mint, int64_t maxt, tsdb_arena *a,
                       tsdb__chunk_ref **out)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&h->map_lock);
    size_t pos = SIZE_MAX;
    tsdb__hseries *s = hm_next(h->by_id, id, &pos);
    if (s) {
        pthread_mutex_lock(stripe(h, id));
        n = copy_locked(h, s, mint, maxt, TSDB__HEAD_ALL, a, out);
        pthread_mutex_unlock(stripe(h, id));
    }
    pthread_rwlock_unlock(&h->map_lock);
    return n;
}

size_t tsdb__head_copy_series(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt,
                              tsdb_arena *a, tsdb__chunk_ref **out)
{
    return tsdb__head_copy_parts(h, s, mint, maxt, TSDB__HEAD_ALL, a, out);
}

size_t tsdb__head_copy_parts(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt, int parts,
                             tsdb_arena *a, tsdb__chunk_ref **out)
{
    pthread_mutex_lock(stripe(h, s->id));
    size_t n = copy_locked(h, s, mint, maxt, parts, a, out);
    pthread_mutex_unlock(stripe(h, s->id));
    return n;
}

size_t tsdb__head_copy_split(tsdb__head *h, tsdb__hseries *s, int64_t mint, tsdb_arena *a,
                             tsdb__chunk_ref **out, size_t *n_closed)
{
    pthread_mutex_lock(stripe(h, s->id));
    size_t c = 0;
    for (uint32_t i = 0; i < s->n_chunks; i++)
        if (chunk_maxt(&s->chunks[i]) >= mint)
            c++;
    size_t n = copy_locked(h, s, mint, INT64_MAX, TSDB__HEAD_ALL, a, out);
    pthread_mutex_unlock(stripe(h, s->id));
    *n_closed = c;
    return n;
}

int tsdb__head_add_chunk(tsdb__head *h, tsdb__hseries *s, int64_t mint, int64_t maxt,
                         const unsigned char *p, size_t len)
{
    if (s->app.n > 0 || (s->last_t != INT64_MIN && mint <= s->last_t))
        return 0;
    tsdb_chunk_it it;
    tsdb_sample x, first = {0, 0}, last = {0, 0};
    uint16_t n = 0;
    int rc = tsdb_chunk_it_init(&it, p, len);
    while (rc == TSDB_OK && (rc = tsdb_chunk_it_next(&it, &x)) > 0) {
        if (n == 0)
            first = x;
        else if (x.t <= last.t)
            return TSDB_ECORRUPT;
        last = x;
        n++;
        rc = TSDB_OK;
    }
    if (rc < 0 || n == 0 || first.t != mint || last.t != maxt || len > TSDB__HCHUNK_MAX_LEN ||
        n > TSDB__HCHUNK_MAX_N || (uint64_t)maxt - (uint64_t)mint > UINT32_MAX)
        return TSDB_ECORRUPT;
    pthread_mutex_t *mu = stripe(h, s->id);
    pthread_mutex_lock(mu);
    tsdb__hchunk *c = chunk_push(s);
    chunk_store(h, c, p, len);
    c->n = n;
    c->mint = mint;
    c->span = (uint32_t)((uint64_t)maxt - (uint64_t)mint);
    pthread_mutex_unlock(mu);
    s->last_t = last.t;
    memcpy(&s->last_bits, &last.v, 8);
    atomic_fetch_add(&h->n_samples, n);
    atomic_fetch_add(&h->n_chunks, 1);
    int64_t cur = atomic_load(&h->maxt);
    while (maxt > cur && !atomic_compare_exchange_weak(&h->maxt, &cur, maxt))
        ;
    cur = atomic_load(&h->mint);
    while (mint < cur && !atomic_compare_exchange_weak(&h->mint, &cur, mint))
        ;
    return 1;
}

static int cmp_series_id(const void *a, const void *b)
{
    uint64_t x = (*(tsdb__hseries *const *)a)->id, y = (*(tsdb__hseries *const *)b)->id;
    return x < y ? -1 : x > y;
}

tsdb__hseries **tsdb__head_list(tsdb__head *h, size_t *n)
{
    pthread_rwlock_rdlock(&h->map_lock);
    struct hmap *m = h->by_id;
    tsdb__hseries **v = xmalloc((m->n ? m->n : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i])
            v[k++] = hm_val(m->e[i]);
    pthread_rwlock_unlock(&h->map_lock);
    qsort(v, k, sizeof(*v), cmp_series_id);
    *n = k;
    return v;
}

/* ---- Truncation -------------------------------------------------------------------------------
 */

void tsdb__head_drop_pages(tsdb__head *h)
{
    if (h->files)
        tsdb__hchunks_drop_pages(h->files);
}

void tsdb__head_set_chunk_floor(tsdb__head *h, int64_t t)
{
    atomic_store(&h->chunk_floor, t);
}

void tsdb__head_truncate_chunks(tsdb__head *h, int64_t t)
{
    size_t n;
    tsdb__hseries **v = tsdb__head_list(h, &n);
    uint64_t dropped = 0, dropped_samples = 0;
    for (size_t i = 0; i < n; i++) {
        tsdb__hseries *s = v[i];
        pthread_mutex_t *mu = stripe(h, s->id);
        pthread_mutex_lock(mu);
        uint32_t k = 0;
        while (k < s->n_chunks && chunk_maxt(&s->chunks[k]) < t) {
            dropped_samples += s->chunks[k].n;
            chunk_drop(h, &s->chunks[k]);
            k++;
        }
        if (k > 0) {
            memmove(s->chunks, s->chunks + k, (s->n_chunks - k) * sizeof(*s->chunks));
            s->n_chunks -= k;
            dropped += k;
            if (s->n_chunks == 0) {
                free(s->chunks);
                s->chunks = NULL;
                s->cap_chunks = 0;
            }
        }
        if (n_ooo(s) > 0) {
            uint32_t d = ooo_lower_bound(s, t);
            if (d == s->ooo->n) {
                free(s->ooo);
                s->ooo = NULL;
            } else if (d > 0) {
                memmove(s->ooo->v, s->ooo->v + d, (s->ooo->n - d) * sizeof(tsdb_sample));
                s->ooo->n -= d;
            }
            dropped_samples += d;
        }
        if (s->n_chunks == 0 && s->app.n > 0 && s->app.t < t) {
            dropped_samples += s->app.n;
            tsdb_chunk_app_fini(&s->app);
            tsdb_chunk_app_init(&s->app);
            dropped++;
        }
        pthread_mutex_unlock(mu);
    }
    free(v);
    atomic_fetch_sub(&h->n_chunks, dropped);
    atomic_fetch_sub(&h->n_samples, dropped_samples);
}

size_t tsdb__head_gc(tsdb__head *h, int64_t t)
{
    return tsdb__head_gc_empty(h, t, NULL, NULL);
}

size_t tsdb__head_gc_empty(tsdb__head *h, int64_t t, uint64_t **empty, size_t *n_empty)
{
    size_t n, removed = 0, ne = 0;
    uint64_t *ev = NULL;
    int64_t mint = INT64_MAX;
    tsdb__hseries **v = tsdb__head_list(h, &n);
    for (size_t i = 0; i < n; i++) {
        tsdb__hseries *s = v[i];
        pthread_mutex_lock(stripe(h, s->id));
        int no_data = s->n_chunks == 0 && s->app.n == 0 && n_ooo(s) == 0;
        if (s->n_chunks > 0 && s->chunks[0].mint < mint)
            mint = s->chunks[0].mint;
        else if (s->n_chunks == 0 && s->app.n > 0 && s->app_mint < mint)
            mint = s->app_mint;
        if (n_ooo(s) > 0 && s->ooo->v[0].t < mint)
            mint = s->ooo->v[0].t;
        pthread_mutex_unlock(stripe(h, s->id));
        if (!no_data || (s->last_t != INT64_MIN && s->last_t >= t))
            continue;
        pthread_rwlock_wrlock(&h->map_lock);
        hm_delete(h->by_hash, s->hash, s);
        hm_delete(h->by_id, s->id, s);
        pthread_rwlock_unlock(&h->map_lock);
        if (empty && s->last_t == INT64_MIN) {
            if (!ev)
                ev = xmalloc(n * sizeof(*ev));
            ev[ne++] = s->id;
        }
        series_free(h, s);
        removed++;
    }
    free(v);
    if (empty) {
        *empty = ev;
        *n_empty = ne;
    }
    atomic_fetch_sub(&h->n_series, removed);
    atomic_store(&h->mint, mint);
    if (mint == INT64_MAX && atomic_load(&h->n_samples) == 0)
        atomic_store(&h->maxt, INT64_MIN);
    return removed;
}

void tsdb__head_stats_get(tsdb__head *h, tsdb__head_stats *st)
{
    st->n_series = atomic_load(&h->n_series);
    st->n_samples = atomic_load(&h->n_samples);
    st->n_chunks = atomic_load(&h->n_chunks);
    st->mint = atomic_load(&h->mint);
    st->maxt = atomic_load(&h->maxt);
    if (st->n_samples == 0) {
        st->mint = INT64_MAX;
        st->maxt = INT64_MIN;
    }
}

/* ---- Tombstones --------------------------------------------------------------------------------
 */

static int cmp_tomb(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if ((uint64_t)x[0] != (uint64_t)y[0])
        return (uint64_t)x[0] < (uint64_t)y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

void tsdb__head_tomb_add(tsdb__head *h, uint64_t id, int64_t mint, int64_t maxt)
{
    pthread_mutex_lock(&h->tomb_lock);
    if (h->n_tombs == h->cap_tombs) {
        h->cap_tombs = h->cap_tombs ? h->cap_tombs * 2 : 16;
        h->tombs = xrealloc(h->tombs, h->cap_tombs * 3 * sizeof(int64_t));
    }
    int64_t *e = &h->tombs[h->n_tombs * 3];
    e[0] = (int64_t)id;
    e[1] = mint;
    e[2] = maxt;
    h->n_tombs++;
    /* Appending keeps the order in the common case; sort only when it broke. */
    if (h->n_tombs > 1 && cmp_tomb(e - 3, e) > 0)
        qsort(h->tombs, h->n_tombs, 3 * sizeof(int64_t), cmp_tomb);
    pthread_mutex_unlock(&h->tomb_lock);
}

size_t tsdb__head_tomb_get(tsdb__head *h, uint64_t id, tsdb_arena *a, int64_t **ranges)
{
    pthread_mutex_lock(&h->tomb_lock);
    size_t lo = 0, hi = h->n_tombs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uint64_t)h->tombs[mid * 3] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < h->n_tombs && (uint64_t)h->tombs[end * 3] == id)
        end++;
    size_t n = end - lo;
    if (n) {
        int64_t *r = tsdb_arena_alloc(a, n * 2 * sizeof(int64_t));
        for (size_t i = 0; i < n; i++) {
            r[2 * i] = h->tombs[(lo + i) * 3 + 1];
            r[2 * i + 1] = h->tombs[(lo + i) * 3 + 2];
        }
        *ranges = r;
    }
    pthread_mutex_unlock(&h->tomb_lock);
    return n;
}

size_t tsdb__head_tomb_all(tsdb__head *h, int64_t **triples)
{
    pthread_mutex_lock(&h->tomb_lock);
    size_t n = h->n_tombs;
    *triples = xmalloc((n ? n : 1) * 3 * sizeof(int64_t));
    if (n)
        memcpy(*triples, h->tombs, n * 3 * sizeof(int64_t));
    pthread_mutex_unlock(&h->tomb_lock);
    return n;
}

void tsdb__head_tomb_truncate(tsdb__head *h, int64_t t)
{
    pthread_mutex_lock(&h->tomb_lock);
    size_t k = 0;
    for (size_t i = 0; i < h->n_tombs; i++) {
        if (h->tombs[i * 3 + 2] < t)
            continue;
        memmove(&h->tombs[k * 3], &h->tombs[i * 3], 3 * sizeof(int64_t));
        k++;
    }
    h->n_tombs = k;
    pthread_mutex_unlock(&h->tomb_lock);
}
