/* tsdb/querier.c -- reading: index + blocks + head -> series sets with merged sample iterators.
 *
 * A querier pins a snapshot: references to the blocks overlapping its range (taken under the
 * block-list lock, held only to copy them) and one index read transaction. Selecting a series
 * copies its head chunks into the querier's arena under the series' stripe lock, so nothing
 * points into mutable head memory afterwards, and notes which blocks hold data for it in range
 * (from the chunk-meta table alone).
 *
 * Block chunks are read lazily, when an iterator first moves: plain chunks point into the block
 * maps, which the references keep alive; compressed runs are decompressed into the iterator's
 * own arena. An exhausted iterator releases that memory at once, and a querier keeps at most
 * QUERIER_MAT_BUDGET bytes of it (tests may lower it): beyond that the least recently used iterator
 * lets go and, if used again, reads its chunks again and continues after the last sample it
 * returned. So a query over many series costs memory for the series it is reading, not for all it
 * selected.
 *
 * An iterator walks a series' chunks sorted by mint. Chunks normally do not overlap, but they
 * may (a block and the head chunk it was cut from, for the moment between publishing a block
 * and truncating the head; out-of-order samples; a forced cut), so the iterator merges the
 * active chunks and yields a timestamp once (the first source wins: blocks before the head).
 * Samples outside [mint, maxt] or inside a tombstone are skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/chunk.h"
#include "tsdb/db.h"

#define QUERIER_MAT_BUDGET ((size_t)32 << 20)

static size_t mat_budget = QUERIER_MAT_BUDGET;

void tsdb__querier_set_budget(size_t bytes)
{
    mat_budget = bytes ? bytes : QUERIER_MAT_BUDGET;
}

/* An active chunk: an XOR iterator, or a DENSE chunk decoded into an array (arr != NULL). */
typedef struct act {
    tsdb_chunk_it it;
    const tsdb_sample *arr;
    size_t n, pos;
    tsdb_sample cur;
} act;

static int act_next(act *a)
{
    if (!a->arr)
        return tsdb_chunk_it_next(&a->it, &a->cur);
    if (a->pos >= a->n)
        return 0;
    a->cur = a->arr[a->pos++];
    return 1;
}

/* First sample with t >= t0, moving forward only. */
static int act_seek(act *a, int64_t t0)
{
    if (!a->arr)
        return tsdb_chunk_it_seek(&a->it, t0, &a->cur);
    while (a->pos < a->n && a->arr[a->pos].t < t0)
        a->pos++;
    return act_next(a);
}

struct tsdb_iter {
    /* Set at select (querier arena). */
    tsdb_querier *q;
    uint64_t id;
    uint32_t *blk; /* indexes into q->blocks of blocks with data for the series */
    size_t n_blk;
    tsdb__chunk_ref *head; /* head chunk copies */
    size_t n_head;
    const int64_t *tombs; /* pairs mint, maxt (inclusive) */
    size_t n_tombs;
    int64_t mint, maxt, floor; /* floor: samples below were consumed or skipped by a seek */
    tsdb_sample last;
    int started, done, err;
    /* Materialized chunks (own arena), see the file comment. */
    int mat;
    tsdb_arena ma;
    size_t mat_bytes;
    tsdb_iter *lru_prev, *lru_next;
    tsdb__bchunk *chunks;  /* sorted by mint */
    size_t n_chunks, next; /* next chunk to activate */
    act *act;              /* active chunk iterators, each holding a current sample */
    size_t n_act;
};

typedef struct qseries {
    tsdb_labels lbls;
    tsdb_iter it;
} qseries;

struct tsdb_series_set {
    qseries *v;
    size_t n, i;
};

struct tsdb_querier {
    tsdb *db;
    int64_t mint, maxt;
    tsdb_arena arena;
    tsdb__block **blocks; /* references, sorted by mint */
    size_t n_blocks;
    tsdb_index_rd *rd;
    tsdb_iter *lru_head, *lru_tail; /* materialized iterators, most recent first */
    size_t mat_total;
};

/* ---- Iterator ----------------------------------------------------------------------------------
 */

static int in_tomb(const tsdb_iter *it, int64_t t)
{
    for (size_t i = 0; i < it->n_tombs; i++)
        if (t >= it->tombs[2 * i] && t <= it->tombs[2 * i + 1])
            return 1;
    return 0;
}

