/* tsdb/index.c -- the LMDB series index: ids, label sets, postings, names and values.
 *
 * One LMDB environment in a folder (data.mdb, lock.mdb), opened MDB_NOTLS (a read handle may
 * move between threads) and MDB_NOMETASYNC (integrity is kept; the last commit may be lost on
 * an OS crash, and WAL replay re-creates it through tsdb__index_put_series). Five databases,
 * format version 2 (an index of another version is refused at open with TSDB_ECORRUPT):
 *
 *   meta      "version"  -> u32be format version (2)
 *             "next_id"  -> u64be next series id to allocate (ids start at 1, never reused)
 *             "next_tid" -> u32be next term id to allocate (term ids start at 1, never reused)
 *             "hash_key" -> 16 random bytes: SipHash key of hashed term keys, fixed at creation
 *   terms     term key -> records of (u32be tid, u64be count), one record unless hashed
 *             term key = name 0x00 value             when it fits mdb_env_get_maxkeysize and
 *                                                    value does not start with 0xff
 *             term key = name 0x00 0xff u64be(SipHash(value))   otherwise ("hashed key")
 *             A term is one label pair name=value; count is the number of live series that
 *             have it. A hashed key may hold several terms (a 64-bit collision); their strings
 *             tell them apart. A term whose count drops to 0 is deleted (its tid is not reused).
 *   tstr      tid (unsigned int, MDB_INTEGERKEY) -> uvarint(len(name)) name value
 *             (the term's exact strings)
 *   series    id >> 4 (size_t, MDB_INTEGERKEY) -> the label sets of up to 16 series,
 *             ascending by id, each entry uvarint(id & 15) uvarint(len(refs)) refs, where
 *             refs are the uvarint tids of the labels in label order. Two sorted label sets
 *             are equal exactly when their refs are, so refs double as the canonical encoding
 *             for lookups.
 *   postings  u32be tid ++ u64be first id -> a chunk of the ascending ids of the term's series
 *             (tid 0 lists every series). Chunk = uvarint(count) then, after the first id
 *             (the key's), tokens: uvarint(x), x >= 1: the next id is previous + x + 1;
 *             x = 0 followed by uvarint(r): the next r + 1 ids follow the previous one
 *             consecutively. New chunks start once a chunk's tokens pass CHUNK_MAX bytes.
 *             Readers expand chunks only below the snapshot's next_id, so a damaged count or
 *             run cannot ask for more ids than were ever allocated.
 *
 * Names never contain 0x00 and valid UTF-8 never contains 0xff, so the term keys of one name
 * are the contiguous range starting at "name\0", sorted by value bytes (hashed keys sort last),
 * and the next name starts at or after "name\x01". Label names longer than INDEX_MAX_NAME bytes
 * are refused (values of any length are stored).
 *
 * Sizes: ids are allocated ascending and the series of one target arrive together, so term
 * postings are runs (one token) or strides (one byte per id), and a label costs the bytes of its
 * tid. Series records and tids are appended at the end of their databases (full leaf pages).
 *
 * Term strings are cached in memory (tid -> name, value), shared by all read handles: a two-level
 * array indexed by tid whose slots are filled with compare-and-swap; entries never change (tids
 * are not reused). The cache holds at most cache_max bytes; once full it stops filling and is
 * emptied the next time no read operation runs (rd_exit), so it follows the live terms.
 *
 * Lookups of a label set (resolve, put_series, rd_lookup) need no hash table: every term must
 * exist; the postings of the rarest term give the candidates, narrowed by the other terms'
 * postings within the candidates' id range, and a candidate matches when its refs are equal.
 *
 * Writes: one writer at a time (the caller serialises). A write transaction that hits
 * MDB_MAP_FULL is aborted, the map doubled and the transaction run again; the map can only be
 * resized while no other thread is inside LMDB, so every read operation runs between rd_enter
 * and rd_exit (an atomic count, no lock when nothing is exclusive) and the resize waits for the
 * running ones to finish (new ones wait for it); emptying the term cache uses the same exclusive
 * section. A read handle may stay open across a resize: its transaction holds page numbers,
 * not pointers, and its cursors and remembered series record (which do point into the map) are
 * dropped at its next operation. Read handles wrap a read-only transaction; ended handles are
 * reset and pooled for mdb_txn_renew.
 *
 * select: matchers that do not match "" yield the ids of the values they accept (positives);
 * matchers that match "" yield the ids of the values they reject, to subtract (negatives).
 * Equality and literal alternations read their postings directly, other regexes scan the
 * values of the name (from the literal prefix of the pattern) and test each. The smallest
 * positive list (by the terms' counts) is read first; once the candidates are few
 * (<= filter_max), the remaining matchers are checked against each candidate's stored labels
 * instead of reading more lists. With no positive matcher the tid 0 list is the starting set.
 */
#include "tsdb/index.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>

#include "tsdb/base.h"
#include "tsdb/labels.h"
#include "tsdb/os.h"
#include "tsdb/postings.h"
#include "tsdb/tsdb.h"

#define INDEX_VERSION        2u
#define INDEX_DEFAULT_MAP    ((size_t)16 << 30)
#define INDEX_MAX_MAP        ((size_t)1 << 42) /* 4 TiB: doubling stops here */
#define INDEX_MAX_NAME       256
#define INDEX_MAX_READERS    1022
#define INDEX_GROW_WAIT_MS   10000
#define INDEX_WRITE_ATTEMPTS 40
#define INDEX_FILTER_MAX     1024
#define HASHED_KEY_MARK      0xffu
#define SERIES_SHIFT         4   /* 16 series per series record */
#define CHUNK_MAX            480 /* token bytes after which a postings chunk is full */
#define TERM_REC             12  /* u32be tid, u64be count */
#define ALL_TID              0u
#define MAX_TID              0xffffffffu
#define LOOKUP_NARROW        8 /* candidates at which a lookup stops intersecting */
#define TC_PAGE_BITS         12
#define TC_PAGE              (1u << TC_PAGE_BITS)
#define TC_TOP               (1u << (32 - TC_PAGE_BITS))
#define TC_DEFAULT_MAX       ((size_t)64 << 20)

/* Integer keys (native byte order, compared as integers: LMDB files are not portable across
 * architectures anyway) are size_t for series records and unsigned int for term ids. */
_Static_assert(sizeof(size_t) == 8, "series record keys are 64-bit size_t");
_Static_assert(sizeof(unsigned int) == 4, "term ids are 32-bit unsigned int");

/* A term in the writer's cache: name 0x00 value -> tid (and its count when cached). */
typedef struct wt_ent {
    uint64_t h;
    unsigned char *key; /* NULL = empty slot */
    size_t len;
    uint32_t tid;
    uint64_t count;
} wt_ent;

#define WT_MAX_SLOTS ((size_t)1 << 18)

/* A cached term: name NUL value NUL. */
typedef struct tc_ent {
    uint32_t nlen, vlen;
    char s[];
} tc_ent;

struct tsdb_index {
    MDB_env *env; /* immutable after open */
    MDB_dbi db_meta, db_series, db_terms, db_tstr, db_post;
    int read_only;
    size_t maxkey;     /* mdb_env_get_maxkeysize */
    uint8_t hkey[16];  /* hash key from meta */
    int weak_hash;     /* tests: every hashed key collides */
    uint64_t next_id;  /* writer only; read with __atomic by tsdb__index_next_id */
    uint32_t next_tid; /* writer only */
    size_t map_bytes;  /* current map size (writer; grows) */
    size_t filter_max; /* candidate count below which select filters by labels */

    /* Writer's term cache (writer only): saves the terms lookups of label sets whose terms were
     * seen before. Filled after a resolve commits; emptied after a delete commits (deleting a
     * term is the only way a name=value can later get another tid). Counts are as of caching:
     * they only order a lookup's intersections. */
    wt_ent *wt;
    size_t wt_slots, wt_n;

    /* Term string cache: slots are read and filled with __atomic operations by read
     * operations; emptied by rd_exit under mu when no read operation runs. */
    tc_ent ***tc_top; /* TC_TOP pages of TC_PAGE slots, allocated on demand */
    size_t tc_bytes;  /* bytes held (atomic) */
    size_t tc_max;    /* budget */
    int tc_full;      /* a fill was refused (atomic): empty at the next quiet moment */

    pthread_mutex_t mu; /* guards rd_pool; waits on cv for the two flags below */
    pthread_cond_t cv;
    int n_active;           /* read operations running (atomic; not handles: see rd_enter) */
    int growing;            /* atomic, set under mu: an exclusive section (map resize, cache
                             * clear) waits for or holds the index; new reads wait */
    uint64_t map_gen;       /* resizes so far (atomic); cursors re-seek when it changes */
    tsdb_index_rd *rd_pool; /* reset read handles */
};

struct tsdb_index_rd {
    tsdb_index *ix;
    MDB_txn *txn;
    MDB_cursor *c_post, *c_terms, *c_series; /* opened lazily, closed at end or after a resize */
    uint64_t gen;                            /* ix->map_gen the cursors were opened under */
    uint64_t limit;                          /* next_id in this snapshot: ids are below */
    uint64_t blk_key;                        /* series record held in blk (valid if blk_ok) */
    MDB_val blk;
    int blk_ok;
    tsdb_index_rd *next; /* pool link */
};

/* ---- Small helpers ----------------------------------------------------------------------- */

static int is_lmdb_code(int rc)
{
    return rc > 0 || (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE);
}

/* Maps an LMDB or errno code to a TSDB code with a message. TSDB codes pass through. */
static int map_err(int rc, const char *what, tsdb_err *err)
{
    if (rc == 0)
        return TSDB_OK;
    if (!is_lmdb_code(rc))
        return rc;
    int code;
    switch (rc) {
    case MDB_MAP_FULL:
        code = TSDB_EFULL;
        break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_DBI:
        code = TSDB_ECORRUPT;
        break;
    case MDB_NOTFOUND:
        code = TSDB_ENOTFOUND;
        break;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
        code = TSDB_ELIMIT;
        break;
    default:
        code = TSDB_EIO;
    }
    if (code == TSDB_ECORRUPT)
        return TSDB_CORRUPT(err, "index: %s: %s", what, mdb_strerror(rc));
    if (code != TSDB_ENOTFOUND)
        TSDB_LOG_ERROR("index", "%s: %s", what, mdb_strerror(rc));
    return tsdb_errf(err, code, -1, "index: %s: %s", what, mdb_strerror(rc));
}

static uint64_t be64(const void *p)
{
    return tsdb_get_u64be(p);
}

static uint32_t be32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be32(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* uvarint reader over [*p, end): 0 and advances, or MDB_CORRUPTED. */
static inline int uv_get(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    const unsigned char *q = *p;
    if (q < end && *q < 0x80) {
        *v = *q;
        *p = q + 1;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; q < end && shift < 64; shift += 7) {
        unsigned char b = *q++;
        if (shift == 63 && b > 1)
            return MDB_CORRUPTED;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = x;
            *p = q;
            return 0;
        }
    }
    return MDB_CORRUPTED;
}

static size_t uv_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static size_t uv_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Growable u64 vector on the heap, for intermediate id lists. */
typedef struct idvec {
    uint64_t *v;
    size_t n, cap;
} idvec;

static void idvec_reserve(idvec *x, size_t extra)
{
    if (x->n + extra > x->cap) {
        x->cap = x->n + extra > x->cap * 2 ? x->n + extra : x->cap * 2;
        if (x->cap < 16)
            x->cap = 16;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
}

static void idvec_push(idvec *x, uint64_t id)
{
    if (x->n == x->cap)
        idvec_reserve(x, 1);
    x->v[x->n++] = id;
}

static void idvec_free(idvec *x)
{
    free(x->v);
    x->v = NULL;
    x->n = x->cap = 0;
}

/* Term key for name=value into buf (cap >= maxkey + 16); returns its length. The caller
 * checks 0 < name.len <= INDEX_MAX_NAME. */
static size_t term_key(const tsdb_index *ix, tsdb_str name, tsdb_str value, unsigned char *buf,
                       int *hashed)
{
    size_t n = 0;
    memcpy(buf, name.p, name.len);
    n += name.len;
    buf[n++] = 0;
    int h = name.len + 1 + value.len > ix->maxkey ||
            (value.len > 0 && (unsigned char)value.p[0] == HASHED_KEY_MARK);
    if (h) {
        buf[n++] = HASHED_KEY_MARK;
        tsdb_put_u64be(buf + n, ix->weak_hash ? 0 : tsdb_siphash(ix->hkey, value.p, value.len));
        n += 8;
    } else {
        if (value.len)
            memcpy(buf + n, value.p, value.len);
        n += value.len;
    }
    if (hashed)
        *hashed = h;
    return n;
}

static int key_is_hashed(const MDB_val *k, size_t name_len)
{
    const unsigned char *p = k->mv_data;
    return k->mv_size == name_len + 10 && p[name_len + 1] == HASHED_KEY_MARK;
}

/* Parses a tstr value. 0 or MDB_CORRUPTED. */
static int tstr_parse(const MDB_val *v, tsdb_str *name, tsdb_str *value)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    uint64_t nl;
    if (uv_get(&p, end, &nl) != 0 || nl == 0 || nl > INDEX_MAX_NAME || nl > (size_t)(end - p) ||
        memchr(p, 0, nl) != NULL)
        return MDB_CORRUPTED;
    *name = (tsdb_str){(const char *)p, (size_t)nl};
    *value = (tsdb_str){(const char *)p + nl, (size_t)(end - p) - (size_t)nl};
    return 0;
}

/* Strings of term tid as stored (borrowed from the map). */
static int tstr_get(tsdb_index *ix, MDB_txn *txn, uint32_t tid, tsdb_str *name, tsdb_str *value)
{
    unsigned int kt = tid;
    MDB_val k = {sizeof kt, &kt}, v;
    int rc = mdb_get(txn, ix->db_tstr, &k, &v);
    if (rc == MDB_NOTFOUND)
        return MDB_CORRUPTED; /* referenced terms exist */
    if (rc != 0)
        return rc;
    return tstr_parse(&v, name, value);
}

