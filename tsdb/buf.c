/* tsdb/buf.c -- growable byte buffer and bounds-checked reader.
 *
 * Varints follow Go's encoding/binary: an unsigned varint stores 7 bits per byte, low groups
 * first, high bit set on every byte but the last (at most 10 bytes); a signed varint is the
 * zig-zag mapping (v << 1) ^ (v >> 63) stored as an unsigned varint. Prometheus' WAL, index and
 * chunk formats use these, so they must match bit for bit.
 *
 *     300  -> ac 02          -1 -> 01          1 -> 02          -64 -> 7f
 */
#include "tsdb/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Buffer ------------------------------------------------------------------------------- */

void tsdb_buf_init(tsdb_buf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void tsdb_buf_fini(tsdb_buf *b)
{
    free(b->p);
    tsdb_buf_init(b);
}

void tsdb_buf_reserve(tsdb_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t need = b->len + extra;
    if (need < b->len)
        abort();
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void tsdb_buf_put(tsdb_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    tsdb_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void tsdb_buf_putc(tsdb_buf *b, unsigned char c)
{
    tsdb_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

void tsdb_buf_puts(tsdb_buf *b, const char *s)
{
    tsdb_buf_put(b, s, strlen(s));
}

void tsdb_buf_printf(tsdb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    tsdb_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tsdb_buf_put_u16le(tsdb_buf *b, uint16_t v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    tsdb_buf_put(b, x, 2);
}

void tsdb_buf_put_u32le(tsdb_buf *b, uint32_t v)
{
    unsigned char x[4];
    tsdb_put_u32le(x, v);
    tsdb_buf_put(b, x, 4);
}

void tsdb_buf_put_u64le(tsdb_buf *b, uint64_t v)
{
    unsigned char x[8];
    tsdb_put_u64le(x, v);
    tsdb_buf_put(b, x, 8);
}

void tsdb_buf_put_u32be(tsdb_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    tsdb_buf_put(b, x, 4);
}

void tsdb_buf_put_u64be(tsdb_buf *b, uint64_t v)
{
    unsigned char x[8];
    tsdb_put_u64be(x, v);
    tsdb_buf_put(b, x, 8);
}

void tsdb_buf_put_uvarint(tsdb_buf *b, uint64_t v)
{
    unsigned char x[10];
    size_t n = 0;
    while (v >= 0x80) {
        x[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (unsigned char)v;
    tsdb_buf_put(b, x, n);
}

void tsdb_buf_put_varint(tsdb_buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v << 1;
    if (v < 0)
        u = ~u;
    tsdb_buf_put_uvarint(b, u);
}

void tsdb_buf_put_str(tsdb_buf *b, tsdb_str s)
{
    tsdb_buf_put_uvarint(b, s.len);
    tsdb_buf_put(b, s.p, s.len);
}

/* ---- Reader ------------------------------------------------------------------------------- */

void tsdb_rd_init(tsdb_rd *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->err = 0;
}

size_t tsdb_rd_left(const tsdb_rd *r)
{
    return r->err ? 0 : r->len - r->off;
}

static const unsigned char *rd_take(tsdb_rd *r, size_t n)
{
    if (r->err || r->len - r->off < n) {
        r->err = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t tsdb_rd_u8(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t tsdb_rd_u16le(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t tsdb_rd_u32le(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 4);
    return p ? tsdb_get_u32le(p) : 0;
}

uint64_t tsdb_rd_u64le(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 8);
    return p ? tsdb_get_u64le(p) : 0;
}

uint32_t tsdb_rd_u32be(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t tsdb_rd_u64be(tsdb_rd *r)
{
    const unsigned char *p = rd_take(r, 8);
    return p ? tsdb_get_u64be(p) : 0;
}

uint64_t tsdb_rd_uvarint(tsdb_rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0, i = 0; i < 10; i++, shift += 7) {
        const unsigned char *p = rd_take(r, 1);
        if (p == NULL)
            return 0;
        if (i == 9 && *p > 1) { /* overflows 64 bits */
            r->err = 1;
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    r->err = 1;
    return 0;
}

int64_t tsdb_rd_varint(tsdb_rd *r)
{
    uint64_t u = tsdb_rd_uvarint(r);
    int64_t v = (int64_t)(u >> 1);
    if (u & 1)
        v = ~v;
    return v;
}

const void *tsdb_rd_bytes(tsdb_rd *r, size_t n)
{
    return rd_take(r, n);
}

tsdb_str tsdb_rd_str(tsdb_rd *r)
{
    tsdb_str s = {"", 0};
    uint64_t n = tsdb_rd_uvarint(r);
    if (r->err || n > r->len - r->off) {
        r->err = 1;
        return s;
    }
    s.p = (const char *)rd_take(r, (size_t)n);
    s.len = (size_t)n;
    return s;
}
