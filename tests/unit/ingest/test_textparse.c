/* tests/unit/ingest/test_textparse.c -- the text 0.0.4 / OpenMetrics 1.0 pull parser. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"

static int str_is(tsdb_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

#define assert_str(s, lit)                                                 \
    do {                                                                   \
        tsdb_str s_ = (s);                                                 \
        if (!str_is(s_, lit))                                              \
            fail_msg("got \"%.*s\", want \"%s\"", (int)s_.len, s_.p, lit); \
    } while (0)

static tsdb_str label(const ingest_text_entry *e, const char *name)
{
    for (size_t i = 0; i < e->n_labels; i++)
        if (str_is(e->labels[i].name, name))
            return e->labels[i].value;
    return (tsdb_str){"<absent>", 8};
}

/* Parses everything and returns the error code; *msg gets the error message. */
static int parse_all(const char *text, enum ingest_text_format fmt, size_t *n_series, char *msg,
                     size_t cap)
{
    ingest_text *p = ingest_text_new(text, strlen(text), fmt);
    ingest_text_entry e;
    tsdb_err err;
    int rc;
    size_t n = 0;
    while ((rc = ingest_text_next(p, &e, &err)) > 0)
        n += e.kind == INGEST_TEXT_SERIES;
    if (rc < 0 && msg)
        snprintf(msg, cap, "%s", err.msg);
    ingest_text_free(p);
    if (n_series)
        *n_series = n;
    return rc;
}

static void test_text_basic(void **state)
{
    (void)state;
    const char *page =
        "# HELP http_requests_total The total \\\\ number of \\n requests.\n"
        "# TYPE http_requests_total counter\n"
        "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
        "http_requests_total{method=\"post\",code=\"400\",} 3 1395066363000\n"
        "\n"
        "# a plain comment\n"
        "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot "
        "find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n"
        "metric_without_timestamp_and_labels 12.47\n"
        "  \t\n"
        "something_weird{problem=\"division by zero\"} +Inf 3982045\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_HELP);
    assert_str(e.name, "http_requests_total");
    assert_str(e.text, "The total \\ number of \n requests.");
    assert_int_equal(e.line, 1);

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_TYPE);
    assert_str(e.text, "counter");

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_SERIES);
    assert_str(e.name, "http_requests_total");
    assert_int_equal(e.n_labels, 3);
    assert_str(e.labels[0].name, "__name__");
    assert_str(e.labels[0].value, "http_requests_total");
    assert_str(label(&e, "method"), "post");
    assert_str(label(&e, "code"), "200");
    assert_true(e.v == 1027.0);
    assert_int_equal(e.has_t, 1);
    assert_int_equal(e.t, 1395066363000LL);
    assert_int_equal(e.line, 3);

    assert_int_equal(ingest_text_next(p, &e, &err), 1); /* trailing comma */
    assert_str(label(&e, "code"), "400");
    assert_true(e.v == 3.0);

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(label(&e, "path"), "C:\\DIR\\FILE.TXT");
    assert_str(label(&e, "error"), "Cannot find file:\n\"FILE.TXT\"");
    assert_true(e.v == 1.458255915e9);
    assert_int_equal(e.has_t, 0);
    assert_int_equal(e.line, 7);

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "metric_without_timestamp_and_labels");
    assert_int_equal(e.n_labels, 1);
    assert_true(e.v == 12.47);

    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_true(isinf(e.v) && e.v > 0);
    assert_int_equal(e.t, 3982045);

    assert_int_equal(ingest_text_next(p, &e, &err), 0);
    assert_int_equal(ingest_text_next(p, &e, &err), 0); /* the end is sticky */
    ingest_text_free(p);
}

