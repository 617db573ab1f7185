/* tsdb/chunk.c -- the XOR (Gorilla) chunk codec, bit-identical to Prometheus' XOR chunks.
 *
 * A chunk holds up to 65535 samples (the head cuts at 120) of one series. Its bytes are exactly
 * what Prometheus' chunkenc.XORChunk.Bytes() returns, so remote read can ship our chunks and we
 * can read Prometheus' (tsdb/docs/format/chunks.md, tsdb/chunkenc/xor.go).
 *
 * Layout. Bits are written most significant first; "n bits of x" means the n low bits of x,
 * high bit first, in two's complement where x is negative.
 *
 *   +------------------+--------------------+----------------+------------------+-----------+
 *   | count: u16 BE    | t0: varint         | v0: 64 bits    | t1-t0: uvarint   | v1: XOR   |
 *   +------------------+--------------------+----------------+------------------+-----------+
 *   | then, for every later sample: dod (delta of delta) of t, then v as XOR                 |
 *   +----------------------------------------------------------------------------------------+
 *
 *   count  number of samples, big endian, rewritten on every append.
 *   t0     zig-zag varint as Go's binary.PutVarint (1000 -> 2000 -> D0 0F).
 *   v0     the IEEE-754 bits of the first value, raw (NaN payloads kept bit for bit).
 *   t1-t0  Go's binary.PutUvarint of the delta taken as uint64 (a negative delta costs 10 bytes).
 *   Both varints start on a byte boundary, since everything before them is whole bytes.
 *
 * Timestamps from the third sample on: delta = t[i] - t[i-1], dod = delta - previous delta.
 *
 *   dod range (inclusive)   written as              bits   example
 *   0                       '0'                     1      0    -> 0
 *   -8191 .. 8192           '10'   + 14 bits        16     10   -> 10 00000000001010
 *   -65535 .. 65536         '110'  + 17 bits        20     -1   -> 110 11111111111111111
 *   -524287 .. 524288       '1110' + 20 bits        24     2^19 -> 1110 10000000000000000000
 *   anything else           '1111' + 64 bits        68
 *
 * The ranges are lopsided on purpose (Prometheus' bitRange): an n-bit field holds
 * -(2^(n-1) - 1) .. 2^(n-1), and the reader takes a field above 2^(n-1) as negative
 * (field - 2^n), so the pattern 1 0...0 means +2^(n-1).
 *
 * Values from the second sample on: x = bits(v[i]) ^ bits(v[i-1]).
 *
 *   case                                     written as                              bits
 *   x == 0                                   '0'                                     1
 *   x fits the previous window (lead >= L,   '10' + the window's 64-L-T bits of x>>T  2 + 64-L-T
 *     trail >= T for the current L, T)
 *   otherwise (and for the first x != 0)     '11' + 5 bits lead + 6 bits sigbits     13 + sigbits
 *                                            + sigbits bits of x >> trail
 *
 *   lead = leading zeros of x, capped at 31 so it fits 5 bits; trail = trailing zeros of x;
 *   sigbits = 64 - lead - trail, with 64 written as 0 (0 significant bits cannot occur, x != 0).
 *   The new window becomes (L, T) = (lead, trail). Example: v 1.0 -> 2.0 gives x =
 *   0x7ff0000000000000, lead 1, trail 52, sigbits 11: '11' 00001 001011 11111111111.
 *   A reader that meets '10' before any window uses L = T = 0 (64 bits), as Prometheus does.
 *
 * Padding and the trailing byte. The stream is padded with zero bits to a whole byte. Prometheus
 * writes a multiple of 8 bits byte by byte, and a byte write that starts on a byte boundary
 * leaves one more, still empty, byte at the end; the next bit written goes there. So when an
 * append ends on a byte boundary with such a write (the first sample's 64 value bits, or XOR
 * significant bits that are a multiple of 8), the chunk ends with one extra zero byte, and we
 * reproduce it.
 *
 * Worked examples (pinned by tests/unit/tsdb/test_chunk.c):
 *
 *   (1000, 1.0) alone -> 00 01 D0 0F 3F F0 00 00 00 00 00 00 00 (13 bytes, the last one empty)
 *
 *   (1000, 1.0) (2000, 2.0) (3000, 3.0) (4010, 3.0)
 *   -> 00 04 D0 0F 3F F0 00 00 00 00 00 00 E8 07 C2 5F FF 6C 07 00 14 (21 bytes)
 *      00 04                    count 4
 *      D0 0F                    varint 1000 (zig-zag 2000)
 *      3F F0 00 00 00 00 00 00  1.0; the empty byte after it takes the next write
 *      E8 07                    uvarint delta 1000
 *      C2 5F FF                 2.0: x = 0x7ff0000000000000, '11' 00001 001011 11111111111
 *      6C 07 00 14              3000: dod 0 '0'; 3.0: x = 0x0008000000000000, lead 12,
 *                               trail 51 < 52 so a new window: '11' 01100 000001 1;
 *                               4010: dod 10 '10' 00000000001010; 3.0 again: '0';
 *                               0110110000000111 0000000000010100 (32 bits, no padding)
 *
 * Reading. The iterator is bounds-checked against the given length: bits past the end read as
 * zero, and a sample that ends past the last byte makes the stream TSDB_ECORRUPT (sticky), as do a
 * varint that overflows 64 bits and a window with lead + sigbits > 64. Every sample consumes at
 * least one bit and the count is at most 65535, so iteration always ends. Bytes after the last
 * sample are ignored by the iterator; tsdb_chunk_decode_all also requires them to be zero padding
 * (at most the padding bits plus the one empty byte above). Corruption is returned, not logged:
 * the caller knows which file and series it was reading.
 *
 * Speed. The writer keeps the bytes past the used length zeroed, gathers a sample's bits in a
 * 64-bit register and stores them as unaligned big-endian words. The reader loads 64 bits at any
 * bit offset the same way (at least 57 valid bits); a sample that fits one such load, with a dod
 * of at most 20 bits, decodes without calls or bounds checks, and only the first two samples, the
 * last 8 bytes and 64-bit fields take the careful path.
 */
