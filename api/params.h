/* api/params.h -- request parameters: query strings, form bodies, times and durations.
 *
 * Decoding follows Go's net/url: '&' separates pairs (';' is not a separator), '+' is a space,
 * %XX escapes are decoded and a malformed escape is an error. Times and durations follow
 * Prometheus' web/api/v1 parseTime and parseDuration.
 */
#ifndef API_PARAMS_H
#define API_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

typedef struct api_kv {
    tsdb_str name, value;
} api_kv;

/* A growable list of decoded pairs in an arena. */
typedef struct api_params {
    api_kv *v;
    size_t n, cap;
} api_params;

/* Decodes "a=b&c=d" and appends the pairs (copied into the arena, NUL-terminated) to p.
 * Returns 0 or TSDB_EINVAL (with a message) on a malformed %-escape. */
int api__params_parse(api_params *p, tsdb_arena *a, const char *s, size_t len, tsdb_err *err);
/* First value of name, or NULL. */
const tsdb_str *api__params_get(const api_params *p, const char *name);
/* All values of name (e.g. match[]) into an arena array; returns the count. */
size_t api__params_all(const api_params *p, const char *name, tsdb_arena *a, tsdb_str **out);

/* "All time" bounds: wide enough for any real data, far enough from INT64_MIN/MAX that
 * start - lookback and end + step cannot overflow. */
#define API_TIME_MIN_MS (-(INT64_C(1) << 62))
#define API_TIME_MAX_MS (INT64_C(1) << 62)

/* Prometheus time: float unix seconds (fraction rounded to ms) or RFC 3339 with an optional
 * fraction and a Z or +hh:mm offset; also Prometheus' min/max time sentinels. Result in ms.
 * Returns 0 or TSDB_EINVAL with "cannot parse \"s\" to a valid timestamp". */
int api__parse_time(tsdb_str s, int64_t *ms, tsdb_err *err);
/* Prometheus duration: float seconds, or [0-9]+ units among y w d h m s ms, largest first.
 * Result in ms (truncated like Go's time.Duration -> ms). TSDB_EINVAL with a message. */
int api__parse_duration(tsdb_str s, int64_t *ms, tsdb_err *err);

#endif
