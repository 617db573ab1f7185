/* Unit tests for query/exec.c and query/eval.c against a real tsdb in a temporary directory:
 * result shapes of instant and range queries, range/instant agreement at every step for a set
 * of expressions over data with gaps, staleness markers and counter resets, the samples limit,
 * cancellation, and execution errors with Prometheus' messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static char dir[64];
static tsdb *db;

static void rm_dir(const char *d)
{
    DIR *dp = opendir(d);
    if (dp) {
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", d, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_dir(p);
            else
                unlink(p);
        }
        closedir(dp);
    }
    rmdir(d);
}

static void put(const char *name, const char *job, const double *v, size_t n, int64_t step_ms)
{
    tsdb_label l[2] = {{TSDB_STR("__name__"), tsdb_str_c(name)},
                       {TSDB_STR("job"), tsdb_str_c(job)}};
    tsdb_sample *s = calloc(n, sizeof *s);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]) && !tsdb_is_stale_nan(v[i]))
            continue; /* NaN in the table means "no sample" */
        s[k++] = (tsdb_sample){(int64_t)i * step_ms, v[i]};
    }
    tsdb_batch_series bs = {{l, 2}, s, k};
    tsdb_batch b = {&bs, 1};
    tsdb_append_stats st;
    tsdb_err err;
    assert_int_equal(tsdb_append(db, &b, &st, &err), 0);
    assert_int_equal(st.accepted, k);
    free(s);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cairn-test-eval-XXXXXX");
    assert_non_null(mkdtemp(dir));
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    o.retention_ms = -1;
    tsdb_err err;
    assert_int_equal(tsdb_open(&o, &db, &err), 0);
    /* 40 samples every 15 s; gaps, a staleness marker and counter resets */
    double st = tsdb_stale_nan();
    double c1[40], c2[40], g1[40];
    for (int i = 0; i < 40; i++) {
        c1[i] = i * 3.0;
        c2[i] = (i % 13) * 7.0;
        g1[i] = sin(i / 3.0) * 10;
    }
    for (int i = 10; i < 18; i++)
        c1[i] = NAN; /* a 2 minute gap */
    c2[25] = st;
    g1[5] = NAN;
    g1[30] = st;
    put("ctr", "a", c1, 40, 15000);
    put("ctr", "b", c2, 40, 15000);
    put("gauge", "a", g1, 40, 15000);
    put("gauge", "b", c2, 40, 15000);
    /* Churn: 200 series, each alive for 10 samples, one after the other. */
    for (int k = 0; k < 200; k++) {
        char job[16];
        snprintf(job, sizeof job, "c%03d", k);
        double v[10];
        for (int i = 0; i < 10; i++)
            v[i] = k + i;
        tsdb_label l[2] = {{TSDB_STR("__name__"), TSDB_STR("churn")},
                           {TSDB_STR("job"), tsdb_str_c(job)}};
        tsdb_sample s[10];
        for (int i = 0; i < 10; i++)
            s[i] = (tsdb_sample){(int64_t)k * 150000 + i * 15000, v[i]};
        tsdb_batch_series bs = {{l, 2}, s, 10};
        tsdb_batch b = {&bs, 1};
        tsdb_append_stats ast;
        assert_int_equal(tsdb_append(db, &b, &ast, NULL), 0);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsdb_close(db);
    rm_dir(dir);
    return 0;
}

static query_expr *parse(tsdb_arena *a, const char *q)
{
    query_expr *e;
    tsdb_err err;
    if (query_parse(a, q, strlen(q), &e, &err) < 0)
        fail_msg("parse %s: %s", q, err.msg);
    return e;
}

static int same(double a, double b)
{
    if (isnan(a) && isnan(b))
        return 1;
    if (a == b)
        return 1;
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b));
}

