/* tests/promql/promqltest.c -- runs Prometheus-style PromQL test scripts (bin/promqltest).
 *
 *   promqltest FILE...
 *
 * The script format is Prometheus 2.42's promqltest (see ../shared/promql-testdata/FORMAT.md):
 * `load <interval>` blocks of series descriptions, `clear`, and `eval instant at <t> <expr>`,
 * `eval_ordered ...`, `eval_fail ...` followed by expected samples. Each file runs against a
 * real tsdb in a fresh temporary directory. Every non-failing `eval` is also run as a range
 * query from t-1m to t+1m with a 1m step, whose point at t must match too (as upstream does).
 * Values compare with upstream's rule (relative error 1e-6, NaN equals NaN).
 *
 * Prints each failing eval with its file, line, expected and actual result, then
 * "N passed, N failed" over all eval statements; exits 1 if any failed.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/ast.h"
#include "query/functions.h"
#include "query/query.h"
#include "tsdb/base.h"
#include "tsdb/tsdb.h"

/* ---- Small helpers -----------------------------------------------------------------------------
 */

typedef struct line {
    char *s; /* trimmed, NUL-terminated; comments become "" */
    int no;  /* 1-based line number */
} line;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        return rmdir(path);
    }
    return unlink(path);
}

static int parse_dur(const char *s, int64_t *ms)
{
    return query_parse_duration(s, strlen(s), ms);
}

/* ---- Series descriptions -----------------------------------------------------------------------
 */

typedef struct series_desc {
    tsdb_label *lv;
    size_t n_labels;
    char *rest; /* the text after the metric */
} series_desc;

/* Parses a quoted string at *p (", ' or `) into the arena. */
static int parse_quoted(tsdb_arena *a, const char **pp, tsdb_str *out)
{
    const char *p = *pp;
    char q = *p++;
    if (q != '"' && q != '\'' && q != '`')
        return -1;
    size_t cap = strlen(p) + 1, n = 0;
    char *buf = tsdb_arena_alloc(a, cap);
    while (*p && *p != q) {
        if (*p == '\\' && q != '`' && p[1]) {
            p++;
            switch (*p) {
            case 'n':
                buf[n++] = '\n';
                break;
            case 't':
                buf[n++] = '\t';
                break;
            case 'r':
                buf[n++] = '\r';
                break;
            case '\\':
                buf[n++] = '\\';
                break;
            default:
                buf[n++] = *p;
                break;
            }
            p++;
            continue;
        }
        buf[n++] = *p++;
    }
    if (*p != q)
        return -1;
    buf[n] = '\0';
    *out = (tsdb_str){buf, n};
    *pp = p + 1;
    return 0;
}

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static int parse_metric(tsdb_arena *a, char *s, series_desc *d)
{
    const char *p = s;
    size_t cap = 8, n = 0;
    tsdb_label *lv = tsdb_arena_alloc(a, cap * sizeof *lv);
    if (is_name_char(*p, 1)) {
        const char *b = p;
        while (is_name_char(*p, 0))
            p++;
        lv[n++] =
            (tsdb_label){TSDB_STR("__name__"), tsdb_arena_str(a, (tsdb_str){b, (size_t)(p - b)})};
    }
    if (*p == '{') {
        p++;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (*p == '}') {
                p++;
                break;
            }
            const char *b = p;
            while (is_name_char(*p, 0))
                p++;
            if (p == b)
                return -1;
            tsdb_str name = tsdb_arena_str(a, (tsdb_str){b, (size_t)(p - b)});
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p++ != '=')
                return -1;
            while (*p == ' ' || *p == '\t')
                p++;
            tsdb_str val;
            if (parse_quoted(a, &p, &val) < 0)
                return -1;
            if (n == cap) {
                lv = tsdb_arena_realloc(a, lv, cap * sizeof *lv, 2 * cap * sizeof *lv);
                cap *= 2;
            }
            if (val.len)
                lv[n++] = (tsdb_label){name, val};
        }
    }
    if (n == 0 && p == s)
        return -1;
    tsdb_labels_sort(lv, n);
    d->lv = lv;
    d->n_labels = n;
    d->rest = (char *)p;
    return 0;
}

static int parse_num(const char *s, double *v)
{
    if (!*s)
        return -1;
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!strcasecmp(p, "inf")) {
        *v = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcasecmp(p, "nan")) {
        *v = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != '\0' || end == s)
        return -1;
    *v = d;
    return 0;
}