/* Finds term name=value: its tid and count (count may be NULL). 0, MDB_NOTFOUND or an error. */
static int term_find(tsdb_index *ix, MDB_txn *txn, tsdb_str name, tsdb_str value,
                     unsigned char *keybuf, uint32_t *tid, uint64_t *count)
{
    int hashed = 0;
    MDB_val k = {term_key(ix, name, value, keybuf, &hashed), keybuf}, v;
    int rc = mdb_get(txn, ix->db_terms, &k, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size == 0 || v.mv_size % TERM_REC != 0 || (!hashed && v.mv_size != TERM_REC))
        return MDB_CORRUPTED;
    const unsigned char *p = v.mv_data;
    for (size_t off = 0; off < v.mv_size; off += TERM_REC) {
        uint32_t t = be32(p + off);
        if (t == ALL_TID)
            return MDB_CORRUPTED;
        if (hashed) {
            tsdb_str n2, v2;
            if ((rc = tstr_get(ix, txn, t, &n2, &v2)) != 0)
                return rc;
            if (!tsdb_str_eq(n2, name) || !tsdb_str_eq(v2, value))
                continue;
        }
        *tid = t;
        if (count)
            *count = be64(p + off + 4);
        return 0;
    }
    return MDB_NOTFOUND;
}

/* ---- Postings chunks ------------------------------------------------------------------------ */

/* A run of consecutive ids [start, start + len). */
typedef struct run {
    uint64_t start, len;
} run;

typedef struct runvec {
    run *v;
    size_t n, cap;
} runvec;

