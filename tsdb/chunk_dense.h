/* tsdb/chunk_dense.h -- the dense chunk encoding for persisted blocks (internal).
 *
 * Head chunks and remote read use Prometheus' XOR encoding (tsdb/chunk.h). Blocks store each
 * chunk in whichever of XOR and DENSE is smaller. DENSE exploits what XOR cannot: real metric
 * values are short decimals (whole bytes, hundredths of a second, pages of memory), so it stores
 * them as scaled integers whose steps share a common factor, and it picks bit widths per chunk
 * for both timestamps and values. Layout and examples in tsdb/chunk_dense.c.
 */
#ifndef TSDB_CHUNK_DENSE_H
#define TSDB_CHUNK_DENSE_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define TSDB_CHUNK_ENC_DENSE 0x81 /* outside Prometheus' encoding numbers */

/* Encodes n (1..65535) samples with ascending timestamps and appends the chunk to out.
 * Returns TSDB_OK, or TSDB_EINVAL when the values are not all finite decimals that decode back
 * bit for bit (NaN, infinities, -0, values needing more than 15 decimal places or 53 bits):
 * then nothing is appended and the caller keeps XOR. */
int tsdb_dense_encode(const tsdb_sample *s, size_t n, tsdb_buf *out);

/* Number of samples a dense chunk declares (0 if too short). */
uint16_t tsdb_dense_count(const void *p, size_t len);

/* Decodes a whole dense chunk into out (capacity cap >= its count). Validates everything:
 * TSDB_ECORRUPT for any malformed, truncated or over-long input; never reads out of bounds. */
int tsdb_dense_decode(const void *p, size_t len, tsdb_sample *out, size_t cap, size_t *n);

/* A chunk is its count, a timestamp part and a value part, each part padded to a whole byte, so
 * chunks with equal timestamps can share one timestamp part: the first bytes of one chunk up to
 * tsdb_dense_ts_len followed by another's bytes after its tsdb_dense_ts_len form a valid chunk
 * when both have the same count. Returns the bytes of chunk p from its start to the end of its
 * timestamp part (count included), or 0 if that part is malformed or truncated. */
size_t tsdb_dense_ts_len(const void *p, size_t len);

#endif
