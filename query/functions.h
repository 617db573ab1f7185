/* query/functions.h -- the PromQL function table (internal to query/).
 *
 * One entry per function of Prometheus 2.42 (promql/parser/functions.go), with the argument
 * and return types the checker enforces and an id the evaluator switches on. Arity follows
 * Prometheus' rule:
 *   variadic == 0: exactly n_args arguments;
 *   variadic  > 0: between n_args - 1 and n_args - 1 + variadic arguments (the last arg_types
 *                  entry is the type of each optional argument);
 *   variadic  < 0: at least n_args - 1 arguments, every extra one of type arg_types[n_args-1].
 * Example: round(v, to_nearest=1) is {VECTOR, SCALAR}, n_args 2, variadic 1; year(v=vector(time()))
 * is {VECTOR}, n_args 1, variadic 1 (zero or one argument).
 *
 * The table is static and immutable: safe to read from any thread.
 */
#ifndef QUERY_FUNCTIONS_H
#define QUERY_FUNCTIONS_H

#include <stddef.h>

#include "query/query.h"

enum query_func_id {
    QUERY_FN_ABS,
    QUERY_FN_ABSENT,
    QUERY_FN_ABSENT_OVER_TIME,
    QUERY_FN_ACOS,
    QUERY_FN_ACOSH,
    QUERY_FN_ASIN,
    QUERY_FN_ASINH,
    QUERY_FN_ATAN,
    QUERY_FN_ATANH,
    QUERY_FN_AVG_OVER_TIME,
    QUERY_FN_CEIL,
    QUERY_FN_CHANGES,
    QUERY_FN_CLAMP,
    QUERY_FN_CLAMP_MAX,
    QUERY_FN_CLAMP_MIN,
    QUERY_FN_COS,
    QUERY_FN_COSH,
    QUERY_FN_COUNT_OVER_TIME,
    QUERY_FN_DAYS_IN_MONTH,
    QUERY_FN_DAY_OF_MONTH,
    QUERY_FN_DAY_OF_WEEK,
    QUERY_FN_DAY_OF_YEAR,
    QUERY_FN_DEG,
    QUERY_FN_DELTA,
    QUERY_FN_DERIV,
    QUERY_FN_EXP,
    QUERY_FN_FLOOR,
    QUERY_FN_HISTOGRAM_COUNT,    /* native histograms only: empty result on float samples */
    QUERY_FN_HISTOGRAM_FRACTION, /* native histograms only: empty result on float samples */
    QUERY_FN_HISTOGRAM_QUANTILE,
    QUERY_FN_HISTOGRAM_SUM, /* native histograms only: empty result on float samples */
    QUERY_FN_HOLT_WINTERS,
    QUERY_FN_HOUR,
    QUERY_FN_IDELTA,
    QUERY_FN_INCREASE,
    QUERY_FN_IRATE,
    QUERY_FN_LABEL_JOIN,
    QUERY_FN_LABEL_REPLACE,
    QUERY_FN_LAST_OVER_TIME,
    QUERY_FN_LN,
    QUERY_FN_LOG10,
    QUERY_FN_LOG2,
    QUERY_FN_MAX_OVER_TIME,
    QUERY_FN_MIN_OVER_TIME,
    QUERY_FN_MINUTE,
    QUERY_FN_MONTH,
    QUERY_FN_PI,
    QUERY_FN_PREDICT_LINEAR,
    QUERY_FN_PRESENT_OVER_TIME,
    QUERY_FN_QUANTILE_OVER_TIME,
    QUERY_FN_RAD,
    QUERY_FN_RATE,
    QUERY_FN_RESETS,
    QUERY_FN_ROUND,
    QUERY_FN_SCALAR,
    QUERY_FN_SGN,
    QUERY_FN_SIN,
    QUERY_FN_SINH,
    QUERY_FN_SORT,
    QUERY_FN_SORT_DESC,
    QUERY_FN_SQRT,
    QUERY_FN_STDDEV_OVER_TIME,
    QUERY_FN_STDVAR_OVER_TIME,
    QUERY_FN_SUM_OVER_TIME,
    QUERY_FN_TAN,
    QUERY_FN_TANH,
    QUERY_FN_TIME,
    QUERY_FN_TIMESTAMP,
    QUERY_FN_VECTOR,
    QUERY_FN_YEAR,
    QUERY_FN__COUNT /* number of functions; not a function */
};

#define QUERY_FUNC_MAX_ARGS 5

typedef struct query_func {
    const char *name;
    enum query_type arg_types[QUERY_FUNC_MAX_ARGS];
    int n_args;   /* entries used in arg_types */
    int variadic; /* see the file comment */
    enum query_type ret;
    enum query_func_id id;
} query_func;

/* The function called name[0..len), or NULL if there is none. */
const query_func *query_func_lookup(const char *name, size_t len);
/* The function with the given id (id < QUERY_FN__COUNT). */
const query_func *query_func_by_id(enum query_func_id id);

#endif
