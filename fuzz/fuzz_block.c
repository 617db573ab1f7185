/* fuzz_block -- block files (tsdb/block.c) opened from memory.
 *
 * tsdb__block_open_mem must accept the image or return TSDB_ECORRUPT. An accepted image is read
 * completely: every series' chunks through tsdb__block_series (CRC-checked), every chunk's
 * samples through the chunk iterator, and the deep verification; each step returns OK or
 * TSDB_ECORRUPT and never reads outside the image.
 */
#include "fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/block.h"
#include "tsdb/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy: the block keeps pointers into the image for its lifetime. */
    unsigned char *img = malloc(size ? size : 1);
    memcpy(img, data, size);
    tsdb__block *b = NULL;
    int rc = tsdb__block_open_mem(img, size, &b, NULL);
    if (rc != TSDB_OK) {
        if (rc != TSDB_ECORRUPT)
            abort();
        free(img);
        return 0;
    }
    const tsdb__block_meta *m = tsdb__block_meta_get(b);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    for (size_t i = 0; i < m->n_series && i < 100000; i++) {
        uint64_t id;
        uint32_t first, count;
        if (tsdb__block_series_at(b, i, &id, &first, &count) != TSDB_OK)
            abort();
        tsdb__chunk_ref *r;
        size_t n;
        rc = tsdb__block_series(b, id, INT64_MIN, INT64_MAX, &a, &r, &n, NULL);
        if (rc != TSDB_OK) {
            if (rc != TSDB_ECORRUPT)
                abort();
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            tsdb_chunk_it it;
            tsdb_sample s;
            if (tsdb_chunk_it_init(&it, r[k].p, r[k].len) != TSDB_OK)
                continue;
            for (int guard = 0; guard < 70000 && tsdb_chunk_it_next(&it, &s) > 0; guard++)
                ;
        }
        tsdb_arena_reset(&a);
    }
    rc = tsdb__block_verify(b, NULL);
    if (rc != TSDB_OK && rc != TSDB_ECORRUPT)
        abort();
    tsdb_arena_fini(&a);
    tsdb__block_unref(b);
    free(img);
    return 0;
}
