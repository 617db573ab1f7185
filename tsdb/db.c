/* tsdb/db.c -- the database handle: open and recovery, the append path, administration and the
 * maintenance thread.
 *
 * Data directory (DESIGN 2.5): LOCK, index/ (LMDB), wal/ (segments and checkpoints),
 * blocks/ (<mint>-<maxt>-L<level>-<seq>.blk and their .tomb files), chunks_head/ (closed head
 * chunks, a memory offload emptied at open; see tsdb/hchunks.h).
 *
 * Invariants:
 *  1. A block file becomes visible only after: write *.tmp -> fsync -> rename -> fsync the
 *     directory (tsdb__block_writer_commit). *.tmp files are deleted at open.
 *  2. WAL segments are deleted only after a checkpoint that supersedes them is durable
 *     (tsdb__wal_ckpt_commit), and a checkpoint is written only after the blocks holding the
 *     data it leaves out are durable and published.
 *  3. Block ranges are half-open [mint, maxt); replay ignores samples below the newest block's
 *     maxt (min_valid), and appends below min_valid are too old. A cut raises min_valid under
 *     the append lock before it reads the head, so no sample can slip under a block being
 *     written.
 *  4. The LMDB index may lag the WAL (or hold series whose samples never became durable);
 *     replaying SERIES records is idempotent.
 *  5. A merged block replaces its sources atomically in the block list; sources are unlinked
 *     when the last querier drops its reference.
 *  6. Every byte read from disk is validated; bad bytes produce TSDB_ECORRUPT (a damaged block
 *     is logged and left out, a damaged WAL tail truncated), never an assert or a crash.
 *
 * Append path (one writer, db->append_lock): validate and sort each label set, find its head
 * series by hash, resolve all misses in one index write transaction, check every sample against
 * the ingest rules (remembering each series' previous last sample so a failed WAL write can be
 * undone), write SERIES + SAMPLES records, flush (and fdatasync when wal_fsync_ms == 0), then
 * apply the accepted samples to the head. WAL order is apply order, so replay is deterministic.
 *
 * Lock order: append_lock -> maint_lock is never taken in that order; maintenance takes
 * maint_lock, then append_lock briefly, then blocks_lock briefly. Readers take only
 * blocks_lock (to copy references), the head map lock and stripe locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsdb/chunk.h"
#include "tsdb/db.h"
#include "tsdb/labels.h"
#include "tsdb/os.h"
#include "tsdb/record.h"

#define DAY_MS             (24LL * 3600 * 1000)
#define SAMPLES_PER_RECORD 8192
/* New series per SERIES record: bounds the record and compression buffers, which keep their
 * size after a batch of many new series. */
#define SERIES_PER_RECORD 4096
#define MAINT_INTERVAL_MS 1000

void tsdb_opts_default(tsdb_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->retention_ms = 15 * DAY_MS;
    o->block_ms = 2 * 3600 * 1000;
    o->wal_segment_bytes = (size_t)128 << 20;
    o->wal_fsync_ms = 1000;
    o->index_map_bytes = (size_t)16 << 30;
}

/* ---- Block list ---------------------------------------------------------------------------------
 */

static int cmp_block(const void *a, const void *b)
{
    const tsdb__block_meta *x = tsdb__block_meta_get(*(tsdb__block *const *)a);
    const tsdb__block_meta *y = tsdb__block_meta_get(*(tsdb__block *const *)b);
    if (x->mint != y->mint)
        return x->mint < y->mint ? -1 : 1;
    return x->maxt < y->maxt ? -1 : x->maxt > y->maxt;
}

static void raise_min_valid(tsdb *db, int64_t t)
{
    int64_t cur = atomic_load(&db->min_valid);
    while (t > cur && !atomic_compare_exchange_weak(&db->min_valid, &cur, t))
        ;
}

void tsdb__blocks_add(tsdb *db, tsdb__block *b)
{
    pthread_rwlock_wrlock(&db->blocks_lock);
    if (db->n_blocks == db->cap_blocks) {
        db->cap_blocks = db->cap_blocks ? db->cap_blocks * 2 : 16;
        db->blocks = xrealloc(db->blocks, db->cap_blocks * sizeof(*db->blocks));
    }
    db->blocks[db->n_blocks++] = b;
    qsort(db->blocks, db->n_blocks, sizeof(*db->blocks), cmp_block);
    pthread_rwlock_unlock(&db->blocks_lock);
    raise_min_valid(db, tsdb__block_meta_get(b)->maxt);
}

void tsdb__blocks_replace(tsdb *db, tsdb__block *const *old, size_t n_old, tsdb__block *nb)
{
    pthread_rwlock_wrlock(&db->blocks_lock);
    size_t k = 0;
    for (size_t i = 0; i < db->n_blocks; i++) {
        int gone = 0;
        for (size_t j = 0; j < n_old; j++)
            gone |= db->blocks[i] == old[j];
        if (gone) {
            tsdb__block_mark_deleted(db->blocks[i]);
            tsdb__block_unref(db->blocks[i]);
        } else {
            db->blocks[k++] = db->blocks[i];
        }
    }
    db->n_blocks = k;
    if (nb) {
        if (db->n_blocks == db->cap_blocks) {
            db->cap_blocks = db->cap_blocks ? db->cap_blocks * 2 : 16;
            db->blocks = xrealloc(db->blocks, db->cap_blocks * sizeof(*db->blocks));
        }
        db->blocks[db->n_blocks++] = nb;
        qsort(db->blocks, db->n_blocks, sizeof(*db->blocks), cmp_block);
    }
    pthread_rwlock_unlock(&db->blocks_lock);
}

tsdb__block **tsdb__blocks_snapshot(tsdb *db, size_t *n)
{
    pthread_rwlock_rdlock(&db->blocks_lock);
    tsdb__block **v = xmalloc((db->n_blocks ? db->n_blocks : 1) * sizeof(*v));
    for (size_t i = 0; i < db->n_blocks; i++) {
        v[i] = db->blocks[i];
        tsdb__block_ref(v[i]);
    }
    *n = db->n_blocks;
    pthread_rwlock_unlock(&db->blocks_lock);
    return v;
}

