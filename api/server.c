/* api/server.c -- the HTTP server: libmicrohttpd in, api_req/api_resp out.
 *
 * The only file that includes microhttpd.h and zlib.h. The daemon runs its own polling thread
 * and a thread pool (MHD_USE_INTERNAL_POLLING_THREAD + MHD_OPTION_THREAD_POOL_SIZE); handlers
 * run on the pool threads. The listening socket is ours: one acceptor thread accepts and hands
 * each connection to microhttpd (MHD_add_connection), which gives it to one pool thread. (With
 * microhttpd's own listening socket every pool thread polls it, so each new connection woke the
 * whole pool, and all but one found nothing to accept.) Each connection's request has a state that
 * lives from the URI callback (where the raw query string is captured, before microhttpd decodes
 * it) to the request-completed callback, and owns the request arena and the body buffer:
 *
 *   uri_cb       state + arena created, raw URI copied
 *   access #1    headers known: 413 at once if Content-Length exceeds the limit
 *   access #2..n body chunks appended (bounded; beyond the limit the rest is discarded)
 *   access last  api_req built (headers, form body + query-string params), dispatched; the
 *                response body is gzip-compressed when the client accepts gzip and it is large
 *   completed    arena and body freed (after a streamed response ends, see below)
 *
 * Handlers with potentially large answers (query results, series, label values) leave a
 * producer instead of a body (api__resp_stream). If it finishes within WHOLE_MAX_BYTES (1 MiB)
 * the answer goes out whole as above (one send for headers and body, no chunk framing);
 * otherwise it is served with chunked transfer encoding, one 64 KiB chunk produced at a time
 * (the first megabyte already is) and, when the client accepts gzip, run through a streaming
 * deflate.
 * The producer reads the request arena, so the request state is reference-counted: freed when
 * both the connection is done and microhttpd has destroyed the response, whichever is last
 * (a client that hangs up mid-stream ends both).
 *
 * Basic auth (users with crypt(3) hashes, bcrypt "$2y$" through libxcrypt's crypt_r, loaded
 * with dlopen so the binary does not need -lcrypt; successful checks are cached) and TLS
 * (microhttpd's GnuTLS) are optional.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "api/http.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <zlib.h>
#include <crypt.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define GZIP_MIN_BYTES    1024
#define WHOLE_MAX_BYTES   ((size_t)1 << 20) /* produced answers up to this go out whole */
#define SERVER_TRIM_BYTES (8u << 20) /* return freed memory after requests larger than this */

struct api_server {
    struct MHD_Daemon *d;
    api_ctx ctx;
    uint16_t port;
    char *(*crypt_fn)(const char *, const char *, struct crypt_data *); /* crypt_r */
    void *crypt_lib;
    pthread_mutex_t crypt_mu; /* guards auth_cache */
    uint64_t auth_cache[16];  /* keyed hashes of recently verified user/password/hash */
    unsigned auth_cache_next;
    /* Disconnect watcher: sockets of requests whose handler is running. */
    pthread_mutex_t watch_mu; /* guards watch, n_watch, cap_watch, next_id */
    struct watch_entry *watch;
    size_t n_watch, cap_watch;
    uint64_t next_id;
    pthread_t watcher;
    int watcher_on;
    atomic_int stopping;
    /* Listening socket and its acceptor thread; wake[1] is written to stop it. */
    int lfd;
    int wake[2];
    pthread_t acceptor;
    int acceptor_on;
};

/* A running request's socket; the watcher sets *cancel when the peer hangs up, so the query
 * engine stops early (answered 499, as Prometheus does for canceled queries). */
typedef struct watch_entry {
    uint64_t id;
    int fd;
    volatile int *cancel;
} watch_entry;

typedef struct conn_state {
    atomic_int refs; /* the connection, plus a streamed response while it lives */
    tsdb_arena arena;
    const char *uri; /* raw, with the query string; in the arena */
    tsdb_buf body;
    int started;
    int too_large;
    volatile int cancel;
} conn_state;

