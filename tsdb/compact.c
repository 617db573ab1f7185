/* tsdb/compact.c -- head -> block cuts, block merges and retention.
 *
 * Cut. When the head spans more than 1.5 block ranges, its oldest aligned range [a, a + B) is
 * written as a level-0 block. First min_valid is raised to a + B under the append lock (no
 * sample below it is accepted any more), then the head's chunks in the range are copied out
 * series by series (head chunks never cross a multiple of B, see head.c), head tombstones are
 * applied, and the block is committed and published. Then the head drops those chunks and the
 * series left without data (index entries of series that never held a sample and have no block
 * data go too), the WAL moves to a new segment (the ended one is fdatasynced after the append
 * lock is released, before the checkpoint), and a checkpoint written from the head (SERIES
 * of every head series, CHUNKS with its closed chunks as they are, SAMPLES of its open chunk and
 * out-of-order samples, its tombstones) supersedes the older segments. When another cut is due
 * at once, the checkpoint waits for the last one. A forced cut (tsdb_cut_head) ends the range
 * at the head's maxt + 1 when that comes first; head chunks are then closed at that point as
 * samples arrive.
 *
 * Blocks store each series as one zstd-compressed run of its chunks when that saves at least
 * an eighth (tsdb/block.c); the head and remote read keep plain XOR chunks.
 *
 * Merge. Levels 0, 1, 2 cover B, 5B and 25B. Blocks of level l whose aligned 5^(l+1) B window
 * is complete (the newest block ends at or after the window's end) are merged by series id into
 * one level l+1 block once there are two or more of them, or one with tombstones; any other
 * block with tombstones is rewritten at its own level without the deleted data. Chunks are
 * copied as they are unless the series' tombstones touch them or chunks overlap; then the
 * series is decoded, merged (first source wins on equal t), filtered and re-encoded.
 *
 * Retention. Blocks that end more than retention_ms before the newest data are dropped, then
 * the oldest blocks while blocks + WAL exceed retention_bytes. Series that have no data left
 * anywhere lose their index entries (under the append lock, so no append can revive them
 * half-way).
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/chunk.h"
#include "tsdb/db.h"
#include "tsdb/os.h"
#include "tsdb/record.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int in_ranges(const int64_t *r, size_t n, int64_t t)
{
    for (size_t i = 0; i < n; i++)
        if (t >= r[2 * i] && t <= r[2 * i + 1])
            return 1;
    return 0;
}

/* Decodes chunks (sorted by mint), merges them by t (first wins), drops deleted samples and
 * re-encodes into chunks of at most TSDB_CHUNK_SAMPLES_MAX samples in the arena. */
static int rechunk(const tsdb__bchunk *in, size_t n, const int64_t *tombs, size_t n_tombs,
                   tsdb_arena *a, tsdb__bchunk **out, size_t *n_out, tsdb_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += tsdb__bchunk_count(&in[i]);
    tsdb_sample *s = xmalloc((total ? total : 1) * sizeof(*s));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t got;
        if (tsdb__bchunk_decode(&in[i], s + k, total - k, &got) != TSDB_OK) {
            free(s);
            return TSDB_CORRUPT(err, "chunk does not decode during compaction");
        }
        k += got;
    }
    /* Stable insertion merge: inputs are mostly sorted already. */
    for (size_t i = 1; i < k; i++) {
        tsdb_sample x = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].t > x.t) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = x;
    }
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if ((m > 0 && s[m - 1].t == s[i].t) || in_ranges(tombs, n_tombs, s[i].t))
            continue;
        s[m++] = s[i];
    }
    size_t nc = (m + TSDB_CHUNK_SAMPLES_MAX - 1) / TSDB_CHUNK_SAMPLES_MAX;
    tsdb__bchunk *r = tsdb_arena_alloc(a, (nc ? nc : 1) * sizeof(*r));
    for (size_t c = 0; c < nc; c++) {
        size_t lo = c * TSDB_CHUNK_SAMPLES_MAX;
        size_t hi = lo + TSDB_CHUNK_SAMPLES_MAX < m ? lo + TSDB_CHUNK_SAMPLES_MAX : m;
        tsdb_chunk_app app;
        tsdb_chunk_app_init(&app);
        for (size_t i = lo; i < hi; i++)
            tsdb_chunk_app_add(&app, s[i].t, s[i].v);
        size_t len;
        const unsigned char *b = tsdb_chunk_app_bytes(&app, &len);
        unsigned char *p = tsdb_arena_alloc(a, len);
        memcpy(p, b, len);
        tsdb_chunk_app_fini(&app);
        r[c] = (tsdb__bchunk){s[lo].t, s[hi - 1].t, p, len, TSDB__ENC_XOR};
    }
    free(s);
    *out = r;
    *n_out = nc;
    return TSDB_OK;
}

