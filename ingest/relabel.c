/* ingest/relabel.c -- Prometheus relabeling: rules that rewrite or drop a label set.
 *
 * Each rule joins the values of its source_labels with the separator and acts on that string:
 *
 *   replace    if the regex matches, target_label (expanded) := replacement (expanded);
 *              an empty result removes the target label
 *   keep/drop  keep (drop) the label set only if the regex matches
 *   keepequal/dropequal  keep (drop) if the joined value equals the target_label's value
 *   hashmod    target_label := (md5(joined) read as a big-endian u64 from digest bytes 8..15)
 *              mod modulus -- Go's sum64 shifts the first 8 bytes out, so only the last 8 count
 *   labelmap   for every label whose name matches, copy its value to the expanded replacement
 *   labeldrop/labelkeep  remove labels whose names match (do not match)
 *   lowercase/uppercase  target_label := the joined value in lower (upper) case
 *
 * Regexes are fully anchored (^(?:re)$) and compiled by tsdb_regex_new (tsdb/regex.c), whose
 * replacement expansion follows Go's regexp.Expand: $1, ${1}, $name, ${name}, $$ for a dollar.
 * A compiled rule is used by one thread at a time (the scrape thread), as tsdb_regex requires.
 */
#include "ingest/relabel.h"

#include <stdio.h>
#include <string.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/md5.h"

static const char *const action_names[] = {
    [INGEST_RELABEL_REPLACE] = "replace",     [INGEST_RELABEL_KEEP] = "keep",
    [INGEST_RELABEL_DROP] = "drop",           [INGEST_RELABEL_KEEPEQUAL] = "keepequal",
    [INGEST_RELABEL_DROPEQUAL] = "dropequal", [INGEST_RELABEL_HASHMOD] = "hashmod",
    [INGEST_RELABEL_LABELMAP] = "labelmap",   [INGEST_RELABEL_LABELDROP] = "labeldrop",
    [INGEST_RELABEL_LABELKEEP] = "labelkeep", [INGEST_RELABEL_LOWERCASE] = "lowercase",
    [INGEST_RELABEL_UPPERCASE] = "uppercase",
};

int ingest__relabel_action(tsdb_str name)
{
    for (size_t i = 0; i < sizeof action_names / sizeof action_names[0]; i++) {
        size_t n = strlen(action_names[i]);
        if (n != name.len)
            continue;
        size_t k = 0;
        for (; k < n; k++) {
            char c = name.p[k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != action_names[i][k])
                break;
        }
        if (k == n)
            return (int)i;
    }
    return -1;
}

const char *ingest__relabel_action_name(enum ingest_relabel_action act)
{
    return (unsigned)act < sizeof action_names / sizeof action_names[0] ? action_names[act] : "?";
}

/* ---- Regex ----------------------------------------------------------------------------------- */

/* Matches s against the rule's anchored regex and, when it matches, expands tmpl with its
 * captures into *out (in a). Returns 1 on a match, 0 otherwise (a match that hits the
 * backtracking limits counts as no match). */
static int re_expand(const ingest_relabel_rule *r, tsdb_str s, tsdb_str tmpl, tsdb_arena *a,
                     tsdb_str *out)
{
    return tsdb_regex_replace(r->re, s, tmpl, a, out) == 1;
}

static int re_match(const ingest_relabel_rule *r, tsdb_str s, tsdb_arena *a)
{
    tsdb_str dummy;
    return re_expand(r, s, (tsdb_str){"", 0}, a, &dummy);
}

static int re_compile(ingest_relabel_rule *r, tsdb_arena *a, tsdb_err *err)
{
    tsdb_regex *re;
    int rc = tsdb_regex_new(r->regex, a, &re, err);
    if (rc < 0)
        return rc;
    r->re = re;
    return 0;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* ---- Compilation ----------------------------------------------------------------------------- */

static int is_default(tsdb_str s, const char *def)
{
    return s.p == NULL || (s.len == strlen(def) && memcmp(s.p, def, s.len) == 0);
}

/* Replace targets may contain $1 / ${name} references:
 * ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$ */
static int target_template_valid(tsdb_str t)
{
    size_t i = 0;
    if (t.len == 0)
        return 0;
    while (i < t.len) {
        char c = t.p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            i++;
        } else if (c == '$') {
            i++;
            if (i < t.len && t.p[i] == '{') {
                size_t j = i + 1;
                while (j < t.len && is_word(t.p[j]))
                    j++;
                if (j == i + 1 || j >= t.len || t.p[j] != '}')
                    return 0;
                i = j + 1;
            } else {
                size_t j = i;
                while (j < t.len && is_word(t.p[j]))
                    j++;
                if (j == i)
                    return 0;
                i = j;
            }
        } else if (c >= '0' && c <= '9' && i > 0) {
            i++;
        } else {
            return 0;
        }
    }
    return 1;
}

