/* ingest/textparse.c -- pull parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0.
 *
 * The input is one exposition page held in memory. Each call to ingest_text_next consumes lines
 * until it can hand back one entry: a sample (SERIES) or a HELP/TYPE/UNIT metadata line. Blank
 * lines and, in the text format, other `#` comments are skipped.
 *
 * Grammar accepted (both formats unless noted):
 *
 *   line     = sample | "#" ws* ("HELP" | "TYPE" | "UNIT") ws+ name [ws text] | "# EOF" | comment
 *              (text: the rest of the line after exactly one blank, as Prometheus reads it)
 *   sample   = name [ws*] ["{" labels "}"] ws+ value [ws+ timestamp] [ws+ exemplar] ws*
 *              (the text format also takes a value right after "}")
 *            | "{" labels-with-a-quoted-name "}" ws+ value ...            (UTF-8 names)
 *   labels   = [label ("," ws* label)* [","]]
 *   label    = (lname | quoted) ws* "=" ws* quoted
 *   value    = Go float syntax without hex: 1, -1.5e3, .5, NaN, +Inf, -inf (case-insensitive);
 *              out-of-range values (1e400) are errors, as in Prometheus
 *   timestamp= text: unsigned int64 ms;  OpenMetrics: float seconds (to ms, truncated)
 *   exemplar = "#" ws+ "{" ... (OpenMetrics only; skipped)
 *
 * OpenMetrics is read as strictly as Prometheus 2.42 reads it: tokens separated by exactly one
 * space, no blanks or trailing comma inside label sets, exemplars only on _total and _bucket
 * samples, HELP/TYPE/UNIT followed by their text, and "# EOF" exactly.
 *
 * Escapes: label values accept \\ \" \n (any other backslash pair is kept as written, as
 * Prometheus does); HELP text accepts \\ and \n (OpenMetrics also \"). OpenMetrics input must end
 * with "# EOF" and nothing may follow it; a `#` line there must be HELP, TYPE, UNIT or EOF.
 *
 * Memory: strings without escapes point into the input; unescaped copies go to a scratch buffer
 * that is reserved to the line's length before the line is parsed, so it never moves while an
 * entry is being built. Entries are valid until the next call.
 *
 * Errors are TSDB_EPARSE with "line:col: reason" and sticky: after an error or the end, every
 * call returns the same result.
 */
#include "ingest/ingest.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

enum fam_type { FAM_NONE, FAM_COUNTER, FAM_HISTOGRAM, FAM_SUMMARY, FAM_OTHER };

struct ingest_text {
    const char *p, *end;         /* the whole input (borrowed) */
    const char *cur;             /* start of the next unread line */
    const char *ls, *le;         /* the current line [ls, le), without its '\n' */
    int line;                    /* number of the current line */
    enum ingest_text_format fmt; /* immutable */
    int keep_created;            /* 1: report OpenMetrics _created samples */
    int state;                   /* 0 running, 1 ended, <0 sticky error code */
    tsdb_err saved;              /* the sticky error, replayed on later calls */
    int seen_eof;                /* OpenMetrics "# EOF" read */
    char *scratch;               /* unescaped strings of the current line */
    size_t scratch_len, scratch_cap;
    tsdb_label *lbl; /* labels of the current sample */
    size_t n_lbl, lbl_cap;
    tsdb_str fam; /* family named by the last TYPE line (borrowed) */
    enum fam_type fam_type;
};

static const char name_label[] = "__name__";

/* ---- Errors ---------------------------------------------------------------------------------- */

static int fail(ingest_text *p, const char *at, tsdb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ingest_text *p, const char *at, tsdb_err *err, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int col = (int)(at - p->ls) + 1;
    tsdb_errf(&p->saved, TSDB_EPARSE, (int)(at - p->p), "%d:%d: %s", p->line, col, msg);
    p->state = TSDB_EPARSE;
    if (err)
        *err = p->saved;
    return TSDB_EPARSE;
}

