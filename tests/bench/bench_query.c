/* bench_query -- PromQL evaluation speed in process (no HTTP): range and instant queries over
 * 1,000 counters (10 jobs x 100 instances) sampled every 15 s for 6 hours (1.44 M samples) in a
 * tsdb in a temporary directory. Each figure is the best of several runs and includes reading
 * the samples from storage. Prints a table. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define N_JOBS  10
#define N_INST  100
#define N_SER   (N_JOBS * N_INST)
#define STEP_MS 15000
#define HOURS   6
#define N_PTS   (HOURS * 3600 * 1000 / STEP_MS)
#define RUNS    3

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

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

/* Appends all series one hour at a time, so no sample is ever too old for the head. */
static int load(tsdb *db)
{
    static char names[N_SER][2][8];
    static tsdb_label lb[N_SER][3];
    static double val[N_SER];
    tsdb_batch_series *bs = calloc(N_SER, sizeof *bs);
    tsdb_sample *buf = calloc((size_t)N_SER * 240, sizeof *buf);
    for (int s = 0; s < N_SER; s++) {
        snprintf(names[s][0], 8, "%d", s % N_INST);
        snprintf(names[s][1], 8, "j%d", s / N_INST);
        lb[s][0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("http_requests_total")};
        lb[s][1] = (tsdb_label){TSDB_STR("instance"), tsdb_str_c(names[s][0])};
        lb[s][2] = (tsdb_label){TSDB_STR("job"), tsdb_str_c(names[s][1])};
    }
    int rc = 0;
    for (int h = 0; h < HOURS && rc == 0; h++) {
        for (int s = 0; s < N_SER; s++) {
            tsdb_sample *p = buf + (size_t)s * 240;
            for (int i = 0; i < 240; i++) {
                if (rnd() % 1000 == 0)
                    val[s] = 0;
                val[s] += (double)(rnd() % 10);
                p[i] = (tsdb_sample){((int64_t)h * 240 + i) * STEP_MS, val[s]};
            }
            bs[s] = (tsdb_batch_series){{lb[s], 3}, p, 240};
        }
        tsdb_batch b = {bs, N_SER};
        tsdb_append_stats st;
        tsdb_err err;
        rc = tsdb_append(db, &b, &st, &err);
        if (rc == 0 && st.accepted != (size_t)N_SER * 240) {
            fprintf(stderr, "load: %zu accepted\n", st.accepted);
            rc = -1;
        }
    }
    free(bs);
    free(buf);
    return rc;
}

typedef struct bench_q {
    const char *q;
    int64_t step; /* 0: instant query at the end */
} bench_q;

static const bench_q queries[] = {
    {"http_requests_total", 60000},
    {"rate(http_requests_total[5m])", 60000},
    {"sum(rate(http_requests_total[5m]))", 15000},
    {"sum by (job) (rate(http_requests_total[5m]))", 15000},
    {"topk(5, rate(http_requests_total[5m]))", 60000},
    {"max_over_time(http_requests_total[1h])", 60000},
    {"http_requests_total / on(job) group_left sum by (job) (http_requests_total)", 60000},
    {"histogram_quantile(0.9, sum by (le) (label_replace(rate(http_requests_total[5m]), \"le\", "
     "\"$1\", \"instance\", \"(.*)\")))",
     60000},
    {"max_over_time(rate(http_requests_total[5m])[30m:1m])", 300000},
    {"sum(rate(http_requests_total[5m]))", 0},
    {"http_requests_total{job=\"j3\", instance=\"42\"}", 0},
};

int main(void)
{
    char dir[] = "/tmp/cairn-bench-query-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    tsdb_log_set_level(TSDB_LOG_WARN);
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    o.retention_ms = -1;
    tsdb *db;
    tsdb_err err;
    if (tsdb_open(&o, &db, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    int64_t t0 = tsdb_mono_ns();
    if (load(db) < 0) {
        tsdb_close(db);
        rm_rf(dir);
        return 1;
    }
    printf("loaded %d series x %d samples in %.0f ms\n\n", N_SER, N_PTS,
           (double)(tsdb_mono_ns() - t0) / 1e6);
    printf("%-70s %7s %7s %10s %9s\n", "query", "steps", "series", "loaded", "ms");
    const int64_t end = (int64_t)N_PTS * STEP_MS - STEP_MS, start = 0;
    int rc = 0;
    for (size_t k = 0; k < sizeof queries / sizeof queries[0]; k++) {
        double best = 1e30;
        query_result r;
        memset(&r, 0, sizeof r);
        for (int run = 0; run < RUNS; run++) {
            tsdb_arena a;
            tsdb_arena_init(&a, 0);
            query_expr *e;
            int64_t t1 = tsdb_mono_ns();
            int qrc = query_parse(&a, queries[k].q, strlen(queries[k].q), &e, &err);
            if (qrc == 0)
                qrc = queries[k].step
                          ? query_exec_range(db, e, start, end, queries[k].step, NULL, &a, &r, &err)
                          : query_exec_instant(db, e, end, NULL, &a, &r, &err);
            double ms = (double)(tsdb_mono_ns() - t1) / 1e6;
            if (qrc < 0) {
                fprintf(stderr, "%s: %s\n", queries[k].q, err.msg);
                rc = 1;
            }
            if (ms < best)
                best = ms;
            tsdb_arena_fini(&a);
        }
        char q[71];
        snprintf(q, sizeof q, "%s", queries[k].q);
        printf("%-70s %7lld %7zu %10llu %9.2f\n", q,
               queries[k].step ? (long long)((end - start) / queries[k].step + 1) : 1LL, r.n_series,
               (unsigned long long)r.samples_loaded, best);
    }
    tsdb_close(db);
    rm_rf(dir);
    return rc;
}