int ingest__relabel_compile(ingest_relabel_rule *r, tsdb_arena *a, tsdb_err *err)
{
    const char *act = ingest__relabel_action_name(r->action);
    int regex_default = is_default(r->regex, "(.*)");
    int repl_default = is_default(r->replacement, "$1");
    int sep_default = is_default(r->separator, ";");
    if (!r->separator.p)
        r->separator = TSDB_STR(";");
    if (!r->regex.p)
        r->regex = TSDB_STR("(.*)");
    if (!r->replacement.p)
        r->replacement = TSDB_STR("$1");
    if (!r->target.p)
        r->target = TSDB_STR("");
    switch (r->action) {
    case INGEST_RELABEL_HASHMOD:
        if (r->modulus == 0)
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "relabel configuration for hashmod requires non-zero modulus");
        if (!tsdb_label_name_valid(r->target))
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "\"%.*s\" is invalid 'target_label' for %s "
                             "action",
                             (int)r->target.len, r->target.p, act);
        break;
    case INGEST_RELABEL_REPLACE:
        if (r->target.len == 0)
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "relabel configuration for %s action requires 'target_label' value",
                             act);
        if (!target_template_valid(r->target))
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "\"%.*s\" is invalid 'target_label' for %s "
                             "action",
                             (int)r->target.len, r->target.p, act);
        break;
    case INGEST_RELABEL_LOWERCASE:
    case INGEST_RELABEL_UPPERCASE:
    case INGEST_RELABEL_KEEPEQUAL:
    case INGEST_RELABEL_DROPEQUAL:
        if (r->target.len == 0)
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "relabel configuration for %s action requires 'target_label' value",
                             act);
        if (!tsdb_label_name_valid(r->target))
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "\"%.*s\" is invalid 'target_label' for %s "
                             "action",
                             (int)r->target.len, r->target.p, act);
        if ((r->action == INGEST_RELABEL_KEEPEQUAL || r->action == INGEST_RELABEL_DROPEQUAL) &&
            (!regex_default || !repl_default || r->modulus || !sep_default || !r->n_source))
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "%s action requires only 'source_labels' and 'target_label', and "
                             "no other fields",
                             act);
        break;
    case INGEST_RELABEL_LABELDROP:
    case INGEST_RELABEL_LABELKEEP:
        if (r->n_source || r->target.len || r->modulus || !sep_default || !repl_default)
            return tsdb_errf(err, TSDB_EINVAL, -1,
                             "%s action requires only 'regex', and no other fields", act);
        break;
    case INGEST_RELABEL_LABELMAP:
    case INGEST_RELABEL_KEEP:
    case INGEST_RELABEL_DROP:
        break;
    }
    return re_compile(r, a, err);
}

/* ---- Label builder --------------------------------------------------------------------------- */

tsdb_str ingest__lb_get(const ingest_lb *lb, tsdb_str name)
{
    for (size_t i = 0; i < lb->n; i++)
        if (tsdb_str_eq(lb->v[i].name, name))
            return lb->v[i].value;
    return (tsdb_str){"", 0};
}

void ingest__lb_del(ingest_lb *lb, tsdb_str name)
{
    for (size_t i = 0; i < lb->n; i++) {
        if (tsdb_str_eq(lb->v[i].name, name)) {
            lb->v[i] = lb->v[--lb->n];
            return;
        }
    }
}

void ingest__lb_set(ingest_lb *lb, tsdb_str name, tsdb_str value, tsdb_arena *a)
{
    if (value.len == 0) {
        ingest__lb_del(lb, name);
        return;
    }
    for (size_t i = 0; i < lb->n; i++) {
        if (tsdb_str_eq(lb->v[i].name, name)) {
            lb->v[i].value = value;
            return;
        }
    }
    if (lb->n == lb->cap) {
        size_t nc = lb->cap ? lb->cap * 2 : 16;
        lb->v = tsdb_arena_realloc(a, lb->v, lb->cap * sizeof *lb->v, nc * sizeof *lb->v);
        lb->cap = nc;
    }
    lb->v[lb->n++] = (tsdb_label){name, value};
}