static void runs_push(runvec *r, uint64_t start, uint64_t len)
{
    if (r->n > 0) {
        run *last = &r->v[r->n - 1];
        if (last->start + last->len == start) {
            last->len += len;
            return;
        }
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = (run){start, len};
}

static void runs_free(runvec *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

static void post_key(unsigned char kb[12], uint32_t tid, uint64_t first)
{
    put_be32(kb, tid);
    tsdb_put_u64be(kb + 4, first);
}

/* Walks chunk (first, p, n): calls emit(ctx, start, len) per run in order. Validates the
 * count and that ids ascend without overflow. 0 or MDB_CORRUPTED. */
typedef void (*run_fn)(void *ctx, uint64_t start, uint64_t len);

static int chunk_walk(uint64_t first, const unsigned char *p, size_t n, run_fn emit, void *ctx)
{
    const unsigned char *end = p + n;
    uint64_t count;
    if (uv_get(&p, end, &count) != 0 || count == 0 || first == UINT64_MAX)
        return MDB_CORRUPTED;
    uint64_t start = first, len = 1, left = count - 1;
    while (p < end) {
        uint64_t x;
        if (uv_get(&p, end, &x) != 0)
            return MDB_CORRUPTED;
        if (x == 0) {
            uint64_t r;
            if (uv_get(&p, end, &r) != 0 || r >= left || UINT64_MAX - 1 - (start + len - 1) <= r)
                return MDB_CORRUPTED;
            len += r + 1;
            left -= r + 1;
        } else {
            uint64_t last = start + len - 1;
            if (left == 0 || x >= UINT64_MAX - 1 - last)
                return MDB_CORRUPTED;
            emit(ctx, start, len);
            start = last + x + 1;
            len = 1;
            left--;
        }
    }
    if (left != 0)
        return MDB_CORRUPTED;
    emit(ctx, start, len);
    return 0;
}

/* Appends the ids of chunk (first, p, n) within [lo, hi] to out. Every id must be below
 * limit (the next id to allocate), which bounds what a damaged chunk can expand to.
 * 0 or MDB_CORRUPTED. */
static int chunk_ids(uint64_t first, const unsigned char *p, size_t n, uint64_t lo, uint64_t hi,
                     uint64_t limit, idvec *out)
{
    const unsigned char *end = p + n;
    uint64_t count;
    if (uv_get(&p, end, &count) != 0 || count == 0 || first >= limit || count > limit - first)
        return MDB_CORRUPTED;
    uint64_t prev = first, left = count - 1;
    if (first >= lo && first <= hi) {
        idvec_reserve(out, count < 4096 ? (size_t)count : 4096);
        out->v[out->n++] = first;
    }
    while (p < end) {
        uint64_t x;
        if (*p < 0x80) {
            x = *p++;
        } else if (uv_get(&p, end, &x) != 0) {
            return MDB_CORRUPTED;
        }
        if (x == 0) {
            uint64_t r;
            if (uv_get(&p, end, &r) != 0 || r >= left || r >= limit - 1 - prev)
                return MDB_CORRUPTED;
            uint64_t a = prev + 1, b = prev + r + 1; /* [a, b] */
            left -= r + 1;
            prev = b;
            if (a < lo)
                a = lo;
            if (b > hi)
                b = hi;
            if (a <= b) {
                idvec_reserve(out, (size_t)(b - a + 1));
                uint64_t *w = out->v + out->n;
                for (uint64_t id = a; id < b; id++)
                    *w++ = id;
                *w++ = b;
                out->n = (size_t)(w - out->v);
            }
        } else {
            if (left == 0 || x >= limit - 1 - prev)
                return MDB_CORRUPTED;
            prev += x + 1;
            left--;
            if (prev >= lo && prev <= hi) {
                if (out->n == out->cap)
                    idvec_reserve(out, 1);
                out->v[out->n++] = prev;
            }
        }
        if (prev > hi) {
            /* The rest is beyond the range: still check it is well formed. */
            while (p < end) {
                if (uv_get(&p, end, &x) != 0)
                    return MDB_CORRUPTED;
            }
            return 0;
        }
    }
    return left == 0 ? 0 : MDB_CORRUPTED;
}

static void emit_runs(void *vctx, uint64_t start, uint64_t len)
{
    runs_push(vctx, start, len);
}

/* Token bytes of run r after an id `prev` (prev = 0: r opens the chunk). */
static size_t run_cost(const run *r, uint64_t prev, int opens)
{
    size_t n = opens ? 0 : uv_len(r->start - prev - 1);
    if (r->len > 1)
        n += 1 + uv_len(r->len - 2);
    return n;
}

/* Encodes runs [a, b) as one chunk into buf (cap >= 10 + their cost). Returns its length. */
static size_t chunk_encode(const run *v, size_t a, size_t b, unsigned char *buf)
{
    uint64_t count = 0;
    for (size_t i = a; i < b; i++)
        count += v[i].len;
    size_t n = uv_put(buf, count);
    for (size_t i = a; i < b; i++) {
        if (i > a)
            n += uv_put(buf + n, v[i].start - (v[i - 1].start + v[i - 1].len - 1) - 1);
        if (v[i].len > 1) {
            buf[n++] = 0;
            n += uv_put(buf + n, v[i].len - 2);
        }
    }
    return n;
}

/* Stores runs as chunks of at most CHUNK_MAX token bytes, keyed by their first ids. */
static int chunks_put(tsdb_index *ix, MDB_txn *txn, uint32_t tid, const runvec *rv)
{
    size_t i = 0;
    unsigned char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (i < rv->n && rc == 0) {
        size_t j = i + 1, cost = run_cost(&rv->v[i], 0, 1);
        while (j < rv->n) {
            const run *prev = &rv->v[j - 1];
            size_t c = run_cost(&rv->v[j], prev->start + prev->len - 1, 0);
            if (cost + c > CHUNK_MAX)
                break;
            cost += c;
            j++;
        }
        if (cap < cost + 16) {
            cap = cost + 16;
            buf = xrealloc(buf, cap);
        }
        size_t n = chunk_encode(rv->v, i, j, buf);
        unsigned char kb[12];
        post_key(kb, tid, rv->v[i].start);
        MDB_val k = {12, kb}, v = {n, buf};
        rc = mdb_put(txn, ix->db_post, &k, &v, 0);
        i = j;
    }
    free(buf);
    return rc;
}

/* Positions c on the chunk of tid that would hold id (the last with first <= id), *found = 0
 * if there is none; *next_first = first id of the following chunk of tid (UINT64_MAX if none).
 * k, v receive the found chunk. */
static int chunk_floor(MDB_cursor *c, uint32_t tid, uint64_t id, MDB_val *k, MDB_val *v, int *found,
                       uint64_t *next_first)
{
    unsigned char kb[12];
    post_key(kb, tid, id);
    *k = (MDB_val){12, kb};
    *found = 0;
    *next_first = UINT64_MAX;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    int at = rc == 0; /* cursor on the first key >= (tid, id) */
    if (at && k->mv_size != 12)
        return MDB_CORRUPTED;
    if (at && be32(k->mv_data) == tid && be64((const unsigned char *)k->mv_data + 4) == id) {
        *found = 1;
    } else {
        if (at && be32(k->mv_data) == tid)
            *next_first = be64((const unsigned char *)k->mv_data + 4);
        rc = mdb_cursor_get(c, k, v, at ? MDB_PREV : MDB_LAST);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
        if (k->mv_size != 12)
            return MDB_CORRUPTED;
        if (be32(k->mv_data) != tid)
            return 0;
        *found = 1;
        return 0; /* next_first already known */
    }
    /* Exact hit: find the next chunk's first id. */
    MDB_val k2, v2;
    rc = mdb_cursor_get(c, &k2, &v2, MDB_NEXT);
    if (rc == 0 && k2.mv_size == 12 && be32(k2.mv_data) == tid)
        *next_first = be64((const unsigned char *)k2.mv_data + 4);
    else if (rc == 0 && k2.mv_size != 12)
        return MDB_CORRUPTED;
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return 0;
}

/* Merges run lists a and b (each ascending, possibly overlapping) into out. */
static void runs_union(const runvec *a, const uint64_t *ids, size_t n, runvec *out)
{
    size_t i = 0, j = 0;
    out->n = 0;
    while (i < a->n || j < n) {
        uint64_t s, l;
        if (j >= n || (i < a->n && a->v[i].start <= ids[j])) {
            s = a->v[i].start;
            l = a->v[i].len;
            i++;
        } else {
            s = ids[j];
            l = 1;
            j++;
        }
        if (out->n > 0) {
            run *last = &out->v[out->n - 1];
            uint64_t end = last->start + last->len; /* exclusive */
            if (s <= end) {
                if (s + l > end)
                    last->len = s + l - last->start;
                continue;
            }
        }
        runs_push(out, s, l);
    }
}

static uint64_t runs_total(const runvec *r)
{
    uint64_t t = 0;
    for (size_t i = 0; i < r->n; i++)
        t += r->v[i].len;
    return t;
}

/* Adds ids (ascending, unique) to the postings of tid; *added = how many were new. */
static int post_add(tsdb_index *ix, MDB_txn *txn, MDB_cursor *c, uint32_t tid, const uint64_t *ids,
                    size_t n, uint64_t *added)
{
    runvec cur = {0}, merged = {0};
    int rc = 0;
    size_t i = 0;
    *added = 0;
    while (i < n && rc == 0) {
        MDB_val k, v;
        int found;
        uint64_t next;
        if ((rc = chunk_floor(c, tid, ids[i], &k, &v, &found, &next)) != 0)
            break;
        cur.n = 0;
        if (found && (rc = chunk_walk(be64((const unsigned char *)k.mv_data + 4), v.mv_data,
                                      v.mv_size, emit_runs, &cur)) != 0)
            break;
        size_t j = i;
        while (j < n && ids[j] < next)
            j++;
        uint64_t before = runs_total(&cur);
        runs_union(&cur, ids + i, j - i, &merged);
        *added += runs_total(&merged) - before;
        rc = chunks_put(ix, txn, tid, &merged);
        i = j;
    }
    runs_free(&cur);
    runs_free(&merged);
    return rc;
}

/* Removes ids (ascending, unique) from the postings of tid; *removed = how many were there. */
static int post_del(tsdb_index *ix, MDB_txn *txn, MDB_cursor *c, uint32_t tid, const uint64_t *ids,
                    size_t n, uint64_t *removed)
{
    runvec cur = {0}, out = {0};
    int rc = 0;
    size_t i = 0;
    *removed = 0;
    while (i < n && rc == 0) {
        MDB_val k, v;
        int found;
        uint64_t next;
        if ((rc = chunk_floor(c, tid, ids[i], &k, &v, &found, &next)) != 0)
            break;
        if (!found) {
            i++; /* below every chunk: not stored */
            continue;
        }
        uint64_t first = be64((const unsigned char *)k.mv_data + 4);
        cur.n = 0;
        if ((rc = chunk_walk(first, v.mv_data, v.mv_size, emit_runs, &cur)) != 0)
            break;
        size_t j = i;
        while (j < n && ids[j] < next)
            j++;
        /* Split the runs around the ids [i, j). */
        out.n = 0;
        size_t q = i;
        for (size_t r = 0; r < cur.n; r++) {
            uint64_t s = cur.v[r].start, e = s + cur.v[r].len; /* [s, e) */
            while (q < j && ids[q] < s)
                q++;
            while (q < j && ids[q] < e) {
                if (ids[q] > s)
                    runs_push(&out, s, ids[q] - s);
                s = ids[q] + 1;
                (*removed)++;
                q++;
            }
            if (s < e)
                runs_push(&out, s, e - s);
        }
        if (out.n == 0 || out.v[0].start != first) {
            unsigned char kb[12];
            post_key(kb, tid, first);
            MDB_val dk = {12, kb};
            if ((rc = mdb_del(txn, ix->db_post, &dk, NULL)) != 0)
                break;
        }
        if (out.n > 0)
            rc = chunks_put(ix, txn, tid, &out);
        i = j;
    }
    runs_free(&cur);
    runs_free(&out);
    return rc;
}

/* Appends to out the ids of tid within [lo, hi], ascending. */
static int post_read(MDB_cursor *c, uint32_t tid, uint64_t lo, uint64_t hi, uint64_t limit,
                     idvec *out)
{
    MDB_val k, v;
    int found;
    uint64_t next, start = lo;
    int rc = 0;
    if (lo > 0) {
        if ((rc = chunk_floor(c, tid, lo, &k, &v, &found, &next)) != 0)
            return rc;
        if (found)
            start = be64((const unsigned char *)k.mv_data + 4);
    }
    unsigned char kb[12];
    post_key(kb, tid, start);
    k = (MDB_val){12, kb};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 12)
            return MDB_CORRUPTED;
        if (be32(k.mv_data) != tid)
            break;
        uint64_t first = be64((const unsigned char *)k.mv_data + 4);
        if (first > hi)
            break;
        if ((rc = chunk_ids(first, v.mv_data, v.mv_size, lo, hi, limit, out)) != 0)
            return rc;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- Series records ------------------------------------------------------------------------- */

/* Finds the entry of id in series record (p, n): *refs, *len its tid refs. 1 found, 0 not,
 * MDB_CORRUPTED. */
static int record_find(const unsigned char *p, size_t n, uint64_t id, const unsigned char **refs,
                       size_t *len)
{
    const unsigned char *end = p + n;
    uint64_t want = id & ((1u << SERIES_SHIFT) - 1), prev = 0;
    int first = 1;
    while (p < end) {
        uint64_t off, l;
        if (end - p >= 2 && (p[0] | p[1]) < 0x80) { /* the usual one-byte offset and length */
            off = p[0];
            l = p[1];
            p += 2;
        } else if (uv_get(&p, end, &off) != 0 || uv_get(&p, end, &l) != 0) {
            return MDB_CORRUPTED;
        }
        if (l > (size_t)(end - p) || off >= (1u << SERIES_SHIFT) || (!first && off <= prev))
            return MDB_CORRUPTED;
        if (off == want) {
            *refs = p;
            *len = (size_t)l;
            return 1;
        }
        if (off > want)
            return 0;
        prev = off;
        first = 0;
        p += l;
    }
    return 0;
}

/* Calls fn for each entry of a series record. */
typedef int (*entry_fn)(void *ctx, uint64_t id, const unsigned char *refs, size_t len);

static int record_each(uint64_t key, const unsigned char *p, size_t n, entry_fn fn, void *ctx)
{
    const unsigned char *end = p + n;
    uint64_t prev = 0;
    int first = 1;
    while (p < end) {
        uint64_t off, l;
        if (uv_get(&p, end, &off) != 0 || uv_get(&p, end, &l) != 0 || l > (size_t)(end - p) ||
            off >= (1u << SERIES_SHIFT) || (!first && off <= prev))
            return MDB_CORRUPTED;
        int rc = fn(ctx, key << SERIES_SHIFT | off, p, (size_t)l);
        if (rc != 0)
            return rc;
        prev = off;
        first = 0;
        p += l;
    }
    return 0;
}

/* Refs of series id within txn, borrowed. 0, MDB_NOTFOUND or an error. */
static int refs_get(tsdb_index *ix, MDB_txn *txn, uint64_t id, const unsigned char **refs,
                    size_t *len)
{
    size_t kx = (size_t)(id >> SERIES_SHIFT);
    MDB_val k = {sizeof kx, &kx}, v;
    int rc = mdb_get(txn, ix->db_series, &k, &v);
    if (rc != 0)
        return rc;
    rc = record_find(v.mv_data, v.mv_size, id, refs, len);
    return rc == 1 ? 0 : rc == 0 ? MDB_NOTFOUND : rc;
}

/* Writes (or, with refs NULL, removes) the entry of id in its series record. */
static int record_set(tsdb_index *ix, MDB_txn *txn, uint64_t id, const unsigned char *refs,
                      size_t len)
{
    size_t kx = (size_t)(id >> SERIES_SHIFT);
    uint64_t want = id & ((1u << SERIES_SHIFT) - 1);
    MDB_val k = {sizeof kx, &kx}, v;
    int rc = mdb_get(txn, ix->db_series, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    tsdb_buf b;
    tsdb_buf_init(&b);
    int placed = refs == NULL;
    if (rc == 0) {
        const unsigned char *p = v.mv_data, *end = p + v.mv_size;
        while (p < end) {
            const unsigned char *e0 = p;
            uint64_t off, l;
            if (uv_get(&p, end, &off) != 0 || uv_get(&p, end, &l) != 0 || l > (size_t)(end - p)) {
                tsdb_buf_fini(&b);
                return MDB_CORRUPTED;
            }
            p += l;
            if (!placed && off >= want) {
                tsdb_buf_put_uvarint(&b, want);
                tsdb_buf_put_uvarint(&b, len);
                tsdb_buf_put(&b, refs, len);
                placed = 1;
            }
            if (off != want)
                tsdb_buf_put(&b, e0, (size_t)(p - e0));
        }
    }
    if (!placed) {
        tsdb_buf_put_uvarint(&b, want);
        tsdb_buf_put_uvarint(&b, len);
        tsdb_buf_put(&b, refs, len);
    }
    if (b.len == 0)
        rc = rc == 0 ? mdb_del(txn, ix->db_series, &k, NULL) : 0;
    else {
        MDB_val nv = {b.len, b.p};
        rc = mdb_put(txn, ix->db_series, &k, &nv, 0);
    }
    tsdb_buf_fini(&b);
    return rc;
}

static size_t refs_count(const unsigned char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += p[i] < 0x80;
    return n;
}

/* Finds the series whose refs equal (refs, len), given its terms (tids, with counts) in any
 * order. 0 (*id set), MDB_NOTFOUND or an error. */
static int find_refs(tsdb_index *ix, MDB_txn *txn, MDB_cursor *cpost, uint64_t limit,
                     const uint32_t *tids, const uint64_t *counts, size_t n,
                     const unsigned char *refs, size_t len, uint64_t *id)
{
    size_t *ord = xmalloc((n + 1) * sizeof *ord);
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && counts[ord[j - 1]] > counts[i]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
    idvec cand = {0}, tmp = {0};
    int rc = post_read(cpost, n ? tids[ord[0]] : ALL_TID, 0, UINT64_MAX, limit, &cand);
    for (size_t i = 1; rc == 0 && i < n && cand.n > LOOKUP_NARROW; i++) {
        tmp.n = 0;
        rc = post_read(cpost, tids[ord[i]], cand.v[0], cand.v[cand.n - 1], limit, &tmp);
        cand.n = tsdb__postings_intersect(cand.v, cand.n, tmp.v, tmp.n, cand.v);
    }
    int res = MDB_NOTFOUND;
    for (size_t i = 0; rc == 0 && i < cand.n; i++) {
        const unsigned char *r2;
        size_t l2;
        rc = refs_get(ix, txn, cand.v[i], &r2, &l2);
        if (rc == MDB_NOTFOUND) {
            rc = MDB_CORRUPTED; /* postings name a series with no record */
            break;
        }
        if (rc == 0 && l2 == len && memcmp(r2, refs, len) == 0) {
            *id = cand.v[i];
            res = 0;
            break;
        }
    }
    idvec_free(&cand);
    idvec_free(&tmp);
    free(ord);
    return rc != 0 ? rc : res;
}

/* ---- Term string cache ---------------------------------------------------------------------- */

static const tc_ent *tc_get(tsdb_index *ix, uint32_t tid)
{
    tc_ent **page = __atomic_load_n(&ix->tc_top[tid >> TC_PAGE_BITS], __ATOMIC_ACQUIRE);
    if (page == NULL)
        return NULL;
    return __atomic_load_n(&page[tid & (TC_PAGE - 1)], __ATOMIC_ACQUIRE);
}

/* Caches tid's strings; returns the cached entry, or NULL when the budget is spent. */
static const tc_ent *tc_put(tsdb_index *ix, uint32_t tid, tsdb_str name, tsdb_str value)
{
    size_t size = sizeof(tc_ent) + name.len + value.len + 2;
    if (__atomic_load_n(&ix->tc_bytes, __ATOMIC_RELAXED) + size > ix->tc_max) {
        __atomic_store_n(&ix->tc_full, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    tc_ent ***slot = &ix->tc_top[tid >> TC_PAGE_BITS];
    tc_ent **page = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (page == NULL) {
        tc_ent **fresh = xcalloc(TC_PAGE, sizeof *fresh);
        tc_ent **expect = NULL;
        if (__atomic_compare_exchange_n(slot, &expect, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            page = fresh;
            __atomic_add_fetch(&ix->tc_bytes, TC_PAGE * sizeof *fresh, __ATOMIC_RELAXED);
        } else {
            free(fresh);
            page = expect;
        }
    }
    tc_ent *e = xmalloc(size);
    e->nlen = (uint32_t)name.len;
    e->vlen = (uint32_t)value.len;
    memcpy(e->s, name.p, name.len);
    e->s[name.len] = 0;
    if (value.len)
        memcpy(e->s + name.len + 1, value.p, value.len);
    e->s[name.len + 1 + value.len] = 0;
    tc_ent *expect = NULL;
    if (!__atomic_compare_exchange_n(&page[tid & (TC_PAGE - 1)], &expect, e, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(e);
        return expect;
    }
    __atomic_add_fetch(&ix->tc_bytes, size, __ATOMIC_RELAXED);
    return e;
}

/* Empties the writer's term cache. */
static void wt_clear(tsdb_index *ix)
{
    for (size_t i = 0; i < ix->wt_slots; i++)
        free(ix->wt[i].key);
    free(ix->wt);
    ix->wt = NULL;
    ix->wt_slots = ix->wt_n = 0;
}

/* Frees every cached entry. Callers guarantee that no read operation runs. */
static void tc_clear(tsdb_index *ix)
{
    if (ix->tc_top == NULL)
        return;
    for (size_t i = 0; i < TC_TOP; i++) {
        tc_ent **page = ix->tc_top[i];
        if (page == NULL)
            continue;
        for (size_t j = 0; j < TC_PAGE; j++)
            free(page[j]);
        free(page);
        ix->tc_top[i] = NULL;
    }
    __atomic_store_n(&ix->tc_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ix->tc_full, 0, __ATOMIC_RELAXED);
}

/* ---- Open and close ---------------------------------------------------------------------- */

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *v)
{
    MDB_val k = {strlen(key), (void *)key};
    return mdb_get(txn, dbi, &k, v);
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *p, size_t n)
{
    MDB_val k = {strlen(key), (void *)key}, v = {n, (void *)p};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static void new_hash_key(uint8_t key[16])
{
    /* The process hash key is random at first use; derive this index's key from it. */
    int64_t salt[2] = {tsdb_mono_ns(), tsdb_now_ms()};
    uint64_t a = tsdb_hash(salt, sizeof salt);
    salt[0] ^= (int64_t)0x5bd1e995;
    uint64_t b = tsdb_hash(salt, sizeof salt);
    tsdb_put_u64le(key, a);
    tsdb_put_u64le(key + 8, b);
}

/* Opens the databases and loads (or, when writable, initialises) meta. The version is checked
 * before the other databases are opened, so an index of another format fails with a clear
 * message instead of a missing database. */
static int open_dbs(tsdb_index *ix, tsdb_err *err)
{
    MDB_txn *txn = NULL;
    unsigned cf = ix->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin(ix->env, NULL, ix->read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return map_err(rc, "begin", err);
    if ((rc = mdb_dbi_open(txn, "meta", cf, &ix->db_meta)) != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return tsdb_errf(err, TSDB_ENOTFOUND, -1, "index: not initialised");
        return map_err(rc, "open databases", err);
    }
    MDB_val v;
    rc = meta_get(txn, ix->db_meta, "version", &v);
    int fresh = rc == MDB_NOTFOUND && !ix->read_only;
    if (rc != 0 && !fresh) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return TSDB_CORRUPT(err, "index: meta has no version");
        return map_err(rc, "read meta", err);
    }
    if (!fresh && (v.mv_size != 4 || be32(v.mv_data) != INDEX_VERSION)) {
        uint32_t got = v.mv_size == 4 ? be32(v.mv_data) : 0;
        mdb_txn_abort(txn);
        return tsdb_errf(err, TSDB_ECORRUPT, -1,
                         "index: format version %u is not supported (this build reads version "
                         "%u); the index folder was written by another version of Cairn",
                         (unsigned)got, INDEX_VERSION);
    }
    if ((rc = mdb_dbi_open(txn, "series", cf | MDB_INTEGERKEY, &ix->db_series)) != 0 ||
        (rc = mdb_dbi_open(txn, "terms", cf, &ix->db_terms)) != 0 ||
        (rc = mdb_dbi_open(txn, "tstr", cf | MDB_INTEGERKEY, &ix->db_tstr)) != 0 ||
        (rc = mdb_dbi_open(txn, "postings", cf, &ix->db_post)) != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return TSDB_CORRUPT(err, "index: a database is missing");
        return map_err(rc, "open databases", err);
    }
    if (fresh) {
        unsigned char ver[4], nid[8], ntid[4];
        put_be32(ver, INDEX_VERSION);
        tsdb_put_u64be(nid, 1);
        put_be32(ntid, 1);
        new_hash_key(ix->hkey);
        if ((rc = meta_put(txn, ix->db_meta, "version", ver, 4)) != 0 ||
            (rc = meta_put(txn, ix->db_meta, "next_id", nid, 8)) != 0 ||
            (rc = meta_put(txn, ix->db_meta, "next_tid", ntid, 4)) != 0 ||
            (rc = meta_put(txn, ix->db_meta, "hash_key", ix->hkey, 16)) != 0 ||
            (rc = mdb_txn_commit(txn)) != 0) {
            if (rc != 0 && txn)
                mdb_txn_abort(txn);
            return map_err(rc, "initialise meta", err);
        }
        ix->next_id = 1;
        ix->next_tid = 1;
        return TSDB_OK;
    }
    MDB_val nid, ntid, hk;
    if (meta_get(txn, ix->db_meta, "next_id", &nid) != 0 || nid.mv_size != 8 ||
        meta_get(txn, ix->db_meta, "next_tid", &ntid) != 0 || ntid.mv_size != 4 ||
        meta_get(txn, ix->db_meta, "hash_key", &hk) != 0 || hk.mv_size != 16) {
        mdb_txn_abort(txn);
        return TSDB_CORRUPT(err, "index: meta is incomplete");
    }
    ix->next_id = be64(nid.mv_data);
    ix->next_tid = be32(ntid.mv_data);
    memcpy(ix->hkey, hk.mv_data, 16);
    /* Commit, even read-only: an aborted transaction would close the database handles. */
    if ((rc = mdb_txn_commit(txn)) != 0)
        return map_err(rc, "open databases", err);
    return TSDB_OK;
}

int tsdb__index_open(const char *dir, size_t map_bytes, int read_only, tsdb_index **out,
                     tsdb_err *err)
{
    int rc;
    if (!read_only && (rc = tsdb__os_mkdir_p(dir, err)) != TSDB_OK)
        return rc;
    tsdb_index *ix = xcalloc(1, sizeof *ix);
    ix->read_only = read_only;
    ix->map_bytes = map_bytes ? map_bytes : INDEX_DEFAULT_MAP;
    ix->filter_max = INDEX_FILTER_MAX;
    ix->tc_max = TC_DEFAULT_MAX;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->cv, NULL);
    if ((rc = mdb_env_create(&ix->env)) != 0) {
        rc = map_err(rc, "env create", err);
        goto fail;
    }
    mdb_env_set_maxdbs(ix->env, 8);
    mdb_env_set_maxreaders(ix->env, INDEX_MAX_READERS);
    if ((rc = mdb_env_set_mapsize(ix->env, ix->map_bytes)) != 0) {
        rc = map_err(rc, "set map size", err);
        goto fail;
    }
    unsigned flags = MDB_NOTLS | MDB_NOMETASYNC | (read_only ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(ix->env, dir, flags, 0644)) != 0) {
        if (rc == ENOENT)
            rc = tsdb_errf(err, TSDB_ENOTFOUND, -1, "index: %s: %s", dir, mdb_strerror(rc));
        else
            rc = map_err(rc, "env open", err);
        goto fail;
    }
    MDB_envinfo info;
    if (mdb_env_info(ix->env, &info) == 0 && info.me_mapsize > ix->map_bytes)
        ix->map_bytes = info.me_mapsize;
    ix->maxkey = (size_t)mdb_env_get_maxkeysize(ix->env);
    if ((rc = open_dbs(ix, err)) != TSDB_OK)
        goto fail;
    /* Virtual memory only: pages of the top array are touched as tids are cached. */
    ix->tc_top = xcalloc(TC_TOP, sizeof *ix->tc_top);
    *out = ix;
    return TSDB_OK;
fail:
    if (ix->env)
        mdb_env_close(ix->env);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->cv);
    free(ix);
    return rc;
}

void tsdb__index_close(tsdb_index *ix)
{
    if (ix == NULL)
        return;
    tsdb_index_rd *r = ix->rd_pool;
    while (r) {
        tsdb_index_rd *next = r->next;
        mdb_txn_abort(r->txn);
        free(r);
        r = next;
    }
    mdb_env_close(ix->env);
    tc_clear(ix);
    wt_clear(ix);
    free(ix->tc_top);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->cv);
    free(ix);
}

uint64_t tsdb__index_next_id(tsdb_index *ix)
{
    return __atomic_load_n(&ix->next_id, __ATOMIC_ACQUIRE);
}

int tsdb__index_copy(tsdb_index *ix, const char *dir, tsdb_err *err)
{
    int rc = tsdb__os_mkdir_p(dir, err);
    if (rc != TSDB_OK)
        return rc;
    /* A compacting copy: only live pages, renumbered, from one read transaction. */
    rc = mdb_env_copy2(ix->env, dir, MDB_CP_COMPACT);
    if (rc == 0)
        return TSDB_OK;
    if (is_lmdb_code(rc))
        return map_err(rc, "copying the index", err);
    return tsdb_errf(err, rc == ENOSPC ? TSDB_ENOSPC : TSDB_EIO, -1, "copying the index to %s: %s",
                     dir, strerror(rc));
}

uint64_t tsdb__index_disk_bytes(tsdb_index *ix)
{
    const char *path = NULL;
    if (mdb_env_get_path(ix->env, &path) != 0 || path == NULL)
        return 0;
    size_t n = strlen(path);
    char *file = xmalloc(n + 16);
    memcpy(file, path, n);
    memcpy(file + n, "/data.mdb", 10);
    uint64_t size = 0;
    if (tsdb__os_path_size(file, &size) != TSDB_OK)
        size = 0;
    free(file);
    return size;
}

void tsdb__index_set_filter_max(tsdb_index *ix, size_t n)
{
    ix->filter_max = n;
}

void tsdb__index_set_cache_max(tsdb_index *ix, size_t bytes)
{
    ix->tc_max = bytes;
}

size_t tsdb__index_cache_bytes(tsdb_index *ix)
{
    return __atomic_load_n(&ix->tc_bytes, __ATOMIC_RELAXED);
}

void tsdb__index_set_weak_hash(tsdb_index *ix, int on)
{
    ix->weak_hash = on;
}

int tsdb__index_poke(tsdb_index *ix, const char *db, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    MDB_dbi dbi;
    if (strcmp(db, "meta") == 0)
        dbi = ix->db_meta;
    else if (strcmp(db, "series") == 0)
        dbi = ix->db_series;
    else if (strcmp(db, "terms") == 0)
        dbi = ix->db_terms;
    else if (strcmp(db, "tstr") == 0)
        dbi = ix->db_tstr;
    else if (strcmp(db, "postings") == 0)
        dbi = ix->db_post;
    else
        return TSDB_EINVAL;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
    if (rc != 0)
        return map_err(rc, "poke", NULL);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    rc = val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return map_err(rc, "poke", NULL);
}
/* ---- Map growth and the write-transaction runner ------------------------------------------ */

static void deadline_after_ms(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Exclusive sections (mu held by the caller): waits for another one to end, then keeps new
 * read operations out and waits for the running ones. 0, or ETIMEDOUT at the deadline. */
static int excl_begin(tsdb_index *ix, const struct timespec *dl)
{
    int timed_out = 0;
    while (__atomic_load_n(&ix->growing, __ATOMIC_SEQ_CST) && !timed_out)
        timed_out = pthread_cond_timedwait(&ix->cv, &ix->mu, dl) != 0 &&
                    __atomic_load_n(&ix->growing, __ATOMIC_SEQ_CST);
    if (timed_out)
        return ETIMEDOUT;
    __atomic_store_n(&ix->growing, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&ix->n_active, __ATOMIC_SEQ_CST) > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&ix->cv, &ix->mu, dl) != 0 &&
                    __atomic_load_n(&ix->n_active, __ATOMIC_SEQ_CST) > 0;
    if (timed_out) {
        __atomic_store_n(&ix->growing, 0, __ATOMIC_SEQ_CST);
        pthread_cond_broadcast(&ix->cv);
        return ETIMEDOUT;
    }
    return 0;
}

static void excl_end(tsdb_index *ix)
{
    __atomic_store_n(&ix->growing, 0, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&ix->cv);
}

/* Sets the map size (0 = adopt the size another process chose) while no read operation runs. */
static int resize_map(tsdb_index *ix, size_t size, tsdb_err *err)
{
    struct timespec dl;
    deadline_after_ms(&dl, INDEX_GROW_WAIT_MS);
    pthread_mutex_lock(&ix->mu);
    int timed_out = excl_begin(ix, &dl) != 0;
    int rc = 0;
    if (!timed_out) {
        rc = mdb_env_set_mapsize(ix->env, size);
        __atomic_add_fetch(&ix->map_gen, 1, __ATOMIC_RELEASE);
        excl_end(ix);
    }
    pthread_mutex_unlock(&ix->mu);
    if (timed_out)
        return tsdb_errf(err, TSDB_EFULL, -1,
                         "index: map full and a read operation kept it from growing");
    if (rc != 0)
        return map_err(rc, "resize map", err);
    MDB_envinfo info;
    if (mdb_env_info(ix->env, &info) == 0)
        ix->map_bytes = info.me_mapsize;
    return TSDB_OK;
}

static int grow_map(tsdb_index *ix, tsdb_err *err)
{
    size_t want = ix->map_bytes * 2;
    if (ix->map_bytes >= INDEX_MAX_MAP || want < ix->map_bytes) {
        TSDB_LOG_ERROR("index", "map full at %zu bytes; raise the index map size (index_map_bytes)",
                       ix->map_bytes);
        return tsdb_errf(err, TSDB_EFULL, -1, "index map full at %zu bytes", ix->map_bytes);
    }
    int rc = resize_map(ix, want, err);
    if (rc != TSDB_OK) {
        TSDB_LOG_ERROR("index", "map full at %zu bytes and could not grow: %s", ix->map_bytes,
                       err ? err->msg : tsdb_strerror(rc));
        return rc == TSDB_EFULL ? rc : tsdb_errf(err, TSDB_EFULL, -1, "index map full");
    }
    TSDB_LOG_INFO("index", "map grown to %zu bytes", ix->map_bytes);
    return TSDB_OK;
}

typedef int (*write_fn)(tsdb_index *ix, MDB_txn *txn, void *ctx, tsdb_err *err);

/* Runs fn in a write transaction and commits, growing the map and re-running on MAP_FULL.
 * fn returns 0, an LMDB code or a TSDB code; it must be restartable (no effects outside the
 * transaction until commit) and commit hooks go in the caller after success. */
static int run_write(tsdb_index *ix, write_fn fn, void *ctx, tsdb_err *err)
{
    if (ix->read_only)
        return tsdb_errf(err, TSDB_EINVAL, -1, "index: opened read-only");
    for (int attempt = 0; attempt < INDEX_WRITE_ATTEMPTS; attempt++) {
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED) {
            if ((rc = resize_map(ix, 0, err)) != TSDB_OK)
                return rc;
            continue;
        }
        if (rc != 0)
            return map_err(rc, "begin write", err);
        rc = fn(ix, txn, ctx, err);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == MDB_MAP_FULL) {
            if ((rc = grow_map(ix, err)) != TSDB_OK)
                return rc;
            continue;
        }
        return map_err(rc, "write", err);
    }
    return tsdb_errf(err, TSDB_EFULL, -1, "index: write kept failing with map full");
}

/* ---- Series writes ------------------------------------------------------------------------ */

/* Adds delta to the count of term tid stored under key, creating its record when absent; a
 * count that reaches 0 removes the term (its record and strings). */
static int term_count_add(tsdb_index *ix, MDB_txn *txn, const unsigned char *key, size_t klen,
                          uint32_t tid, int64_t delta)
{
    if (delta == 0)
        return 0;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, ix->db_terms, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    size_t n = rc == 0 ? v.mv_size : 0;
    if (n % TERM_REC != 0)
        return MDB_CORRUPTED;
    unsigned char *buf = xmalloc(n + TERM_REC);
    if (n)
        memcpy(buf, v.mv_data, n);
    size_t at = n;
    for (size_t off = 0; off < n; off += TERM_REC) {
        if (be32(buf + off) == tid)
            at = off;
    }
    uint64_t cnt = at < n ? be64(buf + at + 4) : 0;
    if (delta < 0 && (uint64_t)-delta > cnt) {
        free(buf);
        return MDB_CORRUPTED;
    }
    cnt += (uint64_t)delta;
    if (cnt == 0) {
        if (at < n) {
            memmove(buf + at, buf + at + TERM_REC, n - at - TERM_REC);
            n -= TERM_REC;
        }
        unsigned int kt = tid;
        MDB_val dk = {sizeof kt, &kt};
        rc = mdb_del(txn, ix->db_tstr, &dk, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    } else {
        if (at == n) {
            put_be32(buf + n, tid);
            n += TERM_REC;
        }
        tsdb_put_u64be(buf + at + 4, cnt);
        rc = 0;
    }
    if (rc == 0) {
        MDB_val nv = {n, buf};
        rc = n == 0 ? mdb_del(txn, ix->db_terms, &k, NULL) : mdb_put(txn, ix->db_terms, &k, &nv, 0);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    free(buf);
    return rc;
}

/* Allocates a tid for name=value and stores its strings (tids ascend: an append). */
static int term_create(tsdb_index *ix, MDB_txn *txn, uint32_t *next_tid, tsdb_str name,
                       tsdb_str value, uint32_t *tid)
{
    if (*next_tid == MAX_TID)
        return TSDB_ELIMIT;
    uint32_t t = (*next_tid)++;
    unsigned int kt = t;
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_put_uvarint(&b, name.len);
    tsdb_buf_put(&b, name.p, name.len);
    tsdb_buf_put(&b, value.p, value.len);
    MDB_val k = {sizeof kt, &kt}, v = {b.len, b.p};
    int rc = mdb_put(txn, ix->db_tstr, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(txn, ix->db_tstr, &k, &v, 0);
    tsdb_buf_fini(&b);
    *tid = t;
    return rc;
}

static int put_meta_ids(tsdb_index *ix, MDB_txn *txn, uint64_t next, uint32_t next_tid)
{
    unsigned char b[8], t[4];
    int rc = 0;
    if (next != ix->next_id) {
        tsdb_put_u64be(b, next);
        rc = meta_put(txn, ix->db_meta, "next_id", b, 8);
    }
    if (rc == 0 && next_tid != ix->next_tid) {
        put_be32(t, next_tid);
        rc = meta_put(txn, ix->db_meta, "next_tid", t, 4);
    }
    return rc;
}

static int check_names(const tsdb_labels *sets, size_t n, tsdb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sets[i].n; j++) {
            if (sets[i].v[j].name.len == 0 || sets[i].v[j].name.len > INDEX_MAX_NAME)
                return tsdb_errf(err, TSDB_EINVAL, -1,
                                 "index: label name of %zu bytes (must be 1..%d)",
                                 sets[i].v[j].name.len, INDEX_MAX_NAME);
        }
    }
    return TSDB_OK;
}

static void refs_put(tsdb_buf *b, uint32_t tid)
{
    unsigned char tmp[10];
    tsdb_buf_put(b, tmp, uv_put(tmp, tid));
}

/* ---- Writer's term cache ------------------------------------------------------------------ */

static const wt_ent *wt_find(const tsdb_index *ix, uint64_t h, tsdb_str name, tsdb_str value)
{
    if (ix->wt_slots == 0)
        return NULL;
    size_t len = name.len + 1 + value.len;
    for (size_t j = h & (ix->wt_slots - 1);; j = (j + 1) & (ix->wt_slots - 1)) {
        const wt_ent *e = &ix->wt[j];
        if (e->key == NULL)
            return NULL;
        if (e->h == h && e->len == len && memcmp(e->key, name.p, name.len) == 0 &&
            e->key[name.len] == 0 &&
            (value.len == 0 || memcmp(e->key + name.len + 1, value.p, value.len) == 0))
            return e;
    }
}

static void wt_slot_put(wt_ent *v, size_t slots, wt_ent e)
{
    size_t j = e.h & (slots - 1);
    while (v[j].key != NULL)
        j = (j + 1) & (slots - 1);
    v[j] = e;
}

/* Caches key (name 0x00 value, len bytes) -> tid, count; an existing entry is updated. */
static void wt_put(tsdb_index *ix, uint64_t h, const unsigned char *key, size_t len, uint32_t tid,
                   uint64_t count)
{
    for (size_t j = ix->wt_slots ? h & (ix->wt_slots - 1) : 0; ix->wt_slots;
         j = (j + 1) & (ix->wt_slots - 1)) {
        wt_ent *e = &ix->wt[j];
        if (e->key == NULL)
            break;
        if (e->h == h && e->len == len && memcmp(e->key, key, len) == 0) {
            e->tid = tid;
            e->count = count;
            return;
        }
    }
    if ((ix->wt_n + 1) * 2 > ix->wt_slots) {
        if (ix->wt_slots >= WT_MAX_SLOTS) {
            wt_clear(ix); /* bounded: start over with the terms seen from now on */
        }
        size_t ns = ix->wt_slots ? ix->wt_slots * 2 : 1024;
        wt_ent *nv = xcalloc(ns, sizeof *nv);
        for (size_t i = 0; i < ix->wt_slots; i++)
            if (ix->wt[i].key)
                wt_slot_put(nv, ns, ix->wt[i]);
        free(ix->wt);
        ix->wt = nv;
        ix->wt_slots = ns;
    }
    unsigned char *k = xmalloc(len ? len : 1);
    memcpy(k, key, len);
    wt_slot_put(ix->wt, ix->wt_slots, (wt_ent){h, k, len, tid, count});
    ix->wt_n++;
}

/* ---- Resolve: one transaction for a batch of label sets -------------------------------------- */

/* A term touched by the batch: its state before the transaction and the new ids it gains. */
typedef struct tgroup {
    uint64_t h;                        /* hash of name 0x00 value */
    size_t key_off, name_len, key_len; /* name 0x00 value in keys */
    uint32_t tid;                      /* 0 while the term does not exist */
    uint64_t count;                    /* series before this transaction */
    int fresh;                         /* created in this transaction */
    uint64_t *ids;
    size_t n, cap;
} tgroup;

typedef struct made_ent {
    size_t off, len; /* refs in made_refs */
    uint64_t id;
} made_ent;

typedef struct wbatch {
    tsdb_buf keys;
    tgroup *g;
    size_t n_g, cap_g;
    uint32_t *slots; /* open addressing: group index + 1, 0 = empty */
    size_t n_slots;  /* power of two */
    idvec all;
    tsdb_buf made_refs; /* series created in this transaction, ascending ids */
    made_ent *made;
    size_t n_made, cap_made;
    uint32_t *mslots;
    size_t n_mslots;
} wbatch;

static uint64_t bytes_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: keys are short and the table is private */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static void batch_rehash(wbatch *b, size_t n_slots)
{
    free(b->slots);
    b->slots = xcalloc(n_slots, sizeof *b->slots);
    b->n_slots = n_slots;
    for (size_t i = 0; i < b->n_g; i++) {
        size_t j = bytes_hash(b->keys.p + b->g[i].key_off, b->g[i].key_len) & (n_slots - 1);
        while (b->slots[j])
            j = (j + 1) & (n_slots - 1);
        b->slots[j] = (uint32_t)(i + 1);
    }
}

/* Index of the batch group of name=value, looked up in the terms on first use. */
static int batch_term(tsdb_index *ix, MDB_txn *txn, wbatch *b, tsdb_str name, tsdb_str value,
                      unsigned char *keybuf, size_t *gi)
{
    if ((b->n_g + 1) * 2 > b->n_slots)
        batch_rehash(b, b->n_slots ? b->n_slots * 2 : 1024);
    size_t len = name.len + 1 + value.len;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < name.len; i++)
        h = (h ^ (unsigned char)name.p[i]) * 1099511628211ULL;
    h = h * 1099511628211ULL; /* the 0x00 separator */
    for (size_t i = 0; i < value.len; i++)
        h = (h ^ (unsigned char)value.p[i]) * 1099511628211ULL;
    h ^= h >> 29;
    size_t j = h & (b->n_slots - 1);
    while (b->slots[j]) {
        tgroup *c = &b->g[b->slots[j] - 1];
        const unsigned char *p = b->keys.p + c->key_off;
        if (c->key_len == len && c->name_len == name.len && memcmp(p, name.p, name.len) == 0 &&
            (value.len == 0 || memcmp(p + name.len + 1, value.p, value.len) == 0)) {
            *gi = b->slots[j] - 1;
            return 0;
        }
        j = (j + 1) & (b->n_slots - 1);
    }
    if (b->n_g == b->cap_g) {
        b->cap_g = b->cap_g ? b->cap_g * 2 : 256;
        b->g = xrealloc(b->g, b->cap_g * sizeof *b->g);
    }
    tgroup *g = &b->g[b->n_g];
    *g = (tgroup){h, b->keys.len, name.len, len, 0, 0, 0, NULL, 0, 0};
    tsdb_buf_put(&b->keys, name.p, name.len);
    tsdb_buf_putc(&b->keys, 0);
    tsdb_buf_put(&b->keys, value.p, value.len);
    const wt_ent *e = wt_find(ix, h, name, value);
    int rc = 0;
    if (e) {
        g->tid = e->tid;
        g->count = e->count;
    } else {
        rc = term_find(ix, txn, name, value, keybuf, &g->tid, &g->count);
    }
    if (rc == MDB_NOTFOUND) {
        g->tid = 0;
        rc = 0;
    }
    if (rc != 0)
        return rc;
    b->slots[j] = (uint32_t)(++b->n_g);
    *gi = b->n_g - 1;
    return 0;
}

static void group_add(tgroup *g, uint64_t id)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->ids = xrealloc(g->ids, g->cap * sizeof *g->ids);
    }
    g->ids[g->n++] = id;
}

