/* query/lex.c -- the PromQL lexer.
 *
 * Mirrors the states of Prometheus 2.42's lexer so that the same inputs fail with the same
 * messages at the same positions:
 *   statements  operators, numbers/durations, strings, identifiers and keywords (keywords are
 *               case-insensitive; a word containing ':' is a metric identifier), ( ) { [ ] @ ,
 *   braces      after '{': label names (any word, no keywords), = != =~ !~, strings, ',', '}'
 *   brackets    after '[': a duration first; then the first letter or ':' is the subquery colon
 * A number is decimal, hexadecimal (0x...), with optional fraction and exponent; a word
 * "inf"/"nan" (any case) is a number too. A duration is digits followed by units from y w d h m
 * s ms (the parser validates the order). Comments run from '#' to the end of the line.
 *
 * Positions are byte offsets. Errors are reported at the start of the token being lexed (end
 * of input for unbalanced parentheses), with the text Prometheus uses.
 */
#include "query/lex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int is_alpha(int c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(int c)
{
    return is_alpha(c) || is_digit(c);
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Byte at i, or -1 past the end. */
static int at(const query_lexer *l, int i)
{
    return i < l->len ? (unsigned char)l->src[i] : -1;
}

static int accept(query_lexer *l, const char *set)
{
    int c = at(l, l->pos);
    if (c > 0 && strchr(set, c)) {
        l->pos++;
        return 1;
    }
    return 0;
}

static void accept_run(query_lexer *l, const char *set)
{
    while (accept(l, set))
        ;
}

/* Whether Go's unicode.IsPrint is false for code point r >= 0x80: the separators other than
 * U+0020, C1 controls, the common format characters, private use and non-characters
 * (unassigned code points, which Go escapes too, are not known here and print verbatim). */
static int go_unprintable(unsigned long r)
{
    static const unsigned long ranges[][2] = {
        {0x80, 0xa0},     {0xad, 0xad},       {0x600, 0x605},     {0x61c, 0x61c},
        {0x6dd, 0x6dd},   {0x70f, 0x70f},     {0x1680, 0x1680},   {0x180e, 0x180e},
        {0x2000, 0x200f}, {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},
        {0x3000, 0x3000}, {0xd800, 0xf8ff},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
        {0xfffe, 0xffff}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++)
        if (r >= ranges[k][0] && r <= ranges[k][1])
            return 1;
    return (r & 0xfffe) == 0xfffe;
}

/* Go's %q of a single rune, for error messages ('x', '\'', '\n', '\x01', '\u00a0' ...). */
static void quote_rune(const query_lexer *l, int i, char *out, size_t cap)
{
    int c = at(l, i);
    if (c < 0) {
        snprintf(out, cap, "'\xef\xbf\xbd'");
    } else if (c >= 0x80) {
        /* One UTF-8 sequence: verbatim when printable, as Go prints it, else \u or \U. */
        int n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (i + n > l->len)
            n = l->len - i;
        unsigned long r = n == 1 ? 0xfffd : (unsigned long)c & (0x7fu >> n);
        for (int k = 1; k < n; k++)
            r = r << 6 | ((unsigned char)l->src[i + k] & 0x3fu);
        if (n > 1 && go_unprintable(r))
            snprintf(out, cap, r < 0x10000 ? "'\\u%04lx'" : "'\\U%08lx'", r);
        else
            snprintf(out, cap, "'%.*s'", n, l->src + i);
    } else if (c == '\a' || c == '\b' || c == '\f' || c == '\v') {
        snprintf(out, cap, "'\\%c'", "abtnvfr"[c - '\a']);
    } else if (c == '\'') {
        snprintf(out, cap, "'\\''");
    } else if (c == '\\') {
        snprintf(out, cap, "'\\\\'");
    } else if (c == '\n') {
        snprintf(out, cap, "'\\n'");
    } else if (c == '\t') {
        snprintf(out, cap, "'\\t'");
    } else if (c == '\r') {
        snprintf(out, cap, "'\\r'");
    } else if (c < 0x20 || c == 0x7f) {
        snprintf(out, cap, "'\\x%02x'", c);
    } else {
        snprintf(out, cap, "'%c'", c);
    }
}

static query_token tok(query_lexer *l, enum query_tok t, int start)
{
    query_token k = {t, start, l->pos - start};
    l->last = k;
    if (t == QT_EOF)
        l->done = 1;
    return k;
}

static query_token errorf(query_lexer *l, int start, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static query_token errorf(query_lexer *l, int start, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof l->err, fmt, ap);
    va_end(ap);
    l->done = 1;
    query_token k = {QT_ERROR, start, 0};
    l->last = k;
    return k;
}

/* msg_prefix + Go-quoted rune at rune_at. */
static query_token error_rune(query_lexer *l, int start, const char *msg_prefix, int rune_at)
{
    char q[16];
    quote_rune(l, rune_at, q, sizeof q);
    return errorf(l, start, "%s%s", msg_prefix, q);
}

/* ---- Keywords ------------------------------------------------------------------------------ */

static const struct {
    const char *word;
    enum query_tok t;
} keywords[] = {
    {"and", QT_LAND},
    {"or", QT_LOR},
    {"unless", QT_LUNLESS},
    {"atan2", QT_ATAN2},
    {"sum", QT_SUM},
    {"avg", QT_AVG},
    {"count", QT_COUNT},
    {"min", QT_MIN},
    {"max", QT_MAX},
    {"group", QT_GROUP},
    {"stddev", QT_STDDEV},
    {"stdvar", QT_STDVAR},
    {"topk", QT_TOPK},
    {"bottomk", QT_BOTTOMK},
    {"count_values", QT_COUNT_VALUES},
    {"quantile", QT_QUANTILE},
    {"offset", QT_OFFSET},
    {"by", QT_BY},
    {"without", QT_WITHOUT},
    {"on", QT_ON},
    {"ignoring", QT_IGNORING},
    {"group_left", QT_GROUP_LEFT},
    {"group_right", QT_GROUP_RIGHT},
    {"bool", QT_BOOL},
    {"start", QT_START},
    {"end", QT_END},
    {"inf", QT_NUMBER},
    {"nan", QT_NUMBER},
};

enum query_tok query__keyword(const char *s, int len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        const char *w = keywords[i].word;
        if ((int)strlen(w) != len)
            continue;
        int j = 0;
        while (j < len) {
            int c = (unsigned char)s[j];
            if (c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            if (c != w[j])
                break;
            j++;
        }
        if (j == len)
            return keywords[i].t;
    }
    return QT_IDENT;
}

int query__tok_is_op(enum query_tok t)
{
    return (t >= QT_ADD && t <= QT_ATAN2) || t == QT_AT;
}

int query__tok_is_agg(enum query_tok t)
{
    return t >= QT_AGG_FIRST && t <= QT_AGG_LAST;
}

int query__tok_is_keyword(enum query_tok t)
{
    return t >= QT_OFFSET && t <= QT_BOOL;
}

/* ---- Strings --------------------------------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at i, or 0 if invalid. */
static int utf8_len(const query_lexer *l, int i)
{
    int c = at(l, i);
    int n, min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, cp = (unsigned)c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, cp = (unsigned)c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, cp = (unsigned)c & 0x07;
    } else {
        return 0;
    }
    for (int k = 1; k < n; k++) {
        int d = at(l, i + k);
        if (d < 0x80 || d > 0xbf)
            return 0;
        cp = cp << 6 | ((unsigned)d & 0x3f);
    }
    if (cp < (unsigned)min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
        return 0;
    return n;
}

/* Go's %#U of the rune at i: "U+0071 'q'" (the rune itself only when printable). */
static void go_sharp_u(const query_lexer *l, int i, char *out, size_t cap)
{
    int c = at(l, i);
    int ul = utf8_len(l, i);
    unsigned cp = (unsigned)c;
    if (c < 0 || ul == 0) {
        snprintf(out, cap, "U+FFFD '\xef\xbf\xbd'");
        return;
    }
    if (ul > 1) {
        cp = (unsigned)c & (ul == 2 ? 0x1f : ul == 3 ? 0x0f : 0x07);
        for (int k = 1; k < ul; k++)
            cp = cp << 6 | ((unsigned)at(l, i + k) & 0x3f);
        snprintf(out, cap, "U+%04X '%.*s'", cp, ul, l->src + i);
    } else if (c >= 0x20 && c < 0x7f) {
        snprintf(out, cap, "U+%04X '%c'", cp, c);
    } else {
        snprintf(out, cap, "U+%04X", cp);
    }
}

/* Checks an escape sequence after a backslash at l->pos; advances past it. Returns 0 or sets
 * an error (returns -1). */
static int lex_escape(query_lexer *l, int start, int quote)
{
    int c = at(l, l->pos);
    int n = 0, base = 0;
    unsigned max = 0;
    switch (c) {
    case 'a':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
    case '\\':
        l->pos++;
        return 0;
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        n = 3, base = 8, max = 255;
        break;
    case 'x':
        l->pos++;
        n = 2, base = 16, max = 255;
        break;
    case 'u':
        l->pos++;
        n = 4, base = 16, max = 0x10ffff;
        break;
    case 'U':
        l->pos++;
        n = 8, base = 16, max = 0x10ffff;
        break;
    case -1:
        errorf(l, start, "%s", "escape sequence not terminated");
        return -1;
    default:
        if (c == quote) {
            l->pos++;
            return 0;
        }
        {
            char msg[40];
            go_sharp_u(l, l->pos, msg, sizeof msg);
            errorf(l, start, "unknown escape sequence %s", msg);
        }
        return -1;
    }
    unsigned x = 0;
    while (n > 0) {
        c = at(l, l->pos);
        int d = c < 0                    ? 99
                : is_digit(c)            ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : 99;
        if (d >= base) {
            if (c < 0) {
                errorf(l, start, "%s", "escape sequence not terminated");
                return -1;
            }
            char msg[40];
            go_sharp_u(l, l->pos, msg, sizeof msg);
            errorf(l, start, "illegal character %s in escape sequence", msg);
            return -1;
        }
        x = x * (unsigned)base + (unsigned)d;
        l->pos++;
        n--;
    }
    if (x > max || (x >= 0xd800 && x < 0xe000)) {
        errorf(l, start, "%s", "escape sequence is an invalid Unicode code point");
        return -1;
    }
    return 0;
}

static query_token lex_string(query_lexer *l, int start, int quote)
{
    l->pos = start + 1;
    for (;;) {
        int c = at(l, l->pos);
        if (c < 0 || c == '\n')
            return errorf(l, start, "%s", "unterminated quoted string");
        if (c == quote) {
            l->pos++;
            return tok(l, QT_STRING, start);
        }
        if (c == '\\') {
            l->pos++;
            if (lex_escape(l, start, quote) < 0)
                return l->last;
            continue;
        }
        int n = utf8_len(l, l->pos);
        if (n == 0)
            return errorf(l, start, "%s", "invalid UTF-8 rune");
        l->pos += n;
    }
}

static query_token lex_raw_string(query_lexer *l, int start)
{
    l->pos = start + 1;
    for (;;) {
        int c = at(l, l->pos);
        if (c < 0)
            return errorf(l, start, "%s", "unterminated raw string");
        if (c == '`') {
            l->pos++;
            return tok(l, QT_STRING, start);
        }
        int n = utf8_len(l, l->pos);
        if (n == 0)
            return errorf(l, start, "%s", "invalid UTF-8 rune");
        l->pos += n;
    }
}

/* ---- Numbers and durations --------------------------------------------------------------- */

/* Scans a number at l->pos; 1 if it is not followed by an alphanumeric character. */
static int scan_number(query_lexer *l)
{
    const char *digits = "0123456789";
    if (accept(l, "0") && accept(l, "xX"))
        digits = "0123456789abcdefABCDEF";
    accept_run(l, digits);
    if (accept(l, "."))
        accept_run(l, digits);
    if (accept(l, "eE")) {
        accept(l, "+-");
        accept_run(l, "0123456789");
    }
    return !is_alnum(at(l, l->pos));
}

/* After the digits of a duration: units and further digit groups. On failure the offending
 * character is consumed too (it is part of the error message), as Prometheus does. */
static int accept_remaining_duration(query_lexer *l)
{
    if (!accept(l, "smhdwy"))
        return 0;
    accept(l, "s");
    while (accept(l, "0123456789")) {
        accept_run(l, "0123456789");
        if (!accept(l, "smhdw"))
            return 0;
        accept(l, "s");
    }
    if (is_alnum(at(l, l->pos))) {
        l->pos++;
        return 0;
    }
    return 1;
}

static query_token lex_number_or_duration(query_lexer *l, int start)
{
    if (scan_number(l))
        return tok(l, QT_NUMBER, start);
    if (accept_remaining_duration(l))
        return tok(l, QT_DURATION, start);
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", l->pos - start > 40 ? 40 : l->pos - start, l->src + start);
    return errorf(l, start, "bad number or duration syntax: \"%s\"", buf);
}

static query_token lex_duration(query_lexer *l, int start)
{
    if (scan_number(l))
        return errorf(l, start, "%s", "missing unit character in duration");
    if (accept_remaining_duration(l))
        return tok(l, QT_DURATION, start);
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", l->pos - start > 40 ? 40 : l->pos - start, l->src + start);
    return errorf(l, start, "bad duration syntax: \"%s\"", buf);
}

/* ---- The state machine ----------------------------------------------------------------- */

void query__lex_init(query_lexer *l, const char *src, int len)
{
    memset(l, 0, sizeof *l);
    l->src = src;
    l->len = len;
}

static void skip_comment(query_lexer *l)
{
    while (l->pos < l->len && l->src[l->pos] != '\n')
        l->pos++;
}

static query_token lex_inside_braces(query_lexer *l)
{
    for (;;) {
        int start = l->pos;
        int c = at(l, l->pos);
        if (c == '#') {
            skip_comment(l);
            continue;
        }
        if (c < 0)
            return errorf(l, start, "%s", "unexpected end of input inside braces");
        l->pos++;
        if (is_space(c))
            continue;
        if (is_alpha(c)) {
            while (is_alnum(at(l, l->pos)))
                l->pos++;
            return tok(l, QT_IDENT, start);
        }
        switch (c) {
        case ',':
            return tok(l, QT_COMMA, start);
        case '"':
        case '\'':
            return lex_string(l, start, c);
        case '`':
            return lex_raw_string(l, start);
        case '=':
            if (at(l, l->pos) == '~') {
                l->pos++;
                return tok(l, QT_EQL_REGEX, start);
            }
            return tok(l, QT_ASSIGN, start);
        case '!':
            c = at(l, l->pos);
            if (c == '~' || c == '=') {
                l->pos++;
                return tok(l, c == '~' ? QT_NEQ_REGEX : QT_NEQ, start);
            }
            return error_rune(l, start, "unexpected character after '!' inside braces: ", l->pos);
        case '{':
            return error_rune(l, start, "unexpected left brace ", start);
        case '}':
            l->brace_open = 0;
            return tok(l, QT_RBRACE, start);
        default:
            return error_rune(l, start, "unexpected character inside braces: ", start);
        }
    }
}

query_token query__lex_next(query_lexer *l)
{
    if (l->done)
        return l->last;
    if (l->brace_open)
        return lex_inside_braces(l);
    if (l->after_bracket) {
        l->after_bracket = 0;
        while (is_space(at(l, l->pos)))
            l->pos++;
        return lex_duration(l, l->pos);
    }
    for (;;) {
        int start = l->pos;
        int c = at(l, l->pos);
        if (c == '#') {
            skip_comment(l);
            continue;
        }
        if (c < 0) {
            if (l->paren_depth != 0)
                return errorf(l, start, "%s", "unclosed left parenthesis");
            if (l->bracket_open)
                return errorf(l, start, "%s", "unclosed left bracket");
            return tok(l, QT_EOF, start);
        }
        l->pos++;
        if (is_space(c))
            continue;
        if (is_digit(c) || (c == '.' && is_digit(at(l, l->pos)))) {
            l->pos = start;
            return lex_number_or_duration(l, start);
        }
        if (is_alpha(c) || c == ':') {
            if (l->bracket_open) {
                if (l->got_colon)
                    return error_rune(l, start, "unexpected colon ", start);
                l->got_colon = 1;
                return tok(l, QT_COLON, start);
            }
            int colon = c == ':';
            while (is_alnum(at(l, l->pos)) || at(l, l->pos) == ':') {
                colon |= at(l, l->pos) == ':';
                l->pos++;
            }
            enum query_tok t = query__keyword(l->src + start, l->pos - start);
            if (t == QT_IDENT && colon)
                t = QT_METRIC_IDENT;
            return tok(l, t, start);
        }
        switch (c) {
        case ',':
            return tok(l, QT_COMMA, start);
        case '*':
            return tok(l, QT_MUL, start);
        case '/':
            return tok(l, QT_DIV, start);
        case '%':
            return tok(l, QT_MOD, start);
        case '+':
            return tok(l, QT_ADD, start);
        case '-':
            return tok(l, QT_SUB, start);
        case '^':
            return tok(l, QT_POW, start);
        case '@':
            return tok(l, QT_AT, start);
        case '=':
            if (at(l, l->pos) == '=') {
                l->pos++;
                return tok(l, QT_EQLC, start);
            }
            if (at(l, l->pos) == '~')
                return error_rune(l, start, "unexpected character after '=': ", l->pos);
            return tok(l, QT_ASSIGN, start);
        case '!':
            if (at(l, l->pos) == '=') {
                l->pos++;
                return tok(l, QT_NEQ, start);
            }
            return error_rune(l, start, "unexpected character after '!': ", l->pos);
        case '<':
            if (at(l, l->pos) == '=') {
                l->pos++;
                return tok(l, QT_LTE, start);
            }
            return tok(l, QT_LSS, start);
        case '>':
            if (at(l, l->pos) == '=') {
                l->pos++;
                return tok(l, QT_GTE, start);
            }
            return tok(l, QT_GTR, start);
        case '"':
        case '\'':
            return lex_string(l, start, c);
        case '`':
            return lex_raw_string(l, start);
        case '(':
            l->paren_depth++;
            return tok(l, QT_LPAREN, start);
        case ')':
            l->paren_depth--;
            if (l->paren_depth < 0)
                return error_rune(l, start + 1, "unexpected right parenthesis ", start);
            return tok(l, QT_RPAREN, start);
        case '{':
            l->brace_open = 1;
            return tok(l, QT_LBRACE, start);
        case '[':
            if (l->bracket_open)
                return error_rune(l, start, "unexpected left bracket ", start);
            l->got_colon = 0;
            l->bracket_open = 1;
            l->after_bracket = 1;
            return tok(l, QT_LBRACKET, start);
        case ']':
            if (!l->bracket_open)
                return error_rune(l, start, "unexpected right bracket ", start);
            l->bracket_open = 0;
            return tok(l, QT_RBRACKET, start);
        default:
            return error_rune(l, start, "unexpected character: ", start);
        }
    }
}

/* ---- Descriptions for messages -------------------------------------------------------------- */

void query__tok_desc(const query_lexer *l, query_token t, char *out, size_t cap)
{
    const char *text = l->src + t.pos;
    switch (t.type) {
    case QT_EOF:
        snprintf(out, cap, "end of input");
        return;
    case QT_ERROR:
        snprintf(out, cap, "%s", l->err);
        return;
    case QT_IDENT:
        snprintf(out, cap, "identifier \"%.*s\"", t.len, text);
        return;
    case QT_METRIC_IDENT:
        snprintf(out, cap, "metric identifier \"%.*s\"", t.len, text);
        return;
    case QT_NUMBER:
    case QT_DURATION:
    case QT_STRING: {
        /* `number "2"`; strings are shown Go-quoted with their quotes, cut at 10 bytes. */
        const char *kind = t.type == QT_NUMBER     ? "number"
                           : t.type == QT_DURATION ? "duration"
                                                   : "string";
        char q[64];
        size_t o = 0;
        int n = t.len > 10 ? 10 : t.len;
        for (int i = 0; i < n && o + 5 < sizeof q; i++) {
            char c = text[i];
            if (c == '"' || c == '\\')
                q[o++] = '\\';
            q[o++] = c;
        }
        q[o] = 0;
        snprintf(out, cap, "%s \"%s\"%s", kind, q, t.len > 10 ? "..." : "");
        return;
    }
    default:
        break;
    }
    if (query__tok_is_op(t.type) && t.type != QT_AT)
        snprintf(out, cap, "<op:%.*s>", t.len, text);
    else if (t.type == QT_AT)
        /* Prometheus 2.42 has no name for the @ token type and prints its number. */
        snprintf(out, cap, "\"<Item 57385>\" <op:@>");
    else if (query__tok_is_agg(t.type))
        snprintf(out, cap, "<aggr:%.*s>", t.len, text);
    else if (query__tok_is_keyword(t.type))
        snprintf(out, cap, "<%.*s>", t.len, text);
    else
        snprintf(out, cap, "\"%.*s\"", t.len, text);
}