/* ---- Evaluation ------------------------------------------------------------------------------ */

static tsdb_str join_sources(const ingest_relabel_rule *r, const ingest_lb *lb, tsdb_arena *a)
{
    if (r->n_source == 1)
        return ingest__lb_get(lb, r->source[0]);
    size_t n = 0;
    for (size_t i = 0; i < r->n_source; i++)
        n += ingest__lb_get(lb, r->source[i]).len + (i ? r->separator.len : 0);
    char *d = tsdb_arena_alloc(a, n + 1), *o = d;
    for (size_t i = 0; i < r->n_source; i++) {
        if (i) {
            memcpy(o, r->separator.p, r->separator.len);
            o += r->separator.len;
        }
        tsdb_str v = ingest__lb_get(lb, r->source[i]);
        memcpy(o, v.p, v.len);
        o += v.len;
    }
    *o = 0;
    return (tsdb_str){d, n};
}

static tsdb_str change_case(tsdb_str s, int upper, tsdb_arena *a)
{
    char *d = tsdb_arena_alloc(a, s.len + 1);
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        d[i] = c;
    }
    d[s.len] = 0;
    return (tsdb_str){d, s.len};
}

static int apply_one(const ingest_relabel_rule *r, ingest_lb *lb, tsdb_arena *a)
{
    tsdb_str val = join_sources(r, lb, a);
    switch (r->action) {
    case INGEST_RELABEL_DROP:
        return !re_match(r, val, a);
    case INGEST_RELABEL_KEEP:
        return re_match(r, val, a);
    case INGEST_RELABEL_DROPEQUAL:
        return !tsdb_str_eq(ingest__lb_get(lb, r->target), val);
    case INGEST_RELABEL_KEEPEQUAL:
        return tsdb_str_eq(ingest__lb_get(lb, r->target), val);
    case INGEST_RELABEL_REPLACE: {
        tsdb_str target, res;
        if (!re_expand(r, val, r->target, a, &target))
            return 1;
        if (!tsdb_label_name_valid(target))
            return 1;
        re_expand(r, val, r->replacement, a, &res);
        ingest__lb_set(lb, target, res, a);
        return 1;
    }
    case INGEST_RELABEL_LOWERCASE:
    case INGEST_RELABEL_UPPERCASE:
        ingest__lb_set(lb, r->target, change_case(val, r->action == INGEST_RELABEL_UPPERCASE, a),
                       a);
        return 1;
    case INGEST_RELABEL_HASHMOD: {
        unsigned char d[16];
        ingest__md5(val.p, val.len, d);
        /* Go's sum64 shifts digest bytes 0..7 out of a uint64: only bytes 8..15 count. */
        uint64_t h = tsdb_get_u64be(d + 8);
        char *num = tsdb_arena_sprintf(a, "%llu", (unsigned long long)(h % r->modulus));
        ingest__lb_set(lb, r->target, tsdb_str_c(num), a);
        return 1;
    }
    case INGEST_RELABEL_LABELMAP: {
        /* Iterate over a snapshot: labels added here must not be mapped again. */
        size_t n = lb->n;
        tsdb_label *snap = tsdb_arena_alloc(a, (n ? n : 1) * sizeof *snap);
        memcpy(snap, lb->v, n * sizeof *snap);
        for (size_t i = 0; i < n; i++) {
            tsdb_str res;
            if (re_expand(r, snap[i].name, r->replacement, a, &res) && res.len)
                ingest__lb_set(lb, res, snap[i].value, a);
        }
        return 1;
    }
    case INGEST_RELABEL_LABELDROP:
    case INGEST_RELABEL_LABELKEEP: {
        int keep = r->action == INGEST_RELABEL_LABELKEEP;
        for (size_t i = 0; i < lb->n;) {
            if (re_match(r, lb->v[i].name, a) != keep)
                lb->v[i] = lb->v[--lb->n];
            else
                i++;
        }
        return 1;
    }
    }
    return 1;
}

int ingest__relabel(const ingest_relabel_rule *rules, size_t n, ingest_lb *lb, tsdb_arena *a)
{
    for (size_t i = 0; i < n; i++)
        if (!apply_one(&rules[i], lb, a))
            return 0;
    return lb->n > 0;
}
