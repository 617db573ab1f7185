/* api/h_query.c -- /api/v1/query, /api/v1/query_range and /api/v1/format_query.
 *
 * Parameter checks and messages follow Prometheus' web/api/v1/api.go: bad times, steps and
 * PromQL are 400 bad_data ("invalid parameter \"query\": ..."), an end before start, a step that
 * is not positive or more than 11,000 points per series are 400 as well; evaluation failures map
 * to execution (422), timeout (503), canceled (499) or internal (500). Results are streamed as
 * JSON with values as strings and result arrays never null.
 */
#include "api/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Shared parameter handling ------------------------------------------------------------------
 */

/* Builds the engine options from the server defaults and the request's timeout/lookback. */
static int query_options(api_ctx *c, api_req *r, api_resp *w, query_opts *o)
{
    *o = c->opts.query;
    o->cancel = r->cancel;
    const tsdb_str *p = api__params_get(&r->params, "timeout");
    if (p && p->len > 0) {
        int64_t ms;
        tsdb_err e;
        if (api__parse_duration(*p, &ms, &e) != TSDB_OK) {
            api__resp_error(w, 400, "bad_data", "invalid parameter \"timeout\": %s", e.msg);
            return -1;
        }
        int64_t cap = o->timeout_ms > 0 ? o->timeout_ms : 120000;
        if (ms > 0 && ms < cap)
            o->timeout_ms = ms;
    }
    p = api__params_get(&r->params, "lookback_delta");
    if (p && p->len > 0) {
        int64_t ms;
        tsdb_err e;
        if (api__parse_duration(*p, &ms, &e) != TSDB_OK) {
            api__resp_error(w, 400, "bad_data", "error parsing lookback delta duration: %s", e.msg);
            return -1;
        }
        if (ms < 0) {
            api__resp_error(w, 400, "bad_data", "lookback delta cannot be negative");
            return -1;
        }
        if (ms > 0)
            o->lookback_ms = ms;
    }
    return 0;
}

/* Prometheus 2.42 words a parse error "invalid parameter \"query\": ..." for instant queries
 * and gives the bare parser message for range queries. */
static int parse_query_param(api_req *r, api_resp *w, query_expr **e, int prefix)
{
    const tsdb_str *q = api__params_get(&r->params, "query");
    tsdb_str src = q ? *q : (tsdb_str){"", 0};
    tsdb_err err = {0};
    int rc = query_parse(r->arena, src.p, src.len, e, &err);
    if (rc != TSDB_OK) {
        api__resp_error(w, 400, "bad_data", "%s%s", prefix ? "invalid parameter \"query\": " : "",
                        err.msg[0] ? err.msg : tsdb_strerror(rc));
        return -1;
    }
    return 0;
}

static void observe(api_ctx *c, int kind, int64_t t0_ns)
{
    double secs = (double)(tsdb_mono_ns() - t0_ns) / 1e9;
    atomic_fetch_add(&c->m.q_count[kind], 1);
    atomic_fetch_add(&c->m.q_sum_us[kind], (uint64_t)(secs * 1e6));
    for (int i = 0; i < API_N_QBUCKETS; i++)
        if (secs <= api__qbuckets[i])
            atomic_fetch_add(&c->m.q_bucket[kind][i], 1);
}

/* ---- Result encoding
 * ------------------------------------------------------------------------------ */

/* A scalar answer's value as Go's strconv.FormatFloat(v, 'f', -1, 64), never with an exponent,
 * which is how Prometheus 2.42 marshals a scalar (vector and matrix points use the 'e' layout
 * for very small and large values). Same shortest digits as api__fmt_float, decimal point moved;
 * out holds at least 400 bytes (1e308 has 309 digits). */
