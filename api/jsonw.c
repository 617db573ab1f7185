/* api/jsonw.c -- streaming JSON writer and Prometheus number formatting.
 *
 * Shortest round-trip decimal (what Go's strconv prints). Sample values in [1e-5, 1e16) (where
 * counters, gauges, rates and ratios land) are done exactly in integers:
 *   A. integers below 2^53 print as they are;
 *   B. otherwise v = m 2^q, so v 10^k = m 10^k 2^q is an exact 128-bit computation: the
 *      correctly rounded (half to even) n-digit decimal for n = 15, 16, 17 in turn, the first one
 *      that lies in v's rounding interval (tested exactly too; its ends count when m is even,
 *      as strtod rounds ties to even) is the answer. At a power of two the interval is narrower
 *      below, so the next n-digit decimal up may fit where the nearest does not; the 17-digit
 *      one always fits. At 15 digits or fewer at most one decimal fits, so the nearest
 *      15-digit one with its trailing zeros removed is also the shortest.
 * Other values take the floating-point and printf steps, from cheap to dear:
 *   1. values in [1e-6, 1e15) with at most FAST_MAX_K fractional digits: the first k with
 *      round(|v| 10^k) / 10^k == |v| gives the digits; both operands are exact doubles, so the
 *      division is correctly rounded exactly like strtod of that decimal;
 *   2. any other normal value in [1e-7, 1e37): the same test at 15 significant digits, trying
 *      the integer nearest to |v| 10^k and its two neighbours (the scaled product may be off by
 *      less than one); success gives the shortest digits, failure proves 16 or 17 are needed
 *      (then step B from 16 digits when v is in its range);
 *   3. anything else: printf "%.15e" (16 digits), checked with strtod, else "%.16e" (17 digits);
 *      subnormals and values outside that range try every length from 1 digit up.
 * B and 3 give the same digits (glibc's printf is correctly rounded, half to even, and strtod
 * rounds half to even); B costs a few 128-bit multiplications instead of big-number conversions.
 * Why a 15-digit success is the shortest: any shorter decimal that reads back as v lies within
 * half an ulp of v, so v rounds to it padded with zeros, and only one decimal of at most 15
 * digits fits in a double's rounding interval. The digits are then laid out as Go's 'f' or 'e'
 * format: no exponent for 'f'; "d.ddde-07" (sign always, two digits at least) for 'e'.
 *
 * Integers and other short decimals cost about a hundred instructions, 17-digit doubles a few
 * hundred (a printf/strtod search took ~5,100 and ~10,200).
 */
#include "api/jsonw.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Numbers --------------------------------------------------------------------------------- */

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930"
    "31323334353637383940414243444546474849505152535455565758596061"
    "6263646566676869707172737475767778798081828384858687888990919293"
    "949596979899";

/* Exactly 8 digits of u < 10^8 (leading zeros kept), in 32-bit arithmetic. */
static void put_8(uint32_t u, char *out)
{
    uint32_t hi = u / 10000, lo = u % 10000;
    memcpy(out, digit_pairs + 2 * (hi / 100), 2);
    memcpy(out + 2, digit_pairs + 2 * (hi % 100), 2);
    memcpy(out + 4, digit_pairs + 2 * (lo / 100), 2);
    memcpy(out + 6, digit_pairs + 2 * (lo % 100), 2);
}

/* Decimal digits of u, no terminator; returns the count (1..20). Eight digits at a time, so
 * the divisions do not form one long chain. */
static int put_u64(uint64_t u, char *out)
{
    char tmp[24];
    int i = 24;
    while (u >= 100000000) {
        i -= 8;
        put_8((uint32_t)(u % 100000000), tmp + i);
        u /= 100000000;
    }
    uint32_t w = (uint32_t)u;
    while (w >= 100) {
        i -= 2;
        memcpy(tmp + i, digit_pairs + 2 * (w % 100), 2);
        w /= 100;
    }
    if (w >= 10) {
        i -= 2;
        memcpy(tmp + i, digit_pairs + 2 * w, 2);
    } else {
        tmp[--i] = (char)('0' + w);
    }
    memcpy(out, tmp + i, (size_t)(24 - i));
    return 24 - i;
}

/* floor(log10(a)) or one less, for a normal positive a: floor(x log10 2) of its binary exponent
 * x (78913 / 2^18 is log10 2 to enough places for every double exponent). */
static int e10_estimate(double a)
{
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int x = (int)(bits >> 52 & 0x7ff) - 1023;
    return x >= 0 ? (x * 78913) >> 18 : -((-x * 78913) >> 18) - 1;
}

