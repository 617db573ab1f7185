/* bench_dense -- where the bits of a block go, per metric kind, on node-exporter-shaped data.
 *
 * Generates the shapes `cairnctl bench write` sends (tools/bench_write.c: about 102 series per
 * instance, jittered counters, random-walk gauges in pages, CPU seconds in hundredths, classic
 * histogram buckets, +-2 ms scrape jitter per instance, 15 s interval), cuts each series into
 * head-sized chunks (TSDB_CHUNK_SAMPLES_MAX), and reports per kind: XOR bits per sample, DENSE
 * bits per sample split into timestamps (the chunk encoded with every value 0) and values (the
 * rest), the smaller of the two per chunk, and that choice stored chunk by chunk with a zstd
 * run per series when it saves an eighth (record framing included: 5 bytes per chunk inside a
 * run, 9 outside, plus 24 bytes of chunk meta) -- the per-chunk view, before the block writer
 * joins chunks and shares timestamps. Also DENSE decode speed.
 *
 * Then writes the data as real blocks, which is what lands on disk: one level-0 block per 2 h
 * (head chunks, cut at the block boundary as the head does) and one level-1 block merged from
 * them (stored chunks copied through tsdb__block_writer_add_raw), and prints their bytes per
 * sample, the write and merge time and the time to read every sample of the merged block back
 * (checked against the data).
 *
 * Then bench_tsdb's value shapes, one 480-sample DENSE chunk per series: value bits per sample
 * per shape against the entropy of their steps.
 *
 * BENCH_INSTANCES (default 20) and BENCH_STEPS (default 5760 = 24 h) size the data. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "tsdb/base.h"
#include "tsdb/block.h"
#include "tsdb/os.h"
#include "tsdb/chunk.h"
#include "tsdb/chunk_dense.h"
#include "tsdb/tsdb.h"

#define PER TSDB_CHUNK_SAMPLES_MAX

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

enum kind { K_COUNTER, K_GAUGE, K_BUCKET, K_HSUM, K_HCOUNT };

typedef struct spec {
    const char *group;
    enum kind kind;
    double v, scale, quantum, p_zero, le;
} spec;

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, INFINITY};

#define MAX_SPECS 128
static spec specs[MAX_SPECS];
static size_t n_specs;

static void add(const char *group, enum kind k, double v, double scale, double q, double p_zero)
{
    specs[n_specs++] = (spec){group, k, v, scale, q, p_zero, 0};
}

/* One instance's series, as tools/bench_write.c's gen_instance. */
static void build_specs(void)
{
    static const double cpu_scale[8] = {14, 0.05, 0.01, 0.02, 0.03, 0.004, 0.4, 0.6};
    for (int cpu = 0; cpu < 4; cpu++)
        for (size_t m = 0; m < 8; m++)
            add("cpu_seconds", K_COUNTER, round(1e5 * cpu_scale[m]) + cpu, cpu_scale[m], 0.01,
                m == 2 || m == 5 ? 0.7 : 0);
    for (size_t i = 0; i < 10; i++)
        add(i == 0 || i == 5 ? "constant" : "memory_pages", K_GAUGE, 4096.0 * (2000000 / (i + 1)),
            i == 0 || i == 5 ? 0 : 4e6, 4096, 0);
    for (size_t i = 0; i < 8; i++)
        for (int d = 0; d < 2; d++)
            add(i < 4 ? "net_counter" : "rare_counter", K_COUNTER, 1e6,
                i < 2   ? 2e5
                : i < 4 ? 150
                        : 2,
                1, i >= 4 ? 0.97 : 0);
    for (size_t i = 0; i < 5; i++)
        for (int d = 0; d < 2; d++)
            add("disk_counter", K_COUNTER, 5e5,
                i == 4  ? 0.3
                : i < 2 ? 40
                        : 2e5,
                i == 4  ? 0.001
                : i < 2 ? 1
                        : 512,
                0);
    for (size_t i = 0; i < 3; i++)
        for (int d = 0; d < 2; d++)
            add(i == 1 ? "constant" : "fs_pages", K_GAUGE, 4096.0 * 12000000, i == 1 ? 0 : 1e6,
                4096, 0);
    add("small_gauge", K_GAUGE, 1.0, 0.2, 0.01, 0);
    add("small_gauge", K_GAUGE, 1.0, 0.08, 0.01, 0);
    add("small_gauge", K_GAUGE, 1.0, 0.03, 0.01, 0);
    add("big_counter", K_COUNTER, 1e7, 3e4, 1, 0);
    add("big_counter", K_COUNTER, 1e7, 2e4, 1, 0);
    add("big_counter", K_COUNTER, 1e5, 20, 1, 0);
    add("small_gauge", K_GAUGE, 3, 1.5, 1, 0);
    add("small_gauge", K_GAUGE, 0, 0.6, 1, 0);
    for (size_t b = 0; b < 11; b++) {
        add("hist_bucket", K_BUCKET, 0, 0, 1, 0);
        specs[n_specs - 1].le = buckets[b];
    }
    add("hist_sum", K_HSUM, 0, 0, 0.001, 0);
    add("hist_count", K_BUCKET, 0, 0, 1, 0);
    specs[n_specs - 1].le = INFINITY;
    add("constant", K_GAUGE, 1.7e9, 0, 1, 0);
    add("time_seconds", K_COUNTER, 1.7e9, 15, 0.001, 0);
    add("cpu_seconds", K_COUNTER, 100, 0.05, 0.01, 0);
    add("memory_pages", K_GAUGE, 4096.0 * 5000, 1e5, 4096, 0);
    add("small_gauge", K_GAUGE, 10, 1.5, 1, 0);
    add("small_gauge", K_GAUGE, 8, 1.5, 1, 0);
    add("memory_pages", K_GAUGE, 3e6, 2e5, 8, 0);
}

