/* tests/unit/ingest/test_config.c -- the YAML scrape configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/config.h"
#include "ingest/ingest.h"

static int str_is(tsdb_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

#define assert_str(s, lit)                                                             \
    do {                                                                               \
        tsdb_str s_ = (s);                                                             \
        if (!str_is(s_, lit))                                                          \
            fail_msg("got \"%.*s\", want \"%s\"", (int)s_.len, s_.p ? s_.p : "", lit); \
    } while (0)

static int parse(const char *yml, ingest_config **out, tsdb_err *err)
{
    return ingest__config_parse("test.yml", yml, strlen(yml), out, err);
}

static void test_full_config(void **state)
{
    (void)state;
    const char *yml = "global:\n"
                      "  scrape_interval: 15s\n"
                      "  scrape_timeout: 5s\n"
                      "  evaluation_interval: 30s\n"
                      "  external_labels:\n"
                      "    cluster: eu1\n"
                      "rule_files: []\n"
                      "scrape_configs:\n"
                      "  - job_name: node\n"
                      "    static_configs:\n"
                      "      - targets: ['localhost:9100', 'other:9100']\n"
                      "        labels: {env: prod}\n"
                      "  - job_name: api\n"
                      "    scrape_interval: 1m30s\n"
                      "    scrape_timeout: 20s\n"
                      "    metrics_path: /custom\n"
                      "    scheme: https\n"
                      "    honor_labels: true\n"
                      "    honor_timestamps: false\n"
                      "    sample_limit: 1000\n"
                      "    label_limit: 30\n"
                      "    body_size_limit: 10MB\n"
                      "    params:\n"
                      "      module: [http_2xx, tcp]\n"
                      "    basic_auth:\n"
                      "      username: u\n"
                      "      password_file: /run/secret\n"
                      "    tls_config:\n"
                      "      ca_file: /ca.pem\n"
                      "      insecure_skip_verify: true\n"
                      "      server_name: api.internal\n"
                      "    file_sd_configs:\n"
                      "      - files: ['/etc/sd/*.json']\n"
                      "        refresh_interval: 30s\n"
                      "      - files: ['/etc/sd2/a.yml']\n"
                      "    relabel_configs:\n"
                      "      - source_labels: [__address__]\n"
                      "        regex: '(.*):\\d+'\n"
                      "        target_label: host\n"
                      "      - action: HashMod\n"
                      "        source_labels: [host]\n"
                      "        modulus: 4\n"
                      "        target_label: __tmp_shard\n"
                      "    metric_relabel_configs:\n"
                      "      - source_labels: [__name__]\n"
                      "        regex: 'go_.*'\n"
                      "        action: drop\n";
    ingest_config *c;
    tsdb_err err;
    int rc = parse(yml, &c, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(c->scrape_interval_ms, 15000);
    assert_int_equal(c->scrape_timeout_ms, 5000);
    assert_int_equal(c->n_external_labels, 1);
    assert_str(c->external_labels[0].name, "cluster");
    assert_str(c->external_labels[0].value, "eu1");
    assert_int_equal(c->n_jobs, 2);

    ingest_scrape_cfg *n = &c->jobs[0];
    assert_str(n->job_name, "node");
    assert_int_equal(n->interval_ms, 15000); /* inherited */
    assert_int_equal(n->timeout_ms, 5000);
    assert_str(n->metrics_path, "/metrics");
    assert_str(n->scheme, "http");
    assert_int_equal(n->honor_labels, 0);
    assert_int_equal(n->honor_timestamps, 1);
    assert_int_equal(n->n_static, 1);
    assert_int_equal(n->static_groups[0].n_targets, 2);
    assert_str(n->static_groups[0].targets[1], "other:9100");
    assert_str(n->static_groups[0].labels[0].name, "env");
    assert_str(n->static_groups[0].labels[0].value, "prod");

    ingest_scrape_cfg *a = &c->jobs[1];
    assert_int_equal(a->interval_ms, 90000);
    assert_int_equal(a->timeout_ms, 20000);
    assert_str(a->metrics_path, "/custom");
    assert_str(a->scheme, "https");
    assert_int_equal(a->honor_labels, 1);
    assert_int_equal(a->honor_timestamps, 0);
    assert_int_equal(a->sample_limit, 1000);
    assert_int_equal(a->label_limit, 30);
    assert_int_equal(a->body_size_limit, 10u << 20);
    assert_int_equal(a->n_params, 2);
    assert_str(a->params[0].name, "module");
    assert_str(a->params[1].value, "tcp");
    assert_int_equal(a->has_basic_auth, 1);
    assert_str(a->ba_user, "u");
    assert_str(a->ba_pass_file, "/run/secret");
    assert_str(a->tls_ca, "/ca.pem");
    assert_int_equal(a->tls_insecure, 1);
    assert_str(a->tls_server_name, "api.internal");
    assert_int_equal(a->n_sd_files, 2);
    assert_str(a->sd_files[0], "/etc/sd/*.json");
    assert_str(a->sd_files[1], "/etc/sd2/a.yml");
    assert_int_equal(a->sd_refresh_ms, 30000);
    assert_int_equal(a->n_relabel, 2);
    assert_int_equal(a->relabel[0].action, INGEST_RELABEL_REPLACE);
    assert_str(a->relabel[0].regex, "(.*):\\d+");
    assert_str(a->relabel[0].replacement, "$1");
    assert_str(a->relabel[0].separator, ";");
    assert_int_equal(a->relabel[0].line, 37);
    assert_int_equal(a->relabel[1].action, INGEST_RELABEL_HASHMOD);
    assert_int_equal(a->relabel[1].modulus, 4);
    assert_int_equal(a->n_metric_relabel, 1);
    assert_int_equal(a->metric_relabel[0].action, INGEST_RELABEL_DROP);
    ingest__config_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yml, *msg;
    } cases[] = {
        {"scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
         "test.yml:3: unknown key \"scrape_intervall\" in scrape_configs"},
        {"globall:\n  x: 1\n", "test.yml:1: unknown key \"globall\" in the top level"},
        {"global:\n  scrape_interval: 5 seconds\n",
         "test.yml:2: scrape_interval: not a valid duration string: \"5 seconds\""},
        {"scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
         "test.yml:2: scrape timeout greater than scrape interval for scrape config with job "
         "name \"a\""},
        {"scrape_configs:\n  - job_name: a\n  - job_name: a\n",
         "test.yml:3: found multiple scrape configs with job name \"a\""},
        {"scrape_configs:\n  - scheme: http\n", "test.yml:2: job_name is empty or missing"},
        {"scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
         "test.yml:2: unsupported scheme \"ftp\" for job \"a\""},
        {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: bogus\n",
         "test.yml:4: unknown relabel action \"bogus\""},
        {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n"
         "        target_label: x\n",
         "test.yml:4: relabel_configs: relabel configuration for hashmod requires non-zero "
         "modulus"},
        {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x]\n"
         "        labels: {\"bad-name\": v}\n",
         "test.yml:5: \"bad-name\" is not a valid label name"},
        {"scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, "
         "password_file: f}\n",
         "test.yml:2: at most one of basic_auth password & password_file must be configured"},
        {"scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [x.txt]\n",
         "test.yml:4: file_sd_configs: \"x.txt\" must end in .json, .yml or .yaml"},
        {"scrape_configs:\n  - job_name: a\n    honor_labels: maybe\n",
         "test.yml:3: honor_labels: \"maybe\" is not a boolean"},
        {"scrape_configs: [\n", "test.yml:2: YAML error"},
        {"scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n",
         "test.yml:2: tls_config: cert_file given without key_file"},
        {"scrape_configs:\n  - job_name: a\n    sample_limit: -3\n",
         "test.yml:3: sample_limit: \"-3\" is not a non-negative integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ingest_config *c = NULL;
        tsdb_err err;
        memset(&err, 0, sizeof err);
        int rc = parse(cases[i].yml, &c, &err);
        if (rc >= 0 || strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
            fail_msg("case %zu: rc %d, msg \"%s\", want \"%s\"", i, rc, err.msg, cases[i].msg);
        assert_null(c);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"15s", 15000},      {"1m", 60000},         {"1m30s", 90000},  {"500ms", 500},
              {"2h", 7200000},     {"1d", 86400000},      {"1w", 604800000}, {"0", 0},
              {"1y", 31536000000}, {"1h1m1s1ms", 3661001}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(tsdb_duration_parse(tsdb_str_c(ok[i].s), &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {"", "15", "1.5s", "s", "1s1m", "1m1m", "-1s", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        if (tsdb_duration_parse(tsdb_str_c(bad[i]), &ms) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    char buf[32];
    ingest__duration_format(90000, buf, sizeof buf);
    assert_string_equal(buf, "1m30s");
    ingest__duration_format(15000, buf, sizeof buf);
    assert_string_equal(buf, "15s");
    ingest__duration_format(0, buf, sizeof buf);
    assert_string_equal(buf, "0s");
    ingest__duration_format(86400000 + 500, buf, sizeof buf);
    assert_string_equal(buf, "1d500ms");
}

static void test_timeout_clamped_and_defaults(void **state)
{
    (void)state;
    /* The global 10s timeout is clamped to a 5s job interval. */
    ingest_config *c;
    tsdb_err err;
    assert_int_equal(
        parse("scrape_configs:\n  - job_name: fast\n    scrape_interval: 5s\n", &c, &err), 0);
    assert_int_equal(c->jobs[0].interval_ms, 5000);
    assert_int_equal(c->jobs[0].timeout_ms, 5000);
    ingest__config_free(c);
    /* An empty file is a valid, empty configuration. */
    assert_int_equal(parse("", &c, &err), 0);
    assert_int_equal(c->n_jobs, 0);
    assert_int_equal(c->scrape_interval_ms, 60000);
    ingest__config_free(c);
}

static void test_file_sd_and_check(void **state)
{
    (void)state;
    char dir[] = "/tmp/cairn-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], ypath[256], cpath[256];
    snprintf(path, sizeof path, "%s/t.json", dir);
    snprintf(ypath, sizeof ypath, "%s/t.yml", dir);
    snprintf(cpath, sizeof cpath, "%s/cairn.yml", dir);
    FILE *f = fopen(path, "w");
    fputs("[{\"targets\": [\"10.0.0.1:9100\", \"10.0.0.2:9100\"], \"labels\": {\"rack\": "
          "\"r1\"}},\n {\"targets\": [\"10.0.0.3:9100\"]}]\n",
          f);
    fclose(f);
    f = fopen(ypath, "w");
    fputs("- targets: [a:1]\n  labels:\n    zone: z\n    oops: [1]\n", f);
    fclose(f);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    ingest_tgroup *g;
    size_t n;
    tsdb_err err;
    assert_int_equal(ingest__file_sd_load(path, &a, &g, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(g[0].n_targets, 2);
    assert_str(g[0].targets[1], "10.0.0.2:9100");
    assert_str(g[0].labels[0].value, "r1");
    assert_str(g[1].targets[0], "10.0.0.3:9100");
    assert_str(g[1].source, path);
    assert_int_equal(ingest__file_sd_load(ypath, &a, &g, &n, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "t.yml:4: label value must be a single value"));
    tsdb_arena_fini(&a);

    /* ingest_config_check reads a file; a missing file is an I/O error naming the path. */
    f = fopen(cpath, "w");
    fputs("scrape_configs:\n  - job_name: x\n    static_configs: [{targets: [a:1]}]\n", f);
    fclose(f);
    assert_int_equal(ingest_config_check(cpath, &err), 0);
    unlink(cpath);
    assert_int_equal(ingest_config_check(cpath, &err), TSDB_EIO);
    assert_non_null(strstr(err.msg, cpath));
    unlink(path);
    unlink(ypath);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_timeout_clamped_and_defaults),
        cmocka_unit_test(test_file_sd_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