static void made_rehash(wbatch *b, size_t n_slots)
{
    free(b->mslots);
    b->mslots = xcalloc(n_slots, sizeof *b->mslots);
    b->n_mslots = n_slots;
    for (size_t i = 0; i < b->n_made; i++) {
        size_t j = bytes_hash(b->made_refs.p + b->made[i].off, b->made[i].len) & (n_slots - 1);
        while (b->mslots[j])
            j = (j + 1) & (n_slots - 1);
        b->mslots[j] = (uint32_t)(i + 1);
    }
}

/* Id of a series created in this transaction with these refs, or 0. */
static uint64_t made_find(const wbatch *b, const unsigned char *refs, size_t len)
{
    if (b->n_mslots == 0)
        return 0;
    size_t j = bytes_hash(refs, len) & (b->n_mslots - 1);
    while (b->mslots[j]) {
        const made_ent *m = &b->made[b->mslots[j] - 1];
        if (m->len == len && memcmp(b->made_refs.p + m->off, refs, len) == 0)
            return m->id;
        j = (j + 1) & (b->n_mslots - 1);
    }
    return 0;
}

static void made_add(wbatch *b, const unsigned char *refs, size_t len, uint64_t id)
{
    if ((b->n_made + 1) * 2 > b->n_mslots)
        made_rehash(b, b->n_mslots ? b->n_mslots * 2 : 1024);
    if (b->n_made == b->cap_made) {
        b->cap_made = b->cap_made ? b->cap_made * 2 : 256;
        b->made = xrealloc(b->made, b->cap_made * sizeof *b->made);
    }
    b->made[b->n_made] = (made_ent){b->made_refs.len, len, id};
    tsdb_buf_put(&b->made_refs, refs, len);
    size_t j = bytes_hash(refs, len) & (b->n_mslots - 1);
    while (b->mslots[j])
        j = (j + 1) & (b->n_mslots - 1);
    b->mslots[j] = (uint32_t)(++b->n_made);
}

