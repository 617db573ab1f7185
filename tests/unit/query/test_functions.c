/* Unit tests for query/functions.c: the table holds every float function of Prometheus 2.42
 * (promql/parser/functions.go) with its declared types, lookup by name and by id agree, and
 * the checker applies each function's arity rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "query/functions.h"
#include "query/query.h"
#include "tsdb/base.h"

static void test_function_table(void **state)
{
    (void)state;
    /* Every float function of Prometheus 2.42 (promql/parser/functions.go). */
    static const char *const names[] = {"abs",
                                        "absent",
                                        "absent_over_time",
                                        "acos",
                                        "acosh",
                                        "asin",
                                        "asinh",
                                        "atan",
                                        "atanh",
                                        "avg_over_time",
                                        "ceil",
                                        "changes",
                                        "clamp",
                                        "clamp_max",
                                        "clamp_min",
                                        "cos",
                                        "cosh",
                                        "count_over_time",
                                        "days_in_month",
                                        "day_of_month",
                                        "day_of_week",
                                        "day_of_year",
                                        "deg",
                                        "delta",
                                        "deriv",
                                        "exp",
                                        "floor",
                                        "histogram_count",
                                        "histogram_fraction",
                                        "histogram_quantile",
                                        "histogram_sum",
                                        "holt_winters",
                                        "hour",
                                        "idelta",
                                        "increase",
                                        "irate",
                                        "label_join",
                                        "label_replace",
                                        "last_over_time",
                                        "ln",
                                        "log10",
                                        "log2",
                                        "max_over_time",
                                        "min_over_time",
                                        "minute",
                                        "month",
                                        "pi",
                                        "predict_linear",
                                        "present_over_time",
                                        "quantile_over_time",
                                        "rad",
                                        "rate",
                                        "resets",
                                        "round",
                                        "scalar",
                                        "sgn",
                                        "sin",
                                        "sinh",
                                        "sort",
                                        "sort_desc",
                                        "sqrt",
                                        "stddev_over_time",
                                        "stdvar_over_time",
                                        "sum_over_time",
                                        "tan",
                                        "tanh",
                                        "time",
                                        "timestamp",
                                        "vector",
                                        "year"};
    assert_int_equal(sizeof names / sizeof names[0], QUERY_FN__COUNT);
    int seen[QUERY_FN__COUNT] = {0};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const query_func *f = query_func_lookup(names[i], strlen(names[i]));
        if (!f)
            fail_msg("missing function %s", names[i]);
        assert_string_equal(f->name, names[i]);
        assert_false(seen[f->id]);
        seen[f->id] = 1;
        assert_ptr_equal(query_func_by_id(f->id), f);
        assert_true(f->n_args >= 0 && f->n_args <= QUERY_FUNC_MAX_ARGS);
    }
    assert_null(query_func_lookup("mad_over_time", 13));
    assert_null(query_func_lookup("sort_by_label", 13));
    assert_null(query_func_lookup("rat", 3));
    assert_null(query_func_lookup("ratex", 5));
    assert_null(query_func_lookup("", 0));
    assert_null(query_func_by_id(QUERY_FN__COUNT));
    /* Types of a few, as Prometheus declares them. */
    const query_func *f = query_func_lookup("rate", 4);
    assert_int_equal(f->arg_types[0], QUERY_MATRIX);
    assert_int_equal(f->ret, QUERY_VECTOR);
    f = query_func_lookup("histogram_quantile", 18);
    assert_int_equal(f->arg_types[0], QUERY_SCALAR);
    assert_int_equal(f->arg_types[1], QUERY_VECTOR);
    f = query_func_lookup("round", 5);
    assert_int_equal(f->variadic, 1);
    f = query_func_lookup("label_join", 10);
    assert_int_equal(f->variadic, -1);
    assert_int_equal(f->arg_types[3], QUERY_STRING);
    f = query_func_lookup("pi", 2);
    assert_int_equal(f->n_args, 0);
    assert_int_equal(f->ret, QUERY_SCALAR);
    /* Lookup takes a length, not a NUL. */
    assert_non_null(query_func_lookup("rate(x)", 4));
}

/* Arity as Prometheus checks it: fixed, optional trailing arguments, or a repeated last one. */
static void test_arity(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        const char *err; /* NULL = accepted */
    } cases[] = {
        {"time()", NULL},
        {"time(1)", "expected 0 argument(s) in call to \"time\", got 1"},
        {"year()", NULL},
        {"year(x)", NULL},
        {"year(x, x)", "expected at most 1 argument(s) in call to \"year\", got 2"},
        {"round(x)", NULL},
        {"round(x, 2)", NULL},
        {"round()", "expected at least 1 argument(s) in call to \"round\", got 0"},
        {"label_join(x, \"a\", \",\")", NULL},
        {"label_join(x, \"a\")",
         "expected at least 3 argument(s) in call to \"label_join\", got 2"},
        {"label_join(x, \"a\", \",\", \"b\", \"c\", \"d\", \"e\")", NULL},
        {"label_replace(x, \"a\", \"b\", \"c\")",
         "expected 5 argument(s) in call to \"label_replace\", got 4"},
        {"clamp(x, 0, 1)", NULL},
        {"histogram_fraction(0, 1, x)", NULL},
        {"pi()", NULL},
    };
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        query_expr *e;
        tsdb_err err = {0};
        int rc = query_parse(&a, cases[i].q, strlen(cases[i].q), &e, &err);
        if (!cases[i].err) {
            if (rc != 0)
                fail_msg("%s: %s", cases[i].q, err.msg);
        } else if (rc == 0 || !strstr(err.msg, cases[i].err)) {
            fail_msg("%s: got %s want %s", cases[i].q, rc ? err.msg : "ok", cases[i].err);
        }
    }
    tsdb_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_function_table),
        cmocka_unit_test(test_arity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
