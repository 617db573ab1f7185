/* tests/bench/bench_jsonw.c -- the cost of writing query results as JSON.
 *
 * Formats sample values (Prometheus' shortest round-trip strings) and timestamps, and writes a
 * whole matrix (1,000 series x 1,000 points) through the streaming writer. Prints a table of
 * ns per value and MB/s of JSON produced. On a busy machine compare instruction counts instead:
 * valgrind --tool=callgrind build/release/tests/bench/bench_jsonw 20000
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/jsonw.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    /* argv[1]: values per run (default 1,000,000), smaller for callgrind */
    int N = argc > 1 ? atoi(argv[1]) : 1000000;
    if (N < 1000)
        N = 1000;
    double *v = malloc((size_t)N * sizeof *v);
    srand(1);
    const char *names[] = {"counters (integers)", "gauges (2 decimals)", "random doubles"};
    printf("%-24s %12s\n", "values", "ns/value");
    for (int kind = 0; kind < 3; kind++) {
        for (int i = 0; i < N; i++) {
            if (kind == 0)
                v[i] = (double)(rand() % 100000000);
            else if (kind == 1)
                v[i] = (double)(rand() % 100000) / 100.0;
            else
                v[i] = (double)rand() / RAND_MAX * pow(10, rand() % 20 - 10);
        }
        char out[32];
        size_t total = 0;
        double t0 = now_s();
        for (int i = 0; i < N; i++)
            total += api__fmt_float(v[i], out);
        double dt = now_s() - t0;
        printf("%-24s %12.1f   (%zu bytes)\n", names[kind], dt / N * 1e9, total);
    }
    char out[32];
    double t0 = now_s();
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += api__fmt_ts(1700000000000 + (int64_t)i * 15000, out);
    printf("%-24s %12.1f   (%zu bytes)\n", "timestamps", (now_s() - t0) / N * 1e9, total);

    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_label lv[] = {{TSDB_STR("__name__"), TSDB_STR("node_cpu_seconds_total")},
                       {TSDB_STR("cpu"), TSDB_STR("0")},
                       {TSDB_STR("instance"), TSDB_STR("host-01:9100")},
                       {TSDB_STR("mode"), TSDB_STR("idle")}};
    t0 = now_s();
    api_json j;
    api__json_init(&j, &b);
    api__json_arr_begin(&j);
    for (int s = 0; s < 1000; s++) {
        api__json_obj_begin(&j);
        api__json_key(&j, "metric");
        api__json_labels(&j, (tsdb_labels){lv, 4});
        api__json_key(&j, "values");
        api__json_arr_begin(&j);
        for (int k = 0; k < 1000; k++)
            api__json_point(&j, 1700000000000 + (int64_t)k * 15000, v[(s * 1000 + k) % N]);
        api__json_arr_end(&j);
        api__json_obj_end(&j);
    }
    api__json_arr_end(&j);
    double dt = now_s() - t0;
    printf("%-24s %12.1f   (%.1f MB JSON, %.0f MB/s)\n", "matrix point", dt / 1e6 * 1e9,
           (double)b.len / 1e6, (double)b.len / 1e6 / dt);
    tsdb_buf_fini(&b);
    free(v);
    return 0;
}