#include "tsdb/chunk.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"

#define CHUNK_HDR        2  /* the count */
#define CHUNK_APP_SLACK  48 /* zeroed bytes kept past the end before an append (one needs <= 32) */
#define CHUNK_VARINT_MAX 10 /* bytes in the longest 64-bit varint */

/* ---- Words and bits ---------------------------------------------------------------------- */

static inline uint64_t load_be64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store_be64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline uint64_t f64_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static inline double f64_from(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static inline unsigned clz64(uint64_t x) /* x != 0 */
{
    return (unsigned)__builtin_clzll(x);
}

static inline unsigned ctz64(uint64_t x) /* x != 0 */
{
    return (unsigned)__builtin_ctzll(x);
}

/* Whether x fits an n-bit dod field: -(2^(n-1) - 1) <= x <= 2^(n-1). */
static inline int dod_fits(int64_t x, unsigned n)
{
    int64_t half = (int64_t)1 << (n - 1);
    return x >= -(half - 1) && x <= half;
}

/* ---- Appender ------------------------------------------------------------------------------ */

/* A bit writer over the appender's buffer, with the bits in flight in a register: acc holds n
 * bits (n <= 63), left-aligned, that belong at q. Whole bytes go out with one 8-byte store when
 * acc would overflow and at the end; the bytes past the data are zero, so the store can carry
 * acc's zero tail. Reading back only the one partial byte at the start avoids loads that
 * overlap an earlier store of different alignment, which the CPU cannot forward. */
typedef struct bit_writer {
    unsigned char *q;
    uint64_t acc;
    unsigned n;
} bit_writer;

static inline void bw_init(bit_writer *w, unsigned char *p, uint64_t pos)
{
    w->q = p + (pos >> 3);
    w->n = (unsigned)(pos & 7);
    w->acc = (uint64_t)w->q[0] << 56;
}

/* Appends the k low bits of v, 1 <= k <= 56. */
static inline void bw_put(bit_writer *w, uint64_t v, unsigned k)
{
    if (w->n + k > 63) {
        unsigned bytes = w->n >> 3;
        store_be64(w->q, w->acc);
        w->q += bytes;
        w->acc <<= bytes * 8;
        w->n &= 7;
    }
    w->acc |= (v << (64 - k)) >> w->n;
    w->n += k;
}

/* As bw_put for 1 <= k <= 64. */
static inline void bw_put64(bit_writer *w, uint64_t v, unsigned k)
{
    if (k > 56) {
        bw_put(w, v >> 32, k - 32);
        bw_put(w, v & 0xffffffffu, 32);
    } else {
        bw_put(w, v, k);
    }
}

/* Stores what is in flight; returns the bit position after it. */
static inline uint64_t bw_finish(bit_writer *w, const unsigned char *p)
{
    store_be64(w->q, w->acc);
    return (uint64_t)(w->q - p) * 8 + w->n;
}

/* Writes a uvarint at byte offset off; returns its length. */
static inline size_t put_uvarint(unsigned char *p, size_t off, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[off + n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[off + n++] = (unsigned char)v;
    return n;
}

void tsdb_chunk_app_init(tsdb_chunk_app *a)
{
    memset(a, 0, sizeof(*a));
    a->cap = 128;
    a->p = xcalloc(1, a->cap);
    a->len = CHUNK_HDR;
    a->leading = 0xff;
}

void tsdb_chunk_app_reset(tsdb_chunk_app *a)
{
    unsigned char *p = a->p;
    uint32_t cap = a->cap;
    memset(p, 0, a->len + CHUNK_APP_SLACK <= cap ? a->len + CHUNK_APP_SLACK : cap);
    memset(a, 0, sizeof(*a));
    a->p = p;
    a->cap = cap;
    a->len = CHUNK_HDR;
    a->leading = 0xff;
}

void tsdb_chunk_app_fini(tsdb_chunk_app *a)
{
    if (!a)
        return;
    free(a->p);
    a->p = NULL;
    a->len = a->cap = 0;
}

const unsigned char *tsdb_chunk_app_bytes(const tsdb_chunk_app *a, size_t *len)
{
    *len = a->len;
    return a->p;
}

/* Writes the XOR of v against the previous value; returns 1 when the last write was a whole
 * number of bytes (see "the trailing byte"). */
static inline int app_put_value(tsdb_chunk_app *a, bit_writer *w, uint64_t v_bits)
{
    uint64_t x = v_bits ^ a->v_bits;
    if (x == 0) {
        bw_put(w, 0, 1);
        return 0;
    }
    unsigned lead = clz64(x), trail = ctz64(x);
    if (lead > 31)
        lead = 31;
    unsigned sig;
    if (a->leading != 0xff && lead >= a->leading && trail >= a->trailing) {
        sig = 64u - a->leading - a->trailing;
        uint64_t payload = x >> a->trailing;
        if (sig <= 54) {
            bw_put(w, (uint64_t)2 << sig | payload, 2 + sig);
        } else {
            bw_put(w, 2, 2);
            bw_put64(w, payload, sig);
        }
    } else {
        a->leading = (uint8_t)lead;
        a->trailing = (uint8_t)trail;
        sig = 64u - lead - trail;
        uint64_t ctl = (uint64_t)3 << 11 | (uint64_t)lead << 6 | (sig & 63);
        uint64_t payload = x >> trail;
        if (sig <= 43) {
            bw_put(w, ctl << sig | payload, 13 + sig);
        } else {
            bw_put(w, ctl, 13);
            bw_put64(w, payload, sig);
        }
    }
    return (sig & 7) == 0;
}

void tsdb_chunk_app_add(tsdb_chunk_app *a, int64_t t, double v)
{
    assert(a->n < UINT16_MAX);
    if (a->cap - a->len < CHUNK_APP_SLACK) {
        /* Grows by an eighth (at least 32 bytes), not doubling: an open head chunk lives as
         * long as its series keeps appending, so its slack is resident memory. */
        uint32_t old_cap = a->cap, step = a->len / 8 > 32 ? a->len / 8 : 32;
        uint32_t cap = (a->len + CHUNK_APP_SLACK + step + 15) & ~(uint32_t)15;
        a->p = xrealloc(a->p, cap);
        a->cap = cap;
        memset(a->p + old_cap, 0, cap - old_cap); /* [len, old_cap) is zero already */
    }
    unsigned char *p = a->p;
    uint64_t pos = (uint64_t)a->len * 8 - a->bit_free;
    uint64_t v_bits = f64_bits(v);
    uint64_t delta = 0;
    int byte_end = 0;
    bit_writer w;

    if (a->n >= 2)
        delta = (uint64_t)t - (uint64_t)a->t;
    if (a->n == 0) {
        size_t off = (size_t)(pos >> 3);
        uint64_t zz = ((uint64_t)t << 1) ^ (uint64_t)(t >> 63);
        off += put_uvarint(p, off, zz);
        store_be64(p + off, v_bits);
        pos = (uint64_t)(off + 8) * 8;
        byte_end = 1;
    } else if (a->n >= 2 && delta == (uint64_t)a->t_delta && v_bits == a->v_bits) {
        pos += 2; /* '0' '0': the bits are zero already */
    } else {
        if (a->n == 1) {
            delta = (uint64_t)t - (uint64_t)a->t;
            size_t off = (size_t)(pos >> 3);
            off += put_uvarint(p, off, delta);
            bw_init(&w, p, (uint64_t)off * 8);
        } else {
            bw_init(&w, p, pos);
            int64_t dod = (int64_t)(delta - (uint64_t)a->t_delta);
            uint64_t d = (uint64_t)dod;
            if (dod == 0) {
                bw_put(&w, 0, 1);
            } else if (dod_fits(dod, 14)) {
                bw_put(&w, (uint64_t)0x2 << 14 | (d & 0x3fff), 16);
            } else if (dod_fits(dod, 17)) {
                bw_put(&w, (uint64_t)0x6 << 17 | (d & 0x1ffff), 20);
            } else if (dod_fits(dod, 20)) {
                bw_put(&w, (uint64_t)0xe << 20 | (d & 0xfffff), 24);
            } else {
                bw_put(&w, 0xf, 4);
                bw_put64(&w, d, 64);
            }
        }
        byte_end = app_put_value(a, &w, v_bits);
        pos = bw_finish(&w, p);
    }

    size_t len = (size_t)((pos + 7) >> 3);
    if ((pos & 7) == 0 && byte_end)
        len++;
    a->len = (uint32_t)len;
    a->bit_free = (uint8_t)((uint64_t)len * 8 - pos);
    a->n++;
    p[0] = (unsigned char)(a->n >> 8);
    p[1] = (unsigned char)a->n;
    a->t = t;
    a->t_delta = (int64_t)delta;
    a->v_bits = v_bits;
}

/* ---- Iterator ------------------------------------------------------------------------------ */

/* 64 bits of d[0..dlen) from bit pos, most significant first; bits past the end read as zero.
 * At least 57 of the returned bits come from the stream (or its zero tail). */
__attribute__((noinline)) static uint64_t peek64_tail(const unsigned char *d, size_t dlen,
                                                      size_t pos)
{
    size_t o = pos >> 3;
    uint64_t w;
    if (o >= dlen) {
        w = 0;
    } else if (dlen >= 8) {
        w = load_be64(d + dlen - 8) << ((o + 8 - dlen) * 8); /* the last bytes, shifted up */
    } else {
        unsigned char tmp[8] = {0};
        memcpy(tmp, d + o, dlen - o);
        w = load_be64(tmp);
    }
    return w << (pos & 7);
}

static inline uint64_t peek64(const unsigned char *d, size_t dlen, size_t pos)
{
    size_t o = pos >> 3;
    if (__builtin_expect(o + 8 <= dlen, 1))
        return load_be64(d + o) << (pos & 7);
    return peek64_tail(d, dlen, pos);
}

/* n bits (1 <= n <= 64) from bit pos. */
__attribute__((noinline)) static uint64_t get_bits64(const unsigned char *d, size_t dlen,
                                                     size_t pos, unsigned n)
{
    if (n <= 57)
        return peek64(d, dlen, pos) >> (64 - n);
    uint64_t hi = peek64(d, dlen, pos) >> (64 - (n - 32));
    uint64_t lo = peek64(d, dlen, pos + n - 32) >> 32;
    return hi << 32 | lo;
}

/* Marks the stream bad; every later call returns the error. */
static inline int it_fail(tsdb_chunk_it *it)
{
    it->err = TSDB_ECORRUPT;
    return TSDB_ECORRUPT;
}

/* Reads a uvarint at byte offset *off of d[0..dlen), as Go's binary.ReadUvarint: 0 or -1. */
static int get_uvarint(const unsigned char *d, size_t dlen, size_t *off, uint64_t *out)
{
    uint64_t x = 0;
    unsigned s = 0;
    for (size_t i = 0; i < CHUNK_VARINT_MAX; i++) {
        if (*off >= dlen)
            return -1;
        unsigned char c = d[(*off)++];
        if (c < 0x80) {
            if (i == CHUNK_VARINT_MAX - 1 && c > 1)
                return -1;
            *out = x | (uint64_t)c << s;
            return 0;
        }
        x |= (uint64_t)(c & 0x7f) << s;
        s += 7;
    }
    return -1;
}

int tsdb_chunk_it_init(tsdb_chunk_it *it, const void *p, size_t len)
{
    memset(it, 0, sizeof(*it));
    if (len < CHUNK_HDR) {
        it->err = TSDB_ECORRUPT;
        return TSDB_ECORRUPT;
    }
    it->p = p;
    it->len = len;
    it->n = (uint16_t)(it->p[0] << 8 | it->p[1]);
    return 0;
}

uint16_t tsdb_chunk_count(const void *p, size_t len)
{
    const unsigned char *b = p;
    if (len < CHUNK_HDR)
        return 0;
    return (uint16_t)(b[0] << 8 | b[1]);
}

/* The first two samples: whole bytes, read without the bit reader. */
__attribute__((noinline)) static int it_next_head(tsdb_chunk_it *it, tsdb_sample *out)
{
    const unsigned char *d = it->p + CHUNK_HDR;
    size_t dlen = it->len - CHUNK_HDR;
    size_t off = it->bitpos >> 3; /* byte aligned here */
    uint64_t u;
    if (get_uvarint(d, dlen, &off, &u) < 0)
        return it_fail(it);
    if (it->i == 0) {
        if (dlen - off < 8)
            return it_fail(it);
        it->t = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        it->v_bits = load_be64(d + off);
        it->bitpos = (off + 8) * 8;
    } else {
        it->t_delta = (int64_t)u;
        it->t = (int64_t)((uint64_t)it->t + u);
        size_t pos = off * 8;
        uint64_t w = peek64(d, dlen, pos);
        if (w >> 63) {
            unsigned lead, sig;
            if (!(w >> 62 & 1)) {
                lead = it->leading;
                sig = 64u - it->leading - it->trailing;
                pos += 2;
            } else {
                lead = (unsigned)(w >> 57) & 31;
                sig = (unsigned)(w >> 51) & 63;
                if (sig == 0)
                    sig = 64;
                if (lead + sig > 64)
                    return it_fail(it);
                it->leading = (uint8_t)lead;
                it->trailing = (uint8_t)(64 - lead - sig);
                pos += 13;
            }
            it->v_bits ^= get_bits64(d, dlen, pos, sig) << it->trailing;
            pos += sig;
        } else {
            pos += 1;
        }
        if (pos > (size_t)dlen * 8)
            return it_fail(it);
        it->bitpos = pos;
    }
    it->i++;
    out->t = it->t;
    out->v = f64_from(it->v_bits);
    return 1;
}

/* Decodes the third or a later sample from anywhere in the stream, every load checked. */
__attribute__((noinline)) static int it_decode_full(tsdb_chunk_it *it, tsdb_sample *out)
{
    const unsigned char *d = it->p + CHUNK_HDR;
    size_t dlen = it->len - CHUNK_HDR;
    size_t pos = it->bitpos;
    uint64_t w = peek64(d, dlen, pos);
    uint64_t t_delta = (uint64_t)it->t_delta, f;

    if (!(w >> 63)) {
        pos += 1;
    } else if (!(w >> 62 & 1)) {
        f = w >> 48 & 0x3fff;
        t_delta += f > 0x2000 ? f - 0x4000 : f;
        pos += 16;
    } else if (!(w >> 61 & 1)) {
        f = w >> 44 & 0x1ffff;
        t_delta += f > 0x10000 ? f - 0x20000 : f;
        pos += 20;
    } else if (!(w >> 60 & 1)) {
        f = w >> 40 & 0xfffff;
        t_delta += f > 0x80000 ? f - 0x100000 : f;
        pos += 24;
    } else {
        t_delta += get_bits64(d, dlen, pos + 4, 64);
        pos += 68;
    }

    w = peek64(d, dlen, pos);
    if (!(w >> 63)) {
        pos += 1;
    } else {
        unsigned sig;
        if (!(w >> 62 & 1)) {
            sig = 64u - it->leading - it->trailing;
            pos += 2;
        } else {
            unsigned lead = (unsigned)(w >> 57) & 31;
            sig = (unsigned)(w >> 51) & 63;
            if (sig == 0)
                sig = 64;
            if (lead + sig > 64)
                return it_fail(it);
            it->leading = (uint8_t)lead;
            it->trailing = (uint8_t)(64 - lead - sig);
            pos += 13;
        }
        it->v_bits ^= get_bits64(d, dlen, pos, sig) << it->trailing;
        pos += sig;
    }

    if (pos > (size_t)dlen * 8)
        return it_fail(it);
    it->bitpos = pos;
    it->t_delta = (int64_t)t_delta;
    it->t = (int64_t)((uint64_t)it->t + t_delta);
    it->i++;
    out->t = it->t;
    out->v = f64_from(it->v_bits);
    return 1;
}

/* The iterator state the fast decoder works on, copied out of the iterator so that it can live
 * in registers across a batch. */
typedef struct it_state {
    size_t pos;
    uint64_t t, t_delta, v_bits;
    unsigned lead, trail;
} it_state;

/* The common case, with no call and no bounds check: a sample whose dod field is at most 20
 * bits and which ends within the 57 bits of one unchecked load (the caller made sure that 8
 * bytes follow s->pos / 8). Returns 1, or 0 with nothing changed to send the sample to
 * it_decode_full. A new XOR window also goes straight to window_to when that is not NULL. Branches,
 * not tables: on regular data they predict well, and then the next position does not wait for the
 * loaded bits. */
static inline __attribute__((always_inline)) int
it_decode_fast(const unsigned char *d, it_state *s, tsdb_sample *out, tsdb_chunk_it *window_to)
{
    uint64_t w = load_be64(d + (s->pos >> 3)) << (s->pos & 7);
    uint64_t t_delta = s->t_delta, v_bits = s->v_bits, f;
    unsigned used;

    if (!(w >> 63)) {
        used = 1;
    } else if (!(w >> 62 & 1)) {
        f = w >> 48 & 0x3fff;
        t_delta += f > 0x2000 ? f - 0x4000 : f;
        used = 16;
    } else if (!(w >> 61 & 1)) {
        f = w >> 44 & 0x1ffff;
        t_delta += f > 0x10000 ? f - 0x20000 : f;
        used = 20;
    } else if (!(w >> 60 & 1)) {
        f = w >> 40 & 0xfffff;
        t_delta += f > 0x80000 ? f - 0x100000 : f;
        used = 24;
    } else {
        return 0;
    }
    w <<= used;

    if (!(w >> 63)) {
        used += 1;
    } else if (!(w >> 62 & 1)) {
        unsigned sig = 64u - s->lead - s->trail;
        used += 2 + sig;
        if (used > 57)
            return 0;
        v_bits ^= (w << 2) >> (64 - sig) << s->trail;
    } else {
        unsigned lead = (unsigned)(w >> 57) & 31;
        unsigned sig = (unsigned)(w >> 51) & 63;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return 0;
        unsigned trail = 64 - lead - sig;
        used += 13 + sig;
        if (used > 57)
            return 0;
        v_bits ^= (w << 13) >> (64 - sig) << trail;
        s->lead = lead;
        s->trail = trail;
        if (window_to) {
            window_to->leading = (uint8_t)lead;
            window_to->trailing = (uint8_t)trail;
        }
    }

    s->pos += used;
    s->t_delta = t_delta;
    s->t += t_delta;
    s->v_bits = v_bits;
    out->t = (int64_t)s->t;
    out->v = f64_from(v_bits);
    return 1;
}

static inline void it_state_load(const tsdb_chunk_it *it, it_state *s)
{
    s->pos = it->bitpos;
    s->t = (uint64_t)it->t;
    s->t_delta = (uint64_t)it->t_delta;
    s->v_bits = it->v_bits;
    s->lead = it->leading;
    s->trail = it->trailing;
}

static inline void it_state_store(tsdb_chunk_it *it, const it_state *s)
{
    it->bitpos = s->pos;
    it->t = (int64_t)s->t;
    it->t_delta = (int64_t)s->t_delta;
    it->v_bits = s->v_bits;
    it->leading = (uint8_t)s->lead;
    it->trailing = (uint8_t)s->trail;
}

/* Everything but the common case: errors, the end, the first two samples, the last 8 bytes,
 * 64-bit dods and long XOR payloads. */
__attribute__((noinline)) static int it_next_slow(tsdb_chunk_it *it, tsdb_sample *out)
{
    if (it->err)
        return it->err;
    if (it->i >= it->n)
        return 0;
    if (it->i < 2)
        return it_next_head(it, out);
    return it_decode_full(it, out);
}

int tsdb_chunk_it_next(tsdb_chunk_it *it, tsdb_sample *out)
{
    if (it->i >= 2 && it->i < it->n && !it->err && (it->bitpos >> 3) + 8 <= it->len - CHUNK_HDR) {
        it_state s;
        it_state_load(it, &s);
        if (it_decode_fast(it->p + CHUNK_HDR, &s, out, it)) {
            /* The window, if it changed, is stored already. */
            it->bitpos = s.pos;
            it->t = (int64_t)s.t;
            it->t_delta = (int64_t)s.t_delta;
            it->v_bits = s.v_bits;
            it->i++;
            return 1;
        }
    }
    return it_next_slow(it, out);
}

int tsdb_chunk_it_next_batch(tsdb_chunk_it *it, tsdb_sample *out, size_t cap)
{
    size_t k = 0;
    size_t dlen = it->len >= CHUNK_HDR ? it->len - CHUNK_HDR : 0;
    /* Last byte offset from which an unchecked 8-byte load stays inside the data. */
    size_t fast_end = dlen >= 8 ? dlen - 8 : 0;
    while (k < cap) {
        if (it->i >= 2 && it->i < it->n && !it->err && dlen >= 8) {
            size_t lim = (size_t)(it->n - it->i), j = 0;
            if (lim > cap - k)
                lim = cap - k;
            const unsigned char *d = it->p + CHUNK_HDR;
            it_state s;
            it_state_load(it, &s);
            while (j < lim && (s.pos >> 3) <= fast_end && it_decode_fast(d, &s, &out[k + j], NULL))
                j++;
            it_state_store(it, &s);
            it->i = (uint16_t)(it->i + j);
            k += j;
            if (k == cap)
                break;
        }
        int rc = it_next_slow(it, &out[k]);
        if (rc < 0)
            return k ? (int)k : rc; /* the error is sticky: the next call returns it */
        if (rc == 0)
            break;
        k++;
    }
    return (int)k;
}

int tsdb_chunk_it_seek(tsdb_chunk_it *it, int64_t t0, tsdb_sample *out)
{
    if (it->err)
        return it->err;
    if (it->i > 0 && it->t >= t0) {
        out->t = it->t;
        out->v = f64_from(it->v_bits);
        return 1;
    }
    tsdb_sample s;
    int rc;
    while ((rc = tsdb_chunk_it_next(it, &s)) > 0) {
        if (s.t >= t0) {
            *out = s;
            return 1;
        }
    }
    return rc;
}

int tsdb_chunk_decode_all(const void *p, size_t len, tsdb_sample *out, size_t cap, size_t *n)
{
    tsdb_chunk_it it;
    int rc = tsdb_chunk_it_init(&it, p, len);
    if (rc < 0)
        return rc;
    /* Cheapest possible samples: 9 bytes, then 1 byte + 1 bit, then 2 bits each. */
    size_t bits = (len - CHUNK_HDR) * 8, need = 0;
    if (it.n >= 1)
        need += 72;
    if (it.n >= 2)
        need += 9;
    if (it.n >= 3)
        need += (size_t)(it.n - 2) * 2;
    if (need > bits)
        return TSDB_ECORRUPT;
    if (it.n > cap)
        return TSDB_EINVAL;
    size_t k = 0;
    while (k < it.n) {
        rc = tsdb_chunk_it_next_batch(&it, out + k, it.n - k);
        if (rc <= 0)
            break;
        k += (size_t)rc;
    }
    if (rc < 0)
        return rc;
    if (k < it.n)
        return TSDB_ECORRUPT;
    /* What follows the last sample must be zero padding: the rest of its byte, then at most
     * one empty byte. */
    size_t end = CHUNK_HDR + (it.bitpos + 7) / 8;
    const unsigned char *b = p;
    if ((it.bitpos & 7) && (b[end - 1] & (0xffu >> (it.bitpos & 7))))
        return TSDB_ECORRUPT;
    if (len > end + 1 || (len == end + 1 && b[end] != 0))
        return TSDB_ECORRUPT;
    *n = k;
    return 0;
}