static double quantize(double x, double q)
{
    return q > 0 ? round(x / q) * q : x;
}

#define MAX_GROUPS 32
typedef struct stat {
    const char *group;
    double samples, xor_b, dense_b, ts_b, chosen_b, run_b;
} stat;
static stat stats[MAX_GROUPS + 1];
static size_t n_groups;

static stat *group_stat(const char *g)
{
    for (size_t i = 0; i < n_groups; i++)
        if (strcmp(stats[i].group, g) == 0)
            return &stats[i];
    stats[n_groups].group = g;
    return &stats[n_groups++];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes level-0 blocks of 2 h from head-shaped XOR chunks, then merges them into one block;
 * prints bytes per sample of both. */
static int fail(int line)
{
    fprintf(stderr, "bench_dense: block step at line %d failed\n", line);
    return 1;
}

static int write_blocks(const tsdb_sample *data, size_t n, size_t steps, int64_t start)
{
    char dir[64], path[160];
    snprintf(dir, sizeof(dir), "/tmp/cairn-bench-dense-XXXXXX");
    if (!mkdtemp(dir))
        return fail(__LINE__);
    const int64_t range = 2 * 3600 * 1000;
    start -= 3600 * 1000; /* the first scrape may come a little before start */
    int64_t end = data[steps - 1].t + 1;
    for (size_t i = 0; i < n; i++)
        if (data[i * steps + steps - 1].t + 1 > end)
            end = data[i * steps + steps - 1].t + 1;
    size_t n_blocks = (size_t)((end - start + range - 1) / range);
    tsdb__block **blocks = xcalloc(n_blocks, sizeof(*blocks));
    uint64_t bytes0 = 0, samples = 0;
    double t_write = 0;
    tsdb_chunk_app *app = xcalloc(steps / PER + n_blocks + 2, sizeof(*app));
    tsdb__chunk_ref *refs = xcalloc(steps / PER + n_blocks + 2, sizeof(*refs));
    for (size_t bi = 0; bi < n_blocks; bi++) {
        int64_t lo = start + (int64_t)bi * range, hi = lo + range;
        snprintf(path, sizeof(path), "%s/%zu.blk", dir, bi);
        tsdb__block_writer *w;
        if (tsdb__block_writer_begin(path, lo, hi, 0, &w, NULL) != TSDB_OK)
            return fail(__LINE__);
        tsdb__block_writer_compress(w, 1);
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            const tsdb_sample *s = &data[i * steps];
            size_t nc = 0;
            for (size_t k = 0; k < steps; k++) {
                if (s[k].t < lo || s[k].t >= hi)
                    continue;
                if (nc == 0 || app[nc - 1].n == PER) {
                    tsdb_chunk_app_init(&app[nc]);
                    refs[nc].mint = s[k].t;
                    nc++;
                }
                tsdb_chunk_app_add(&app[nc - 1], s[k].t, s[k].v);
                refs[nc - 1].maxt = s[k].t;
                samples++;
            }
            for (size_t c = 0; c < nc; c++)
                refs[c].p = tsdb_chunk_app_bytes(&app[c], &refs[c].len);
            if (tsdb__block_writer_add(w, (uint64_t)i + 1, refs, nc, NULL) != TSDB_OK)
                return fail(__LINE__);
            for (size_t c = 0; c < nc; c++)
                tsdb_chunk_app_fini(&app[c]);
        }
        if (tsdb__block_writer_commit(w, NULL) != TSDB_OK ||
            tsdb__block_open(path, &blocks[bi], NULL) != TSDB_OK)
            return fail(__LINE__);
        t_write += now_s() - t0;
        bytes0 += tsdb__block_bytes(blocks[bi]);
    }
    /* Merge: each series' stored chunks from every block, in time order. */
    snprintf(path, sizeof(path), "%s/merged.blk", dir);
    tsdb__block_writer *w;
    if (tsdb__block_writer_begin(path, start, start + (int64_t)n_blocks * range, 1, &w, NULL))
        return fail(__LINE__);
    tsdb__block_writer_compress(w, 1);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    tsdb__bchunk *all = NULL;
    size_t cap = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        tsdb_arena_reset(&a);
        for (size_t bi = 0; bi < n_blocks; bi++) {
            tsdb__bchunk *c;
            size_t nc;
            if (tsdb__block_series_raw(blocks[bi], (uint64_t)i + 1, INT64_MIN, INT64_MAX, &a, &c,
                                       &nc, NULL) != TSDB_OK)
                return fail(__LINE__);
            if (k + nc > cap) {
                cap = (k + nc) * 2;
                all = xrealloc(all, cap * sizeof(*all));
            }
            memcpy(all + k, c, nc * sizeof(*c));
            k += nc;
        }
        if (tsdb__block_writer_add_raw(w, (uint64_t)i + 1, all, k, NULL) != TSDB_OK)
            return fail(__LINE__);
    }
    tsdb__block *m;
    if (tsdb__block_writer_commit(w, NULL) != TSDB_OK || tsdb__block_open(path, &m, NULL))
        return fail(__LINE__);
    double t_merge = now_s() - t0;
    /* Read back every sample of the merged block, timed. */
    t0 = now_s();
    uint64_t back = 0;
    for (size_t i = 0; i < n; i++) {
        tsdb_arena_reset(&a);
        tsdb__bchunk *c;
        size_t nc;
        if (tsdb__block_series_raw(m, (uint64_t)i + 1, INT64_MIN, INT64_MAX, &a, &c, &nc, NULL))
            return fail(__LINE__);
        size_t at = 0;
        for (size_t j = 0; j < nc; j++) {
            size_t cnt = tsdb__bchunk_count(&c[j]), got;
            tsdb_sample *v = tsdb_arena_alloc(&a, cnt * sizeof(*v));
            if (tsdb__bchunk_decode(&c[j], v, cnt, &got) != TSDB_OK)
                return fail(__LINE__);
            if (at + got > steps || memcmp(v, &data[i * steps + at], got * sizeof(*v)) != 0) {
                fprintf(stderr,
                        "merged block differs from the data: series %zu chunk %zu/%zu at %zu got "
                        "%zu enc %d\n",
                        i, j, nc, at, got, c[j].enc);
                for (size_t q = 0; q < got && at + q < steps; q++)
                    if (memcmp(&v[q], &data[i * steps + at + q], sizeof(*v))) {
                        fprintf(stderr, "  sample %zu: %lld %.17g want %lld %.17g\n", q,
                                (long long)v[q].t, v[q].v, (long long)data[i * steps + at + q].t,
                                data[i * steps + at + q].v);
                        break;
                    }
                return fail(__LINE__);
            }
            back += got;
            at += got;
        }
    }
    double t_read = now_s() - t0;
    if (back != samples)
        return fail(__LINE__);
    printf("level-0 blocks (2 h): %.3f bytes/sample, write %.0f ns/sample\n",
           (double)bytes0 / (double)samples, 1e9 * t_write / (double)samples);
    printf("merged block:         %.3f bytes/sample, %llu chunks, merge %.0f ns/sample, read "
           "%.1f ns/sample\n",
           (double)tsdb__block_bytes(m) / (double)samples,
           (unsigned long long)tsdb__block_meta_get(m)->n_chunks, 1e9 * t_merge / (double)samples,
           1e9 * t_read / (double)samples);
    tsdb__block_unref(m);
    for (size_t bi = 0; bi < n_blocks; bi++)
        tsdb__block_unref(blocks[bi]);
    free(blocks);
    free(all);
    free(app);
    free(refs);
    tsdb_arena_fini(&a);
    tsdb__os_remove_all(dir, NULL);
    return 0;
}