void tsdb__block_name(tsdb *db, int64_t mint, int64_t maxt, uint32_t level, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%lld-%lld-L%u-%u.blk", db->blocks_dir, (long long)mint, (long long)maxt,
             level, ++db->next_seq);
}

static int load_blocks(tsdb *db, tsdb_err *err)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n;
    int rc = tsdb__os_list_dir(db->blocks_dir, &a, &names, &n, err);
    if (rc) {
        tsdb_arena_fini(&a);
        return rc;
    }
    char path[TSDB__DIR_MAX + 300];
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l > 250)
            continue;
        snprintf(path, sizeof(path), "%s/%s", db->blocks_dir, names[i]);
        if (l > 4 && strcmp(names[i] + l - 4, ".tmp") == 0) {
            if (!db->o.read_only)
                tsdb__os_unlink(path, NULL);
            continue;
        }
        if (l <= 4 || strcmp(names[i] + l - 4, ".blk") != 0)
            continue;
        tsdb__block *b;
        tsdb_err e;
        rc = tsdb__block_open(path, &b, &e);
        if (rc) {
            TSDB_LOG_ERROR("db", "block %s left out: %s", path, e.msg);
            continue;
        }
        if (tsdb__block_seq(b) > db->next_seq)
            db->next_seq = tsdb__block_seq(b);
        tsdb__blocks_add(db, b);
    }
    tsdb_arena_fini(&a);
    /* A merge that crashed before deleting its sources leaves them inside the merged range. */
    pthread_rwlock_wrlock(&db->blocks_lock);
    for (size_t i = 0; i < db->n_blocks; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(db->blocks[i]);
        for (size_t j = 0; j < db->n_blocks; j++) {
            const tsdb__block_meta *o = tsdb__block_meta_get(db->blocks[j]);
            if (i != j && o->level > m->level && o->mint <= m->mint && o->maxt >= m->maxt) {
                TSDB_LOG_INFO("db", "block %s superseded by %s", tsdb__block_path(db->blocks[i]),
                              tsdb__block_path(db->blocks[j]));
                if (!db->o.read_only)
                    tsdb__block_mark_deleted(db->blocks[i]);
                tsdb__block_unref(db->blocks[i]);
                memmove(&db->blocks[i], &db->blocks[i + 1],
                        (db->n_blocks - i - 1) * sizeof(*db->blocks));
                db->n_blocks--;
                i--;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&db->blocks_lock);
    return TSDB_OK;
}

/* ---- WAL replay
 * ----------------------------------------------------------------------------------- */

typedef struct replay {
    tsdb *db;
    tsdb_index_rd *rd;
    tsdb_arena a;
    tsdb__rec_series *sv;
    size_t ns, cs;
    tsdb__rec_sample *smp;
    size_t nsmp, csmp;
    tsdb__rec_tomb *tv;
    size_t nt, ct;
    tsdb__rec_chunk *cv;
    size_t nc, cc;
    uint64_t n_samples, n_unknown, n_records, n_bad;
} replay;

static tsdb__hseries *replay_series(replay *r, uint64_t id, tsdb_labels l)
{
    tsdb *db = r->db;
    tsdb__hseries *s = tsdb__head_get_id(db->head, id);
    if (s)
        return s;
    if (tsdb_labels_validate(l, 0, NULL) != TSDB_OK)
        return NULL;
    if (!db->o.read_only) {
        tsdb_labels have;
        if (tsdb__index_rd_labels(r->rd, id, &r->a, &have) != TSDB_OK ||
            !tsdb_labels_equal(have, l)) {
            if (tsdb__index_put_series(db->ix, id, l, NULL) != TSDB_OK)
                return NULL;
        }
    }
    s = tsdb__head_create(db->head, id, tsdb_labels_hash(l), l);
    s->wal_logged = 1;
    return s;
}

static int replay_rec(void *ctx, const unsigned char *p, size_t len)
{
    replay *r = ctx;
    tsdb *db = r->db;
    r->n_records++;
    int type = tsdb__rec_type(p, len);
    if (type == TSDB__REC_SERIES) {
        tsdb_arena_reset(&r->a);
        r->ns = 0;
        if (tsdb__rec_series_decode(p, len, &r->a, &r->sv, &r->ns, &r->cs) != TSDB_OK) {
            r->n_bad++;
            return 0;
        }
        for (size_t i = 0; i < r->ns; i++)
            replay_series(r, r->sv[i].id, r->sv[i].labels);
    } else if (type == TSDB__REC_SAMPLES) {
        r->nsmp = 0;
        if (tsdb__rec_samples_decode(p, len, &r->smp, &r->nsmp, &r->csmp) != TSDB_OK) {
            r->n_bad++;
            return 0;
        }
        int64_t floor = atomic_load(&db->min_valid);
        tsdb__hseries *s = NULL;
        for (size_t i = 0; i < r->nsmp; i++) {
            const tsdb__rec_sample *x = &r->smp[i];
            if (i + 16 < r->nsmp)
                tsdb__head_prefetch_id(db->head, r->smp[i + 16].id);
            if (!s || s->id != x->id)
                s = tsdb__head_get_id(db->head, x->id);
            if (!s) {
                tsdb_labels l;
                tsdb_arena_reset(&r->a);
                if (tsdb__index_rd_labels(r->rd, x->id, &r->a, &l) == TSDB_OK)
                    s = replay_series(r, x->id, l);
                if (!s) {
                    r->n_unknown++;
                    continue;
                }
            }
            int rc = tsdb__head_check(db->head, s, x->t, x->v, floor);
            if (rc == 1) {
                tsdb__head_apply(db->head, s, x->t, x->v);
                r->n_samples++;
            } else if (rc == TSDB_EOOO && db->o.ooo_window_ms > 0 &&
                       tsdb__head_check_ooo(db->head, s, x->t, x->v, floor) == 2) {
                /* The window was checked when the sample was accepted. */
                tsdb__head_apply_ooo(db->head, s, x->t, x->v);
                r->n_samples++;
            }
        }
    } else if (type == TSDB__REC_CHUNKS) {
        r->nc = 0;
        if (tsdb__rec_chunks_decode(p, len, &r->cv, &r->nc, &r->cc) != TSDB_OK) {
            r->n_bad++;
            return 0;
        }
        int64_t floor = atomic_load(&db->min_valid);
        for (size_t i = 0; i < r->nc; i++) {
            const tsdb__rec_chunk *x = &r->cv[i];
            if (x->maxt < floor)
                continue;
            tsdb__hseries *s = tsdb__head_get_id(db->head, x->id);
            if (!s) {
                tsdb_labels l;
                tsdb_arena_reset(&r->a);
                if (tsdb__index_rd_labels(r->rd, x->id, &r->a, &l) == TSDB_OK)
                    s = replay_series(r, x->id, l);
            }
            int rc = s ? tsdb__head_add_chunk(db->head, s, x->mint, x->maxt, x->p, x->len) : 0;
            if (rc == 1)
                r->n_samples += tsdb_chunk_count(x->p, x->len);
            else if (rc < 0)
                r->n_bad++;
            else
                r->n_unknown++;
        }
    } else if (type == TSDB__REC_TOMBSTONES) {
        r->nt = 0;
        if (tsdb__rec_tombs_decode(p, len, &r->tv, &r->nt, &r->ct) != TSDB_OK) {
            r->n_bad++;
            return 0;
        }
        for (size_t i = 0; i < r->nt; i++)
            tsdb__head_tomb_add(db->head, r->tv[i].id, r->tv[i].mint, r->tv[i].maxt);
    } else {
        r->n_bad++;
    }
    return 0;
}

static int replay_wal(tsdb *db, uint32_t *next_seg, tsdb_err *err)
{
    replay r;
    memset(&r, 0, sizeof(r));
    r.db = db;
    tsdb_arena_init(&r.a, 0);
    int64_t t0 = tsdb_mono_ns();
    int rc = tsdb__index_rd_begin(db->ix, &r.rd, err);
    if (rc == TSDB_OK) {
        rc = tsdb__wal_replay(db->wal_dir, !db->o.read_only, replay_rec, &r, next_seg, err);
        tsdb__index_rd_end(r.rd);
    }
    TSDB_LOG_INFO("db",
                  "wal replay: %llu records, %llu samples, %llu for unknown series, %llu bad "
                  "records, %.1f ms",
                  (unsigned long long)r.n_records, (unsigned long long)r.n_samples,
                  (unsigned long long)r.n_unknown, (unsigned long long)r.n_bad,
                  (double)(tsdb_mono_ns() - t0) / 1e6);
    free(r.sv);
    free(r.smp);
    free(r.tv);
    free(r.cv);
    tsdb_arena_fini(&r.a);
    return rc;
}

/* ---- Maintenance thread -------------------------------------------------------------------------
 */

static int64_t mono_ms(void)
{
    return tsdb_mono_ns() / 1000000;
}

static void maintain_pass(tsdb *db)
{
    tsdb_err e;
    for (int i = 0; i < 4; i++) {
        int rc = tsdb__cut(db, 0, &e);
        if (rc < 0)
            TSDB_LOG_ERROR("db", "head cut failed: %s", e.msg);
        if (rc <= 0)
            break;
        /* The cut and its checkpoint read every closed head chunk through the chunk files'
         * maps: give those pages back (they stay in the page cache). */
        tsdb__head_drop_pages(db->head);
    }
    if (tsdb__compact(db, &e) < 0)
        TSDB_LOG_ERROR("db", "compaction failed: %s", e.msg);
    if (tsdb__retention(db, &e) < 0)
        TSDB_LOG_ERROR("db", "retention failed: %s", e.msg);
}

static void *maint_main(void *arg)
{
    tsdb *db = arg;
    int64_t last_sync = mono_ms(), last_pass = mono_ms();
    int64_t step = MAINT_INTERVAL_MS;
    if (db->o.wal_fsync_ms > 0 && db->o.wal_fsync_ms < step)
        step = db->o.wal_fsync_ms;
    pthread_mutex_lock(&db->thr_mu);
    while (!db->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + step * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&db->thr_cv, &db->thr_mu, &ts);
        if (db->stopping)
            break;
        pthread_mutex_unlock(&db->thr_mu);
        int64_t now = mono_ms();
        if (db->o.wal_fsync_ms > 0 && now - last_sync >= db->o.wal_fsync_ms) {
            tsdb_err e;
            if (tsdb__wal_sync_fd(db->wal, &e) != TSDB_OK)
                TSDB_LOG_ERROR("db", "wal fsync failed: %s", e.msg);
            last_sync = now;
        }
        if (now - last_pass >= MAINT_INTERVAL_MS) {
            maintain_pass(db);
            last_pass = mono_ms();
        }
        pthread_mutex_lock(&db->thr_mu);
    }
    pthread_mutex_unlock(&db->thr_mu);
    return NULL;
}

