/* tests/unit/api/test_jsonw.c -- JSON writer and Prometheus number formats.
 *
 * Expected strings are what Go's strconv.FormatFloat(v, 'f' or 'e', -1, 64) produces for the
 * same doubles (Prometheus' MarshalFloat), and what MarshalTimestamp writes for timestamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/jsonw.h"

static void check_float(double v, const char *want)
{
    char out[32];
    size_t n = api__fmt_float(v, out);
    if (strcmp(out, want) != 0)
        fail_msg("format(%.17g) = \"%s\", want \"%s\"", v, out, want);
    assert_int_equal(n, strlen(want));
}

static void test_float_go_table(void **state)
{
    (void)state;
    check_float(0, "0");
    check_float(-0.0, "-0");
    check_float(1, "1");
    check_float(-1, "-1");
    check_float(0.1, "0.1");
    check_float(1.5, "1.5");
    check_float(100, "100");
    check_float(0.1 + 0.2, "0.30000000000000004");
    check_float(1.0 / 3, "0.3333333333333333");
    check_float(2.0 / 3, "0.6666666666666666");
    check_float(1e20, "100000000000000000000");
    check_float(1.2345678901234568e20, "123456789012345680000");
    check_float(1e21, "1e+21");
    check_float(1.5e21, "1.5e+21");
    check_float(-2.5e22, "-2.5e+22");
    check_float(1e-6, "0.000001");
    check_float(1e-7, "1e-07");
    check_float(9.999e-7, "9.999e-07");
    check_float(1.25e-10, "1.25e-10");
    check_float(0.000123, "0.000123");
    check_float(1e-5, "0.00001");
    check_float(123456789.123, "123456789.123");
    check_float(3.14159, "3.14159");
    check_float(9007199254740992.0, "9007199254740992");
    check_float(DBL_MAX, "1.7976931348623157e+308");
    check_float(5e-324, "5e-324");
    check_float(2.2250738585072014e-308, "2.2250738585072014e-308");
    check_float(1e300, "1e+300");
    check_float(-1.5e-300, "-1.5e-300");
    check_float(NAN, "NaN");
    check_float(INFINITY, "+Inf");
    check_float(-INFINITY, "-Inf");
    check_float(1709251200.5, "1709251200.5");
    check_float(0.0001, "0.0001");
    check_float(42.42, "42.42");
}

/* Every output parses back to the same double, and no output with one significant digit fewer
 * does (the shortest property), over random bit patterns. */
static void test_float_roundtrip_random(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = bits << 16 | (uint64_t)(rand() & 0xffff);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (i % 2) /* half of them in the range values usually have: 2^-40 .. 2^120 */
            v = ldexp(1 + (double)(bits >> 12) / 4503599627370496.0, (int)(bits % 160) - 40);
        if (!isfinite(v))
            continue;
        char out[32];
        api__fmt_float(v, out);
        double back = strtod(out, NULL);
        if (back != v)
            fail_msg("seed %u: %.17g -> %s -> %.17g", seed, v, out, back);
        /* significant digits: drop sign, dot and exponent, then leading and trailing zeros */
        char dig[40];
        int nd = 0;
        for (const char *p = out; *p && *p != 'e'; p++)
            if (*p >= '0' && *p <= '9')
                dig[nd++] = *p;
        int lo = 0;
        while (lo < nd && dig[lo] == '0')
            lo++;
        while (nd > lo && dig[nd - 1] == '0')
            nd--;
        int digits = nd - lo;
        if (digits > 1) {
            char shorter[40];
            snprintf(shorter, sizeof shorter, "%.*e", digits - 2, v);
            if (strtod(shorter, NULL) == v)
                fail_msg("seed %u: %s is not shortest (%s round-trips)", seed, out, shorter);
        }
    }
}

static void check_g(double v, const char *want)
{
    char out[32];
    api__fmt_float_g(v, out);
    if (strcmp(out, want) != 0)
        fail_msg("format_g(%.17g) = \"%s\", want \"%s\"", v, out, want);
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64), as the text exposition format writes values. */
static void test_float_g(void **state)
{
    (void)state;
    check_g(0, "0");
    check_g(1, "1");
    check_g(1.5, "1.5");
    check_g(100000, "100000");
    check_g(1e6, "1e+06");
    check_g(123456789, "1.23456789e+08");
    check_g(0.0001, "0.0001");
    check_g(0.00001, "1e-05");
    check_g(-2.5e-7, "-2.5e-07");
    check_g(NAN, "NaN");
    check_g(-INFINITY, "-Inf");
}

/* Decimal-looking values (the fast path): the output must equal the exact decimal they were
 * made from, read back, and be shortest. */
static void test_float_decimals_random(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL) ^ 0x5a5a;
    printf("seed %u\n", seed);
    srand(seed);
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    for (int i = 0; i < 200000; i++) {
        long long m = ((long long)rand() << 16 ^ rand()) % 100000000000LL;
        int k = rand() % 10;
        double v = (double)m / p10[k];
        if (rand() % 2)
            v = -v;
        char out[32], want[48];
        api__fmt_float(v, out);
        if (strtod(out, NULL) != v)
            fail_msg("seed %u: %.17g -> %s does not round-trip", seed, v, out);
        /* expected: %.*f with k digits, then trailing zeros (and a bare dot) removed */
        snprintf(want, sizeof want, "%.*f", k, v);
        size_t n = strlen(want);
        if (strchr(want, '.')) {
            while (want[n - 1] == '0')
                want[--n] = '\0';
            if (want[n - 1] == '.')
                want[--n] = '\0';
        }
        if (!strcmp(want, "-0"))
            strcpy(want, "-0");
        if (v != 0 && fabs(v) >= 1e-6 && strcmp(out, want) != 0)
            fail_msg("seed %u: %.17g -> %s, want %s", seed, v, out, want);
    }
}