typedef struct vals {
    tsdb_sample *v;
    size_t n, cap;
} vals;

static void vals_push(vals *x, int64_t t, double v)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
    x->v[x->n++] = (tsdb_sample){t, v};
}

/* Expands the value items of a load line; slot k is at k * interval. */
static int expand_values(char *rest, int64_t interval, vals *out)
{
    int64_t slot = 0;
    char *save = NULL;
    for (char *tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!strcmp(tok, "_")) {
            slot++;
            continue;
        }
        if (!strcmp(tok, "stale")) {
            vals_push(out, slot++ * interval, tsdb_stale_nan());
            continue;
        }
        if (!strncmp(tok, "_x", 2)) {
            slot += atoll(tok + 2);
            continue;
        }
        /* No hexadecimal in series descriptions: "0x10" is 0 repeated (as upstream). */
        char *x = strrchr(tok, 'x');
        if (x && x != tok) {
            *x = '\0';
            long long times = atoll(x + 1);
            /* A+B or A-B: the sign that is not first and not after an exponent marker. */
            char *op = NULL;
            for (char *q = tok + 1; *q; q++)
                if ((*q == '+' || *q == '-') && q[-1] != 'e' && q[-1] != 'E') {
                    op = q;
                    break;
                }
            double a, b = 0;
            if (op) {
                char sign = *op;
                *op = '\0';
                if (parse_num(tok, &a) < 0 || parse_num(op + 1, &b) < 0)
                    return -1;
                if (sign == '-')
                    b = -b;
            } else if (parse_num(tok, &a) < 0) {
                return -1;
            }
            double v = a;
            for (long long k = 0; k <= times; k++) {
                vals_push(out, slot++ * interval, v);
                v += b;
            }
            continue;
        }
        double v;
        if (parse_num(tok, &v) < 0)
            return -1;
        vals_push(out, slot++ * interval, v);
    }
    return 0;
}

/* ---- Runner -------------------------------------------------------------------------------------
 */

typedef struct runner {
    char dir[256];
    tsdb *db;
    int passed, failed;
    long queries; /* instant + range queries run, variants included */
    const char *file;
} runner;

static int db_open(runner *r)
{
    char tmpl[] = "/tmp/promqltest-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "%s", tmpl);
    tsdb_opts o;
    tsdb_opts_default(&o);
    o.dir = r->dir;
    o.no_maintenance = 1;
    o.wal_fsync_ms = 1000;
    o.retention_ms = -1;
    o.block_ms = 24 * 3600 * 1000; /* as upstream's test storage: loads span many hours */
    tsdb_err err;
    if (tsdb_open(&o, &r->db, &err) < 0) {
        fprintf(stderr, "tsdb_open %s: %s\n", r->dir, err.msg);
        return -1;
    }
    return 0;
}

static void db_close(runner *r)
{
    tsdb_close(r->db);
    r->db = NULL;
    rm_rf(r->dir);
}

static int run_load(runner *r, line *ls, size_t n, size_t *i, int64_t interval)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    size_t cap = 16, ns = 0;
    tsdb_batch_series *bs = xmalloc(cap * sizeof *bs);
    vals *vs = xmalloc(cap * sizeof *vs);
    int rc = 0;
    for (; *i < n && ls[*i].s[0]; (*i)++) {
        series_desc d;
        if (parse_metric(&a, ls[*i].s, &d) < 0) {
            fprintf(stderr, "%s:%d: bad series description\n", r->file, ls[*i].no);
            rc = -1;
            continue;
        }
        if (ns == cap) {
            cap *= 2;
            bs = xrealloc(bs, cap * sizeof *bs);
            vs = xrealloc(vs, cap * sizeof *vs);
        }
        memset(&vs[ns], 0, sizeof vs[ns]);
        if (expand_values(d.rest, interval, &vs[ns]) < 0) {
            fprintf(stderr, "%s:%d: bad values\n", r->file, ls[*i].no);
            free(vs[ns].v);
            rc = -1;
            continue;
        }
        /* A later line for the same series replaces the earlier one (as upstream). */
        tsdb_labels l = {d.lv, d.n_labels};
        size_t k;
        for (k = 0; k < ns; k++)
            if (tsdb_labels_equal(bs[k].labels, l))
                break;
        if (k < ns) {
            free(vs[k].v);
            vs[k] = vs[ns];
        }
        bs[k].labels = l;
        bs[k].samples = vs[k].v;
        bs[k].n_samples = vs[k].n;
        if (k == ns)
            ns++;
    }
    tsdb_batch b = {bs, ns};
    tsdb_append_stats st;
    memset(&st, 0, sizeof st);
    tsdb_err err;
    if (ns && tsdb_append(r->db, &b, &st, &err) < 0) {
        fprintf(stderr, "%s: load: %s\n", r->file, err.msg);
        rc = -1;
    } else if (st.out_of_order || st.duplicate || st.too_old || st.invalid) {
        fprintf(stderr, "%s: load rejected samples (ooo %zu dup %zu old %zu invalid %zu)\n",
                r->file, st.out_of_order, st.duplicate, st.too_old, st.invalid);
    }
    for (size_t k = 0; k < ns; k++)
        free(vs[k].v);
    free(vs);
    free(bs);
    tsdb_arena_fini(&a);
    return rc;
}

