/* tools/cairnctl_tsdb.c -- `cairnctl tsdb ...`: a data directory without a server.
 *
 *   list DIR       blocks (range, level, series, chunks, samples, bytes), head and WAL
 *   analyze DIR    cardinality, churn per block, chunk fill and compression per metric
 *   dump DIR       samples as OpenMetrics text (what `tsdb import openmetrics` reads back) or
 *                  JSON lines
 *   verify DIR     every block section and chunk CRC, block series against the index, every
 *                  WAL record; each problem printed with its location; exit 1 if any
 *   import openmetrics FILE DIR   backfill: writes blocks for samples older than the head
 *
 * The read commands are safe beside a running server: blocks are mapped read-only, the index
 * is opened read-only (LMDB readers do not block its writer), the WAL is only read. import
 * takes the directory's lock, so the server must be stopped for it.
 */
#include "tools/cairnctl.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cairn.h"
#include "ingest/ingest.h"
#include "tsdb/block.h"
#include "tsdb/chunk.h"
#include "tsdb/db.h"
#include "tsdb/index.h"
#include "tsdb/os.h"
#include "tsdb/record.h"
#include "tsdb/wal.h"

/* ---- Shared helpers ------------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *out, size_t cap)
{
    if (ms == INT64_MIN || ms == INT64_MAX) {
        snprintf(out, cap, "-");
        return;
    }
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms - (int64_t)s * 1000));
}

static void fmt_bytes(uint64_t b, int human, char *out, size_t cap)
{
    if (!human) {
        snprintf(out, cap, "%" PRIu64, b);
        return;
    }
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

/* Shortest decimal that reads back to the same double; OpenMetrics spellings for the rest. */
static void fmt_float(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Checks that dir is a Cairn data directory (has index/data.mdb). Prints why not. */
static int check_dir(const char *dir)
{
    if (!tsdb__os_exists(dir)) {
        fprintf(stderr, "cairnctl: %s: no such directory\n", dir);
        return -1;
    }
    char p[TSDB__DIR_MAX + 32];
    snprintf(p, sizeof p, "%s/index/data.mdb", dir);
    if (!tsdb__os_exists(p)) {
        fprintf(stderr,
                "cairnctl: %s is not a Cairn data directory (no index/data.mdb; a Prometheus "
                "directory has block folders and chunks_head/ instead)\n",
                dir);
        return -1;
    }
    return 0;
}

static int open_ro(const char *dir, tsdb **db)
{
    if (check_dir(dir) != 0)
        return -1;
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = dir;
    o.read_only = 1;
    o.no_maintenance = 1;
    tsdb_err err;
    if (tsdb_open(&o, db, &err) != TSDB_OK) {
        fprintf(stderr, "cairnctl: %s: %s\n", dir, err.msg);
        return -1;
    }
    return 0;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* ---- list --------------------------------------------------------------------------------- */

typedef struct wal_info {
    size_t segments, checkpoints, records, samples, series;
    uint64_t bytes;
    int64_t mint, maxt;
    int damaged;
} wal_info;

typedef struct wal_scan_ctx {
    wal_info *wi;
    const char *file;
    int verbose_errors;
    size_t problems;
} wal_scan_ctx;

static int wal_record(void *ctx, const unsigned char *rec, size_t len)
{
    wal_scan_ctx *c = ctx;
    c->wi->records++;
    int type = tsdb__rec_type(rec, len);
    int rc = TSDB_OK;
    if (type == TSDB__REC_SAMPLES) {
        tsdb__rec_sample *v = NULL;
        size_t n = 0, cap = 0;
        rc = tsdb__rec_samples_decode(rec, len, &v, &n, &cap);
        if (rc == TSDB_OK) {
            c->wi->samples += n;
            for (size_t i = 0; i < n; i++) {
                if (v[i].t < c->wi->mint)
                    c->wi->mint = v[i].t;
                if (v[i].t > c->wi->maxt)
                    c->wi->maxt = v[i].t;
            }
        }
        free(v);
    } else if (type == TSDB__REC_SERIES) {
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        tsdb__rec_series *v = NULL;
        size_t n = 0, cap = 0;
        rc = tsdb__rec_series_decode(rec, len, &a, &v, &n, &cap);
        for (size_t i = 0; rc == TSDB_OK && i < n; i++) {
            tsdb_err e;
            if (tsdb_labels_validate(v[i].labels, 0, &e) != TSDB_OK) {
                if (c->verbose_errors)
                    printf("PROBLEM wal/%s: record %zu: series %" PRIu64 " has bad labels: %s\n",
                           c->file, c->wi->records, v[i].id, e.msg);
                c->problems++;
            }
        }
        c->wi->series += n;
        free(v);
        tsdb_arena_fini(&a);
    } else if (type == TSDB__REC_TOMBSTONES) {
        tsdb__rec_tomb *v = NULL;
        size_t n = 0, cap = 0;
        rc = tsdb__rec_tombs_decode(rec, len, &v, &n, &cap);
        free(v);
    } else {
        rc = TSDB_ECORRUPT;
    }
    if (rc != TSDB_OK) {
        if (c->verbose_errors)
            printf("PROBLEM wal/%s: record %zu (%zu bytes) does not decode\n", c->file,
                   c->wi->records, len);
        c->problems++;
    }
    return 0;
}

/* Scans every WAL file; with report, prints problems (returned as a count). */
static size_t scan_wal(const char *dir, wal_info *wi, int report)
{
    memset(wi, 0, sizeof *wi);
    wi->mint = INT64_MAX;
    wi->maxt = INT64_MIN;
    char wdir[TSDB__DIR_MAX + 8];
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n = 0, problems = 0;
    if (tsdb__os_list_dir(wdir, &a, &names, &n, NULL) != TSDB_OK)
        n = 0;
    /* The last plain segment may have a torn tail after a crash: repaired at the next open. */
    const char *last_seg = NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "checkpoint", 10) != 0 && !has_suffix(names[i], ".tmp"))
            last_seg = names[i];
    for (size_t i = 0; i < n; i++) {
        if (has_suffix(names[i], ".tmp"))
            continue;
        char path[TSDB__DIR_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", wdir, names[i]);
        int is_ckpt = strncmp(names[i], "checkpoint", 10) == 0;
        if (is_ckpt)
            wi->checkpoints++;
        else
            wi->segments++;
        tsdb_buf b;
        tsdb_buf_init(&b);
        tsdb_err e;
        if (tsdb__os_read_file(path, (size_t)1 << 34, &b, &e) != TSDB_OK) {
            if (report)
                printf("PROBLEM wal/%s: unreadable: %s\n", names[i], e.msg);
            problems++;
            tsdb_buf_fini(&b);
            continue;
        }
        wi->bytes += b.len;
        wal_scan_ctx c = {wi, names[i], report, 0};
        size_t good = 0;
        int rc = tsdb__wal_scan(b.p, b.len, wal_record, &c, &good);
        problems += c.problems;
        if (rc == TSDB_ECORRUPT) {
            int torn_tail = !is_ckpt && last_seg != NULL && strcmp(names[i], last_seg) == 0;
            if (report)
                printf("%s wal/%s: damaged fragment at byte %zu of %zu%s\n",
                       torn_tail ? "WARNING" : "PROBLEM", names[i], good, b.len,
                       torn_tail ? " (torn tail of the newest segment: truncated at next open)"
                                 : "");
            wi->damaged = 1;
            if (!torn_tail)
                problems++;
        }
        tsdb_buf_fini(&b);
    }
    tsdb_arena_fini(&a);
    return problems;
}

static void list_usage(FILE *f)
{
    fprintf(f, "usage: cairnctl tsdb list DIR [--human] [--format=table|json]\n"
               "  Lists the blocks, the head and the WAL of a data directory.\n"
               "example: cairnctl tsdb list /var/lib/cairn --human\n");
}

static int cmd_list(int argc, char **argv)
{
    const char *dir = NULL, *format = "table";
    int human = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0) {
            list_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--human") == 0 || strcmp(argv[i], "-r") == 0) {
            human = 1;
        } else if ((r = cairnctl_opt(argc, argv, &i, "format", &v)) != 0) {
            if (r < 0)
                return 2;
            format = v;
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            list_usage(stderr);
            return 2;
        }
    }
    int json = strcmp(format, "json") == 0;
    if (dir == NULL || (!json && strcmp(format, "table") != 0)) {
        list_usage(stderr);
        return 2;
    }
    tsdb *db;
    if (open_ro(dir, &db) != 0)
        return 1;
    size_t nb = 0;
    tsdb__block **blocks = tsdb__blocks_snapshot(db, &nb);
    tsdb_stats st;
    tsdb_stats_get(db, &st);
    wal_info wi;
    scan_wal(dir, &wi, 0);

    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *jblocks = json ? cJSON_AddArrayToObject(root, "blocks") : NULL;
    if (!json)
        printf("%-44s %-24s %-24s %5s %9s %9s %11s %10s %8s\n", "BLOCK", "MIN TIME", "MAX TIME",
               "LEVEL", "SERIES", "CHUNKS", "SAMPLES", "BYTES", "B/SAMPLE");
    for (size_t i = 0; i < nb; i++) {
        const tsdb__block_meta *m = tsdb__block_meta_get(blocks[i]);
        const char *path = tsdb__block_path(blocks[i]);
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        uint64_t bytes = tsdb__block_bytes(blocks[i]);
        double bps = m->n_samples ? (double)bytes / (double)m->n_samples : 0;
        char t0[40], t1[40], bs[32];
        fmt_time(m->mint, t0, sizeof t0);
        fmt_time(m->maxt, t1, sizeof t1);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", name);
            cJSON_AddNumberToObject(o, "minTime", (double)m->mint);
            cJSON_AddNumberToObject(o, "maxTime", (double)m->maxt);
            cJSON_AddStringToObject(o, "minTimeRFC3339", t0);
            cJSON_AddStringToObject(o, "maxTimeRFC3339", t1);
            cJSON_AddNumberToObject(o, "level", m->level);
            cJSON_AddNumberToObject(o, "series", (double)m->n_series);
            cJSON_AddNumberToObject(o, "chunks", (double)m->n_chunks);
            cJSON_AddNumberToObject(o, "samples", (double)m->n_samples);
            cJSON_AddNumberToObject(o, "bytes", (double)bytes);
            cJSON_AddNumberToObject(o, "bytesPerSample", bps);
            cJSON_AddItemToArray(jblocks, o);
        } else {
            fmt_bytes(bytes, human, bs, sizeof bs);
            printf("%-44s %-24s %-24s %5u %9" PRIu64 " %9" PRIu64 " %11" PRIu64 " %10s %8.3f\n",
                   name, t0, t1, m->level, m->n_series, m->n_chunks, m->n_samples, bs, bps);
        }
        tsdb__block_unref(blocks[i]);
    }
    free(blocks);
    char h0[40], h1[40], w0[40], w1[40], wb[32];
    fmt_time(st.n_samples_head ? st.head_mint : INT64_MIN, h0, sizeof h0);
    fmt_time(st.n_samples_head ? st.head_maxt : INT64_MIN, h1, sizeof h1);
    fmt_time(wi.samples ? wi.mint : INT64_MIN, w0, sizeof w0);
    fmt_time(wi.samples ? wi.maxt : INT64_MIN, w1, sizeof w1);
    fmt_bytes(wi.bytes, human, wb, sizeof wb);
    if (json) {
        cJSON *h = cJSON_AddObjectToObject(root, "head");
        cJSON_AddNumberToObject(h, "series", (double)st.n_series);
        cJSON_AddNumberToObject(h, "samples", (double)st.n_samples_head);
        cJSON_AddNumberToObject(h, "chunks", (double)st.n_chunks_head);
        cJSON_AddNumberToObject(h, "minTime", st.n_samples_head ? (double)st.head_mint : 0);
        cJSON_AddNumberToObject(h, "maxTime", st.n_samples_head ? (double)st.head_maxt : 0);
        cJSON *w = cJSON_AddObjectToObject(root, "wal");
        cJSON_AddNumberToObject(w, "segments", (double)wi.segments);
        cJSON_AddNumberToObject(w, "checkpoints", (double)wi.checkpoints);
        cJSON_AddNumberToObject(w, "bytes", (double)wi.bytes);
        cJSON_AddNumberToObject(w, "records", (double)wi.records);
        cJSON_AddNumberToObject(w, "samples", (double)wi.samples);
        cJSON_AddNumberToObject(w, "minTime", wi.samples ? (double)wi.mint : 0);
        cJSON_AddNumberToObject(w, "maxTime", wi.samples ? (double)wi.maxt : 0);
        cJSON_AddNumberToObject(root, "indexBytes", (double)st.bytes_index);
        char *s = cJSON_Print(root);
        puts(s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("\nHEAD  series %" PRIu64 ", samples %" PRIu64 ", chunks %" PRIu64 ", %s .. %s\n",
               st.n_series, st.n_samples_head, st.n_chunks_head, h0, h1);
        printf("WAL   %zu segments, %zu checkpoints, %s, %zu records, %zu samples, %s .. %s%s\n",
               wi.segments, wi.checkpoints, wb, wi.records, wi.samples, w0, w1,
               wi.damaged ? " (damaged: see `cairnctl tsdb verify`)" : "");
        char ib[32];
        fmt_bytes(st.bytes_index, human, ib, sizeof ib);
        printf("INDEX %s\n", ib);
    }
    tsdb_close(db);
    return 0;
}

