/* tsdb/record.h -- WAL record codec (internal): SERIES, SAMPLES and TOMBSTONES records.
 *
 * Pure functions over bytes; the layout is specified in tsdb/record.c. Decoders never trust
 * their input: bad bytes give TSDB_ECORRUPT, never a crash.
 */
#ifndef TSDB_RECORD_H
#define TSDB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

enum tsdb__rec_type {
    TSDB__REC_SERIES = 1,
    TSDB__REC_SAMPLES = 2,
    TSDB__REC_TOMBSTONES = 3,
    TSDB__REC_CHUNKS = 4, /* checkpoints only: closed head chunks, bytes as they are */
};

/* Upper bound on labels per series accepted by the decoder. */
#define TSDB__REC_MAX_LABELS 1024

typedef struct tsdb__rec_series {
    uint64_t id;
    tsdb_labels labels; /* strings borrowed from the record bytes; array in the arena */
} tsdb__rec_series;

typedef struct tsdb__rec_sample {
    uint64_t id;
    int64_t t;
    double v; /* stored bit for bit (staleness NaNs survive) */
} tsdb__rec_sample;

typedef struct tsdb__rec_tomb {
    uint64_t id;
    int64_t mint, maxt; /* inclusive */
} tsdb__rec_tomb;

typedef struct tsdb__rec_chunk {
    uint64_t id;
    int64_t mint, maxt;
    const unsigned char *p; /* XOR chunk bytes; borrowed from the record when decoded */
    size_t len;
} tsdb__rec_chunk;

/* Encoders append one whole record (type byte included) to b. n == 0 encodes an empty record. */
void tsdb__rec_series_encode(tsdb_buf *b, const tsdb__rec_series *s, size_t n);
void tsdb__rec_samples_encode(tsdb_buf *b, const tsdb__rec_sample *s, size_t n);
void tsdb__rec_tombs_encode(tsdb_buf *b, const tsdb__rec_tomb *s, size_t n);
void tsdb__rec_chunks_encode(tsdb_buf *b, const tsdb__rec_chunk *s, size_t n);

/* Type of a record (its first byte), or TSDB_ECORRUPT for an empty or unknown one. */
int tsdb__rec_type(const void *p, size_t len);

/* Decoders. Each appends to a heap vector (*v, *n, *cap grown with xrealloc; the caller frees
 * *v). Series label arrays are allocated in a and point into p (borrowed). On error the vector
 * may hold a partial result; the return is TSDB_ECORRUPT. */
int tsdb__rec_series_decode(const void *p, size_t len, tsdb_arena *a, tsdb__rec_series **v,
                            size_t *n, size_t *cap);
int tsdb__rec_samples_decode(const void *p, size_t len, tsdb__rec_sample **v, size_t *n,
                             size_t *cap);
int tsdb__rec_tombs_decode(const void *p, size_t len, tsdb__rec_tomb **v, size_t *n, size_t *cap);
int tsdb__rec_chunks_decode(const void *p, size_t len, tsdb__rec_chunk **v, size_t *n, size_t *cap);

#endif
