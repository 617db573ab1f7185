/* fuzz_index -- the value decoders of the LMDB index (tsdb/index.c, format 2).
 *
 * Input: 8 bytes (little endian) give the first id of a postings chunk, the rest is a value.
 * The value is decoded as a postings chunk (run-length and delta codes, ids bounded by the
 * next id) by both the run walker and the id expander, which must agree on every chunk they
 * both accept, and as a series record (per-series offsets, lengths and term-id refs). Bad
 * bytes must be refused, never read out of bounds or expanded without bound.
 */
#include "fuzz/fuzz.h"

#include <stdlib.h>

#include "tsdb/base.h"
#include "tsdb/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t first = 0;
    for (int i = 7; i >= 0; i--)
        first = first << 8 | data[i];
    first &= ((uint64_t)1 << 40) - 1;    /* ids a real index reaches, with room for the limit */
    uint64_t limit = first + (1u << 16); /* expansion of one chunk stays bounded */
    int got = tsdb__index_fuzz_decode(first, limit, data + 8, size - 8);
    if (got < 0 || got > 3)
        abort();
    return 0;
}