/* ---- Callbacks ------------------------------------------------------------------------------- */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    conn_state *st = xcalloc(1, sizeof *st);
    atomic_init(&st->refs, 1);
    tsdb_arena_init(&st->arena, 0);
    tsdb_buf_init(&st->body);
    st->uri = tsdb_arena_strndup(&st->arena, uri ? uri : "/", uri ? strlen(uri) : 1);
    return st;
}

/* Frees the state with its arena once neither the connection nor a streamed response (whose
 * producer reads the arena) holds it; microhttpd may finish either first. */
static void conn_state_release(conn_state *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    size_t used = tsdb_arena_used(&st->arena) + st->body.cap;
    tsdb_arena_fini(&st->arena);
    tsdb_buf_fini(&st->body);
    free(st);
#ifdef __GLIBC__
    /* A large query or write leaves freed memory in malloc's heaps; give it back to the system
     * so the resident size after a heavy query falls back to the working set. */
    if (used > SERVER_TRIM_BYTES)
        malloc_trim(0);
#else
    (void)used;
#endif
}

static void completed_cb(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    conn_state *st = *con_cls;
    if (!st)
        return;
    *con_cls = NULL;
    conn_state_release(st);
}

typedef struct hdr_list {
    api_kv *v;
    size_t n, cap;
    tsdb_arena *a;
} hdr_list;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    hdr_list *h = cls;
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 32;
        h->v = tsdb_arena_realloc(h->a, h->v, h->cap * sizeof *h->v, ncap * sizeof *h->v);
        h->cap = ncap;
    }
    h->v[h->n].name = tsdb_str_c(key);
    h->v[h->n].value = tsdb_str_c(value);
    h->n++;
    return MHD_YES;
}

static int accepts_gzip(const api_req *r)
{
    const tsdb_str *ae = api__req_header(r, "Accept-Encoding");
    if (!ae)
        return 0;
    for (size_t i = 0; i + 4 <= ae->len; i++)
        if (strncasecmp(ae->p + i, "gzip", 4) == 0)
            return 1;
    return 0;
}

/* Replaces the body with its gzip encoding; returns 1 if it did. */
static int gzip_body(tsdb_buf *b)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    uLong cap = deflateBound(&zs, (uLong)b->len) + 32;
    unsigned char *out = xmalloc(cap);
    zs.next_in = b->p;
    zs.avail_in = (uInt)b->len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(out);
        return 0;
    }
    free(b->p);
    b->p = out;
    b->len = n;
    b->cap = cap;
    return 1;
}

/* A streamed body: the handler's producer fills `raw` a chunk at a time; microhttpd pulls it
 * (chunked transfer encoding) either as is or through a streaming gzip deflate. Holds a
 * reference on the request state, whose arena the producer reads. */
typedef struct stream {
    conn_state *st;
    api_fill_fn fill;
    void *ctx;
    void (*done)(void *ctx);
    tsdb_buf raw; /* produced, not yet sent (plain) or not yet compressed (gzip) */
    size_t off;   /* consumed part of raw */
    int eof;      /* the producer has finished */
    int gz, zend;
    z_stream zs;
} stream;

