/* ingest/ingest.h -- getting samples into Cairn: remote write and scraping.
 *
 * Decoders turn outside bytes into tsdb batches whose memory lives in the caller's arena; they
 * validate sizes before allocating and never trust a declared length.
 */
#ifndef INGEST_INGEST_H
#define INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

typedef struct ingest_limits {
    size_t max_body;        /* decompressed bytes; 0 = 32 MiB */
    size_t max_series;      /* per request; 0 = unlimited */
    size_t max_labels;      /* per series; 0 = unlimited */
    size_t max_label_bytes; /* per name or value; 0 = unlimited */
} ingest_limits;

/* Metric metadata (from remote write or # HELP/# TYPE/# UNIT). */
typedef struct ingest_metadata {
    tsdb_str metric, type, help, unit; /* type: counter, gauge, histogram, summary, ... */
} ingest_metadata;

typedef struct ingest_write {
    tsdb_batch batch;
    const ingest_metadata *meta;
    size_t n_meta;
    size_t n_samples;                 /* over all series */
    size_t n_histograms, n_exemplars; /* received (2.0) but not stored */
    /* Series dropped for invalid labels (no metric name, bad or duplicate label names, limits);
     * the others are in batch. invalid_reason: the first one's, in the arena; NULL if none. */
    size_t n_invalid_series, n_invalid_samples;
    const char *invalid_reason;
} ingest_write;

/* Remote-write versions, chosen from the Content-Type proto= parameter. */
enum ingest_rw_version { INGEST_RW_V1, INGEST_RW_V2 };

/* Decodes a snappy-compressed remote-write body. Errors: TSDB_ELIMIT (too large),
 * TSDB_EINVAL (malformed snappy/protobuf, label references out of range), with a message. A
 * series with an invalid label set is left out of the batch and counted in n_invalid_*. */
int ingest_rw_decode(tsdb_arena *a, enum ingest_rw_version ver, const void *body, size_t len,
                     const ingest_limits *lim, ingest_write *out, tsdb_err *err);
/* Encodes a batch as a snappy-compressed remote-write 1.0 body (for tools and tests). */
int ingest_rw_encode(const tsdb_batch *b, tsdb_arena *a, tsdb_str *out);
/* The same as a remote-write 2.0 Request (symbol table, label refs); for tools and tests. */
int ingest_rw_encode_v2(const tsdb_batch *b, tsdb_arena *a, tsdb_str *out);

/* ==== Remote read (ingest/remote_read.c) ========================================================
 *
 * POST /api/v1/read carries a Snappy-compressed prometheus.ReadRequest. The answer is either one
 * Snappy-compressed ReadResponse (SAMPLES) or, when the client accepts STREAMED_XOR_CHUNKS, a
 * stream of frames: uvarint length, CRC32C (big endian) of the message, ChunkedReadResponse.
 */

typedef struct ingest_rr_matcher {
    enum tsdb_match_op op;
    tsdb_str name, value;
} ingest_rr_matcher;

typedef struct ingest_rr_query {
    int64_t start_ms, end_ms;
    const ingest_rr_matcher *matchers;
    size_t n_matchers;
} ingest_rr_query;

typedef struct ingest_read_request {
    const ingest_rr_query *queries;
    size_t n_queries;
    int streamed_chunks; /* 1 if STREAMED_XOR_CHUNKS is among the accepted response types */
} ingest_read_request;

/* Decodes a read request into the arena. TSDB_ELIMIT (too large), TSDB_EINVAL (malformed). */
int ingest_rr_decode(tsdb_arena *a, const void *body, size_t len, const ingest_limits *lim,
                     ingest_read_request *out, tsdb_err *err);

typedef struct ingest_rr_series {
    tsdb_labels labels;
    const tsdb_sample *samples;
    size_t n_samples;
} ingest_rr_series;

typedef struct ingest_rr_result { /* one per query, in order */
    const ingest_rr_series *series;
    size_t n_series;
} ingest_rr_result;

/* SAMPLES: a Snappy-compressed ReadResponse in the arena. */
int ingest_rr_encode_samples(const ingest_rr_result *res, size_t n, tsdb_arena *a, tsdb_str *out);

typedef struct ingest_rr_chunk {
    int64_t mint, maxt;
    const void *data; /* Prometheus XOR chunk bytes */
    size_t len;
} ingest_rr_chunk;

/* STREAMED_XOR_CHUNKS: appends one frame holding one series and its chunks to out. */
int ingest_rr_append_frame(tsdb_buf *out, int64_t query_index, tsdb_labels labels,
                           const ingest_rr_chunk *chunks, size_t n_chunks, tsdb_arena *a);

/* ==== Scraping: exposition parser, scraper, targets and metadata ==============================
 *
 * The scraper (ingest/scrape.c) pulls Prometheus text 0.0.4 or OpenMetrics 1.0 pages from the
 * targets named in a Prometheus-style YAML file (ingest/config.c), relabels them
 * (ingest/relabel.c) and appends to a tsdb. The parser (ingest/textparse.c) is public so that tools
 * can backfill from exposition files.
 */

/* ---- Exposition text parser (ingest/textparse.c) ---- */