/* Does any tombstone touch a chunk, or do chunks overlap? Then the series must be re-encoded. */
static int needs_rechunk(const tsdb__bchunk *c, size_t n, const int64_t *tombs, size_t nt)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && c[i].mint <= c[i - 1].maxt)
            return 1;
        for (size_t j = 0; j < nt; j++)
            if (tombs[2 * j] <= c[i].maxt && tombs[2 * j + 1] >= c[i].mint)
                return 1;
    }
    return 0;
}

/* ---- Checkpoint
 * ------------------------------------------------------------------------------------ */

static int write_checkpoint(tsdb *db, uint32_t upto, int64_t from, tsdb_err *err)
{
    tsdb__wal_ckpt *c = NULL;
    int rc = tsdb__wal_ckpt_begin(db->wal_dir, upto, &c, err);
    if (rc)
        return rc;
    size_t n;
    tsdb__hseries **v = tsdb__head_list(db->head, &n);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_buf rec;
    tsdb_buf_init(&rec);
    /* Per group of 1000 series: SERIES, then CHUNKS (closed chunks, bytes as they are), then
     * SAMPLES (the open chunk and out-of-order samples, per series in time order; the in-order
     * sample wins a tie, as in queries). Replay sees a series' chunks before its samples. */
    size_t cap = 8192, k = 0, dcap = 4096, ccap = 1024;
    tsdb__rec_sample *smp = xmalloc(cap * sizeof(*smp));
    tsdb_sample *dec = xmalloc(dcap * sizeof(*dec));
    tsdb__rec_chunk *chk = xmalloc(ccap * sizeof(*chk));
    for (size_t g = 0; rc == TSDB_OK && g < n; g += 1000) {
        size_t m = n - g < 1000 ? n - g : 1000;
        tsdb__rec_series *sv = tsdb_arena_alloc(&a, m * sizeof(*sv));
        for (size_t j = 0; j < m; j++)
            sv[j] = (tsdb__rec_series){v[g + j]->id, tsdb__hseries_labels(v[g + j], &a)};
        rec.len = 0;
        tsdb__rec_series_encode(&rec, sv, m);
        rc = tsdb__wal_ckpt_log(c, rec.p, rec.len, err);
        size_t nchk = 0;
        k = 0;
        for (size_t j = 0; rc == TSDB_OK && j < m; j++) {
            tsdb__hseries *s = v[g + j];
            tsdb__chunk_ref *r;
            size_t n_closed;
            size_t nc = tsdb__head_copy_split(db->head, s, from, &a, &r, &n_closed);
            size_t nd = 0, sorted = 1;
            for (size_t x = 0; x < nc; x++) {
                if (x < n_closed && r[x].mint >= from) {
                    if (nchk == ccap) {
                        ccap *= 2;
                        chk = xrealloc(chk, ccap * sizeof(*chk));
                    }
                    chk[nchk++] = (tsdb__rec_chunk){s->id, r[x].mint, r[x].maxt, r[x].p, r[x].len};
                    continue;
                }
                size_t need = nd + tsdb_chunk_count(r[x].p, r[x].len);
                if (need > dcap) {
                    dcap = need * 2;
                    dec = xrealloc(dec, dcap * sizeof(*dec));
                }
                size_t got = 0;
                if (tsdb_chunk_decode_all(r[x].p, r[x].len, dec + nd, dcap - nd, &got) != TSDB_OK)
                    continue;
                if (nd > 0 && got > 0 && dec[nd].t <= dec[nd - 1].t)
                    sorted = 0;
                nd += got;
            }
            if (!sorted) {
                /* Stable insertion sort: out-of-order chunks are few and short. */
                for (size_t x = 1; x < nd; x++) {
                    tsdb_sample y = dec[x];
                    size_t z = x;
                    while (z > 0 && dec[z - 1].t > y.t) {
                        dec[z] = dec[z - 1];
                        z--;
                    }
                    dec[z] = y;
                }
            }
            for (size_t x = 0; x < nd; x++) {
                if (dec[x].t < from || (x > 0 && dec[x].t == dec[x - 1].t))
                    continue;
                if (k == cap) {
                    cap *= 2;
                    smp = xrealloc(smp, cap * sizeof(*smp));
                }
                smp[k++] = (tsdb__rec_sample){s->id, dec[x].t, dec[x].v};
            }
        }
        /* CHUNKS records of about 1 MiB, then SAMPLES records of 8192 samples. */
        for (size_t x = 0; rc == TSDB_OK && x < nchk;) {
            size_t y = x, bytes = 0;
            while (y < nchk && (y == x || bytes + chk[y].len + 16 <= ((size_t)1 << 20)))
                bytes += chk[y++].len + 16;
            rec.len = 0;
            tsdb__rec_chunks_encode(&rec, chk + x, y - x);
            rc = tsdb__wal_ckpt_log(c, rec.p, rec.len, err);
            x = y;
        }
        for (size_t x = 0; rc == TSDB_OK && x < k; x += 8192) {
            rec.len = 0;
            tsdb__rec_samples_encode(&rec, smp + x, k - x < 8192 ? k - x : 8192);
            rc = tsdb__wal_ckpt_log(c, rec.p, rec.len, err);
        }
        tsdb_arena_reset(&a);
    }
    free(chk);
    /* Tombstones that still matter. */
    int64_t *tr;
    size_t nt = tsdb__head_tomb_all(db->head, &tr);
    if (rc == TSDB_OK && nt > 0) {
        tsdb__rec_tomb *tv = xmalloc(nt * sizeof(*tv));
        size_t m = 0;
        for (size_t i = 0; i < nt; i++)
            if (tr[i * 3 + 2] >= from)
                tv[m++] = (tsdb__rec_tomb){(uint64_t)tr[i * 3], tr[i * 3 + 1], tr[i * 3 + 2]};
        if (m > 0) {
            rec.len = 0;
            tsdb__rec_tombs_encode(&rec, tv, m);
            rc = tsdb__wal_ckpt_log(c, rec.p, rec.len, err);
        }
        free(tv);
    }
    free(tr);
    free(smp);
    free(dec);
    free(v);
    tsdb_buf_fini(&rec);
    tsdb_arena_fini(&a);
    if (rc) {
        tsdb__wal_ckpt_abort(c);
        return rc;
    }
    return tsdb__wal_ckpt_commit(c, err);
}

