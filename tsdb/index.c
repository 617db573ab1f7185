/* tsdb/index.c -- the LMDB series index: ids, label sets, postings, names and values.
 *
 * One LMDB environment in a folder (data.mdb, lock.mdb), opened MDB_NOTLS (a read handle may
 * move between threads) and MDB_NOMETASYNC (integrity is kept; the last commit may be lost on
 * an OS crash, and WAL replay re-creates it through tsdb__index_put_series). Four databases:
 *
 *   meta      "version"  -> u32be format version (1)
 *             "next_id"  -> u64be next series id to allocate (ids start at 1, never reused)
 *             "hash_key" -> 16 random bytes: SipHash key of lhash and of long postings keys,
 *                           fixed at creation so hashes are stable across restarts
 *   series    u64be id -> canonical label encoding (tsdb/labels.h)
 *   lhash     u64be SipHash(encoding) -> u64be ids        MDB_DUPSORT | MDB_DUPFIXED
 *             Lookups compare the stored encoding, so hash collisions are harmless.
 *   postings  key -> u64be ids (ascending)                MDB_DUPSORT | MDB_DUPFIXED
 *             key = name 0x00 value                when it fits mdb_env_get_maxkeysize and
 *                                                  value does not start with 0xff
 *             key = name 0x00 0xff u64be(SipHash(value))   otherwise ("hashed key")
 *             key = 0x00 (empty name, empty value) lists every series ("all key")
 *
 * Names never contain 0x00 and valid UTF-8 never contains 0xff, so the keys of one name are the
 * contiguous range starting at "name\0", sorted by value bytes (hashed keys sort last), and the
 * next name starts at or after "name\x01". A hashed key may in theory hold ids of different
 * values (a 64-bit collision), so every read through a hashed key checks the stored labels.
 * Label names longer than INDEX_MAX_NAME bytes are refused (values of any length are stored).
 *
 * Writes: one writer at a time (the caller serialises). A write transaction that hits
 * MDB_MAP_FULL is aborted, the map doubled and the transaction run again; the map can only be
 * resized while no other thread is inside LMDB, so every read operation runs between rd_enter
 * and rd_exit and the resize waits for the running ones to finish (new ones wait for it). A read
 * handle may stay open across a resize: its transaction holds page numbers, not pointers, and
 * its cursors (which do point into the map) are dropped at its next operation. Read handles
 * wrap a read-only transaction; ended handles are reset and pooled for mdb_txn_renew.
 *
 * select: matchers that do not match "" yield the ids of the values they accept (positives);
 * matchers that match "" yield the ids of the values they reject, to subtract (negatives).
 * Equality and literal alternations read their postings directly, other regexes scan the
 * values of the name (from the literal prefix of the pattern) and test each. The smallest
 * positive list is read first; once the candidates are few (<= filter_max), the remaining
 * matchers are checked against each candidate's stored labels instead of reading more lists.
 * With no positive matcher the all key is the starting set.
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

#define INDEX_VERSION        1u
#define INDEX_DEFAULT_MAP    ((size_t)16 << 30)
#define INDEX_MAX_MAP        ((size_t)1 << 42) /* 4 TiB: doubling stops here */
#define INDEX_MAX_NAME       256
#define INDEX_MAX_READERS    1022
#define INDEX_GROW_WAIT_MS   10000
#define INDEX_WRITE_ATTEMPTS 40
#define INDEX_FILTER_MAX     1024
#define HASHED_KEY_MARK      0xffu

struct tsdb_index {
    MDB_env *env; /* immutable after open */
    MDB_dbi db_meta, db_series, db_lhash, db_post;
    int read_only;
    size_t maxkey;     /* mdb_env_get_maxkeysize */
    uint8_t hkey[16];  /* hash key from meta */
    uint64_t next_id;  /* writer only; read with __atomic by tsdb__index_next_id */
    size_t map_bytes;  /* current map size (writer; grows) */
    size_t filter_max; /* candidate count below which select filters by labels */

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    int n_active;           /* read operations running (not handles: see rd_enter) */
    int growing;            /* a map resize is waiting or running */
    uint64_t map_gen;       /* resizes so far; cursors re-seek when it changes */
    tsdb_index_rd *rd_pool; /* reset read handles */
};

struct tsdb_index_rd {
    tsdb_index *ix;
    MDB_txn *txn;
    MDB_cursor *c_post, *c_series; /* opened lazily, closed at end or after a resize */
    uint64_t gen;                  /* ix->map_gen the cursors were opened under */
    tsdb_index_rd *next;           /* pool link */
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

/* Growable u64 vector on the heap, for intermediate id lists. */
typedef struct idvec {
    uint64_t *v;
    size_t n, cap;
} idvec;

static void idvec_push(idvec *x, uint64_t id)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
    x->v[x->n++] = id;
}

