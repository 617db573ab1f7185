/* fuzz_chunk -- the XOR chunk codec (tsdb/chunk.c).
 *
 * 1. The input as a chunk: the iterator, the batch call, seek and tsdb_chunk_decode_all must
 *    return samples, 0 or TSDB_ECORRUPT, stay in bounds and end, and agree with each other.
 * 2. The input as a script of samples (below): encode, decode, compare bit for bit, and the
 *    bytes of the chunk re-encoded from its decoded samples must be identical.
 *
 * Script: per sample one control byte c, then its operands.
 *   c & 3        time: 0 same delta as before, 1 delta = next byte (signed), 2 delta = next 4
 *                bytes (signed, big endian), 3 t = next 8 bytes
 *   (c >> 2) & 3 value: 0 same, 1 previous + next byte (signed), 2 bits = next 8 bytes,
 *                3 special[next byte % N] (stale marker, NaNs, infinities, zeros)
 */
#include "fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/chunk.h"
#include "tsdb/tsdb.h"

#define FUZZ_MAX_SAMPLES 2000

static tsdb_sample decoded[65536];

static uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double from_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static void check(int ok)
{
    if (!ok)
        abort();
}

static void decode_arbitrary(const uint8_t *data, size_t size)
{
    tsdb_chunk_it it;
    tsdb_sample x;
    size_t n = 0;
    int rc = tsdb_chunk_it_init(&it, data, size);
    if (rc < 0) {
        check(rc == TSDB_ECORRUPT && size < 2);
        return;
    }
    while ((rc = tsdb_chunk_it_next(&it, &x)) > 0) {
        check(n < 65536);
        decoded[n] = x;
        n++;
    }
    check(rc == 0 || rc == TSDB_ECORRUPT);
    check(n <= tsdb_chunk_count(data, size));

    /* decode_all agrees with the iterator on every sample it returns. */
    static tsdb_sample all[65536];
    size_t got = 0;
    int rc2 = tsdb_chunk_decode_all(data, size, all, 65536, &got);
    check(rc2 == 0 || rc2 == TSDB_ECORRUPT);
    if (rc2 == 0) {
        check(rc == 0 && got == n);
        for (size_t i = 0; i < n; i++)
            check(all[i].t == decoded[i].t && bits_of(all[i].v) == bits_of(decoded[i].v));
    }

    /* The batch call yields the same samples and the same end. */
    static tsdb_sample batch[64];
    tsdb_chunk_it itb;
    check(tsdb_chunk_it_init(&itb, data, size) == 0);
    size_t nb = 0, cap = 1 + size % 64;
    int rb;
    while ((rb = tsdb_chunk_it_next_batch(&itb, batch, cap)) > 0) {
        check((size_t)rb <= cap && nb + (size_t)rb <= n);
        for (int i = 0; i < rb; i++)
            check(batch[i].t == decoded[nb + (size_t)i].t &&
                  bits_of(batch[i].v) == bits_of(decoded[nb + (size_t)i].v));
        nb += (size_t)rb;
    }
    check(rb == rc && nb == n);

    /* Seek to the middle sample's time lands on a sample the iterator also returned. */
    if (n > 0) {
        tsdb_chunk_it it2;
        check(tsdb_chunk_it_init(&it2, data, size) == 0);
        rc = tsdb_chunk_it_seek(&it2, decoded[n / 2].t, &x);
        check(rc == 1 || rc == 0 || rc == TSDB_ECORRUPT);
        if (rc == 1)
            check(x.t >= decoded[n / 2].t);
    }
}

static size_t take(const uint8_t **p, const uint8_t *end, uint8_t *out, size_t n)
{
    size_t k = (size_t)(end - *p) < n ? (size_t)(end - *p) : n;
    memset(out, 0, n);
    memcpy(out, *p, k);
    *p += k;
    return k;
}

static void round_trip_script(const uint8_t *data, size_t size)
{
    static const uint64_t special[] = {
        TSDB_STALE_NAN_BITS,   0x7ff8000000000001ULL, 0x7ff8000000000000ULL, 0xfff8000000000000ULL,
        0x7ff0000000000000ULL, 0xfff0000000000000ULL, 0x0000000000000000ULL, 0x8000000000000000ULL,
        0x0000000000000001ULL, 0x7fefffffffffffffULL, 0x3ff0000000000000ULL, 0xfff0000000000001ULL,
    };
    static tsdb_sample s[FUZZ_MAX_SAMPLES];
    const uint8_t *p = data, *end = data + size;
    size_t n = 0;
    int64_t t = 0, delta = 15000;
    uint64_t v = 0;
    while (p < end && n < FUZZ_MAX_SAMPLES) {
        uint8_t c = *p++, b[8];
        switch (c & 3) {
        case 1:
            take(&p, end, b, 1);
            delta = (int8_t)b[0];
            break;
        case 2:
            take(&p, end, b, 4);
            delta =
                (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
            break;
        case 3:
            take(&p, end, b, 8);
            t = (int64_t)(tsdb_get_u64be(b) - (uint64_t)delta);
            break;
        default:
            break;
        }
        t = (int64_t)((uint64_t)t + (uint64_t)delta);
        switch ((c >> 2) & 3) {
        case 1:
            take(&p, end, b, 1);
            v = bits_of(from_bits(v) + (double)(int8_t)b[0]);
            break;
        case 2:
            take(&p, end, b, 8);
            v = tsdb_get_u64be(b);
            break;
        case 3:
            take(&p, end, b, 1);
            v = special[b[0] % (sizeof(special) / sizeof(special[0]))];
            break;
        default:
            break;
        }
        s[n].t = t;
        s[n].v = from_bits(v);
        n++;
    }

    tsdb_chunk_app a;
    tsdb_chunk_app_init(&a);
    for (size_t i = 0; i < n; i++)
        tsdb_chunk_app_add(&a, s[i].t, s[i].v);
    size_t len;
    const unsigned char *bytes = tsdb_chunk_app_bytes(&a, &len);
    check(tsdb_chunk_count(bytes, len) == n);

    /* An exact-size copy so that a read past the end is caught. */
    unsigned char *copy = malloc(len);
    check(copy != NULL);
    memcpy(copy, bytes, len);
    size_t got = 0;
    check(tsdb_chunk_decode_all(copy, len, decoded, 65536, &got) == 0);
    check(got == n);
    for (size_t i = 0; i < n; i++)
        check(decoded[i].t == s[i].t && bits_of(decoded[i].v) == bits_of(s[i].v));

    tsdb_chunk_it it;
    tsdb_sample x;
    check(tsdb_chunk_it_init(&it, copy, len) == 0);
    for (size_t i = 0; i < n; i++) {
        check(tsdb_chunk_it_next(&it, &x) == 1);
        check(x.t == s[i].t && bits_of(x.v) == bits_of(s[i].v));
    }
    check(tsdb_chunk_it_next(&it, &x) == 0);

    /* Re-encoding the decoded samples gives the same bytes. */
    tsdb_chunk_app b2;
    tsdb_chunk_app_init(&b2);
    for (size_t i = 0; i < n; i++)
        tsdb_chunk_app_add(&b2, decoded[i].t, decoded[i].v);
    size_t len2;
    const unsigned char *bytes2 = tsdb_chunk_app_bytes(&b2, &len2);
    check(len2 == len && memcmp(bytes2, copy, len) == 0);
    tsdb_chunk_app_fini(&b2);

    free(copy);
    tsdb_chunk_app_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_arbitrary(data, size);
    round_trip_script(data, size);
    return 0;
}
