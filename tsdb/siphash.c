/* tsdb/siphash.c -- SipHash-2-4, a keyed 64-bit hash (Aumasson and Bernstein, 2012).
 *
 * Label sets arrive from the network, so the head's hash table must not be floodable with
 * chosen collisions: the key is random per process (from /dev/urandom, falling back to time and
 * address bits), unless a test fixes it. Hashes are never persisted with the process key; the
 * on-disk index uses its own key stored in its meta table.
 *
 * Check value from the reference implementation: key 00 01 .. 0f, message 00 01 .. 0e (15 bytes)
 * -> 0xa129ca6149be45e5.
 */
#include "tsdb/base.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND           \
    do {                   \
        v0 += v1;          \
        v1 = ROTL(v1, 13); \
        v1 ^= v0;          \
        v0 = ROTL(v0, 32); \
        v2 += v3;          \
        v3 = ROTL(v3, 16); \
        v3 ^= v2;          \
        v0 += v3;          \
        v3 = ROTL(v3, 21); \
        v3 ^= v0;          \
        v2 += v1;          \
        v1 = ROTL(v1, 17); \
        v1 ^= v2;          \
        v2 = ROTL(v2, 32); \
    } while (0)

uint64_t tsdb_siphash(const uint8_t key[16], const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t k0 = tsdb_get_u64le(key), k1 = tsdb_get_u64le(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)n << 56;
    const unsigned char *end = p + (n & ~(size_t)7);
    for (; p != end; p += 8) {
        uint64_t m = tsdb_get_u64le(p);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = n & 7; i > 0; i--)
        b |= (uint64_t)p[i - 1] << (8 * (i - 1));
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint8_t hash_key[16];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
static int hash_key_fixed;

static void hash_key_init(void)
{
    if (hash_key_fixed)
        return;
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = 0;
    if (f != NULL) {
        got = fread(hash_key, 1, sizeof(hash_key), f);
        fclose(f);
    }
    if (got != sizeof(hash_key)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec;
        uint64_t b = (uint64_t)(uintptr_t)&got * 0xC2B2AE3D27D4EB4FULL;
        tsdb_put_u64le(hash_key, a);
        tsdb_put_u64le(hash_key + 8, b);
    }
}

uint64_t tsdb_hash(const void *p, size_t n)
{
    pthread_once(&hash_once, hash_key_init);
    return tsdb_siphash(hash_key, p, n);
}

void tsdb_hash_set_key(const uint8_t key[16])
{
    hash_key_fixed = 1;
    pthread_once(&hash_once, hash_key_init);
    memcpy(hash_key, key, sizeof(hash_key));
}