/* ---- Open and close -----------------------------------------------------------------------------
 */

/* Gives the head its chunk files (chunks_head/, emptied: the WAL replay refills it). Without
 * them the head keeps closed chunks in the heap, which only costs memory. */
static void open_head_files(tsdb *db)
{
    char path[TSDB__DIR_MAX + 16];
    snprintf(path, sizeof(path), "%s/chunks_head", db->dir);
    tsdb__hchunks *f = NULL;
    tsdb_err e;
    if (tsdb__hchunks_open(path, 0, 0, &f, &e) == TSDB_OK)
        tsdb__head_set_files(db->head, f);
    else
        TSDB_LOG_WARN("db", "head chunk files unavailable, closed chunks stay in memory: %s",
                      e.msg);
}

int tsdb_open(const tsdb_opts *o, tsdb **out, tsdb_err *err)
{
    if (!o || !o->dir || !o->dir[0] || !out)
        return tsdb_errf(err, TSDB_EINVAL, -1, "tsdb_open: no data directory");
    if (strlen(o->dir) >= TSDB__DIR_MAX - 16)
        return tsdb_errf(err, TSDB_EINVAL, -1, "tsdb_open: data directory path too long");
    tsdb *db = xcalloc(1, sizeof(*db));
    db->o = *o;
    tsdb_opts def;
    tsdb_opts_default(&def);
    if (db->o.retention_ms == 0)
        db->o.retention_ms = def.retention_ms;
    if (db->o.block_ms <= 0)
        db->o.block_ms = def.block_ms;
    if (db->o.wal_segment_bytes == 0)
        db->o.wal_segment_bytes = def.wal_segment_bytes;
    if (db->o.index_map_bytes == 0)
        db->o.index_map_bytes = def.index_map_bytes;
    if (db->o.wal_fsync_ms < 0)
        db->o.wal_fsync_ms = 0;
    snprintf(db->dir, sizeof(db->dir), "%s", o->dir);
    db->o.dir = db->dir;
    snprintf(db->wal_dir, sizeof(db->wal_dir), "%s/wal", db->dir);
    snprintf(db->blocks_dir, sizeof(db->blocks_dir), "%s/blocks", db->dir);
    snprintf(db->index_dir, sizeof(db->index_dir), "%s/index", db->dir);
    db->lock_fd = -1;
    pthread_mutex_init(&db->append_lock, NULL);
    pthread_mutex_init(&db->maint_lock, NULL);
    pthread_rwlock_init(&db->blocks_lock, NULL);
    pthread_mutex_init(&db->thr_mu, NULL);
    pthread_cond_init(&db->thr_cv, NULL);
    tsdb_arena_init(&db->scratch, 0);
    tsdb_buf_init(&db->sc.rec);
    atomic_store(&db->min_valid, INT64_MIN);
    db->head = tsdb__head_new(db->o.block_ms);

    int rc = TSDB_OK;
    if (!db->o.read_only) {
        rc = tsdb__os_mkdir_p(db->dir, err);
        if (rc == TSDB_OK)
            rc = tsdb__os_lock_dir(db->dir, &db->lock_fd, err);
        if (rc == TSDB_OK)
            rc = tsdb__os_mkdir_p(db->wal_dir, err);
        if (rc == TSDB_OK)
            rc = tsdb__os_mkdir_p(db->blocks_dir, err);
        if (rc == TSDB_OK)
            rc = tsdb__os_mkdir_p(db->index_dir, err);
        if (rc == TSDB_OK)
            open_head_files(db);
    }
    if (rc == TSDB_OK)
        rc = tsdb__index_open(db->index_dir, db->o.index_map_bytes, db->o.read_only, &db->ix, err);
    if (rc == TSDB_OK && tsdb__os_exists(db->blocks_dir))
        rc = load_blocks(db, err);
    uint32_t next_seg = 1;
    if (rc == TSDB_OK && tsdb__os_exists(db->wal_dir))
        rc = replay_wal(db, &next_seg, err);
    atomic_store(&db->wal_replayed, 1);
    if (rc == TSDB_OK && !db->o.read_only)
        rc = tsdb__wal_open(db->wal_dir, next_seg, db->o.wal_segment_bytes, &db->wal, err);
    if (rc == TSDB_OK && !db->o.read_only && !db->o.no_maintenance) {
        if (pthread_create(&db->thr, NULL, maint_main, db) != 0)
            rc = tsdb_errf(err, TSDB_EIO, -1, "cannot start the maintenance thread");
        else
            db->thr_started = 1;
    }
    if (rc) {
        tsdb_close(db);
        return rc;
    }
    *out = db;
    return TSDB_OK;
}