/* Activates chunk k: positions it at the floor. */
static int activate(tsdb_iter *it, size_t k)
{
    act *a = &it->act[it->n_act];
    const tsdb__bchunk *c = &it->chunks[k];
    int rc;
    a->arr = NULL;
    if (c->enc == TSDB__ENC_DENSE) {
        /* Materialized iterators own an arena (DENSE chunks come only from blocks). */
        size_t cnt = tsdb__bchunk_count(c), n;
        tsdb_sample *v = tsdb_arena_alloc(&it->ma, (cnt ? cnt : 1) * sizeof(*v));
        rc = tsdb__bchunk_decode(c, v, cnt, &n);
        if (rc < 0)
            return rc;
        a->arr = v;
        a->n = n;
        a->pos = 0;
    } else {
        rc = tsdb_chunk_it_init(&a->it, c->p, c->len);
        if (rc < 0)
            return rc;
    }
    rc = act_seek(a, it->floor);
    if (rc < 0)
        return rc;
    if (rc > 0)
        it->n_act++;
    return TSDB_OK;
}

static int iter_step(tsdb_iter *it, tsdb_sample *out)
{
    for (;;) {
        /* Activate every pending chunk that may hold the next sample. */
        for (;;) {
            int64_t min_t = INT64_MAX;
            for (size_t i = 0; i < it->n_act; i++)
                if (it->act[i].cur.t < min_t)
                    min_t = it->act[i].cur.t;
            if (it->next >= it->n_chunks || (it->n_act > 0 && it->chunks[it->next].mint > min_t))
                break;
            int rc = activate(it, it->next++);
            if (rc)
                return rc;
        }
        if (it->n_act == 0)
            return 0;
        size_t best = 0;
        for (size_t i = 1; i < it->n_act; i++)
            if (it->act[i].cur.t < it->act[best].cur.t)
                best = i;
        tsdb_sample s = it->act[best].cur;
        /* Advance every source at this timestamp; drop exhausted ones. */
        for (size_t i = 0; i < it->n_act;) {
            if (it->act[i].cur.t != s.t) {
                i++;
                continue;
            }
            int rc = act_next(&it->act[i]);
            if (rc < 0)
                return rc;
            if (rc == 0)
                it->act[i] = it->act[--it->n_act];
            else
                i++;
        }
        if (s.t < it->floor || (it->started && s.t <= it->last.t))
            continue;
        if (s.t > it->maxt)
            return 0;
        if (it->n_tombs && in_tomb(it, s.t))
            continue;
        *out = s;
        return 1;
    }
}

static void lru_unlink(tsdb_querier *q, tsdb_iter *it)
{
    if (it->lru_prev)
        it->lru_prev->lru_next = it->lru_next;
    else
        q->lru_head = it->lru_next;
    if (it->lru_next)
        it->lru_next->lru_prev = it->lru_prev;
    else
        q->lru_tail = it->lru_prev;
    it->lru_prev = it->lru_next = NULL;
}

/* Drops the iterator's chunks; its position (last, floor) stays. */
static void release(tsdb_iter *it)
{
    if (!it->mat)
        return;
    lru_unlink(it->q, it);
    it->q->mat_total -= it->mat_bytes;
    tsdb_arena_fini(&it->ma);
    it->mat = 0;
    it->mat_bytes = 0;
    it->chunks = NULL;
    it->act = NULL;
    it->n_chunks = it->next = it->n_act = 0;
}