/* ---- analyze ------------------------------------------------------------------------------- */

typedef struct metric_fill {
    tsdb_str metric;
    uint64_t chunks, samples, bytes;
} metric_fill;

static int cmp_fill_metric(const void *a, const void *b)
{
    return tsdb_str_cmp(((const metric_fill *)a)->metric, ((const metric_fill *)b)->metric);
}

static int cmp_fill_samples(const void *a, const void *b)
{
    const metric_fill *x = a, *y = b;
    return x->samples < y->samples ? 1 : x->samples > y->samples ? -1 : 0;
}

static void analyze_usage(FILE *f)
{
    fprintf(f, "usage: cairnctl tsdb analyze DIR [--block=ID] [--limit=N]\n"
               "  Cardinality (series by metric, label names by values, label pairs by series),\n"
               "  churn (series new in each block), chunk fill and compression per metric.\n"
               "example: cairnctl tsdb analyze /var/lib/cairn --limit=10\n");
}

static int cmd_analyze(int argc, char **argv)
{
    const char *dir = NULL, *block_id = NULL;
    long limit = 20;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0) {
            analyze_usage(stdout);
            return 0;
        } else if ((r = cairnctl_opt(argc, argv, &i, "block", &v)) != 0) {
            if (r < 0)
                return 2;
            block_id = v;
        } else if ((r = cairnctl_opt(argc, argv, &i, "limit", &v)) != 0) {
            if (r < 0)
                return 2;
            limit = strtol(v, NULL, 10);
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            analyze_usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || limit <= 0) {
        analyze_usage(stderr);
        return 2;
    }
    tsdb *db;
    if (open_ro(dir, &db) != 0)
        return 1;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    int status = 0;
    tsdb_cardinality card;
    if (tsdb_cardinality_get(db, (size_t)limit, &a, &card, &err) != TSDB_OK) {
        fprintf(stderr, "cairnctl: %s\n", err.msg);
        status = 1;
        goto out;
    }
    printf("Series: %" PRIu64 "\n", card.n_series);
    printf("\nHighest series count by metric name:\n");
    for (size_t i = 0; i < card.n_by_metric; i++)
        printf("%10" PRIu64 " %.*s\n", card.by_metric[i].value, (int)card.by_metric[i].name.len,
               card.by_metric[i].name.p);
    printf("\nLabel names with the most values:\n");
    for (size_t i = 0; i < card.n_by_label_name; i++)
        printf("%10" PRIu64 " %.*s\n", card.by_label_name[i].value,
               (int)card.by_label_name[i].name.len, card.by_label_name[i].name.p);
    printf("\nMost common label pairs:\n");
    for (size_t i = 0; i < card.n_by_pair; i++)
        printf("%10" PRIu64 " %.*s\n", card.by_pair[i].value, (int)card.by_pair[i].name.len,
               card.by_pair[i].name.p);

    /* Churn and chunk fill from the blocks. */
    size_t nb = 0;
    tsdb__block **blocks = tsdb__blocks_snapshot(db, &nb);
    tsdb_index_rd *rd = NULL;
    if (tsdb__index_rd_begin(db->ix, &rd, &err) != TSDB_OK) {
        fprintf(stderr, "cairnctl: %s\n", err.msg);
        status = 1;
    }
    metric_fill *fill = NULL;
    size_t n_fill = 0, cap_fill = 0, matched = 0;
    tsdb_arena scratch;
    tsdb_arena_init(&scratch, 0);
    if (status == 0)
        printf("\nChurn (series per block, and series not in the block before):\n");
    for (size_t i = 0; status == 0 && i < nb; i++) {
        const char *path = tsdb__block_path(blocks[i]);
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (block_id != NULL && strncmp(name, block_id, strlen(block_id)) != 0)
            continue;
        matched++;
        const tsdb__block_meta *m = tsdb__block_meta_get(blocks[i]);
        uint64_t fresh = 0;
        for (size_t s = 0; s < m->n_series; s++) {
            uint64_t id;
            uint32_t first, count;
            if (tsdb__block_series_at(blocks[i], s, &id, &first, &count) != TSDB_OK)
                break;
            if (i == 0 || !tsdb__block_has_series(blocks[i - 1], id))
                fresh++;
            tsdb_labels l;
            tsdb_str metric = TSDB_STR("(not in index)");
            if (tsdb__index_rd_labels(rd, id, &a, &l) == TSDB_OK)
                metric = tsdb_labels_get(l, TSDB_STR("__name__"));
            if (n_fill == cap_fill) {
                cap_fill = cap_fill ? cap_fill * 2 : 1024;
                fill = xrealloc(fill, cap_fill * sizeof(*fill));
            }
            metric_fill *f = &fill[n_fill++];
            memset(f, 0, sizeof *f);
            f->metric = metric;
            (void)first;
            (void)count;
            tsdb__bchunk *cs;
            size_t nc = 0;
            if (tsdb__block_series_raw(blocks[i], id, INT64_MIN, INT64_MAX, &scratch, &cs, &nc,
                                       &err) == TSDB_OK) {
                for (size_t k = 0; k < nc; k++) {
                    f->chunks++;
                    f->samples += tsdb__bchunk_count(&cs[k]);
                    f->bytes += cs[k].len;
                }
            }
            tsdb_arena_reset(&scratch);
        }
        printf("%10" PRIu64 " series, %10" PRIu64 " new  %s\n", m->n_series, fresh, name);
    }
    if (block_id != NULL && matched == 0) {
        fprintf(stderr, "cairnctl: no block matches %s\n", block_id);
        status = 1;
    }
    if (status == 0 && n_fill > 0) {
        /* Aggregate per metric: sort by name, fold runs, then sort by samples. */
        qsort(fill, n_fill, sizeof(*fill), cmp_fill_metric);
        size_t w = 0;
        for (size_t i = 0; i < n_fill; i++) {
            if (w > 0 && tsdb_str_eq(fill[w - 1].metric, fill[i].metric)) {
                fill[w - 1].chunks += fill[i].chunks;
                fill[w - 1].samples += fill[i].samples;
                fill[w - 1].bytes += fill[i].bytes;
            } else {
                fill[w++] = fill[i];
            }
        }
        qsort(fill, w, sizeof(*fill), cmp_fill_samples);
        printf("\nChunk fill and compression by metric (blocks only; bytes of the XOR or dense\n"
               "chunk encodings, before a series' run is zstd-compressed):\n");
        printf("%12s %10s %14s %12s  %s\n", "SAMPLES", "CHUNKS", "SAMPLES/CHUNK", "BYTES/SAMPLE",
               "METRIC");
        for (size_t i = 0; i < w && i < (size_t)limit; i++)
            printf("%12" PRIu64 " %10" PRIu64 " %14.1f %12.3f  %.*s\n", fill[i].samples,
                   fill[i].chunks, fill[i].chunks ? (double)fill[i].samples / fill[i].chunks : 0,
                   fill[i].samples ? (double)fill[i].bytes / fill[i].samples : 0,
                   (int)fill[i].metric.len, fill[i].metric.p);
    }
    free(fill);
    tsdb_arena_fini(&scratch);
    tsdb__index_rd_end(rd);
    for (size_t i = 0; i < nb; i++)
        tsdb__block_unref(blocks[i]);
    free(blocks);
