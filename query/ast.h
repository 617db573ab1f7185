/* query/ast.h -- the PromQL abstract syntax tree (internal to query/).
 *
 * query_parse() builds this tree in the caller's arena; query/check.c fills in every node's
 * static type; query/print.c turns it back into canonical text; the evaluator walks it. Every
 * node, string and array below lives in the arena given to query_parse and is immutable after
 * query_parse returns (the evaluator must not modify it: the same AST may be evaluated again).
 *
 * Shape follows Prometheus 2.42's promql/parser AST:
 *   - A matrix selector wraps a vector selector node; offset and @ of `x[5m] offset 1m` are
 *     stored on that inner vector selector (as Prometheus does).
 *   - A unary minus applied directly to a number literal is folded into the literal
 *     (`-1` is a NUMBER node with v = -1), as Prometheus' grammar does.
 *   - Parentheses are kept as QUERY_NODE_PAREN nodes so the printer can reproduce them.
 *   - The @ modifier is kept as written: QUERY_AT_START / QUERY_AT_END are resolved by the
 *     evaluator to the query's start / end time; QUERY_AT_TS carries a fixed time in ms.
 *
 * Positions are byte offsets into the query text: pos is the first byte of the node, end one
 * past its last byte.
 */
#ifndef QUERY_AST_H
#define QUERY_AST_H

#include <stddef.h>
#include <stdint.h>

#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

struct query_func; /* query/functions.h */

/* The parser rejects trees taller than this, so every recursive walk (checker, printer,
 * evaluator) is bounded. */
#define QUERY_MAX_DEPTH 512

enum query_node_kind {
    QUERY_NODE_NUMBER,     /* number literal */
    QUERY_NODE_STRING,     /* string literal */
    QUERY_NODE_VECTOR_SEL, /* instant vector selector: name{matchers} [@ ...] [offset ...] */
    QUERY_NODE_MATRIX_SEL, /* range vector selector: <vector selector>[range] */
    QUERY_NODE_SUBQUERY,   /* expr[range:step] [@ ...] [offset ...] */
    QUERY_NODE_UNARY,      /* -expr or +expr */
    QUERY_NODE_BINARY,     /* lhs op rhs */
    QUERY_NODE_AGG,        /* sum/avg/... by|without (...) ([param,] expr) */
    QUERY_NODE_CALL,       /* function call */
    QUERY_NODE_PAREN,      /* ( expr ) */
};

/* Binary operators, in no particular order (see query__binop_* helpers in query/parse.h). */
enum query_binop {
    QUERY_OP_ADD,    /* + */
    QUERY_OP_SUB,    /* - */
    QUERY_OP_MUL,    /* * */
    QUERY_OP_DIV,    /* / */
    QUERY_OP_MOD,    /* % */
    QUERY_OP_POW,    /* ^ */
    QUERY_OP_EQL,    /* == */
    QUERY_OP_NEQ,    /* != */
    QUERY_OP_GTR,    /* > */
    QUERY_OP_LSS,    /* < */
    QUERY_OP_GTE,    /* >= */
    QUERY_OP_LTE,    /* <= */
    QUERY_OP_AND,    /* and */
    QUERY_OP_OR,     /* or */
    QUERY_OP_UNLESS, /* unless */
    QUERY_OP_ATAN2,  /* atan2 */
};

enum query_agg_op {
    QUERY_AGG_SUM,
    QUERY_AGG_AVG,
    QUERY_AGG_MIN,
    QUERY_AGG_MAX,
    QUERY_AGG_COUNT,
    QUERY_AGG_GROUP,
    QUERY_AGG_STDDEV,
    QUERY_AGG_STDVAR,
    QUERY_AGG_TOPK,         /* param: scalar k */
    QUERY_AGG_BOTTOMK,      /* param: scalar k */
    QUERY_AGG_QUANTILE,     /* param: scalar phi */
    QUERY_AGG_COUNT_VALUES, /* param: string, the output label name */
};

/* Vector matching cardinality. */
enum query_card {
    QUERY_CARD_ONE_TO_ONE,
    QUERY_CARD_MANY_TO_ONE,  /* group_left */
    QUERY_CARD_ONE_TO_MANY,  /* group_right */
    QUERY_CARD_MANY_TO_MANY, /* set operators (and, or, unless) */
};

/* The @ modifier. */
enum query_at {
    QUERY_AT_NONE,  /* no @ modifier */
    QUERY_AT_TS,    /* @ <timestamp>: at_ms holds it */
    QUERY_AT_START, /* @ start() */
    QUERY_AT_END,   /* @ end() */
};

/* A label matcher as written in the query (for printing and for the evaluator's reference).
 * value is the unescaped string value. */