/* Index entries of series that never held a sample (every sample refused, or the batch's WAL
 * write failed) and have no block data go, so they do not linger in label listings. Called
 * with the append lock held, so no append can pick such an id up meanwhile. */
static void drop_orphans(tsdb *db, uint64_t *ids, size_t n)
{
    size_t nb;
    tsdb__block **bl = tsdb__blocks_snapshot(db, &nb);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < nb && !found; j++)
            found = tsdb__block_has_series(bl[j], ids[i]);
        if (!found)
            ids[k++] = ids[i];
    }
    for (size_t j = 0; j < nb; j++)
        tsdb__block_unref(bl[j]);
    free(bl);
    tsdb_err e;
    if (k > 0 && tsdb__index_delete_series(db->ix, ids, k, &e) != TSDB_OK)
        TSDB_LOG_WARN("compact", "dropping %zu empty series from the index: %s", k, e.msg);
}

/* ---- Cut
 * --------------------------------------------------------------------------------------------- */

int tsdb__cut(tsdb *db, int force, tsdb_err *err)
{
    pthread_mutex_lock(&db->maint_lock);
    int rc = TSDB_OK, wrote = 0;
    tsdb__head_stats hs;
    tsdb__head_stats_get(db->head, &hs);
    int64_t B = db->o.block_ms;
    if (hs.n_samples == 0 || (!force && hs.maxt - hs.mint <= B / 2 * 3)) {
        pthread_mutex_unlock(&db->maint_lock);
        return 0;
    }
    int64_t a0 = floor_div(hs.mint, B) * B, end = a0 + B;
    if (force && hs.maxt < end - 1)
        end = hs.maxt + 1;

    pthread_mutex_lock(&db->append_lock);
    int64_t cur = atomic_load(&db->min_valid);
    if (end > cur)
        atomic_store(&db->min_valid, end);
    tsdb__head_set_chunk_floor(db->head, end);
    pthread_mutex_unlock(&db->append_lock);

    char path[TSDB__DIR_MAX + 300];
    tsdb__block_name(db, a0, end, 0, path, sizeof(path));
    tsdb__block_writer *w = NULL;
    rc = tsdb__block_writer_begin(path, a0, end, 0, &w, err);
    if (rc)
        goto out;
    tsdb__block_writer_compress(w, 1);
    size_t n, n_written = 0;
    tsdb__hseries **v = tsdb__head_list(db->head, &n);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    for (size_t i = 0; rc == TSDB_OK && i < n; i++) {
        tsdb_arena_reset(&a);
        tsdb__chunk_ref *hr;
        size_t k = tsdb__head_copy_series(db->head, v[i], a0, end - 1, &a, &hr);
        tsdb__bchunk *r = tsdb_arena_alloc(&a, (k ? k : 1) * sizeof(*r));
        size_t m = 0;
        for (size_t j = 0; j < k; j++)
            if (hr[j].mint < end)
                r[m++] = (tsdb__bchunk){hr[j].mint, hr[j].maxt, hr[j].p, hr[j].len, TSDB__ENC_XOR};
        if (m == 0)
            continue;
        int64_t *tombs = NULL;
        size_t nt = tsdb__head_tomb_get(db->head, v[i]->id, &a, &tombs);
        if (nt && needs_rechunk(r, m, tombs, nt)) {
            rc = rechunk(r, m, tombs, nt, &a, &r, &m, err);
            if (rc)
                break;
        }
        if (m == 0)
            continue;
        rc = tsdb__block_writer_add_raw(w, v[i]->id, r, m, err);
        n_written++;
    }
    tsdb_arena_fini(&a);
    free(v);
    if (rc) {
        tsdb__block_writer_abort(w);
        goto out;
    }
    if (n_written == 0) {
        tsdb__block_writer_abort(w);
    } else {
        rc = tsdb__block_writer_commit(w, err);
        if (rc)
            goto out;
        tsdb__block *b;
        rc = tsdb__block_open(path, &b, err);
        if (rc)
            goto out;
        tsdb__blocks_add(db, b);
        wrote = 1;
    }

    /* The block is durable and visible: drop its data from the head and the WAL. */
    tsdb__head_truncate_chunks(db->head, end);
    uint32_t closed = 0;
    pthread_mutex_lock(&db->append_lock);
    uint64_t *empty = NULL;
    size_t n_empty = 0;
    tsdb__head_gc_empty(db->head, end, &empty, &n_empty);
    if (n_empty > 0)
        drop_orphans(db, empty, n_empty);
    free(empty);
    /* When another cut is due right away (a head spanning many ranges after a backfill), the
     * checkpoint waits for the last one instead of rewriting the head each time. */
    tsdb__head_stats_get(db->head, &hs);
    int more = !force && hs.n_samples > 0 && hs.maxt - hs.mint > B / 2 * 3;
    if (!more)
        rc = tsdb__wal_cut_begin(db->wal, &closed, err);
    pthread_mutex_unlock(&db->append_lock);
    /* The ended segment's fdatasync runs while appends go on into the next one. */
    if (rc == TSDB_OK && !more)
        rc = tsdb__wal_cut_finish(db->wal, err);
    if (rc == TSDB_OK && !more)
        rc = write_checkpoint(db, closed, end, err);
    if (rc == TSDB_OK && !more)
        tsdb__head_tomb_truncate(db->head, end);
out:
    pthread_mutex_unlock(&db->maint_lock);
    if (rc)
        return rc;
    TSDB_LOG_DEBUG("compact", "cut head range [%lld, %lld)", (long long)a0, (long long)end);
    return wrote;
}

