/* query/functions.c -- the PromQL function table of Prometheus 2.42.
 *
 * Argument and return types and the variadic rule are those of promql/parser/functions.go;
 * see query/functions.h for how n_args and variadic combine. The table is sorted by name so
 * lookup is a binary search, and indexed by id for query_func_by_id.
 */
#include "query/functions.h"

#include <string.h>

#define S QUERY_SCALAR
#define V QUERY_VECTOR
#define M QUERY_MATRIX
#define T QUERY_STRING

#define F0(name, ret, id)        \
    {                            \
        name, {S}, 0, 0, ret, id \
    }
#define F(name, types, n, var, ret, id) \
    {                                   \
        name, types, n, var, ret, id    \
    }
#define A(...)      \
    {               \
        __VA_ARGS__ \
    }

/* Sorted by name (strcmp order). */
static const query_func funcs[] = {
    F("abs", A(V), 1, 0, V, QUERY_FN_ABS),
    F("absent", A(V), 1, 0, V, QUERY_FN_ABSENT),
    F("absent_over_time", A(M), 1, 0, V, QUERY_FN_ABSENT_OVER_TIME),
    F("acos", A(V), 1, 0, V, QUERY_FN_ACOS),
    F("acosh", A(V), 1, 0, V, QUERY_FN_ACOSH),
    F("asin", A(V), 1, 0, V, QUERY_FN_ASIN),
    F("asinh", A(V), 1, 0, V, QUERY_FN_ASINH),
    F("atan", A(V), 1, 0, V, QUERY_FN_ATAN),
    F("atanh", A(V), 1, 0, V, QUERY_FN_ATANH),
    F("avg_over_time", A(M), 1, 0, V, QUERY_FN_AVG_OVER_TIME),
    F("ceil", A(V), 1, 0, V, QUERY_FN_CEIL),
    F("changes", A(M), 1, 0, V, QUERY_FN_CHANGES),
    F("clamp", A(V, S, S), 3, 0, V, QUERY_FN_CLAMP),
    F("clamp_max", A(V, S), 2, 0, V, QUERY_FN_CLAMP_MAX),
    F("clamp_min", A(V, S), 2, 0, V, QUERY_FN_CLAMP_MIN),
    F("cos", A(V), 1, 0, V, QUERY_FN_COS),
    F("cosh", A(V), 1, 0, V, QUERY_FN_COSH),
    F("count_over_time", A(M), 1, 0, V, QUERY_FN_COUNT_OVER_TIME),
    F("day_of_month", A(V), 1, 1, V, QUERY_FN_DAY_OF_MONTH),
    F("day_of_week", A(V), 1, 1, V, QUERY_FN_DAY_OF_WEEK),
    F("day_of_year", A(V), 1, 1, V, QUERY_FN_DAY_OF_YEAR),
    F("days_in_month", A(V), 1, 1, V, QUERY_FN_DAYS_IN_MONTH),
    F("deg", A(V), 1, 0, V, QUERY_FN_DEG),
    F("delta", A(M), 1, 0, V, QUERY_FN_DELTA),
    F("deriv", A(M), 1, 0, V, QUERY_FN_DERIV),
    F("exp", A(V), 1, 0, V, QUERY_FN_EXP),
    F("floor", A(V), 1, 0, V, QUERY_FN_FLOOR),
    F("histogram_count", A(V), 1, 0, V, QUERY_FN_HISTOGRAM_COUNT),
    F("histogram_fraction", A(S, S, V), 3, 0, V, QUERY_FN_HISTOGRAM_FRACTION),
    F("histogram_quantile", A(S, V), 2, 0, V, QUERY_FN_HISTOGRAM_QUANTILE),
    F("histogram_sum", A(V), 1, 0, V, QUERY_FN_HISTOGRAM_SUM),
    F("holt_winters", A(M, S, S), 3, 0, V, QUERY_FN_HOLT_WINTERS),
    F("hour", A(V), 1, 1, V, QUERY_FN_HOUR),
    F("idelta", A(M), 1, 0, V, QUERY_FN_IDELTA),
    F("increase", A(M), 1, 0, V, QUERY_FN_INCREASE),
    F("irate", A(M), 1, 0, V, QUERY_FN_IRATE),
    F("label_join", A(V, T, T, T), 4, -1, V, QUERY_FN_LABEL_JOIN),
    F("label_replace", A(V, T, T, T, T), 5, 0, V, QUERY_FN_LABEL_REPLACE),
    F("last_over_time", A(M), 1, 0, V, QUERY_FN_LAST_OVER_TIME),
    F("ln", A(V), 1, 0, V, QUERY_FN_LN),
    F("log10", A(V), 1, 0, V, QUERY_FN_LOG10),
    F("log2", A(V), 1, 0, V, QUERY_FN_LOG2),
    F("max_over_time", A(M), 1, 0, V, QUERY_FN_MAX_OVER_TIME),
    F("min_over_time", A(M), 1, 0, V, QUERY_FN_MIN_OVER_TIME),
    F("minute", A(V), 1, 1, V, QUERY_FN_MINUTE),
    F("month", A(V), 1, 1, V, QUERY_FN_MONTH),
    F0("pi", S, QUERY_FN_PI),
    F("predict_linear", A(M, S), 2, 0, V, QUERY_FN_PREDICT_LINEAR),
    F("present_over_time", A(M), 1, 0, V, QUERY_FN_PRESENT_OVER_TIME),
    F("quantile_over_time", A(S, M), 2, 0, V, QUERY_FN_QUANTILE_OVER_TIME),
    F("rad", A(V), 1, 0, V, QUERY_FN_RAD),
    F("rate", A(M), 1, 0, V, QUERY_FN_RATE),
    F("resets", A(M), 1, 0, V, QUERY_FN_RESETS),
    F("round", A(V, S), 2, 1, V, QUERY_FN_ROUND),
    F("scalar", A(V), 1, 0, S, QUERY_FN_SCALAR),
    F("sgn", A(V), 1, 0, V, QUERY_FN_SGN),
    F("sin", A(V), 1, 0, V, QUERY_FN_SIN),
    F("sinh", A(V), 1, 0, V, QUERY_FN_SINH),
    F("sort", A(V), 1, 0, V, QUERY_FN_SORT),
    F("sort_desc", A(V), 1, 0, V, QUERY_FN_SORT_DESC),
    F("sqrt", A(V), 1, 0, V, QUERY_FN_SQRT),
    F("stddev_over_time", A(M), 1, 0, V, QUERY_FN_STDDEV_OVER_TIME),
    F("stdvar_over_time", A(M), 1, 0, V, QUERY_FN_STDVAR_OVER_TIME),
    F("sum_over_time", A(M), 1, 0, V, QUERY_FN_SUM_OVER_TIME),
    F("tan", A(V), 1, 0, V, QUERY_FN_TAN),
    F("tanh", A(V), 1, 0, V, QUERY_FN_TANH),
    F0("time", S, QUERY_FN_TIME),
    F("timestamp", A(V), 1, 0, V, QUERY_FN_TIMESTAMP),
    F("vector", A(S), 1, 0, V, QUERY_FN_VECTOR),
    F("year", A(V), 1, 1, V, QUERY_FN_YEAR),
};

_Static_assert(sizeof funcs / sizeof funcs[0] == QUERY_FN__COUNT,
               "one table entry per function id");

const query_func *query_func_lookup(const char *name, size_t len)
{
    size_t lo = 0, hi = sizeof funcs / sizeof funcs[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *f = funcs[mid].name;
        size_t fl = strlen(f);
        int c = memcmp(f, name, fl < len ? fl : len);
        if (c == 0)
            c = fl < len ? -1 : fl > len ? 1 : 0;
        if (c == 0)
            return &funcs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const query_func *query_func_by_id(enum query_func_id id)
{
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
        if (funcs[i].id == id)
            return &funcs[i];
    }
    return NULL;
}