void tsdb_close(tsdb *db)
{
    if (!db)
        return;
    if (db->thr_started) {
        pthread_mutex_lock(&db->thr_mu);
        db->stopping = 1;
        pthread_cond_signal(&db->thr_cv);
        pthread_mutex_unlock(&db->thr_mu);
        pthread_join(db->thr, NULL);
    }
    tsdb__wal_close(db->wal);
    for (size_t i = 0; i < db->n_blocks; i++)
        tsdb__block_unref(db->blocks[i]);
    free(db->blocks);
    tsdb__head_free(db->head);
    tsdb__index_close(db->ix);
    tsdb__os_unlock_dir(db->lock_fd);
    tsdb_arena_fini(&db->scratch);
    free(db->sc.lbls);
    free(db->sc.hashes);
    free(db->sc.ser);
    free(db->sc.miss);
    free(db->sc.undo);
    free(db->sc.news);
    free(db->sc.acc);
    free(db->sc.acc_s);
    free(db->sc.acc_ooo);
    tsdb_buf_fini(&db->sc.rec);
    pthread_mutex_destroy(&db->append_lock);
    pthread_mutex_destroy(&db->maint_lock);
    pthread_rwlock_destroy(&db->blocks_lock);
    pthread_mutex_destroy(&db->thr_mu);
    pthread_cond_destroy(&db->thr_cv);
    free(db);
}

/* ---- Append
 * ---------------------------------------------------------------------------------------- */

/* The sample rejected first, for err. */
static void note_reject(tsdb_err *err, int *noted, int code, tsdb_labels l, int64_t t,
                        tsdb_arena *a)
{
    if (*noted)
        return;
    *noted = 1;
    tsdb_errf(err, code, -1, "%s for series %s at t=%lld", tsdb_strerror(code),
              tsdb_labels_format(l, a), (long long)t);
}

