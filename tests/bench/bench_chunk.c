/* bench_chunk -- XOR chunk encode/decode speed and size for three series shapes.
 *
 * Each shape is cut into chunks of TSDB_CHUNK_SAMPLES_MAX samples, as the head does. Encoding
 * counts the whole appender life (init, adds, fini) per chunk; decoding iterates every sample
 * with tsdb_chunk_it_next ("dec") and with tsdb_chunk_it_next_batch into an array ("batch").
 * Each figure is the best of several runs. Prints a table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/chunk.h"
#include "tsdb/tsdb.h"

#define N_CHUNKS 4000
#define PER      TSDB_CHUNK_SAMPLES_MAX
#define N        ((size_t)N_CHUNKS * PER)
#define RUNS     7

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void gen_counter(tsdb_sample *s)
{
    int64_t t = 1700000000000LL;
    double v = 0;
    for (size_t i = 0; i < N; i++) {
        s[i].t = t + (int64_t)(rnd() % 41) - 20; /* scrape jitter of +-20 ms */
        t += 15000;
        v += (double)(rnd() % 100);
        s[i].v = v;
    }
}

static void gen_gauge(tsdb_sample *s)
{
    int64_t t = 1700000000000LL;
    double v = 500;
    for (size_t i = 0; i < N; i++) {
        s[i].t = t;
        t += 15000;
        v += ((double)(rnd() % 20001) - 10000.0) / 1000.0;
        s[i].v = v;
    }
}

static void gen_constant(tsdb_sample *s)
{
    int64_t t = 1700000000000LL;
    for (size_t i = 0; i < N; i++) {
        s[i].t = t;
        t += 15000;
        s[i].v = 1;
    }
}

typedef struct chunk_copy {
    unsigned char *p;
    size_t len;
} chunk_copy;

static void bench(const char *name, void (*gen)(tsdb_sample *))
{
    tsdb_sample *s = malloc(N * sizeof(*s));
    chunk_copy *c = calloc(N_CHUNKS, sizeof(*c));
    if (!s || !c) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    gen(s);

    /* Encode. */
    int64_t best_enc = INT64_MAX;
    size_t bytes = 0;
    for (int run = 0; run < RUNS; run++) {
        size_t sum = 0;
        int64_t t0 = tsdb_mono_ns();
        for (size_t k = 0; k < N_CHUNKS; k++) {
            tsdb_chunk_app a;
            tsdb_chunk_app_init(&a);
            const tsdb_sample *cs = s + k * PER;
            for (size_t i = 0; i < PER; i++)
                tsdb_chunk_app_add(&a, cs[i].t, cs[i].v);
            size_t len;
            const unsigned char *p = tsdb_chunk_app_bytes(&a, &len);
            sum += len;
            if (run == 0) {
                c[k].p = malloc(len);
                memcpy(c[k].p, p, len);
                c[k].len = len;
            }
            tsdb_chunk_app_fini(&a);
        }
        int64_t dt = tsdb_mono_ns() - t0;
        if (dt < best_enc)
            best_enc = dt;
        bytes = sum;
    }

    /* Decode one sample per call, and in batches (and check both). */
    int64_t best_dec = INT64_MAX, best_batch = INT64_MAX;
    uint64_t check = 0, check_batch = 0;
    static tsdb_sample batch[PER];
    for (int run = 0; run < RUNS; run++) {
        uint64_t acc = 0;
        size_t n = 0;
        int64_t t0 = tsdb_mono_ns();
        for (size_t k = 0; k < N_CHUNKS; k++) {
            tsdb_chunk_it it;
            tsdb_sample x;
            if (tsdb_chunk_it_init(&it, c[k].p, c[k].len) < 0)
                abort();
            while (tsdb_chunk_it_next(&it, &x) > 0) {
                uint64_t vb;
                memcpy(&vb, &x.v, sizeof(vb));
                acc += (uint64_t)x.t ^ vb;
                n++;
            }
        }
        int64_t dt = tsdb_mono_ns() - t0;
        if (dt < best_dec)
            best_dec = dt;
        if (n != N) {
            fprintf(stderr, "%s: decoded %zu samples, want %zu\n", name, n, N);
            exit(1);
        }
        check = acc;

        acc = 0;
        n = 0;
        t0 = tsdb_mono_ns();
        for (size_t k = 0; k < N_CHUNKS; k++) {
            tsdb_chunk_it it;
            int got;
            if (tsdb_chunk_it_init(&it, c[k].p, c[k].len) < 0)
                abort();
            while ((got = tsdb_chunk_it_next_batch(&it, batch, PER)) > 0) {
                for (int i = 0; i < got; i++) {
                    uint64_t vb;
                    memcpy(&vb, &batch[i].v, sizeof(vb));
                    acc += (uint64_t)batch[i].t ^ vb;
                }
                n += (size_t)got;
            }
        }
        dt = tsdb_mono_ns() - t0;
        if (dt < best_batch)
            best_batch = dt;
        if (n != N) {
            fprintf(stderr, "%s: batch-decoded %zu samples, want %zu\n", name, n, N);
            exit(1);
        }
        check_batch = acc;
    }
    uint64_t want = 0;
    for (size_t i = 0; i < N; i++) {
        uint64_t vb;
        memcpy(&vb, &s[i].v, sizeof(vb));
        want += (uint64_t)s[i].t ^ vb;
    }
    if (check != want || check_batch != want) {
        fprintf(stderr, "%s: decoded samples differ from the input\n", name);
        exit(1);
    }

    printf("%-10s %10zu %12.2f %12.2f %12.2f %14.3f\n", name, N, (double)best_enc / (double)N,
           (double)best_dec / (double)N, (double)best_batch / (double)N, (double)bytes / (double)N);
    for (size_t k = 0; k < N_CHUNKS; k++)
        free(c[k].p);
    free(c);
    free(s);
}

/* Runs the encoder for about 300 ms first, so that the first shape is not measured while the
 * CPU is still raising its clock. */
static void warm_up(void)
{
    int64_t end = tsdb_mono_ns() + 300 * 1000000LL;
    uint64_t sink = 0, r = 1;
    while (tsdb_mono_ns() < end) {
        tsdb_chunk_app a;
        tsdb_chunk_app_init(&a);
        for (int i = 0; i < PER; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL; /* not rnd(): keep the data */
            tsdb_chunk_app_add(&a, (int64_t)i * 15000 + (int64_t)(r >> 58), (double)(r >> 50));
        }
        size_t len;
        tsdb_chunk_app_bytes(&a, &len);
        sink += len;
        tsdb_chunk_app_fini(&a);
    }
    if (sink == 0)
        printf("warm-up did nothing\n");
}

int main(void)
{
    warm_up();
    printf("XOR chunks of %d samples, best of %d runs\n", PER, RUNS);
    printf("%-10s %10s %12s %12s %12s %14s\n", "shape", "samples", "enc ns/smp", "dec ns/smp",
           "batch ns/smp", "bytes/sample");
    bench("counter", gen_counter);
    bench("gauge", gen_gauge);
    bench("constant", gen_constant);
    return 0;
}
