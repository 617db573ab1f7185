/* tsdb/base.h -- the small vocabulary every Cairn folder shares.
 *
 * Error codes, the optional error detail, borrowed byte ranges, the request/query arena, the
 * growable byte buffer with varints, the aborting allocator, logging, the clock, CRC32C and the
 * keyed 64-bit hash. Everything here is thread-safe unless a function says otherwise; an arena
 * or a buffer belongs to one thread at a time.
 */
#ifndef TSDB_BASE_H
#define TSDB_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Errors ------------------------------------------------------------------------------- */

#define TSDB_ERR_MAP(XX)                                      \
    XX(NOMEM, "out of memory")                                \
    XX(INVAL, "invalid argument")                             \
    XX(IO, "I/O error")                                       \
    XX(NOSPC, "no space left on device")                      \
    XX(CORRUPT, "data corruption detected")                   \
    XX(NOTFOUND, "not found")                                 \
    XX(LIMIT, "limit exceeded")                               \
    XX(PARSE, "parse error")                                  \
    XX(OOO, "out-of-order sample")                            \
    XX(DUP, "duplicate sample for timestamp")                 \
    XX(TOO_OLD, "sample too old")                             \
    XX(TIMEOUT, "timed out")                                  \
    XX(CANCELED, "canceled")                                  \
    XX(FULL, "index map full")                                \
    XX(LOCKED, "data directory is locked by another process") \
    XX(EXEC, "execution error")

/* 0 is success; every error lies in (-200, -100): negative, and never a plausible count. */
enum tsdb_code {
    TSDB_OK = 0,
    TSDB__ERR_FIRST = -200, /* never returned */
#define XX(name, msg) TSDB_E##name,
    TSDB_ERR_MAP(XX)
#undef XX
        TSDB__ERR_LAST
};

/* Optional human detail next to a return code. Every API that takes one accepts NULL. */
typedef struct tsdb_err {
    int code;      /* the TSDB_E* code also returned */
    int pos;       /* byte offset into the input, -1 if not applicable */
    char msg[240]; /* NUL-terminated, already human readable */
} tsdb_err;

/* Borrowed bytes: not NUL-terminated unless a function says so. */
typedef struct tsdb_str {
    const char *p;
    size_t len;
} tsdb_str;

#define TSDB_STR(lit) ((tsdb_str){(lit), sizeof(lit) - 1})

/* Message for a code ("unknown error" for anything else). Static storage. */
const char *tsdb_strerror(int code);
/* Short name of a code ("EINVAL", ...), for metrics and logs. */
const char *tsdb_errname(int code);