static size_t fmt_scalar_f(double v, char *out)
{
    char s[32];
    size_t n = api__fmt_float(v, s);
    const char *e = memchr(s, 'e', n);
    if (!e) {
        memcpy(out, s, n + 1);
        return n;
    }
    size_t o = 0, nd = 0;
    char digits[32];
    const char *p = s;
    if (*p == '-')
        out[o++] = *p++;
    for (; p < e; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int point = 1 + atoi(e + 1); /* digits before the decimal point */
    if (point <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int k = 0; k < -point; k++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else if ((size_t)point >= nd) {
        memcpy(out + o, digits, nd);
        o += nd;
        for (size_t k = nd; k < (size_t)point; k++)
            out[o++] = '0';
    } else {
        memcpy(out + o, digits, (size_t)point);
        o += (size_t)point;
        out[o++] = '.';
        memcpy(out + o, digits + point, nd - (size_t)point);
        o += nd - (size_t)point;
    }
    out[o] = 0;
    return o;
}

/* Writes the members of data for a scalar or string answer: resultType and result (vectors and
 * matrices are written a series at a time by qstream_fill). */
static void write_result(api_json *j, const query_result *res)
{
    api__json_key(j, "resultType");
    if (res->type == QUERY_SCALAR) {
        char buf[400];
        size_t n = fmt_scalar_f(res->scalar.v, buf);
        api__json_str(j, "scalar");
        api__json_key(j, "result");
        api__json_arr_begin(j);
        api__json_ts(j, res->scalar.t);
        api__json_strn(j, (tsdb_str){buf, n});
        api__json_arr_end(j);
        return;
    }
    api__json_str(j, "string");
    api__json_key(j, "result");
    api__json_arr_begin(j);
    api__json_ts(j, res->scalar.t);
    api__json_strn(j, res->string);
    api__json_arr_end(j);
}

/* stats=true|all adds data.stats like Prometheus' (timings in seconds, sample counts). */
typedef struct qstats {
    int on;
    double queue_s, eval_s;
} qstats;

static void write_stats(api_json *j, const qstats *st, const query_result *res)
{
    api__json_key(j, "stats");
    api__json_obj_begin(j);
    api__json_key(j, "timings");
    api__json_obj_begin(j);
    api__json_key(j, "evalTotalTime");
    api__json_num(j, st->eval_s);
    api__json_key(j, "resultSortTime");
    api__json_num(j, 0);
    api__json_key(j, "queryPreparationTime");
    api__json_num(j, 0);
    api__json_key(j, "innerEvalTime");
    api__json_num(j, st->eval_s);
    api__json_key(j, "execQueueTime");
    api__json_num(j, st->queue_s);
    api__json_key(j, "execTotalTime");
    api__json_num(j, st->queue_s + st->eval_s);
    api__json_obj_end(j);
    api__json_key(j, "samples");
    api__json_obj_begin(j);
    api__json_key(j, "totalQueryableSamples");
    api__json_uint(j, res->samples_loaded);
    api__json_key(j, "peakSamples");
    api__json_uint(j, res->samples_loaded);
    api__json_obj_end(j);
    api__json_obj_end(j);
}

/* The answer is produced in parts so a large matrix never sits whole in memory as JSON: the
 * envelope and result type, then one series per step until about `want` bytes are out, then the
 * closing stats and warnings. The bytes are those of one uninterrupted writer. */
typedef struct qstream {
    api_json j;
    query_result res; /* its series live in the request arena */
    qstats st;
    int phase; /* 0 head, 1 series, 2 tail, 3 done */
    size_t i;
} qstream;

static void write_series(api_json *j, const query_result *res, size_t i)
{
    const query_series *s = &res->series[i];
    if (res->type == QUERY_VECTOR) {
        if (s->n_pts == 0)
            return;
        api__json_obj_begin(j);
        api__json_key(j, "metric");
        api__json_labels(j, s->labels);
        api__json_key(j, "value");
        api__json_point(j, s->pts[0].t, s->pts[0].v);
        api__json_obj_end(j);
        return;
    }
    api__json_obj_begin(j);
    api__json_key(j, "metric");
    api__json_labels(j, s->labels);
    api__json_key(j, "values");
    api__json_arr_begin(j);
    for (size_t k = 0; k < s->n_pts; k++)
        api__json_point(j, s->pts[k].t, s->pts[k].v);
    api__json_arr_end(j);
    api__json_obj_end(j);
}

static size_t qstream_fill(void *ctx, tsdb_buf *out, size_t want)
{
    qstream *q = ctx;
    size_t start = out->len;
    api_json *j = &q->j;
    j->b = out;
    while (q->phase < 3 && out->len - start < want) {
        if (q->phase == 0) {
            api__json_obj_begin(j);
            api__json_key(j, "status");
            api__json_str(j, "success");
            api__json_key(j, "data");
            api__json_obj_begin(j);
            if (q->res.type == QUERY_VECTOR || q->res.type == QUERY_MATRIX) {
                api__json_key(j, "resultType");
                api__json_str(j, q->res.type == QUERY_VECTOR ? "vector" : "matrix");
                api__json_key(j, "result");
                api__json_arr_begin(j);
                q->phase = 1;
            } else {
                write_result(j, &q->res);
                q->phase = 2;
            }
        } else if (q->phase == 1) {
            if (q->i < q->res.n_series)
                write_series(j, &q->res, q->i++);
            else {
                api__json_arr_end(j);
                q->phase = 2;
            }
        } else {
            if (q->st.on)
                write_stats(j, &q->st, &q->res);
            api__json_obj_end(j);
            api__resp_json_end(NULL, j, q->res.warnings, q->res.n_warnings);
            q->phase = 3;
        }
    }
    return out->len - start;
}

static void answer_result(api_req *r, api_resp *w, const query_result *res, const qstats *st)
{
    qstream *q = tsdb_arena_alloc(r->arena, sizeof *q);
    memset(q, 0, sizeof *q);
    q->res = *res;
    q->st = *st;
    api__json_init(&q->j, NULL);
    w->body.len = 0;
    w->status = 200;
    w->content_type = "application/json";
    api__resp_stream(r, w, qstream_fill, q, NULL);
}

static int want_stats(api_req *r)
{
    const tsdb_str *p = api__params_get(&r->params, "stats");
    return p && p->len > 0;
}

/* ---- Handlers
 * ------------------------------------------------------------------------------------- */

void api__h_query(api_ctx *c, api_req *r, api_resp *w)
{
    int64_t t0 = tsdb_mono_ns();
    int64_t t = tsdb_now_ms();
    const tsdb_str *tp = api__params_get(&r->params, "time");
    if (tp && tp->len > 0) {
        tsdb_err e;
        if (api__parse_time(*tp, &t, &e) != TSDB_OK) {
            api__resp_error(w, 400, "bad_data",
                            "invalid parameter \"time\": Invalid time value for 'time': %s", e.msg);
            return;
        }
    }
    query_opts o;
    query_expr *e;
    if (query_options(c, r, w, &o) < 0 || parse_query_param(r, w, &e, 1) < 0)
        return;
    qstats st = {want_stats(r), 0, 0};
    int64_t q0 = tsdb_mono_ns();
    int rc = api__query_slot_take(c, r);
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc, "query queue wait exceeded the timeout");
        return;
    }
    int64_t e0 = tsdb_mono_ns();
    query_result res;
    tsdb_err err = {0};
    rc = query_exec_instant(c->db, e, t, &o, r->arena, &res, &err);
    api__query_slot_give(c);
    observe(c, 0, t0);
    st.queue_s = (double)(e0 - q0) / 1e9;
    st.eval_s = (double)(tsdb_mono_ns() - e0) / 1e9;
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc, err.msg);
        return;
    }
    answer_result(r, w, &res, &st);
}