/* Significant digits (no leading or trailing zeros) and decimal exponent of the first one, read
 * from a formatted value in either layout ("0.00123", "123.4", "1.5e-07"). */
static void sig_digits(const char *s, char dig[40], int *e10)
{
    if (*s == '-')
        s++;
    int nd = 0, point = -1, first = -1, pos = 0;
    const char *p = s;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = pos;
            continue;
        }
        if (first < 0 && *p != '0')
            first = pos;
        if (first >= 0)
            dig[nd++] = *p;
        pos++;
    }
    if (point < 0)
        point = pos;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    dig[nd] = '\0';
    *e10 = (first < 0 ? 0 : point - first - 1) + (*p == 'e' ? atoi(p + 1) : 0);
}

/* The reference: the shortest printf "%.*e" that strtod reads back (the nearest decimal of each
 * length, or the next one up where the rounding interval is lopsided at a power of two). */
static void ref_digits(double v, char dig[40], int *e10)
{
    char tmp[48];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, v);
        double back = strtod(tmp, NULL);
        if (back == v)
            break;
        if (back < v) {
            char up[48];
            strcpy(up, tmp);
            char *e = strchr(up, 'e');
            char *q = e - 1;
            while (q >= up && (*q == '9' || *q == '.')) {
                if (*q == '9')
                    *q = '0';
                q--;
            }
            if (q >= up && *q >= '0' && *q < '9') {
                (*q)++;
                if (strtod(up, NULL) == v) {
                    strcpy(tmp, up);
                    break;
                }
            }
        }
    }
    sig_digits(tmp, dig, e10);
}

/* Values needing 16 or 17 digits (rates, ratios) take an exact integer path: its digits must be
 * the printf search's, for random doubles across [1e-5, 1e16), at powers of two (where the
 * interval is lopsided) and next to them. */
static void test_float_exact_vs_printf(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL) ^ 0x1234;
    printf("seed %u\n", seed);
    srand(seed);
    for (int i = 0; i < 300000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = bits << 16 | (uint64_t)(rand() & 0xffff);
        double v = ldexp(1 + (double)(bits >> 12) / 4503599627370496.0, (int)(bits % 71) - 17);
        if (i % 3 == 0) {
            v = ldexp(1.0, (int)(bits % 71) - 17);
            v = i % 2 ? nextafter(v, 0) : i % 5 ? nextafter(v, 2 * v) : v;
        }
        if (i % 7 == 0)
            v = (double)(rand() % 100000) / (double)(1 + rand() % 99999) * 1e3;
        char out[32], got[40], want[40];
        int ge, we;
        api__fmt_float(v, out);
        sig_digits(out, got, &ge);
        ref_digits(v, want, &we);
        if (strcmp(got, want) != 0 || ge != we)
            fail_msg("seed %u: %.17g -> %s (%se%d), printf search %se%d", seed, v, out, got, ge,
                     want, we);
    }
}

static void check_ts(int64_t ms, const char *want)
{
    char out[32];
    api__fmt_ts(ms, out);
    if (strcmp(out, want) != 0)
        fail_msg("ts(%lld) = \"%s\", want \"%s\"", (long long)ms, out, want);
}

static void test_timestamps(void **state)
{
    (void)state;
    check_ts(1435781451781, "1435781451.781");
    check_ts(4000, "4");
    check_ts(1500, "1.500");
    check_ts(1005, "1.005");
    check_ts(50, "0.050");
    check_ts(0, "0");
    check_ts(-1500, "-1.500");
    check_ts(INT64_MIN, "-9223372036854775.808");
}

static void test_writer_structure(void **state)
{
    (void)state;
    tsdb_buf b;
    tsdb_buf_init(&b);
    api_json j;
    api__json_init(&j, &b);
    api__json_obj_begin(&j);
    api__json_key(&j, "a");
    api__json_arr_begin(&j);
    api__json_int(&j, 1);
    api__json_point(&j, 1500, 2.5);
    api__json_obj_begin(&j);
    api__json_obj_end(&j);
    api__json_arr_end(&j);
    api__json_key(&j, "s\"\\\n\x01");
    api__json_str(&j, "tab\there");
    api__json_key(&j, "n");
    api__json_null(&j);
    api__json_key(&j, "b");
    api__json_bool(&j, 0);
    api__json_key(&j, "v");
    api__json_value(&j, NAN);
    tsdb_label lv[] = {{TSDB_STR("__name__"), TSDB_STR("up")}, {TSDB_STR("job"), TSDB_STR("x")}};
    api__json_key(&j, "m");
    api__json_labels(&j, (tsdb_labels){lv, 2});
    api__json_obj_end(&j);
    tsdb_buf_putc(&b, '\0');
    assert_string_equal((char *)b.p,
                        "{\"a\":[1,[1.500,\"2.5\"],{}],\"s\\\"\\\\\\n\\u0001\":\"tab\\there\","
                        "\"n\":null,\"b\":false,\"v\":\"NaN\",\"m\":{\"__name__\":\"up\",\"job\":"
                        "\"x\"}}");
    assert_int_equal(j.depth, 0);
    tsdb_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_go_table),
        cmocka_unit_test(test_float_roundtrip_random),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_float_g),
        cmocka_unit_test(test_float_decimals_random),
        cmocka_unit_test(test_float_exact_vs_printf),
        cmocka_unit_test(test_writer_structure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