/* Makes raw hold unconsumed bytes unless the producer is done; returns the count available. */
static size_t stream_refill(stream *sm)
{
    if (sm->off < sm->raw.len || sm->eof)
        return sm->raw.len - sm->off;
    sm->raw.len = sm->off = 0;
    if (sm->fill(sm->ctx, &sm->raw, API_STREAM_CHUNK) == 0)
        sm->eof = 1;
    return sm->raw.len;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *sm = cls;
    if (max == 0)
        return 0;
    if (!sm->gz) {
        size_t n = stream_refill(sm);
        if (n == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n > max)
            n = max;
        memcpy(buf, sm->raw.p + sm->off, n);
        sm->off += n;
        return (ssize_t)n;
    }
    if (sm->zend)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uInt cap = max > (1u << 30) ? (1u << 30) : (uInt)max;
    sm->zs.next_out = (Bytef *)buf;
    sm->zs.avail_out = cap;
    /* Deflate buffers input until it has a block to emit, so keep feeding it: each round
     * either consumes produced bytes or finishes, and the producer's output is finite. */
    for (;;) {
        size_t n = stream_refill(sm);
        size_t take = n > (1u << 30) ? (1u << 30) : n;
        sm->zs.next_in = sm->raw.p + sm->off;
        sm->zs.avail_in = (uInt)take;
        int rc = deflate(&sm->zs, sm->eof ? Z_FINISH : Z_NO_FLUSH);
        sm->off += take - sm->zs.avail_in;
        if (rc == Z_STREAM_END)
            sm->zend = 1;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        size_t out = cap - sm->zs.avail_out;
        if (out > 0 || sm->zend)
            return out > 0 ? (ssize_t)out : MHD_CONTENT_READER_END_OF_STREAM;
        if (rc == Z_BUF_ERROR && sm->eof)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* no progress possible */
    }
}

static void stream_free(void *cls)
{
    stream *sm = cls;
    if (sm->done)
        sm->done(sm->ctx);
    if (sm->gz)
        deflateEnd(&sm->zs);
    tsdb_buf_fini(&sm->raw);
    conn_state_release(sm->st);
    free(sm);
}

static void add_headers(struct MHD_Response *resp, const api_resp *w, int gz)
{
    if (w->content_type)
        MHD_add_response_header(resp, "Content-Type", w->content_type);
    if (gz) {
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
        MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    }
    for (size_t i = 0; i < w->n_headers; i++)
        MHD_add_response_header(resp, w->headers[i].name.p, w->headers[i].value.p);
}