out:
    tsdb_arena_fini(&a);
    tsdb_close(db);
    return status;
}

/* ---- dump ---------------------------------------------------------------------------------- */

static void dump_usage(FILE *f)
{
    fprintf(f, "usage: cairnctl tsdb dump DIR [--match=SELECTOR]... [--min-time=T] [--max-time=T]\n"
               "                          [--format=openmetrics|json]\n"
               "  Streams samples (blocks and head). OpenMetrics output ends with # EOF and is\n"
               "  what `cairnctl tsdb import openmetrics` reads back. T: RFC 3339, Unix seconds\n"
               "  or milliseconds with an ms suffix.\n"
               "example: cairnctl tsdb dump /var/lib/cairn --match='up{job=\"node\"}'\n");
}

static void put_label_value(FILE *out, tsdb_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (c == '\\' || c == '"')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else
            fputc(c, out);
    }
}

static void put_json_string(FILE *out, tsdb_str v)
{
    fputc('"', out);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '\\' || c == '"')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static int parse_dump_time(const char *s, int64_t *ms)
{
    size_t n = strlen(s);
    if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end != s + n - 2)
            return -1;
        *ms = v;
        return 0;
    }
    return cairnctl_parse_time(s, ms);
}

/* A set of 64-bit label hashes (open addressing; 0 marks an empty slot). */
typedef struct seen_set {
    uint64_t *v;
    size_t n, cap; /* cap is a power of two */
} seen_set;