enum ingest_text_format {
    INGEST_TEXT_PROM = 0,        /* text/plain; version=0.0.4 */
    INGEST_TEXT_OPENMETRICS = 1, /* application/openmetrics-text; version=1.0.0 */
};

enum ingest_text_kind {
    INGEST_TEXT_SERIES = 1, /* a sample line */
    INGEST_TEXT_HELP,       /* # HELP family text */
    INGEST_TEXT_TYPE,       /* # TYPE family type */
    INGEST_TEXT_UNIT,       /* # UNIT family unit (OpenMetrics) */
};

/* One parsed line. Every pointer is borrowed from the input or the parser: valid until the next
 * ingest_text_next or ingest_text_free. */
typedef struct ingest_text_entry {
    enum ingest_text_kind kind;
    tsdb_str name;            /* SERIES: metric name; otherwise the family name */
    tsdb_str text;            /* HELP text (unescaped), TYPE name, UNIT; empty for SERIES */
    const tsdb_label *labels; /* SERIES: __name__ first, then labels in written order, unescaped */
    size_t n_labels;
    double v;        /* SERIES: the value */
    int64_t t;       /* SERIES: timestamp in ms when has_t */
    int has_t;       /* 1 if the line carried a timestamp */
    int line;        /* 1-based line number */
    tsdb_str series; /* SERIES: the name and label set exactly as written (a cache key) */
} ingest_text_entry;

typedef struct ingest_text ingest_text; /* opaque pull parser */

/* The Accept header the scraper sends (OpenMetrics preferred, as Prometheus 2.42 does). */
#define INGEST_SCRAPE_ACCEPT                                                                 \
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;" \
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

/* Format for a Content-Type header value: OpenMetrics for application/openmetrics-text, the text
 * format for anything else (including an empty header), as Prometheus 2.42 does. */
enum ingest_text_format ingest_text_format_of(tsdb_str content_type);

/* Starts a parser over [p, p+len), which must stay valid and unchanged until ingest_text_free.
 * Owned: free with ingest_text_free. Never fails (allocation aborts). */
ingest_text *ingest_text_new(const char *p, size_t len, enum ingest_text_format fmt);
/* OpenMetrics `<family>_created` samples of counters, histograms and summaries are skipped
 * unless this is turned on (they hold a creation time, not a measurement). The scraper turns it
 * on: Prometheus 2.42 stores them as ordinary series. */
void ingest_text_keep_created(ingest_text *p, int on);
/* >0: *e holds the next entry; 0: end of input; <0: TSDB_EPARSE with "line:col: reason" in err
 * (err->pos is the byte offset). After an error or the end, every call returns the same. */
int ingest_text_next(ingest_text *p, ingest_text_entry *e, tsdb_err *err);
void ingest_text_free(ingest_text *p); /* NULL allowed */

/* ---- Scraper (ingest/scrape.c) ---- */

typedef struct ingest_scraper ingest_scraper; /* opaque; one scrape thread */

/* Loads the YAML file at config_path (see ingest/config.c for the accepted keys) and starts the
 * scrape thread appending to db. [out] *out: owned, stop with ingest_scraper_stop. Returns
 * TSDB_EINVAL/TSDB_EPARSE with "file:line: reason" for a bad file, TSDB_EIO if it can't be read. */
int ingest_scraper_start(tsdb *db, const char *config_path, ingest_scraper **out, tsdb_err *err);
/* Re-reads the file given to start. On error the running configuration is kept and err says
 * why. Targets that disappear get staleness markers, unchanged targets keep their state.
 * Thread-safe. */
int ingest_scraper_reload(ingest_scraper *s, tsdb_err *err);
/* Stops the scrape thread, writes a staleness marker for every series the scraper last wrote,
 * and frees everything. NULL allowed. */
void ingest_scraper_stop(ingest_scraper *s);

/* Appends the `data` object of GET /api/v1/targets to out:
 * {"activeTargets":[...],"droppedTargets":[...]} in Prometheus' shape. state is "active",
 * "dropped", "any" or NULL (= any). Thread-safe. Returns 0, or TSDB_EINVAL for a bad state. */
int ingest_scraper_targets_json(ingest_scraper *s, const char *state, tsdb_buf *out);
/* Appends the `data` object of GET /api/v1/metadata to out: {"<metric>":[{"type":"counter",
 * "help":"...","unit":""},...],...}, from scraped # HELP/# TYPE/# UNIT lines (and
 * ingest_scraper_metadata_add). metric.len > 0 restricts to that metric; limit >= 0 caps the
 * number of metrics (limit < 0: no cap). s may be NULL ({}). Thread-safe. */
void ingest_scraper_metadata_json(ingest_scraper *s, tsdb_str metric, long limit, tsdb_buf *out);
/* Records metadata from elsewhere (e.g. remote write) for ingest_scraper_metadata_json. */
void ingest_scraper_metadata_add(ingest_scraper *s, const ingest_metadata *m, size_t n);

/* Parses a config file without starting anything (promtool check config). 0 or an error. */
int ingest_config_check(const char *path, tsdb_err *err);

#endif
