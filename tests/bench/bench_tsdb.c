/* bench_tsdb -- storage engine macro benchmark.
 *
 * Workload: N node-exporter-like series (default 100,000; BENCH_SERIES overrides) scraped every
 * 15 s for 2 h, appended through tsdb_append one scrape (all series, one sample each) per batch,
 * with the default fsync policy (every 1000 ms). Value shapes mimic node exporter: CPU seconds
 * in hundredths, byte counters in pages, idle disks, a load average, rarely changing gauges,
 * constants. Reports:
 *   append       samples/s over the whole run (one appender thread)
 *   rss/series   resident memory growth per active series after the 2 h
 *   reopen       tsdb_open time, i.e. WAL replay of the 2 h
 *   cut          head -> block time, and block bytes per sample on disk
 *   select       select + decode of 10% of the series (>= 10k at the default) over 1 h
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/base.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

static uint64_t rng = 42;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static const char *metrics[] = {
    "node_cpu_seconds_total",      "node_memory_MemFree_bytes",
    "node_disk_read_bytes_total",  "node_network_receive_bytes_total",
    "node_filesystem_avail_bytes", "node_load1",
    "node_netstat_Tcp_InSegs",     "node_vmstat_pgfault",
    "node_context_switches_total", "node_boot_time_seconds",
};

int main(void)
{
    size_t n_series = 100000;
    const char *env = getenv("BENCH_SERIES");
    if (env && atol(env) > 0)
        n_series = (size_t)atol(env);
    const int64_t step = 15000, span = 2 * 3600 * 1000;
    const size_t n_scrapes = (size_t)(span / step);
    tsdb_log_set_level(TSDB_LOG_WARN);

    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/cairn-bench-XXXXXX");
    if (!mkdtemp(dir))
        return 1;

    /* Series labels: {__name__, instance, job, shard, cpu|device}. */
    char(*inst)[24] = malloc(n_series * sizeof(*inst));
    char(*dev)[16] = malloc(n_series * sizeof(*dev));
    char(*shard)[8] = malloc(n_series * sizeof(*shard));
    tsdb_label(*lbl)[5] = malloc(n_series * sizeof(*lbl));
    double *val = malloc(n_series * sizeof(double));
    tsdb_sample *smp = malloc(n_series * sizeof(*smp));
    tsdb_batch_series *bs = malloc(n_series * sizeof(*bs));
    for (size_t i = 0; i < n_series; i++) {
        size_t m = i % 10;
        snprintf(inst[i], sizeof(inst[i]), "10.0.%zu.%zu:9100", (i / 1000) % 256, i / 100 % 10);
        snprintf(dev[i], sizeof(dev[i]), "%zu", i / 10 % 100);
        snprintf(shard[i], sizeof(shard[i]), "%zu", i % 10);
        lbl[i][0] = (tsdb_label){TSDB_STR("__name__"), tsdb_str_c(metrics[m])};
        lbl[i][1] = (tsdb_label){TSDB_STR("device"), tsdb_str_c(dev[i])};
        lbl[i][2] = (tsdb_label){TSDB_STR("instance"), tsdb_str_c(inst[i])};
        lbl[i][3] = (tsdb_label){TSDB_STR("job"), TSDB_STR("node")};
        lbl[i][4] = (tsdb_label){TSDB_STR("shard"), tsdb_str_c(shard[i])};
        val[i] = (double)(rnd() % 1000000);
        bs[i] = (tsdb_batch_series){{lbl[i], 5}, &smp[i], 1};
    }

    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1; /* cuts are timed separately below */
    o.retention_ms = -1;
    tsdb *db;
    tsdb_err e;
    long rss0 = rss_kib();
    if (tsdb_open(&o, &db, &e)) {
        fprintf(stderr, "open: %s\n", e.msg);
        return 1;
    }
    double t0 = now_s(), c0 = cpu_s();
    size_t total = 0;
    for (size_t k = 0; k < n_scrapes; k++) {
        int64_t t = (int64_t)k * step; /* scrapes on a steady interval */
        for (size_t i = 0; i < n_series; i++) {
            size_t m = i % 10;
            uint64_t r = rnd();
            switch (m) {
            case 0: /* cpu seconds: 15 s times a utilisation in hundredths */
                val[i] += 0.15 * (double)(r % 101);
                break;
            case 1: /* free memory: moves in pages now and then */
                if (r % 3 == 0)
                    val[i] += (double)((int64_t)(r >> 8) % 512 - 256) * 4096;
                break;
            case 2: /* disk bytes: often idle */
                if (r % 2 == 0)
                    val[i] += (double)((r >> 8) % 64) * 4096;
                break;
            case 3: /* network bytes */
                val[i] += (double)((r >> 8) % 20000);
                break;
            case 4: /* filesystem free space: rarely changes */
                if (r % 10 == 0)
                    val[i] -= 4096;
                break;
            case 5: /* load average, two decimals */
                val[i] = (double)((r >> 8) % 400) / 100.0;
                break;
            case 9: /* boot time: constant */
                break;
            default: /* event counters */
                val[i] += (double)((r >> 8) % 200);
                break;
            }
            smp[i] = (tsdb_sample){t, val[i]};
        }
        tsdb_batch b = {bs, n_series};
        tsdb_append_stats st;
        if (tsdb_append(db, &b, &st, &e) != TSDB_OK || st.accepted != n_series) {
            fprintf(stderr, "append failed at scrape %zu: %s\n", k, e.msg);
            return 1;
        }
        total += n_series;
    }
    double t_append = now_s() - t0, c_append = cpu_s() - c0;
    long rss1 = rss_kib();
    tsdb_stats st;
    tsdb_stats_get(db, &st);
    printf("%-34s %12s\n", "metric", "value");
    printf("%-34s %12zu\n", "series", n_series);
    printf("%-34s %12zu\n", "samples appended", total);
    printf("%-34s %12.0f\n", "append samples/s (wall, 1 thread)", (double)total / t_append);
    printf("%-34s %12.0f\n", "append samples/s per CPU-second", (double)total / c_append);
    printf("%-34s %12.0f\n", "head RSS bytes/series",
           (double)(rss1 - rss0) * 1024 / (double)n_series);
    printf("%-34s %12.2f\n", "WAL bytes/sample", (double)st.bytes_wal / (double)total);
    tsdb_close(db);

    t0 = now_s();
    if (tsdb_open(&o, &db, &e)) {
        fprintf(stderr, "reopen: %s\n", e.msg);
        return 1;
    }
    double t_reopen = now_s() - t0;
    printf("%-34s %12.2f\n", "reopen (WAL replay) s", t_reopen);
    tsdb_stats_get(db, &st);
    if (st.n_samples_head != total)
        fprintf(stderr, "replay restored %llu of %zu samples\n",
                (unsigned long long)st.n_samples_head, total);

    /* Select + decode 10% of the series over the last hour (from the head). */
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_matcher *m;
    tsdb_matcher_new(TSDB_MATCH_EQ, TSDB_STR("shard"), TSDB_STR("3"), &a, &m, NULL);
    const tsdb_matcher *ms[1] = {m};
    for (int pass = 0; pass < 2; pass++) {
        t0 = now_s();
        tsdb_querier *q;
        tsdb_series_set *set;
        size_t ns = 0, nsmp = 0;
        if (tsdb_querier_open(db, span - 3600 * 1000, span, &q, &e) ||
            tsdb_querier_select(q, ms, 1, &set, &e)) {
            fprintf(stderr, "select: %s\n", e.msg);
            return 1;
        }
        tsdb_labels l;
        tsdb_iter *it;
        while (tsdb_series_next(set, &l, &it) > 0) {
            tsdb_sample s;
            ns++;
            while (tsdb_iter_next(it, &s) > 0)
                nsmp++;
        }
        tsdb_querier_close(q);
        double dt = now_s() - t0;
        printf("%-34s %12.3f  (%zu series, %zu samples, %s)\n", "select+decode 1h s", dt, ns, nsmp,
               pass == 0 ? "head" : "block");
        if (pass == 0) {
            /* Cut everything into a block, then query the same range from it. */
            t0 = now_s();
            int nb = 0, rc;
            while ((rc = tsdb_cut_head(db, &e)) > 0)
                nb++;
            tsdb_maintain(db, &e);
            tsdb_stats_get(db, &st);
            printf("%-34s %12.2f  (%d blocks)\n", "cut head -> blocks s", now_s() - t0, nb);
            printf("%-34s %12.3f\n", "block bytes/sample", (double)st.bytes_blocks / (double)total);
            printf("%-34s %12.2f\n", "index bytes/series",
                   (double)st.bytes_index / (double)n_series);
        }
    }
    tsdb_arena_fini(&a);
    tsdb_close(db);
    if (!getenv("BENCH_KEEP"))
        tsdb__os_remove_all(dir, NULL);
    else
        printf("data kept in %s\n", dir);
    free(inst);
    free(dev);
    free(shard);
    free(lbl);
    free(val);
    free(smp);
    free(bs);
    return 0;
}