int tsdb_append(tsdb *db, const tsdb_batch *b, tsdb_append_stats *st, tsdb_err *err)
{
    tsdb_append_stats local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    if (!db || !b)
        return tsdb_errf(err, TSDB_EINVAL, -1, "tsdb_append: no database or batch");
    if (db->o.read_only)
        return tsdb_errf(err, TSDB_EINVAL, -1, "tsdb_append: database is read-only");
    if (b->n_series == 0)
        return TSDB_OK;

    pthread_mutex_lock(&db->append_lock);
    tsdb_arena *a = &db->scratch;
    tsdb_arena_reset(a);
    size_t ns = b->n_series;
    tsdb__app_scratch *sc = &db->sc;
    if (ns > sc->cap_series) {
        /* Exact at first (batches tend to keep their size), then 1/8 headroom. */
        size_t c = sc->cap_series ? ns + ns / 8 : ns;
        sc->lbls = xrealloc(sc->lbls, c * sizeof(*sc->lbls));
        sc->hashes = xrealloc(sc->hashes, c * sizeof(*sc->hashes));
        sc->ser = xrealloc(sc->ser, c * sizeof(*sc->ser));
        sc->miss = xrealloc(sc->miss, c * sizeof(*sc->miss));
        sc->undo = xrealloc(sc->undo, c * sizeof(*sc->undo));
        sc->cap_series = c;
    }
    tsdb_labels *lbls = sc->lbls;
    uint64_t *hashes = sc->hashes;
    tsdb__hseries **ser = sc->ser;
    size_t *miss = sc->miss;
    size_t n_miss = 0;
    int noted = 0, rc = TSDB_OK;

    /* 1. Labels: sort (copying only when needed), hash, look up; validate only new label sets,
     * since a set equal to a head series' labels was validated when that series was created.
     * Hashing runs a group ahead of the lookups, whose map slots are prefetched meanwhile. */
    for (size_t g = 0; g < ns; g += 32) {
        size_t ge = g + 32 < ns ? g + 32 : ns;
        for (size_t i = g; i < ge; i++) {
            const tsdb_batch_series *bs = &b->series[i];
            int plain = 1;
            for (size_t j = 0; j < bs->labels.n && plain; j++)
                if (bs->labels.v[j].value.len == 0 ||
                    (j > 0 && tsdb_str_cmp(bs->labels.v[j - 1].name, bs->labels.v[j].name) >= 0))
                    plain = 0;
            if (plain) {
                lbls[i] = bs->labels;
            } else {
                tsdb_label *v = tsdb_arena_alloc(a, (bs->labels.n ? bs->labels.n : 1) * sizeof(*v));
                size_t k = 0;
                for (size_t j = 0; j < bs->labels.n; j++)
                    if (bs->labels.v[j].value.len > 0)
                        v[k++] = bs->labels.v[j];
                tsdb_labels_sort(v, k);
                lbls[i] = (tsdb_labels){v, k};
            }
            hashes[i] = tsdb_labels_hash(lbls[i]);
            tsdb__head_prefetch(db->head, hashes[i]);
        }
        for (size_t i = g; i < ge; i++) {
            const tsdb_batch_series *bs = &b->series[i];
            ser[i] = tsdb__head_get(db->head, hashes[i], lbls[i]);
            if (ser[i] || bs->n_samples == 0)
                continue;
            tsdb_err verr;
            if (tsdb_labels_validate(lbls[i], 1, &verr) != TSDB_OK) {
                st->invalid += bs->n_samples;
                if (!noted) {
                    noted = 1;
                    tsdb_errf(err, TSDB_EINVAL, -1, "invalid series: %s", verr.msg);
                }
                continue;
            }
            miss[n_miss++] = i;
        }
    }

    /* 2. New series: one index transaction for all of them. */
    if (n_miss > 0) {
        tsdb_labels *sets = tsdb_arena_alloc(a, n_miss * sizeof(*sets));
        uint64_t *ids = tsdb_arena_alloc(a, n_miss * sizeof(*ids));
        uint8_t *created = tsdb_arena_calloc(a, n_miss, 1);
        for (size_t j = 0; j < n_miss; j++)
            sets[j] = lbls[miss[j]];
        rc = tsdb__index_resolve(db->ix, sets, n_miss, ids, created, err);
        if (rc)
            goto out;
        for (size_t j = 0; j < n_miss; j++) {
            size_t i = miss[j];
            ser[i] = tsdb__head_get(db->head, hashes[i], lbls[i]);
            if (!ser[i])
                ser[i] = tsdb__head_create(db->head, ids[j], hashes[i], lbls[i]);
            if (created[j])
                st->new_series++;
        }
    }

    /* 3. Ingest rules. */
    tsdb__head_stats hs;
    tsdb__head_stats_get(db->head, &hs);
    int64_t min_valid = atomic_load(&db->min_valid);
    int64_t floor = min_valid, ooo_min = INT64_MAX;
    if (hs.maxt != INT64_MIN && hs.maxt - db->o.block_ms / 2 > min_valid)
        min_valid = hs.maxt - db->o.block_ms / 2;
    if (db->o.ooo_window_ms > 0)
        ooo_min = hs.maxt != INT64_MIN && hs.maxt - db->o.ooo_window_ms > floor
                      ? hs.maxt - db->o.ooo_window_ms
                      : floor;
    size_t total = 0;
    for (size_t i = 0; i < ns; i++)
        if (ser[i])
            total += b->series[i].n_samples;
    if (total > sc->cap_samples) {
        size_t c = sc->cap_samples ? total + total / 8 : total;
        sc->acc = xrealloc(sc->acc, c * sizeof(*sc->acc));
        sc->acc_s = xrealloc(sc->acc_s, c * sizeof(*sc->acc_s));
        sc->acc_ooo = xrealloc(sc->acc_ooo, c);
        sc->cap_samples = c;
    }
    tsdb__rec_sample *acc = sc->acc;
    tsdb__hseries **acc_s = sc->acc_s;
    tsdb__undo *un = sc->undo;
    size_t n_acc = 0, n_un = 0, n_news = 0;
    for (size_t i = 0; i < ns; i++) {
        tsdb__hseries *s = ser[i];
        if (!s)
            continue;
        un[n_un++] = (tsdb__undo){s, s->last_t, s->last_bits};
        const tsdb_batch_series *bs = &b->series[i];
        size_t before = n_acc;
        for (size_t j = 0; j < bs->n_samples; j++) {
            int64_t t = bs->samples[j].t;
            double v = bs->samples[j].v;
            int r = tsdb__head_check(db->head, s, t, v, min_valid);
            if ((r == TSDB_EOOO || r == TSDB_ETOO_OLD) && ooo_min != INT64_MAX) {
                int r2 = tsdb__head_check_ooo(db->head, s, t, v, ooo_min);
                if (r2 != TSDB_EOOO || r == TSDB_EOOO)
                    r = r2;
            }
            if (r == 1 || r == 2) {
                acc[n_acc] = (tsdb__rec_sample){s->id, t, v};
                sc->acc_ooo[n_acc] = r == 2;
                acc_s[n_acc++] = s;
                st->accepted++;
            } else if (r == 0) {
                st->accepted++;
            } else {
                if (r == TSDB_EOOO)
                    st->out_of_order++;
                else if (r == TSDB_EDUP)
                    st->duplicate++;
                else
                    st->too_old++;
                note_reject(err, &noted, r, lbls[i], t, a);
            }
        }
        if (n_acc > before && !s->wal_logged) {
            s->wal_logged = 2; /* pending: confirmed after the WAL write */
            n_news++;
        }
    }

    /* 4. WAL: SERIES, then SAMPLES in records of bounded size. */
    if (n_acc > 0) {
        tsdb_buf *rec = &sc->rec;
        tsdb__wal_mark(db->wal);
        /* SERIES records of at most SERIES_PER_RECORD, gathered from the batch (wal_logged 2 ->
         * 3 once in a record, so a series listed twice in the batch is written once). */
        if (n_news > 0 && !sc->news)
            sc->news = xmalloc(SERIES_PER_RECORD * sizeof(*sc->news));
        size_t k_news = 0;
        for (size_t i = 0; rc == TSDB_OK && n_news > 0 && i <= ns; i++) {
            if (i < ns && ser[i] && ser[i]->wal_logged == 2) {
                ser[i]->wal_logged = 3;
                sc->news[k_news++] = (tsdb__rec_series){ser[i]->id, lbls[i]};
            }
            if (k_news == SERIES_PER_RECORD || (i == ns && k_news > 0)) {
                rec->len = 0;
                tsdb__rec_series_encode(rec, sc->news, k_news);
                rc = tsdb__wal_log(db->wal, rec->p, rec->len, err);
                k_news = 0;
            }
        }
        for (size_t off = 0; rc == TSDB_OK && off < n_acc; off += SAMPLES_PER_RECORD) {
            size_t n = n_acc - off < SAMPLES_PER_RECORD ? n_acc - off : SAMPLES_PER_RECORD;
            rec->len = 0;
            tsdb__rec_samples_encode(rec, acc + off, n);
            rc = tsdb__wal_log(db->wal, rec->p, rec->len, err);
        }
        if (rc == TSDB_OK)
            rc = tsdb__wal_flush(db->wal, db->o.wal_fsync_ms == 0, err);
        if (rc) {
            tsdb__wal_rollback(db->wal);
            for (size_t k = n_un; k-- > 0;) {
                un[k].s->last_t = un[k].last_t;
                un[k].s->last_bits = un[k].last_bits;
            }
            for (size_t i = 0; n_news > 0 && i < ns; i++)
                if (ser[i] && ser[i]->wal_logged >= 2)
                    ser[i]->wal_logged = 0;
            memset(st, 0, sizeof(*st));
            goto out;
        }
        for (size_t i = 0; n_news > 0 && i < ns; i++)
            if (ser[i] && ser[i]->wal_logged == 3)
                ser[i]->wal_logged = 1;
        /* 5. Apply. */
        for (size_t k = 0; k < n_acc; k++)
            if (sc->acc_ooo[k])
                tsdb__head_apply_ooo(db->head, acc_s[k], acc[k].t, acc[k].v);
            else
                tsdb__head_apply(db->head, acc_s[k], acc[k].t, acc[k].v);
    }
    atomic_fetch_add(&db->appended_total, st->accepted);
    atomic_fetch_add(&db->rejected_ooo, st->out_of_order);
    atomic_fetch_add(&db->rejected_dup, st->duplicate);
    atomic_fetch_add(&db->rejected_too_old, st->too_old);
out:
    pthread_mutex_unlock(&db->append_lock);
    return rc;
}

