/* tsdb/labels.c -- label sets and label matchers.
 *
 * A label set is an array of {name, value} sorted by name with unique names and no empty
 * values: Prometheus treats an empty value as "label absent", so callers drop them before a set
 * reaches storage. Names follow [a-zA-Z_][a-zA-Z0-9_]*, the __name__ value follows the metric
 * name syntax [a-zA-Z_:][a-zA-Z0-9_:]*, and values are valid UTF-8 (model.LabelValue.IsValid).
 *
 * Canonical encoding (tsdb__labels_encode; a self-contained byte form of a label set):
 *
 *     uvarint n | n x ( uvarint name_len | name | uvarint value_len | value )
 *
 * The hash (tsdb_labels_hash) is the process-keyed SipHash over name 0xff value 0xff ... ; 0xff
 * never occurs in a valid name or UTF-8 value, so the framing is unambiguous.
 *
 * Matchers follow Prometheus: `=`, `!=`, `=~`, `!~`, where a missing label reads as "". Regexes
 * use RE2 syntax through PCRE2 and match the whole value, as Prometheus compiles "^(?:re)$":
 * the pattern is compiled on its own with PCRE2_ANCHORED | PCRE2_ENDANCHORED (so a pattern such
 * as "a)|(b" cannot escape the anchoring), in UTF mode, `.` not matching "\n" (newline = LF),
 * `$` only at the very end. Constructs PCRE2 has and RE2 lacks (back references, lookaround,
 * atomic and possessive forms, recursion, verbs) are refused as Prometheus refuses them.
 * Matching first runs PCRE2's DFA matcher, which keeps a set of states instead of backtracking
 * and so stays polynomial on patterns such as (a+)+$; it reports the longest anchored match,
 * and the value matches when that one reaches the end (the DFA matcher of PCRE2 10.42 ignores
 * PCRE2_ENDANCHORED). If it cannot finish (workspace exhausted) the backtracking matcher runs
 * with match, depth and heap limits; a match that hits a limit counts as "no match". A value
 * that is not valid UTF-8 is matched as Go does: every byte that starts no valid sequence
 * reads as U+FFFD.
 *
 * Fast paths (no PCRE2 at match time): a pattern that is a literal, or an alternation of
 * literals ("foo|bar", with `\.`-style escapes) compares strings; ".*" accepts any value without
 * a newline and ".+" any non-empty one.
 *
 * Memory: a matcher, its compiled code and its scratch space live in the arena given to
 * tsdb_matcher_new. PCRE2 allocates through a general context whose allocator is that arena
 * and whose free is a no-op, so tsdb_arena_fini releases everything with no cleanup hook. A
 * matcher is used by one thread at a time (it owns its match data).
 */
#include "tsdb/labels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

#define LABELS_MAX_DECODE 100000 /* labels in one encoded set, sanity bound */
#define RE_MATCH_LIMIT    1000000
#define RE_DEPTH_LIMIT    10000
#define RE_HEAP_LIMIT_KIB 4096
#define RE_DFA_WORKSPACE  2048 /* ints */
#define RE_OVECTOR_PAIRS  1

/* ---- Staleness marker ------------------------------------------------------------------- */

int tsdb_is_stale_nan(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits == TSDB_STALE_NAN_BITS;
}

