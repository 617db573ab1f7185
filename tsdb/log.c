/* tsdb/log.c -- leveled logging to stderr, in logfmt (default) or JSON lines.
 *
 *   ts=2026-11-25T12:00:00.000Z level=info component=wal msg="replayed 3 segments"
 *
 * One line per call, written with a single fwrite so lines from threads do not interleave.
 */
#include "tsdb/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static volatile int log_level = TSDB_LOG_INFO;
static volatile int log_json;

void tsdb_log_set_level(enum tsdb_log_level lvl)
{
    log_level = (int)lvl;
}

enum tsdb_log_level tsdb_log_get_level(void)
{
    return (enum tsdb_log_level)log_level;
}

void tsdb_log_set_json(int on)
{
    log_json = on;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int tsdb_log_parse_level(const char *s, enum tsdb_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum tsdb_log_level)i;
            return TSDB_OK;
        }
    }
    return TSDB_EINVAL;
}

/* Appends s to out as a quoted string with ", \ and control characters escaped. */
static size_t log_quote(char *out, size_t cap, size_t n, const char *s)
{
    if (n < cap)
        out[n++] = '"';
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (n < cap)
        out[n++] = '"';
    return n;
}

void tsdb_log(enum tsdb_log_level lvl, const char *component, const char *fmt, ...)
{
    if ((int)lvl < log_level)
        return;
    char msg[1024], line[2300], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tn = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tn, sizeof(ts) - tn, ".%03ldZ", now.tv_nsec / 1000000);

    const char *lname = level_names[lvl <= TSDB_LOG_ERROR ? lvl : TSDB_LOG_ERROR];
    size_t n;
    if (log_json) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, lname);
        n = log_quote(line, sizeof(line) - 4, n, component ? component : "");
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":");
        n = log_quote(line, sizeof(line) - 4, n, msg);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "}\n");
    } else {
        n = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s component=%s msg=", ts, lname,
                             component ? component : "-");
        n = log_quote(line, sizeof(line) - 2, n, msg);
        line[n++] = '\n';
    }
    if (n > sizeof(line))
        n = sizeof(line);
    fwrite(line, 1, n, stderr);
}