/* Reads the series' block chunks (decompressing runs) and merges them with its head copies. */
static int materialize(tsdb_iter *it)
{
    tsdb_querier *q = it->q;
    tsdb_arena_init(&it->ma, 4096);
    it->mat = 1;
    size_t total = it->n_head;
    tsdb__bchunk **parts = tsdb_arena_alloc(&it->ma, (it->n_blk + 1) * sizeof(*parts));
    size_t *counts = tsdb_arena_alloc(&it->ma, (it->n_blk + 1) * sizeof(*counts));
    for (size_t i = 0; i < it->n_blk; i++) {
        int rc = tsdb__block_series_raw(q->blocks[it->blk[i]], it->id, q->mint, q->maxt, &it->ma,
                                        &parts[i], &counts[i], NULL);
        if (rc) {
            tsdb_arena_fini(&it->ma);
            it->mat = 0;
            return rc;
        }
        total += counts[i];
    }
    tsdb__bchunk *all = tsdb_arena_alloc(&it->ma, (total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < it->n_blk; i++) {
        if (counts[i])
            memcpy(all + k, parts[i], counts[i] * sizeof(*all));
        k += counts[i];
    }
    for (size_t i = 0; i < it->n_head; i++)
        all[k++] = (tsdb__bchunk){it->head[i].mint, it->head[i].maxt, it->head[i].p,
                                  it->head[i].len, TSDB__ENC_XOR};
    /* Insertion sort by mint keeps source order among equal mints (blocks before head). */
    for (size_t i = 1; i < k; i++) {
        tsdb__bchunk c = all[i];
        size_t j = i;
        while (j > 0 && all[j - 1].mint > c.mint) {
            all[j] = all[j - 1];
            j--;
        }
        all[j] = c;
    }
    it->chunks = all;
    it->n_chunks = k;
    it->next = it->n_act = 0;
    it->act = tsdb_arena_alloc(&it->ma, (k ? k : 1) * sizeof(*it->act));
    if (it->started && it->last.t >= it->floor)
        it->floor = it->last.t + 1;
    /* Least recently used iterators let go while the querier is over its budget. */
    it->mat_bytes = tsdb_arena_used(&it->ma);
    q->mat_total += it->mat_bytes;
    it->lru_next = q->lru_head;
    it->lru_prev = NULL;
    if (q->lru_head)
        q->lru_head->lru_prev = it;
    else
        q->lru_tail = it;
    q->lru_head = it;
    while (q->mat_total > mat_budget && q->lru_tail && q->lru_tail != it)
        release(q->lru_tail);
    return TSDB_OK;
}

/* Makes it the most recently used; materializes it when needed. */
static int touch(tsdb_iter *it)
{
    if (!it->mat)
        return materialize(it);
    tsdb_querier *q = it->q;
    if (q->lru_head != it) {
        lru_unlink(q, it);
        it->lru_next = q->lru_head;
        if (q->lru_head)
            q->lru_head->lru_prev = it;
        else
            q->lru_tail = it;
        q->lru_head = it;
    }
    return TSDB_OK;
}

int tsdb_iter_next(tsdb_iter *it, tsdb_sample *out)
{
    if (it->err)
        return it->err;
    if (it->done)
        return 0;
    int rc = touch(it);
    tsdb_sample s;
    if (rc == TSDB_OK)
        rc = iter_step(it, &s);
    if (rc < 0) {
        it->err = rc;
        release(it);
        return rc;
    }
    if (rc == 0) {
        it->done = 1;
        release(it);
        return 0;
    }
    it->last = s;
    it->started = 1;
    *out = s;
    return 1;
}

int tsdb_iter_any(tsdb_iter *it)
{
    if (it->err)
        return it->err;
    if (it->done)
        return 0;
    tsdb_sample last = it->last, s;
    int started = it->started;
    int64_t floor = it->floor;
    int rc = tsdb_iter_next(it, &s);
    if (rc <= 0)
        return rc; /* exhausted or failed: released, as tsdb_iter_next leaves it */
    /* Back to where it was: without its chunks, it reads them again from there if used. */
    release(it);
    it->last = last;
    it->started = started;
    it->floor = floor;
    return 1;
}

int tsdb_iter_seek(tsdb_iter *it, int64_t t, tsdb_sample *out)
{
    if (it->err)
        return it->err;
    if (it->started && it->last.t >= t) {
        *out = it->last;
        return 1;
    }
    if (it->done)
        return 0;
    if (t > it->floor) {
        it->floor = t;
        /* Skip pending chunks that end before t, and move active ones forward. */
        while (it->next < it->n_chunks && it->chunks[it->next].maxt < t)
            it->next++;
        for (size_t i = 0; i < it->n_act;) {
            if (it->act[i].cur.t >= t) {
                i++;
                continue;
            }
            int rc = act_seek(&it->act[i], t);
            if (rc < 0) {
                it->err = rc;
                release(it);
                return rc;
            }
            if (rc == 0)
                it->act[i] = it->act[--it->n_act];
            else
                i++;
        }
    }
    return tsdb_iter_next(it, out);
}

/* ---- Querier ------------------------------------------------------------------------------------
 */

int tsdb_querier_open(tsdb *db, int64_t mint, int64_t maxt, tsdb_querier **out, tsdb_err *err)
{
    if (!db || !out || mint > maxt)
        return tsdb_errf(err, TSDB_EINVAL, -1, "querier range [%lld, %lld] is empty",
                         (long long)mint, (long long)maxt);
    tsdb_querier *q = xcalloc(1, sizeof(*q));
    q->db = db;
    q->mint = mint;
    q->maxt = maxt;
    tsdb_arena_init(&q->arena, 0);
    size_t n;
    tsdb__block **all = tsdb__blocks_snapshot(db, &n);
    q->blocks = xmalloc((n ? n : 1) * sizeof(*q->blocks));
    for (size_t i = 0; i < n; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(all[i]);
        if (m->maxt > mint && m->mint <= maxt)
            q->blocks[q->n_blocks++] = all[i];
        else
            tsdb__block_unref(all[i]);
    }
    free(all);
    int rc = tsdb__index_rd_begin(db->ix, &q->rd, err);
    if (rc) {
        tsdb_querier_close(q);
        return rc;
    }
    *out = q;
    return TSDB_OK;
}

void tsdb_querier_close(tsdb_querier *q)
{
    if (!q)
        return;
    tsdb__index_rd_end(q->rd);
    while (q->lru_head)
        release(q->lru_head);
    for (size_t i = 0; i < q->n_blocks; i++)
        tsdb__block_unref(q->blocks[i]);
    free(q->blocks);
    tsdb_arena_fini(&q->arena);
    free(q);
}

/* Notes the series' data sources: blocks with chunks in range (from their meta tables), head
 * chunk copies, tombstones. it->n_blk + it->n_head == 0 when it has no data in range. */
static int gather(tsdb_querier *q, uint64_t id, tsdb_iter *it)
{
    tsdb_arena *a = &q->arena;
    memset(it, 0, sizeof(*it));
    it->q = q;
    it->id = id;
    it->mint = q->mint;
    it->maxt = q->maxt;
    it->floor = q->mint;
    int64_t *tparts[65];
    size_t tcounts[65], nparts = 0, nt = 0;
    for (size_t i = 0; i < q->n_blocks; i++) {
        if (tsdb__block_series_overlaps(q->blocks[i], id, q->mint, q->maxt) == 0)
            continue;
        if (!it->blk)
            it->blk = tsdb_arena_alloc(a, q->n_blocks * sizeof(*it->blk));
        it->blk[it->n_blk++] = (uint32_t)i;
        int64_t *tr;
        size_t tn = tsdb__block_tomb_get(q->blocks[i], id, a, &tr);
        if (tn && nparts < 64) {
            tparts[nparts] = tr;
            tcounts[nparts++] = tn;
            nt += tn;
        }
    }
    it->n_head = tsdb__head_copy(q->db->head, id, q->mint, q->maxt, a, &it->head);
    if (it->n_blk + it->n_head == 0)
        return TSDB_OK;
    int64_t *htr;
    size_t htn = tsdb__head_tomb_get(q->db->head, id, a, &htr);
    if (htn && nparts < 65) {
        tparts[nparts] = htr;
        tcounts[nparts++] = htn;
        nt += htn;
    }
    if (nt) {
        int64_t *tombs = tsdb_arena_alloc(a, nt * 2 * sizeof(int64_t));
        size_t o = 0;
        for (size_t i = 0; i < nparts; i++) {
            memcpy(tombs + o, tparts[i], tcounts[i] * 2 * sizeof(int64_t));
            o += tcounts[i] * 2;
        }
        it->tombs = tombs;
        it->n_tombs = nt;
    }
    return TSDB_OK;
}

static int cmp_qseries(const void *a, const void *b)
{
    return tsdb_labels_cmp(((const qseries *)a)->lbls, ((const qseries *)b)->lbls);
}

/* Selects the ids of matching series and gathers those with data in range. */
static int select_ids(tsdb_querier *q, const tsdb_matcher *const *ms, size_t n, qseries **out,
                      size_t *n_out, tsdb_err *err)
{
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int rc = tsdb__index_rd_select(q->rd, ms, n, &q->arena, &ids, &n_ids, err);
    if (rc)
        return rc;
    qseries *v = tsdb_arena_alloc(&q->arena, (n_ids ? n_ids : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        gather(q, ids[i], &v[k].it);
        if (v[k].it.n_blk + v[k].it.n_head == 0)
            continue;
        rc = tsdb__index_rd_labels(q->rd, ids[i], &q->arena, &v[k].lbls);
        if (rc == TSDB_ENOTFOUND)
            continue;
        if (rc)
            return tsdb_errf(err, rc, -1, "labels of series %llu: %s", (unsigned long long)ids[i],
                             tsdb_strerror(rc));
        k++;
    }
    *out = v;
    *n_out = k;
    return TSDB_OK;
}

int tsdb_querier_select(tsdb_querier *q, const tsdb_matcher *const *ms, size_t n,
                        tsdb_series_set **out, tsdb_err *err)
{
    qseries *v;
    size_t k;
    int rc = select_ids(q, ms, n, &v, &k, err);
    if (rc)
        return rc;
    qsort(v, k, sizeof(*v), cmp_qseries);
    tsdb_series_set *s = tsdb_arena_alloc(&q->arena, sizeof(*s));
    s->v = v;
    s->n = k;
    s->i = 0;
    *out = s;
    return TSDB_OK;
}

int tsdb_series_next(tsdb_series_set *s, tsdb_labels *lbls, tsdb_iter **it)
{
    if (s->i >= s->n)
        return 0;
    qseries *e = &s->v[s->i++];
    *lbls = e->lbls;
    *it = &e->it;
    return 1;
}

/* ---- Label names and values ---------------------------------------------------------------------
 */

static int cmp_str(const void *a, const void *b)
{
    return tsdb_str_cmp(*(const tsdb_str *)a, *(const tsdb_str *)b);
}

/* Sorts v and removes duplicates; returns the new count. */
static size_t sort_unique(tsdb_str *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (!tsdb_str_eq(v[i], v[k - 1]))
            v[k++] = v[i];
    return k;
}

static int collect_labels(tsdb_querier *q, const tsdb_str *name, const tsdb_matcher *const *ms,
                          size_t n, tsdb_arena *a, tsdb_str **out, size_t *n_out, tsdb_err *err)
{
    qseries *v;
    size_t k;
    int rc = select_ids(q, ms, n, &v, &k, err);
    if (rc)
        return rc;
    size_t total = 0;
    for (size_t i = 0; i < k; i++)
        total += name ? 1 : v[i].lbls.n;
    tsdb_str *r = tsdb_arena_alloc(a, (total ? total : 1) * sizeof(*r));
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (name) {
            tsdb_str val = tsdb_labels_get(v[i].lbls, *name);
            if (val.len)
                r[m++] = val;
        } else {
            for (size_t j = 0; j < v[i].lbls.n; j++)
                r[m++] = v[i].lbls.v[j].name;
        }
    }
    m = sort_unique(r, m);
    for (size_t i = 0; i < m; i++)
        r[i] = tsdb_arena_str(a, r[i]);
    *out = r;
    *n_out = m;
    return TSDB_OK;
}

int tsdb_label_names(tsdb_querier *q, const tsdb_matcher *const *ms, size_t n, tsdb_arena *a,
                     tsdb_str **out, size_t *n_out, tsdb_err *err)
{
    if (n > 0)
        return collect_labels(q, NULL, ms, n, a, out, n_out, err);
    tsdb_str *v;
    size_t k;
    int rc = tsdb__index_rd_names(q->rd, a, &v, &k);
    if (rc)
        return tsdb_errf(err, rc, -1, "label names: %s", tsdb_strerror(rc));
    *out = v;
    *n_out = k;
    return TSDB_OK;
}

int tsdb_label_values(tsdb_querier *q, tsdb_str name, const tsdb_matcher *const *ms, size_t n,
                      tsdb_arena *a, tsdb_str **out, size_t *n_out, tsdb_err *err)
{
    if (n > 0)
        return collect_labels(q, &name, ms, n, a, out, n_out, err);
    tsdb_str *v;
    size_t k;
    int rc = tsdb__index_rd_values(q->rd, name, a, &v, &k);
    if (rc)
        return tsdb_errf(err, rc, -1, "label values: %s", tsdb_strerror(rc));
    *out = v;
    *n_out = k;
    return TSDB_OK;
}