/* The 15-digit step without printf: c = a * 10^k rounded to an integer of about 15 digits, and
 * c * 10^-k (a correctly rounded product or quotient of exact doubles, so the same double
 * strtod would give for that decimal) compared with a. The product a * 10^k is itself rounded,
 * so c may be one off the true nearest integer: c - 1, c and c + 1 are all tried. Returns the
 * digit count (trailing zeros removed) and the exponent; -1 when no decimal of at most 15
 * significant digits reads back as a; 0 when undecided (a outside the range where 10^k is
 * exact). */
static int digits15(double a, char dig[24], int *exp10)
{
    if (!(a >= 1e-7 && a < 1e37))
        return 0;
    int e = e10_estimate(a);
    for (int tries = 0; tries < 3; tries++) {
        int k = 14 - e;
        if (k > 22 || k < -22)
            return 0;
        double c = nearbyint(k >= 0 ? a * pow10_exact[k] : a / pow10_exact[-k]);
        if (c >= 1e15 + 1) {
            e++;
            continue;
        }
        if (c < 1e14 - 1) {
            e--;
            continue;
        }
        for (int d = -1; d <= 1; d++) {
            double cc = c + d;
            double back = k >= 0 ? cc / pow10_exact[k] : cc * pow10_exact[-k];
            if (back != a)
                continue;
            int nd = put_u64((uint64_t)cc, dig);
            *exp10 = nd - 1 - k;
            while (nd > 1 && dig[nd - 1] == '0')
                nd--;
            dig[nd] = '\0';
            return nd;
        }
        return -1;
    }
    return 0;
}

/* ---- Exact 16 and 17 digits in 128-bit integers (step 3) ---- */

__extension__ typedef unsigned __int128 u128;

#define EXACT_MAX_K 21 /* m 10^k times 4 stays below 2^128 */