static enum MHD_Result send_resp(struct MHD_Connection *con, api_resp *w, int gzip_ok,
                                 conn_state *st)
{
    if (w->fill) {
        /* Run the producer up to WHOLE_MAX_BYTES: a body that ends within it goes out whole
         * below (with a Content-Length); a longer one is streamed. */
        int more = 1;
        while (more && w->body.len < WHOLE_MAX_BYTES)
            more = w->fill(w->fill_ctx, &w->body, API_STREAM_CHUNK) > 0;
        if (!more || !st) {
            while (more)
                more = w->fill(w->fill_ctx, &w->body, API_STREAM_CHUNK) > 0;
            if (w->fill_done)
                w->fill_done(w->fill_ctx);
            w->fill = NULL;
            w->fill_done = NULL;
        }
    }
    if (w->fill) {
        stream *sm = xcalloc(1, sizeof *sm);
        sm->fill = w->fill;
        sm->ctx = w->fill_ctx;
        sm->done = w->fill_done;
        sm->raw = w->body; /* taken over: the first chunk */
        tsdb_buf_init(&w->body);
        w->fill = NULL;
        w->fill_done = NULL;
        sm->gz = gzip_ok && !w->no_compress &&
                 deflateInit2(&sm->zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
        sm->st = st;
        atomic_fetch_add(&st->refs, 1);
        /* From here on stream_free releases everything, also when creation fails. */
        struct MHD_Response *resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, API_STREAM_CHUNK, stream_read, sm, stream_free);
        if (!resp) {
            stream_free(sm);
            return MHD_NO;
        }
        add_headers(resp, w, sm->gz);
        enum MHD_Result ret = MHD_queue_response(con, (unsigned)w->status, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    int gz = 0;
    if (gzip_ok && !w->no_compress && w->body.len >= GZIP_MIN_BYTES &&
        w->body.len < ((size_t)1 << 31))
        gz = gzip_body(&w->body);
    struct MHD_Response *resp;
    if (w->body.len > 0) {
        resp = MHD_create_response_from_buffer_with_free_callback(w->body.len, w->body.p, free);
        w->body.p = NULL; /* handed over */
        w->body.len = w->body.cap = 0;
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    add_headers(resp, w, gz);
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)w->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_simple(struct MHD_Connection *con, int status, const char *type,
                                   const char *msg)
{
    api_resp w;
    api__resp_init(&w);
    if (type && !strcmp(type, "error"))
        api__resp_error(&w, status, status == 413 ? "bad_data" : "unavailable", "%s", msg);
    else
        api__resp_text(&w, status, "text/plain; charset=utf-8", msg);
    enum MHD_Result r = send_resp(con, &w, 0, NULL);
    api__resp_fini(&w);
    return r;
}

/* bcrypt costs tens of milliseconds by design, so successful checks are remembered by a keyed
 * hash of user, password and stored hash (as Prometheus' exporter-toolkit does). */
static uint64_t auth_key(const char *user, const char *pass, const char *hash)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_buf_puts(&b, user);
    tsdb_buf_putc(&b, 0);
    tsdb_buf_puts(&b, pass);
    tsdb_buf_putc(&b, 0);
    tsdb_buf_puts(&b, hash);
    uint64_t k = tsdb_hash(b.p, b.len);
    tsdb_buf_fini(&b);
    return k;
}

static int check_auth(api_server *s, struct MHD_Connection *con)
{
    if (s->ctx.opts.n_auth_users == 0)
        return 1;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(con, &pass);
    int ok = 0;
    if (user && pass && s->crypt_fn) {
        for (size_t i = 0; i < s->ctx.opts.n_auth_users && !ok; i++) {
            if (strcmp(s->ctx.opts.auth_users[2 * i], user) != 0)
                continue;
            const char *hash = s->ctx.opts.auth_users[2 * i + 1];
            uint64_t key = auth_key(user, pass, hash);
            pthread_mutex_lock(&s->crypt_mu);
            for (int k = 0; k < 16; k++)
                if (s->auth_cache[k] == key)
                    ok = 1;
            pthread_mutex_unlock(&s->crypt_mu);
            if (ok)
                break;
            struct crypt_data *cd = xcalloc(1, sizeof *cd);
            const char *got = s->crypt_fn(pass, hash, cd);
            ok = got && got[0] != '*' && strlen(got) == strlen(hash) && strcmp(got, hash) == 0;
            free(cd);
            if (ok) {
                pthread_mutex_lock(&s->crypt_mu);
                s->auth_cache[s->auth_cache_next++ % 16] = key;
                pthread_mutex_unlock(&s->crypt_mu);
            }
        }
    }
    if (user)
        MHD_free(user);
    if (pass)
        MHD_free(pass);
    return ok;
}

/* ---- Disconnect watcher -------------------------------------------------------------------------
 */

static uint64_t watch_add(api_server *s, int fd, volatile int *cancel)
{
    pthread_mutex_lock(&s->watch_mu);
    if (s->n_watch == s->cap_watch) {
        s->cap_watch = s->cap_watch ? 2 * s->cap_watch : 64;
        s->watch = xrealloc(s->watch, s->cap_watch * sizeof *s->watch);
    }
    uint64_t id = ++s->next_id;
    s->watch[s->n_watch++] = (watch_entry){id, fd, cancel};
    pthread_mutex_unlock(&s->watch_mu);
    return id;
}

static void watch_remove(api_server *s, uint64_t id)
{
    pthread_mutex_lock(&s->watch_mu);
    for (size_t i = 0; i < s->n_watch; i++) {
        if (s->watch[i].id == id) {
            s->watch[i] = s->watch[--s->n_watch];
            break;
        }
    }
    pthread_mutex_unlock(&s->watch_mu);
}

/* Every 100 ms: poll the watched sockets without waiting; a readable socket whose peek reads 0
 * bytes (or an error/hang-up) belongs to a client that went away. Everything happens under the
 * lock, and a handler removes its entry (under the lock) before microhttpd can close the socket,
 * so the watcher never touches a closed or reused descriptor or a finished request's memory. */
static void *watcher_main(void *arg)
{
    api_server *s = arg;
    size_t cap = 0;
    struct pollfd *pf = NULL;
    while (!atomic_load(&s->stopping)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->watch_mu);
        size_t n = s->n_watch;
        if (n > cap) {
            cap = n * 2;
            pf = xrealloc(pf, cap * sizeof *pf);
        }
        for (size_t i = 0; i < n; i++)
            pf[i] = (struct pollfd){s->watch[i].fd, POLLIN, 0};
        if (n > 0 && poll(pf, (nfds_t)n, 0) > 0) {
            for (size_t i = 0; i < n; i++) {
                if (!pf[i].revents)
                    continue;
                int gone = (pf[i].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
                if (!gone && (pf[i].revents & POLLIN)) {
                    char c;
                    gone = recv(pf[i].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
                }
                if (gone)
                    *s->watch[i].cancel = 1;
            }
        }
        pthread_mutex_unlock(&s->watch_mu);
    }
    free(pf);
    return NULL;
}

static int is_form(const api_req *r)
{
    const tsdb_str *ct = api__req_header(r, "Content-Type");
    return ct && ct->len >= 33 && strncasecmp(ct->p, "application/x-www-form-urlencoded", 33) == 0;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    api_server *s = cls;
    conn_state *st = *con_cls;
    if (!st)
        return MHD_NO;
    if (!st->started) {
        st->started = 1;
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY)
            return send_simple(con, 413, "error", "request body too large");
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (st->body.len + *upload_data_size > API_MAX_BODY)
            st->too_large = 1;
        else
            tsdb_buf_put(&st->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_large)
        return send_simple(con, 413, "error", "request body too large");
    if (!check_auth(s, con)) {
        api_resp w;
        api__resp_init(&w);
        api__resp_text(&w, 401, "text/plain; charset=utf-8", "Unauthorized\n");
        api__resp_header(&w, "WWW-Authenticate", "Basic");
        enum MHD_Result r = send_resp(con, &w, 0, NULL);
        api__resp_fini(&w);
        return r;
    }

    api_req r;
    memset(&r, 0, sizeof r);
    r.arena = &st->arena;
    r.method = method;
    r.cancel = &st->cancel;
    r.can_stream = 1;
    hdr_list h = {NULL, 0, 0, &st->arena};
    MHD_get_connection_values(con, MHD_HEADER_KIND, collect_header, &h);
    r.headers = h.v;
    r.n_headers = h.n;
    r.body = st->body.len ? st->body.p : NULL;
    r.body_len = st->body.len;

    tsdb_str path = tsdb_str_c(url);
    const char *q = strchr(st->uri, '?');
    if (path.len >= 11 && memcmp(path.p, "/prometheus", 11) == 0 &&
        (path.len == 11 || path.p[11] == '/')) {
        path.p += 11;
        path.len -= 11;
    }
    r.path = path;

    api_resp w;
    api__resp_init(&w);
    tsdb_err e = {0};
    int perr = 0;
    if (is_form(&r) && strcmp(method, "POST") == 0 && st->body.len > 0)
        perr = api__params_parse(&r.params, r.arena, (const char *)st->body.p, st->body.len, &e);
    if (perr == 0 && q)
        perr = api__params_parse(&r.params, r.arena, q + 1, strlen(q + 1), &e);
    if (perr != 0) {
        api__resp_error(&w, 400, "bad_data", "%s", e.msg);
    } else {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        uint64_t wid = ci && s->watcher_on ? watch_add(s, ci->connect_fd, &st->cancel) : 0;
        api__dispatch(&s->ctx, &r, &w);
        if (wid)
            watch_remove(s, wid);
    }
    if (tsdb_log_get_level() <= TSDB_LOG_DEBUG)
        TSDB_LOG_DEBUG("http", "%s %.*s %d %s%zu bytes", method,
                       (int)(r.path.len > 200 ? 200 : r.path.len), r.path.p, w.status,
                       w.fill ? "produced, " : "", w.body.len);
    enum MHD_Result ret = send_resp(con, &w, accepts_gzip(&r), st);
    api__resp_fini(&w);
    return ret;
}

/* ---- Acceptor ----------------------------------------------------------------------------------
 */

/* Accepts connections and hands them to microhttpd until woken through s->wake. The listening
 * socket is non-blocking: each wake-up drains the pending connections (bounded per round). */
static void *acceptor_main(void *arg)
{
    api_server *s = arg;
    struct pollfd pf[2] = {{s->lfd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
    for (;;) {
        int r = poll(pf, 2, 1000);
        if (r > 0 && pf[1].revents)
            break; /* acceptor_stop */
        if (r <= 0 || !(pf[0].revents & POLLIN))
            continue; /* timeout or EINTR */
        for (int i = 0; i < 256; i++) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    /* Out of descriptors or memory: let connections finish, then retry. */
                    struct timespec ts = {0, 10000000};
                    nanosleep(&ts, NULL);
                }
                break;
            }
            /* Closes the socket itself when it cannot take it (connection limit). */
            MHD_add_connection(s->d, fd, (struct sockaddr *)&ss, sl);
        }
    }
    return NULL;
}

/* Opens the listening socket on ss; returns 0 or -1 (errno set). */
static int listen_on(api_server *s, const struct sockaddr_storage *ss, socklen_t sl, int v6)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, sl) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        s->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)(void *)&got)->sin_port);
    s->lfd = fd;
    return 0;
}

