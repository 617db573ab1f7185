/* tsdb/xorpub.c -- the XOR chunk encoder offered to the layers above tsdb/.
 *
 * Remote read in STREAMED_XOR_CHUNKS mode ships Prometheus XOR chunks; api/ may not include the
 * internal tsdb/chunk.h, so this wraps the appender behind one public call.
 */
#include "tsdb/tsdb.h"

#include "tsdb/chunk.h"

int tsdb_xor_encode(const tsdb_sample *s, size_t n, tsdb_buf *out)
{
    if (n > 65535)
        return TSDB_EINVAL;
    for (size_t i = 1; i < n; i++)
        if (s[i].t < s[i - 1].t)
            return TSDB_EINVAL;
    tsdb_chunk_app app;
    tsdb_chunk_app_init(&app);
    for (size_t i = 0; i < n; i++)
        tsdb_chunk_app_add(&app, s[i].t, s[i].v);
    size_t len;
    const unsigned char *p = tsdb_chunk_app_bytes(&app, &len);
    tsdb_buf_put(out, p, len);
    tsdb_chunk_app_fini(&app);
    return TSDB_OK;
}