/* Adds h; returns 1 if it was new, 0 if already there. */
static int seen_add(seen_set *s, uint64_t h)
{
    h = h ? h : 1;
    if (2 * (s->n + 1) > s->cap) {
        seen_set g = {xcalloc(s->cap ? s->cap * 2 : 1024, sizeof(uint64_t)), 0,
                      s->cap ? s->cap * 2 : 1024};
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i])
                seen_add(&g, s->v[i]);
        free(s->v);
        *s = g;
    }
    size_t i = (size_t)h & (s->cap - 1);
    for (; s->v[i]; i = (i + 1) & (s->cap - 1))
        if (s->v[i] == h)
            return 0;
    s->v[i] = h;
    s->n++;
    return 1;
}

static int cmd_dump(int argc, char **argv)
{
    const char *dir = NULL, *format = "openmetrics";
    const char *matches[64];
    size_t n_match = 0;
    int64_t mint = INT64_MIN / 2, maxt = INT64_MAX / 2;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0) {
            dump_usage(stdout);
            return 0;
        } else if ((r = cairnctl_opt(argc, argv, &i, "match", &v)) != 0) {
            if (r < 0 || n_match == 64)
                return 2;
            matches[n_match++] = v;
        } else if ((r = cairnctl_opt(argc, argv, &i, "format", &v)) != 0) {
            if (r < 0)
                return 2;
            format = v;
        } else if ((r = cairnctl_opt(argc, argv, &i, "min-time", &v)) != 0) {
            if (r < 0 || parse_dump_time(v, &mint) != 0) {
                fprintf(stderr, "cairnctl: bad --min-time\n");
                return 2;
            }
        } else if ((r = cairnctl_opt(argc, argv, &i, "max-time", &v)) != 0) {
            if (r < 0 || parse_dump_time(v, &maxt) != 0) {
                fprintf(stderr, "cairnctl: bad --max-time\n");
                return 2;
            }
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            dump_usage(stderr);
            return 2;
        }
    }
    int json = strcmp(format, "json") == 0;
    if (dir == NULL || (!json && strcmp(format, "openmetrics") != 0)) {
        dump_usage(stderr);
        return 2;
    }
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb_err err;
    /* Parse every selector before touching the directory. */
    const tsdb_matcher **sets[64];
    size_t set_n[64];
    if (n_match == 0) {
        tsdb_matcher *m0;
        if (tsdb_matcher_new(TSDB_MATCH_RE, TSDB_STR("__name__"), TSDB_STR(".+"), &a, &m0, &err) !=
            TSDB_OK) {
            tsdb_arena_fini(&a);
            return 1;
        }
        const tsdb_matcher **all = tsdb_arena_alloc(&a, sizeof(*all));
        all[0] = m0;
        sets[0] = all;
        set_n[0] = 1;
        n_match = 1;
    } else {
        for (size_t i = 0; i < n_match; i++) {
            if (query_parse_selector(&a, matches[i], strlen(matches[i]), &sets[i], &set_n[i],
                                     &err) != TSDB_OK) {
                fprintf(stderr, "cairnctl: --match %s: %s\n", matches[i], err.msg);
                tsdb_arena_fini(&a);
                return 2;
            }
        }
    }
    tsdb *db;
    if (open_ro(dir, &db) != 0) {
        tsdb_arena_fini(&a);
        return 1;
    }
    int status = 0;
    tsdb_querier *q = NULL;
    if (tsdb_querier_open(db, mint, maxt, &q, &err) != TSDB_OK) {
        fprintf(stderr, "cairnctl: %s\n", err.msg);
        status = 1;
    }
    /* Several selectors may match one series: remember what was printed (by label hash). */
    seen_set seen = {NULL, 0, 0};
    for (size_t m = 0; status == 0 && m < n_match; m++) {
        tsdb_series_set *set;
        if (tsdb_querier_select(q, (const tsdb_matcher *const *)sets[m], set_n[m], &set, &err) !=
            TSDB_OK) {
            fprintf(stderr, "cairnctl: %s\n", err.msg);
            status = 1;
            break;
        }
        tsdb_labels l;
        tsdb_iter *it;
        int rc;
        while ((rc = tsdb_series_next(set, &l, &it)) > 0) {
            if (n_match > 1 && !seen_add(&seen, tsdb_labels_hash(l)))
                continue;
            tsdb_str name = tsdb_labels_get(l, TSDB_STR("__name__"));
            tsdb_sample s;
            int first = 1;
            if (json) {
                fputs("{\"metric\":{", stdout);
                for (size_t i = 0; i < l.n; i++) {
                    if (i)
                        putchar(',');
                    put_json_string(stdout, l.v[i].name);
                    putchar(':');
                    put_json_string(stdout, l.v[i].value);
                }
                fputs("},\"values\":[", stdout);
            }
            while ((rc = tsdb_iter_next(it, &s)) > 0) {
                char val[40];
                fmt_float(s.v, val, sizeof val);
                int64_t sec = s.t >= 0 ? s.t / 1000 : -((-s.t + 999) / 1000);
                int64_t frac = s.t - sec * 1000;
                if (json) {
                    printf("%s[%" PRId64 ".%03" PRId64 ",\"%s\"]", first ? "" : ",", sec, frac,
                           val);
                    first = 0;
                    continue;
                }
                printf("%.*s{", (int)name.len, name.p);
                int fl = 1;
                for (size_t i = 0; i < l.n; i++) {
                    if (tsdb_str_eq(l.v[i].name, TSDB_STR("__name__")))
                        continue;
                    printf("%s%.*s=\"", fl ? "" : ",", (int)l.v[i].name.len, l.v[i].name.p);
                    put_label_value(stdout, l.v[i].value);
                    putchar('"');
                    fl = 0;
                }
                printf("} %s %" PRId64 ".%03" PRId64 "\n", val, sec, frac);
            }
            if (json)
                fputs("]}\n", stdout);
            if (rc < 0) {
                fprintf(stderr, "cairnctl: reading samples: %s\n", tsdb_strerror(rc));
                status = 1;
                break;
            }
        }
        if (rc < 0 && status == 0) {
            fprintf(stderr, "cairnctl: %s\n", tsdb_strerror(rc));
            status = 1;
        }
    }
    if (!json && status == 0)
        puts("# EOF");
    free(seen.v);
    tsdb_querier_close(q);
    tsdb_close(db);
    tsdb_arena_fini(&a);
    return status;
}

