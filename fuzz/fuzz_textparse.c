/* Fuzz target: the text exposition format 0.0.4 parser (fuzz_openmetrics.c reuses this file for
 * OpenMetrics 1.0).
 *
 * Any bytes are parsed to the end. Invariants checked (abort on violation): every sample carries
 * __name__ first and equal to its name; errors are TSDB_EPARSE with a "line:col: " message and
 * are sticky; and every sample, written back in canonical text form and parsed again, yields the
 * same labels, value bits (any NaN for NaN) and timestamp.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/ingest.h"

#ifndef FUZZ_TEXT_FORMAT
#define FUZZ_TEXT_FORMAT INGEST_TEXT_PROM
#endif

static int simple_name(tsdb_str s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static void put_quoted(tsdb_buf *b, tsdb_str s)
{
    tsdb_buf_putc(b, '"');
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '\\' || s.p[i] == '"')
            tsdb_buf_putc(b, '\\');
        if (s.p[i] == '\n') {
            tsdb_buf_puts(b, "\\n");
            continue;
        }
        tsdb_buf_putc(b, (unsigned char)s.p[i]);
    }
    tsdb_buf_putc(b, '"');
}

/* Writes e as one text-format line. */
static void write_line(tsdb_buf *b, const ingest_text_entry *e)
{
    int quoted_name = !simple_name(e->name);
    if (!quoted_name)
        tsdb_buf_put(b, e->name.p, e->name.len);
    tsdb_buf_putc(b, '{');
    if (quoted_name) {
        put_quoted(b, e->name);
        tsdb_buf_putc(b, ',');
    }
    for (size_t i = 1; i < e->n_labels; i++) {
        if (simple_name(e->labels[i].name))
            tsdb_buf_put(b, e->labels[i].name.p, e->labels[i].name.len);
        else
            put_quoted(b, e->labels[i].name);
        tsdb_buf_putc(b, '=');
        put_quoted(b, e->labels[i].value);
        tsdb_buf_putc(b, ',');
    }
    tsdb_buf_putc(b, '}');
    if (isnan(e->v))
        tsdb_buf_puts(b, " NaN");
    else if (isinf(e->v))
        tsdb_buf_puts(b, e->v > 0 ? " +Inf" : " -Inf");
    else
        tsdb_buf_printf(b, " %.17g", e->v);
    if (e->has_t && e->t >= 0) /* the text format has no negative timestamps */
        tsdb_buf_printf(b, " %lld", (long long)e->t);
    tsdb_buf_putc(b, '\n');
}

static void check_round_trip(const ingest_text_entry *e)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    write_line(&b, e);
    ingest_text *p = ingest_text_new((const char *)b.p, b.len, INGEST_TEXT_PROM);
    ingest_text_entry r;
    tsdb_err err;
    int rc = ingest_text_next(p, &r, &err);
    if (rc != 1 || r.kind != INGEST_TEXT_SERIES) {
        fprintf(stderr, "re-parse failed (%d): %s\n%.*s", rc, err.msg, (int)b.len, b.p);
        abort();
    }
    int want_t = e->has_t && e->t >= 0;
    int same = r.n_labels == e->n_labels && r.has_t == want_t && (!r.has_t || r.t == e->t);
    same = same && ((isnan(r.v) && isnan(e->v)) || memcmp(&r.v, &e->v, sizeof r.v) == 0);
    for (size_t i = 0; same && i < r.n_labels; i++)
        same = tsdb_str_eq(r.labels[i].name, e->labels[i].name) &&
               tsdb_str_eq(r.labels[i].value, e->labels[i].value);
    if (!same) {
        fprintf(stderr, "round trip changed the sample:\n%.*s", (int)b.len, b.p);
        abort();
    }
    ingest_text_free(p);
    tsdb_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    ingest_text *p = ingest_text_new((const char *)data, size, FUZZ_TEXT_FORMAT);
    ingest_text_entry e;
    tsdb_err err;
    int rc;
    while ((rc = ingest_text_next(p, &e, &err)) > 0) {
        if (e.kind != INGEST_TEXT_SERIES)
            continue;
        if (e.n_labels < 1 || !tsdb_str_eq(e.labels[0].name, TSDB_STR("__name__")) ||
            !tsdb_str_eq(e.labels[0].value, e.name))
            abort();
        check_round_trip(&e);
    }
    if (rc < 0) {
        int line, col;
        if (rc != TSDB_EPARSE || err.code != TSDB_EPARSE ||
            sscanf(err.msg, "%d:%d: ", &line, &col) != 2 || line < 1 || col < 1)
            abort();
        tsdb_err again;
        if (ingest_text_next(p, &e, &again) != rc || strcmp(again.msg, err.msg) != 0)
            abort();
    }
    ingest_text_free(p);
    return 0;
}
