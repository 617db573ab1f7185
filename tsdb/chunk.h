/* tsdb/chunk.h -- the XOR (Gorilla) chunk codec, bit-compatible with Prometheus' XOR encoding.
 *
 * A chunk's bytes are exactly what Prometheus' chunkenc.XORChunk.Bytes() returns: a 2-byte
 * big-endian sample count followed by the bit stream. See tsdb/chunk.c for the layout.
 */
#ifndef TSDB_CHUNK_H
#define TSDB_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define TSDB_CHUNK_ENC_XOR     1   /* Prometheus chunkenc.EncXOR */
#define TSDB_CHUNK_SAMPLES_MAX 120 /* samples per chunk before a new one is cut */

/* Appender state over a growable buffer (heap-owned), 48 bytes: the head keeps one per series. */
typedef struct tsdb_chunk_app {
    unsigned char *p;          /* p[0..1] = count (big endian), then the bit stream */
    uint32_t len, cap;         /* bytes used; allocated (zero from len to cap) */
    int64_t t, t_delta;        /* last timestamp and last delta */
    uint64_t v_bits;           /* last value's bits */
    uint16_t n;                /* samples appended */
    uint8_t bit_free;          /* free bits in the last byte (0 means a new byte is needed) */
    uint8_t leading, trailing; /* last XOR window; leading == 0xff before the first window */
} tsdb_chunk_app;

void tsdb_chunk_app_init(tsdb_chunk_app *a);
void tsdb_chunk_app_fini(tsdb_chunk_app *a);
/* Starts a new chunk in the same buffer (keeping its capacity, which suits a chunk like the
 * last one). */
void tsdb_chunk_app_reset(tsdb_chunk_app *a);
/* Appends one sample (t must not be below the previous one). */
void tsdb_chunk_app_add(tsdb_chunk_app *a, int64_t t, double v);
/* The chunk's bytes so far (borrowed until the next add or fini). */
const unsigned char *tsdb_chunk_app_bytes(const tsdb_chunk_app *a, size_t *len);

/* Iterator over a chunk's bytes (borrowed for the iterator's life). */
typedef struct tsdb_chunk_it {
    const unsigned char *p; /* chunk bytes */
    size_t len;
    size_t bitpos; /* next bit to read, counted from p + 2 */
    uint16_t n, i; /* samples in the chunk, samples read */
    int64_t t, t_delta;
    uint64_t v_bits;
    uint8_t leading, trailing;
    int err; /* TSDB_ECORRUPT once the stream proved bad; sticky */
} tsdb_chunk_it;

/* Starts iterating; TSDB_ECORRUPT if the bytes are too short to hold a header. */
int tsdb_chunk_it_init(tsdb_chunk_it *it, const void *p, size_t len);
/* >0 sample in *out / 0 end / TSDB_ECORRUPT. */
int tsdb_chunk_it_next(tsdb_chunk_it *it, tsdb_sample *out);
/* Up to cap next samples into out: their number (>0), 0 at the end, or
 * TSDB_ECORRUPT. Samples decoded before a corrupt one are returned first; the error is sticky,
 * so the next call returns it. The same samples as repeated tsdb_chunk_it_next, faster. */
int tsdb_chunk_it_next_batch(tsdb_chunk_it *it, tsdb_sample *out, size_t cap);
/* First sample with t >= t0 (moving forward only): >0 / 0 / TSDB_ECORRUPT. */
int tsdb_chunk_it_seek(tsdb_chunk_it *it, int64_t t0, tsdb_sample *out);
/* Number of samples the header declares (0 if too short). */
uint16_t tsdb_chunk_count(const void *p, size_t len);

/* Decodes the whole chunk, checking it: count samples into out (capacity >= header count). */
int tsdb_chunk_decode_all(const void *p, size_t len, tsdb_sample *out, size_t cap, size_t *n);

#endif