/* A short printable excerpt of the input at s, for messages. */
static void excerpt(const char *s, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (s < end && n + 1 < cap && n < 16) {
        unsigned char c = (unsigned char)*s++;
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    out[n] = 0;
}

/* ---- Lexical helpers ------------------------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static const char *skip_ws(const char *s, const char *e)
{
    while (s < e && is_ws(*s))
        s++;
    return s;
}

/* Blanks the text format allows between tokens; OpenMetrics allows none inside a label set. */
static const char *skip_blanks(const ingest_text *p, const char *s)
{
    return p->fmt == INGEST_TEXT_OPENMETRICS ? s : skip_ws(s, p->le);
}

/* OpenMetrics separates tokens by exactly one space: moves past it, or returns NULL. */
static const char *one_space(const char *s, const char *le)
{
    return (s + 1 < le && *s == ' ' && !is_ws(s[1])) ? s + 1 : NULL;
}

/* Metric name [a-zA-Z_:][a-zA-Z0-9_:]* (label names use the same scan; ':' is rejected later by
 * tsdb_labels_validate, as in Prometheus where the lexer is shared). */
static const char *scan_name(const char *s, const char *e)
{
    if (s >= e || !is_name_start(*s))
        return s;
    s++;
    while (s < e && is_name_char(*s))
        s++;
    return s;
}

static char *scratch_take(ingest_text *p, size_t n)
{
    /* Reserved per line in next_line(): n never exceeds what is left. */
    char *r = p->scratch + p->scratch_len;
    p->scratch_len += n;
    return r;
}

/* Parses a double-quoted string starting at *sp (which points at '"'). help_mode selects the
 * HELP escape set. On success stores the unescaped string in *out and moves *sp past the
 * closing quote. */
static int scan_quoted(ingest_text *p, const char **sp, tsdb_str *out, tsdb_err *err)
{
    const char *s = *sp + 1, *e = p->le;
    const char *start = s;
    int escaped = 0;
    while (s < e && *s != '"') {
        if (*s == '\\') {
            if (s + 1 >= e)
                return fail(p, s, err, "unterminated escape sequence in quoted string");
            escaped = 1;
            s += 2;
            continue;
        }
        s++;
    }
    if (s >= e)
        return fail(p, *sp, err, "unterminated quoted string");
    size_t raw = (size_t)(s - start);
    if (!escaped) {
        *out = (tsdb_str){start, raw};
    } else {
        char *d = scratch_take(p, raw), *o = d;
        for (const char *q = start; q < s; q++) {
            if (*q == '\\') {
                char c = q[1];
                if (c == 'n') {
                    *o++ = '\n';
                    q++;
                } else if (c == '\\' || c == '"') {
                    *o++ = c;
                    q++;
                } else {
                    *o++ = '\\';
                }
            } else {
                *o++ = *q;
            }
        }
        *out = (tsdb_str){d, (size_t)(o - d)};
    }
    *sp = s + 1;
    return 0;
}

static void push_label(ingest_text *p, tsdb_str name, tsdb_str value)
{
    if (p->n_lbl == p->lbl_cap) {
        p->lbl_cap = p->lbl_cap ? p->lbl_cap * 2 : 16;
        p->lbl = xrealloc(p->lbl, p->lbl_cap * sizeof *p->lbl);
    }
    p->lbl[p->n_lbl++] = (tsdb_label){name, value};
}

/* Go's strconv.ParseFloat syntax (without underscores). Returns 0 and *v, or -1. */
static int parse_float(const char *s, const char *e, double *v)
{
    size_t n = (size_t)(e - s);
    if (n == 0)
        return -1;
    /* Fast path: an optional sign and up to 15 digits is exact as a double. */
    const char *q = s;
    int neg = 0;
    if (*q == '-' || *q == '+') {
        neg = *q == '-';
        q++;
    }
    if (q < e && (size_t)(e - q) <= 15) {
        int64_t acc = 0;
        const char *d = q;
        while (d < e && *d >= '0' && *d <= '9')
            acc = acc * 10 + (*d++ - '0');
        if (d == e && d > q) {
            *v = neg ? -(double)acc : (double)acc;
            return 0;
        }
    }
    char buf[64];
    if (n >= sizeof buf)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        /* strtod accepts "nan(...)" and leading spaces; Go does not. */
        if (c == '(' || c == ')' || is_ws(c))
            return -1;
        buf[i] = c;
    }
    buf[n] = 0;
    const char *b = buf;
    if (*b == '+' || *b == '-')
        b++;
    /* Prometheus refuses 'p', 'P' and '_' before strconv.ParseFloat, so no hex floats; Go
     * takes a sign before "inf" but not before "nan". */
    if (strpbrk(buf, "pPxX_") || (b != buf && (*b == 'n' || *b == 'N')))
        return -1;
    char *endp;
    double d = strtod(buf, &endp);
    if (endp != buf + n)
        return -1;
    if (isinf(d) && *b != 'i' && *b != 'I')
        return -1; /* out of range, as strconv.ParseFloat's ErrRange */
    *v = d;
    return 0;
}

