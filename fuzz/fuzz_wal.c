/* fuzz_wal -- WAL fragment framing (tsdb/wal.c) and record decoding (tsdb/record.c).
 *
 * The input is a segment image: tsdb__wal_scan must deliver complete records and stop with
 * TSDB_ECORRUPT at the first damaged fragment, with good_end inside the input. Every delivered
 * record goes through the decoder of its type, which must return TSDB_OK or TSDB_ECORRUPT; a
 * decoded SAMPLES record must re-encode to bytes that decode to the same samples. The input is
 * also decoded directly as one record.
 */
#include "fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/record.h"
#include "tsdb/wal.h"

static int check_record(void *ctx, const unsigned char *p, size_t len)
{
    (void)ctx;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    int type = tsdb__rec_type(p, len);
    if (type == TSDB__REC_SERIES) {
        tsdb__rec_series *v = NULL;
        size_t n = 0, cap = 0;
        int rc = tsdb__rec_series_decode(p, len, &a, &v, &n, &cap);
        if (rc != TSDB_OK && rc != TSDB_ECORRUPT)
            abort();
        free(v);
    } else if (type == TSDB__REC_SAMPLES) {
        tsdb__rec_sample *v = NULL, *w = NULL;
        size_t n = 0, cap = 0, m = 0, wcap = 0;
        int rc = tsdb__rec_samples_decode(p, len, &v, &n, &cap);
        if (rc == TSDB_OK) {
            tsdb_buf b;
            tsdb_buf_init(&b);
            tsdb__rec_samples_encode(&b, v, n);
            if (tsdb__rec_samples_decode(b.p, b.len, &w, &m, &wcap) != TSDB_OK || m != n)
                abort();
            for (size_t i = 0; i < n; i++)
                if (w[i].id != v[i].id || w[i].t != v[i].t || memcmp(&w[i].v, &v[i].v, 8) != 0)
                    abort();
            tsdb_buf_fini(&b);
        } else if (rc != TSDB_ECORRUPT) {
            abort();
        }
        free(v);
        free(w);
    } else if (type == TSDB__REC_TOMBSTONES) {
        tsdb__rec_tomb *v = NULL;
        size_t n = 0, cap = 0;
        int rc = tsdb__rec_tombs_decode(p, len, &v, &n, &cap);
        if (rc != TSDB_OK && rc != TSDB_ECORRUPT)
            abort();
        free(v);
    } else if (type == TSDB__REC_CHUNKS) {
        tsdb__rec_chunk *v = NULL;
        size_t n = 0, cap = 0;
        int rc = tsdb__rec_chunks_decode(p, len, &v, &n, &cap);
        if (rc != TSDB_OK && rc != TSDB_ECORRUPT)
            abort();
        for (size_t i = 0; rc == TSDB_OK && i < n; i++)
            if (v[i].p < p || v[i].p + v[i].len > p + len)
                abort();
        free(v);
    } else if (type != TSDB_ECORRUPT) {
        abort();
    }
    tsdb_arena_fini(&a);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t good = 0;
    int rc = tsdb__wal_scan(data, size, check_record, NULL, &good);
    if ((rc != TSDB_OK && rc != TSDB_ECORRUPT) || good > size)
        abort();
    check_record(NULL, data, size);
    return 0;
}
