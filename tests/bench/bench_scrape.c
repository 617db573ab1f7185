/* tests/bench/bench_scrape.c -- the scrape path after the HTTP transfer: parse, attach target
 * labels, metric relabeling, sort/validate/hash, staleness bookkeeping, and tsdb_append.
 *
 * White-box: includes ingest/scrape.c to drive one target through the code after the transfer on a
 * page held in memory (store_scrape), against a real tsdb in a temporary directory (WAL fsync every
 * second). Pages: the saved node-exporter page (run from the repository root) and a synthetic
 * 10,000-series page. Each scrape is one second later than the previous one, as a real scrape loop
 * would write.
 */
#include "ingest/scrape.c"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    tsdb_buf b;
    tsdb_buf_init(&b);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        tsdb_buf_put(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return (char *)b.p;
}

static void run(const char *name, const char *page, size_t len, int relabel)
{
    char dir[] = "/tmp/cairn-bench-scrape-XXXXXX";
    if (!mkdtemp(dir))
        return;
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    tsdb *db;
    tsdb_err err;
    if (tsdb_open(&o, &db, &err) != 0) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        exit(1);
    }
    const char *yml = relabel ? "scrape_configs:\n  - job_name: bench\n"
                                "    static_configs: [{targets: ['127.0.0.1:9100']}]\n"
                                "    metric_relabel_configs:\n"
                                "      - {source_labels: [__name__], regex: 'go_gc_.*', "
                                "action: drop}\n"
                                "      - {action: labeldrop, regex: 'tmp_.*'}\n"
                              : "scrape_configs:\n  - job_name: bench\n"
                                "    static_configs: [{targets: ['127.0.0.1:9100']}]\n";
    ingest_scraper s;
    memset(&s, 0, sizeof s);
    s.db = db;
    pthread_mutex_init(&s.mu, NULL);
    tsdb_arena_init(&s.meta.a, 0);
    ingest_config *cfg;
    if (ingest__config_parse("bench.yml", yml, strlen(yml), &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    pool p;
    memset(&p, 0, sizeof p);
    p.cfg = &cfg->jobs[0];
    tsdb_arena_init(&p.dropped_arena, 0);
    tsdb_arena_init(&p.sd_arena, 0);
    int64_t t0 = 1700000000000LL;
    target *t =
        target_build(&s, &p, &p.cfg->static_groups[0], p.cfg->static_groups[0].targets[0], t0);
    /* BENCH_SCRAPES=n runs exactly n scrapes per page, for instruction counts (perf stat,
     * callgrind) that a busy machine cannot disturb. */
    const char *env = getenv("BENCH_SCRAPES");
    size_t fixed = env ? (size_t)strtoul(env, NULL, 10) : 0;
    size_t scrapes = 0, samples = 0;
    int64_t start = tsdb_mono_ns(), now;
    do {
        tsdb_buf_put(&t->body, page, len);
        t->start_ms = t0 + (int64_t)scrapes * 1000;
        t->start_mono = tsdb_mono_ns();
        store_scrape(&s, t, "text/plain; version=0.0.4", NULL, 0.01);
        if (t->health != 1) {
            fprintf(stderr, "%s: scrape failed: %s\n", name, t->last_error);
            exit(1);
        }
        samples += t->prev.n;
        scrapes++;
        now = tsdb_mono_ns();
    } while (fixed ? scrapes < fixed : (now - start < 2000000000LL || scrapes < 3));
    double secs = (double)(now - start) / 1e9;
    printf("%-36s %8zu %9zu %10.2f %12.0f %10.1f\n", name, len, samples / scrapes,
           (double)scrapes / secs, (double)samples / secs,
           (double)len * (double)scrapes / secs / 1e6);
    target_free(&s, t);
    tsdb_arena_fini(&p.dropped_arena);
    tsdb_arena_fini(&p.sd_arena);
    free(p.dropped);
    ingest__config_free(cfg);
    tsdb_arena_fini(&s.meta.a);
    free(s.meta.v);
    free(s.meta.idx);
    pthread_mutex_destroy(&s.mu);
    tsdb_close(db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_ERROR);
    printf("%-36s %8s %9s %10s %12s %10s\n", "page (parse+relabel+append)", "bytes", "series",
           "scrapes/s", "samples/s", "MB/s");
    size_t nl;
    char *ne = read_all("tests/bench/data/node_exporter.prom", &nl);
    if (ne) {
        run("node_exporter", ne, nl, 0);
        run("node_exporter + 2 metric relabels", ne, nl, 1);
        free(ne);
    }
    tsdb_buf syn;
    tsdb_buf_init(&syn);
    for (int i = 0; i < 10000; i++)
        tsdb_buf_printf(&syn,
                        "synthetic_requests_total{service=\"svc-%d\",pod=\"10.1.%d.%d:8080\","
                        "method=\"%s\",code=\"%d\"} %d\n",
                        i % 50, i / 250, i % 250, i % 3 ? "GET" : "POST", 200 + (i % 5) * 100,
                        i * 7);
    run("synthetic 10k series", (const char *)syn.p, syn.len, 0);
    run("synthetic 10k series + 2 relabels", (const char *)syn.p, syn.len, 1);
    tsdb_buf_fini(&syn);
    return 0;
}