static const uint64_t pow10_u64[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

static u128 pow10_u128(int k)
{
    return k < 20 ? pow10_u64[k] : (u128)pow10_u64[19] * pow10_u64[k - 19];
}

/* Shortest digits of a in [1e-5, 1e16) known to need at least first_n (15, 16 or 17) of them;
 * 0 when undecided. One 128-bit product gives a 10^k = m 10^k 2^q at 17 digits, truncated to t
 * with the exact remainder, from which the correctly rounded 15- and 16-digit decimals follow
 * (the dropped digits and the remainder decide, ties to even). A candidate fits when it lies in
 * a's rounding interval, [m - 1/2, m + 1/2] 2^q (the lower half is 1/4 at a power of two; the
 * ends count when m is even), compared at 4 2^-q times that scale, all exact. At 15 digits or
 * fewer only one decimal can fit (see the file comment), so the nearest 15-digit one, or at a
 * power of two the next one up, is it, and its trailing zeros go. */
static int digits_exact(double a, int first_n, char dig[24], int *exp10)
{
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int be = (int)(bits >> 52 & 0x7ff);
    if (be == 0 || be == 0x7ff)
        return 0;
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int q = be - 1075;
    if (q > 8 || q < -120)
        return 0;
    int s = q < 0 ? -q : 0;
    int e = e10_estimate(a);
    /* One comparison makes it exact nearly always; the loop corrects it otherwise. */
    if (e + 1 >= 0 ? e + 1 <= 22 && a >= pow10_exact[e + 1]
                   : e + 1 >= -22 && a * pow10_exact[-(e + 1)] >= 1.0)
        e++;
    u128 p10 = 0, t = 0, rem = 0, half = 0;
    int tries = 0;
    for (;; tries++) {
        int k = 16 - e;
        if (tries == 3 || k < 0 || k > EXACT_MAX_K)
            return 0;
        p10 = pow10_u128(k);
        u128 num = (u128)m * p10;
        if (q >= 0) {
            t = num << q;
            rem = half = 0;
        } else {
            t = num >> s;
            rem = num - (t << s);
            half = (u128)1 << (s - 1);
        }
        if (t >= pow10_u64[17] * (u128)1)
            e++;
        else if (t < pow10_u64[16])
            e--;
        else
            break;
    }
    /* The interval at 17-digit scale times 4 2^s (both ends), and the scale of a candidate. */
    u128 scale = q > 0 ? p10 << q : p10;
    u128 lo = (u128)(4 * m - (m == (1ull << 52) ? 1 : 2)) * scale;
    u128 hi = (u128)(4 * m + 2) * scale;
    int even = !(m & 1);
    uint64_t t64 = (uint64_t)t;
    uint64_t d = 0;
    int n, carry = 0;
    for (n = first_n; n <= 17; n++) {
        uint64_t p = pow10_u64[17 - n], base = t64 / p, r = t64 % p;
        int up;
        if (n == 17)
            up = rem > half || (rem == half && half != 0 && (t64 & 1));
        else
            up = r > p / 2 || (r == p / 2 && (rem != 0 || (base & 1)));
        d = base + (uint64_t)up;
        if (n == 17)
            break;
        for (int bump = 0; bump < 2; bump++, d++) {
            if (d > pow10_u64[n])
                break;
            u128 x = ((u128)d * p) << (2 + s);
            if (even ? x >= lo && x <= hi : x > lo && x < hi)
                goto found;
        }
    }
found:
    if (d == pow10_u64[n]) { /* rounded up to 10^n: one digit more, the exponent up by one */
        d = pow10_u64[n - 1];
        carry = 1;
    }
    int nd = put_u64(d, dig);
    *exp10 = e + carry;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    dig[nd] = '\0';
    return nd;
}

/* Raises the last mantissa digit of a printf "%e" string by one unit (carrying); 0 when the
 * carry would run out of the first digit. */
static int decimal_up(char *s)
{
    char *e = strchr(s, 'e');
    for (char *p = e ? e - 1 : s - 1; p >= s; p--) {
        if (*p == '.')
            continue;
        if (*p >= '0' && *p < '9') {
            (*p)++;
            return 1;
        }
        *p = '0';
    }
    return 0;
}

/* Shortest digits of |v| (v finite, non-zero): digits without a dot, and the decimal exponent of
 * the first digit (v = d.ddd * 10^exp10). Returns the digit count. */
static int shortest_digits(double v, char dig[24], int *exp10)
{
    int first = 14;
    if (v < DBL_MIN) {
        first = 0; /* subnormal: fewer significant bits, so search every length */
    } else {
        int nd = digits15(v, dig, exp10);
        if (nd > 0)
            return nd;
        if (nd < 0) {
            first = 15; /* 15 digits do not suffice */
            if (v >= 1e-5 && v < 1e16 && (nd = digits_exact(v, 16, dig, exp10)) > 0)
                return nd;
        }
    }
    char tmp[40];
    for (int prec = first; prec <= 16; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, v);
        double back = strtod(tmp, NULL);
        if (prec == 16 || back == v)
            break;
        /* At a power of two the rounding interval is twice as wide above v as below, so the
         * nearest decimal may fall below it while the next one up still reads back as v
         * (2^89 is 6.189700196426902e+26, 16 digits, as Go prints it). */
        if (back < v && decimal_up(tmp) && strtod(tmp, NULL) == v)
            break;
    }
    /* tmp = "d.dddde[+-]XX" */
    int nd = 0;
    const char *p = tmp;
    while (*p && *p != 'e') {
        if (*p >= '0' && *p <= '9')
            dig[nd++] = *p;
        p++;
    }
    *exp10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    dig[nd] = '\0';
    return nd;
}

/* Shared by the 'f'/'e' (JSON) and 'g' (text exposition) formats: use_e decides the layout from
 * |v| and the decimal exponent. */
static size_t layout(double v, const char *dig, int nd, int e10, int g_format, char out[32]);

static size_t fmt_shortest(double v, char out[32], int g_format)
{
    if (isnan(v))
        return (size_t)snprintf(out, 32, "NaN");
    if (isinf(v))
        return (size_t)snprintf(out, 32, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return (size_t)snprintf(out, 32, signbit(v) ? "-0" : "0");

    char dig[24];
    int e10;
    double a = fabs(v);
    int nd = shortest_digits(a, dig, &e10);
    return layout(v, dig, nd, e10, g_format, out);
}

/* Lays out the shortest digits of v (dig[0..nd), first one at 10^e10) as Go's 'f' or 'e' format
 * (g_format 0, chosen like MarshalFloat) or 'g'. */
static size_t layout(double v, const char *dig, int nd, int e10, int g_format, char out[32])
{
    double a = fabs(v);
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';

    int use_e = g_format ? (e10 < -4 || e10 >= 6) : (a < 1e-6 || a >= 1e21);
    if (use_e) { /* Go 'e' format */
        out[o++] = dig[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, (size_t)nd - 1);
            o += (size_t)nd - 1;
        }
        int x = e10 < 0 ? -e10 : e10;
        o += (size_t)snprintf(out + o, 32 - o, "e%c%02d", e10 < 0 ? '-' : '+', x);
        return o;
    }
    /* 'f' format: -6 <= e10 <= 20 here, so the result fits 32 bytes. */
    if (e10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -e10 - 1; i++)
            out[o++] = '0';
        memcpy(out + o, dig, (size_t)nd);
        o += (size_t)nd;
    } else {
        int int_digits = e10 + 1;
        for (int i = 0; i < int_digits; i++)
            out[o++] = i < nd ? dig[i] : '0';
        if (nd > int_digits) {
            out[o++] = '.';
            memcpy(out + o, dig + int_digits, (size_t)(nd - int_digits));
            o += (size_t)(nd - int_digits);
        }
    }
    out[o] = '\0';
    return o;
}