/* Text-format timestamp: int64 milliseconds, digits only (Prometheus' lexer takes no sign). */
static int parse_int64(const char *s, const char *e, int64_t *out)
{
    int neg = 0;
    if (s >= e)
        return -1;
    uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned dig = (unsigned)(*s - '0');
        if (acc > (lim - dig) / 10)
            return -1;
        acc = acc * 10 + dig;
    }
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

/* ---- Lines ----------------------------------------------------------------------------------- */

/* Moves to the next line; returns 0 at the end of input. */
static int next_line(ingest_text *p)
{
    if (p->cur >= p->end)
        return 0;
    p->ls = p->cur;
    const char *nl = memchr(p->cur, '\n', (size_t)(p->end - p->cur));
    p->le = nl ? nl : p->end;
    p->cur = nl ? nl + 1 : p->end;
    p->line++;
    size_t n = (size_t)(p->le - p->ls);
    if (n > p->scratch_cap) {
        p->scratch_cap = n < 256 ? 256 : n;
        p->scratch = xrealloc(p->scratch, p->scratch_cap);
    }
    p->scratch_len = 0;
    return 1;
}

static int type_of(tsdb_str t, enum ingest_text_format fmt, enum fam_type *ft)
{
    static const char *const prom[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    static const char *const om[] = {"counter",  "gauge", "histogram", "gaugehistogram",
                                     "stateset", "info",  "summary",   "unknown"};
    const char *const *v = fmt == INGEST_TEXT_OPENMETRICS ? om : prom;
    size_t n = fmt == INGEST_TEXT_OPENMETRICS ? 8 : 5;
    for (size_t i = 0; i < n; i++) {
        if (t.len == strlen(v[i]) && memcmp(t.p, v[i], t.len) == 0) {
            if (!strcmp(v[i], "counter"))
                *ft = FAM_COUNTER;
            else if (!strcmp(v[i], "histogram") || !strcmp(v[i], "gaugehistogram"))
                *ft = FAM_HISTOGRAM;
            else if (!strcmp(v[i], "summary"))
                *ft = FAM_SUMMARY;
            else
                *ft = FAM_OTHER;
            return 0;
        }
    }
    return -1;
}

/* Unescapes HELP text: \\ and \n (and \" in OpenMetrics). */
static tsdb_str help_text(ingest_text *p, const char *s, const char *e)
{
    if (!memchr(s, '\\', (size_t)(e - s)))
        return (tsdb_str){s, (size_t)(e - s)};
    char *d = scratch_take(p, (size_t)(e - s)), *o = d;
    for (; s < e; s++) {
        if (*s == '\\' && s + 1 < e) {
            char c = s[1];
            if (c == 'n') {
                *o++ = '\n';
                s++;
                continue;
            }
            if (c == '\\' || (c == '"' && p->fmt == INGEST_TEXT_OPENMETRICS)) {
                *o++ = c;
                s++;
                continue;
            }
        }
        *o++ = *s;
    }
    return (tsdb_str){d, (size_t)(o - d)};
}

/* A '#' line. Returns >0 with *e filled for HELP/TYPE/UNIT, 0 to skip it, <0 on error. */
static int parse_comment(ingest_text *p, ingest_text_entry *e, tsdb_err *err)
{
    const int om = p->fmt == INGEST_TEXT_OPENMETRICS;
    const char *s = p->ls + 1, *le = p->le;
    if (om) {
        if (s >= le || *s != ' ')
            return fail(p, s, err, "expected a space after '#'");
        s++;
    } else {
        s = skip_ws(s, le);
    }
    const char *kw = s;
    while (s < le && !is_ws(*s))
        s++;
    size_t kwlen = (size_t)(s - kw);
    enum ingest_text_kind kind;
    if (kwlen == 4 && !memcmp(kw, "HELP", 4)) {
        kind = INGEST_TEXT_HELP;
    } else if (kwlen == 4 && !memcmp(kw, "TYPE", 4)) {
        kind = INGEST_TEXT_TYPE;
    } else if (om && kwlen == 4 && !memcmp(kw, "UNIT", 4)) {
        kind = INGEST_TEXT_UNIT;
    } else if (om && kwlen == 3 && !memcmp(kw, "EOF", 3)) {
        if (s != le)
            return fail(p, s, err, "unexpected text after # EOF");
        p->seen_eof = 1;
        return 0;
    } else {
        if (om)
            return fail(p, kw, err,
                        "invalid comment: OpenMetrics allows only # HELP, # TYPE, "
                        "# UNIT and # EOF");
        return 0; /* an ordinary comment */
    }
    if (s >= le || !is_ws(*s))
        return fail(p, s, err, "expected a metric name after %.*s", (int)kwlen, kw);
    s = om ? s + 1 : skip_ws(s, le);
    const char *n0 = s;
    tsdb_str name;
    if (s < le && *s == '"') {
        int rc = scan_quoted(p, &s, &name, err);
        if (rc < 0)
            return rc;
    } else {
        s = scan_name(s, le);
        name = (tsdb_str){n0, (size_t)(s - n0)};
    }
    if (name.len == 0)
        return fail(p, n0, err, "invalid metric name in %.*s line", (int)kwlen, kw);
    tsdb_str text = {s, 0};
    if (om && s >= le)
        return fail(p, s, err, "expected text in %.*s", (int)kwlen, kw);
    if (s < le) {
        if (!is_ws(*s))
            return fail(p, s, err, "invalid character after metric name in %.*s line", (int)kwlen,
                        kw);
        /* The text is the rest of the line after one blank, as Prometheus reads it (so
         * "# TYPE m  gauge" names the type " gauge", which is invalid). */
        s++;
        text = kind == INGEST_TEXT_HELP ? help_text(p, s, le) : (tsdb_str){s, (size_t)(le - s)};
    }
    if (kind == INGEST_TEXT_TYPE) {
        enum fam_type ft;
        if (type_of(text, p->fmt, &ft) < 0) {
            char ex[20];
            excerpt(text.p, text.p + text.len, ex, sizeof ex);
            return fail(p, text.len ? text.p : s, err, "invalid metric type \"%s\"", ex);
        }
        p->fam = name;
        p->fam_type = ft;
    } else if (kind == INGEST_TEXT_UNIT && text.len) {
        /* OpenMetrics: the unit must be a suffix of the family name. */
        if (name.len <= text.len + 1 || name.p[name.len - text.len - 1] != '_' ||
            memcmp(name.p + name.len - text.len, text.p, text.len) != 0)
            return fail(p, text.p, err, "unit \"%.*s\" is not a suffix of the metric name",
                        (int)(text.len > 40 ? 40 : text.len), text.p);
    }
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->name = name;
    e->text = text;
    e->line = p->line;
    return 1;
}

/* Is name the family's `_created` sample that OpenMetrics counters/histograms/summaries carry? */
static int is_created(const ingest_text *p, tsdb_str name)
{
    if (p->fam_type != FAM_COUNTER && p->fam_type != FAM_HISTOGRAM && p->fam_type != FAM_SUMMARY)
        return 0;
    return name.len == p->fam.len + 8 && memcmp(name.p, p->fam.p, p->fam.len) == 0 &&
           memcmp(name.p + p->fam.len, "_created", 8) == 0;
}

static int parse_labels(ingest_text *p, const char **sp, tsdb_str *name, tsdb_err *err)
{
    const char *s = *sp + 1, *le = p->le;
    for (;;) {
        s = skip_blanks(p, s);
        if (s >= le)
            return fail(p, s, err, "unexpected end of line in label set");
        if (*s == '}') {
            if (p->fmt == INGEST_TEXT_OPENMETRICS && s[-1] == ',')
                return fail(p, s - 1, err, "trailing comma in label set");
            break;
        }
        tsdb_str ln;
        const char *at = s;
        int quoted = 0;
        if (*s == '"') {
            int rc = scan_quoted(p, &s, &ln, err);
            if (rc < 0)
                return rc;
            quoted = 1;
        } else {
            s = scan_name(s, le);
            ln = (tsdb_str){at, (size_t)(s - at)};
            if (ln.len == 0) {
                char ex[20];
                excerpt(at, le, ex, sizeof ex);
                return fail(p, at, err, "invalid label name at \"%s\"", ex);
            }
        }
        s = skip_blanks(p, s);
        if (quoted && s < le && (*s == ',' || *s == '}')) {
            /* {"metric.name", ...}: a quoted metric name inside the braces. */
            if (name->len)
                return fail(p, at, err, "metric name given twice");
            *name = ln;
            p->lbl[0].value = ln;
        } else {
            if (s >= le || *s != '=')
                return fail(p, s, err, "expected '=' after label name \"%.*s\"",
                            (int)(ln.len > 40 ? 40 : ln.len), ln.p);
            s = skip_blanks(p, s + 1);
            if (s >= le || *s != '"')
                return fail(p, s, err, "expected '\"' to start the value of label \"%.*s\"",
                            (int)(ln.len > 40 ? 40 : ln.len), ln.p);
            tsdb_str lv;
            int rc = scan_quoted(p, &s, &lv, err);
            if (rc < 0)
                return rc;
            push_label(p, ln, lv);
            s = skip_blanks(p, s);
        }
        if (s < le && *s == ',') {
            s++;
            continue;
        }
        if (s < le && *s == '}')
            break;
        return fail(p, s, err, "expected ',' or '}' in label set");
    }
    *sp = s + 1;
    return 0;
}

/* A sample line. Returns >0 with *e filled, 0 to skip it (a _created sample), <0 on error. */
static int parse_sample(ingest_text *p, ingest_text_entry *e, tsdb_err *err)
{
    const int om = p->fmt == INGEST_TEXT_OPENMETRICS;
    const char *s = p->ls, *le = p->le;
    tsdb_str name = {s, 0};
    p->n_lbl = 0;
    push_label(p, (tsdb_str){name_label, sizeof name_label - 1}, name);
    if (*s != '{') {
        s = scan_name(s, le);
        name.len = (size_t)(s - name.p);
        if (name.len == 0) {
            char ex[20];
            excerpt(p->ls, le, ex, sizeof ex);
            return fail(p, p->ls, err, "invalid metric name at \"%s\"", ex);
        }
        p->lbl[0].value = name;
        if (!om) { /* the text format allows blanks between the name and '{' */
            const char *b = skip_ws(s, le);
            if (b < le && *b == '{')
                s = b;
        }
    }
    if (s < le && *s == '{') {
        int rc = parse_labels(p, &s, &name, err);
        if (rc < 0)
            return rc;
    }
    const char *series_end = s;
    if (name.len == 0)
        return fail(p, p->ls, err, "sample has no metric name");
    /* Prometheus' text lexer reads a value right after '}' ("m{a="b"}1"). */
    int glued = !om && series_end > p->ls && series_end[-1] == '}' && s < le && !is_ws(*s);
    if (!glued && (s >= le || !is_ws(*s)))
        return fail(p, s, err,
                    s >= le ? "expected a value after the metric"
                            : "expected a space before the value");
    if (om && !one_space(s, le))
        return fail(p, s, err, "expected a single space before the value");
    s = skip_ws(s, le);
    const char *v0 = s;
    while (s < le && !is_ws(*s))
        s++;
    if (v0 == s)
        return fail(p, v0, err, "expected a value after the metric");
    double v;
    if (parse_float(v0, s, &v) < 0) {
        char ex[20];
        excerpt(v0, s, ex, sizeof ex);
        return fail(p, v0, err, "invalid value \"%s\"", ex);
    }
    if (om && s < le && !one_space(s, le))
        return fail(p, s, err, "expected a single space after the value");
    s = skip_ws(s, le);
    int has_t = 0;
    int64_t t = 0;
    if (s < le && *s != '#') {
        const char *t0 = s;
        while (s < le && !is_ws(*s))
            s++;
        char ex[20];
        excerpt(t0, s, ex, sizeof ex);
        if (om) {
            double ts;
            if (parse_float(t0, s, &ts) < 0 || !isfinite(ts) || fabs(ts) > 9.2e15)
                return fail(p, t0, err, "invalid timestamp \"%s\"", ex);
            t = (int64_t)(ts * 1000.0);
        } else if (parse_int64(t0, s, &t) < 0) {
            return fail(p, t0, err, "invalid timestamp \"%s\"", ex);
        }
        has_t = 1;
        if (om && s < le && !one_space(s, le))
            return fail(p, s, err, "expected a single space after the timestamp");
        s = skip_ws(s, le);
    }
    if (s < le) {
        if (!om || *s != '#')
            return fail(p, s, err, "unexpected text after the %s", has_t ? "timestamp" : "value");
        /* An exemplar: "# {labels} value [ts]". Check its shape, keep nothing. */
        const char *x = s + 1;
        if (x >= le || !is_ws(*x) || (x = skip_ws(x, le)) >= le || *x != '{')
            return fail(p, s, err, "invalid exemplar: expected '# {'");
        if (!memchr(x, '}', (size_t)(le - x)))
            return fail(p, x, err, "invalid exemplar: unterminated label set");
        if (!(name.len > 6 && !memcmp(name.p + name.len - 6, "_total", 6)) &&
            !(name.len > 7 && !memcmp(name.p + name.len - 7, "_bucket", 7)))
            return fail(p, s, err, "metric name %.*s does not support exemplars",
                        (int)(name.len > 60 ? 60 : name.len), name.p);
    }
    if (om && !p->keep_created && is_created(p, name))
        return 0;
    memset(e, 0, sizeof *e);
    e->kind = INGEST_TEXT_SERIES;
    e->name = name;
    e->series = (tsdb_str){p->ls, (size_t)(series_end - p->ls)};
    e->labels = p->lbl;
    e->n_labels = p->n_lbl;
    e->v = v;
    e->t = t;
    e->has_t = has_t;
    e->line = p->line;
    return 1;
}

/* ---- Public ---------------------------------------------------------------------------------- */

enum ingest_text_format ingest_text_format_of(tsdb_str ct)
{
    static const char om[] = "application/openmetrics-text";
    size_t i = 0;
    while (i < ct.len && is_ws(ct.p[i]))
        i++;
    if (ct.len - i < sizeof om - 1)
        return INGEST_TEXT_PROM;
    for (size_t k = 0; k < sizeof om - 1; k++) {
        char c = ct.p[i + k];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != om[k])
            return INGEST_TEXT_PROM;
    }
    return INGEST_TEXT_OPENMETRICS;
}