/* Every step of a range query equals an instant query at that time. */
static void test_range_matches_instant(void **state)
{
    (void)state;
    static const char *exprs[] = {
        "ctr",
        "gauge offset 30s",
        "rate(ctr[1m])",
        "increase(ctr[2m])",
        "irate(ctr[1m])",
        "delta(gauge[1m])",
        "deriv(gauge[2m])",
        "sum by (job) (rate(ctr[1m]))",
        "avg(gauge)",
        "max_over_time(gauge[1m])",
        "count_over_time(ctr[1m])",
        "changes(ctr[3m])",
        "resets(ctr[5m])",
        "ctr + on(job) gauge",
        "ctr > 20",
        "ctr > bool 20",
        "gauge and ctr > 10",
        "gauge or ctr",
        "ctr unless gauge < 0",
        "topk(1, gauge)",
        "quantile(0.5, gauge)",
        "count_values(\"v\", ctr)",
        "absent(nothing)",
        "absent_over_time(gauge{job=\"a\"}[10s])",
        "max_over_time(rate(ctr[1m])[2m:15s])",
        "sum_over_time(gauge[1m:20s] offset 10s)",
        "timestamp(gauge)",
        "time() - timestamp(ctr)",
        "scalar(gauge{job=\"a\"}) * 2",
        "vector(1) + 1",
        "-gauge{job=\"a\"}",
        "label_replace(ctr, \"x\", \"$1\", \"job\", \"(.)\")",
        "histogram_quantile(0.5, label_replace(ctr, \"le\", \"+Inf\", \"job\", \".*\"))",
        "predict_linear(gauge[2m], 60)",
        "holt_winters(gauge[3m], 0.3, 0.6)",
        "last_over_time(gauge[1m])",
        "rate(ctr[1m] @ 300)",
        "ctr @ 200",
    };
    const int64_t start = 0, end = 600000, step = 10000;
    for (size_t k = 0; k < sizeof exprs / sizeof exprs[0]; k++) {
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        query_expr *e = parse(&a, exprs[k]);
        query_result rr;
        tsdb_err err;
        if (query_exec_range(db, e, start, end, step, NULL, &a, &rr, &err) < 0)
            fail_msg("%s: %s", exprs[k], err.msg);
        assert_int_equal(rr.type, QUERY_MATRIX);
        for (size_t s = 1; s < rr.n_series; s++)
            assert_true(tsdb_labels_cmp(rr.series[s - 1].labels, rr.series[s].labels) < 0);
        size_t total = 0;
        for (int64_t t = start; t <= end; t += step) {
            query_result ir;
            if (query_exec_instant(db, e, t, NULL, &a, &ir, &err) < 0)
                fail_msg("%s at %lld: %s", exprs[k], (long long)t, err.msg);
            size_t n_at_t = 0;
            for (size_t s = 0; s < rr.n_series; s++) {
                const query_series *rs = &rr.series[s];
                for (size_t j = 0; j < rs->n_pts; j++) {
                    if (rs->pts[j].t != t)
                        continue;
                    n_at_t++;
                    double want;
                    if (ir.type == QUERY_SCALAR) {
                        want = ir.scalar.v;
                    } else {
                        size_t m;
                        for (m = 0; m < ir.n_series; m++)
                            if (tsdb_labels_equal(ir.series[m].labels, rs->labels))
                                break;
                        if (m == ir.n_series)
                            fail_msg("%s at %lld: %s only in the range result", exprs[k],
                                     (long long)t, tsdb_labels_format(rs->labels, &a));
                        want = ir.series[m].pts[0].v;
                    }
                    if (!same(want, rs->pts[j].v))
                        fail_msg("%s at %lld: range %.17g, instant %.17g", exprs[k], (long long)t,
                                 rs->pts[j].v, want);
                }
            }
            size_t n_inst = ir.type == QUERY_SCALAR ? 1 : ir.n_series;
            if (n_inst != n_at_t)
                fail_msg("%s at %lld: %zu series in the range result, %zu instant", exprs[k],
                         (long long)t, n_at_t, n_inst);
            total += n_at_t;
        }
        if (total == 0)
            fail_msg("%s: empty everywhere, the comparison proves nothing", exprs[k]);
        tsdb_arena_fini(&a);
    }
}

static void test_shapes(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    query_result r;
    /* A range-vector instant query returns the raw window. */
    assert_int_equal(
        query_exec_instant(db, parse(&a, "ctr{job=\"b\"}[1m]"), 60000, NULL, &a, &r, &err), 0);
    assert_int_equal(r.type, QUERY_MATRIX);
    assert_int_equal(r.n_series, 1);
    assert_int_equal(r.series[0].n_pts, 5); /* 0, 15, 30, 45, 60 s: closed window */
    assert_int_equal(r.series[0].pts[0].t, 0);
    assert_true(r.samples_loaded >= 5);
    /* A scalar, a string, and a range query of a scalar. */
    assert_int_equal(query_exec_instant(db, parse(&a, "1 + 2"), 1000, NULL, &a, &r, &err), 0);
    assert_int_equal(r.type, QUERY_SCALAR);
    assert_true(r.scalar.v == 3 && r.scalar.t == 1000);
    assert_int_equal(query_exec_instant(db, parse(&a, "\"hi\""), 0, NULL, &a, &r, &err), 0);
    assert_int_equal(r.type, QUERY_STRING);
    assert_int_equal(r.string.len, 2);
    assert_int_equal(query_exec_range(db, parse(&a, "time()"), 0, 20000, 10000, NULL, &a, &r, &err),
                     0);
    assert_int_equal(r.n_series, 1);
    assert_int_equal(r.series[0].labels.n, 0);
    assert_int_equal(r.series[0].n_pts, 3);
    assert_true(r.series[0].pts[2].v == 20);
    /* Range queries reject range vectors and strings. */
    assert_int_equal(query_exec_range(db, parse(&a, "ctr[1m]"), 0, 1000, 1000, NULL, &a, &r, &err),
                     TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "range vector"));
    assert_int_equal(query_exec_range(db, parse(&a, "ctr"), 0, 1000, 0, NULL, &a, &r, &err),
                     TSDB_EINVAL);
    assert_int_equal(
        query_exec_range(db, parse(&a, "1"), INT64_MIN, INT64_MAX, 1, NULL, &a, &r, &err),
        TSDB_EINVAL);
    /* Lookback: the staleness marker of ctr{job="b"} at 375 s hides it right away; after the
     * next sample it is back. */
    assert_int_equal(
        query_exec_instant(db, parse(&a, "ctr{job=\"b\"}"), 380000, NULL, &a, &r, &err), 0);
    assert_int_equal(r.n_series, 0);
    assert_int_equal(
        query_exec_instant(db, parse(&a, "ctr{job=\"b\"}"), 390000, NULL, &a, &r, &err), 0);
    assert_int_equal(r.n_series, 1);
    /* A custom lookback of 10 s drops a sample 15 s old. */
    query_opts o = {.lookback_ms = 10000};
    assert_int_equal(query_exec_instant(db, parse(&a, "ctr{job=\"a\"}"), 14000, &o, &a, &r, &err),
                     0);
    assert_int_equal(r.n_series, 0);
    tsdb_arena_fini(&a);
}

