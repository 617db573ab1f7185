/* query/func_time.c -- calendar functions: minute hour day_of_month day_of_week day_of_year
 * days_in_month month year.
 *
 * Each takes an optional instant vector of Unix times in seconds (default: vector(time())) and
 * returns the UTC calendar field; __name__ is dropped. Dates follow Go's time package exactly
 * (proleptic Gregorian calendar, see go_date), so every input gives Prometheus' answer.
 */
#include "query/eval.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

/* Go's time package counts seconds from an "absolute" zero year far in the past in a uint64
 * (wrapping); PromQL converts a value with int64(v), which on amd64 yields INT64_MIN for NaN,
 * infinities and anything out of range. Doing the same here gives Prometheus' answers for every
 * input, including those nonsensical ones. */
#define ABS_ZERO_YEAR    (-292277022399LL)
#define UNIX_TO_ABSOLUTE 9223372028715321600ULL /* unixToInternal + internalToAbsolute */
#define DAYS_PER_400Y    (365ULL * 400 + 97)
#define DAYS_PER_100Y    (365ULL * 100 + 24)
#define DAYS_PER_4Y      (365ULL * 4 + 1)

static const int days_before[13] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};

static int is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static uint64_t go_abs(double secs)
{
    int64_t t;
    if (isnan(secs) || secs >= 9223372036854775808.0 || secs < -9223372036854775808.0)
        t = INT64_MIN;
    else
        t = (int64_t)secs; /* truncates toward zero, as Go's int64(v) */
    return (uint64_t)t + UNIX_TO_ABSOLUTE;
}

/* Year, month (1-12), day (1-31) and day of the year (0-based) of an absolute time. */
static void go_date(uint64_t abs, int64_t *year, int *month, int *day, int *yday)
{
    uint64_t d = abs / 86400;
    uint64_t n = d / DAYS_PER_400Y;
    uint64_t y = 400 * n;
    d -= DAYS_PER_400Y * n;
    n = d / DAYS_PER_100Y;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100Y * n;
    n = d / DAYS_PER_4Y;
    y += 4 * n;
    d -= DAYS_PER_4Y * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    *year = (int64_t)y + ABS_ZERO_YEAR;
    *yday = (int)d;
    int dd = (int)d;
    if (is_leap(*year)) {
        if (dd > 31 + 29 - 1) {
            dd--;
        } else if (dd == 31 + 29 - 1) {
            *month = 2;
            *day = 29;
            return;
        }
    }
    int m = dd / 31;
    int begin;
    if (dd >= days_before[m + 1]) {
        m++;
        begin = days_before[m];
    } else {
        begin = days_before[m];
    }
    *month = m + 1;
    *day = dd - begin + 1;
}

double query__date_part(enum query_func_id id, double secs)
{
    uint64_t abs = go_abs(secs);
    int64_t y;
    int m, d, yd;
    switch (id) {
    case QUERY_FN_MINUTE:
        return (double)((abs % 3600) / 60);
    case QUERY_FN_HOUR:
        return (double)((abs % 86400) / 3600);
    case QUERY_FN_DAY_OF_WEEK: /* absolute time 0 is a Monday */
        return (double)(((abs + 86400) % (7 * 86400)) / 86400);
    default:
        break;
    }
    go_date(abs, &y, &m, &d, &yd);
    switch (id) {
    case QUERY_FN_DAY_OF_MONTH:
        return d;
    case QUERY_FN_DAY_OF_YEAR:
        return yd + 1;
    case QUERY_FN_DAYS_IN_MONTH:
        return days_before[m] - days_before[m - 1] + (m == 2 && is_leap(y));
    case QUERY_FN_MONTH:
        return m;
    case QUERY_FN_YEAR:
        return (double)y;
    default:
        return NAN;
    }
}

int query__func_time(query_eval_ctx *c, const query_expr *e, const query_steps *st,
                     query_value *args, query_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    memset(out, 0, sizeof *out);
    if (e->u.call.n_args == 0) {
        query_vseries *s = query__vseries_new(c, st->n, 1);
        for (size_t i = 0; i < st->n; i++) {
            s->ok[i] = 1;
            s->v[i] = query__date_part(id, (double)query__step_t(st, i) / 1000);
        }
        out->kind = QUERY_V_VECTOR;
        out->vs = s;
        out->n_vs = 1;
        out->held = st->n;
        return query__account(c, st->n);
    }
    query_value *in = &args[0];
    if (in->kind != QUERY_V_VECTOR)
        return query__errf(c, TSDB_EEXEC, "expected an instant vector argument");
    query_out o;
    query__out_init(&o, c, st, in->n_vs);
    int rc = 0;
    for (size_t s = 0; s < in->n_vs && rc == 0; s++) {
        size_t idx = (size_t)-1;
        for (size_t i = in->vs[s].off; i < in->vs[s].off + in->vs[s].len && rc == 0; i++) {
            if (!query__ok(&in->vs[s], i))
                continue;
            if (idx == (size_t)-1)
                idx = query__out_series(&o, query__labels_drop_name(c, in->vs[s].labels));
            rc = query__out_put(&o, idx, i, query__date_part(id, query__v(&in->vs[s], i)));
        }
    }
    if (rc < 0) {
        query__out_fini(&o);
        return rc;
    }
    return query__out_finish(&o, out);
}