static void test_values(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        double want; /* NAN for NaN */
    } cases[] = {{"5.", 5},
                 {"infinity", INFINITY},
                 {"1e-400", 0},
                 {"0", 0},
                 {"-7", -7},
                 {"1e3", 1000},
                 {"1.5E-3", 0.0015},
                 {"NaN", NAN},
                 {"nan", NAN},
                 {"+Inf", INFINITY},
                 {"-Inf", -INFINITY},
                 {"inf", INFINITY},
                 {"123456789012345678", 123456789012345678.0},
                 {".5", 0.5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char page[64];
        snprintf(page, sizeof page, "m %s\n", cases[i].v);
        ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
        ingest_text_entry e;
        tsdb_err err;
        assert_int_equal(ingest_text_next(p, &e, &err), 1);
        if (isnan(cases[i].want))
            assert_true(isnan(e.v));
        else if (e.v != cases[i].want)
            fail_msg("value %s parsed as %.17g", cases[i].v, e.v);
        ingest_text_free(p);
    }
    /* As Prometheus 2.42: no hex floats, no '_', no out-of-range values, no sign before NaN,
     * and text-format timestamps are unsigned integers. */
    static const char *const bad[] = {"m 1x\n",
                                      "m nan(1)\n",
                                      "m 0x10\n",
                                      "m --1\n",
                                      "m 1 1.5\n",
                                      "m 0x1p-2\n",
                                      "m 1e400\n",
                                      "m -1e400\n",
                                      "m +nan\n",
                                      "m 1_000\n",
                                      "m 1 -5\n",
                                      "m 1 +5\n",
                                      "m 1 99999999999999999999\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_all(bad[i], INGEST_TEXT_PROM, NULL, NULL, 0), TSDB_EPARSE);
}

static void test_histogram_classic(void **state)
{
    (void)state;
    const char *page = "# TYPE rpc histogram\n"
                       "rpc_bucket{le=\"0.05\"} 24054\n"
                       "rpc_bucket{le=\"+Inf\"} 144320\n"
                       "rpc_sum 53423\n"
                       "rpc_count 144320\n"
                       "# TYPE q summary\n"
                       "q{quantile=\"0.99\"} 76656\n"
                       "q_sum 1.7560473e+07\n"
                       "q_count 2693\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;
    const char *names[] = {"rpc_bucket", "rpc_bucket", "rpc_sum", "rpc_count",
                           "q",          "q_sum",      "q_count"};
    size_t k = 0;
    int rc;
    while ((rc = ingest_text_next(p, &e, &err)) > 0) {
        if (e.kind != INGEST_TEXT_SERIES)
            continue;
        assert_true(k < 7);
        assert_str(e.name, names[k]);
        if (k == 1)
            assert_str(label(&e, "le"), "+Inf");
        if (k == 4)
            assert_str(label(&e, "quantile"), "0.99");
        k++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(k, 7);
    ingest_text_free(p);
}

static void test_openmetrics(void **state)
{
    (void)state;
    const char *page = "# TYPE acme_http_router_request_seconds summary\n"
                       "# UNIT acme_http_router_request_seconds seconds\n"
                       "# HELP acme_http_router_request_seconds Latency \\\"quoted\\\".\n"
                       "acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} "
                       "9036.32 1520879607.789\n"
                       "acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} "
                       "807283.0\n"
                       "acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} "
                       "1605281325.0\n"
                       "# TYPE foo counter\n"
                       "foo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n"
                       "foo_created 1520430000.123\n"
                       "# EOF\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_OPENMETRICS);
    ingest_text_entry e;
    tsdb_err err;
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_TYPE);
    assert_str(e.text, "summary");
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_UNIT);
    assert_str(e.text, "seconds");
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_HELP);
    assert_str(e.text, "Latency \"quoted\".");
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "acme_http_router_request_seconds_sum");
    assert_true(e.v == 9036.32);
    assert_int_equal(e.has_t, 1);
    assert_int_equal(e.t, 1520879607789LL); /* float seconds -> ms */
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "acme_http_router_request_seconds_count");
    assert_int_equal(e.has_t, 0);
    /* _created is skipped; the next entry is foo's TYPE */
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_TYPE);
    assert_str(e.name, "foo");
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "foo_total");
    assert_true(e.v == 17.0);
    assert_int_equal(e.n_labels, 1); /* the exemplar's labels are not the sample's */
    assert_int_equal(ingest_text_next(p, &e, &err), 0);
    ingest_text_free(p);

    /* With keep_created the _created samples come through. */
    p = ingest_text_new(page, strlen(page), INGEST_TEXT_OPENMETRICS);
    ingest_text_keep_created(p, 1);
    size_t created = 0;
    int rc;
    while ((rc = ingest_text_next(p, &e, &err)) > 0)
        created += e.kind == INGEST_TEXT_SERIES && e.name.len > 8 &&
                   !memcmp(e.name.p + e.name.len - 8, "_created", 8);
    assert_int_equal(rc, 0);
    assert_int_equal(created, 2);
    ingest_text_free(p);
}

