/* tsdb/duration.c -- Prometheus duration strings ("1h30m", "5m", "250ms").
 *
 * The syntax of Prometheus' model.ParseDuration: one or more <digits><unit> groups with units
 * y (365 d), w, d, h, m, s, ms, each at most once and from largest to smallest; "0" alone is
 * zero. Every folder parses durations the same way through this one function (PromQL range
 * literals, HTTP parameters, the scrape configuration, the command-line tools).
 */
#include "tsdb/base.h"

#include <string.h>

int tsdb_duration_parse(tsdb_str s, int64_t *ms)
{
    static const struct {
        const char *u;
        size_t len;
        int64_t ms;
    } units[] = {{"y", 1, 365LL * 86400000},
                 {"w", 1, 7LL * 86400000},
                 {"d", 1, 86400000},
                 {"h", 1, 3600000},
                 {"m", 1, 60000},
                 {"s", 1, 1000},
                 {"ms", 2, 1}};
    if (s.len == 1 && s.p[0] == '0') {
        *ms = 0;
        return TSDB_OK;
    }
    if (s.len == 0)
        return TSDB_EINVAL;
    size_t i = 0;
    int last = -1;
    int64_t total = 0;
    while (i < s.len) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return TSDB_EINVAL;
        uint64_t n = 0;
        while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9') {
            n = n * 10 + (uint64_t)(s.p[i] - '0');
            if (n > (uint64_t)INT64_MAX)
                return TSDB_EINVAL;
            i++;
        }
        size_t us = i;
        while (i < s.len && ((s.p[i] >= 'a' && s.p[i] <= 'z') || (s.p[i] >= 'A' && s.p[i] <= 'Z')))
            i++;
        int k = -1;
        for (int u = 0; u < 7; u++)
            if (units[u].len == i - us && memcmp(units[u].u, s.p + us, i - us) == 0)
                k = u;
        if (k < 0 || k <= last)
            return TSDB_EINVAL;
        last = k;
        if (n > (uint64_t)(INT64_MAX / units[k].ms) || total > INT64_MAX - (int64_t)n * units[k].ms)
            return TSDB_EINVAL;
        total += (int64_t)n * units[k].ms;
    }
    *ms = total;
    return TSDB_OK;
}