static void acceptor_stop(api_server *s)
{
    if (s->acceptor_on) {
        ssize_t w = write(s->wake[1], "x", 1);
        (void)w;
        pthread_join(s->acceptor, NULL);
        s->acceptor_on = 0;
    }
    if (s->lfd >= 0)
        close(s->lfd);
    s->lfd = -1;
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    s->wake[0] = s->wake[1] = -1;
}

/* ---- Start / stop --------------------------------------------------------------------------- */

static int parse_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss, socklen_t *len,
                      int *v6)
{
    memset(ss, 0, sizeof *ss);
    *v6 = 0;
    if (!addr || !*addr)
        addr = "0.0.0.0";
    char host[128];
    snprintf(host, sizeof host, "%s", addr);
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof *s4;
        return 0;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof *s6;
        *v6 = 1;
        return 0;
    }
    /* A host name: the first address it resolves to. */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    int rc = -1;
    if (res->ai_family == AF_INET && res->ai_addrlen <= sizeof *ss) {
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        s4->sin_port = htons(port);
        *len = sizeof *s4;
        rc = 0;
    } else if (res->ai_family == AF_INET6 && res->ai_addrlen <= sizeof *ss) {
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        s6->sin6_port = htons(port);
        *len = sizeof *s6;
        *v6 = 1;
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    TSDB_LOG_WARN("http", "%s", msg);
}

