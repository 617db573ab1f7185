/* Fuzz target: the YAML scrape configuration and file_sd-style documents, plus durations.
 *
 * Any bytes are parsed as a config. Invariants checked (abort on violation): a config that loads
 * has job names, positive intervals, timeouts no longer than intervals, http(s) schemes and
 * compiled relabel rules; failures carry a "name:line: " message. The first line, read as a
 * duration, must format and parse back to the same value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    const char *nl = memchr(data, '\n', size);
    tsdb_str first = {(const char *)data, nl ? (size_t)(nl - (const char *)data) : size};
    int64_t ms, ms2;
    if (tsdb_duration_parse(first, &ms) == 0) {
        char buf[64];
        ingest__duration_format(ms, buf, sizeof buf);
        if (tsdb_duration_parse(tsdb_str_c(buf), &ms2) != 0 || ms2 != ms)
            abort();
    }
    ingest_config *c = NULL;
    tsdb_err err;
    int rc = ingest__config_parse("fuzz.yml", (const char *)data, size, &c, &err);
    if (rc < 0) {
        if (c || strncmp(err.msg, "fuzz.yml:", 9) != 0)
            abort();
        return 0;
    }
    for (size_t j = 0; j < c->n_jobs; j++) {
        const ingest_scrape_cfg *s = &c->jobs[j];
        if (!s->job_name.len || s->interval_ms <= 0 || s->timeout_ms <= 0 ||
            s->timeout_ms > s->interval_ms)
            abort();
        if (!tsdb_str_eq(s->scheme, TSDB_STR("http")) && !tsdb_str_eq(s->scheme, TSDB_STR("https")))
            abort();
        for (size_t r = 0; r < s->n_relabel; r++)
            if (!s->relabel[r].re)
                abort();
        for (size_t r = 0; r < s->n_metric_relabel; r++)
            if (!s->metric_relabel[r].re)
                abort();
    }
    ingest__config_free(c);
    return 0;
}