static int almost_equal(double e, double a)
{
    if (isnan(e) && isnan(a))
        return 1;
    if (e == a)
        return 1;
    double d = fabs(e - a);
    if (e == 0 || a == 0 || d < DBL_MIN)
        return d < 1e-6 * DBL_MIN;
    return d / (fabs(e) + fabs(a)) < 1e-6;
}

typedef struct expect {
    int is_scalar;
    double scalar;
    tsdb_labels *labels;
    double *v;
    size_t n;
} expect;

static void print_expected(const expect *x, tsdb_arena *a)
{
    if (x->is_scalar) {
        fprintf(stdout, "    expected scalar %.17g\n", x->scalar);
        return;
    }
    fprintf(stdout, "    expected %zu series:\n", x->n);
    for (size_t k = 0; k < x->n; k++)
        fprintf(stdout, "      %s %.17g\n", tsdb_labels_format(x->labels[k], a), x->v[k]);
}

static void print_actual(const query_result *res, tsdb_arena *a)
{
    switch (res->type) {
    case QUERY_SCALAR:
        fprintf(stdout, "    got scalar %.17g\n", res->scalar.v);
        break;
    case QUERY_STRING:
        fprintf(stdout, "    got string \"%.*s\"\n", (int)res->string.len, res->string.p);
        break;
    case QUERY_VECTOR:
    case QUERY_MATRIX:
        fprintf(stdout, "    got %s of %zu series:\n",
                res->type == QUERY_VECTOR ? "vector" : "matrix", res->n_series);
        for (size_t k = 0; k < res->n_series; k++) {
            fprintf(stdout, "      %s", tsdb_labels_format(res->series[k].labels, a));
            for (size_t j = 0; j < res->series[k].n_pts && j < 8; j++)
                fprintf(stdout, " %.17g@%lld", res->series[k].pts[j].v,
                        (long long)res->series[k].pts[j].t);
            fprintf(stdout, "\n");
        }
        break;
    }
}

/* Compares samples (labels[k], v[k]) with the expectation; msg gets the first difference. */
static int compare(const expect *x, const tsdb_labels *labels, const double *v, size_t n,
                   int ordered, char *msg, size_t msg_len, tsdb_arena *a)
{
    if (n != x->n) {
        snprintf(msg, msg_len, "expected %zu samples, got %zu", x->n, n);
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        size_t j;
        for (j = 0; j < x->n; j++)
            if (tsdb_labels_equal(x->labels[j], labels[k]))
                break;
        if (j == x->n) {
            snprintf(msg, msg_len, "unexpected series %s", tsdb_labels_format(labels[k], a));
            return 0;
        }
        if (ordered && j != k) {
            snprintf(msg, msg_len, "series %s at position %zu, expected %zu",
                     tsdb_labels_format(labels[k], a), k + 1, j + 1);
            return 0;
        }
        if (!almost_equal(x->v[j], v[k])) {
            snprintf(msg, msg_len, "series %s: expected %.17g, got %.17g",
                     tsdb_labels_format(labels[k], a), x->v[j], v[k]);
            return 0;
        }
    }
    return 1;
}