/* ---- Merge
 * ---------------------------------------------------------------------------------------------- */

static int merge_blocks(tsdb *db, tsdb__block **src, size_t ns, uint32_t level, tsdb_err *err)
{
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    for (size_t i = 0; i < ns; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(src[i]);
        if (m->mint < mint)
            mint = m->mint;
        if (m->maxt > maxt)
            maxt = m->maxt;
    }
    char path[TSDB__DIR_MAX + 300];
    tsdb__block_name(db, mint, maxt, level, path, sizeof(path));
    tsdb__block_writer *w = NULL;
    int rc = tsdb__block_writer_begin(path, mint, maxt, level, &w, err);
    if (rc)
        return rc;
    tsdb__block_writer_compress(w, 1);
    size_t *pos = xcalloc(ns, sizeof(*pos));
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    size_t n_written = 0;
    for (;;) {
        /* Smallest next id over the sources. */
        uint64_t id = UINT64_MAX;
        int any = 0;
        for (size_t i = 0; i < ns; i++) {
            uint64_t sid;
            uint32_t f, c;
            if (tsdb__block_series_at(src[i], pos[i], &sid, &f, &c) == TSDB_OK &&
                (!any || sid < id)) {
                id = sid;
                any = 1;
            }
        }
        if (!any)
            break;
        tsdb_arena_reset(&a);
        size_t total = 0, cap = 0;
        tsdb__bchunk *r = NULL;
        int64_t *tombs = NULL;
        size_t nt = 0;
        for (size_t i = 0; i < ns && rc == TSDB_OK; i++) {
            uint64_t sid;
            uint32_t f, c;
            if (tsdb__block_series_at(src[i], pos[i], &sid, &f, &c) != TSDB_OK || sid != id)
                continue;
            pos[i]++;
            tsdb__bchunk *sr;
            size_t sn;
            rc = tsdb__block_series_raw(src[i], id, INT64_MIN, INT64_MAX, &a, &sr, &sn, err);
            if (rc)
                break;
            if (total + sn > cap) {
                size_t nc = (total + sn) * 2;
                tsdb__bchunk *nr = tsdb_arena_alloc(&a, nc * sizeof(*nr));
                if (total)
                    memcpy(nr, r, total * sizeof(*nr));
                r = nr;
                cap = nc;
            }
            memcpy(r + total, sr, sn * sizeof(*sr));
            total += sn;
            int64_t *tr;
            size_t tn = tsdb__block_tomb_get(src[i], id, &a, &tr);
            if (tn) {
                int64_t *nt2 = tsdb_arena_alloc(&a, (nt + tn) * 2 * sizeof(int64_t));
                if (nt)
                    memcpy(nt2, tombs, nt * 2 * sizeof(int64_t));
                memcpy(nt2 + nt * 2, tr, tn * 2 * sizeof(int64_t));
                tombs = nt2;
                nt += tn;
            }
        }
        if (rc)
            break;
        /* Sources come in mint order, so chunks are sorted unless blocks overlap. */
        for (size_t i = 1; i < total; i++) {
            tsdb__bchunk x = r[i];
            size_t j = i;
            while (j > 0 && r[j - 1].mint > x.mint) {
                r[j] = r[j - 1];
                j--;
            }
            r[j] = x;
        }
        size_t m = total;
        if (needs_rechunk(r, m, tombs, nt)) {
            rc = rechunk(r, m, tombs, nt, &a, &r, &m, err);
            if (rc)
                break;
        }
        if (m == 0)
            continue;
        rc = tsdb__block_writer_add_raw(w, id, r, m, err);
        if (rc)
            break;
        n_written++;
    }
    free(pos);
    tsdb_arena_fini(&a);
    if (rc) {
        tsdb__block_writer_abort(w);
        return rc;
    }
    tsdb__block *nb = NULL;
    if (n_written > 0) {
        rc = tsdb__block_writer_commit(w, err);
        if (rc == TSDB_OK)
            rc = tsdb__block_open(path, &nb, err);
        if (rc)
            return rc;
    } else {
        tsdb__block_writer_abort(w);
    }
    tsdb__blocks_replace(db, src, ns, nb);
    return 1;
}