/* The value shapes of bench_tsdb (random steps near their entropy), one DENSE chunk of 480
 * samples (2 h at 15 s, what the block writer joins) per series: bits per sample of the value
 * part, against the entropy of the steps, and decode speed. Shows where the bits over the
 * entropy go per shape. */
static void tsdb_shapes(void)
{
    static const char *name[] = {"cpu ticks*0.15", "free mem pages", "disk bytes", "net bytes",
                                 "fs free pages",  "load avg",       "events",     "boot time"};
    static const double entropy[] = {6.658, 3.920, 4.008, 14.288, 0.469, 8.644, 7.644, 0.0};
    enum { N = 480, SERIES = 400 };
    static tsdb_sample smp[N], out[N];
    uint64_t r0 = 7;
    printf("bench_tsdb shapes, DENSE chunks of %d samples: value bits/sample (entropy)\n", N);
    for (int m = 0; m < 8; m++) {
        double bits = 0, dec_s = 0;
        for (int sr = 0; sr < SERIES; sr++) {
            double val = (double)(rng_next(&r0) % 1000000);
            for (int k = 0; k < N; k++) {
                uint64_t r = rng_next(&r0);
                switch (m) {
                case 0:
                    val += 0.15 * (double)(r % 101);
                    break;
                case 1:
                    if (r % 3 == 0)
                        val += (double)((int64_t)(r >> 8) % 512 - 256) * 4096;
                    break;
                case 2:
                    if (r % 2 == 0)
                        val += (double)((r >> 8) % 64) * 4096;
                    break;
                case 3:
                    val += (double)((r >> 8) % 20000);
                    break;
                case 4:
                    if (r % 10 == 0)
                        val -= 4096;
                    break;
                case 5:
                    val = (double)((r >> 8) % 400) / 100.0;
                    break;
                case 6:
                    val += (double)((r >> 8) % 200);
                    break;
                default:
                    break;
                }
                smp[k] = (tsdb_sample){(int64_t)k * 15000, val};
            }
            tsdb_buf b;
            tsdb_buf_init(&b);
            size_t got = 0;
            if (tsdb_dense_encode(smp, N, &b) == TSDB_OK) {
                bits += 8.0 * (double)(b.len - tsdb_dense_ts_len(b.p, b.len));
                double t0 = now_s();
                if (tsdb_dense_decode(b.p, b.len, out, N, &got) != TSDB_OK || got != N)
                    fprintf(stderr, "shape %d: decode failed\n", m);
                dec_s += now_s() - t0;
            } else {
                bits += 64.0 * N; /* kept in XOR: count it as raw */
            }
            tsdb_buf_fini(&b);
        }
        printf("  %-16s %6.2f (%5.2f)  decode %.2f ns/sample\n", name[m],
               bits / (SERIES * (double)N), entropy[m], 1e9 * dec_s / (SERIES * (double)N));
    }
    printf("\n");
}