static int check_instant(const expect *x, const query_result *res, int ordered, char *msg,
                         size_t msg_len, tsdb_arena *a)
{
    if (x->is_scalar) {
        if (res->type != QUERY_SCALAR) {
            snprintf(msg, msg_len, "expected a scalar");
            return 0;
        }
        if (!almost_equal(x->scalar, res->scalar.v)) {
            snprintf(msg, msg_len, "expected scalar %.17g, got %.17g", x->scalar, res->scalar.v);
            return 0;
        }
        return 1;
    }
    if (res->type != QUERY_VECTOR) {
        snprintf(msg, msg_len, "expected an instant vector");
        return 0;
    }
    tsdb_labels *l = tsdb_arena_alloc(a, (res->n_series + 1) * sizeof *l);
    double *v = tsdb_arena_alloc(a, (res->n_series + 1) * sizeof *v);
    for (size_t k = 0; k < res->n_series; k++) {
        l[k] = res->series[k].labels;
        v[k] = res->series[k].pts[0].v;
    }
    return compare(x, l, v, res->n_series, ordered, msg, msg_len, a);
}

static int check_range(const expect *x, const query_result *res, int64_t t, char *msg,
                       size_t msg_len, tsdb_arena *a)
{
    tsdb_labels *l = tsdb_arena_alloc(a, (res->n_series + 1) * sizeof *l);
    double *v = tsdb_arena_alloc(a, (res->n_series + 1) * sizeof *v);
    size_t n = 0;
    for (size_t k = 0; k < res->n_series; k++)
        for (size_t j = 0; j < res->series[k].n_pts; j++)
            if (res->series[k].pts[j].t == t) {
                l[n] = res->series[k].labels;
                v[n++] = res->series[k].pts[j].v;
            }
    if (x->is_scalar) {
        if (n == 0) {
            snprintf(msg, msg_len, "range query: no point at t");
            return 0;
        }
        if (!almost_equal(x->scalar, v[0])) {
            snprintf(msg, msg_len, "range query: expected scalar %.17g, got %.17g", x->scalar,
                     v[0]);
            return 0;
        }
        return 1;
    }
    char sub[200];
    if (!compare(x, l, v, n, 0, sub, sizeof sub, a)) {
        snprintf(msg, msg_len, "range query: %s", sub);
        return 0;
    }
    return 1;
}

/* Upstream's pinning: every selector and outermost subquery without @ gets @ ts (selectors
 * inside a subquery follow it). Sets *unsafe when a time-dependent function appears. Builds
 * new nodes; the parsed tree is not modified. */
static const query_expr *pin_at(tsdb_arena *a, const query_expr *e, int64_t ts, int *unsafe)
{
    query_expr *c = tsdb_arena_alloc(a, sizeof *c);
    *c = *e;
    switch (e->kind) {
    case QUERY_NODE_VECTOR_SEL:
        if (c->u.vs.tm.at != QUERY_AT_TS) { /* upstream overrides @ start()/end() too */
            c->u.vs.tm.at = QUERY_AT_TS;
            c->u.vs.tm.at_ms = ts;
        }
        break;
    case QUERY_NODE_MATRIX_SEL:
        c->u.ms.vs = pin_at(a, e->u.ms.vs, ts, unsafe);
        break;
    case QUERY_NODE_SUBQUERY:
        if (c->u.sq.tm.at != QUERY_AT_TS) {
            c->u.sq.tm.at = QUERY_AT_TS;
            c->u.sq.tm.at_ms = ts;
        }
        break;
    case QUERY_NODE_UNARY:
        c->u.un.expr = pin_at(a, e->u.un.expr, ts, unsafe);
        break;
    case QUERY_NODE_BINARY:
        c->u.bin.lhs = pin_at(a, e->u.bin.lhs, ts, unsafe);
        c->u.bin.rhs = pin_at(a, e->u.bin.rhs, ts, unsafe);
        break;
    case QUERY_NODE_AGG:
        if (e->u.agg.param)
            c->u.agg.param = pin_at(a, e->u.agg.param, ts, unsafe);
        c->u.agg.expr = pin_at(a, e->u.agg.expr, ts, unsafe);
        break;
    case QUERY_NODE_CALL: {
        switch (e->u.call.fn->id) {
        case QUERY_FN_TIME:
        case QUERY_FN_TIMESTAMP:
        case QUERY_FN_PREDICT_LINEAR:
        case QUERY_FN_MINUTE:
        case QUERY_FN_HOUR:
        case QUERY_FN_DAY_OF_MONTH:
        case QUERY_FN_DAY_OF_WEEK:
        case QUERY_FN_DAY_OF_YEAR:
        case QUERY_FN_DAYS_IN_MONTH:
        case QUERY_FN_MONTH:
        case QUERY_FN_YEAR:
            *unsafe = 1;
            break;
        default:
            break;
        }
        const query_expr **args = tsdb_arena_alloc(a, (e->u.call.n_args + 1) * sizeof *args);
        for (size_t k = 0; k < e->u.call.n_args; k++)
            args[k] = pin_at(a, e->u.call.args[k], ts, unsafe);
        c->u.call.args = args;
        break;
    }
    case QUERY_NODE_PAREN:
        c->u.paren = pin_at(a, e->u.paren, ts, unsafe);
        break;
    default:
        break;
    }
    return c;
}

