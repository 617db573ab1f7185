/* query/lex.h -- the PromQL lexer (internal to query/).
 *
 * A pull lexer with the same context rules as Prometheus 2.42's promql/parser/lex.go: inside
 * {...} every word is a label name and only matcher operators, strings and commas are valid;
 * inside [...] a duration must follow '[' and the first letter or ':' becomes the subquery
 * colon; parentheses are counted so an unbalanced ')' or a missing one is a lexer error. The
 * lexer borrows the input; tokens are (type, byte offset, length) into it.
 */
#ifndef QUERY_LEX_H
#define QUERY_LEX_H

#include <stddef.h>

enum query_tok {
    QT_EOF,
    QT_ERROR,        /* message in the lexer's err field, position = token pos */
    QT_IDENT,        /* [a-zA-Z_][a-zA-Z0-9_]* */
    QT_METRIC_IDENT, /* identifier containing ':' */
    QT_NUMBER,
    QT_DURATION,
    QT_STRING, /* text includes the quotes */
    QT_LPAREN,
    QT_RPAREN,
    QT_LBRACE,
    QT_RBRACE,
    QT_LBRACKET,
    QT_RBRACKET,
    QT_COMMA,
    QT_ASSIGN, /* = */
    QT_COLON,
    QT_AT,
    /* operators */
    QT_ADD,
    QT_SUB,
    QT_MUL,
    QT_DIV,
    QT_MOD,
    QT_POW,
    QT_EQLC, /* == */
    QT_NEQ,  /* != */
    QT_LSS,
    QT_GTR,
    QT_LTE,
    QT_GTE,
    QT_EQL_REGEX, /* =~ */
    QT_NEQ_REGEX, /* !~ */
    QT_LAND,
    QT_LOR,
    QT_LUNLESS,
    QT_ATAN2,
    /* aggregators */
    QT_AGG_FIRST,
    QT_SUM = QT_AGG_FIRST,
    QT_AVG,
    QT_MIN,
    QT_MAX,
    QT_COUNT,
    QT_GROUP,
    QT_STDDEV,
    QT_STDVAR,
    QT_TOPK,
    QT_BOTTOMK,
    QT_QUANTILE,
    QT_COUNT_VALUES,
    QT_AGG_LAST = QT_COUNT_VALUES,
    /* keywords */
    QT_OFFSET,
    QT_BY,
    QT_WITHOUT,
    QT_ON,
    QT_IGNORING,
    QT_GROUP_LEFT,
    QT_GROUP_RIGHT,
    QT_BOOL,
    QT_START,
    QT_END,
};

typedef struct query_token {
    enum query_tok type;
    int pos; /* byte offset of the first byte */
    int len; /* bytes */
} query_token;

typedef struct query_lexer {
    const char *src;
    int len;
    int pos;
    int paren_depth;
    int brace_open;
    int bracket_open;
    int got_colon;
    int after_bracket; /* a duration must come next (just after '[') */
    int done;          /* EOF or an error was returned; keep returning it */
    query_token last;
    char err[200]; /* message of the last QT_ERROR */
} query_lexer;

/* Prepares l over src[0..len); len must be < INT_MAX. */
void query__lex_init(query_lexer *l, const char *src, int len);
/* Next token, skipping spaces and comments. After QT_EOF or QT_ERROR it keeps returning it. */
query_token query__lex_next(query_lexer *l);
/* Describes a token as Prometheus does in "unexpected ..." messages (e.g. `identifier "foo"`,
 * `<op:*>`, `"("`, `end of input`), into out[0..cap). */
void query__tok_desc(const query_lexer *l, query_token t, char *out, size_t cap);
int query__tok_is_op(enum query_tok t);
int query__tok_is_agg(enum query_tok t);
int query__tok_is_keyword(enum query_tok t);
/* Keyword or aggregator token for a word (case-insensitive), or QT_IDENT. inf/nan -> QT_NUMBER. */
enum query_tok query__keyword(const char *s, int len);

#endif