static void test_limits_and_cancel(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    query_result r;
    query_opts o = {.max_samples = 20};
    assert_int_equal(query_exec_range(db, parse(&a, "sum(ctr)"), 0, 600000, 1000, &o, &a, &r, &err),
                     TSDB_ELIMIT);
    assert_string_equal(err.msg, "query processing would load too many samples into memory in "
                                 "query execution");
    /* Too many steps, or a subquery with too many inner steps, fail before allocating. */
    o.max_samples = 1000;
    assert_int_equal(query_exec_range(db, parse(&a, "1"), 0, 86400000, 1, &o, &a, &r, &err),
                     TSDB_ELIMIT);
    assert_int_equal(
        query_exec_instant(db, parse(&a, "max_over_time(ctr[1d:1s])"), 0, &o, &a, &r, &err),
        TSDB_ELIMIT);
    o.max_samples = 0;
    /* 600,001 steps cannot finish within 1 ms: the deadline is checked while stepping. */
    o.timeout_ms = 1;
    assert_int_equal(query_exec_range(db, parse(&a, "sum(rate(ctr[1m])) + sum(gauge)"), 0, 600000,
                                      1, &o, &a, &r, &err),
                     TSDB_ETIMEOUT);
    o.timeout_ms = 0;
    volatile int cancel = 1;
    o.cancel = &cancel;
    assert_int_equal(query_exec_instant(db, parse(&a, "ctr"), 0, &o, &a, &r, &err), TSDB_ECANCELED);
    tsdb_arena_fini(&a);
}

static void test_exec_errors(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    query_result r;
    /* Two series per job on the right: many-to-many. */
    assert_int_equal(query_exec_instant(db, parse(&a, "ctr + on(job) {job=~\"a|b\"}"), 30000, NULL,
                                        &a, &r, &err),
                     TSDB_EEXEC);
    assert_non_null(strstr(err.msg, "many-to-many matching not allowed: matching labels must be "
                                    "unique on one side"));
    assert_non_null(strstr(err.msg, "found duplicate series for the match group {job=\"a\"}"));
    /* Names dropped by a function make ctr and gauge collide. */
    assert_int_equal(
        query_exec_instant(db, parse(&a, "abs({job=\"a\"})"), 30000, NULL, &a, &r, &err),
        TSDB_EEXEC);
    assert_string_equal(err.msg, "vector cannot contain metrics with the same labelset");
    assert_int_equal(
        query_exec_instant(db, parse(&a, "rate({job=\"a\"}[1m])"), 30000, NULL, &a, &r, &err),
        TSDB_EEXEC);
    /* One-to-one matching with two left series per signature. */
    assert_int_equal(query_exec_instant(db, parse(&a, "{job=\"a\"} + ignoring(__name__) ctr"),
                                        30000, NULL, &a, &r, &err),
                     TSDB_EEXEC);
    assert_non_null(strstr(err.msg, "many-to-one matching must be explicit"));
    tsdb_arena_fini(&a);
}

/* A range query over series that come and go holds only the steps each series is present in:
 * 200 series x 2,067 steps would take megabytes as dense arrays. */
static void test_churn_memory(void **state)
{
    (void)state;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    query_result r;
    query_expr *e = parse(&a, "churn * 2 + on(job) churn");
    size_t before = tsdb_arena_used(&a);
    assert_int_equal(query_exec_range(db, e, 0, 31000000, 15000, NULL, &a, &r, &err), 0);
    size_t used = tsdb_arena_used(&a) - before;
    assert_int_equal(r.n_series, 200);
    size_t pts = 0;
    for (size_t s = 0; s < r.n_series; s++) {
        pts += r.series[s].n_pts;
        if (r.series[s].n_pts != 30)
            fail_msg("%s: %zu points from %lld to %lld", tsdb_labels_format(r.series[s].labels, &a),
                     r.series[s].n_pts, (long long)r.series[s].pts[0].t,
                     (long long)r.series[s].pts[r.series[s].n_pts - 1].t);
    }
    assert_int_equal(pts, 6000);
    if (used > 1500000)
        fail_msg("%zu bytes of arena for %zu points", used, pts);
    tsdb_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_matches_instant), cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_limits_and_cancel),     cmocka_unit_test(test_exec_errors),
        cmocka_unit_test(test_churn_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