static void batch_free(wbatch *b)
{
    for (size_t i = 0; i < b->n_g; i++)
        free(b->g[i].ids);
    free(b->g);
    free(b->slots);
    tsdb_buf_fini(&b->keys);
    idvec_free(&b->all);
    tsdb_buf_fini(&b->made_refs);
    free(b->made);
    free(b->mslots);
    memset(b, 0, sizeof *b);
}

static const wbatch *sort_batch; /* qsort has no context argument; the writer is single */

static int group_cmp(const void *x, const void *y)
{
    const tgroup *a = &sort_batch->g[*(const uint32_t *)x];
    const tgroup *b = &sort_batch->g[*(const uint32_t *)y];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(sort_batch->keys.p + a->key_off, sort_batch->keys.p + b->key_off, n);
    if (c != 0)
        return c;
    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Writes the series records of the created series (ascending ids above every stored one, so
 * each record is extended at its end or appended). */
static int flush_records(tsdb_index *ix, MDB_txn *txn, wbatch *b)
{
    tsdb_buf rec;
    tsdb_buf_init(&rec);
    int rc = 0;
    size_t i = 0;
    while (i < b->n_made && rc == 0) {
        uint64_t key = b->made[i].id >> SERIES_SHIFT;
        size_t kx = (size_t)key;
        MDB_val k = {sizeof kx, &kx}, v;
        rec.len = 0;
        rc = mdb_get(txn, ix->db_series, &k, &v);
        int existed = rc == 0;
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc != 0)
            break;
        if (existed)
            tsdb_buf_put(&rec, v.mv_data, v.mv_size);
        for (; i < b->n_made && b->made[i].id >> SERIES_SHIFT == key; i++) {
            tsdb_buf_put_uvarint(&rec, b->made[i].id & ((1u << SERIES_SHIFT) - 1));
            tsdb_buf_put_uvarint(&rec, b->made[i].len);
            tsdb_buf_put(&rec, b->made_refs.p + b->made[i].off, b->made[i].len);
        }
        MDB_val nv = {rec.len, rec.p};
        rc = mdb_put(txn, ix->db_series, &k, &nv, existed ? 0 : MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            rc = mdb_put(txn, ix->db_series, &k, &nv, 0);
    }
    tsdb_buf_fini(&rec);
    return rc;
}

static int batch_flush(tsdb_index *ix, MDB_txn *txn, wbatch *b, unsigned char *keybuf)
{
    int rc = flush_records(ix, txn, b);
    if (rc != 0 || b->n_made == 0)
        return rc;
    uint32_t *order = xmalloc((b->n_g + 1) * sizeof *order);
    size_t n_order = 0;
    for (size_t i = 0; i < b->n_g; i++) {
        if (b->g[i].n > 0)
            order[n_order++] = (uint32_t)i;
    }
    sort_batch = b;
    qsort(order, n_order, sizeof *order, group_cmp);
    sort_batch = NULL;
    MDB_cursor *c = NULL;
    rc = mdb_cursor_open(txn, ix->db_post, &c);
    for (size_t i = 0; i < n_order && rc == 0; i++) {
        tgroup *g = &b->g[order[i]];
        uint64_t added = 0;
        rc = post_add(ix, txn, c, g->tid, g->ids, g->n, &added);
        if (rc != 0)
            break;
        g->count += added;
        const char *p = (const char *)b->keys.p + g->key_off;
        tsdb_str name = {p, g->name_len},
                 value = {p + g->name_len + 1, g->key_len - g->name_len - 1};
        size_t kl = term_key(ix, name, value, keybuf, NULL);
        rc = term_count_add(ix, txn, keybuf, kl, g->tid, (int64_t)added);
    }
    uint64_t added = 0;
    if (rc == 0)
        rc = post_add(ix, txn, c, ALL_TID, b->all.v, b->all.n, &added);
    if (c)
        mdb_cursor_close(c);
    free(order);
    return rc;
}

struct resolve_ctx {
    const tsdb_labels *sets;
    size_t n;
    uint64_t *ids;
    uint8_t *created;
    uint64_t next;     /* next id after the transaction */
    uint32_t next_tid; /* next tid after the transaction */
    wbatch b;          /* the terms of the last run, cached once it commits */
};

static int resolve_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    struct resolve_ctx *ctx = vctx;
    uint64_t next = ix->next_id;
    uint32_t next_tid = ix->next_tid;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, ix->db_post, &c);
    if (rc != 0)
        return rc;
    unsigned char *keybuf = xmalloc(ix->maxkey + 16);
    batch_free(&ctx->b); /* a run again after map growth starts over */
    wbatch *bp = &ctx->b;
    tsdb_buf_init(&bp->keys);
    tsdb_buf_init(&bp->made_refs);
    tsdb_buf refs;
    tsdb_buf_init(&refs);
    size_t cap = 16;
    size_t *gi = xmalloc(cap * sizeof *gi);
    uint32_t *tids = xmalloc(cap * sizeof *tids);
    uint64_t *counts = xmalloc(cap * sizeof *counts);
    for (size_t i = 0; i < ctx->n && rc == 0; i++) {
        tsdb_labels l = ctx->sets[i];
        if (l.n > cap) {
            cap = l.n;
            gi = xrealloc(gi, cap * sizeof *gi);
            tids = xrealloc(tids, cap * sizeof *tids);
            counts = xrealloc(counts, cap * sizeof *counts);
        }
        int missing = 0, fresh = 0;
        for (size_t j = 0; j < l.n && rc == 0; j++) {
            rc = batch_term(ix, txn, bp, l.v[j].name, l.v[j].value, keybuf, &gi[j]);
            if (rc == 0) {
                missing |= bp->g[gi[j]].tid == 0;
                fresh |= bp->g[gi[j]].fresh;
            }
        }
        if (rc != 0)
            break;
        refs.len = 0;
        if (!missing) {
            for (size_t j = 0; j < l.n; j++) {
                tids[j] = bp->g[gi[j]].tid;
                counts[j] = bp->g[gi[j]].count;
                refs_put(&refs, tids[j]);
            }
            uint64_t id = made_find(bp, refs.p, refs.len);
            if (id == 0 && !fresh) {
                rc = find_refs(ix, txn, c, ix->next_id, tids, counts, l.n, refs.p, refs.len, &id);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
                if (rc != 0)
                    break;
            }
            if (id != 0) {
                ctx->ids[i] = id;
                if (ctx->created)
                    ctx->created[i] = 0;
                continue;
            }
        }
        if (next == UINT64_MAX) {
            rc = tsdb_errf(err, TSDB_ELIMIT, -1, "index: series ids exhausted");
            break;
        }
        uint64_t id = next++;
        refs.len = 0;
        for (size_t j = 0; j < l.n && rc == 0; j++) {
            tgroup *g = &bp->g[gi[j]];
            if (g->tid == 0) {
                rc = term_create(ix, txn, &next_tid, l.v[j].name, l.v[j].value, &g->tid);
                g->fresh = 1;
            }
            refs_put(&refs, g->tid);
            group_add(g, id);
        }
        if (rc == TSDB_ELIMIT)
            rc = tsdb_errf(err, TSDB_ELIMIT, -1, "index: term ids exhausted");
        if (rc != 0)
            break;
        made_add(bp, refs.p, refs.len, id);
        idvec_push(&bp->all, id);
        ctx->ids[i] = id;
        if (ctx->created)
            ctx->created[i] = 1;
    }
    if (rc == 0)
        rc = batch_flush(ix, txn, bp, keybuf);
    if (rc == 0)
        rc = put_meta_ids(ix, txn, next, next_tid);
    ctx->next = next;
    ctx->next_tid = next_tid;
    tsdb_buf_fini(&refs);
    free(gi);
    free(tids);
    free(counts);
    free(keybuf);
    mdb_cursor_close(c);
    return rc;
}