ingest_text *ingest_text_new(const char *buf, size_t len, enum ingest_text_format fmt)
{
    ingest_text *p = xcalloc(1, sizeof *p);
    p->p = buf ? buf : "";
    p->end = p->p + (buf ? len : 0);
    p->cur = p->p;
    p->ls = p->le = p->p;
    p->fmt = fmt;
    return p;
}

void ingest_text_keep_created(ingest_text *p, int on)
{
    p->keep_created = on;
}

int ingest_text_next(ingest_text *p, ingest_text_entry *e, tsdb_err *err)
{
    if (p->state < 0) {
        if (err)
            *err = p->saved;
        return p->state;
    }
    if (p->state == 1)
        return 0;
    while (next_line(p)) {
        if (p->seen_eof) {
            if (p->ls == p->le && p->cur >= p->end)
                break; /* "# EOF\n" followed by nothing */
            return fail(p, p->ls, err, "unexpected data after # EOF");
        }
        if (p->le > p->ls && p->le[-1] == '\r')
            return fail(p, p->le - 1, err, "carriage return in line (use \\n line ends)");
        int rc;
        if (p->ls == p->le || skip_ws(p->ls, p->le) == p->le) {
            if (p->fmt == INGEST_TEXT_OPENMETRICS)
                return fail(p, p->ls, err, "empty line (not allowed in OpenMetrics)");
            continue;
        }
        if (*p->ls == '#')
            rc = parse_comment(p, e, err);
        else if (p->fmt == INGEST_TEXT_PROM && is_ws(*p->ls) && *skip_ws(p->ls, p->le) == '#')
            rc = 0; /* indented comment */
        else
            rc = parse_sample(p, e, err);
        if (rc != 0)
            return rc;
    }
    if (p->fmt == INGEST_TEXT_OPENMETRICS && !p->seen_eof) {
        /* Point just past the last byte: the start of a new line after a '\n'. */
        if (p->end == p->p || p->end[-1] == '\n') {
            p->line++;
            p->ls = p->end;
        }
        return fail(p, p->end, err, "missing # EOF at the end of OpenMetrics input");
    }
    p->state = 1;
    return 0;
}

void ingest_text_free(ingest_text *p)
{
    if (!p)
        return;
    free(p->scratch);
    free(p->lbl);
    free(p);
}
