/* query/literal.c -- PromQL literals: numbers, durations and strings.
 *
 * Numbers follow Prometheus 2.42, which tries Go's strconv.ParseInt(s, 0, 64) first (so "0x1F"
 * is 31 and a leading 0 means octal: "010" is 8) and falls back to ParseFloat (decimal with
 * optional exponent, "Inf", "NaN"). Durations follow model.ParseDuration: digit groups with
 * units y w d h m s ms in that order, each at most once, "0" alone allowed, at most what an
 * int64 of nanoseconds holds (about 292 years). Strings are unquoted as Go does: escapes
 * \a \b \f \n \r \t \v \\ \' \" \ooo \xhh \uhhhh \Uhhhhhhhh; raw `...` strings drop
 * carriage returns. The lexer has already validated every escape.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/parse.h"
#include "query/query.h"
#include "tsdb/base.h"

/* ---- Literals ------------------------------------------------------------------------------ */

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

/* Go's strconv.ParseInt(s, 0, 64) for what the lexer can produce: 0x hex, 0 octal, decimal.
 * 1 on success. */
static int parse_int_base0(const char *s, size_t len, double *out)
{
    unsigned base = 10;
    size_t i = 0;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
        if (len == 2)
            return 0;
    } else if (len >= 2 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    if (i >= len)
        return len == 1 && s[0] == '0' ? (*out = 0, 1) : 0;
    uint64_t v = 0;
    for (; i < len; i++) {
        int d = hexval((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base)
            return 0;
        if (v > (uint64_t)INT64_MAX / base)
            return 0;
        v = v * base + (unsigned)d;
        if (v > (uint64_t)INT64_MAX)
            return 0;
    }
    *out = (double)v;
    return 1;
}

int query__parse_number(const char *s, size_t len, double *out, char *msg, size_t msg_cap)
{
    char buf[128];
    if (len == 0 || len >= sizeof buf) {
        snprintf(msg, msg_cap, "error parsing number: strconv.ParseFloat: parsing \"%.*s\": %s",
                 (int)(len > 40 ? 40 : len), s, len ? "value out of range" : "invalid syntax");
        return -1;
    }
    if (parse_int_base0(s, len, out))
        return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    /* Go's ParseFloat: [+-] inf|infinity|nan, or a decimal mantissa with optional exponent.
     * Hexadecimal floats need a 'p' exponent, which the lexer never produces. */
    const char *q = buf;
    int neg = 0;
    if (*q == '+' || *q == '-')
        neg = *q++ == '-';
    if (strcasecmp(q, "inf") == 0 || strcasecmp(q, "infinity") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(q, "nan") == 0) {
        *out = NAN;
        return 0;
    }
    size_t digits = 0;
    const char *r = q;
    while (*r >= '0' && *r <= '9')
        r++, digits++;
    if (*r == '.') {
        r++;
        while (*r >= '0' && *r <= '9')
            r++, digits++;
    }
    int ok = digits > 0;
    if (ok && (*r == 'e' || *r == 'E')) {
        r++;
        if (*r == '+' || *r == '-')
            r++;
        if (!(*r >= '0' && *r <= '9'))
            ok = 0;
        while (*r >= '0' && *r <= '9')
            r++;
    }
    if (!ok || *r != 0) {
        snprintf(msg, msg_cap,
                 "error parsing number: strconv.ParseFloat: parsing \"%s\": invalid syntax", buf);
        return -1;
    }
    double v = strtod(buf, NULL);
    if (isinf(v)) {
        snprintf(msg, msg_cap,
                 "error parsing number: strconv.ParseFloat: parsing \"%s\": value out of range",
                 buf);
        return -1;
    }
    *out = v;
    return 0;
}

int query__parse_duration_msg(const char *s, size_t len, int64_t *ms, char *msg, size_t msg_cap)
{
    /* Units in the only order allowed, each at most once. */
    static const struct {
        const char *u;
        int64_t mult;
    } units[] = {
        {"y", 365LL * 24 * 3600 * 1000},
        {"w", 7LL * 24 * 3600 * 1000},
        {"d", 24LL * 3600 * 1000},
        {"h", 3600LL * 1000},
        {"m", 60LL * 1000},
        {"s", 1000},
        {"ms", 1},
    };
    /* time.Duration holds nanoseconds in an int64: about 292 years. */
    const int64_t max_ms = INT64_MAX / 1000000;
    if (len == 1 && s[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (len == 0) {
        snprintf(msg, msg_cap, "empty duration string");
        return -1;
    }
    size_t i = 0;
    int next_unit = 0;
    int64_t total = 0;
    int overflow = 0;
    while (i < len) {
        size_t d0 = i;
        uint64_t n = 0;
        int big = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n > (UINT64_MAX - 9) / 10)
                big = 1;
            else
                n = n * 10 + (uint64_t)(s[i] - '0');
            i++;
        }
        if (i == d0 || i == len)
            goto bad;
        int u;
        if (s[i] == 'm' && i + 1 < len && s[i + 1] == 's') {
            u = 6;
            i += 2;
        } else {
            const char *pos = strchr("ywdhms", s[i]);
            if (!pos || !*pos)
                goto bad;
            u = (int)(pos - "ywdhms");
            i++;
        }
        if (u < next_unit)
            goto bad;
        next_unit = u + 1;
        if (big || n > (uint64_t)(max_ms / units[u].mult)) {
            overflow = 1;
            continue;
        }
        total += (int64_t)n * units[u].mult;
        if (total > max_ms)
            overflow = 1;
    }
    if (overflow) {
        snprintf(msg, msg_cap, "duration out of range");
        return -1;
    }
    *ms = total;
    return 0;
bad:
    snprintf(msg, msg_cap, "not a valid duration string: \"%.*s\"", (int)(len > 60 ? 60 : len), s);
    return -1;
}

int query_parse_duration(const char *s, size_t len, int64_t *ms)
{
    char msg[100];
    int64_t v;
    if (!s || query__parse_duration_msg(s, len, &v, msg, sizeof msg) < 0)
        return TSDB_EINVAL;
    *ms = v;
    return 0;
}

static void put_utf8(char *out, size_t *o, unsigned cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xf0 | cp >> 18);
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
}

