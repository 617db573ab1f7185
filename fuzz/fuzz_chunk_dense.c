/* fuzz_chunk_dense -- the dense block chunk codec (tsdb/chunk_dense.c).
 *
 * 1. The input as a dense chunk: decoding returns samples or TSDB_ECORRUPT, stays in bounds,
 *    and what decodes re-encodes and decodes to the same samples; the length of its timestamp
 *    part stays within the input (and exists when it decodes).
 * 2. The input as samples: 10 bytes each (6-byte signed time step, 4-byte signed integer
 *    numerator), first byte chooses the decimal places and whether the value is the numerator
 *    divided by the power of ten, multiplied by its inverse (both exact forms DENSE keeps) or
 *    the running sum of the divided numerators (near decimals, kept as accumulated steps or with
 *    residuals); encode,
 *    decode, compare bit for bit.
 */
#include "fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/chunk_dense.h"
#include "tsdb/tsdb.h"

static tsdb_sample decoded[65535], again[65535];
static tsdb_sample script[2000];

static void check(int ok)
{
    if (!ok)
        abort();
}

static void same(const tsdb_sample *a, const tsdb_sample *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check(a[i].t == b[i].t && memcmp(&a[i].v, &b[i].v, sizeof(double)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    int rc = tsdb_dense_decode(data, size, decoded, 65535, &n);
    check(rc == TSDB_OK || rc == TSDB_ECORRUPT);
    size_t tl = tsdb_dense_ts_len(data, size);
    check(tl <= size);
    if (rc == TSDB_OK) {
        check(tl >= 10); /* a valid chunk has a timestamp part: count and t0 at least */
        tsdb_buf b;
        tsdb_buf_init(&b);
        if (tsdb_dense_encode(decoded, n, &b) == TSDB_OK) {
            size_t m = 0;
            check(tsdb_dense_decode(b.p, b.len, again, 65535, &m) == TSDB_OK && m == n);
            same(decoded, again, n);
        }
        tsdb_buf_fini(&b);
    }

    if (size < 1)
        return 0;
    static const double scale[] = {1, 10, 100, 1000, 1e6, 1e15};
    static const double inv[] = {1, 0.1, 0.01, 0.001, 1e-6, 1e-15};
    double sc = scale[data[0] % 6], in = inv[data[0] % 6];
    int mode = data[0] / 6 % 3; /* divide, multiply, running sum (near decimals) */
    double sum = 0;
    size_t k = 0;
    int64_t t = 1700000000000LL;
    for (size_t off = 1; off + 10 <= size && k < 2000; off += 10) {
        uint64_t u = 0;
        for (int i = 0; i < 6; i++)
            u = u << 8 | data[off + i];
        int64_t dt = (int64_t)u - ((u >> 47) ? (int64_t)1 << 48 : 0); /* signed 48 bits */
        int32_t num = (int32_t)((uint32_t)data[off + 6] << 24 | (uint32_t)data[off + 7] << 16 |
                                (uint32_t)data[off + 8] << 8 | data[off + 9]);
        if (dt <= 0)
            dt = -dt + 1;
        t += dt;
        script[k].t = t;
        sum += (double)num / sc;
        script[k].v = mode == 0 ? (double)num / sc : mode == 1 ? (double)num * in : sum;
        k++;
    }
    if (k == 0)
        return 0;
    tsdb_buf b;
    tsdb_buf_init(&b);
    if (tsdb_dense_encode(script, k, &b) == TSDB_OK) {
        size_t m = 0;
        check(tsdb_dense_decode(b.p, b.len, decoded, 65535, &m) == TSDB_OK && m == k);
        same(script, decoded, k);
    }
    tsdb_buf_fini(&b);
    return 0;
}