/* Fills err (if non-NULL) with code, pos and the formatted message; returns code. */
int tsdb_errf(tsdb_err *err, int code, int pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Corruption detected: logs file:line once, fills err, returns TSDB_ECORRUPT. */
int tsdb__corrupt(const char *file, int line, tsdb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define TSDB_CORRUPT(err, ...) tsdb__corrupt(__FILE__, __LINE__, (err), __VA_ARGS__)

/* tsdb_str helpers. */
tsdb_str tsdb_str_c(const char *s); /* from a NUL-terminated string (NULL -> empty) */
int tsdb_str_eq(tsdb_str a, tsdb_str b);
int tsdb_str_cmp(tsdb_str a, tsdb_str b); /* memcmp order, shorter first on a tie */

/* ---- Allocation --------------------------------------------------------------------------- */

/* Allocation failure calls the OOM hook (default: log and abort). Never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

/* Request/query-scoped bump allocator. Callers embed the struct; its fields are private. */
typedef struct tsdb_arena {
    struct tsdb_arena_chunk *head; /* newest chunk first */
    char *cur, *end;               /* free space in head */
    size_t chunk_size;             /* default size of a new chunk */
    size_t used;                   /* bytes handed out, for limits */
} tsdb_arena;

void tsdb_arena_init(tsdb_arena *a, size_t chunk_size); /* 0 picks 64 KiB */
void *tsdb_arena_alloc(tsdb_arena *a, size_t size);     /* 16-byte aligned; aborts on OOM */
void *tsdb_arena_calloc(tsdb_arena *a, size_t n, size_t size);
/* Grows an allocation: returns new memory holding the first old_size bytes of p. */
void *tsdb_arena_realloc(tsdb_arena *a, void *p, size_t old_size, size_t new_size);
char *tsdb_arena_strndup(tsdb_arena *a, const char *s, size_t n); /* NUL-terminated copy */
tsdb_str tsdb_arena_str(tsdb_arena *a, tsdb_str s);               /* copy, NUL-terminated */
char *tsdb_arena_sprintf(tsdb_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t tsdb_arena_used(const tsdb_arena *a);
void tsdb_arena_reset(tsdb_arena *a); /* frees all but the first chunk, keeps the arena usable */
void tsdb_arena_fini(tsdb_arena *a);  /* frees everything at once; safe on a zeroed arena */

/* ---- Byte buffer ---------------------------------------------------------------------------- */

/* Growable byte buffer (heap). Writers append; readers use tsdb_rd over borrowed bytes. */
typedef struct tsdb_buf {
    unsigned char *p;
    size_t len, cap;
} tsdb_buf;

void tsdb_buf_init(tsdb_buf *b);
void tsdb_buf_fini(tsdb_buf *b);
void tsdb_buf_reserve(tsdb_buf *b, size_t extra);
void tsdb_buf_put(tsdb_buf *b, const void *p, size_t n);
void tsdb_buf_putc(tsdb_buf *b, unsigned char c);
void tsdb_buf_puts(tsdb_buf *b, const char *s);
void tsdb_buf_printf(tsdb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tsdb_buf_put_u16le(tsdb_buf *b, uint16_t v);
void tsdb_buf_put_u32le(tsdb_buf *b, uint32_t v);
void tsdb_buf_put_u64le(tsdb_buf *b, uint64_t v);
void tsdb_buf_put_u32be(tsdb_buf *b, uint32_t v);
void tsdb_buf_put_u64be(tsdb_buf *b, uint64_t v);
void tsdb_buf_put_uvarint(tsdb_buf *b, uint64_t v);
void tsdb_buf_put_varint(tsdb_buf *b, int64_t v); /* zig-zag, as Go's binary.PutVarint */
void tsdb_buf_put_str(tsdb_buf *b, tsdb_str s);   /* uvarint length + bytes */

/* Bounds-checked reader over borrowed bytes. Any read past the end sets err and returns 0;
 * once err is set it stays set, so a decoder may check once at the end. */
typedef struct tsdb_rd {
    const unsigned char *p;
    size_t len, off;
    int err;
} tsdb_rd;

void tsdb_rd_init(tsdb_rd *r, const void *p, size_t len);
size_t tsdb_rd_left(const tsdb_rd *r);
uint8_t tsdb_rd_u8(tsdb_rd *r);
uint16_t tsdb_rd_u16le(tsdb_rd *r);
uint32_t tsdb_rd_u32le(tsdb_rd *r);
uint64_t tsdb_rd_u64le(tsdb_rd *r);
uint32_t tsdb_rd_u32be(tsdb_rd *r);
uint64_t tsdb_rd_u64be(tsdb_rd *r);
uint64_t tsdb_rd_uvarint(tsdb_rd *r);
int64_t tsdb_rd_varint(tsdb_rd *r);
const void *tsdb_rd_bytes(tsdb_rd *r, size_t n); /* NULL (and err) past the end */
tsdb_str tsdb_rd_str(tsdb_rd *r);                /* uvarint length + bytes */

/* Unaligned little/big-endian load/store on raw memory the caller has bounds-checked. */
static inline uint32_t tsdb_get_u32le(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t tsdb_get_u64le(const void *p)
{
    const unsigned char *b = p;
    return (uint64_t)tsdb_get_u32le(b) | (uint64_t)tsdb_get_u32le(b + 4) << 32;
}
static inline void tsdb_put_u32le(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}
static inline void tsdb_put_u64le(void *p, uint64_t v)
{
    tsdb_put_u32le(p, (uint32_t)v);
    tsdb_put_u32le((unsigned char *)p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t tsdb_get_u64be(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}
static inline void tsdb_put_u64be(void *p, uint64_t v)
{
    unsigned char *b = p;
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* ---- Checksums and hashing ------------------------------------------------------------------- */

/* CRC32C (Castagnoli), as Prometheus uses for chunks and WAL records. crc32c(0, p, n) starts a
 * new checksum; pass the previous result to continue over more bytes. */
uint32_t tsdb_crc32c(uint32_t crc, const void *p, size_t n);

/* SipHash-2-4 with a 128-bit key: a keyed 64-bit hash for attacker-controlled input. */
uint64_t tsdb_siphash(const uint8_t key[16], const void *p, size_t n);
/* The process-wide key (random at first use, or fixed by tsdb_hash_set_key for tests). */
uint64_t tsdb_hash(const void *p, size_t n);
void tsdb_hash_set_key(const uint8_t key[16]);

/* ---- Durations --------------------------------------------------------------------------- */

/* Parses a Prometheus duration ("1h30m", "5m", "250ms"; units y w d h m s ms, largest first,
 * each once; "0" alone). Returns TSDB_OK and *ms, or TSDB_EINVAL (also on int64 overflow). */
int tsdb_duration_parse(tsdb_str s, int64_t *ms);

/* ---- Logging and clock --------------------------------------------------------------------- */

enum tsdb_log_level { TSDB_LOG_DEBUG, TSDB_LOG_INFO, TSDB_LOG_WARN, TSDB_LOG_ERROR };

void tsdb_log_set_level(enum tsdb_log_level lvl);
enum tsdb_log_level tsdb_log_get_level(void);
void tsdb_log_set_json(int on); /* logfmt (default) or JSON lines */
/* Parses "debug|info|warn|error"; returns 0 or TSDB_EINVAL. */
int tsdb_log_parse_level(const char *s, enum tsdb_log_level *out);
void tsdb_log(enum tsdb_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define TSDB_LOG_DEBUG(c, ...) tsdb_log(TSDB_LOG_DEBUG, (c), __VA_ARGS__)
#define TSDB_LOG_INFO(c, ...)  tsdb_log(TSDB_LOG_INFO, (c), __VA_ARGS__)
#define TSDB_LOG_WARN(c, ...)  tsdb_log(TSDB_LOG_WARN, (c), __VA_ARGS__)
#define TSDB_LOG_ERROR(c, ...) tsdb_log(TSDB_LOG_ERROR, (c), __VA_ARGS__)

/* Wall clock in ms since the epoch; tests may pin it (0 unpins). */
int64_t tsdb_now_ms(void);
void tsdb_clock_pin(int64_t ms);
/* Monotonic clock in ns, for durations and deadlines. */
int64_t tsdb_mono_ns(void);

#endif