/* ---- verify ---------------------------------------------------------------------------------- */

static void verify_usage(FILE *f)
{
    fprintf(f, "usage: cairnctl tsdb verify DIR\n"
               "  Checks every block (header, footer, table and chunk CRCs), that every block\n"
               "  series is in the index, every index entry, and every WAL record. Prints each\n"
               "  problem with its location; exits 1 if there is any.\n");
}

typedef struct verify_ix_ctx {
    tsdb_index_rd *rd;
    size_t n, problems;
} verify_ix_ctx;

static int verify_ix_series(void *ctx, uint64_t id, tsdb_labels l)
{
    verify_ix_ctx *c = ctx;
    c->n++;
    tsdb_err e;
    if (tsdb_labels_validate(l, 0, &e) != TSDB_OK) {
        printf("PROBLEM index: series %" PRIu64 ": %s\n", id, e.msg);
        c->problems++;
        return 0;
    }
    uint64_t back;
    if (tsdb__index_rd_lookup(c->rd, l, &back) != TSDB_OK || back != id) {
        printf("PROBLEM index: series %" PRIu64 " is not found by its own labels\n", id);
        c->problems++;
    }
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        int help = argc == 2 && strcmp(argv[1], "--help") == 0;
        verify_usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    const char *dir = argv[1];
    if (check_dir(dir) != 0)
        return 1;
    size_t problems = 0, n_blocks = 0, n_chunks = 0;
    tsdb_err err;
    char path[TSDB__DIR_MAX + 300];
    snprintf(path, sizeof path, "%s/index", dir);
    tsdb_index *ix = NULL;
    tsdb_index_rd *rd = NULL;
    if (tsdb__index_open(path, 0, 1, &ix, &err) != TSDB_OK ||
        tsdb__index_rd_begin(ix, &rd, &err) != TSDB_OK) {
        printf("PROBLEM index: cannot open: %s\n", err.msg);
        problems++;
    }
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    /* Index entries. */
    verify_ix_ctx vc = {rd, 0, 0};
    if (rd != NULL) {
        tsdb_arena scratch;
        tsdb_arena_init(&scratch, 0);
        if (tsdb__index_rd_each(rd, &scratch, verify_ix_series, &vc) != TSDB_OK) {
            printf("PROBLEM index: iteration failed\n");
            problems++;
        }
        tsdb_arena_fini(&scratch);
        problems += vc.problems;
    }
    /* Blocks. */
    char bdir[TSDB__DIR_MAX + 8];
    snprintf(bdir, sizeof bdir, "%s/blocks", dir);
    const char **names;
    size_t n = 0;
    if (tsdb__os_list_dir(bdir, &a, &names, &n, NULL) != TSDB_OK)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        if (!has_suffix(names[i], ".blk"))
            continue;
        n_blocks++;
        snprintf(path, sizeof path, "%s/%s", bdir, names[i]);
        tsdb__block *b = NULL;
        if (tsdb__block_open(path, &b, &err) != TSDB_OK) {
            printf("PROBLEM blocks/%s: %s\n", names[i], err.msg);
            problems++;
            continue;
        }
        if (tsdb__block_verify(b, &err) != TSDB_OK) {
            printf("PROBLEM blocks/%s: %s\n", names[i], err.msg);
            problems++;
        }
        const tsdb__block_meta *m = tsdb__block_meta_get(b);
        n_chunks += m->n_chunks;
        for (size_t s = 0; rd != NULL && s < m->n_series; s++) {
            uint64_t id;
            uint32_t first, count;
            if (tsdb__block_series_at(b, s, &id, &first, &count) != TSDB_OK)
                break;
            tsdb_labels l;
            if (tsdb__index_rd_labels(rd, id, &a, &l) != TSDB_OK) {
                printf("PROBLEM blocks/%s: series %" PRIu64 " (entry %zu) is not in the index\n",
                       names[i], id, s);
                problems++;
            }
        }
        tsdb__block_unref(b);
    }
    /* WAL. */
    wal_info wi;
    problems += scan_wal(dir, &wi, 1);
    tsdb__index_rd_end(rd);
    tsdb__index_close(ix);
    tsdb_arena_fini(&a);
    printf("verified %zu blocks (%zu chunks), %zu index series, %zu WAL files (%zu records): "
           "%zu problem%s\n",
           n_blocks, n_chunks, vc.n, wi.segments + wi.checkpoints, wi.records, problems,
           problems == 1 ? "" : "s");
    return problems ? 1 : 0;
}