typedef struct query_matcher_src {
    tsdb_str name;
    enum tsdb_match_op op;
    tsdb_str value;
} query_matcher_src;

/* Offset and @ of a vector selector or subquery. */
typedef struct query_time_mod {
    int64_t offset_ms; /* as written; may be negative; 0 = none */
    enum query_at at;
    int64_t at_ms; /* QUERY_AT_TS only: the timestamp in ms (seconds * 1000, rounded) */
} query_time_mod;

typedef struct query_vector_sel {
    tsdb_str name; /* metric name written before '{', or empty ({__name__=...} or {job="x"}) */
    /* All matchers, compiled with tsdb_matcher_new: one __name__ EQ matcher for a written name
     * (first), then the written matchers in order. Pass these to tsdb_querier_select. */
    const tsdb_matcher *const *matchers;
    size_t n_matchers;
    /* The written matchers inside {...}, in order (excludes the metric name). */
    const query_matcher_src *src;
    size_t n_src;
    query_time_mod tm;
} query_vector_sel;

typedef struct query_matrix_sel {
    const query_expr *vs; /* a QUERY_NODE_VECTOR_SEL node; carries offset and @ */
    int64_t range_ms;     /* > 0 */
} query_matrix_sel;

typedef struct query_subquery {
    const query_expr *expr; /* an instant-vector expression */
    int64_t range_ms;       /* > 0 */
    int64_t step_ms;        /* 0 = the engine's default resolution */
    query_time_mod tm;
} query_subquery;

typedef struct query_unary {
    enum query_binop op; /* QUERY_OP_SUB or QUERY_OP_ADD */
    const query_expr *expr;
} query_unary;

/* Vector matching of a binary expression. Meaningful only when has_matching is set, which the
 * checker does exactly when both operands are instant vectors (Prometheus drops the matching
 * otherwise). For set operators card is QUERY_CARD_MANY_TO_MANY. */
typedef struct query_matching {
    int has_matching;
    enum query_card card;
    int on;                 /* 1: on(labels), 0: ignoring(labels) (empty = ignore nothing) */
    const tsdb_str *labels; /* on/ignoring labels */
    size_t n_labels;
    const tsdb_str *include; /* group_left/group_right (labels) */
    size_t n_include;
} query_matching;

typedef struct query_binary {
    enum query_binop op;
    int op_pos; /* byte offset of the operator token */
    const query_expr *lhs, *rhs;
    int return_bool; /* the bool modifier (comparisons only) */
    query_matching m;
} query_binary;

typedef struct query_agg {
    enum query_agg_op op;
    const query_expr *expr;   /* instant vector */
    const query_expr *param;  /* NULL, or the scalar/string parameter (topk, quantile, ...) */
    const tsdb_str *grouping; /* by/without labels, in written order */
    size_t n_grouping;
    int without; /* 1: without(grouping), 0: by(grouping) (empty by = aggregate everything) */
} query_agg;

typedef struct query_call {
    const struct query_func *fn; /* from the table in query/functions.h */
    const query_expr *const *args;
    size_t n_args;
} query_call;

struct query_expr {
    enum query_node_kind kind;
    enum query_type type; /* static type, set by the checker */
    int pos, end;         /* byte offsets into the query text: [pos, end) */
    int height;           /* 1 for a leaf; 1 + the tallest child otherwise (<= QUERY_MAX_DEPTH) */
    union {
        double num;              /* QUERY_NODE_NUMBER */
        tsdb_str str;            /* QUERY_NODE_STRING: unescaped value (NUL-terminated) */
        query_vector_sel vs;     /* QUERY_NODE_VECTOR_SEL */
        query_matrix_sel ms;     /* QUERY_NODE_MATRIX_SEL */
        query_subquery sq;       /* QUERY_NODE_SUBQUERY */
        query_unary un;          /* QUERY_NODE_UNARY */
        query_binary bin;        /* QUERY_NODE_BINARY */
        query_agg agg;           /* QUERY_NODE_AGG */
        query_call call;         /* QUERY_NODE_CALL */
        const query_expr *paren; /* QUERY_NODE_PAREN */
    } u;
};

/* Operator helpers (query/parse.c). */
int query__binop_is_comparison(enum query_binop op); /* == != > < >= <= */
int query__binop_is_set(enum query_binop op);        /* and or unless */
const char *query__binop_str(enum query_binop op);   /* "+", "and", "atan2", ... */
const char *query__agg_str(enum query_agg_op op);    /* "sum", "count_values", ... */

/* Formats a duration in ms as Prometheus' model.Duration does ("1h30m", "5m", "0s"). out must
 * hold at least 64 bytes. ms must be >= 0. Returns the length written. (query/print.c) */
size_t query__fmt_duration(int64_t ms, char *out);

#endif
