/* tools/cairnctl.c -- the operator's command-line tool: entry point and shared helpers.
 *
 * Shaped like promtool: `cairnctl tsdb list|analyze|dump|verify|import` works on a data
 * directory without a server (read-only, safe beside a live one), `cairnctl query ...` talks to
 * a running server's HTTP API, and `cairnctl bench write` is a bounded remote-write load
 * generator. Each family lives in its own file.
 */
#include "tools/cairnctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: cairnctl <command> [<args>]\n"
               "\n"
               "Data directory (no server needed; read-only, safe beside a running server):\n"
               "  tsdb list DIR                 blocks, head and WAL of a data directory\n"
               "  tsdb analyze DIR              cardinality: series by metric, label churn\n"
               "  tsdb dump DIR                 samples, as OpenMetrics text or JSON\n"
               "  tsdb verify DIR               check every CRC, the index and the WAL\n"
               "  tsdb import openmetrics FILE DIR   backfill blocks from an OpenMetrics file\n"
               "\n"
               "Server (HTTP API):\n"
               "  query instant URL EXPR        evaluate an instant query\n"
               "  query range URL EXPR          evaluate a range query\n"
               "  query series URL --match=SEL  list series\n"
               "  query labels URL NAME         list values of a label\n"
               "  bench write URL               remote-write load generator\n"
               "\n"
               "  --help                        this text; `cairnctl <command> --help` for more\n"
               "  --version                     print the version\n");
}

int cairnctl_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
        return 0;
    if (a[2 + n] == '=') {
        *val = a + 3 + n;
        return 1;
    }
    if (a[2 + n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "cairnctl: --%s needs a value\n", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int cairnctl_parse_duration(const char *s, int64_t *ms)
{
    if (*s == '\0')
        return -1;
    char *end;
    double secs = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!(secs >= 0) || secs > 9.2e15)
            return -1;
        *ms = (int64_t)(secs * 1000 + 0.5);
        return 0;
    }
    return tsdb_duration_parse(tsdb_str_c(s), ms) == TSDB_OK ? 0 : -1;
}

int cairnctl_parse_time(const char *s, int64_t *ms)
{
    if (strncmp(s, "now", 3) == 0) {
        int64_t now = tsdb_now_ms(), d = 0;
        if (s[3] == '\0') {
            *ms = now;
            return 0;
        }
        if ((s[3] != '-' && s[3] != '+') || cairnctl_parse_duration(s + 4, &d) != 0)
            return -1;
        *ms = s[3] == '-' ? now - d : now + d;
        return 0;
    }
    char *end;
    double secs = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!(secs > -9.2e15 && secs < 9.2e15))
            return -1;
        double m = secs * 1000;
        *ms = (int64_t)(m < 0 ? m - 0.5 : m + 0.5);
        return 0;
    }
    /* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        int64_t scale = 100;
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
            return -1;
        off = (oh * 60 + om) * 60000LL * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    /* Days since the epoch by the civil-from-days inverse (no timegm in C11/POSIX). */
    int64_t y = tm.tm_year + 1900, mo = tm.tm_mon + 1, d = tm.tm_mday;
    y -= mo <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    *ms =
        ((days * 24 + tm.tm_hour) * 60 + tm.tm_min) * 60000LL + tm.tm_sec * 1000LL + frac_ms - off;
    return 0;
}

int main(int argc, char **argv)
{
    tsdb_log_set_level(TSDB_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("cairnctl %s\n", CAIRN_VERSION);
        return 0;
    }
    if (strcmp(cmd, "query") == 0)
        return cairnctl_query(argc - 1, argv + 1);
    if (strcmp(cmd, "tsdb") == 0)
        return cairnctl_tsdb(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) {
        if (argc >= 3 && strcmp(argv[2], "write") == 0)
            return cairnctl_bench_write(argc - 2, argv + 2);
        fprintf(stderr, "cairnctl: usage: cairnctl bench write URL [options]\n");
        return 2;
    }
    fprintf(stderr, "cairnctl: unknown command %s\n", cmd);
    usage(stderr);
    return 2;
}