/* ---- import openmetrics ------------------------------------------------------------------------
 */

typedef struct imp_series {
    tsdb_labels labels; /* sorted, in the arena */
    uint64_t hash, id;
    tsdb_sample *s;
    size_t n, cap;
} imp_series;

typedef struct imp {
    imp_series *v;
    size_t n, cap;
    uint32_t *slots; /* open addressing: index + 1, 0 = empty */
    size_t n_slots;
    tsdb_arena a;
} imp;

static void imp_grow(imp *m)
{
    size_t ns = m->n_slots ? m->n_slots * 2 : 1024;
    uint32_t *slots = xcalloc(ns, sizeof(*slots));
    for (size_t i = 0; i < m->n; i++) {
        size_t j = (size_t)m->v[i].hash & (ns - 1);
        while (slots[j])
            j = (j + 1) & (ns - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = ns;
}

static imp_series *imp_get(imp *m, const tsdb_label *lbls, size_t n)
{
    tsdb_label *tmp = tsdb_arena_alloc(&m->a, n * sizeof(*tmp));
    memcpy(tmp, lbls, n * sizeof(*tmp));
    tsdb_labels_sort(tmp, n);
    tsdb_labels l = {tmp, n};
    uint64_t h = tsdb_labels_hash(l);
    if (m->n * 2 >= m->n_slots)
        imp_grow(m);
    size_t j = (size_t)h & (m->n_slots - 1);
    while (m->slots[j]) {
        imp_series *s = &m->v[m->slots[j] - 1];
        if (s->hash == h && tsdb_labels_equal(s->labels, l))
            return s;
        j = (j + 1) & (m->n_slots - 1);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
    }
    imp_series *s = &m->v[m->n];
    memset(s, 0, sizeof *s);
    s->labels = tsdb_labels_copy(l, &m->a);
    s->hash = h;
    m->slots[j] = (uint32_t)++m->n;
    return s;
}

static int cmp_sample_t(const void *a, const void *b)
{
    int64_t x = ((const tsdb_sample *)a)->t, y = ((const tsdb_sample *)b)->t;
    return x < y ? -1 : x > y;
}

static int cmp_series_id(const void *a, const void *b)
{
    uint64_t x = ((const imp_series *)a)->id, y = ((const imp_series *)b)->id;
    return x < y ? -1 : x > y;
}

static void import_usage(FILE *f)
{
    fprintf(f, "usage: cairnctl tsdb import openmetrics FILE DIR\n"
               "  Backfills blocks from an OpenMetrics file (every sample needs a timestamp)\n"
               "  for data older than the head. The server must be stopped.\n"
               "example: cairnctl tsdb dump old/ > x.om && cairnctl tsdb import openmetrics x.om "
               "new/\n");
}

/* Writes one block for [bmint, bmaxt) from the series' samples in that range. */
static int import_block(tsdb *db, imp *m, int64_t bmint, int64_t bmaxt, size_t *cursor,
                        uint64_t *written, tsdb_err *err)
{
    char path[TSDB__DIR_MAX + 300];
    pthread_mutex_lock(&db->maint_lock);
    tsdb__block_name(db, bmint, bmaxt, 0, path, sizeof path);
    tsdb__block_writer *w = NULL;
    int rc = tsdb__block_writer_begin(path, bmint, bmaxt, 0, &w, err);
    if (rc == TSDB_OK)
        tsdb__block_writer_compress(w, 1); /* as blocks cut from the head are packed */
    tsdb_arena ca;
    tsdb_arena_init(&ca, 0);
    size_t any = 0;
    for (size_t i = 0; rc == TSDB_OK && i < m->n; i++) {
        imp_series *s = &m->v[i];
        size_t k = cursor[i], end = k;
        while (end < s->n && s->s[end].t < bmaxt)
            end++;
        if (end == k)
            continue;
        size_t n_chunks = (end - k + TSDB_CHUNK_SAMPLES_MAX - 1) / TSDB_CHUNK_SAMPLES_MAX;
        tsdb__chunk_ref *refs = tsdb_arena_alloc(&ca, n_chunks * sizeof(*refs));
        for (size_t c = 0; c < n_chunks; c++) {
            size_t from = k + c * TSDB_CHUNK_SAMPLES_MAX;
            size_t to = from + TSDB_CHUNK_SAMPLES_MAX < end ? from + TSDB_CHUNK_SAMPLES_MAX : end;
            tsdb_chunk_app app;
            tsdb_chunk_app_init(&app);
            for (size_t j = from; j < to; j++)
                tsdb_chunk_app_add(&app, s->s[j].t, s->s[j].v);
            size_t len;
            const unsigned char *p = tsdb_chunk_app_bytes(&app, &len);
            unsigned char *copy = tsdb_arena_alloc(&ca, len);
            memcpy(copy, p, len);
            refs[c] = (tsdb__chunk_ref){s->s[from].t, s->s[to - 1].t, copy, len};
            tsdb_chunk_app_fini(&app);
        }
        rc = tsdb__block_writer_add(w, s->id, refs, n_chunks, err);
        *written += end - k;
        cursor[i] = end;
        any++;
        tsdb_arena_reset(&ca);
    }
    if (rc == TSDB_OK && any) {
        rc = tsdb__block_writer_commit(w, err);
        tsdb__block *b = NULL;
        if (rc == TSDB_OK)
            rc = tsdb__block_open(path, &b, err);
        if (rc == TSDB_OK)
            tsdb__blocks_add(db, b);
    } else {
        tsdb__block_writer_abort(w);
    }
    pthread_mutex_unlock(&db->maint_lock);
    tsdb_arena_fini(&ca);
    return rc;
}

static int cmd_import(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
        import_usage(stdout);
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "openmetrics") != 0) {
        import_usage(stderr);
        return 2;
    }
    const char *file = argv[2], *dir = argv[3];
    tsdb_buf body;
    tsdb_buf_init(&body);
    tsdb_err err;
    if (tsdb__os_read_file(file, (size_t)1 << 35, &body, &err) != TSDB_OK) {
        fprintf(stderr, "cairnctl: %s\n", err.msg);
        return 1;
    }
    imp m;
    memset(&m, 0, sizeof m);
    tsdb_arena_init(&m.a, 0);
    ingest_text *p = ingest_text_new((const char *)body.p, body.len, INGEST_TEXT_OPENMETRICS);
    ingest_text_entry e;
    int rc, status = 0;
    size_t total = 0;
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    while ((rc = ingest_text_next(p, &e, &err)) > 0) {
        if (e.kind != INGEST_TEXT_SERIES)
            continue;
        if (!e.has_t) {
            fprintf(stderr, "cairnctl: %s:%d: sample without a timestamp\n", file, e.line);
            status = 1;
            break;
        }
        imp_series *s = imp_get(&m, e.labels, e.n_labels);
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->s = xrealloc(s->s, s->cap * sizeof(*s->s));
        }
        s->s[s->n++] = (tsdb_sample){e.t, e.v};
        total++;
        if (e.t < mint)
            mint = e.t;
        if (e.t > maxt)
            maxt = e.t;
    }
    if (rc < 0) {
        fprintf(stderr, "cairnctl: %s:%s\n", file, err.msg);
        status = 1;
    }
    ingest_text_free(p);
    tsdb *db = NULL;
    if (status == 0 && total == 0) {
        fprintf(stderr, "cairnctl: %s holds no samples\n", file);
        status = 1;
    }
    if (status == 0) {
        tsdb_opts o;
        tsdb_opts_default(&o);
        o.dir = dir;
        o.no_maintenance = 1;
        o.retention_ms = -1;
        rc = tsdb_open(&o, &db, &err);
        if (rc != TSDB_OK) {
            fprintf(stderr, "cairnctl: %s: %s%s\n", dir, err.msg,
                    rc == TSDB_ELOCKED ? " (stop the server before importing)" : "");
            status = 1;
        }
    }
    if (status == 0) {
        tsdb_stats st;
        tsdb_stats_get(db, &st);
        if (st.n_samples_head > 0 && maxt >= st.head_mint) {
            char a1[40], a2[40];
            fmt_time(maxt, a1, sizeof a1);
            fmt_time(st.head_mint, a2, sizeof a2);
            fprintf(stderr,
                    "cairnctl: import writes blocks only for samples older than the head: the "
                    "file reaches %s, the head starts at %s\n",
                    a1, a2);
            status = 1;
        }
    }
    /* Sort each series, drop repeated timestamps, resolve ids in batches. */
    size_t dropped = 0;
    for (size_t i = 0; status == 0 && i < m.n; i++) {
        imp_series *s = &m.v[i];
        qsort(s->s, s->n, sizeof(*s->s), cmp_sample_t);
        size_t w = 0;
        for (size_t k = 0; k < s->n; k++) {
            if (w > 0 && s->s[w - 1].t == s->s[k].t) {
                dropped++;
                continue;
            }
            s->s[w++] = s->s[k];
        }
        s->n = w;
        if (tsdb_labels_validate(s->labels, 1, &err) != TSDB_OK) {
            fprintf(stderr, "cairnctl: %s: %s\n", tsdb_labels_format(s->labels, &m.a), err.msg);
            status = 1;
        }
    }
    for (size_t i = 0; status == 0 && i < m.n; i += 4096) {
        size_t cnt = m.n - i < 4096 ? m.n - i : 4096;
        tsdb_labels *sets = xmalloc(cnt * sizeof(*sets));
        uint64_t *ids = xmalloc(cnt * sizeof(*ids));
        for (size_t k = 0; k < cnt; k++)
            sets[k] = m.v[i + k].labels;
        if (tsdb__index_resolve(db->ix, sets, cnt, ids, NULL, &err) != TSDB_OK) {
            fprintf(stderr, "cairnctl: index: %s\n", err.msg);
            status = 1;
        }
        for (size_t k = 0; status == 0 && k < cnt; k++)
            m.v[i + k].id = ids[k];
        free(sets);
        free(ids);
    }
    uint64_t written = 0;
    size_t n_blocks = 0;
    if (status == 0) {
        /* The slots are stale after sorting; only the array is used from here on. */
        qsort(m.v, m.n, sizeof(*m.v), cmp_series_id);
        int64_t range = db->o.block_ms;
        int64_t first = mint >= 0 ? mint / range * range : -((-mint + range - 1) / range) * range;
        size_t *cursor = xcalloc(m.n, sizeof(*cursor));
        for (int64_t b0 = first; status == 0 && b0 <= maxt; b0 += range) {
            uint64_t before = written;
            if (import_block(db, &m, b0, b0 + range, cursor, &written, &err) != TSDB_OK) {
                fprintf(stderr, "cairnctl: writing a block: %s\n", err.msg);
                status = 1;
            }
            if (written > before)
                n_blocks++;
        }
        free(cursor);
    }
    if (status == 0)
        printf("imported %" PRIu64 " samples of %zu series into %zu blocks%s\n", written, m.n,
               n_blocks, dropped ? " (repeated timestamps dropped)" : "");
    tsdb_close(db);
    for (size_t i = 0; i < m.n; i++)
        free(m.v[i].s);
    free(m.v);
    free(m.slots);
    tsdb_arena_fini(&m.a);
    tsdb_buf_fini(&body);
    return status;
}

/* ---- Dispatch ------------------------------------------------------------------------------- */

int cairnctl_tsdb(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: cairnctl tsdb list|analyze|dump|verify|import ... (--help on each)\n");
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(sub, "analyze") == 0)
        return cmd_analyze(argc - 1, argv + 1);
    if (strcmp(sub, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return cmd_verify(argc - 1, argv + 1);
    if (strcmp(sub, "import") == 0)
        return cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "cairnctl: unknown tsdb command %s\n", sub);
    return 2;
}