/* Fast path for the common case, values with at most 15 significant digits in [1e-6, 1e15) and
 * at most FAST_MAX_K fractional digits (counters, most gauges): the first k (fractional digits)
 * for which round(|v| * 10^k) / 10^k == |v| gives the shortest string. Both 10^k and the
 * candidate are exact doubles, so that division is correctly rounded like strtod of the decimal
 * text, and with at most 15 digits only one k-digit decimal can round to v. Returns 0 when the
 * value is not of that kind (the general path then gives the same answer, at more cost than
 * these few tries but less than trying every k). */
#define FAST_MAX_K 7

static size_t fmt_fast(double v, char out[32])
{
    double a = fabs(v);
    if (!(a >= 1e-6 && a < 1e15))
        return 0;
    for (int k = 0; k < FAST_MAX_K; k++) {
        double x = a * pow10_exact[k];
        if (x >= 1e15)
            return 0;
        double c = nearbyint(x);
        if (c / pow10_exact[k] != a)
            continue;
        char dig[24];
        int nd = put_u64((uint64_t)c, dig);
        size_t o = 0;
        if (v < 0)
            out[o++] = '-';
        if (nd <= k) { /* 0.000ddd */
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < k - nd; i++)
                out[o++] = '0';
            memcpy(out + o, dig, (size_t)nd);
            o += (size_t)nd;
        } else {
            memcpy(out + o, dig, (size_t)(nd - k));
            o += (size_t)(nd - k);
            if (k > 0) {
                out[o++] = '.';
                memcpy(out + o, dig + nd - k, (size_t)k);
                o += (size_t)k;
            }
        }
        out[o] = '\0';
        return o;
    }
    return 0;
}

size_t api__fmt_float(double v, char out[32])
{
    double a = fabs(v);
    if (a >= 1e-5 && a < 1e16) {
        /* Integers below 2^53 print as such (no shorter decimal is within half an ulp); the
         * rest take the exact path from 15 digits up, skipping the floating-point steps. */
        if (a < 9007199254740992.0 && a == (double)(uint64_t)a) {
            size_t o = 0;
            if (v < 0)
                out[o++] = '-';
            o += (size_t)put_u64((uint64_t)a, out + o);
            out[o] = '\0';
            return o;
        }
        char dig[24];
        int e10;
        int nd = digits_exact(a, 15, dig, &e10);
        if (nd > 0)
            return layout(v, dig, nd, e10, 0, out);
    }
    size_t n = fmt_fast(v, out);
    return n ? n : fmt_shortest(v, out, 0);
}

size_t api__fmt_float_g(double v, char out[32])
{
    return fmt_shortest(v, out, 1);
}

size_t api__fmt_ts(int64_t t_ms, char out[32])
{
    size_t o = 0;
    uint64_t u = (uint64_t)t_ms;
    if (t_ms < 0) {
        out[o++] = '-';
        u = 0 - u;
    }
    unsigned frac = (unsigned)(u % 1000);
    o += (size_t)put_u64(u / 1000, out + o);
    if (frac != 0) {
        out[o++] = '.';
        out[o++] = (char)('0' + frac / 100);
        out[o++] = (char)('0' + frac / 10 % 10);
        out[o++] = (char)('0' + frac % 10);
    }
    out[o] = '\0';
    return o;
}

/* ---- Structure ------------------------------------------------------------------------------- */

void api__json_init(api_json *j, tsdb_buf *b)
{
    memset(j, 0, sizeof *j);
    j->b = b;
}

/* Comma before a new value or key, unless it directly follows a key or opens a container. */
static void sep(api_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0) {
        if (j->n[j->depth - 1])
            tsdb_buf_putc(j->b, ',');
        j->n[j->depth - 1] = 1;
    }
}

static void open_c(api_json *j, unsigned char c)
{
    sep(j);
    assert(j->depth < API_JSON_MAX_DEPTH);
    tsdb_buf_putc(j->b, c);
    j->n[j->depth++] = 0;
}