double tsdb_stale_nan(void)
{
    uint64_t bits = TSDB_STALE_NAN_BITS;
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* ---- Names, validation, sorting --------------------------------------------------------- */

/* Character classes of label and metric names: a table, as names are checked for every series
 * of every remote-write request. */
enum { CH_ALPHA_ = 1, CH_DIGIT = 2, CH_COLON = 4 };

static const unsigned char name_class[256] = {
    ['0'] = CH_DIGIT,  ['1'] = CH_DIGIT,  ['2'] = CH_DIGIT,  ['3'] = CH_DIGIT,  ['4'] = CH_DIGIT,
    ['5'] = CH_DIGIT,  ['6'] = CH_DIGIT,  ['7'] = CH_DIGIT,  ['8'] = CH_DIGIT,  ['9'] = CH_DIGIT,
    [':'] = CH_COLON,  ['_'] = CH_ALPHA_, ['a'] = CH_ALPHA_, ['b'] = CH_ALPHA_, ['c'] = CH_ALPHA_,
    ['d'] = CH_ALPHA_, ['e'] = CH_ALPHA_, ['f'] = CH_ALPHA_, ['g'] = CH_ALPHA_, ['h'] = CH_ALPHA_,
    ['i'] = CH_ALPHA_, ['j'] = CH_ALPHA_, ['k'] = CH_ALPHA_, ['l'] = CH_ALPHA_, ['m'] = CH_ALPHA_,
    ['n'] = CH_ALPHA_, ['o'] = CH_ALPHA_, ['p'] = CH_ALPHA_, ['q'] = CH_ALPHA_, ['r'] = CH_ALPHA_,
    ['s'] = CH_ALPHA_, ['t'] = CH_ALPHA_, ['u'] = CH_ALPHA_, ['v'] = CH_ALPHA_, ['w'] = CH_ALPHA_,
    ['x'] = CH_ALPHA_, ['y'] = CH_ALPHA_, ['z'] = CH_ALPHA_, ['A'] = CH_ALPHA_, ['B'] = CH_ALPHA_,
    ['C'] = CH_ALPHA_, ['D'] = CH_ALPHA_, ['E'] = CH_ALPHA_, ['F'] = CH_ALPHA_, ['G'] = CH_ALPHA_,
    ['H'] = CH_ALPHA_, ['I'] = CH_ALPHA_, ['J'] = CH_ALPHA_, ['K'] = CH_ALPHA_, ['L'] = CH_ALPHA_,
    ['M'] = CH_ALPHA_, ['N'] = CH_ALPHA_, ['O'] = CH_ALPHA_, ['P'] = CH_ALPHA_, ['Q'] = CH_ALPHA_,
    ['R'] = CH_ALPHA_, ['S'] = CH_ALPHA_, ['T'] = CH_ALPHA_, ['U'] = CH_ALPHA_, ['V'] = CH_ALPHA_,
    ['W'] = CH_ALPHA_, ['X'] = CH_ALPHA_, ['Y'] = CH_ALPHA_, ['Z'] = CH_ALPHA_,
};

/* Does every byte of s[0..n) belong to one of the classes in mask? */
static int all_in(const char *s, size_t n, unsigned mask)
{
    for (size_t i = 0; i < n; i++)
        if (!(name_class[(unsigned char)s[i]] & mask))
            return 0;
    return 1;
}

int tsdb_label_name_valid(tsdb_str name)
{
    return name.len > 0 && (name_class[(unsigned char)name.p[0]] & CH_ALPHA_) &&
           all_in(name.p + 1, name.len - 1, CH_ALPHA_ | CH_DIGIT);
}

int tsdb_metric_name_valid(tsdb_str name)
{
    return name.len > 0 && (name_class[(unsigned char)name.p[0]] & (CH_ALPHA_ | CH_COLON)) &&
           all_in(name.p + 1, name.len - 1, CH_ALPHA_ | CH_DIGIT | CH_COLON);
}

/* Length of the valid UTF-8 sequence at s[0..n) (strict: no overlongs, no surrogates,
 * <= U+10FFFF, as Go's utf8 package), or 0 if the byte at s starts none. n > 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        unsigned char cc = s[k];
        if ((cc & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (cc & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, eight bytes at a time. */
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq_len(s + i, n - i);
        if (l == 0)
            return 0;
        i += l;
    }
    return 1;
}

static int label_cmp_by_name(const void *a, const void *b)
{
    const tsdb_label *x = a, *y = b;
    return tsdb_str_cmp(x->name, y->name);
}