int api_server_start(tsdb *db, const api_opts *o, api_server **out, tsdb_err *err)
{
    api_server *s = xcalloc(1, sizeof *s);
    api__ctx_init(&s->ctx, db, o);
    s->lfd = s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->crypt_mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    const api_opts *op = &s->ctx.opts;
    int rc = TSDB_OK;

    if (op->n_auth_users > 0) {
        s->crypt_lib = dlopen("libcrypt.so.1", RTLD_NOW);
        if (s->crypt_lib)
            *(void **)&s->crypt_fn = dlsym(s->crypt_lib, "crypt_r");
        if (!s->crypt_fn) {
            rc = tsdb_errf(err, TSDB_EINVAL, -1,
                           "basic auth needs crypt(3) from libcrypt.so.1, which is unavailable");
            goto fail;
        }
    }

    struct sockaddr_storage ss;
    socklen_t sl;
    int v6;
    if (parse_addr(op->addr, op->port, &ss, &sl, &v6) < 0) {
        rc = tsdb_errf(err, TSDB_EINVAL, -1, "invalid listen address \"%s\"",
                       op->addr ? op->addr : "");
        goto fail;
    }
    unsigned threads = op->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? 2 * (unsigned)n : 4;
        /* A handler blocks its pool thread and every connection bound to it; enough threads
         * keep a slow query from stalling /-/healthy and the other clients. */
        if (threads < 16)
            threads = 16;
    }
    unsigned conns = op->max_connections ? op->max_connections : 512;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (listen_on(s, &ss, sl, v6) < 0) {
        rc = tsdb_errf(err, TSDB_EIO, -1, "cannot listen on %s:%u (address in use or not allowed)",
                       op->addr ? op->addr : "0.0.0.0", (unsigned)op->port);
        goto fail;
    }
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        s->wake[0] = s->wake[1] = -1;
        rc = tsdb_errf(err, TSDB_EIO, errno, "cannot create the acceptor's wake-up pipe");
        goto fail;
    }
    if (op->tls_cert_pem && op->tls_key_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = tsdb_errf(err, TSDB_EINVAL, -1, "TLS requested but libmicrohttpd lacks TLS");
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)op->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)op->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, NULL}};
    /* The watcher runs before the first request can arrive. */
    s->watcher_on = pthread_create(&s->watcher, NULL, watcher_main, s) == 0;
    s->d =
        MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                         MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, conns,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_URI_LOG_CALLBACK,
                         uri_cb, s, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_ARRAY,
                         (flags & MHD_USE_TLS) ? tls_opts : no_opts, MHD_OPTION_END);
    if (!s->d) {
        rc = tsdb_errf(err, TSDB_EIO, -1, "cannot start the HTTP server on %s:%u",
                       op->addr ? op->addr : "0.0.0.0", (unsigned)op->port);
        goto fail;
    }
    s->acceptor_on = pthread_create(&s->acceptor, NULL, acceptor_main, s) == 0;
    if (!s->acceptor_on) {
        rc = tsdb_errf(err, TSDB_EIO, -1, "cannot start the acceptor thread");
        goto fail;
    }
    *out = s;
    return TSDB_OK;