tsdb_str query__unquote(tsdb_arena *a, const char *s, size_t len)
{
    /* The unquoted text is never longer than the quoted one. */
    char *out = tsdb_arena_alloc(a, len + 1);
    size_t o = 0;
    if (len < 2) {
        out[0] = 0;
        return (tsdb_str){out, 0};
    }
    char quote = s[0];
    const char *p = s + 1, *end = s + len - 1;
    if (quote == '`') {
        for (; p < end; p++) {
            if (*p != '\r')
                out[o++] = *p;
        }
        out[o] = 0;
        return (tsdb_str){out, o};
    }
    while (p < end) {
        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        p++;
        if (p >= end)
            break;
        char c = *p++;
        switch (c) {
        case 'a':
            out[o++] = '\a';
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'v':
            out[o++] = '\v';
            break;
        case 'x':
        case 'u':
        case 'U': {
            int n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            unsigned v = 0;
            for (int k = 0; k < n && p < end; k++)
                v = v * 16 + (unsigned)hexval((unsigned char)*p++);
            if (c == 'x')
                out[o++] = (char)v;
            else
                put_utf8(out, &o, v);
            break;
        }
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
            unsigned v = (unsigned)(c - '0');
            for (int k = 0; k < 2 && p < end; k++)
                v = v * 8 + (unsigned)(*p++ - '0');
            out[o++] = (char)v;
            break;
        }
        default: /* \\ \' \" */
            out[o++] = c;
            break;
        }
    }
    out[o] = 0;
    return (tsdb_str){out, o};
}