int tsdb__compact(tsdb *db, tsdb_err *err)
{
    pthread_mutex_lock(&db->maint_lock);
    int merged = 0, rc = TSDB_OK;
    for (uint32_t level = 0; level < 2 && rc >= 0; level++) {
        int64_t R = db->o.block_ms * (level == 0 ? 5 : 25);
        for (int again = 1; again && rc >= 0;) {
            again = 0;
            size_t n;
            tsdb__block **bl = tsdb__blocks_snapshot(db, &n);
            int64_t newest = INT64_MIN;
            for (size_t i = 0; i < n; i++)
                if (tsdb__block_meta_get(bl[i])->maxt > newest)
                    newest = tsdb__block_meta_get(bl[i])->maxt;
            tsdb__block **grp = xmalloc((n ? n : 1) * sizeof(*grp));
            for (size_t i = 0; i < n && !again; i++) {
                const tsdb__block_meta *m = tsdb__block_meta_get(bl[i]);
                if (m->level != level)
                    continue;
                int64_t w = floor_div(m->mint, R);
                if ((w + 1) * R > newest)
                    continue;
                size_t k = 0, tombs = 0;
                for (size_t j = 0; j < n; j++) {
                    const tsdb__block_meta *o = tsdb__block_meta_get(bl[j]);
                    if (o->level == level && floor_div(o->mint, R) == w && o->maxt <= (w + 1) * R) {
                        grp[k++] = bl[j];
                        tombs += tsdb__block_tomb_count(bl[j]);
                    }
                }
                if (k >= 2 || (k == 1 && tombs > 0)) {
                    rc = merge_blocks(db, grp, k, level + 1, err);
                    if (rc > 0) {
                        merged++;
                        again = 1;
                    }
                }
            }
            free(grp);
            for (size_t i = 0; i < n; i++)
                tsdb__block_unref(bl[i]);
            free(bl);
        }
    }
    /* Any other block with tombstones is rewritten at its level without the deleted data. */
    if (rc >= 0) {
        size_t n;
        tsdb__block **bl = tsdb__blocks_snapshot(db, &n);
        for (size_t i = 0; i < n && rc >= 0; i++) {
            if (tsdb__block_tomb_count(bl[i]) == 0)
                continue;
            rc = merge_blocks(db, &bl[i], 1, tsdb__block_meta_get(bl[i])->level, err);
            if (rc > 0)
                merged++;
        }
        for (size_t i = 0; i < n; i++)
            tsdb__block_unref(bl[i]);
        free(bl);
    }
    pthread_mutex_unlock(&db->maint_lock);
    return rc < 0 ? rc : merged;
}

