/* query/func_time.c -- calendar functions: minute hour day_of_month day_of_week day_of_year
 * days_in_month month year.
 *
 * Each takes an optional instant vector of Unix times in seconds (default: vector(time())) and
 * returns the UTC calendar field; __name__ is dropped. Dates use the proleptic Gregorian
 * calendar with floor division, so negative times (before 1970) work as in Go's time package.
 */
#include "query/eval.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "query/ast.h"
#include "query/functions.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
static void civil(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

double qe_date_part(enum query_func_id id, double secs)
{
    if (!isfinite(secs) || fabs(secs) > 9.2e15)
        return NAN;
    int64_t t = (int64_t)secs; /* Go's int64(v) truncates toward zero */
    int64_t days = floor_div(t, 86400);
    int64_t sod = t - days * 86400;
    int64_t y;
    int m, d;
    civil(days, &y, &m, &d);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    switch (id) {
    case QUERY_FN_MINUTE:
        return (double)((sod / 60) % 60);
    case QUERY_FN_HOUR:
        return (double)(sod / 3600);
    case QUERY_FN_DAY_OF_MONTH:
        return d;
    case QUERY_FN_DAY_OF_WEEK: {
        int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
        return (double)(w < 0 ? w + 7 : w);
    }
    case QUERY_FN_DAY_OF_YEAR: {
        int yd = d;
        for (int k = 1; k < m; k++)
            yd += mdays[k - 1] + (k == 2 && is_leap(y));
        return yd;
    }
    case QUERY_FN_DAYS_IN_MONTH:
        return mdays[m - 1] + (m == 2 && is_leap(y));
    case QUERY_FN_MONTH:
        return m;
    case QUERY_FN_YEAR:
        return (double)y;
    default:
        return NAN;
    }
}

int qe_func_time(qe_ctx *c, const query_expr *e, const qe_steps *st, qe_value *args, qe_value *out)
{
    enum query_func_id id = e->u.call.fn->id;
    memset(out, 0, sizeof *out);
    if (e->u.call.n_args == 0) {
        qe_vseries *s = qe_vseries_new(c, st->n, 1);
        for (size_t i = 0; i < st->n; i++) {
            s->ok[i] = 1;
            s->v[i] = qe_date_part(id, (double)qe_step_t(st, i) / 1000);
        }
        out->kind = QE_VECTOR;
        out->vs = s;
        out->n_vs = 1;
        out->held = st->n;
        return qe_account(c, st->n);
    }
    qe_value *in = &args[0];
    if (in->kind != QE_VECTOR)
        return qe_errf(c, TSDB_EEXEC, "expected an instant vector argument");
    qe_out o;
    qe_out_init(&o, c, st, in->n_vs);
    int rc = 0;
    for (size_t s = 0; s < in->n_vs && rc == 0; s++) {
        size_t idx = (size_t)-1;
        for (size_t i = 0; i < st->n && rc == 0; i++) {
            if (!in->vs[s].ok[i])
                continue;
            if (idx == (size_t)-1)
                idx = qe_out_series(&o, qe_labels_drop_name(c, in->vs[s].labels));
            rc = qe_out_put(&o, idx, i, qe_date_part(id, in->vs[s].v[i]));
        }
    }
    if (rc < 0) {
        qe_out_fini(&o);
        return rc;
    }
    return qe_out_finish(&o, out);
}