/* ---- Administration
 * ---------------------------------------------------------------------------------- */

void tsdb_stats_get(tsdb *db, tsdb_stats *st)
{
    memset(st, 0, sizeof(*st));
    tsdb__head_stats hs;
    tsdb__head_stats_get(db->head, &hs);
    st->n_series = hs.n_series;
    st->n_samples_head = hs.n_samples;
    st->n_chunks_head = hs.n_chunks;
    st->head_mint = hs.mint;
    st->head_maxt = hs.maxt;
    st->mint = hs.mint;
    st->maxt = hs.maxt;
    pthread_rwlock_rdlock(&db->blocks_lock);
    st->n_blocks = db->n_blocks;
    for (size_t i = 0; i < db->n_blocks; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(db->blocks[i]);
        st->bytes_blocks += tsdb__block_bytes(db->blocks[i]);
        if (m->mint < st->mint)
            st->mint = m->mint;
        if (m->maxt - 1 > st->maxt)
            st->maxt = m->maxt - 1;
    }
    pthread_rwlock_unlock(&db->blocks_lock);
    st->bytes_wal = tsdb__os_dir_bytes(db->wal_dir, "");
    st->bytes_index = tsdb__index_disk_bytes(db->ix);
    st->appended_total = atomic_load(&db->appended_total);
    st->rejected_ooo = atomic_load(&db->rejected_ooo);
    st->rejected_dup = atomic_load(&db->rejected_dup);
    st->rejected_too_old = atomic_load(&db->rejected_too_old);
    st->wal_replayed = atomic_load(&db->wal_replayed);
}

