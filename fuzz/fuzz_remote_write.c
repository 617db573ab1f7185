/* fuzz_remote_write -- remote-write 1.0/2.0 and remote-read request decoding (ingest/).
 *
 * Input: one selector byte, then the body.
 *   bit 0   0: remote write 1.0, 1: remote write 2.0
 *   bit 1   1: the rest is a raw protobuf message, compressed here with Snappy so mutations
 *           reach the protobuf and label checks; 0: the rest is the HTTP body as received
 *   bit 2   1: decode as a remote-read request instead
 * Decoding must return OK, TSDB_EINVAL or TSDB_ELIMIT and never crash. A decoded write batch
 * must survive encode -> decode unchanged (labels, timestamps, value bits), in both versions.
 */
#include "fuzz/fuzz.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"

static void same_batch(const tsdb_batch *a, const tsdb_batch *b)
{
    if (a->n_series != b->n_series)
        abort();
    for (size_t i = 0; i < a->n_series; i++) {
        const tsdb_batch_series *x = &a->series[i], *y = &b->series[i];
        if (!tsdb_labels_equal(x->labels, y->labels) || x->n_samples != y->n_samples)
            abort();
        for (size_t k = 0; k < x->n_samples; k++)
            if (x->samples[k].t != y->samples[k].t ||
                memcmp(&x->samples[k].v, &y->samples[k].v, sizeof(double)) != 0)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const void *in = body;
    size_t in_len = len;
    if (sel & 2) {
        size_t cap = snappy_max_compressed_length(len);
        char *c = tsdb_arena_alloc(&a, cap + 1);
        if (snappy_compress((const char *)body, len, c, &cap) != SNAPPY_OK)
            abort();
        in = c;
        in_len = cap;
    }
    ingest_limits lim = {.max_body = 4u << 20};
    tsdb_err err;
    if (sel & 4) {
        ingest_read_request rr;
        int rc = ingest_rr_decode(&a, in, in_len, &lim, &rr, &err);
        if (rc != TSDB_OK && rc != TSDB_EINVAL && rc != TSDB_ELIMIT)
            abort();
        tsdb_arena_fini(&a);
        return 0;
    }
    enum ingest_rw_version ver = (sel & 1) ? INGEST_RW_V2 : INGEST_RW_V1;
    ingest_write w;
    int rc = ingest_rw_decode(&a, ver, in, in_len, &lim, &w, &err);
    if (rc != TSDB_OK && rc != TSDB_EINVAL && rc != TSDB_ELIMIT)
        abort();
    if (rc == TSDB_OK) {
        for (int v = 0; v < 2; v++) {
            tsdb_str enc;
            if ((v ? ingest_rw_encode_v2(&w.batch, &a, &enc)
                   : ingest_rw_encode(&w.batch, &a, &enc)) != TSDB_OK)
                abort();
            ingest_write w2;
            if (ingest_rw_decode(&a, v ? INGEST_RW_V2 : INGEST_RW_V1, enc.p, enc.len, NULL, &w2,
                                 &err) != TSDB_OK)
                abort();
            same_batch(&w.batch, &w2.batch);
        }
    }
    tsdb_arena_fini(&a);
    return 0;
}