void tsdb_labels_sort(tsdb_label *v, size_t n)
{
    if (n < 2)
        return;
    if (n > 16) {
        qsort(v, n, sizeof *v, label_cmp_by_name);
        return;
    }
    /* Insertion sort: label sets are short and usually sorted already. */
    for (size_t i = 1; i < n; i++) {
        tsdb_label x = v[i];
        size_t j = i;
        while (j > 0 && tsdb_str_cmp(v[j - 1].name, x.name) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static int str_is(tsdb_str s, const char *lit, size_t n)
{
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

#define IS_NAME_LABEL(s) str_is((s), "__name__", 8)

int tsdb_labels_validate(tsdb_labels l, int require_name, tsdb_err *err)
{
    int have_name = 0;
    for (size_t i = 0; i < l.n; i++) {
        tsdb_str name = l.v[i].name, value = l.v[i].value;
        if (!tsdb_label_name_valid(name))
            return tsdb_errf(err, TSDB_EINVAL, -1, "invalid label name \"%.*s\"",
                             (int)(name.len > 64 ? 64 : name.len), name.p ? name.p : "");
        if (i > 0) {
            int c = tsdb_str_cmp(l.v[i - 1].name, name);
            if (c == 0)
                return tsdb_errf(err, TSDB_EINVAL, -1, "duplicate label name \"%.*s\"",
                                 (int)name.len, name.p);
            if (c > 0)
                return tsdb_errf(err, TSDB_EINVAL, -1, "labels are not sorted by name");
        }
        if (value.len == 0)
            return tsdb_errf(err, TSDB_EINVAL, -1, "empty value for label \"%.*s\"", (int)name.len,
                             name.p);
        if (IS_NAME_LABEL(name)) {
            have_name = 1;
            if (!tsdb_metric_name_valid(value))
                return tsdb_errf(err, TSDB_EINVAL, -1, "invalid metric name \"%.*s\"",
                                 (int)(value.len > 64 ? 64 : value.len), value.p);
        } else if (!utf8_valid((const unsigned char *)value.p, value.len)) {
            return tsdb_errf(err, TSDB_EINVAL, -1, "invalid UTF-8 in value of label \"%.*s\"",
                             (int)name.len, name.p);
        }
    }
    if (require_name && !have_name)
        return tsdb_errf(err, TSDB_EINVAL, -1, "label set has no metric name (__name__)");
    return TSDB_OK;
}

/* ---- Access, hash, compare, copy ---------------------------------------------------------- */

tsdb_str tsdb_labels_get(tsdb_labels l, tsdb_str name)
{
    /* Binary search: the set is sorted by name. */
    size_t lo = 0, hi = l.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = tsdb_str_cmp(l.v[mid].name, name);
        if (c == 0)
            return l.v[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (tsdb_str){"", 0};
}

uint64_t tsdb_labels_hash(tsdb_labels l)
{
    unsigned char stack[1024];
    size_t need = 0;
    if (l.n == 0)
        return tsdb_hash("", 0);
    for (size_t i = 0; i < l.n; i++)
        need += l.v[i].name.len + l.v[i].value.len + 2;
    unsigned char *p = need <= sizeof stack ? stack : xmalloc(need);
    size_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].name.len)
            memcpy(p + off, l.v[i].name.p, l.v[i].name.len);
        off += l.v[i].name.len;
        p[off++] = 0xff;
        if (l.v[i].value.len)
            memcpy(p + off, l.v[i].value.p, l.v[i].value.len);
        off += l.v[i].value.len;
        p[off++] = 0xff;
    }
    uint64_t h = tsdb_hash(p, off);
    if (p != stack)
        free(p);
    return h;
}

int tsdb_labels_equal(tsdb_labels a, tsdb_labels b)
{
    if (a.n != b.n)
        return 0;
    for (size_t i = 0; i < a.n; i++) {
        if (!tsdb_str_eq(a.v[i].name, b.v[i].name) || !tsdb_str_eq(a.v[i].value, b.v[i].value))
            return 0;
    }
    return 1;
}

int tsdb_labels_cmp(tsdb_labels a, tsdb_labels b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    for (size_t i = 0; i < n; i++) {
        int c = tsdb_str_cmp(a.v[i].name, b.v[i].name);
        if (c == 0)
            c = tsdb_str_cmp(a.v[i].value, b.v[i].value);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    if (a.n == b.n)
        return 0;
    return a.n < b.n ? -1 : 1;
}

tsdb_labels tsdb_labels_copy(tsdb_labels l, tsdb_arena *a)
{
    tsdb_labels out = {NULL, l.n};
    if (l.n == 0)
        return out;
    size_t bytes = 0;
    for (size_t i = 0; i < l.n; i++)
        bytes += l.v[i].name.len + l.v[i].value.len + 2;
    tsdb_label *v = tsdb_arena_alloc(a, l.n * sizeof *v);
    char *s = tsdb_arena_alloc(a, bytes);
    for (size_t i = 0; i < l.n; i++) {
        tsdb_str parts[2] = {l.v[i].name, l.v[i].value};
        tsdb_str *dst[2] = {&v[i].name, &v[i].value};
        for (int k = 0; k < 2; k++) {
            if (parts[k].len)
                memcpy(s, parts[k].p, parts[k].len);
            s[parts[k].len] = '\0';
            *dst[k] = (tsdb_str){s, parts[k].len};
            s += parts[k].len + 1;
        }
    }
    out.v = v;
    return out;
}

/* Appends s quoted as Go's strconv.Quote would for printable UTF-8 text. */
static void quote_into(tsdb_buf *b, tsdb_str s)
{
    static const char hex[] = "0123456789abcdef";
    tsdb_buf_putc(b, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        switch (c) {
        case '"':
            tsdb_buf_put(b, "\\\"", 2);
            break;
        case '\\':
            tsdb_buf_put(b, "\\\\", 2);
            break;
        case '\n':
            tsdb_buf_put(b, "\\n", 2);
            break;
        case '\t':
            tsdb_buf_put(b, "\\t", 2);
            break;
        case '\r':
            tsdb_buf_put(b, "\\r", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
                tsdb_buf_put(b, e, 4);
            } else {
                tsdb_buf_putc(b, c);
            }
        }
    }
    tsdb_buf_putc(b, '"');
}

const char *tsdb_labels_format(tsdb_labels l, tsdb_arena *a)
{
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb_str name = tsdb_labels_get(l, TSDB_STR("__name__"));
    int named = name.len > 0 && tsdb_metric_name_valid(name);
    if (named)
        tsdb_buf_put(&b, name.p, name.len);
    size_t n_rest = l.n - (named ? 1 : 0);
    if (!named || n_rest > 0) {
        tsdb_buf_putc(&b, '{');
        int first = 1;
        for (size_t i = 0; i < l.n; i++) {
            if (named && IS_NAME_LABEL(l.v[i].name))
                continue;
            if (!first)
                tsdb_buf_put(&b, ", ", 2);
            first = 0;
            tsdb_buf_put(&b, l.v[i].name.p, l.v[i].name.len);
            tsdb_buf_putc(&b, '=');
            quote_into(&b, l.v[i].value);
        }
        tsdb_buf_putc(&b, '}');
    }
    char *out = tsdb_arena_strndup(a, (const char *)b.p, b.len);
    tsdb_buf_fini(&b);
    return out;
}

/* ---- Canonical encoding ----------------------------------------------------------------- */

void tsdb__labels_encode(tsdb_buf *b, tsdb_labels l)
{
    tsdb_buf_put_uvarint(b, l.n);
    for (size_t i = 0; i < l.n; i++) {
        tsdb_buf_put_str(b, l.v[i].name);
        tsdb_buf_put_str(b, l.v[i].value);
    }
}

int tsdb__labels_decode(const void *p, size_t len, tsdb_arena *a, tsdb_labels *out)
{
    tsdb_rd r;
    tsdb_rd_init(&r, p, len);
    uint64_t n = tsdb_rd_uvarint(&r);
    /* Each label takes at least two bytes, which bounds n before allocating. */
    if (r.err || n > LABELS_MAX_DECODE || n > tsdb_rd_left(&r) / 2)
        return TSDB_CORRUPT(NULL, "label set encoding: bad count");
    tsdb_str *tmp = n ? tsdb_arena_alloc(a, (size_t)n * 2 * sizeof *tmp) : NULL;
    size_t bytes = 0;
    for (uint64_t i = 0; i < n * 2; i++) {
        tmp[i] = tsdb_rd_str(&r);
        if (r.err)
            return TSDB_CORRUPT(NULL, "label set encoding: truncated");
        bytes += tmp[i].len + 1;
    }
    if (tsdb_rd_left(&r) != 0)
        return TSDB_CORRUPT(NULL, "label set encoding: trailing bytes");
    tsdb_label *v = n ? tsdb_arena_alloc(a, (size_t)n * sizeof *v) : NULL;
    char *s = bytes ? tsdb_arena_alloc(a, bytes) : NULL;
    for (uint64_t i = 0; i < n * 2; i++) {
        if (tmp[i].len)
            memcpy(s, tmp[i].p, tmp[i].len);
        s[tmp[i].len] = '\0';
        tsdb_str copy = {s, tmp[i].len};
        if (i % 2 == 0)
            v[i / 2].name = copy;
        else
            v[i / 2].value = copy;
        s += tmp[i].len + 1;
    }
    out->v = v;
    out->n = (size_t)n;
    return TSDB_OK;
}

int tsdb__labels_encoded_get(const void *p, size_t len, tsdb_str name, tsdb_str *value)
{
    tsdb_rd r;
    tsdb_rd_init(&r, p, len);
    uint64_t n = tsdb_rd_uvarint(&r);
    if (r.err || n > LABELS_MAX_DECODE)
        return TSDB_CORRUPT(NULL, "label set encoding: bad count");
    for (uint64_t i = 0; i < n; i++) {
        tsdb_str k = tsdb_rd_str(&r);
        tsdb_str v = tsdb_rd_str(&r);
        if (r.err)
            return TSDB_CORRUPT(NULL, "label set encoding: truncated");
        if (tsdb_str_eq(k, name)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* ---- Matchers --------------------------------------------------------------------------- */

enum matcher_kind {
    MK_SET,      /* value is one of set[0..n_set) (equality is a set of one) */
    MK_ANY,      /* ".*": any value without '\n' */
    MK_NONEMPTY, /* ".+": any non-empty value without '\n' */
    MK_REGEX,    /* compiled PCRE2 */
};

struct tsdb_matcher {
    enum tsdb_match_op op; /* immutable after new, like every field but the scratch ones */
    tsdb_str name, value;  /* arena copies, NUL-terminated */
    enum matcher_kind kind;
    tsdb_str *set; /* MK_SET: literal alternatives */
    size_t n_set;
    tsdb_str prefix;   /* literal prefix of every match (un-negated), possibly empty */
    int matches_empty; /* tsdb_matcher_matches(m, "") after negation */
    pcre2_code *re;
    pcre2_match_context *mctx;
    pcre2_match_data *md; /* scratch: one thread at a time */
    int *dfa_ws;          /* scratch: DFA workspace */
    int dfa_off;          /* 1 once the DFA matcher refused this pattern */
};

static void *re_arena_malloc(PCRE2_SIZE n, void *data)
{
    return tsdb_arena_alloc(data, n ? n : 1);
}

static void re_arena_free(void *p, void *data)
{
    (void)p;
    (void)data;
}

static int is_meta(unsigned char c)
{
    return strchr("\\.+*?()|[]{}^$", c) != NULL && c != '\0';
}

static int is_punct_ascii(unsigned char c)
{
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

/* If pattern is an alternation of literals, fills m->set (unescaped copies) and returns 1. */
static int parse_literal_set(tsdb_matcher *m, tsdb_str pat, tsdb_arena *a)
{
    size_t n_alt = 1;
    for (size_t i = 0; i < pat.len; i++) {
        unsigned char c = (unsigned char)pat.p[i];
        if (c == '\\') {
            if (i + 1 >= pat.len || !is_punct_ascii((unsigned char)pat.p[i + 1]))
                return 0;
            i++;
        } else if (c == '|') {
            n_alt++;
        } else if (is_meta(c)) {
            return 0;
        }
    }
    tsdb_str *set = tsdb_arena_alloc(a, n_alt * sizeof *set);
    char *buf = tsdb_arena_alloc(a, pat.len + n_alt);
    size_t k = 0, start = 0;
    char *w = buf;
    for (size_t i = 0; i <= pat.len; i++) {
        if (i == pat.len || pat.p[i] == '|') {
            set[k++] = (tsdb_str){buf + start, (size_t)(w - buf) - start};
            *w++ = '\0';
            start = (size_t)(w - buf);
            continue;
        }
        if (pat.p[i] == '\\')
            i++;
        *w++ = pat.p[i];
    }
    m->kind = MK_SET;
    m->set = set;
    m->n_set = k;
    return 1;
}

/* A literal prefix of every string the pattern matches: leading literal characters, when the
 * pattern has no top-level alternation. A literal followed by a quantifier that allows zero
 * repetitions does not count. */
static tsdb_str literal_prefix(tsdb_str pat, tsdb_arena *a)
{
    int depth = 0, in_class = 0;
    for (size_t i = 0; i < pat.len; i++) {
        char c = pat.p[i];
        if (c == '\\') {
            i++;
        } else if (in_class) {
            if (c == ']')
                in_class = 0;
        } else if (c == '[') {
            in_class = 1;
            if (i + 1 < pat.len && pat.p[i + 1] == '^')
                i++;
            if (i + 1 < pat.len && pat.p[i + 1] == ']')
                i++; /* "[]a]": a leading ']' is literal */
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (c == '|' && depth == 0) {
            return (tsdb_str){"", 0};
        }
    }
    char *buf = tsdb_arena_alloc(a, pat.len + 1);
    size_t n = 0, last_start = 0, i = 0;
    while (i < pat.len) {
        unsigned char c = (unsigned char)pat.p[i];
        last_start = n;
        if (c == '\\') {
            if (i + 1 >= pat.len || !is_punct_ascii((unsigned char)pat.p[i + 1]))
                break;
            buf[n++] = pat.p[i + 1];
            i += 2;
        } else if (is_meta(c)) {
            break;
        } else {
            /* Copy one whole UTF-8 character so a quantifier drops it entirely. */
            size_t clen = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + clen > pat.len)
                break;
            memcpy(buf + n, pat.p + i, clen);
            n += clen;
            i += clen;
        }
        if (i < pat.len && strchr("*?{", pat.p[i]) != NULL && pat.p[i] != '\0') {
            n = last_start;
            break;
        }
    }
    buf[n] = '\0';
    return (tsdb_str){buf, n};
}

/* Refuses what PCRE2 accepts but RE2 (Go's regexp, as Prometheus uses) does not: back
 * references, lookaround, atomic and possessive forms, recursion, conditionals, callouts,
 * backtracking verbs and escapes Go does not know. Beyond matching Prometheus, this keeps every
 * accepted pattern within what the DFA matcher runs in polynomial time. The scan only needs to
 * tell escapes, classes and group openers apart; PCRE2 parses for real afterwards. */
static int re2_check(tsdb_str pat, tsdb_err *err)
{
    const char *p = pat.p;
    size_t n = pat.len;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 >= n)
                break; /* PCRE2 reports the trailing backslash */
            char e = p[i + 1];
            if (e == 'Q') {
                /* \Q...\E quotes everything up to \E (or the end). */
                size_t j = i + 2;
                while (j + 1 < n && !(p[j] == '\\' && p[j + 1] == 'E'))
                    j++;
                i = j + 1;
                continue;
            }
            int ok =
                !((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) ||
                strchr("afntrvxdDsSwWbBAzpPE0", e) != NULL;
            if (e >= '1' && e <= '7' && i + 2 < n && p[i + 2] >= '0' && p[i + 2] <= '7')
                ok = 1; /* Go reads \12 as octal; a lone \1 is a back reference */
            if (!ok)
                return tsdb_errf(err, TSDB_EINVAL, (int)i,
                                 "error parsing regexp: invalid escape sequence: `\\%c`", e);
            i++;
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < n && p[i + 1] == ':') {
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < n; j++) {
                    if (p[j] == ':' && p[j + 1] == ']') {
                        end = p + j;
                        break;
                    }
                }
                if (end)
                    i = (size_t)(end - p) + 1;
            } else if (c == ']') {
                in_class = 0;
            }
            continue;
        }
        if (c == '[') {
            in_class = 1;
            if (i + 1 < n && p[i + 1] == '^')
                i++;
            if (i + 1 < n && p[i + 1] == ']')
                i++;
            continue;
        }
        if (c == '(' && i + 1 < n && (p[i + 1] == '?' || p[i + 1] == '*')) {
            size_t j = i + 2;
            int ok = 0;
            if (p[i + 1] == '?') {
                if (j < n && p[j] == 'P') {
                    ok = j + 1 < n && p[j + 1] == '<';
                } else {
                    while (j < n && strchr("imsU-", p[j]) != NULL && p[j] != '\0')
                        j++;
                    ok = j < n && j > i + 2 && (p[j] == ':' || p[j] == ')');
                    ok = ok || (j < n && j == i + 2 && p[j] == ':');
                }
            }
            if (!ok)
                return tsdb_errf(err, TSDB_EINVAL, (int)i,
                                 "error parsing regexp: invalid or unsupported Perl syntax: "
                                 "`%.*s`",
                                 (int)(n - i < 3 ? n - i : 3), p + i);
            continue;
        }
        if ((c == '*' || c == '+' || c == '?') && i + 1 < n && p[i + 1] == '+')
            return tsdb_errf(err, TSDB_EINVAL, (int)i,
                             "error parsing regexp: invalid nested repetition operator: `%c+`", c);
    }
    return TSDB_OK;
}

static int compile_regex(tsdb_matcher *m, tsdb_str pat, tsdb_arena *a, tsdb_err *err)
{
    int rc = re2_check(pat, err);
    if (rc != TSDB_OK)
        return rc;
    pcre2_general_context *gc = pcre2_general_context_create(re_arena_malloc, re_arena_free, a);
    pcre2_compile_context *cc = pcre2_compile_context_create(gc);
    if (gc == NULL || cc == NULL)
        return tsdb_errf(err, TSDB_ENOMEM, -1, "regex: out of memory");
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_DOLLAR_ENDONLY |
                    PCRE2_NEVER_BACKSLASH_C;
    int ec = 0;
    PCRE2_SIZE eoff = 0;
    m->re = pcre2_compile((PCRE2_SPTR)(pat.len ? pat.p : ""), pat.len, opts, &ec, &eoff, cc);
    if (m->re == NULL) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
            strcpy((char *)msg, "invalid pattern");
        return tsdb_errf(err, TSDB_EINVAL, (int)eoff,
                         "error parsing regexp: %s at offset %d: `%.*s`", (const char *)msg,
                         (int)eoff, (int)(pat.len > 100 ? 100 : pat.len), pat.p);
    }
    m->mctx = pcre2_match_context_create(gc);
    m->md = pcre2_match_data_create(RE_OVECTOR_PAIRS, gc);
    if (m->mctx == NULL || m->md == NULL)
        return tsdb_errf(err, TSDB_ENOMEM, -1, "regex: out of memory");
    pcre2_set_match_limit(m->mctx, RE_MATCH_LIMIT);
    pcre2_set_depth_limit(m->mctx, RE_DEPTH_LIMIT);
    pcre2_set_heap_limit(m->mctx, RE_HEAP_LIMIT_KIB);
    m->dfa_ws = tsdb_arena_alloc(a, RE_DFA_WORKSPACE * sizeof(int));
    m->kind = MK_REGEX;
    return TSDB_OK;
}

/* Runs the compiled pattern over valid UTF-8 s[0..n). */
static int regex_run(tsdb_matcher *m, const char *s, size_t n)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(n ? s : "");
    if (!m->dfa_off) {
        int rc = pcre2_dfa_match(m->re, subj, n, 0, PCRE2_NO_UTF_CHECK, m->md, m->mctx, m->dfa_ws,
                                 RE_DFA_WORKSPACE);
        if (rc >= 0) {
            /* The DFA matcher of PCRE2 10.42 does not apply PCRE2_ENDANCHORED; it reports the
             * longest anchored match first, so the value matches iff that one reaches its end. */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
            return ov[0] == 0 && ov[1] == n;
        }
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc == PCRE2_ERROR_DFA_UITEM || rc == PCRE2_ERROR_DFA_UCOND ||
            rc == PCRE2_ERROR_DFA_UFUNC || rc == PCRE2_ERROR_DFA_UINVALID_UTF)
            m->dfa_off = 1;
        /* Otherwise (workspace, limits): try the backtracking matcher. */
    }
    int rc = pcre2_match(m->re, subj, n, 0, PCRE2_NO_UTF_CHECK, m->md, m->mctx);
    return rc >= 0;
}