int tsdb_delete(tsdb *db, const tsdb_matcher *const *ms, size_t n, int64_t mint, int64_t maxt,
                tsdb_err *err)
{
    if (db->o.read_only)
        return tsdb_errf(err, TSDB_EINVAL, -1, "database is read-only");
    if (mint > maxt)
        return TSDB_OK;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_index_rd *rd = NULL;
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    pthread_mutex_lock(&db->maint_lock);
    int rc = tsdb__index_rd_begin(db->ix, &rd, err);
    if (rc == TSDB_OK)
        rc = tsdb__index_rd_select(rd, ms, n, &a, &ids, &n_ids, err);
    tsdb__index_rd_end(rd);
    if (rc || n_ids == 0)
        goto out;
    /* Blocks: tombstone files. */
    pthread_rwlock_rdlock(&db->blocks_lock);
    size_t nb = db->n_blocks;
    tsdb__block **bl = xmalloc((nb ? nb : 1) * sizeof(*bl));
    for (size_t i = 0; i < nb; i++) {
        bl[i] = db->blocks[i];
        tsdb__block_ref(bl[i]);
    }
    pthread_rwlock_unlock(&db->blocks_lock);
    for (size_t i = 0; i < nb; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(bl[i]);
        if (rc == TSDB_OK && m->maxt > mint && m->mint <= maxt)
            rc = tsdb__block_tomb_add(bl[i], ids, n_ids, mint, maxt, err);
        tsdb__block_unref(bl[i]);
    }
    free(bl);
    if (rc)
        goto out;
    /* Head: a TOMBSTONES record, then the in-memory list. */
    pthread_mutex_lock(&db->append_lock);
    tsdb_buf rec;
    tsdb_buf_init(&rec);
    tsdb__rec_tomb *tv = xmalloc(n_ids * sizeof(*tv));
    for (size_t i = 0; i < n_ids; i++)
        tv[i] = (tsdb__rec_tomb){ids[i], mint, maxt};
    tsdb__rec_tombs_encode(&rec, tv, n_ids);
    tsdb__wal_mark(db->wal);
    rc = tsdb__wal_log(db->wal, rec.p, rec.len, err);
    if (rc == TSDB_OK)
        rc = tsdb__wal_flush(db->wal, 1, err);
    if (rc)
        tsdb__wal_rollback(db->wal);
    else
        for (size_t i = 0; i < n_ids; i++)
            tsdb__head_tomb_add(db->head, ids[i], mint, maxt);
    pthread_mutex_unlock(&db->append_lock);
    free(tv);
    tsdb_buf_fini(&rec);
out:
    pthread_mutex_unlock(&db->maint_lock);
    tsdb_arena_fini(&a);
    return rc;
}

int tsdb_cut_head(tsdb *db, tsdb_err *err)
{
    if (db->o.read_only)
        return tsdb_errf(err, TSDB_EINVAL, -1, "database is read-only");
    return tsdb__cut(db, 1, err);
}

int tsdb_maintain(tsdb *db, tsdb_err *err)
{
    if (db->o.read_only)
        return tsdb_errf(err, TSDB_EINVAL, -1, "database is read-only");
    /* Without a maintenance thread, this is also where the fsync interval policy happens. */
    int rc = db->o.wal_fsync_ms > 0 ? tsdb__wal_sync_fd(db->wal, err) : TSDB_OK;
    if (rc)
        return rc;
    for (int i = 0; i < 100000 && (rc = tsdb__cut(db, 0, err)) > 0; i++)
        ;
    if (rc < 0)
        return rc;
    rc = tsdb__compact(db, err);
    if (rc < 0)
        return rc;
    rc = tsdb__retention(db, err);
    return rc < 0 ? rc : TSDB_OK;
}

/* ---- Cardinality
 * ------------------------------------------------------------------------------------- */

typedef struct card_ctx {
    tsdb_arena *a;
    tsdb_str *pairs; /* "name\0value" */
    size_t n, cap;
    uint64_t n_series;
} card_ctx;

static int card_each(void *ctx, uint64_t id, tsdb_labels l)
{
    (void)id;
    card_ctx *c = ctx;
    c->n_series++;
    for (size_t i = 0; i < l.n; i++) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1024;
            c->pairs = xrealloc(c->pairs, c->cap * sizeof(*c->pairs));
        }
        size_t len = l.v[i].name.len + 1 + l.v[i].value.len;
        char *p = tsdb_arena_alloc(c->a, len + 1);
        memcpy(p, l.v[i].name.p, l.v[i].name.len);
        p[l.v[i].name.len] = 0;
        memcpy(p + l.v[i].name.len + 1, l.v[i].value.p, l.v[i].value.len);
        p[len] = 0;
        c->pairs[c->n++] = (tsdb_str){p, len};
    }
    return 0;
}

static int cmp_pair(const void *a, const void *b)
{
    return tsdb_str_cmp(*(const tsdb_str *)a, *(const tsdb_str *)b);
}

static int cmp_entry(const void *a, const void *b)
{
    const tsdb_card_entry *x = a, *y = b;
    if (x->value != y->value)
        return x->value > y->value ? -1 : 1;
    return tsdb_str_cmp(x->name, y->name);
}

static void top_n(tsdb_card_entry *v, size_t *n, size_t top)
{
    qsort(v, *n, sizeof(*v), cmp_entry);
    if (*n > top)
        *n = top;
}

