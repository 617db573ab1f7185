/* tsdb/regex.c -- fully anchored RE2-syntax regular expressions with capture-group expansion,
 * for PromQL's label_replace (through PCRE2, which query/ may not include itself).
 *
 * A pattern matches only the whole input (as Prometheus' ^(?:re)$). Replacement templates
 * follow Go's regexp.Expand: $1, ${1}, $name and ${name} insert a group (empty when the group
 * did not take part or does not exist), $$ is a literal $, and a $ not followed by a valid
 * name is copied as is. In $name the name is the longest run of letters, digits and '_', so
 * "$1x" means the group named "1x" (which does not exist), not group 1 followed by "x".
 *
 * Memory: the compiled code and its scratch space live in the arena given to tsdb_regex_new
 * (PCRE2 allocates through a general context backed by that arena, free is a no-op). A regex
 * is used by one thread at a time (its match data is scratch).
 */
#include "tsdb/tsdb.h"

#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tsdb/base.h"

#define RX_MATCH_LIMIT    1000000
#define RX_DEPTH_LIMIT    10000
#define RX_HEAP_LIMIT_KIB 65536

struct tsdb_regex {
    pcre2_code *re;
    pcre2_match_context *mctx;
    pcre2_match_data *md;
    uint32_t n_groups; /* capture groups, not counting group 0 */
};

static void *rx_malloc(PCRE2_SIZE n, void *data)
{
    return tsdb_arena_alloc(data, n ? n : 1);
}

static void rx_free(void *p, void *data)
{
    (void)p;
    (void)data;
}

int tsdb_regex_new(tsdb_str pattern, tsdb_arena *a, tsdb_regex **out, tsdb_err *err)
{
    pcre2_general_context *gc = pcre2_general_context_create(rx_malloc, rx_free, a);
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    if (cc == NULL)
        return tsdb_errf(err, TSDB_ENOMEM, -1, "regex: out of memory");
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
                    PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C;
    int ec = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(pattern.len ? pattern.p : ""), pattern.len, opts,
                                   &ec, &eoff, cc);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
            strcpy((char *)msg, "invalid pattern");
        return tsdb_errf(err, TSDB_EINVAL, (int)eoff,
                         "error parsing regexp: %s at offset %d: `%.*s`", (const char *)msg,
                         (int)eoff, (int)(pattern.len > 100 ? 100 : pattern.len), pattern.p);
    }
    tsdb_regex *r = tsdb_arena_calloc(a, 1, sizeof *r);
    r->re = re;
    r->mctx = pcre2_match_context_create(gc);
    r->md = pcre2_match_data_create_from_pattern(re, gc);
    if (r->mctx == NULL || r->md == NULL)
        return tsdb_errf(err, TSDB_ENOMEM, -1, "regex: out of memory");
    pcre2_set_match_limit(r->mctx, RX_MATCH_LIMIT);
    pcre2_set_depth_limit(r->mctx, RX_DEPTH_LIMIT);
    pcre2_set_heap_limit(r->mctx, RX_HEAP_LIMIT_KIB);
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &r->n_groups);
    *out = r;
    return TSDB_OK;
}

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Appends group g of the last match (nothing if it did not participate). */
static void put_group(const tsdb_regex *re, tsdb_str in, long g, tsdb_buf *b)
{
    if (g < 0 || (uint32_t)g > re->n_groups)
        return;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    if (ov[2 * g] == PCRE2_UNSET)
        return;
    tsdb_buf_put(b, in.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

int tsdb_regex_replace(const tsdb_regex *re, tsdb_str input, tsdb_str replacement, tsdb_arena *a,
                       tsdb_str *out)
{
    int rc = pcre2_match(re->re, (PCRE2_SPTR)(input.len ? input.p : ""), input.len, 0, 0, re->md,
                         re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return TSDB_ELIMIT;
    tsdb_buf b;
    tsdb_buf_init(&b);
    const char *t = replacement.p;
    size_t n = replacement.len, i = 0;
    while (i < n) {
        if (t[i] != '$') {
            tsdb_buf_putc(&b, (unsigned char)t[i++]);
            continue;
        }
        if (i + 1 < n && t[i + 1] == '$') {
            tsdb_buf_putc(&b, '$');
            i += 2;
            continue;
        }
        size_t j = i + 1;
        int brace = j < n && t[j] == '{';
        if (brace)
            j++;
        size_t ns = j;
        while (j < n && is_name_char((unsigned char)t[j]))
            j++;
        size_t ne = j;
        if (ne == ns || (brace && (j >= n || t[j] != '}'))) {
            tsdb_buf_putc(&b, '$'); /* malformed: the $ is literal text */
            i++;
            continue;
        }
        if (brace)
            j++;
        /* A number names a group by index; anything else by name. */
        int numeric = 1;
        long num = 0;
        for (size_t k = ns; k < ne; k++) {
            if (t[k] < '0' || t[k] > '9') {
                numeric = 0;
                break;
            }
            if (num < 100000000)
                num = num * 10 + (t[k] - '0');
        }
        if (numeric) {
            if (num < 100000000)
                put_group(re, input, num, &b);
        } else {
            char name[256];
            size_t len = ne - ns < sizeof name - 1 ? ne - ns : sizeof name - 1;
            memcpy(name, t + ns, len);
            name[len] = '\0';
            int g = pcre2_substring_number_from_name(re->re, (PCRE2_SPTR)name);
            if (g > 0)
                put_group(re, input, g, &b);
        }
        i = j;
    }
    *out = tsdb_arena_str(a, (tsdb_str){b.p ? (const char *)b.p : "", b.len});
    tsdb_buf_fini(&b);
    return 1;
}