int tsdb__index_resolve(tsdb_index *ix, const tsdb_labels *sets, size_t n, uint64_t *ids,
                        uint8_t *created, tsdb_err *err)
{
    if (n == 0)
        return TSDB_OK;
    int rc = check_names(sets, n, err);
    if (rc != TSDB_OK)
        return rc;
    struct resolve_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.sets = sets;
    ctx.n = n;
    ctx.ids = ids;
    ctx.created = created;
    rc = run_write(ix, resolve_fn, &ctx, err);
    if (rc == TSDB_OK) {
        __atomic_store_n(&ix->next_id, ctx.next, __ATOMIC_RELEASE);
        ix->next_tid = ctx.next_tid;
        for (size_t i = 0; i < ctx.b.n_g; i++) {
            const tgroup *g = &ctx.b.g[i];
            if (g->tid != 0)
                wt_put(ix, g->h, ctx.b.keys.p + g->key_off, g->key_len, g->tid, g->count);
        }
    }
    batch_free(&ctx.b);
    return rc;
}

/* ---- Put (WAL replay) and delete (garbage collection) -------------------------------------- */

struct put_ctx {
    uint64_t id;
    tsdb_labels l;
    uint64_t next;
    uint32_t next_tid;
};

static int put_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    struct put_ctx *ctx = vctx;
    uint32_t next_tid = ix->next_tid;
    unsigned char *keybuf = xmalloc(ix->maxkey + 16);
    uint32_t *tids = xmalloc((ctx->l.n + 1) * sizeof *tids);
    tsdb_buf refs;
    tsdb_buf_init(&refs);
    ctx->next = ix->next_id > ctx->id ? ix->next_id : ctx->id + 1;
    int rc = 0, missing = 0;
    for (size_t j = 0; j < ctx->l.n && rc == 0; j++) {
        rc = term_find(ix, txn, ctx->l.v[j].name, ctx->l.v[j].value, keybuf, &tids[j], NULL);
        if (rc == MDB_NOTFOUND) {
            tids[j] = 0;
            missing = 1;
            rc = 0;
        }
        refs_put(&refs, tids[j]);
    }
    const unsigned char *have;
    size_t have_len;
    if (rc == 0)
        rc = refs_get(ix, txn, ctx->id, &have, &have_len);
    if (rc == 0) {
        if (missing || have_len != refs.len || memcmp(have, refs.p, refs.len) != 0)
            rc =
                tsdb_errf(err, TSDB_ECORRUPT, -1, "index: series %llu exists with different labels",
                          (unsigned long long)ctx->id);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
        refs.len = 0;
        MDB_cursor *c = NULL;
        rc = mdb_cursor_open(txn, ix->db_post, &c);
        for (size_t j = 0; j < ctx->l.n && rc == 0; j++) {
            if (tids[j] == 0) {
                rc = term_create(ix, txn, &next_tid, ctx->l.v[j].name, ctx->l.v[j].value, &tids[j]);
                if (rc == TSDB_ELIMIT)
                    rc = tsdb_errf(err, TSDB_ELIMIT, -1, "index: term ids exhausted");
            }
            refs_put(&refs, tids[j]);
            uint64_t added = 0;
            if (rc == 0)
                rc = post_add(ix, txn, c, tids[j], &ctx->id, 1, &added);
            if (rc == 0) {
                size_t kl = term_key(ix, ctx->l.v[j].name, ctx->l.v[j].value, keybuf, NULL);
                rc = term_count_add(ix, txn, keybuf, kl, tids[j], (int64_t)added);
            }
        }
        uint64_t added = 0;
        if (rc == 0)
            rc = post_add(ix, txn, c, ALL_TID, &ctx->id, 1, &added);
        if (rc == 0)
            rc = record_set(ix, txn, ctx->id, refs.p, refs.len);
        if (c)
            mdb_cursor_close(c);
    }
    if (rc == 0)
        rc = put_meta_ids(ix, txn, ctx->next, next_tid);
    ctx->next_tid = next_tid;
    tsdb_buf_fini(&refs);
    free(tids);
    free(keybuf);
    return rc;
}

int tsdb__index_put_series(tsdb_index *ix, uint64_t id, tsdb_labels l, tsdb_err *err)
{
    if (id == 0 || id == UINT64_MAX)
        return tsdb_errf(err, TSDB_EINVAL, -1, "index: invalid series id");
    int rc = check_names(&l, 1, err);
    if (rc != TSDB_OK)
        return rc;
    struct put_ctx ctx = {id, l, 0, 0};
    rc = run_write(ix, put_fn, &ctx, err);
    if (rc == TSDB_OK) {
        __atomic_store_n(&ix->next_id, ctx.next, __ATOMIC_RELEASE);
        ix->next_tid = ctx.next_tid;
    }
    return rc;
}

struct del_ctx {
    const uint64_t *ids;
    size_t n;
};

typedef struct tid_id {
    uint32_t tid;
    uint64_t id;
} tid_id;

static int tid_id_cmp(const void *a, const void *b)
{
    const tid_id *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int del_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    (void)err;
    struct del_ctx *ctx = vctx;
    uint64_t *ids = xmalloc(ctx->n * sizeof *ids);
    memcpy(ids, ctx->ids, ctx->n * sizeof *ids);
    qsort(ids, ctx->n, sizeof *ids, u64_cmp);
    size_t n = ctx->n;
    if (n > 1) {
        size_t w = 1;
        for (size_t i = 1; i < n; i++)
            if (ids[i] != ids[w - 1])
                ids[w++] = ids[i];
        n = w;
    }
    tid_id *pairs = NULL;
    size_t n_pairs = 0, cap_pairs = 0, n_gone = 0;
    uint32_t tids[64];
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const unsigned char *refs;
        size_t len;
        rc = refs_get(ix, txn, ids[i], &refs, &len);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        size_t cnt = refs_count(refs, len);
        if (n_pairs + cnt > cap_pairs) {
            cap_pairs = (n_pairs + cnt) * 2 + 64;
            pairs = xrealloc(pairs, cap_pairs * sizeof *pairs);
        }
        /* Label sets are bounded by validation; decode in slices of the stack array. */
        const unsigned char *p = refs, *end = refs + len;
        while (p < end && rc == 0) {
            size_t k = 0;
            const unsigned char *q = p;
            while (q < end && k < 64) {
                uint64_t t;
                if (uv_get(&q, end, &t) != 0 || t == ALL_TID || t > MAX_TID) {
                    rc = MDB_CORRUPTED;
                    break;
                }
                tids[k++] = (uint32_t)t;
            }
            for (size_t j = 0; j < k && rc == 0; j++)
                pairs[n_pairs++] = (tid_id){tids[j], ids[i]};
            p = q;
        }
        if (rc == 0)
            rc = record_set(ix, txn, ids[i], NULL, 0);
        if (rc == 0)
            ids[n_gone++] = ids[i]; /* n_gone <= i: compacts the deleted ids in place */
    }
    if (rc == 0 && n_pairs > 1)
        qsort(pairs, n_pairs, sizeof *pairs, tid_id_cmp);
    MDB_cursor *c = NULL;
    if (rc == 0)
        rc = mdb_cursor_open(txn, ix->db_post, &c);
    unsigned char *keybuf = xmalloc(ix->maxkey + 16);
    uint64_t *gids = xmalloc((n_pairs + 1) * sizeof *gids);
    size_t i = 0;
    while (rc == 0 && i < n_pairs) {
        size_t j = i, k = 0;
        while (j < n_pairs && pairs[j].tid == pairs[i].tid)
            gids[k++] = pairs[j++].id;
        uint64_t removed = 0;
        rc = post_del(ix, txn, c, pairs[i].tid, gids, k, &removed);
        if (rc == 0 && removed > 0) {
            tsdb_str name, value;
            rc = tstr_get(ix, txn, pairs[i].tid, &name, &value);
            if (rc == 0) {
                size_t kl = term_key(ix, name, value, keybuf, NULL);
                rc = term_count_add(ix, txn, keybuf, kl, pairs[i].tid, -(int64_t)removed);
            }
        }
        i = j;
    }
    uint64_t removed = 0;
    if (rc == 0)
        rc = post_del(ix, txn, c, ALL_TID, ids, n_gone, &removed);
    if (c)
        mdb_cursor_close(c);
    free(gids);
    free(keybuf);
    free(pairs);
    free(ids);
    return rc;
}

int tsdb__index_delete_series(tsdb_index *ix, const uint64_t *ids, size_t n, tsdb_err *err)
{
    if (n == 0)
        return TSDB_OK;
    struct del_ctx ctx = {ids, n};
    int rc = run_write(ix, del_fn, &ctx, err);
    if (rc == TSDB_OK)
        wt_clear(ix); /* terms may be gone: their name=value would get new tids */
    return rc;
}

/* ---- Read handles -------------------------------------------------------------------------- */

static void rd_exit(tsdb_index *ix);

/* Brackets one read operation: waits out an exclusive section (map resize, cache clear), then
 * keeps the next one from starting until rd_exit. Operations never nest (callbacks run
 * outside). The count is an atomic: an uncontended read takes no lock. */
static uint64_t rd_enter(tsdb_index *ix)
{
    for (;;) {
        __atomic_add_fetch(&ix->n_active, 1, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&ix->growing, __ATOMIC_SEQ_CST))
            return __atomic_load_n(&ix->map_gen, __ATOMIC_ACQUIRE);
        rd_exit(ix); /* step back (waking the exclusive section) and wait for it */
        pthread_mutex_lock(&ix->mu);
        while (__atomic_load_n(&ix->growing, __ATOMIC_SEQ_CST))
            pthread_cond_wait(&ix->cv, &ix->mu);
        pthread_mutex_unlock(&ix->mu);
    }
}

static void rd_exit(tsdb_index *ix)
{
    if (__atomic_sub_fetch(&ix->n_active, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    if (__atomic_load_n(&ix->growing, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&ix->mu);
        pthread_cond_broadcast(&ix->cv);
        pthread_mutex_unlock(&ix->mu);
        return;
    }
    if (!__atomic_load_n(&ix->tc_full, __ATOMIC_RELAXED))
        return;
    /* A full term cache is emptied in an exclusive section when no read runs; if reads keep
     * coming, a later exit tries again. */
    struct timespec dl;
    deadline_after_ms(&dl, 5);
    pthread_mutex_lock(&ix->mu);
    if (__atomic_load_n(&ix->tc_full, __ATOMIC_RELAXED) && excl_begin(ix, &dl) == 0) {
        tc_clear(ix);
        excl_end(ix);
    }
    pthread_mutex_unlock(&ix->mu);
}

static void rd_drop_cursors(tsdb_index_rd *r)
{
    if (r->c_post)
        mdb_cursor_close(r->c_post);
    if (r->c_terms)
        mdb_cursor_close(r->c_terms);
    if (r->c_series)
        mdb_cursor_close(r->c_series);
    r->c_post = r->c_terms = r->c_series = NULL;
    r->blk_ok = 0;
}

/* rd_enter for an operation on handle r. An LMDB cursor keeps pointers to the pages it sits on
 * (and re-uses them when positioned again), so cursors opened before a resize are dropped, and
 * so is the remembered series record. */
static uint64_t rd_op_enter(tsdb_index_rd *r)
{
    uint64_t gen = rd_enter(r->ix);
    if (gen != r->gen) {
        rd_drop_cursors(r);
        r->gen = gen;
    }
    return gen;
}

int tsdb__index_rd_begin(tsdb_index *ix, tsdb_index_rd **out, tsdb_err *err)
{
    pthread_mutex_lock(&ix->mu);
    tsdb_index_rd *r = ix->rd_pool;
    if (r)
        ix->rd_pool = r->next;
    pthread_mutex_unlock(&ix->mu);
    if (r == NULL) {
        r = xcalloc(1, sizeof *r);
        r->ix = ix;
    }
    uint64_t gen = 0;
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        gen = rd_enter(ix);
        rc = 0;
        if (r->txn) {
            rc = mdb_txn_renew(r->txn);
            if (rc != 0) {
                mdb_txn_abort(r->txn);
                r->txn = NULL;
            }
        }
        if (r->txn == NULL)
            rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &r->txn);
        rd_exit(ix);
        if (rc != 0)
            r->txn = NULL;
        /* The writing process grew the map: adopt its size (read-only handles only; in the
         * writing process the writer resizes the map for everyone). */
        if (rc != MDB_MAP_RESIZED || !ix->read_only || resize_map(ix, 0, NULL) != TSDB_OK)
            break;
    }
    if (rc != 0) {
        free(r);
        return map_err(rc, "begin read", err);
    }
    r->next = NULL;
    r->gen = gen;
    r->blk_ok = 0;
    /* The snapshot's next id bounds every stored id (another process may have written since
     * this one opened the index). */
    rd_enter(ix);
    MDB_val nid;
    rc = meta_get(r->txn, ix->db_meta, "next_id", &nid);
    if (rc == 0 && nid.mv_size != 8)
        rc = MDB_CORRUPTED;
    if (rc == 0)
        r->limit = be64(nid.mv_data);
    rd_exit(ix);
    if (rc != 0) {
        mdb_txn_abort(r->txn);
        free(r);
        return map_err(rc, "begin read", err);
    }
    *out = r;
    return TSDB_OK;
}