int tsdb_cardinality_get(tsdb *db, size_t top_n_max, tsdb_arena *a, tsdb_cardinality *out,
                         tsdb_err *err)
{
    tsdb_arena scratch;
    tsdb_arena_init(&scratch, 0);
    card_ctx c = {&scratch, NULL, 0, 0, 0};
    tsdb_index_rd *rd = NULL;
    int rc = tsdb__index_rd_begin(db->ix, &rd, err);
    if (rc == TSDB_OK)
        rc = tsdb__index_rd_each(rd, &scratch, card_each, &c);
    tsdb__index_rd_end(rd);
    if (rc) {
        free(c.pairs);
        tsdb_arena_fini(&scratch);
        return tsdb_errf(err, rc, -1, "cardinality: %s", tsdb_strerror(rc));
    }
    if (c.n > 0)
        qsort(c.pairs, c.n, sizeof(*c.pairs), cmp_pair);
    tsdb_card_entry *bm = tsdb_arena_alloc(a, (c.n ? c.n : 1) * sizeof(*bm));
    tsdb_card_entry *bn = tsdb_arena_alloc(a, (c.n ? c.n : 1) * sizeof(*bn));
    tsdb_card_entry *bp = tsdb_arena_alloc(a, (c.n ? c.n : 1) * sizeof(*bp));
    size_t nm = 0, nn = 0, np = 0;
    for (size_t i = 0; i < c.n;) {
        size_t j = i;
        while (j < c.n && tsdb_str_eq(c.pairs[j], c.pairs[i]))
            j++;
        tsdb_str name = {c.pairs[i].p, strlen(c.pairs[i].p)};
        tsdb_str value = {c.pairs[i].p + name.len + 1, c.pairs[i].len - name.len - 1};
        if (tsdb_str_eq(name, TSDB_STR("__name__")))
            bm[nm++] = (tsdb_card_entry){tsdb_arena_str(a, value), j - i};
        char *pv =
            tsdb_arena_sprintf(a, "%.*s=%.*s", (int)name.len, name.p, (int)value.len, value.p);
        bp[np++] = (tsdb_card_entry){tsdb_str_c(pv), j - i};
        if (nn > 0 && tsdb_str_eq(bn[nn - 1].name, name))
            bn[nn - 1].value++;
        else
            bn[nn++] = (tsdb_card_entry){tsdb_arena_str(a, name), 1};
        i = j;
    }
    top_n(bm, &nm, top_n_max);
    top_n(bn, &nn, top_n_max);
    top_n(bp, &np, top_n_max);
    out->n_series = c.n_series;
    out->by_metric = bm;
    out->n_by_metric = nm;
    out->by_label_name = bn;
    out->n_by_label_name = nn;
    out->by_pair = bp;
    out->n_by_pair = np;
    free(c.pairs);
    tsdb_arena_fini(&scratch);
    return TSDB_OK;
}

/* ---- Snapshot
 * ------------------------------------------------------------------------------------------ */

static int copy_file(const char *from, const char *to, tsdb_err *err)
{
    uint64_t size = 0;
    int rc = tsdb__os_path_size(from, &size);
    if (rc)
        return rc == TSDB_ENOTFOUND ? TSDB_OK : rc;
    tsdb_buf b;
    tsdb_buf_init(&b);
    rc = tsdb__os_read_file(from, (size_t)size + 1, &b, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_write_file_atomic(to, b.p, b.len, err);
    tsdb_buf_fini(&b);
    return rc;
}

int tsdb_snapshot(tsdb *db, const char *dir, tsdb_err *err)
{
    if (!dir || strlen(dir) >= TSDB__DIR_MAX - 300)
        return tsdb_errf(err, TSDB_EINVAL, -1, "snapshot: bad directory");
    char bdir[TSDB__DIR_MAX], idir[TSDB__DIR_MAX], path[TSDB__DIR_MAX + 300];
    snprintf(bdir, sizeof(bdir), "%s/blocks", dir);
    snprintf(idir, sizeof(idir), "%s/index", dir);
    int rc = tsdb__os_mkdir_p(bdir, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_mkdir_p(idir, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&db->maint_lock);
    size_t nb;
    tsdb__block **bl = tsdb__blocks_snapshot(db, &nb);
    for (size_t i = 0; i < nb; i++) {
        const char *src = tsdb__block_path(bl[i]);
        const char *base = strrchr(src, '/');
        base = base ? base + 1 : src;
        snprintf(path, sizeof(path), "%s/%s", bdir, base);
        if (rc == TSDB_OK)
            rc = copy_file(src, path, err);
        char st[TSDB__DIR_MAX + 300], dt[TSDB__DIR_MAX + 320];
        snprintf(st, sizeof(st), "%s.tomb", src);
        snprintf(dt, sizeof(dt), "%s.tomb", path);
        if (rc == TSDB_OK)
            rc = copy_file(st, dt, err);
        tsdb__block_unref(bl[i]);
    }
    free(bl);
    /* The head as one block, written from a consistent copy of its chunks. */
    if (rc == TSDB_OK) {
        tsdb__head_stats hs;
        tsdb__head_stats_get(db->head, &hs);
        if (hs.n_samples > 0) {
            snprintf(path, sizeof(path), "%s/%lld-%lld-L0-%u.blk", bdir, (long long)hs.mint,
                     (long long)hs.maxt + 1, db->next_seq + 1000000u);
            tsdb__block_writer *w = NULL;
            rc = tsdb__block_writer_begin(path, hs.mint, hs.maxt + 1, 0, &w, err);
            if (rc == TSDB_OK)
                tsdb__block_writer_compress(w, 1); /* packed like every persisted block */
            size_t n = 0;
            tsdb__hseries **v = rc == TSDB_OK ? tsdb__head_list(db->head, &n) : NULL;
            tsdb_arena a;
            tsdb_arena_init(&a, 0);
            for (size_t i = 0; rc == TSDB_OK && i < n; i++) {
                tsdb__chunk_ref *r;
                tsdb_arena_reset(&a);
                size_t k = tsdb__head_copy_series(db->head, v[i], INT64_MIN, INT64_MAX, &a, &r);
                if (k)
                    rc = tsdb__block_writer_add(w, v[i]->id, r, k, err);
            }
            tsdb_arena_fini(&a);
            free(v);
            if (rc == TSDB_OK)
                rc = tsdb__block_writer_commit(w, err);
            else
                tsdb__block_writer_abort(w);
        }
    }
    /* The index: no write transaction runs while the append lock is held. */
    if (rc == TSDB_OK) {
        pthread_mutex_lock(&db->append_lock);
        rc = tsdb__index_copy(db->ix, idir, err);
        pthread_mutex_unlock(&db->append_lock);
    }
    pthread_mutex_unlock(&db->maint_lock);
    return rc;
}
