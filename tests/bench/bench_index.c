/* Benchmark of the LMDB series index: resolving new and known label sets in one transaction,
 * and select with the common matcher shapes. Prints a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/index.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

#define N_SERIES 100000
#define N_LABELS 6

static double ms_since(int64_t t0)
{
    return (double)(tsdb_mono_ns() - t0) / 1e6;
}

static void row(const char *what, double ms, size_t n)
{
    printf("%-44s %10.1f ms %10.0f ns/op %10zu\n", what, ms, ms * 1e6 / (double)(n ? n : 1), n);
}

static tsdb_matcher *M(tsdb_arena *a, enum tsdb_match_op op, const char *name, const char *val)
{
    tsdb_matcher *m = NULL;
    if (tsdb_matcher_new(op, tsdb_str_c(name), tsdb_str_c(val), a, &m, NULL) != 0) {
        fprintf(stderr, "bad matcher %s\n", val);
        exit(1);
    }
    return m;
}

static size_t sel(tsdb_index *ix, tsdb_arena *a, const tsdb_matcher *const *ms, size_t n)
{
    tsdb_index_rd *r = NULL;
    uint64_t *ids;
    size_t cnt = 0;
    if (tsdb__index_rd_begin(ix, &r, NULL) != 0 ||
        tsdb__index_rd_select(r, ms, n, a, &ids, &cnt, NULL) != 0) {
        fprintf(stderr, "select failed\n");
        exit(1);
    }
    tsdb__index_rd_end(r);
    return cnt;
}

int main(void)
{
    char dir[] = "/tmp/cairn-bench-index-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    tsdb_index *ix = NULL;
    tsdb_err err = {0};
    if (tsdb__index_open(dir, 0, 0, &ix, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_labels *sets = tsdb_arena_alloc(&a, N_SERIES * sizeof *sets);
    for (size_t i = 0; i < N_SERIES; i++) {
        tsdb_label *v = tsdb_arena_alloc(&a, N_LABELS * sizeof *v);
        v[0] = (tsdb_label){TSDB_STR("__name__"),
                            tsdb_str_c(tsdb_arena_sprintf(&a, "metric_%zu", i % 200))};
        v[1] = (tsdb_label){TSDB_STR("env"), tsdb_str_c(i % 3 ? "prod" : "dev")};
        v[2] = (tsdb_label){TSDB_STR("instance"),
                            tsdb_str_c(tsdb_arena_sprintf(&a, "host-%zu:9100", i / 200))};
        v[3] = (tsdb_label){TSDB_STR("job"), tsdb_str_c(tsdb_arena_sprintf(&a, "job%zu", i % 7))};
        v[4] = (tsdb_label){TSDB_STR("path"),
                            tsdb_str_c(tsdb_arena_sprintf(&a, "/api/v1/item/%zu", i % 1000))};
        v[5] = (tsdb_label){TSDB_STR("zone"), tsdb_str_c(i % 2 ? "eu-1" : "us-2")};
        sets[i] = (tsdb_labels){v, N_LABELS};
    }
    uint64_t *ids = malloc(N_SERIES * sizeof *ids);
    printf("%-44s %13s %16s %10s\n", "operation", "total", "per item", "items");

    int64_t t0 = tsdb_mono_ns();
    if (tsdb__index_resolve(ix, sets, N_SERIES, ids, NULL, &err) != 0) {
        fprintf(stderr, "resolve: %s\n", err.msg);
        return 1;
    }
    row("resolve 100k new sets (6 labels), one txn", ms_since(t0), N_SERIES);
    t0 = tsdb_mono_ns();
    tsdb__index_resolve(ix, sets, N_SERIES, ids, NULL, &err);
    row("resolve 100k known sets, one txn", ms_since(t0), N_SERIES);
    t0 = tsdb_mono_ns();
    for (size_t i = 0; i < 1000; i++)
        tsdb__index_resolve(ix, &sets[i * 100], 1, &ids[i], NULL, &err);
    row("resolve 1 known set per txn (x1000)", ms_since(t0), 1000);

    struct {
        const char *what;
        enum tsdb_match_op op[2];
        const char *name[2], *val[2];
        size_t n;
    } q[] = {
        {"select {__name__=\"metric_7\"}", {TSDB_MATCH_EQ}, {"__name__"}, {"metric_7"}, 1},
        {"select {__name__=\"metric_7\",env=\"dev\"}",
         {TSDB_MATCH_EQ, TSDB_MATCH_EQ},
         {"__name__", "env"},
         {"metric_7", "dev"},
         2},
        {"select {env=\"prod\",zone=\"eu-1\"} (large)",
         {TSDB_MATCH_EQ, TSDB_MATCH_EQ},
         {"env", "zone"},
         {"prod", "eu-1"},
         2},
        {"select {path=~\"/api/v1/item/1.*\"}", {TSDB_MATCH_RE}, {"path"}, {"/api/v1/item/1.*"}, 1},
        {"select {path=~\".*7\"}", {TSDB_MATCH_RE}, {"path"}, {".*7"}, 1},
        {"select {job=~\"job1|job2\",env!=\"dev\"}",
         {TSDB_MATCH_RE, TSDB_MATCH_NE},
         {"job", "env"},
         {"job1|job2", "dev"},
         2},
        {"select {__name__=\"metric_3\",instance!~\"host-1.*\"}",
         {TSDB_MATCH_EQ, TSDB_MATCH_NRE},
         {"__name__", "instance"},
         {"metric_3", "host-1.*"},
         2},
    };
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
        const tsdb_matcher *ms[2];
        for (size_t j = 0; j < q[i].n; j++)
            ms[j] = M(&a, q[i].op[j], q[i].name[j], q[i].val[j]);
        size_t cnt = 0;
        int reps = 20;
        t0 = tsdb_mono_ns();
        for (int k = 0; k < reps; k++)
            cnt = sel(ix, &a, ms, q[i].n);
        char label[96];
        snprintf(label, sizeof label, "%s -> %zu", q[i].what, cnt);
        printf("%-60s %8.3f ms/query\n", label, ms_since(t0) / reps);
    }
    printf("%-44s %10.1f MiB\n", "data.mdb size",
           (double)tsdb__index_disk_bytes(ix) / (1024.0 * 1024.0));

    free(ids);
    tsdb_arena_fini(&a);
    tsdb__index_close(ix);
    tsdb__os_remove_all(dir, NULL);
    return 0;
}