/* Runs one instant query (and, unless ordered or failing, its range-mode twin). */
static int run_query(runner *r, const query_expr *qe, int64_t t, const expect *x, int fail,
                     int ordered, query_result *res, char *msg, size_t msg_len, tsdb_arena *a)
{
    tsdb_err err;
    memset(&err, 0, sizeof err);
    query_opts qo;
    memset(&qo, 0, sizeof qo);
    r->queries++;
    int rc = query_exec_instant(r->db, qe, t, &qo, a, res, &err);
    if (fail) {
        if (rc >= 0) {
            snprintf(msg, msg_len, "expected an error, query succeeded");
            return 0;
        }
        return 1;
    }
    if (rc < 0) {
        snprintf(msg, msg_len, "error: %s", err.msg);
        return 0;
    }
    if (!check_instant(x, res, ordered, msg, msg_len, a))
        return 0;
    enum query_type ty = query_expr_type(qe);
    if (ordered || (ty != QUERY_SCALAR && ty != QUERY_VECTOR))
        return 1;
    query_result rr;
    r->queries++;
    rc = query_exec_range(r->db, qe, t - 60000, t + 60000, 60000, &qo, a, &rr, &err);
    if (rc < 0) {
        snprintf(msg, msg_len, "range query error: %s", err.msg);
        return 0;
    }
    if (!check_range(x, &rr, t, msg, msg_len, a)) {
        *res = rr;
        return 0;
    }
    return 1;
}

static void run_eval(runner *r, line *ls, size_t n, size_t *i)
{
    line *hl = &ls[*i];
    char *cmd = hl->s;
    int ordered = !strncmp(cmd, "eval_ordered", 12);
    int fail = !strncmp(cmd, "eval_fail", 9);
    char *p = strchr(cmd, ' ');
    int64_t t = 0;
    int bad = 0;
    char *expr = NULL;
    if (p) {
        p = trim(p);
        if (strncmp(p, "instant", 7) != 0) {
            bad = 1;
        } else {
            p = trim(p + 7);
            if (strncmp(p, "at ", 3) != 0) {
                bad = 1;
            } else {
                p = trim(p + 3);
                char *sp = strpbrk(p, " \t");
                if (!sp) {
                    bad = 1;
                } else {
                    *sp = '\0';
                    if (parse_dur(p, &t) < 0)
                        bad = 1;
                    expr = trim(sp + 1);
                }
            }
        }
    } else {
        bad = 1;
    }
    (*i)++;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    expect x;
    memset(&x, 0, sizeof x);
    size_t cap = 8;
    x.labels = tsdb_arena_alloc(&a, cap * sizeof *x.labels);
    x.v = tsdb_arena_alloc(&a, cap * sizeof *x.v);
    for (; *i < n && ls[*i].s[0]; (*i)++) {
        char *s = ls[*i].s;
        double v;
        if (parse_num(s, &v) == 0) {
            x.is_scalar = 1;
            x.scalar = v;
            continue;
        }
        series_desc d;
        if (parse_metric(&a, s, &d) < 0 || parse_num(trim(d.rest), &v) < 0) {
            bad = 1;
            continue;
        }
        if (x.n == cap) {
            x.labels = tsdb_arena_realloc(&a, x.labels, cap * sizeof *x.labels,
                                          2 * cap * sizeof *x.labels);
            x.v = tsdb_arena_realloc(&a, x.v, cap * sizeof *x.v, 2 * cap * sizeof *x.v);
            cap *= 2;
        }
        x.labels[x.n] = (tsdb_labels){d.lv, d.n_labels};
        x.v[x.n++] = v;
    }
    char msg[512] = "";
    int ok = 0;
    query_expr *qe = NULL;
    tsdb_err err;
    memset(&err, 0, sizeof err);
    query_result res;
    memset(&res, 0, sizeof res);
    if (bad) {
        snprintf(msg, sizeof msg, "malformed eval command");
    } else if (query_parse(&a, expr, strlen(expr), &qe, &err) < 0) {
        snprintf(msg, sizeof msg, "parse error: %s", err.msg);
    } else {
        ok = run_query(r, qe, t, &x, fail, ordered, &res, msg, sizeof msg, &a);
        /* Upstream's @ variants: every selector pinned at t gives the same answer at other
         * evaluation times. */
        int unsafe = 0;
        const query_expr *pinned = ok ? pin_at(&a, qe, t, &unsafe) : NULL;
        if (ok && !unsafe) {
            int64_t times[5] = {-10 * t, 0, t / 5, t, 10 * t};
            size_t nt = 5;
            if (t == 0) {
                times[0] = -1000;
                times[1] = 0;
                times[2] = 1000;
                nt = 3;
            }
            for (size_t k = 0; k < nt && ok; k++) {
                char sub[400];
                ok = run_query(r, pinned, times[k], &x, fail, ordered, &res, sub, sizeof sub, &a);
                if (!ok)
                    snprintf(msg, sizeof msg, "with every selector @ %lld, evaluated at %lld: %s",
                             (long long)t, (long long)times[k], sub);
            }
        }
    }
    if (ok) {
        r->passed++;
    } else {
        r->failed++;
        fprintf(stdout, "FAIL %s:%d: %s\n    %s\n", r->file, hl->no, expr ? expr : hl->s, msg);
        if (!fail && !bad && qe) {
            print_expected(&x, &a);
            if (res.type == QUERY_VECTOR || res.type == QUERY_MATRIX || res.series ||
                res.type == QUERY_SCALAR)
                print_actual(&res, &a);
        }
    }
    tsdb_arena_fini(&a);
}

