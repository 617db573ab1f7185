/* tsdb/labels.h -- folder-internal helpers around label sets and matchers (tsdb/labels.c).
 *
 * The public label and matcher API is in tsdb/tsdb.h; this header adds the canonical byte
 * encoding of a label set and what the index needs to know about a compiled matcher to pick a
 * cheap plan.
 */
#ifndef TSDB_LABELS_H
#define TSDB_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

/* Canonical encoding of a label set: uvarint n, then per label uvarint len + name bytes,
 * uvarint len + value bytes. Appends to b. Two sorted label sets are equal exactly when their
 * encodings are equal. */
void tsdb__labels_encode(tsdb_buf *b, tsdb_labels l);
/* Decodes an encoding produced by tsdb__labels_encode. The strings are copied into a (and
 * NUL-terminated). Returns TSDB_ECORRUPT on truncated or trailing bytes or n > max_labels. */
int tsdb__labels_decode(const void *p, size_t len, tsdb_arena *a, tsdb_labels *out);
/* Value of label name inside an encoding without decoding it all; borrowed from p.
 * Returns 1 found, 0 absent, TSDB_ECORRUPT on bad bytes. */
int tsdb__labels_encoded_get(const void *p, size_t len, tsdb_str name, tsdb_str *value);

/* If every value m's regex (or equality) can match is one of a finite set of literals, points
 * *vals at them (borrowed from the matcher, unsorted, may include "") and returns 1; else 0.
 * Only meaningful for TSDB_MATCH_EQ and TSDB_MATCH_RE (the op is not taken into account). */
int tsdb__matcher_literals(const tsdb_matcher *m, const tsdb_str **vals, size_t *n);
/* A literal prefix every value matched by the (un-negated) pattern starts with (may be empty). */
tsdb_str tsdb__matcher_prefix(const tsdb_matcher *m);
/* Does m accept the empty string (i.e. series without the label)? */
int tsdb__matcher_matches_empty(const tsdb_matcher *m);
/* Tests: run regexes of m with the backtracking matcher only (normally the DFA matcher runs
 * first and the backtracking one only when the DFA cannot). */
void tsdb__matcher_no_dfa(tsdb_matcher *m);

#endif
