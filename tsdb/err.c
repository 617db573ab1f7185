/* tsdb/err.c -- the error table and the optional error detail.
 *
 * Codes come from one X-macro (TSDB_ERR_MAP in tsdb/base.h), which generates the enum, the
 * names and the messages, so the three can never disagree.
 */
#include "tsdb/base.h"

#include <stdio.h>
#include <string.h>

static const char *const err_msgs[] = {
#define XX(name, msg) msg,
    TSDB_ERR_MAP(XX)
#undef XX
};

static const char *const err_names[] = {
#define XX(name, msg) "E" #name,
    TSDB_ERR_MAP(XX)
#undef XX
};

static int err_index(int code)
{
    if (code <= TSDB__ERR_FIRST || code >= TSDB__ERR_LAST)
        return -1;
    return code - TSDB__ERR_FIRST - 1;
}

const char *tsdb_strerror(int code)
{
    if (code == TSDB_OK)
        return "success";
    int i = err_index(code);
    return i < 0 ? "unknown error" : err_msgs[i];
}

const char *tsdb_errname(int code)
{
    if (code == TSDB_OK)
        return "OK";
    int i = err_index(code);
    return i < 0 ? "EUNKNOWN" : err_names[i];
}

__attribute__((format(printf, 4, 0))) static void err_vfill(tsdb_err *err, int code, int pos,
                                                            const char *fmt, va_list ap)
{
    err->code = code;
    err->pos = pos;
    if (fmt == NULL || fmt[0] == '\0') {
        snprintf(err->msg, sizeof(err->msg), "%s", tsdb_strerror(code));
        return;
    }
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int tsdb_errf(tsdb_err *err, int code, int pos, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err_vfill(err, code, pos, fmt, ap);
        va_end(ap);
    }
    return code;
}

int tsdb__corrupt(const char *file, int line, tsdb_err *err, const char *fmt, ...)
{
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tsdb_log(TSDB_LOG_ERROR, "corrupt", "%s (detected at %s:%d)", msg, file, line);
    return tsdb_errf(err, TSDB_ECORRUPT, -1, "%s", msg);
}

tsdb_str tsdb_str_c(const char *s)
{
    tsdb_str r = {s ? s : "", s ? strlen(s) : 0};
    return r;
}

int tsdb_str_eq(tsdb_str a, tsdb_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int tsdb_str_cmp(tsdb_str a, tsdb_str b)
{
    /* Label names in a set mostly differ in their first byte: decide those without memcmp. */
    if (a.len > 0 && b.len > 0 && a.p[0] != b.p[0])
        return (unsigned char)a.p[0] < (unsigned char)b.p[0] ? -1 : 1;
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}