/* ---- Retention
 * ----------------------------------------------------------------------------------------- */

int tsdb__retention(tsdb *db, tsdb_err *err)
{
    pthread_mutex_lock(&db->maint_lock);
    size_t n;
    tsdb__block **bl = tsdb__blocks_snapshot(db, &n);
    tsdb__block **drop = xmalloc((n ? n : 1) * sizeof(*drop));
    size_t nd = 0;
    tsdb__head_stats hs;
    tsdb__head_stats_get(db->head, &hs);
    int64_t newest = hs.maxt;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(bl[i]);
        if (m->maxt - 1 > newest)
            newest = m->maxt - 1;
        total += tsdb__block_bytes(bl[i]);
    }
    uint8_t *gone = xcalloc(n ? n : 1, 1);
    if (db->o.retention_ms > 0 && newest != INT64_MIN) {
        for (size_t i = 0; i < n; i++)
            if (tsdb__block_meta_get(bl[i])->maxt <= newest - db->o.retention_ms) {
                gone[i] = 1;
                total -= tsdb__block_bytes(bl[i]);
            }
    }
    if (db->o.retention_bytes > 0) {
        total += tsdb__os_dir_bytes(db->wal_dir, "");
        /* Blocks are sorted by mint: drop from the oldest. */
        for (size_t i = 0; i < n && total > db->o.retention_bytes; i++) {
            if (gone[i])
                continue;
            gone[i] = 1;
            total -= tsdb__block_bytes(bl[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (gone[i])
            drop[nd++] = bl[i];
    int rc = TSDB_OK;
    if (nd > 0) {
        for (size_t i = 0; i < nd; i++)
            TSDB_LOG_INFO("compact", "retention drops block %s", tsdb__block_path(drop[i]));
        tsdb__blocks_replace(db, drop, nd, NULL);
        /* Index GC: series of dropped blocks found nowhere else. */
        size_t cap = 0, nc = 0;
        uint64_t *cand = NULL;
        for (size_t i = 0; i < nd; i++) {
            size_t ns = (size_t)tsdb__block_meta_get(drop[i])->n_series;
            for (size_t j = 0; j < ns; j++) {
                uint64_t id;
                uint32_t f, c;
                tsdb__block_series_at(drop[i], j, &id, &f, &c);
                int elsewhere = 0;
                for (size_t k = 0; k < n && !elsewhere; k++)
                    if (!gone[k] && tsdb__block_has_series(bl[k], id))
                        elsewhere = 1;
                if (elsewhere)
                    continue;
                if (nc == cap) {
                    cap = cap ? cap * 2 : 1024;
                    cand = xrealloc(cand, cap * sizeof(*cand));
                }
                cand[nc++] = id;
            }
        }
        pthread_mutex_lock(&db->append_lock);
        size_t k = 0;
        for (size_t i = 0; i < nc; i++)
            if (!tsdb__head_get_id(db->head, cand[i]))
                cand[k++] = cand[i];
        if (k > 0)
            rc = tsdb__index_delete_series(db->ix, cand, k, err);
        pthread_mutex_unlock(&db->append_lock);
        free(cand);
    }
    for (size_t i = 0; i < n; i++)
        tsdb__block_unref(bl[i]);
    free(bl);
    free(drop);
    free(gone);
    pthread_mutex_unlock(&db->maint_lock);
    return rc < 0 ? rc : (int)nd;
}
