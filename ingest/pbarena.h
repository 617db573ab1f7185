/* ingest/pbarena.h -- pieces shared by the remote-write and remote-read codecs (folder-internal).
 *
 * Snappy block decompression with the size checks done before allocating, and the arena-backed
 * allocator given to protobuf-c (its alloc/free signatures, without including protobuf-c here).
 */
#ifndef INGEST_PBARENA_H
#define INGEST_PBARENA_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

/* protobuf-c allocator state: bump allocation from an arena within a byte budget. */
typedef struct ingest__pb_arena {
    tsdb_arena *a;
    size_t used, budget;
    int over; /* set once an allocation was refused */
} ingest__pb_arena;

/* ProtobufCAllocator.alloc / .free with allocator_data = ingest__pb_arena *. */
void *ingest__pb_alloc(void *data, size_t size);
void ingest__pb_free(void *data, void *ptr);
/* Budget for unpacking n bytes: 16x plus 1 MiB, capped at 1 GiB. */
size_t ingest__pb_budget(size_t n);

/* Checks len and Snappy's declared length against max, then decompresses into the arena.
 * TSDB_ELIMIT / TSDB_EINVAL with a message. An empty body decodes to zero bytes. */
int ingest__unsnappy(tsdb_arena *a, const void *body, size_t len, size_t max, uint8_t **out,
                     size_t *out_len, tsdb_err *err);
/* Snappy-compresses raw into the arena. */
int ingest__snappy(tsdb_arena *a, const uint8_t *raw, size_t n, tsdb_str *out);

#endif
