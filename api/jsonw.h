/* api/jsonw.h -- a streaming JSON writer with Prometheus' number formats.
 *
 * Writes straight into a tsdb_buf, inserting commas itself: callers only say begin/end, key and
 * value. Sample values follow Prometheus' util/jsonutil MarshalFloat (Go's shortest round-trip
 * decimal, 'e' notation below 1e-6 or from 1e21, "NaN", "+Inf", "-Inf"), timestamps its
 * MarshalTimestamp (seconds, plus ".mmm" when the millisecond part is non-zero).
 *
 * Not thread-safe; one writer per response. Nesting deeper than API_JSON_MAX_DEPTH is a
 * programming error (asserted).
 */
#ifndef API_JSONW_H
#define API_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define API_JSON_MAX_DEPTH 32

typedef struct api_json {
    tsdb_buf *b;                         /* output, borrowed */
    int depth;                           /* open containers */
    unsigned char n[API_JSON_MAX_DEPTH]; /* per level: 1 once a member was written */
    int after_key;                       /* the next value follows a key: no comma */
} api_json;

void api__json_init(api_json *j, tsdb_buf *b);
void api__json_obj_begin(api_json *j);
void api__json_obj_end(api_json *j);
void api__json_arr_begin(api_json *j);
void api__json_arr_end(api_json *j);
void api__json_key(api_json *j, const char *k); /* k is written escaped */
void api__json_keyn(api_json *j, tsdb_str k);
void api__json_str(api_json *j, const char *s); /* NULL writes null */
void api__json_strn(api_json *j, tsdb_str s);
void api__json_int(api_json *j, int64_t v);
void api__json_uint(api_json *j, uint64_t v);
void api__json_bool(api_json *j, int v);
void api__json_null(api_json *j);
void api__json_raw(api_json *j, const char *s); /* a complete JSON value, written verbatim */
void api__json_num(api_json *j, double v);      /* JSON number (finite; null otherwise) */
/* A sample value as a JSON string, Prometheus style ("1.5", "NaN", "+Inf", "1e-07"). */
void api__json_value(api_json *j, double v);
/* A timestamp in ms as a JSON number of seconds ("1435781451.781"). */
void api__json_ts(api_json *j, int64_t t_ms);
/* [ts, "value"] */
void api__json_point(api_json *j, int64_t t_ms, double v);
/* {"name":"value",...} */
void api__json_labels(api_json *j, tsdb_labels l);

/* Formats v as Go's strconv.FormatFloat(v, fmt, -1, 64) with fmt 'f' or 'e' chosen like
 * Prometheus' MarshalFloat. Writes a NUL-terminated string of at most 32 bytes into out and
 * returns its length. */
size_t api__fmt_float(double v, char out[32]);
/* The same digits laid out as Go's FormatFloat(v, 'g', -1, 64), which the text exposition format
 * uses ("1e+06", "0.0001", "1.5e-05"). */
size_t api__fmt_float_g(double v, char out[32]);
/* Formats a ms timestamp like MarshalTimestamp; out holds at least 32 bytes. */
size_t api__fmt_ts(int64_t t_ms, char out[32]);

#endif