void tsdb__index_rd_end(tsdb_index_rd *r)
{
    if (r == NULL)
        return;
    tsdb_index *ix = r->ix;
    rd_enter(ix);
    rd_drop_cursors(r);
    mdb_txn_reset(r->txn);
    rd_exit(ix);
    pthread_mutex_lock(&ix->mu);
    r->next = ix->rd_pool;
    ix->rd_pool = r;
    pthread_mutex_unlock(&ix->mu);
}

static int rd_cursor(tsdb_index_rd *r, MDB_dbi dbi, MDB_cursor **c)
{
    MDB_cursor **slot = dbi == r->ix->db_post    ? &r->c_post
                        : dbi == r->ix->db_terms ? &r->c_terms
                                                 : &r->c_series;
    if (*slot == NULL) {
        int rc = mdb_cursor_open(r->txn, dbi, slot);
        if (rc != 0)
            return rc;
    }
    *c = *slot;
    return 0;
}

/* Refs of series id (borrowed until the operation ends). The last series record read is kept,
 * so ascending ids of one record cost one B-tree lookup. */
static int rd_refs(tsdb_index_rd *r, uint64_t id, const unsigned char **refs, size_t *len)
{
    uint64_t key = id >> SERIES_SHIFT;
    if (!r->blk_ok || r->blk_key != key) {
        size_t kx = (size_t)key;
        MDB_val k = {sizeof kx, &kx};
        r->blk_ok = 0;
        /* A cursor: LMDB searches only the current leaf page when the key falls within it. */
        MDB_cursor *c = NULL;
        int rc = rd_cursor(r, r->ix->db_series, &c);
        if (rc == 0)
            rc = mdb_cursor_get(c, &k, &r->blk, MDB_SET_KEY);
        if (rc != 0)
            return rc;
        r->blk_key = key;
        r->blk_ok = 1;
    }
    int rc = record_find(r->blk.mv_data, r->blk.mv_size, id, refs, len);
    return rc == 1 ? 0 : rc == 0 ? MDB_NOTFOUND : rc;
}

/* Strings of term tid, from the cache or the map (borrowed until the operation ends). */
static int rd_term(tsdb_index_rd *r, uint32_t tid, tsdb_str *name, tsdb_str *value)
{
    const tc_ent *e = tc_get(r->ix, tid);
    if (e == NULL) {
        int rc = tstr_get(r->ix, r->txn, tid, name, value);
        if (rc != 0)
            return rc;
        e = tc_put(r->ix, tid, *name, *value);
        if (e == NULL)
            return 0;
    }
    *name = (tsdb_str){e->s, e->nlen};
    *value = (tsdb_str){e->s + e->nlen + 1, e->vlen};
    return 0;
}

/* Is name a before name b (memcmp order, shorter first)? Names are never empty. */
static inline int name_before(tsdb_str a, tsdb_str b)
{
    if (a.p[0] != b.p[0])
        return (unsigned char)a.p[0] < (unsigned char)b.p[0];
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.p, b.p, n);
    return c < 0 || (c == 0 && a.len < b.len);
}

/* Label set of refs, copied into the arena (strings NUL-terminated). */
static int rd_decode(tsdb_index_rd *r, const unsigned char *refs, size_t len, tsdb_arena *a,
                     tsdb_labels *out)
{
    size_t n = refs_count(refs, len);
    tsdb_label stack[24];
    tsdb_label *v = n <= 24 ? stack : tsdb_arena_alloc(a, n * sizeof *v);
    const unsigned char *p = refs, *end = refs + len;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t t;
        if (*p < 0x80 && p < end)
            t = *p++;
        else if (uv_get(&p, end, &t) != 0)
            return MDB_CORRUPTED;
        if (t == ALL_TID || t > MAX_TID)
            return MDB_CORRUPTED;
        int rc = rd_term(r, (uint32_t)t, &v[i].name, &v[i].value);
        if (rc != 0)
            return rc;
        if (i > 0 && !name_before(v[i - 1].name, v[i].name))
            return MDB_CORRUPTED; /* labels are stored sorted by unique name */
        bytes += v[i].name.len + v[i].value.len + 2;
    }
    if (p != end)
        return MDB_CORRUPTED;
    char *s = tsdb_arena_alloc(a, n * sizeof(tsdb_label) + bytes + 1);
    tsdb_label *dst = (tsdb_label *)(void *)s;
    s += n * sizeof(tsdb_label);
    for (size_t i = 0; i < n; i++) {
        size_t nl = v[i].name.len, vl = v[i].value.len;
        if (v[i].value.p == v[i].name.p + nl + 1) {
            memcpy(s, v[i].name.p, nl + vl + 2); /* a cached "name\0value\0" */
        } else {
            memcpy(s, v[i].name.p, nl);
            s[nl] = 0;
            memcpy(s + nl + 1, v[i].value.p, vl);
            s[nl + 1 + vl] = 0;
        }
        dst[i].name = (tsdb_str){s, nl};
        dst[i].value = (tsdb_str){s + nl + 1, vl};
        s += nl + vl + 2;
    }
    *out = (tsdb_labels){n ? dst : NULL, n};
    return 0;
}

static int rd_labels_locked(tsdb_index_rd *r, uint64_t id, tsdb_arena *a, tsdb_labels *out)
{
    const unsigned char *refs;
    size_t len;
    int rc = rd_refs(r, id, &refs, &len);
    if (rc == 0)
        rc = rd_decode(r, refs, len, a, out);
    return map_err(rc, "read series", NULL);
}

/* Value of label name in refs ("" if absent). 0 or an LMDB code. */
static int rd_value_in(tsdb_index_rd *r, const unsigned char *refs, size_t len, tsdb_str name,
                       tsdb_str *value)
{
    const unsigned char *p = refs, *end = refs + len;
    *value = (tsdb_str){"", 0};
    while (p < end) {
        uint64_t t;
        if (uv_get(&p, end, &t) != 0 || t == ALL_TID || t > MAX_TID)
            return MDB_CORRUPTED;
        tsdb_str n2, v2;
        int rc = rd_term(r, (uint32_t)t, &n2, &v2);
        if (rc != 0)
            return rc;
        int c = tsdb_str_cmp(n2, name);
        if (c == 0) {
            *value = v2;
            return 0;
        }
        if (c > 0)
            return 0; /* sorted by name: not present */
    }
    return 0;
}

static int rd_lookup_locked(tsdb_index_rd *r, tsdb_labels l, uint64_t *id)
{
    if (check_names(&l, 1, NULL) != TSDB_OK)
        return TSDB_ENOTFOUND;
    unsigned char *keybuf = xmalloc(r->ix->maxkey + 16);
    uint32_t *tids = xmalloc((l.n + 1) * sizeof *tids);
    uint64_t *counts = xmalloc((l.n + 1) * sizeof *counts);
    tsdb_buf refs;
    tsdb_buf_init(&refs);
    int rc = 0;
    for (size_t j = 0; j < l.n && rc == 0; j++) {
        rc = term_find(r->ix, r->txn, l.v[j].name, l.v[j].value, keybuf, &tids[j], &counts[j]);
        if (rc == 0)
            refs_put(&refs, tids[j]);
    }
    MDB_cursor *c = NULL;
    if (rc == 0)
        rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = find_refs(r->ix, r->txn, c, r->limit, tids, counts, l.n, refs.p, refs.len, id);
    tsdb_buf_fini(&refs);
    free(counts);
    free(tids);
    free(keybuf);
    return map_err(rc, "lookup", NULL);
}

/* Appends to out the ids of series with name=value. */
static int read_postings(tsdb_index_rd *r, tsdb_str name, tsdb_str value, idvec *out)
{
    if (name.len == 0 || name.len > INDEX_MAX_NAME)
        return 0; /* never stored (and would not fit a key buffer) */
    unsigned char *kb = xmalloc(r->ix->maxkey + 16);
    uint32_t tid;
    int rc = term_find(r->ix, r->txn, name, value, kb, &tid, NULL);
    free(kb);
    if (rc == MDB_NOTFOUND)
        return 0;
    MDB_cursor *c = NULL;
    if (rc == 0)
        rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = post_read(c, tid, 0, UINT64_MAX, r->limit, out);
    return rc;
}

static int read_all(tsdb_index_rd *r, idvec *out)
{
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = post_read(c, ALL_TID, 0, UINT64_MAX, r->limit, out);
    return rc;
}

/* Number of series with name=value (the term's count). */
static int count_postings(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n)
{
    *n = 0;
    if (name.len == 0 || name.len > INDEX_MAX_NAME)
        return 0; /* never stored (and would not fit a key buffer) */
    unsigned char *kb = xmalloc(r->ix->maxkey + 16);
    uint32_t tid;
    int rc = term_find(r->ix, r->txn, name, value, kb, &tid, n);
    free(kb);
    if (rc == MDB_NOTFOUND) {
        *n = 0;
        return 0;
    }
    return rc;
}

static int rd_count_locked(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n)
{
    return map_err(count_postings(r, name, value, n), "count", NULL);
}

/* Visits every term of name in value order (terms under a hashed key come last, in no order);
 * fn gets the term's tid and value. fn returns 0 to go on, 1 to stop, or an error. Seeks to
 * name\0prefix first. */
typedef int (*scan_fn)(tsdb_index_rd *r, uint32_t tid, tsdb_str value, int hashed, void *ctx);

static int scan_hashed(tsdb_index_rd *r, const MDB_val *v, tsdb_str name, scan_fn fn, void *ctx)
{
    if (v->mv_size == 0 || v->mv_size % TERM_REC != 0)
        return MDB_CORRUPTED;
    for (size_t off = 0; off < v->mv_size; off += TERM_REC) {
        uint32_t tid = be32((const unsigned char *)v->mv_data + off);
        tsdb_str n2, v2;
        int rc = rd_term(r, tid, &n2, &v2);
        if (rc != 0)
            return rc;
        if (!tsdb_str_eq(n2, name))
            return MDB_CORRUPTED;
        if ((rc = fn(r, tid, v2, 1, ctx)) != 0)
            return rc;
    }
    return 0;
}

static int scan_values(tsdb_index_rd *r, tsdb_str name, tsdb_str prefix, scan_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_terms, &c);
    if (rc != 0)
        return rc;
    size_t kl = name.len + 1 + prefix.len;
    if (kl > r->ix->maxkey)
        kl = name.len + 1; /* an over-long prefix: scan the whole name */
    unsigned char *kb = xmalloc(kl + 2);
    memcpy(kb, name.p, name.len);
    kb[name.len] = 0;
    if (kl > name.len + 1)
        memcpy(kb + name.len + 1, prefix.p, prefix.len);
    MDB_val k = {kl, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const unsigned char *p = k.mv_data;
        if (k.mv_size < name.len + 1 || memcmp(p, name.p, name.len) != 0 || p[name.len] != 0)
            break;
        if (key_is_hashed(&k, name.len)) {
            rc = scan_hashed(r, &v, name, fn, ctx);
        } else {
            if (prefix.len && kl > name.len + 1 &&
                (k.mv_size < kl || memcmp(p + name.len + 1, prefix.p, prefix.len) != 0)) {
                /* Past the prefix range: the only keys left worth visiting are hashed ones. */
                kb[name.len + 1] = HASHED_KEY_MARK;
                k = (MDB_val){name.len + 2, kb};
                rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
                kl = name.len + 1; /* no more prefix checks */
                continue;
            }
            if (v.mv_size != TERM_REC) {
                rc = MDB_CORRUPTED;
                break;
            }
            tsdb_str val = {(const char *)p + name.len + 1, k.mv_size - name.len - 1};
            rc = fn(r, be32(v.mv_data), val, 0, ctx);
        }
        if (rc != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    free(kb);
    if (rc == 1 || rc == MDB_NOTFOUND)
        rc = 0;
    return rc;
}

/* ---- Names and values ---------------------------------------------------------------------- */

static int rd_names_locked(tsdb_index_rd *r, tsdb_arena *a, tsdb_str **out, size_t *n)
{
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_terms, &c);
    size_t cnt = 0, cap = 16;
    tsdb_str *names = tsdb_arena_alloc(a, cap * sizeof *names);
    unsigned char seek[INDEX_MAX_NAME + 2] = {1};
    MDB_val k = {1, seek}, v;
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const unsigned char *p = k.mv_data;
        const unsigned char *z = memchr(p, 0, k.mv_size);
        if (z == NULL || z == p) {
            rc = MDB_CORRUPTED;
            break;
        }
        size_t nl = (size_t)(z - p);
        if (nl > INDEX_MAX_NAME) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (cnt == cap) {
            names = tsdb_arena_realloc(a, names, cap * sizeof *names, cap * 2 * sizeof *names);
            cap *= 2;
        }
        names[cnt++] = tsdb_arena_str(a, (tsdb_str){(const char *)p, nl});
        memcpy(seek, p, nl);
        seek[nl] = 1;
        k = (MDB_val){nl + 1, seek};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc != 0)
        return map_err(rc, "names", NULL);
    *out = names;
    *n = cnt;
    return TSDB_OK;
}

struct values_ctx {
    tsdb_arena *a;
    tsdb_str *v;
    size_t n, cap;
    int unsorted;
};