static void test_openmetrics_errors(void **state)
{
    (void)state;
    char msg[256];
    assert_int_equal(parse_all("a 1\n", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg),
                     TSDB_EPARSE);
    assert_string_equal(msg, "2:1: missing # EOF at the end of OpenMetrics input");
    assert_int_equal(parse_all("a 1", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg), TSDB_EPARSE);
    assert_string_equal(msg, "1:4: missing # EOF at the end of OpenMetrics input");
    assert_int_equal(parse_all("", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg), TSDB_EPARSE);
    assert_string_equal(msg, "1:1: missing # EOF at the end of OpenMetrics input");
    assert_int_equal(parse_all("a 1\n# EOF\nb 2\n", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg),
                     TSDB_EPARSE);
    assert_string_equal(msg, "3:1: unexpected data after # EOF");
    assert_int_equal(
        parse_all("# random comment\n# EOF\n", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg),
        TSDB_EPARSE);
    assert_non_null(strstr(msg, "1:3: invalid comment"));
    assert_int_equal(parse_all("# UNIT foo_seconds bytes\n# EOF\n", INGEST_TEXT_OPENMETRICS, NULL,
                               msg, sizeof msg),
                     TSDB_EPARSE);
    assert_non_null(strstr(msg, "not a suffix"));
    assert_int_equal(parse_all("a 1 inf\n# EOF\n", INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg),
                     TSDB_EPARSE);
    assert_string_equal(msg, "1:5: invalid timestamp \"inf\"");
    size_t n;
    assert_int_equal(parse_all("a 1\n# EOF", INGEST_TEXT_OPENMETRICS, &n, NULL, 0), 0);
    assert_int_equal(n, 1);
    /* OpenMetrics is strict where Prometheus 2.42's parser is: single spaces, no blanks or
     * trailing comma in label sets, exemplars only on _total/_bucket, "# EOF" exactly, HELP
     * with its separator. */
    static const struct {
        const char *in, *msg;
    } strict[] = {
        {"m  1\n# EOF\n", "1:2: expected a single space before the value"},
        {"m 1  5\n# EOF\n", "1:4: expected a single space after the value"},
        {"m 1 \n# EOF\n", "1:4: expected a single space after the value"},
        {"m{a=\"b\",} 1\n# EOF\n", "1:8: trailing comma in label set"},
        {"m{a=\"b\", c=\"d\"} 1\n# EOF\n", "1:9: invalid label name at \" c=?d?} 1\""},
        {"m 1 # {a=\"b\"} 1\n# EOF\n", "1:5: metric name m does not support exemplars"},
        {"m 1\n# EOF \n", "2:6: unexpected text after # EOF"},
        {"# HELP m\nm 1\n# EOF\n", "1:9: expected text in HELP"},
    };
    for (size_t i = 0; i < sizeof strict / sizeof strict[0]; i++) {
        msg[0] = 0;
        int rc = parse_all(strict[i].in, INGEST_TEXT_OPENMETRICS, NULL, msg, sizeof msg);
        if (rc != TSDB_EPARSE || strcmp(msg, strict[i].msg) != 0)
            fail_msg("strict case %zu: rc %d msg \"%s\", want \"%s\"", i, rc, msg, strict[i].msg);
    }
    assert_int_equal(parse_all("# HELP m \nc_total 1 # {a=\"b\"} 1 5\nh_bucket{le=\"1\"} 1 # {} 2\n"
                               "# EOF\n",
                               INGEST_TEXT_OPENMETRICS, NULL, NULL, 0),
                     0);
    /* A timestamp in the text format is milliseconds and must be an integer. */
    assert_int_equal(parse_all("a 1 1.5\n", INGEST_TEXT_PROM, NULL, msg, sizeof msg), TSDB_EPARSE);
    assert_string_equal(msg, "1:5: invalid timestamp \"1.5\"");
}

static void test_errors_line_col(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"ok 1\na{b=\"c\" 1\n", "2:9: expected ',' or '}' in label set"},
        {"a{b\"c\"} 1\n", "1:4: expected '=' after label name \"b\""},
        {"a{b=c} 1\n", "1:5: expected '\"' to start the value of label \"b\""},
        {"a{b=\"c} 1\n", "1:5: unterminated quoted string"},
        {"a{1=\"c\"} 1\n", "1:3: invalid label name at \"1=?c?} 1\""},
        {"a\n", "1:2: expected a value after the metric"},
        {"a{} 1 2 3\n", "1:9: unexpected text after the timestamp"},
        {"# TYPE a countr\n", "1:10: invalid metric type \"countr\""},
        {"a 1\r\n", "1:4: carriage return in line (use \\n line ends)"},
        {"9a 1\n", "1:1: invalid metric name at \"9a 1\""},
        {"a{b=\"c\"}\n", "1:9: expected a value after the metric"},
        {"a{b=\"c\"} 1 -5\n", "1:12: invalid timestamp \"-5\""},
        {"# TYPE m  gauge\n", "1:10: invalid metric type \" gauge\""},
        {"# TYPE m gauge \n", "1:10: invalid metric type \"gauge \""},
        {"m 1e400\n", "1:3: invalid value \"1e400\""},
        {"a 1 # {x=\"y\"} 1\n", "1:5: unexpected text after the value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256] = "";
        int rc = parse_all(cases[i].in, INGEST_TEXT_PROM, NULL, msg, sizeof msg);
        if (rc != TSDB_EPARSE || strcmp(msg, cases[i].msg) != 0)
            fail_msg("case %zu: rc %d msg \"%s\", want \"%s\"", i, rc, msg, cases[i].msg);
    }
}