int main(void)
{
    size_t n_inst = 20, steps = 5760;
    const char *e = getenv("BENCH_INSTANCES");
    if (e && atol(e) > 0)
        n_inst = (size_t)atol(e);
    e = getenv("BENCH_STEPS");
    if (e && atol(e) > 0)
        steps = (size_t)atol(e);
    build_specs();
    size_t per_inst = n_specs, n = n_inst * per_inst;
    tsdb_sample *data = xmalloc(n * steps * sizeof(*data)); /* series-major */
    double *v = xmalloc(n * sizeof(double));
    uint64_t *srng = xmalloc(n * sizeof(uint64_t));
    uint64_t rng = 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        v[i] = specs[i % per_inst].v;
        srng[i] = rng_next(&rng) | 1;
    }
    const int64_t start = 1700000000000LL, interval = 15000;
    double hist[12];
    for (size_t k = 0; k < steps; k++) {
        for (size_t in = 0; in < n_inst; in++) {
            int64_t jit = (int64_t)round((rng_unit(&rng) - 0.5) * 4);
            double obs = floor(20 + 20 * rng_unit(&rng)), cum = 0;
            for (size_t bk = 0; bk < 11; bk++) {
                cum += floor(obs * (bk < 10 ? 0.09 : 0.1) * (0.5 + rng_unit(&rng)));
                if (cum > obs || bk == 10)
                    cum = obs;
                hist[bk] = cum;
            }
            hist[11] = round(obs * 0.2 * (0.5 + rng_unit(&rng)) * 1000) / 1000;
            for (size_t j = 0; j < per_inst; j++) {
                size_t i = in * per_inst + j;
                const spec *s = &specs[j];
                uint64_t *r = &srng[i];
                switch (s->kind) {
                case K_COUNTER:
                    if (s->p_zero > 0 && rng_unit(r) < s->p_zero)
                        break;
                    v[i] = quantize(v[i] + s->scale * (0.5 + rng_unit(r)), s->quantum);
                    break;
                case K_GAUGE:
                    if (s->scale > 0)
                        v[i] = quantize(fabs(v[i] + s->scale * (rng_unit(r) - 0.5)), s->quantum);
                    break;
                case K_BUCKET: {
                    size_t b = 0;
                    while (b < 11 && buckets[b] != s->le)
                        b++;
                    v[i] += hist[b];
                    break;
                }
                case K_HSUM:
                    v[i] = quantize(v[i] + hist[11], s->quantum);
                    break;
                case K_HCOUNT:
                    break;
                }
                data[i * steps + k] = (tsdb_sample){start + (int64_t)k * interval + jit, v[i]};
            }
        }
    }

    tsdb_buf dense, run, z;
    tsdb_buf_init(&dense);
    tsdb_buf_init(&run);
    tsdb_buf_init(&z);
    tsdb_sample zero[PER], back[PER];
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    double dec_s = 0, dec_n = 0;
    stat *tot = &stats[MAX_GROUPS];
    tot->group = "all";
    for (size_t i = 0; i < n; i++) {
        stat *st = group_stat(specs[i % per_inst].group);
        const tsdb_sample *s = &data[i * steps];
        run.len = 0;
        size_t framed = 0, n_chunks = 0;
        for (size_t off = 0; off < steps; off += PER) {
            size_t m = steps - off < PER ? steps - off : PER;
            tsdb_chunk_app a;
            tsdb_chunk_app_init(&a);
            for (size_t j = 0; j < m; j++)
                tsdb_chunk_app_add(&a, s[off + j].t, s[off + j].v);
            size_t xlen;
            const unsigned char *xp = tsdb_chunk_app_bytes(&a, &xlen);
            dense.len = 0;
            size_t dlen = SIZE_MAX, tlen = 0;
            if (tsdb_dense_encode(s + off, m, &dense) == TSDB_OK) {
                dlen = dense.len;
                size_t got = 0;
                double t0 = now_s();
                for (int rep = 0; rep < 3; rep++)
                    if (tsdb_dense_decode(dense.p, dense.len, back, PER, &got) != TSDB_OK ||
                        got != m || memcmp(back, s + off, m * sizeof(*back)) != 0) {
                        fprintf(stderr, "dense round trip failed\n");
                        return 1;
                    }
                dec_s += now_s() - t0;
                dec_n += 3.0 * (double)m;
                for (size_t j = 0; j < m; j++)
                    zero[j] = (tsdb_sample){s[off + j].t, 0};
                dense.len = 0;
                tsdb_dense_encode(zero, m, &dense);
                tlen = dense.len;
                st->dense_b += (double)dlen;
                st->ts_b += (double)tlen;
            } else {
                st->dense_b += (double)xlen;
            }
            st->xor_b += (double)xlen;
            size_t clen = dlen < xlen ? dlen : xlen;
            st->chosen_b += (double)clen;
            /* Run bytes: len u32 + enc u8 + chunk. */
            tsdb_buf_put_u32le(&run, (uint32_t)clen);
            tsdb_buf_putc(&run, dlen < xlen ? TSDB_CHUNK_ENC_DENSE : TSDB_CHUNK_ENC_XOR);
            if (dlen < xlen) {
                dense.len = 0;
                tsdb_dense_encode(s + off, m, &dense);
                tsdb_buf_put(&run, dense.p, dense.len);
            } else {
                tsdb_buf_put(&run, xp, xlen);
            }
            framed += clen + 9;
            n_chunks++;
            tsdb_chunk_app_fini(&a);
        }
        z.len = 0;
        size_t bound = ZSTD_compressBound(run.len);
        tsdb_buf_reserve(&z, bound);
        size_t zn = ZSTD_compressCCtx(cctx, z.p, bound, run.p, run.len, 3);
        size_t stored = framed;
        if (run.len >= 256 && !ZSTD_isError(zn) && zn < run.len - run.len / 8)
            stored = zn + 9;
        st->run_b += (double)(stored + 24 * n_chunks);
        st->samples += (double)steps;
    }
    for (size_t g = 0; g < n_groups; g++) {
        tot->samples += stats[g].samples;
        tot->xor_b += stats[g].xor_b;
        tot->dense_b += stats[g].dense_b;
        tot->ts_b += stats[g].ts_b;
        tot->chosen_b += stats[g].chosen_b;
        tot->run_b += stats[g].run_b;
    }
    printf("%zu series x %zu samples, chunks of %d; bits per sample\n", n, steps, PER);
    printf("%-14s %8s %8s %8s %8s %8s %8s %8s\n", "kind", "series%", "xor", "dense", "d.ts",
           "d.val", "chosen", "stored");
    for (size_t g = 0; g <= n_groups; g++) {
        stat *st = g == n_groups ? tot : &stats[g];
        double sm = st->samples;
        printf("%-14s %8.1f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", st->group,
               100.0 * sm / tot->samples, 8 * st->xor_b / sm, 8 * st->dense_b / sm,
               8 * st->ts_b / sm, 8 * (st->dense_b - st->ts_b) / sm, 8 * st->chosen_b / sm,
               8 * st->run_b / sm);
    }
    printf("stored bytes/sample (chunks + records + metas): %.3f\n", tot->run_b / tot->samples);
    printf("dense decode ns/sample: %.2f\n\n", dec_n > 0 ? 1e9 * dec_s / dec_n : 0.0);
    ZSTD_freeCCtx(cctx);
    tsdb_shapes();
    if (write_blocks(data, n, steps, start) != 0) {
        fprintf(stderr, "block writing failed\n");
        return 1;
    }
    tsdb_buf_fini(&dense);
    tsdb_buf_fini(&run);
    tsdb_buf_fini(&z);
    free(data);
    free(v);
    free(srng);
    return 0;
}