static int run_file(runner *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        r->failed++;
        return -1;
    }
    size_t cap = 256, n = 0;
    line *ls = xmalloc(cap * sizeof *ls);
    char *buf = NULL;
    size_t bcap = 0;
    int no = 0;
    while (getline(&buf, &bcap, f) >= 0) {
        no++;
        if (n == cap) {
            cap *= 2;
            ls = xrealloc(ls, cap * sizeof *ls);
        }
        char *s = trim(buf);
        if (s[0] == '#')
            s = "";
        ls[n].s = xstrndup(s, strlen(s));
        ls[n].no = no;
        n++;
    }
    free(buf);
    fclose(f);
    r->file = path;
    int rc = db_open(r);
    for (size_t i = 0; rc == 0 && i < n;) {
        char *s = ls[i].s;
        if (!s[0]) {
            i++;
            continue;
        }
        if (!strncmp(s, "load", 4) && (s[4] == ' ' || s[4] == '\t')) {
            int64_t iv;
            if (parse_dur(trim(s + 4), &iv) < 0) {
                fprintf(stderr, "%s:%d: bad load interval\n", path, ls[i].no);
                rc = -1;
                break;
            }
            i++;
            if (run_load(r, ls, n, &i, iv) < 0) {
                fprintf(stdout, "FAIL %s:%d: load failed\n", path, ls[i - 1].no);
                r->failed++;
            }
        } else if (!strcmp(s, "clear")) {
            db_close(r);
            rc = db_open(r);
            i++;
        } else if (!strncmp(s, "eval", 4)) {
            run_eval(r, ls, n, &i);
        } else {
            fprintf(stderr, "%s:%d: unknown command: %s\n", path, ls[i].no, s);
            r->failed++;
            i++;
            while (i < n && ls[i].s[0])
                i++;
        }
    }
    if (r->db)
        db_close(r);
    for (size_t i = 0; i < n; i++)
        free(ls[i].s);
    free(ls);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    tsdb_log_set_level(TSDB_LOG_WARN);
    runner r;
    memset(&r, 0, sizeof r);
    for (int k = 1; k < argc; k++) {
        int p0 = r.passed, f0 = r.failed;
        long q0 = r.queries;
        if (run_file(&r, argv[k]) < 0)
            r.failed++;
        fprintf(stdout, "%s: %d passed, %d failed (%ld queries)\n", argv[k], r.passed - p0,
                r.failed - f0, r.queries - q0);
    }
    fprintf(stdout, "%d passed, %d failed\n", r.passed, r.failed);
    return r.failed ? 1 : 0;
}
