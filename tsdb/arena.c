/* tsdb/arena.c -- request/query-scoped bump allocator.
 *
 * Memory comes from a list of chunks; allocation bumps a pointer in the newest chunk and, when it
 * does not fit, starts a new chunk (a large request gets a chunk of its own, so big blocks do not
 * waste a whole default chunk). Nothing is freed until tsdb_arena_reset or tsdb_arena_fini.
 * All returned pointers are 16-byte aligned. A zeroed tsdb_arena behaves like one initialised
 * with chunk_size 0.
 */
#include "tsdb/base.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN         16
#define ARENA_DEFAULT_CHUNK (64 * 1024)

struct tsdb_arena_chunk {
    struct tsdb_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    /* followed by the data, aligned */
};

#define CHUNK_HDR ((sizeof(struct tsdb_arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

void tsdb_arena_init(tsdb_arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->cur = a->end = NULL;
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    a->used = 0;
}

static void *arena_new_chunk(tsdb_arena *a, size_t size)
{
    size_t cs = a->chunk_size ? a->chunk_size : ARENA_DEFAULT_CHUNK;
    int own = size > cs / 4; /* large: dedicated chunk, keep bumping in the current one */
    size_t data = own ? size : cs;
    if (data > SIZE_MAX - CHUNK_HDR)
        abort();
    struct tsdb_arena_chunk *c = xmalloc(CHUNK_HDR + data);
    c->size = data;
    char *p = (char *)c + CHUNK_HDR;
    if (own && a->head != NULL) {
        /* Link behind the head so the head's free space stays usable. */
        c->next = a->head->next;
        a->head->next = c;
        return p;
    }
    c->next = a->head;
    a->head = c;
    a->cur = p + size;
    a->end = p + data;
    return p;
}

void *tsdb_arena_alloc(tsdb_arena *a, size_t size)
{
    size_t n = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n < size)
        abort();
    if (n == 0)
        n = ARENA_ALIGN;
    a->used += n;
    if (a->cur != NULL && (size_t)(a->end - a->cur) >= n) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return arena_new_chunk(a, n);
}

void *tsdb_arena_calloc(tsdb_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        abort();
    void *p = tsdb_arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

void *tsdb_arena_realloc(tsdb_arena *a, void *p, size_t old_size, size_t new_size)
{
    if (new_size <= old_size && p != NULL)
        return p;
    void *q = tsdb_arena_alloc(a, new_size);
    if (p != NULL && old_size)
        memcpy(q, p, old_size < new_size ? old_size : new_size);
    return q;
}

char *tsdb_arena_strndup(tsdb_arena *a, const char *s, size_t n)
{
    char *p = tsdb_arena_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

tsdb_str tsdb_arena_str(tsdb_arena *a, tsdb_str s)
{
    tsdb_str r = {tsdb_arena_strndup(a, s.p, s.len), s.len};
    return r;
}

char *tsdb_arena_sprintf(tsdb_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = tsdb_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t tsdb_arena_used(const tsdb_arena *a)
{
    return a->used;
}

void tsdb_arena_reset(tsdb_arena *a)
{
    struct tsdb_arena_chunk *keep = NULL, *c = a->head;
    while (c != NULL) {
        struct tsdb_arena_chunk *next = c->next;
        if (keep == NULL && c->size == (a->chunk_size ? a->chunk_size : ARENA_DEFAULT_CHUNK))
            keep = c;
        else
            free(c);
        c = next;
    }
    a->head = keep;
    a->used = 0;
    if (keep != NULL) {
        keep->next = NULL;
        a->cur = (char *)keep + CHUNK_HDR;
        a->end = a->cur + keep->size;
    } else {
        a->cur = a->end = NULL;
    }
}

void tsdb_arena_fini(tsdb_arena *a)
{
    struct tsdb_arena_chunk *c = a->head;
    while (c != NULL) {
        struct tsdb_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
}