static void close_c(api_json *j, unsigned char c)
{
    assert(j->depth > 0);
    j->depth--;
    tsdb_buf_putc(j->b, c);
}

void api__json_obj_begin(api_json *j)
{
    open_c(j, '{');
}

void api__json_obj_end(api_json *j)
{
    close_c(j, '}');
}

void api__json_arr_begin(api_json *j)
{
    open_c(j, '[');
}

void api__json_arr_end(api_json *j)
{
    close_c(j, ']');
}

/* Writes s as a JSON string, escaping as Go's encoding/json does for the characters that must be
 * escaped (quotes, backslash, control bytes). Bytes >= 0x80 pass through. */
static void put_escaped(tsdb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tsdb_buf_reserve(b, n + 2);
    tsdb_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        tsdb_buf_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            tsdb_buf_put(b, "\\\"", 2);
            break;
        case '\\':
            tsdb_buf_put(b, "\\\\", 2);
            break;
        case '\n':
            tsdb_buf_put(b, "\\n", 2);
            break;
        case '\r':
            tsdb_buf_put(b, "\\r", 2);
            break;
        case '\t':
            tsdb_buf_put(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            tsdb_buf_put(b, u, 6);
        }
        }
    }
    tsdb_buf_put(b, s + run, n - run);
    tsdb_buf_putc(b, '"');
}

void api__json_keyn(api_json *j, tsdb_str k)
{
    sep(j);
    put_escaped(j->b, k.p, k.len);
    tsdb_buf_putc(j->b, ':');
    j->after_key = 1;
}

void api__json_key(api_json *j, const char *k)
{
    api__json_keyn(j, tsdb_str_c(k));
}

void api__json_strn(api_json *j, tsdb_str s)
{
    sep(j);
    put_escaped(j->b, s.p ? s.p : "", s.len);
}

void api__json_str(api_json *j, const char *s)
{
    if (!s) {
        api__json_null(j);
        return;
    }
    api__json_strn(j, tsdb_str_c(s));
}

void api__json_int(api_json *j, int64_t v)
{
    sep(j);
    tsdb_buf_printf(j->b, "%lld", (long long)v);
}

void api__json_uint(api_json *j, uint64_t v)
{
    sep(j);
    tsdb_buf_printf(j->b, "%llu", (unsigned long long)v);
}

void api__json_bool(api_json *j, int v)
{
    sep(j);
    tsdb_buf_puts(j->b, v ? "true" : "false");
}

void api__json_null(api_json *j)
{
    sep(j);
    tsdb_buf_puts(j->b, "null");
}

void api__json_raw(api_json *j, const char *s)
{
    sep(j);
    tsdb_buf_puts(j->b, s);
}

void api__json_num(api_json *j, double v)
{
    if (!isfinite(v)) {
        api__json_null(j);
        return;
    }
    char tmp[32];
    size_t n = api__fmt_float(v, tmp);
    sep(j);
    tsdb_buf_put(j->b, tmp, n);
}

void api__json_value(api_json *j, double v)
{
    char tmp[32];
    size_t n = api__fmt_float(v, tmp);
    sep(j);
    tsdb_buf_reserve(j->b, n + 2);
    tsdb_buf_putc(j->b, '"');
    tsdb_buf_put(j->b, tmp, n);
    tsdb_buf_putc(j->b, '"');
}

void api__json_ts(api_json *j, int64_t t_ms)
{
    char tmp[32];
    size_t n = api__fmt_ts(t_ms, tmp);
    sep(j);
    tsdb_buf_put(j->b, tmp, n);
}

/* Points are most of a range query's answer: written in one piece, the same bytes as
 * arr_begin, ts, value, arr_end. */
void api__json_point(api_json *j, int64_t t_ms, double v)
{
    sep(j);
    tsdb_buf_reserve(j->b, 80); /* '[' ts(<32) ',' '"' value(<32) '"' ']' */
    char *d = (char *)j->b->p + j->b->len;
    size_t o = 0;
    d[o++] = '[';
    o += api__fmt_ts(t_ms, d + o);
    d[o++] = ',';
    d[o++] = '"';
    o += api__fmt_float(v, d + o);
    d[o++] = '"';
    d[o++] = ']';
    j->b->len += o;
}

void api__json_labels(api_json *j, tsdb_labels l)
{
    api__json_obj_begin(j);
    for (size_t i = 0; i < l.n; i++) {
        api__json_keyn(j, l.v[i].name);
        api__json_strn(j, l.v[i].value);
    }
    api__json_obj_end(j);
}