fail:
    acceptor_stop(s);
    if (s->d)
        MHD_stop_daemon(s->d);
    atomic_store(&s->stopping, 1);
    if (s->watcher_on)
        pthread_join(s->watcher, NULL);
    if (s->crypt_lib)
        dlclose(s->crypt_lib);
    pthread_mutex_destroy(&s->crypt_mu);
    pthread_mutex_destroy(&s->watch_mu);
    api__ctx_fini(&s->ctx);
    free(s);
    return rc;
}

void api_server_attach(api_server *s, tsdb *db, ingest_scraper *scraper)
{
    if (scraper)
        s->ctx.opts.scraper = scraper; /* published by the release in api__ctx_attach */
    api__ctx_attach(&s->ctx, db);
}

uint16_t api_server_port(const api_server *s)
{
    return s ? s->port : 0;
}

int api_server_reload(api_server *s, tsdb_err *err)
{
    return api__reload(&s->ctx, err);
}

void api_server_stop(api_server *s)
{
    if (!s)
        return;
    acceptor_stop(s); /* no new connections */
    if (s->d)
        MHD_stop_daemon(s->d);
    atomic_store(&s->stopping, 1);
    if (s->watcher_on)
        pthread_join(s->watcher, NULL);
    free(s->watch);
    pthread_mutex_destroy(&s->watch_mu);
    api__meta_clear();
    if (s->crypt_lib)
        dlclose(s->crypt_lib);
    pthread_mutex_destroy(&s->crypt_mu);
    api__ctx_fini(&s->ctx);
    free(s);
}
