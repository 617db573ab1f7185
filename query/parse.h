/* query/parse.h -- helpers shared by the PromQL front end (internal to query/).
 *
 * The parser (parse.c) builds the AST, the checker (check.c) types it, the printer (print.c)
 * writes it back. Error messages read like Prometheus 2.42's: "L:C: parse error: <message>"
 * where L is the 1-based line and C the 1-based column (byte based) of the offending position.
 */
#ifndef QUERY_PARSE_H
#define QUERY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "query/ast.h"
#include "tsdb/base.h"

/* Fills err (if non-NULL) with TSDB_EPARSE, pos and "L:C: parse error: <fmt...>" computed
 * against src[0..len). Returns TSDB_EPARSE. */
int query__parse_errf(tsdb_err *err, const char *src, int len, int pos, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Type-checks a parsed tree as Prometheus' checkAST does; the first error wins. Also sets
 * the vector matching of binary expressions (cleared unless both sides are instant vectors,
 * many-to-many for set operators). 0 or TSDB_EPARSE. */
int query__check(query_expr *e, const char *src, int len, tsdb_err *err);

/* Parses a PromQL number literal as Prometheus does (Go ParseInt base 0, then ParseFloat);
 * on error writes a message to msg and returns -1. */
int query__parse_number(const char *s, size_t len, double *out, char *msg, size_t msg_cap);

/* Parses a duration as Prometheus' model.ParseDuration ("1h30m", "0"); on error writes a
 * message to msg and returns -1. */
int query__parse_duration_msg(const char *s, size_t len, int64_t *ms, char *msg, size_t msg_cap);

/* Unquotes a lexed string token (with its quotes, already validated by the lexer) into the
 * arena (NUL-terminated). */
tsdb_str query__unquote(tsdb_arena *a, const char *s, size_t len);

/* Appends s to b Go-quoted (strconv.Quote: "a\"b\n", printable UTF-8 kept). */
struct tsdb_buf;
void query__quote(struct tsdb_buf *b, tsdb_str s);

#endif