void api__h_query_range(api_ctx *c, api_req *r, api_resp *w)
{
    int64_t t0 = tsdb_mono_ns();
    int64_t start, end, step;
    static const char *const names[] = {"start", "end"};
    int64_t *dst[] = {&start, &end};
    for (int i = 0; i < 2; i++) {
        const tsdb_str *p = api__params_get(&r->params, names[i]);
        tsdb_err e;
        if (!p) {
            api__resp_error(w, 400, "bad_data",
                            "invalid parameter \"%s\": cannot parse \"\" to a valid timestamp",
                            names[i]);
            return;
        }
        if (api__parse_time(*p, dst[i], &e) != TSDB_OK) {
            api__resp_error(w, 400, "bad_data", "invalid parameter \"%s\": %s", names[i], e.msg);
            return;
        }
    }
    if (end < start) {
        api__resp_error(w, 400, "bad_data",
                        "invalid parameter \"end\": end timestamp must not be before start time");
        return;
    }
    const tsdb_str *sp = api__params_get(&r->params, "step");
    tsdb_err e;
    if (!sp) {
        api__resp_error(w, 400, "bad_data",
                        "invalid parameter \"step\": cannot parse \"\" to a valid duration");
        return;
    }
    if (api__parse_duration(*sp, &step, &e) != TSDB_OK) {
        api__resp_error(w, 400, "bad_data", "invalid parameter \"step\": %s", e.msg);
        return;
    }
    if (step <= 0) {
        api__resp_error(w, 400, "bad_data",
                        "invalid parameter \"step\": zero or negative query resolution step "
                        "widths are not accepted. Try a positive integer");
        return;
    }
    if ((uint64_t)(end - start) / (uint64_t)step > API_MAX_POINTS) {
        api__resp_error(w, 400, "bad_data",
                        "exceeded maximum resolution of 11,000 points per timeseries. Try "
                        "decreasing the query resolution (?step=XX)");
        return;
    }
    query_opts o;
    query_expr *ex;
    if (query_options(c, r, w, &o) < 0 || parse_query_param(r, w, &ex, 0) < 0)
        return;
    qstats st = {want_stats(r), 0, 0};
    int64_t q0 = tsdb_mono_ns();
    int rc = api__query_slot_take(c, r);
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc, "query queue wait exceeded the timeout");
        return;
    }
    int64_t e0 = tsdb_mono_ns();
    query_result res;
    tsdb_err err = {0};
    rc = query_exec_range(c->db, ex, start, end, step, &o, r->arena, &res, &err);
    api__query_slot_give(c);
    observe(c, 1, t0);
    st.queue_s = (double)(e0 - q0) / 1e9;
    st.eval_s = (double)(tsdb_mono_ns() - e0) / 1e9;
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc, err.msg);
        return;
    }
    if (res.type != QUERY_MATRIX) {
        api__resp_error(w, 500, "internal", "range query produced a %s result",
                        res.type == QUERY_STRING ? "string" : "non-matrix");
        return;
    }
    answer_result(r, w, &res, &st);
}

void api__h_format_query(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    query_expr *e;
    if (parse_query_param(r, w, &e, 1) < 0)
        return;
    tsdb_str out;
    int rc = query_print(e, r->arena, &out);
    if (rc != TSDB_OK) {
        api__resp_error_code(w, rc, NULL);
        return;
    }
    api_json j;
    api__resp_json_begin(w, &j);
    api__json_strn(&j, out);
    api__resp_json_end(w, &j, NULL, 0);
}
