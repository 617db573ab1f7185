/* Fuzz target: the PromQL evaluator.
 *
 * Every input that parses is evaluated against a small tsdb (created once in a temporary
 * directory: counters with a reset and a gap, a gauge with NaN, infinities and a staleness
 * marker, histogram buckets) as instant queries at three times, one of them negative, and as a
 * range query, with a small samples limit and a short timeout so hostile queries end quickly.
 * Errors are fine; a crash, or a result that breaks the result invariants (instant vectors with
 * one point at t and distinct, sorted label sets with valid names and non-empty values, range
 * matrices sorted by label set with ascending points inside the query range), aborts.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static tsdb *db;
static char dir[64];

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup(void)
{
    tsdb_close(db);
    db = NULL;
    rm_rf(dir);
}

static void put(const char *name, const char *k, const char *v, const double *vals, size_t n)
{
    tsdb_label l[2] = {{TSDB_STR("__name__"), tsdb_str_c(name)}, {tsdb_str_c(k), tsdb_str_c(v)}};
    tsdb_sample s[64];
    size_t m = 0;
    for (size_t i = 0; i < n && m < 64; i++)
        if (!(isnan(vals[i]) && !tsdb_is_stale_nan(vals[i]) && i % 2)) /* odd NaN = gap */
            s[m++] = (tsdb_sample){(int64_t)i * 30000, vals[i]};
    tsdb_batch_series bs = {{l, 2}, s, m};
    tsdb_batch b = {&bs, 1};
    tsdb_append_stats st;
    (void)tsdb_append(db, &b, &st, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (db)
        return 0;
    tsdb_log_set_level(TSDB_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/cairn-fuzz-eval-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    o.retention_ms = -1;
    if (tsdb_open(&o, &db, NULL) < 0)
        abort();
    atexit(cleanup);
    double c[20], g[20], b1[20], b2[20];
    for (int i = 0; i < 20; i++) {
        c[i] = i < 12 ? i * 4.0 : (i - 12) * 2.0;
        g[i] = sin(i) * 100;
        b1[i] = i;
        b2[i] = i * 3.0;
    }
    c[5] = NAN; /* gap */
    g[3] = NAN;
    g[4] = INFINITY;
    g[8] = -INFINITY;
    g[10] = tsdb_stale_nan();
    g[12] = 1e308;
    put("c", "job", "a", c, 20);
    put("c", "job", "b", b2, 20);
    put("g", "job", "a", g, 20);
    put("h_bucket", "le", "1", b1, 20);
    put("h_bucket", "le", "+Inf", b2, 20);
    return 0;
}

static void check_vector(const query_result *r, int64_t t, tsdb_arena *a)
{
    for (size_t i = 0; i < r->n_series; i++) {
        if (r->series[i].n_pts != 1 || r->series[i].pts[0].t != t)
            abort();
        /* Names valid, sorted and unique, no empty values. Values need not be UTF-8:
         * label_replace can build any bytes, and Prometheus does not check them either. */
        tsdb_labels l = r->series[i].labels;
        for (size_t k = 0; k < l.n; k++)
            if (!tsdb_label_name_valid(l.v[k].name) || l.v[k].value.len == 0 ||
                (k > 0 && tsdb_str_cmp(l.v[k - 1].name, l.v[k].name) >= 0))
                abort();
        for (size_t j = 0; j < i; j++)
            if (tsdb_labels_equal(r->series[i].labels, r->series[j].labels))
                abort();
    }
    (void)a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (!db)
        LLVMFuzzerInitialize(NULL, NULL);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    query_expr *e;
    tsdb_err err;
    if (query_parse(&a, (const char *)data, size, &e, &err) < 0) {
        tsdb_arena_fini(&a);
        return 0;
    }
    query_opts o = {.lookback_ms = 0, .timeout_ms = 200, .max_samples = 20000, .cancel = NULL};
    static const int64_t times[] = {300000, 0, -90000};
    for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
        query_result r;
        if (query_exec_instant(db, e, times[k], &o, &a, &r, &err) < 0) {
            if (err.msg[0] == '\0')
                abort(); /* every error explains itself */
            continue;
        }
        if (r.type == QUERY_VECTOR)
            check_vector(&r, times[k], &a);
    }
    query_result r;
    const int64_t start = -60000, end = 600000, step = 45000;
    if (query_exec_range(db, e, start, end, step, &o, &a, &r, &err) == 0) {
        if (r.type != QUERY_MATRIX)
            abort();
        for (size_t i = 0; i < r.n_series; i++) {
            if (i > 0 && tsdb_labels_cmp(r.series[i - 1].labels, r.series[i].labels) >= 0)
                abort();
            for (size_t j = 0; j < r.series[i].n_pts; j++) {
                int64_t t = r.series[i].pts[j].t;
                if (t < start || t > end || (t - start) % step != 0)
                    abort();
                if (j > 0 && r.series[i].pts[j - 1].t >= t)
                    abort();
            }
        }
    }
    tsdb_arena_fini(&a);
    return 0;
}