static int values_fn(tsdb_index_rd *r, uint32_t tid, tsdb_str value, int hashed, void *vctx)
{
    (void)r;
    (void)tid;
    struct values_ctx *x = vctx;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        x->v = tsdb_arena_realloc(x->a, x->v, x->cap * sizeof *x->v, nc * sizeof *x->v);
        x->cap = nc;
    }
    x->v[x->n++] = tsdb_arena_str(x->a, value);
    x->unsorted |= hashed;
    return 0;
}

static int str_qcmp(const void *a, const void *b)
{
    return tsdb_str_cmp(*(const tsdb_str *)a, *(const tsdb_str *)b);
}

static int rd_values_locked(tsdb_index_rd *r, tsdb_str name, tsdb_arena *a, tsdb_str **out,
                            size_t *n)
{
    struct values_ctx x = {a, NULL, 0, 0, 0};
    if (name.len == 0 || name.len > INDEX_MAX_NAME) {
        *out = NULL;
        *n = 0;
        return TSDB_OK;
    }
    int rc = scan_values(r, name, (tsdb_str){"", 0}, values_fn, &x);
    if (rc != 0)
        return map_err(rc, "values", NULL);
    if (x.unsorted && x.n > 1) {
        qsort(x.v, x.n, sizeof *x.v, str_qcmp);
        size_t k = 1;
        for (size_t i = 1; i < x.n; i++) {
            if (!tsdb_str_eq(x.v[i], x.v[k - 1]))
                x.v[k++] = x.v[i];
        }
        x.n = k;
    }
    *out = x.v;
    *n = x.n;
    return TSDB_OK;
}

struct each_ctx {
    tsdb_index_rd *r;
    tsdb_arena *a;
    uint64_t want; /* first id >= want */
    uint64_t id;
    tsdb_labels l;
    int got;
};

static int each_entry(void *vctx, uint64_t id, const unsigned char *refs, size_t len)
{
    struct each_ctx *x = vctx;
    if (id < x->want)
        return 0;
    int rc = rd_decode(x->r, refs, len, x->a, &x->l);
    if (rc != 0)
        return rc;
    x->id = id;
    x->got = 1;
    return 1;
}

int tsdb__index_rd_each(tsdb_index_rd *r, tsdb_arena *scratch,
                        int (*fn)(void *ctx, uint64_t id, tsdb_labels l), void *ctx)
{
    (void)scratch; /* labels are decoded into a private arena reset per series */
    tsdb_index *ix = r->ix;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    uint64_t next = 0;
    int rc = 0;
    for (;;) {
        /* The callback runs outside the read operation (it may read or write the index), so
         * every step seeks again from the next id. */
        rd_op_enter(r);
        MDB_cursor *c = NULL;
        MDB_val k, v;
        struct each_ctx x = {r, &a, next, 0, {NULL, 0}, 0};
        tsdb_arena_reset(&a);
        rc = rd_cursor(r, ix->db_series, &c);
        if (rc == 0) {
            size_t kx = (size_t)(next >> SERIES_SHIFT);
            k = (MDB_val){sizeof kx, &kx};
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        }
        while (rc == 0) {
            size_t kx;
            if (k.mv_size != sizeof kx) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy(&kx, k.mv_data, sizeof kx);
            if ((uint64_t)kx > (UINT64_MAX >> SERIES_SHIFT)) {
                rc = MDB_CORRUPTED;
                break;
            }
            rc = record_each(kx, v.mv_data, v.mv_size, each_entry, &x);
            if (rc != 0)
                break;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (rc == 1)
            rc = 0;
        rd_exit(ix);
        if (rc != 0 || !x.got)
            break;
        int stop = fn(ctx, x.id, x.l);
        if (stop != 0) {
            rc = stop < 0 ? stop : 0;
            tsdb_arena_fini(&a);
            return rc;
        }
        if (x.id == UINT64_MAX)
            break;
        next = x.id + 1;
    }
    tsdb_arena_fini(&a);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    return map_err(rc, "each", NULL);
}

/* ---- Select --------------------------------------------------------------------------------- */

struct match_scan_ctx {
    const tsdb_matcher *m;
    int accept; /* collect series whose value v satisfies matches(m, v) == accept */
    idvec *out;
};

static int match_scan_fn(tsdb_index_rd *r, uint32_t tid, tsdb_str value, int hashed, void *vctx)
{
    (void)hashed;
    struct match_scan_ctx *x = vctx;
    if (tsdb_matcher_matches(x->m, value) != x->accept)
        return 0;
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = post_read(c, tid, 0, UINT64_MAX, r->limit, x->out);
    return rc;
}
/* Does "matches(m, v) == accept" mean "v is one of m's literals / starts with its prefix"? */
static int accept_is_raw(const tsdb_matcher *m, int accept)
{
    enum tsdb_match_op op = tsdb_matcher_op(m);
    int negated = op == TSDB_MATCH_NE || op == TSDB_MATCH_NRE;
    return accept ? !negated : negated;
}

/* Ids of series that have label name with a (non-empty) value v where matches(m, v) == accept,
 * sorted and unique, into out (cleared first). */
static int ids_where(tsdb_index_rd *r, const tsdb_matcher *m, int accept, idvec *out)
{
    tsdb_str name = tsdb_matcher_name(m);
    const tsdb_str *lits;
    size_t n_lits;
    int rc = 0;
    out->n = 0;
    if (name.len == 0 || name.len > INDEX_MAX_NAME)
        return 0; /* no stored series has such a label */
    int raw = accept_is_raw(m, accept);
    if (raw && tsdb__matcher_literals(m, &lits, &n_lits)) {
        for (size_t i = 0; i < n_lits && rc == 0; i++) {
            if (lits[i].len > 0)
                rc = read_postings(r, name, lits[i], out);
        }
    } else {
        struct match_scan_ctx x = {m, accept, out};
        tsdb_str prefix = raw ? tsdb__matcher_prefix(m) : (tsdb_str){"", 0};
        rc = scan_values(r, name, prefix, match_scan_fn, &x);
    }
    out->n = tsdb__postings_sort_unique(out->v, out->n);
    return rc;
}

/* Estimated size of a positive matcher's postings (literal sets only; SIZE_MAX otherwise). */
static uint64_t estimate(tsdb_index_rd *r, const tsdb_matcher *m)
{
    const tsdb_str *lits;
    size_t n_lits;
    if (!accept_is_raw(m, 1) || !tsdb__matcher_literals(m, &lits, &n_lits) ||
        tsdb_matcher_name(m).len == 0)
        return UINT64_MAX;
    uint64_t sum = 0;
    for (size_t i = 0; i < n_lits; i++) {
        uint64_t c = 0;
        if (lits[i].len > 0 && count_postings(r, tsdb_matcher_name(m), lits[i], &c) == 0)
            sum += c;
    }
    return sum;
}

/* Keeps the candidates whose stored labels satisfy every matcher in ms. */
static int filter_by_labels(tsdb_index_rd *r, const tsdb_matcher *const *ms, size_t n, idvec *cand)
{
    size_t w = 0;
    for (size_t i = 0; i < cand->n; i++) {
        const unsigned char *refs;
        size_t len;
        int rc = rd_refs(r, cand->v[i], &refs, &len);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        int ok = 1;
        for (size_t j = 0; j < n && ok; j++) {
            tsdb_str val;
            if ((rc = rd_value_in(r, refs, len, tsdb_matcher_name(ms[j]), &val)) != 0)
                return rc;
            ok = tsdb_matcher_matches(ms[j], val);
        }
        if (ok)
            cand->v[w++] = cand->v[i];
    }
    cand->n = w;
    return 0;
}

struct plan_item {
    const tsdb_matcher *m;
    uint64_t est;
};

static int plan_cmp(const void *a, const void *b)
{
    const struct plan_item *x = a, *y = b;
    return (x->est > y->est) - (x->est < y->est);
}

static int select_ids(tsdb_index_rd *r, const tsdb_matcher *const *ms, size_t n, idvec *cand)
{
    struct plan_item *pos = xmalloc((n + 1) * sizeof *pos);
    const tsdb_matcher **neg = xmalloc((n + 1) * sizeof *neg);
    size_t n_pos = 0, n_neg = 0;
    for (size_t i = 0; i < n; i++) {
        if (tsdb__matcher_matches_empty(ms[i]))
            neg[n_neg++] = ms[i];
        else
            pos[n_pos++] = (struct plan_item){ms[i], estimate(r, ms[i])};
    }
    qsort(pos, n_pos, sizeof *pos, plan_cmp);
    idvec tmp = {0};
    int rc = 0;
    size_t done = 0; /* positives applied */
    if (n_pos > 0) {
        rc = ids_where(r, pos[0].m, 1, cand);
        done = 1;
    } else {
        rc = read_all(r, cand);
    }
    /* Remaining positives by set algebra while the candidates are many. */
    while (rc == 0 && done < n_pos && cand->n > r->ix->filter_max) {
        rc = ids_where(r, pos[done].m, 1, &tmp);
        cand->n = tsdb__postings_intersect(cand->v, cand->n, tmp.v, tmp.n, cand->v);
        done++;
    }
    size_t ndone = 0;
    while (rc == 0 && ndone < n_neg && cand->n > r->ix->filter_max) {
        rc = ids_where(r, neg[ndone], 0, &tmp);
        cand->n = tsdb__postings_subtract(cand->v, cand->n, tmp.v, tmp.n, cand->v);
        ndone++;
    }
    if (rc == 0 && (done < n_pos || ndone < n_neg) && cand->n > 0) {
        const tsdb_matcher **rest = xmalloc((n + 1) * sizeof *rest);
        size_t n_rest = 0;
        for (size_t i = done; i < n_pos; i++)
            rest[n_rest++] = pos[i].m;
        for (size_t i = ndone; i < n_neg; i++)
            rest[n_rest++] = neg[i];
        rc = filter_by_labels(r, rest, n_rest, cand);
        free(rest);
    }
    idvec_free(&tmp);
    free(pos);
    free(neg);
    return rc;
}

static int rd_select_locked(tsdb_index_rd *r, const tsdb_matcher *const *ms, size_t n,
                            tsdb_arena *a, uint64_t **ids, size_t *n_ids, tsdb_err *err)
{
    idvec cand = {0};
    int rc = select_ids(r, ms, n, &cand);
    if (rc != 0) {
        idvec_free(&cand);
        return map_err(rc, "select", err);
    }
    uint64_t *res = tsdb_arena_alloc(a, (cand.n ? cand.n : 1) * sizeof *res);
    if (cand.n)
        memcpy(res, cand.v, cand.n * sizeof *res);
    *ids = res;
    *n_ids = cand.n;
    idvec_free(&cand);
    return TSDB_OK;
}

/* ---- Public read operations (each one bracketed by rd_enter/rd_exit) ---------------------------
 */

int tsdb__index_rd_labels(tsdb_index_rd *r, uint64_t id, tsdb_arena *a, tsdb_labels *out)
{
    rd_op_enter(r);
    int rc = rd_labels_locked(r, id, a, out);
    rd_exit(r->ix);
    return rc;
}

int tsdb__index_rd_lookup(tsdb_index_rd *r, tsdb_labels l, uint64_t *id)
{
    rd_op_enter(r);
    int rc = rd_lookup_locked(r, l, id);
    rd_exit(r->ix);
    return rc;
}

int tsdb__index_rd_count(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n)
{
    rd_op_enter(r);
    int rc = rd_count_locked(r, name, value, n);
    rd_exit(r->ix);
    return rc;
}

int tsdb__index_rd_names(tsdb_index_rd *r, tsdb_arena *a, tsdb_str **out, size_t *n)
{
    rd_op_enter(r);
    int rc = rd_names_locked(r, a, out, n);
    rd_exit(r->ix);
    return rc;
}

int tsdb__index_rd_values(tsdb_index_rd *r, tsdb_str name, tsdb_arena *a, tsdb_str **out, size_t *n)
{
    rd_op_enter(r);
    int rc = rd_values_locked(r, name, a, out, n);
    rd_exit(r->ix);
    return rc;
}

int tsdb__index_rd_select(tsdb_index_rd *r, const tsdb_matcher *const *ms, size_t n, tsdb_arena *a,
                          uint64_t **ids, size_t *n_ids, tsdb_err *err)
{
    rd_op_enter(r);
    int rc = rd_select_locked(r, ms, n, a, ids, n_ids, err);
    rd_exit(r->ix);
    return rc;
}

/* ---- Fuzzing -------------------------------------------------------------------------------- */

struct fuzz_runs {
    const idvec *ids;
    size_t at;
    int differs;
};

static void fuzz_run(void *vctx, uint64_t start, uint64_t len)
{
    struct fuzz_runs *x = vctx;
    for (uint64_t i = 0; i < len && !x->differs; i++, x->at++)
        x->differs = x->at >= x->ids->n || x->ids->v[x->at] != start + i;
}

static int fuzz_entry(void *vctx, uint64_t id, const unsigned char *refs, size_t len)
{
    (void)vctx;
    (void)id;
    const unsigned char *end = refs + len;
    while (refs < end) {
        uint64_t tid;
        if (uv_get(&refs, end, &tid) != 0)
            return MDB_CORRUPTED;
    }
    return 0;
}

int tsdb__index_fuzz_decode(uint64_t first, uint64_t limit, const unsigned char *p, size_t n)
{
    idvec ids = {0};
    int rc_ids = chunk_ids(first, p, n, 0, UINT64_MAX, limit, &ids);
    struct fuzz_runs x = {&ids, 0, 0};
    int rc_walk = chunk_walk(first, p, n, fuzz_run, &x);
    if (rc_ids == 0 && rc_walk == 0 && (x.differs || x.at != ids.n))
        abort();
    free(ids.v);
    int rc_rec = record_each(first >> SERIES_SHIFT, p, n, fuzz_entry, NULL);
    for (uint64_t id = 0; id < (1u << SERIES_SHIFT) && rc_rec == 0; id++) {
        const unsigned char *refs;
        size_t len;
        if (record_find(p, n, id, &refs, &len) < 0)
            rc_rec = MDB_CORRUPTED;
    }
    return (rc_ids == 0 && rc_walk == 0 ? 1 : 0) | (rc_rec == 0 ? 2 : 0);
}
