/* api/params.c -- query-string/form decoding and Prometheus time and duration parameters.
 *
 * Everything decoded lands in the request arena, so handlers can keep tsdb_str views for the
 * whole request. Numbers are parsed with strtod on a NUL-terminated copy after rejecting the
 * forms Go's ParseFloat refuses but strtod accepts (leading/trailing space).
 */
#include "api/params.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Form decoding --------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into the arena; returns 0 or -1 on a bad escape. */
static int unescape(tsdb_arena *a, const char *s, size_t n, tsdb_str *out)
{
    char *d = tsdb_arena_alloc(a, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            d[o++] = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            d[o++] = (char)(h << 4 | l);
            i += 2;
        } else {
            d[o++] = c;
        }
    }
    d[o] = '\0';
    out->p = d;
    out->len = o;
    return 0;
}

static void params_push(api_params *p, tsdb_arena *a, tsdb_str k, tsdb_str v)
{
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 16;
        p->v = tsdb_arena_realloc(a, p->v, p->cap * sizeof *p->v, ncap * sizeof *p->v);
        p->cap = ncap;
    }
    p->v[p->n].name = k;
    p->v[p->n].value = v;
    p->n++;
}

int api__params_parse(api_params *p, tsdb_arena *a, const char *s, size_t len, tsdb_err *err)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && s[eq] != '=')
                eq++;
            tsdb_str k, v;
            if (unescape(a, s + i, eq - i, &k) != 0 ||
                unescape(a, eq < j ? s + eq + 1 : "", eq < j ? j - eq - 1 : 0, &v) != 0)
                return tsdb_errf(err, TSDB_EINVAL, (int)i, "invalid URL escape in \"%.*s\"",
                                 (int)(j - i > 64 ? 64 : j - i), s + i);
            params_push(p, a, k, v);
        }
        i = j + 1;
    }
    return TSDB_OK;
}

const tsdb_str *api__params_get(const api_params *p, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].name.len == nl && memcmp(p->v[i].name.p, name, nl) == 0)
            return &p->v[i].value;
    return NULL;
}

size_t api__params_all(const api_params *p, const char *name, tsdb_arena *a, tsdb_str **out)
{
    size_t nl = strlen(name), n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].name.len == nl && memcmp(p->v[i].name.p, name, nl) == 0)
            n++;
    *out = tsdb_arena_alloc(a, (n ? n : 1) * sizeof **out);
    n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].name.len == nl && memcmp(p->v[i].name.p, name, nl) == 0)
            (*out)[n++] = p->v[i].value;
    return n;
}

/* ---- Numbers -----------------------------------------------------------------------------------
 */

/* Go ParseFloat-compatible enough: decimal/hex floats, Inf/NaN spellings, no surrounding space. */
static int parse_float(tsdb_str s, double *out)
{
    char tmp[128];
    if (s.len == 0 || s.len >= sizeof tmp)
        return -1;
    if (isspace((unsigned char)s.p[0]) || isspace((unsigned char)s.p[s.len - 1]))
        return -1;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (end != tmp + s.len)
        return -1;
    /* strtod takes "nan(...)" and hex mantissas without a binary exponent; Go does not. */
    if (strchr(tmp, '(') != NULL)
        return -1;
    if ((strchr(tmp, 'x') || strchr(tmp, 'X')) && !strchr(tmp, 'p') && !strchr(tmp, 'P'))
        return -1;
    *out = v;
    return 0;
}

/* ---- Durations
 * ----------------------------------------------------------------------------------- */

int api__parse_duration(tsdb_str s, int64_t *ms, tsdb_err *err)
{
    double d;
    if (parse_float(s, &d) == 0) {
        double ns = d * 1e9;
        if (isnan(d) || ns >= 9223372036854775807.0 || ns < -9223372036854775808.0)
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "cannot parse \"%.*s\" to a valid duration. It overflows int64",
                             (int)(s.len > 64 ? 64 : s.len), s.p);
        /* Go: time.Duration(ns) truncates toward zero, then ms = d / time.Millisecond. */
        int64_t nsi = (int64_t)ns;
        *ms = nsi / 1000000;
        return TSDB_OK;
    }
    if (tsdb_duration_parse(s, ms) == TSDB_OK)
        return TSDB_OK;
    return tsdb_errf(err, TSDB_EINVAL, -1, "cannot parse \"%.*s\" to a valid duration",
                     (int)(s.len > 64 ? 64 : s.len), s.p);
}

/* ---- Times
 * --------------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm). */
static int parse_rfc3339(tsdb_str s, int64_t *ms)
{
    const char *p = s.p;
    size_t n = s.len;
    int Y, M, D, h, m, sec;
    if (n < 20 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't') || p[13] != ':' ||
        p[16] != ':')
        return -1;
    if (digits(p, 4, &Y) || digits(p + 5, 2, &M) || digits(p + 8, 2, &D) || digits(p + 11, 2, &h) ||
        digits(p + 14, 2, &m) || digits(p + 17, 2, &sec))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 59)
        return -1;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap)
        return -1;
    size_t i = 19;
    int64_t frac_ms = 0;
    if (i < n && p[i] == '.') {
        i++;
        size_t fs = i;
        int64_t scale = 100;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            frac_ms += (p[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == fs || i - fs > 9)
            return -1;
    }
    int64_t off_s = 0;
    if (i < n && (p[i] == 'Z' || p[i] == 'z') && i + 1 == n) {
        off_s = 0;
    } else if (i + 6 == n && (p[i] == '+' || p[i] == '-') && p[i + 3] == ':') {
        int oh, om;
        if (digits(p + i + 1, 2, &oh) || digits(p + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_s = (oh * 3600 + om * 60) * (p[i] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    int64_t secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec - off_s;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

int api__parse_time(tsdb_str s, int64_t *ms, tsdb_err *err)
{
    double f;
    if (parse_float(s, &f) == 0) {
        /* 9.2e15 s is where ms overflow int64; Prometheus' own range is far inside that. */
        if (!isfinite(f) || fabs(f) > 9.2e15)
            goto bad;
        double ip;
        double frac = modf(f, &ip);
        int64_t fr = (int64_t)llround(frac * 1000);
        *ms = (int64_t)ip * 1000 + fr;
        return TSDB_OK;
    }
    if (parse_rfc3339(s, ms) == 0)
        return TSDB_OK;
    /* Prometheus' formatted minTime/maxTime, which Go's parser cannot read back. */
    if (s.len == 26 && memcmp(s.p, "-292273086-05-16T16:47:06Z", 26) == 0) {
        *ms = API_TIME_MIN_MS;
        return TSDB_OK;
    }
    if (s.len == 35 && memcmp(s.p, "292277025-08-18T07:12:54.999999999Z", 35) == 0) {
        *ms = API_TIME_MAX_MS;
        return TSDB_OK;
    }
bad:
    return tsdb_errf(err, TSDB_EINVAL, -1, "cannot parse \"%.*s\" to a valid timestamp",
                     (int)(s.len > 64 ? 64 : s.len), s.p);
}
