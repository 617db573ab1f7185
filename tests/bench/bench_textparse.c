/* tests/bench/bench_textparse.c -- exposition parser throughput.
 *
 * Pages: a page saved from a real prometheus-node-exporter (tests/bench/data/node_exporter.prom,
 * run from the repository root), the same page repeated to 1 MiB-ish, and a synthetic page of
 * 10,000 series with 4 labels each in both formats. Each page is parsed repeatedly for about a
 * second; the table shows MB/s and samples/s of the parse alone (labels unescaped, values and
 * timestamps converted, nothing stored).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"

static void run(const char *name, const char *page, size_t len, enum ingest_text_format fmt)
{
    size_t samples = 0, iters = 0;
    int64_t t0 = tsdb_mono_ns(), t1;
    volatile double sink = 0;
    do {
        ingest_text *p = ingest_text_new(page, len, fmt);
        ingest_text_entry e;
        tsdb_err err;
        int rc;
        while ((rc = ingest_text_next(p, &e, &err)) > 0) {
            if (e.kind == INGEST_TEXT_SERIES) {
                samples++;
                sink += e.v;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
            exit(1);
        }
        ingest_text_free(p);
        iters++;
        t1 = tsdb_mono_ns();
    } while (t1 - t0 < 1000000000LL || iters < 3);
    double secs = (double)(t1 - t0) / 1e9;
    printf("%-34s %9zu %9zu %10.1f %14.0f\n", name, len, samples / iters,
           (double)len * (double)iters / secs / 1e6, (double)samples / secs);
    (void)sink;
}

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

int main(void)
{
    printf("%-34s %9s %9s %10s %14s\n", "page", "bytes", "samples", "MB/s", "samples/s");
    size_t nl;
    char *ne = read_all("tests/bench/data/node_exporter.prom", &nl);
    if (ne) {
        run("node_exporter (real, text 0.0.4)", ne, nl, INGEST_TEXT_PROM);
        tsdb_buf big;
        tsdb_buf_init(&big);
        while (big.len < (1u << 20))
            tsdb_buf_put(&big, ne, nl);
        run("node_exporter x18 (~1 MiB)", (const char *)big.p, big.len, INGEST_TEXT_PROM);
        tsdb_buf_fini(&big);
        free(ne);
    } else {
        printf("%-34s (tests/bench/data/node_exporter.prom not found: run from the repo root)\n",
               "node_exporter");
    }
    tsdb_buf syn;
    tsdb_buf_init(&syn);
    tsdb_buf_puts(&syn, "# HELP synthetic_requests_total Requests served.\n"
                        "# TYPE synthetic_requests_total counter\n");
    for (int i = 0; i < 10000; i++)
        tsdb_buf_printf(&syn,
                        "synthetic_requests_total{service=\"svc-%d\",instance=\"10.1.%d.%d:8080\","
                        "method=\"%s\",code=\"%d\"} %d.%d\n",
                        i % 50, i / 250, i % 250, i % 3 ? "GET" : "POST", 200 + (i % 5) * 100,
                        i * 7, i % 10);
    run("synthetic 10k series (text)", (const char *)syn.p, syn.len, INGEST_TEXT_PROM);
    tsdb_buf_puts(&syn, "# EOF\n");
    run("synthetic 10k series (OpenMetrics)", (const char *)syn.p, syn.len,
        INGEST_TEXT_OPENMETRICS);
    tsdb_buf_fini(&syn);
    return 0;
}