static void idvec_reserve(idvec *x, size_t extra)
{
    if (x->n + extra > x->cap) {
        x->cap = x->n + extra > x->cap * 2 ? x->n + extra : x->cap * 2;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
}

static void idvec_free(idvec *x)
{
    free(x->v);
    x->v = NULL;
    x->n = x->cap = 0;
}

/* Postings key for name=value into buf (cap >= maxkey + 16); returns its length. The caller
 * checks 0 < name.len <= INDEX_MAX_NAME. */
static size_t post_key(const tsdb_index *ix, tsdb_str name, tsdb_str value, unsigned char *buf,
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
        tsdb_put_u64be(buf + n, tsdb_siphash(ix->hkey, value.p, value.len));
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

/* ---- Open and close ---------------------------------------------------------------------------
 */

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

/* Opens the databases and loads (or, when writable, initialises) meta. */
static int open_dbs(tsdb_index *ix, tsdb_err *err)
{
    MDB_txn *txn = NULL;
    unsigned cf = ix->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin(ix->env, NULL, ix->read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return map_err(rc, "begin", err);
    if ((rc = mdb_dbi_open(txn, "meta", cf, &ix->db_meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "series", cf, &ix->db_series)) != 0 ||
        (rc = mdb_dbi_open(txn, "lhash", cf | MDB_DUPSORT | MDB_DUPFIXED, &ix->db_lhash)) != 0 ||
        (rc = mdb_dbi_open(txn, "postings", cf | MDB_DUPSORT | MDB_DUPFIXED, &ix->db_post)) != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return tsdb_errf(err, TSDB_ENOTFOUND, -1, "index: not initialised");
        return map_err(rc, "open databases", err);
    }
    MDB_val v;
    rc = meta_get(txn, ix->db_meta, "version", &v);
    if (rc == MDB_NOTFOUND && !ix->read_only) {
        unsigned char ver[4] = {0, 0, 0, INDEX_VERSION}, nid[8];
        tsdb_put_u64be(nid, 1);
        new_hash_key(ix->hkey);
        if ((rc = meta_put(txn, ix->db_meta, "version", ver, 4)) != 0 ||
            (rc = meta_put(txn, ix->db_meta, "next_id", nid, 8)) != 0 ||
            (rc = meta_put(txn, ix->db_meta, "hash_key", ix->hkey, 16)) != 0 ||
            (rc = mdb_txn_commit(txn)) != 0) {
            if (rc != 0 && txn)
                mdb_txn_abort(txn);
            return map_err(rc, "initialise meta", err);
        }
        ix->next_id = 1;
        return TSDB_OK;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return TSDB_CORRUPT(err, "index: meta has no version");
        return map_err(rc, "read meta", err);
    }
    const unsigned char *vp = v.mv_data;
    if (v.mv_size != 4 || ((uint32_t)vp[0] << 24 | (uint32_t)vp[1] << 16 | (uint32_t)vp[2] << 8 |
                           vp[3]) != INDEX_VERSION) {
        mdb_txn_abort(txn);
        return tsdb_errf(err, TSDB_ECORRUPT, -1, "index: unsupported format version");
    }
    MDB_val nid, hk;
    if (meta_get(txn, ix->db_meta, "next_id", &nid) != 0 || nid.mv_size != 8 ||
        meta_get(txn, ix->db_meta, "hash_key", &hk) != 0 || hk.mv_size != 16) {
        mdb_txn_abort(txn);
        return TSDB_CORRUPT(err, "index: meta is incomplete");
    }
    ix->next_id = be64(nid.mv_data);
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

/* Sets the map size (0 = adopt the size another process chose) while no read operation runs. */
static int resize_map(tsdb_index *ix, size_t size, tsdb_err *err)
{
    struct timespec dl;
    deadline_after_ms(&dl, INDEX_GROW_WAIT_MS);
    pthread_mutex_lock(&ix->mu);
    ix->growing = 1;
    int timed_out = 0;
    while (ix->n_active > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&ix->cv, &ix->mu, &dl) != 0 && ix->n_active > 0;
    int rc = 0;
    if (!timed_out) {
        rc = mdb_env_set_mapsize(ix->env, size);
        ix->map_gen++;
    }
    ix->growing = 0;
    pthread_cond_broadcast(&ix->cv);
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

/* Finds the id of an encoded label set through lhash. 0 found, MDB_NOTFOUND, or an error. */
static int find_encoded(tsdb_index *ix, MDB_txn *txn, MDB_cursor *c, uint64_t h,
                        const tsdb_buf *enc, uint64_t *id)
{
    unsigned char hk[8];
    tsdb_put_u64be(hk, h);
    MDB_val k = {8, hk}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    while (rc == 0) {
        if (v.mv_size != 8)
            return MDB_CORRUPTED;
        MDB_val sk = {8, v.mv_data}, sv;
        int r2 = mdb_get(txn, ix->db_series, &sk, &sv);
        if (r2 == 0 && sv.mv_size == enc->len && memcmp(sv.mv_data, enc->p, enc->len) == 0) {
            *id = be64(v.mv_data);
            return 0;
        }
        if (r2 != 0 && r2 != MDB_NOTFOUND)
            return r2;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
    }
    return rc;
}

/* Postings of the series one resolve creates, grouped by key so that each key takes one
 * MDB_MULTIPLE put of all its new ids (they are ascending and above every stored id) instead of
 * one put per (key, id). Flushed in key order for locality. */
typedef struct post_group {
    size_t key_off, key_len;
    unsigned char *ids; /* u64be, ascending */
    size_t n, cap;
} post_group;

typedef struct post_batch {
    tsdb_buf keys; /* concatenated key bytes */
    post_group *g;
    size_t n_g, cap_g;
    uint32_t *slots; /* open addressing: group index + 1, 0 = empty */
    size_t n_slots;  /* power of two */
} post_batch;

static uint64_t key_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: keys are short and the table is private */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static void batch_rehash(post_batch *b, size_t n_slots)
{
    free(b->slots);
    b->slots = xcalloc(n_slots, sizeof *b->slots);
    b->n_slots = n_slots;
    for (size_t i = 0; i < b->n_g; i++) {
        size_t j = key_hash(b->keys.p + b->g[i].key_off, b->g[i].key_len) & (n_slots - 1);
        while (b->slots[j])
            j = (j + 1) & (n_slots - 1);
        b->slots[j] = (uint32_t)(i + 1);
    }
}

static void batch_add(post_batch *b, const unsigned char *key, size_t len, uint64_t id)
{
    if ((b->n_g + 1) * 2 > b->n_slots)
        batch_rehash(b, b->n_slots ? b->n_slots * 2 : 1024);
    size_t j = key_hash(key, len) & (b->n_slots - 1);
    post_group *g = NULL;
    while (b->slots[j]) {
        post_group *c = &b->g[b->slots[j] - 1];
        if (c->key_len == len && memcmp(b->keys.p + c->key_off, key, len) == 0) {
            g = c;
            break;
        }
        j = (j + 1) & (b->n_slots - 1);
    }
    if (g == NULL) {
        if (b->n_g == b->cap_g) {
            b->cap_g = b->cap_g ? b->cap_g * 2 : 256;
            b->g = xrealloc(b->g, b->cap_g * sizeof *b->g);
        }
        g = &b->g[b->n_g++];
        *g = (post_group){b->keys.len, len, NULL, 0, 0};
        tsdb_buf_put(&b->keys, key, len);
        b->slots[j] = (uint32_t)b->n_g;
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->ids = xrealloc(g->ids, g->cap * 8);
    }
    tsdb_put_u64be(g->ids + g->n * 8, id);
    g->n++;
}

static const post_batch *sort_batch; /* qsort has no context argument; the writer is single */

static int group_cmp(const void *x, const void *y)
{
    const post_group *a = &sort_batch->g[*(const uint32_t *)x];
    const post_group *b = &sort_batch->g[*(const uint32_t *)y];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(sort_batch->keys.p + a->key_off, sort_batch->keys.p + b->key_off, n);
    if (c != 0)
        return c;
    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static int batch_flush(tsdb_index *ix, MDB_txn *txn, post_batch *b)
{
    if (b->n_g == 0)
        return 0;
    uint32_t *order = xmalloc(b->n_g * sizeof *order);
    for (size_t i = 0; i < b->n_g; i++)
        order[i] = (uint32_t)i;
    sort_batch = b;
    qsort(order, b->n_g, sizeof *order, group_cmp);
    sort_batch = NULL;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, ix->db_post, &c);
    for (size_t i = 0; i < b->n_g && rc == 0; i++) {
        post_group *g = &b->g[order[i]];
        MDB_val k = {g->key_len, b->keys.p + g->key_off};
        size_t done = 0;
        while (done < g->n && rc == 0) {
            MDB_val d[2] = {{8, g->ids + done * 8}, {g->n - done, NULL}};
            if (g->n - done == 1) {
                rc = mdb_cursor_put(c, &k, &d[0], 0);
                done++;
                continue;
            }
            rc = mdb_cursor_put(c, &k, d, MDB_MULTIPLE);
            if (rc == 0 && d[1].mv_size == 0)
                rc = TSDB_EIO; /* no progress: never expected */
            done += d[1].mv_size;
        }
    }
    if (c)
        mdb_cursor_close(c);
    free(order);
    return rc;
}

static void batch_free(post_batch *b)
{
    for (size_t i = 0; i < b->n_g; i++)
        free(b->g[i].ids);
    free(b->g);
    free(b->slots);
    tsdb_buf_fini(&b->keys);
    memset(b, 0, sizeof *b);
}

/* Writes series id with labels l (encoded as enc, hash h): series, lhash, postings. With a
 * batch, the postings are collected there instead (batch_flush writes them). */
static int insert_series(tsdb_index *ix, MDB_txn *txn, uint64_t id, tsdb_labels l,
                         const tsdb_buf *enc, uint64_t h, int append, unsigned char *keybuf,
                         post_batch *pb)
{
    unsigned char idb[8], hb[8];
    tsdb_put_u64be(idb, id);
    tsdb_put_u64be(hb, h);
    MDB_val k = {8, idb}, v = {enc->len, enc->p};
    int rc = mdb_put(txn, ix->db_series, &k, &v, append ? MDB_APPEND : 0);
    if (rc == MDB_KEYEXIST && append)
        rc = mdb_put(txn, ix->db_series, &k, &v, 0);
    if (rc != 0)
        return rc;
    k = (MDB_val){8, hb};
    v = (MDB_val){8, idb};
    if ((rc = mdb_put(txn, ix->db_lhash, &k, &v, 0)) != 0)
        return rc;
    if (pb) {
        batch_add(pb, (const unsigned char *)"\0", 1, id);
        for (size_t i = 0; i < l.n; i++)
            batch_add(pb, keybuf, post_key(ix, l.v[i].name, l.v[i].value, keybuf, NULL), id);
        return 0;
    }
    k = (MDB_val){1, (void *)"\0"};
    if ((rc = mdb_put(txn, ix->db_post, &k, &v, 0)) != 0)
        return rc;
    for (size_t i = 0; i < l.n; i++) {
        k.mv_size = post_key(ix, l.v[i].name, l.v[i].value, keybuf, NULL);
        k.mv_data = keybuf;
        if ((rc = mdb_put(txn, ix->db_post, &k, &v, 0)) != 0)
            return rc;
    }
    return 0;
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

static int put_next_id(tsdb_index *ix, MDB_txn *txn, uint64_t next)
{
    unsigned char b[8];
    tsdb_put_u64be(b, next);
    return meta_put(txn, ix->db_meta, "next_id", b, 8);
}

struct resolve_ctx {
    const tsdb_labels *sets;
    size_t n;
    uint64_t *ids;
    uint8_t *created;
    uint64_t next; /* next id after the transaction */
};

static int resolve_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    (void)err;
    struct resolve_ctx *ctx = vctx;
    uint64_t next = ix->next_id;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(txn, ix->db_lhash, &c);
    if (rc != 0)
        return rc;
    unsigned char *keybuf = xmalloc(ix->maxkey + 16);
    tsdb_buf enc;
    tsdb_buf_init(&enc);
    post_batch pb;
    memset(&pb, 0, sizeof pb);
    tsdb_buf_init(&pb.keys);
    for (size_t i = 0; i < ctx->n && rc == 0; i++) {
        enc.len = 0;
        tsdb__labels_encode(&enc, ctx->sets[i]);
        uint64_t h = tsdb_siphash(ix->hkey, enc.p, enc.len);
        uint64_t id = 0;
        rc = find_encoded(ix, txn, c, h, &enc, &id);
        if (rc == 0) {
            ctx->ids[i] = id;
            if (ctx->created)
                ctx->created[i] = 0;
            continue;
        }
        if (rc != MDB_NOTFOUND)
            break;
        id = next++;
        rc = insert_series(ix, txn, id, ctx->sets[i], &enc, h, 1, keybuf, &pb);
        ctx->ids[i] = id;
        if (ctx->created)
            ctx->created[i] = 1;
    }
    if (rc == 0)
        rc = batch_flush(ix, txn, &pb);
    batch_free(&pb);
    if (rc == 0 && next != ix->next_id)
        rc = put_next_id(ix, txn, next);
    ctx->next = next;
    tsdb_buf_fini(&enc);
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
    struct resolve_ctx ctx = {sets, n, ids, created, 0};
    rc = run_write(ix, resolve_fn, &ctx, err);
    if (rc == TSDB_OK)
        __atomic_store_n(&ix->next_id, ctx.next, __ATOMIC_RELEASE);
    return rc;
}

struct put_ctx {
    uint64_t id;
    tsdb_labels l;
    uint64_t next;
};

static int put_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    struct put_ctx *ctx = vctx;
    tsdb_buf enc;
    tsdb_buf_init(&enc);
    tsdb__labels_encode(&enc, ctx->l);
    unsigned char idb[8];
    tsdb_put_u64be(idb, ctx->id);
    MDB_val k = {8, idb}, v;
    unsigned char *keybuf = NULL;
    int rc = mdb_get(txn, ix->db_series, &k, &v);
    ctx->next = ix->next_id > ctx->id ? ix->next_id : ctx->id + 1;
    if (rc == 0) {
        if (v.mv_size != enc.len || memcmp(v.mv_data, enc.p, enc.len) != 0)
            rc =
                tsdb_errf(err, TSDB_ECORRUPT, -1, "index: series %llu exists with different labels",
                          (unsigned long long)ctx->id);
    } else if (rc == MDB_NOTFOUND) {
        keybuf = xmalloc(ix->maxkey + 16);
        uint64_t h = tsdb_siphash(ix->hkey, enc.p, enc.len);
        rc = insert_series(ix, txn, ctx->id, ctx->l, &enc, h, 0, keybuf, NULL);
    }
    if (rc == 0 && ctx->next != ix->next_id)
        rc = put_next_id(ix, txn, ctx->next);
    free(keybuf);
    tsdb_buf_fini(&enc);
    return rc;
}

int tsdb__index_put_series(tsdb_index *ix, uint64_t id, tsdb_labels l, tsdb_err *err)
{
    if (id == 0 || id == UINT64_MAX)
        return tsdb_errf(err, TSDB_EINVAL, -1, "index: invalid series id");
    int rc = check_names(&l, 1, err);
    if (rc != TSDB_OK)
        return rc;
    struct put_ctx ctx = {id, l, 0};
    rc = run_write(ix, put_fn, &ctx, err);
    if (rc == TSDB_OK)
        __atomic_store_n(&ix->next_id, ctx.next, __ATOMIC_RELEASE);
    return rc;
}

struct del_ctx {
    const uint64_t *ids;
    size_t n;
};

static int del_fn(tsdb_index *ix, MDB_txn *txn, void *vctx, tsdb_err *err)
{
    (void)err;
    struct del_ctx *ctx = vctx;
    unsigned char *keybuf = xmalloc(ix->maxkey + 16);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    int rc = 0;
    for (size_t i = 0; i < ctx->n && rc == 0; i++) {
        unsigned char idb[8], hb[8];
        tsdb_put_u64be(idb, ctx->ids[i]);
        MDB_val k = {8, idb}, v;
        rc = mdb_get(txn, ix->db_series, &k, &v);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        tsdb_labels l;
        tsdb_arena_reset(&a);
        if (tsdb__labels_decode(v.mv_data, v.mv_size, &a, &l) != TSDB_OK ||
            check_names(&l, 1, NULL) != TSDB_OK) {
            rc = MDB_CORRUPTED;
            break;
        }
        tsdb_put_u64be(hb, tsdb_siphash(ix->hkey, v.mv_data, v.mv_size));
        MDB_val idv = {8, idb};
        if ((rc = mdb_del(txn, ix->db_series, &k, NULL)) != 0)
            break;
        k = (MDB_val){8, hb};
        rc = mdb_del(txn, ix->db_lhash, &k, &idv);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        k = (MDB_val){1, (void *)"\0"};
        if (rc == 0)
            rc = mdb_del(txn, ix->db_post, &k, &idv);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        for (size_t j = 0; j < l.n && rc == 0; j++) {
            k.mv_size = post_key(ix, l.v[j].name, l.v[j].value, keybuf, NULL);
            k.mv_data = keybuf;
            rc = mdb_del(txn, ix->db_post, &k, &idv);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    tsdb_arena_fini(&a);
    free(keybuf);
    return rc;
}

int tsdb__index_delete_series(tsdb_index *ix, const uint64_t *ids, size_t n, tsdb_err *err)
{
    if (n == 0)
        return TSDB_OK;
    struct del_ctx ctx = {ids, n};
    return run_write(ix, del_fn, &ctx, err);
}

/* ---- Read handles -------------------------------------------------------------------------- */

/* Brackets one read operation: waits out a map resize, then keeps the next one from starting
 * until rd_exit. Operations never nest (callbacks run outside). */
static uint64_t rd_enter(tsdb_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    while (ix->growing)
        pthread_cond_wait(&ix->cv, &ix->mu);
    ix->n_active++;
    uint64_t gen = ix->map_gen;
    pthread_mutex_unlock(&ix->mu);
    return gen;
}

static void rd_exit(tsdb_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    if (--ix->n_active == 0)
        pthread_cond_broadcast(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
}

/* rd_enter for an operation on handle r. An LMDB cursor keeps pointers to the pages it sits on
 * (and re-uses them when positioned again), so cursors opened before a resize are dropped. */
static uint64_t rd_op_enter(tsdb_index_rd *r)
{
    uint64_t gen = rd_enter(r->ix);
    if (gen != r->gen) {
        if (r->c_post)
            mdb_cursor_close(r->c_post);
        if (r->c_series)
            mdb_cursor_close(r->c_series);
        r->c_post = r->c_series = NULL;
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
    *out = r;
    return TSDB_OK;
}

void tsdb__index_rd_end(tsdb_index_rd *r)
{
    if (r == NULL)
        return;
    tsdb_index *ix = r->ix;
    rd_enter(ix);
    if (r->c_post)
        mdb_cursor_close(r->c_post);
    if (r->c_series)
        mdb_cursor_close(r->c_series);
    r->c_post = r->c_series = NULL;
    mdb_txn_reset(r->txn);
    rd_exit(ix);
    pthread_mutex_lock(&ix->mu);
    r->next = ix->rd_pool;
    ix->rd_pool = r;
    pthread_mutex_unlock(&ix->mu);
}

static int rd_cursor(tsdb_index_rd *r, MDB_dbi dbi, MDB_cursor **c)
{
    MDB_cursor **slot = dbi == r->ix->db_post ? &r->c_post : &r->c_series;
    if (*slot == NULL) {
        int rc = mdb_cursor_open(r->txn, dbi, slot);
        if (rc != 0)
            return rc;
    }
    *c = *slot;
    return 0;
}

/* Borrowed encoding of series id (valid until the handle ends). */
static int rd_encoded(tsdb_index_rd *r, uint64_t id, MDB_val *v)
{
    unsigned char idb[8];
    tsdb_put_u64be(idb, id);
    MDB_val k = {8, idb};
    return mdb_get(r->txn, r->ix->db_series, &k, v);
}

static int rd_labels_locked(tsdb_index_rd *r, uint64_t id, tsdb_arena *a, tsdb_labels *out)
{
    MDB_val v;
    int rc = rd_encoded(r, id, &v);
    if (rc != 0)
        return map_err(rc, "read series", NULL);
    return tsdb__labels_decode(v.mv_data, v.mv_size, a, out);
}

static int rd_lookup_locked(tsdb_index_rd *r, tsdb_labels l, uint64_t *id)
{
    tsdb_buf enc;
    tsdb_buf_init(&enc);
    tsdb__labels_encode(&enc, l);
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(r->txn, r->ix->db_lhash, &c);
    if (rc == 0) {
        uint64_t h = tsdb_siphash(r->ix->hkey, enc.p, enc.len);
        rc = find_encoded(r->ix, r->txn, c, h, &enc, id);
        mdb_cursor_close(c);
    }
    tsdb_buf_fini(&enc);
    return map_err(rc, "lookup", NULL);
}

/* Value of label name in series id's stored labels ("" if absent). 0 or an LMDB/TSDB code. */
static int rd_value_of(tsdb_index_rd *r, uint64_t id, tsdb_str name, tsdb_str *value)
{
    MDB_val v;
    int rc = rd_encoded(r, id, &v);
    if (rc != 0)
        return rc;
    int got = tsdb__labels_encoded_get(v.mv_data, v.mv_size, name, value);
    if (got < 0)
        return got;
    if (got == 0)
        *value = (tsdb_str){"", 0};
    return 0;
}

/* Appends the ids under the postings key at cursor position (after MDB_SET_KEY/NEXT_NODUP
 * returned first = its first id) to out. */
static int read_dups(MDB_cursor *c, MDB_val *first, idvec *out)
{
    size_t cnt = 0;
    int rc = mdb_cursor_count(c, &cnt);
    if (rc != 0)
        return rc;
    if (first->mv_size != 8)
        return MDB_CORRUPTED;
    if (cnt == 1) {
        idvec_push(out, be64(first->mv_data));
        return 0;
    }
    idvec_reserve(out, (size_t)cnt);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_GET_MULTIPLE);
    while (rc == 0) {
        if (v.mv_size % 8 != 0)
            return MDB_CORRUPTED;
        const unsigned char *p = v.mv_data;
        for (size_t i = 0; i < v.mv_size / 8; i++)
            idvec_push(out, be64(p + i * 8));
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_MULTIPLE);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Appends to out the ids of series with name=value (exact, verified for hashed keys). */
static int read_postings(tsdb_index_rd *r, tsdb_str name, tsdb_str value, idvec *out)
{
    if (name.len == 0 || name.len > INDEX_MAX_NAME)
        return 0; /* never stored (and would not fit a key buffer) */
    unsigned char *kb = xmalloc(r->ix->maxkey + 16);
    int hashed = 0;
    MDB_val k = {post_key(r->ix, name, value, kb, &hashed), kb}, v;
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND) {
        free(kb);
        return 0;
    }
    size_t start = out->n;
    if (rc == 0)
        rc = read_dups(c, &v, out);
    if (rc == 0 && hashed) {
        size_t w = start;
        for (size_t i = start; i < out->n && rc == 0; i++) {
            tsdb_str got;
            rc = rd_value_of(r, out->v[i], name, &got);
            if (rc == 0 && tsdb_str_eq(got, value))
                out->v[w++] = out->v[i];
        }
        out->n = w;
    }
    free(kb);
    return rc;
}

static int read_all(tsdb_index_rd *r, idvec *out)
{
    MDB_cursor *c = NULL;
    MDB_val k = {1, (void *)"\0"}, v;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0)
        rc = read_dups(c, &v, out);
    return rc;
}

/* Number of ids under name=value (exact count; hashed keys are verified). */
static int count_postings(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n)
{
    if (name.len == 0 || name.len > INDEX_MAX_NAME) {
        *n = 0; /* never stored (and would not fit a key buffer) */
        return 0;
    }
    unsigned char *kb = xmalloc(r->ix->maxkey + 16);
    int hashed = 0;
    MDB_val k = {post_key(r->ix, name, value, kb, &hashed), kb}, v;
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    free(kb);
    if (rc == MDB_NOTFOUND) {
        *n = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (hashed) {
        idvec ids = {0};
        rc = read_postings(r, name, value, &ids);
        *n = ids.n;
        idvec_free(&ids);
        return rc;
    }
    size_t cnt = 0;
    rc = mdb_cursor_count(c, &cnt);
    *n = cnt;
    return rc;
}

static int rd_count_locked(tsdb_index_rd *r, tsdb_str name, tsdb_str value, uint64_t *n)
{
    if (name.len == 0 || name.len > INDEX_MAX_NAME) {
        *n = 0;
        return TSDB_OK;
    }
    return map_err(count_postings(r, name, value, n), "count", NULL);
}

/* Visits every postings key of name in value order; fn gets the value (NULL for a hashed key)
 * with the cursor positioned on the key's first id in *v. fn returns 0 to go on, 1 to stop, or
 * an error. Seeks to name\0prefix first. */
typedef int (*scan_fn)(tsdb_index_rd *r, MDB_cursor *c, MDB_val *v, const tsdb_str *value,
                       void *ctx);

static int scan_values(tsdb_index_rd *r, tsdb_str name, tsdb_str prefix, scan_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    int rc = rd_cursor(r, r->ix->db_post, &c);
    if (rc != 0)
        return rc;
    size_t kl = name.len + 1 + prefix.len;
    if (kl > r->ix->maxkey)
        kl = name.len + 1; /* an over-long prefix: scan the whole name */
    unsigned char *kb = xmalloc(kl + 1);
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
            rc = fn(r, c, &v, NULL, ctx);
        } else {
            if (prefix.len && kl > name.len + 1 &&
                (k.mv_size < kl || memcmp(p + name.len + 1, prefix.p, prefix.len) != 0)) {
                /* Past the prefix range: the only keys left worth visiting are hashed ones. */
                unsigned char *hk = xmalloc(name.len + 2);
                memcpy(hk, name.p, name.len);
                hk[name.len] = 0;
                hk[name.len + 1] = HASHED_KEY_MARK;
                MDB_val k2 = {name.len + 2, hk};
                rc = mdb_cursor_get(c, &k2, &v, MDB_SET_RANGE);
                k = k2;
                free(hk);
                kl = name.len + 1; /* no more prefix checks */
                if (rc != 0)
                    break;
                continue;
            }
            tsdb_str val = {(const char *)p + name.len + 1, k.mv_size - name.len - 1};
            rc = fn(r, c, &v, &val, ctx);
        }
        if (rc != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
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
    int rc = rd_cursor(r, r->ix->db_post, &c);
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
    tsdb_str name;
    tsdb_arena *a;
    tsdb_str *v;
    size_t n, cap;
    int unsorted;
};

static void values_push(struct values_ctx *x, tsdb_str s)
{
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        x->v = tsdb_arena_realloc(x->a, x->v, x->cap * sizeof *x->v, nc * sizeof *x->v);
        x->cap = nc;
    }
    x->v[x->n++] = tsdb_arena_str(x->a, s);
}

static int values_fn(tsdb_index_rd *r, MDB_cursor *c, MDB_val *v, const tsdb_str *value, void *vctx)
{
    struct values_ctx *x = vctx;
    if (value) {
        values_push(x, *value);
        return 0;
    }
    /* Hashed key: the values are in the series' labels. */
    idvec ids = {0};
    int rc = read_dups(c, v, &ids);
    for (size_t i = 0; i < ids.n && rc == 0; i++) {
        tsdb_str got;
        rc = rd_value_of(r, ids.v[i], x->name, &got);
        if (rc == 0 && got.len > 0)
            values_push(x, got);
    }
    idvec_free(&ids);
    x->unsorted = 1;
    return rc;
}

static int str_qcmp(const void *a, const void *b)
{
    return tsdb_str_cmp(*(const tsdb_str *)a, *(const tsdb_str *)b);
}

static int rd_values_locked(tsdb_index_rd *r, tsdb_str name, tsdb_arena *a, tsdb_str **out,
                            size_t *n)
{
    struct values_ctx x = {name, a, NULL, 0, 0, 0};
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

int tsdb__index_rd_each(tsdb_index_rd *r, tsdb_arena *scratch,
                        int (*fn)(void *ctx, uint64_t id, tsdb_labels l), void *ctx)
{
    (void)scratch; /* labels are decoded into a private arena reset per series */
    tsdb_index *ix = r->ix;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    uint64_t next = 0, gen = 0;
    int first = 1, rc = 0;
    for (;;) {
        /* The callback runs outside the read operation (it may read or write the index); the
         * cursor re-seeks only when the map was resized in between. */
        uint64_t now = rd_op_enter(r);
        MDB_cursor *c = NULL;
        MDB_val k, v;
        rc = rd_cursor(r, ix->db_series, &c);
        if (rc == 0) {
            if (first || now != gen) {
                unsigned char kb[8];
                tsdb_put_u64be(kb, next);
                k = (MDB_val){8, kb};
                rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            } else {
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            }
        }
        first = 0;
        gen = now;
        uint64_t id = 0;
        tsdb_labels l = {NULL, 0};
        if (rc == 0 && k.mv_size != 8)
            rc = MDB_CORRUPTED;
        if (rc == 0) {
            id = be64(k.mv_data);
            tsdb_arena_reset(&a);
            rc = tsdb__labels_decode(v.mv_data, v.mv_size, &a, &l);
        }
        rd_exit(ix);
        if (rc != 0)
            break;
        int stop = fn(ctx, id, l);
        if (stop != 0) {
            rc = stop < 0 ? stop : 0;
            tsdb_arena_fini(&a);
            return rc;
        }
        if (id == UINT64_MAX)
            break;
        next = id + 1;
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

static int match_scan_fn(tsdb_index_rd *r, MDB_cursor *c, MDB_val *v, const tsdb_str *value,
                         void *vctx)
{
    struct match_scan_ctx *x = vctx;
    if (value) {
        if (tsdb_matcher_matches(x->m, *value) == x->accept)
            return read_dups(c, v, x->out);
        return 0;
    }
    idvec ids = {0};
    int rc = read_dups(c, v, &ids);
    tsdb_str name = tsdb_matcher_name(x->m);
    for (size_t i = 0; i < ids.n && rc == 0; i++) {
        tsdb_str got;
        rc = rd_value_of(r, ids.v[i], name, &got);
        if (rc == 0 && tsdb_matcher_matches(x->m, got) == x->accept)
            idvec_push(x->out, ids.v[i]);
    }
    idvec_free(&ids);
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
        MDB_val v;
        int rc = rd_encoded(r, cand->v[i], &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        int ok = 1;
        for (size_t j = 0; j < n && ok; j++) {
            tsdb_str val = {"", 0};
            int got =
                tsdb__labels_encoded_get(v.mv_data, v.mv_size, tsdb_matcher_name(ms[j]), &val);
            if (got < 0)
                return MDB_CORRUPTED;
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
