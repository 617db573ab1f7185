/* tsdb/db.h -- the database handle's internals, shared by db.c, querier.c and compact.c. */
#ifndef TSDB_DB_H
#define TSDB_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/block.h"
#include "tsdb/head.h"
#include "tsdb/index.h"
#include "tsdb/record.h"
#include "tsdb/tsdb.h"
#include "tsdb/wal.h"

#define TSDB__DIR_MAX 3800

typedef struct tsdb__undo {
    tsdb__hseries *s;
    int64_t last_t;
    uint64_t last_bits;
} tsdb__undo;

/* Grow-only arrays the append path reuses from batch to batch (append_lock). */
typedef struct tsdb__app_scratch {
    size_t cap_series, cap_samples;
    tsdb_labels *lbls;
    uint64_t *hashes;
    tsdb__hseries **ser;
    size_t *miss;
    tsdb__undo *undo;
    tsdb__rec_series *news; /* SERIES_PER_RECORD entries, allocated on first use */
    tsdb__rec_sample *acc;
    tsdb__hseries **acc_s;
    uint8_t *acc_ooo; /* 1: the accepted sample goes to the out-of-order buffer */
    tsdb_buf rec;
} tsdb__app_scratch;

struct tsdb {
    /* Immutable after open. */
    tsdb_opts o;
    char dir[TSDB__DIR_MAX], wal_dir[TSDB__DIR_MAX + 8], blocks_dir[TSDB__DIR_MAX + 8],
        index_dir[TSDB__DIR_MAX + 8];
    int lock_fd;
    tsdb_index *ix;
    tsdb__head *head;

    /* The writer: guards wal, the append scratch and series creation. */
    pthread_mutex_t append_lock;
    tsdb__wal *wal;
    tsdb_arena scratch; /* label copies and index arguments of one batch */
    tsdb__app_scratch sc;
    _Atomic int64_t min_valid; /* samples below are too old: newest block maxt or a cut floor */

    /* Block list, sorted by mint; held only to copy references. */
    pthread_rwlock_t blocks_lock;
    tsdb__block **blocks;
    size_t n_blocks, cap_blocks;
    uint32_t next_seq; /* guarded by maint_lock */

    /* One maintenance pass (cut, compaction, retention, delete) at a time. */
    pthread_mutex_t maint_lock;

    /* Maintenance thread. */
    pthread_t thr;
    int thr_started;
    pthread_mutex_t thr_mu;
    pthread_cond_t thr_cv;
    int stopping; /* guarded by thr_mu */

    _Atomic uint64_t appended_total, rejected_ooo, rejected_dup, rejected_too_old;
    _Atomic int wal_replayed;
};

/* querier.c: bytes of read block chunks a querier keeps (0 = default); process-wide, for
 * tests. Call it before any querier is open. */
void tsdb__querier_set_budget(size_t bytes);

/* compact.c */
int tsdb__cut(tsdb *db, int force, tsdb_err *err); /* blocks written (0/1) or error */
int tsdb__compact(tsdb *db, tsdb_err *err);        /* merges written or error */
int tsdb__retention(tsdb *db, tsdb_err *err);      /* blocks dropped or error */
/* Block list helpers (db.c). */
void tsdb__blocks_add(tsdb *db, tsdb__block *b); /* takes the reference */
void tsdb__blocks_replace(tsdb *db, tsdb__block *const *old, size_t n_old, tsdb__block *nb);
/* References to the current blocks (heap array, caller unrefs each and frees). */
tsdb__block **tsdb__blocks_snapshot(tsdb *db, size_t *n);
/* Path for a new block file (maint_lock held). */
void tsdb__block_name(tsdb *db, int64_t mint, int64_t maxt, uint32_t level, char *out, size_t cap);

#endif
