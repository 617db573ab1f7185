/* tsdb/querier.c -- reading: index + blocks + head -> series sets with merged sample iterators.
 *
 * A querier pins a snapshot: references to the blocks overlapping its range (taken under the
 * block-list lock, held only to copy them) and one index read transaction. Selecting a series
 * copies its head chunks into the querier's arena under the series' stripe lock, so nothing
 * points into mutable head memory afterwards; block chunks point into the block maps, which
 * the references keep alive.
 *
 * An iterator walks a series' chunks sorted by mint. Chunks normally do not overlap, but they
 * may (a block and the head chunk it was cut from, for the moment between publishing a block
 * and truncating the head; a forced cut), so the iterator merges the active chunks and yields
 * a timestamp once (the first source wins). Samples outside [mint, maxt] or inside a tombstone
 * are skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/chunk.h"
#include "tsdb/db.h"

typedef struct act {
    tsdb_chunk_it it;
    tsdb_sample cur;
} act;

struct tsdb_iter {
    tsdb__chunk_ref *chunks; /* sorted by mint */
    size_t n_chunks, next;   /* next chunk to activate */
    act *act;                /* active chunk iterators, each holding a current sample */
    size_t n_act;
    const int64_t *tombs; /* pairs mint, maxt (inclusive) */
    size_t n_tombs;
    int64_t mint, maxt, floor; /* floor: samples below were consumed or skipped by a seek */
    tsdb_sample last;
    int started, done, err;
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
    int rc = tsdb_chunk_it_init(&a->it, it->chunks[k].p, it->chunks[k].len);
    if (rc < 0)
        return rc;
    rc = tsdb_chunk_it_seek(&a->it, it->floor, &a->cur);
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
            int rc = tsdb_chunk_it_next(&it->act[i].it, &it->act[i].cur);
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

int tsdb_iter_next(tsdb_iter *it, tsdb_sample *out)
{
    if (it->err)
        return it->err;
    if (it->done)
        return 0;
    tsdb_sample s;
    int rc = iter_step(it, &s);
    if (rc < 0) {
        it->err = rc;
        return rc;
    }
    if (rc == 0) {
        it->done = 1;
        return 0;
    }
    it->last = s;
    it->started = 1;
    *out = s;
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
            int rc = tsdb_chunk_it_seek(&it->act[i].it, t, &it->act[i].cur);
            if (rc < 0) {
                it->err = rc;
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
    for (size_t i = 0; i < q->n_blocks; i++)
        tsdb__block_unref(q->blocks[i]);
    free(q->blocks);
    tsdb_arena_fini(&q->arena);
    free(q);
}

static int cmp_chunk(const void *a, const void *b)
{
    const tsdb__chunk_ref *x = a, *y = b;
    if (x->mint != y->mint)
        return x->mint < y->mint ? -1 : 1;
    /* Stable enough: earlier sources (blocks) come first because of the pointer order below. */
    return 0;
}

/* Gathers the chunks and tombstones of one series; n_chunks 0 when it has no data in range. */
static int gather(tsdb_querier *q, uint64_t id, tsdb_iter *it, tsdb_err *err)
{
    tsdb_arena *a = &q->arena;
    tsdb__chunk_ref *parts[65];
    size_t counts[65], total = 0, np = 0;
    int64_t *tparts[65];
    size_t tcounts[65], ttotal = 0;
    size_t nb = q->n_blocks < 64 ? q->n_blocks : 64;
    /* More than 64 overlapping blocks are read in groups; the common case is a handful. */
    tsdb__chunk_ref *extra = NULL;
    size_t n_extra = 0;
    for (size_t i = 0; i < q->n_blocks; i++) {
        tsdb__chunk_ref *r;
        size_t n;
        int rc = tsdb__block_series(q->blocks[i], id, q->mint, q->maxt, a, &r, &n, err);
        if (rc)
            return rc;
        if (n == 0)
            continue;
        if (i < nb) {
            parts[np] = r;
            counts[np++] = n;
        } else {
            tsdb__chunk_ref *e = tsdb_arena_alloc(a, (n_extra + n) * sizeof(*e));
            if (n_extra)
                memcpy(e, extra, n_extra * sizeof(*e));
            memcpy(e + n_extra, r, n * sizeof(*e));
            extra = e;
            n_extra += n;
        }
        total += n;
        int64_t *tr;
        size_t tn = tsdb__block_tomb_get(q->blocks[i], id, a, &tr);
        if (tn && ttotal < 64) {
            tparts[ttotal] = tr;
            tcounts[ttotal++] = tn;
        }
    }
    tsdb__chunk_ref *hr = NULL;
    size_t hn = tsdb__head_copy(q->db->head, id, q->mint, q->maxt, a, &hr);
    total += hn;
    if (total == 0) {
        it->n_chunks = 0;
        return TSDB_OK;
    }
    int64_t *htr;
    size_t htn = tsdb__head_tomb_get(q->db->head, id, a, &htr);
    if (htn && ttotal < 64) {
        tparts[ttotal] = htr;
        tcounts[ttotal++] = htn;
    }
    tsdb__chunk_ref *all = tsdb_arena_alloc(a, total * sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        memcpy(all + k, parts[i], counts[i] * sizeof(*all));
        k += counts[i];
    }
    if (n_extra) {
        memcpy(all + k, extra, n_extra * sizeof(*all));
        k += n_extra;
    }
    if (hn) {
        memcpy(all + k, hr, hn * sizeof(*all));
        k += hn;
    }
    /* Insertion sort by mint keeps source order among equal mints (blocks before head). */
    for (size_t i = 1; i < k; i++) {
        tsdb__chunk_ref c = all[i];
        size_t j = i;
        while (j > 0 && cmp_chunk(&all[j - 1], &c) > 0) {
            all[j] = all[j - 1];
            j--;
        }
        all[j] = c;
    }
    size_t nt = 0;
    for (size_t i = 0; i < ttotal; i++)
        nt += tcounts[i];
    int64_t *tombs = NULL;
    if (nt) {
        tombs = tsdb_arena_alloc(a, nt * 2 * sizeof(int64_t));
        size_t o = 0;
        for (size_t i = 0; i < ttotal; i++) {
            memcpy(tombs + o, tparts[i], tcounts[i] * 2 * sizeof(int64_t));
            o += tcounts[i] * 2;
        }
    }
    memset(it, 0, sizeof(*it));
    it->chunks = all;
    it->n_chunks = k;
    it->act = tsdb_arena_alloc(a, k * sizeof(*it->act));
    it->tombs = tombs;
    it->n_tombs = nt;
    it->mint = q->mint;
    it->maxt = q->maxt;
    it->floor = q->mint;
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
        rc = gather(q, ids[i], &v[k].it, err);
        if (rc)
            return rc;
        if (v[k].it.n_chunks == 0)
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