static int regex_match(tsdb_matcher *m, tsdb_str v)
{
    const unsigned char *p = (const unsigned char *)v.p;
    if (v.len == 0 || utf8_valid(p, v.len))
        return regex_run(m, v.p, v.len);
    /* As Go does, read every byte that starts no valid sequence as U+FFFD. */
    char *fixed = xmalloc(v.len * 3);
    size_t n = 0;
    for (size_t i = 0; i < v.len;) {
        size_t l = utf8_seq_len(p + i, v.len - i);
        if (l == 0) {
            memcpy(fixed + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        } else {
            memcpy(fixed + n, p + i, l);
            n += l;
            i += l;
        }
    }
    int hit = regex_run(m, fixed, n);
    free(fixed);
    return hit;
}

int tsdb_matcher_new(enum tsdb_match_op op, tsdb_str name, tsdb_str value, tsdb_arena *a,
                     tsdb_matcher **out, tsdb_err *err)
{
    if ((unsigned)op > TSDB_MATCH_NRE)
        return tsdb_errf(err, TSDB_EINVAL, -1, "invalid matcher operator %d", (int)op);
    tsdb_matcher *m = tsdb_arena_calloc(a, 1, sizeof *m);
    m->op = op;
    m->name = tsdb_arena_str(a, name);
    m->value = tsdb_arena_str(a, value);
    tsdb_str pat = m->value;
    if (op == TSDB_MATCH_EQ || op == TSDB_MATCH_NE) {
        m->kind = MK_SET;
        m->set = tsdb_arena_alloc(a, sizeof *m->set);
        m->set[0] = m->value;
        m->n_set = 1;
        m->prefix = m->value;
    } else if (str_is(pat, ".*", 2)) {
        m->kind = MK_ANY;
        m->prefix = (tsdb_str){"", 0};
    } else if (str_is(pat, ".+", 2)) {
        m->kind = MK_NONEMPTY;
        m->prefix = (tsdb_str){"", 0};
    } else if (parse_literal_set(m, pat, a)) {
        m->prefix = m->n_set == 1 ? m->set[0] : (tsdb_str){"", 0};
    } else {
        int rc = compile_regex(m, pat, a, err);
        if (rc != TSDB_OK)
            return rc;
        m->prefix = literal_prefix(pat, a);
    }
    m->matches_empty = tsdb_matcher_matches(m, (tsdb_str){"", 0});
    *out = m;
    return TSDB_OK;
}

enum tsdb_match_op tsdb_matcher_op(const tsdb_matcher *m)
{
    return m->op;
}

tsdb_str tsdb_matcher_name(const tsdb_matcher *m)
{
    return m->name;
}

tsdb_str tsdb_matcher_value(const tsdb_matcher *m)
{
    return m->value;
}

int tsdb_matcher_matches(const tsdb_matcher *m, tsdb_str v)
{
    int hit = 0;
    switch (m->kind) {
    case MK_SET:
        for (size_t i = 0; i < m->n_set && !hit; i++)
            hit = tsdb_str_eq(m->set[i], v);
        break;
    case MK_ANY:
        hit = v.len == 0 || memchr(v.p, '\n', v.len) == NULL;
        break;
    case MK_NONEMPTY:
        hit = v.len > 0 && memchr(v.p, '\n', v.len) == NULL;
        break;
    case MK_REGEX:
        /* The scratch space is the only thing written; a matcher is single-threaded. */
        hit = regex_match((tsdb_matcher *)m, v);
        break;
    }
    return (m->op == TSDB_MATCH_NE || m->op == TSDB_MATCH_NRE) ? !hit : hit;
}

int tsdb_matchers_match(const tsdb_matcher *const *ms, size_t n, tsdb_labels l)
{
    for (size_t i = 0; i < n; i++) {
        if (!tsdb_matcher_matches(ms[i], tsdb_labels_get(l, ms[i]->name)))
            return 0;
    }
    return 1;
}

int tsdb__matcher_literals(const tsdb_matcher *m, const tsdb_str **vals, size_t *n)
{
    if (m->kind != MK_SET)
        return 0;
    *vals = m->set;
    *n = m->n_set;
    return 1;
}

tsdb_str tsdb__matcher_prefix(const tsdb_matcher *m)
{
    return m->prefix;
}

int tsdb__matcher_matches_empty(const tsdb_matcher *m)
{
    return m->matches_empty;
}

void tsdb__matcher_no_dfa(tsdb_matcher *m)
{
    m->dfa_off = 1;
}