static void test_sticky_error_and_pos(void **state)
{
    (void)state;
    const char *page = "a 1\nb{ 2\nc 3\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(ingest_text_next(p, &e, &err), TSDB_EPARSE);
    assert_int_equal(err.code, TSDB_EPARSE);
    assert_int_equal(err.pos, 7); /* byte offset of '2' */
    memset(&err, 0, sizeof err);
    assert_int_equal(ingest_text_next(p, &e, &err), TSDB_EPARSE);
    assert_non_null(strstr(err.msg, "2:4:"));
    ingest_text_free(p);
}

static void test_quoted_names_and_whitespace(void **state)
{
    (void)state;
    const char *page = "{\"my.metric\",\"a.b\"=\"x\"} 5\n"
                       "spaced { a = \"1\" , b=\"2\" }\t7\t100\n"
                       "# HELP \"my.metric\" dotted\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "my.metric");
    assert_str(e.labels[0].value, "my.metric");
    assert_str(label(&e, "a.b"), "x");
    assert_true(e.v == 5);
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "spaced");
    assert_str(label(&e, "a"), "1");
    assert_str(label(&e, "b"), "2");
    assert_int_equal(e.t, 100);
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_HELP);
    assert_str(e.name, "my.metric");
    assert_str(e.text, "dotted");
    assert_int_equal(ingest_text_next(p, &e, &err), 0);
    ingest_text_free(p);
}

/* Spacing as Prometheus' text lexer reads it: a value may follow '}' directly, and HELP text is
 * the rest of the line after exactly one blank. */
static void test_prometheus_spacing(void **state)
{
    (void)state;
    const char *page = "glued{a=\"b\"}1\n# HELP h   three spaces\nh 2\n";
    ingest_text *p = ingest_text_new(page, strlen(page), INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.name, "glued");
    assert_str(e.series, "glued{a=\"b\"}");
    assert_true(e.v == 1.0);
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.kind, INGEST_TEXT_HELP);
    assert_str(e.text, "  three spaces");
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_str(e.series, "h");
    ingest_text_free(p);
    /* OpenMetrics wants the blank. */
    assert_int_equal(parse_all("glued{a=\"b\"}1\n# EOF\n", INGEST_TEXT_OPENMETRICS, NULL, NULL, 0),
                     TSDB_EPARSE);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_int_equal(ingest_text_format_of(TSDB_STR("application/openmetrics-text; version=1.0.0; "
                                                    "charset=utf-8")),
                     INGEST_TEXT_OPENMETRICS);
    assert_int_equal(ingest_text_format_of(TSDB_STR("Application/OpenMetrics-Text")),
                     INGEST_TEXT_OPENMETRICS);
    assert_int_equal(ingest_text_format_of(TSDB_STR("text/plain; version=0.0.4")),
                     INGEST_TEXT_PROM);
    assert_int_equal(ingest_text_format_of(TSDB_STR("")), INGEST_TEXT_PROM);
    assert_int_equal(ingest_text_format_of(TSDB_STR("application/open")), INGEST_TEXT_PROM);
}

/* Escaped values longer than the rest of the line must not corrupt earlier labels. */
static void test_many_escaped_labels(void **state)
{
    (void)state;
    char page[4096];
    size_t n = 0;
    n += (size_t)snprintf(page + n, sizeof page - n, "m{");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(page + n, sizeof page - n, "l%d=\"v\\\\%d\\n\",", i, i);
    n += (size_t)snprintf(page + n, sizeof page - n, "} 1\n");
    ingest_text *p = ingest_text_new(page, n, INGEST_TEXT_PROM);
    ingest_text_entry e;
    tsdb_err err;
    assert_int_equal(ingest_text_next(p, &e, &err), 1);
    assert_int_equal(e.n_labels, 41);
    for (int i = 0; i < 40; i++) {
        char want[32];
        snprintf(want, sizeof want, "v\\%d\n", i);
        assert_str(e.labels[i + 1].value, want);
    }
    ingest_text_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_basic),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_histogram_classic),
        cmocka_unit_test(test_openmetrics),
        cmocka_unit_test(test_openmetrics_errors),
        cmocka_unit_test(test_errors_line_col),
        cmocka_unit_test(test_sticky_error_and_pos),
        cmocka_unit_test(test_quoted_names_and_whitespace),
        cmocka_unit_test(test_prometheus_spacing),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_many_escaped_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
