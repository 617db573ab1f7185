/* Fuzz target: label-set validation, hashing, formatting, the canonical encoding, and matcher
 * compilation + matching on arbitrary bytes.
 *
 * Input: line 1 is a matcher pattern (byte 0 picks the operator), the other lines are values
 * to match and also "name=value" pairs forming a label set. Invariants checked (abort on
 * violation): a negated matcher answers the opposite of its positive twin, the encoding round
 * trips, and the hash and order of a set equal those of its decoded copy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "tsdb/base.h"
#include "tsdb/labels.h"
#include "tsdb/tsdb.h"

#define MAX_LINES 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    tsdb_str lines[MAX_LINES];
    size_t n_lines = 0;
    while (n_lines < MAX_LINES) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        lines[n_lines++] = (tsdb_str){p, len};
        if (!nl)
            break;
        p += len + 1;
        n -= len + 1;
    }

    /* Matchers: compile the pattern under the chosen op and its twin. */
    enum tsdb_match_op op = (enum tsdb_match_op)(data[0] % 4);
    enum tsdb_match_op twin = (enum tsdb_match_op)(op ^ 1); /* EQ<->NE, RE<->NRE */
    tsdb_matcher *m = NULL, *mt = NULL;
    tsdb_err err;
    int rc = tsdb_matcher_new(op, TSDB_STR("l"), lines[0], &a, &m, &err);
    int rc2 = tsdb_matcher_new(twin, TSDB_STR("l"), lines[0], &a, &mt, &err);
    if ((rc == 0) != (rc2 == 0))
        abort();
    if (rc == 0) {
        if (tsdb_matcher_matches(m, (tsdb_str){"", 0}) != tsdb__matcher_matches_empty(m))
            abort();
        for (size_t i = 0; i < n_lines; i++) {
            if (tsdb_matcher_matches(m, lines[i]) == tsdb_matcher_matches(mt, lines[i]))
                abort();
        }
        const tsdb_str *lits;
        size_t n_lits;
        if (tsdb__matcher_literals(m, &lits, &n_lits) &&
            (op == TSDB_MATCH_EQ || op == TSDB_MATCH_RE)) {
            for (size_t i = 0; i < n_lits; i++) {
                if (!tsdb_matcher_matches(m, lits[i]))
                    abort();
            }
        }
        tsdb_str prefix = tsdb__matcher_prefix(m);
        for (size_t i = 0; i < n_lines && (op == TSDB_MATCH_EQ || op == TSDB_MATCH_RE); i++) {
            tsdb_label one = {TSDB_STR("a"), lines[i]};
            if (lines[i].len == 0 || tsdb_labels_validate((tsdb_labels){&one, 1}, 0, NULL) != 0)
                continue; /* the prefix is about valid UTF-8 values, as stored ones are */
            if (tsdb_matcher_matches(m, lines[i]) &&
                (lines[i].len < prefix.len || memcmp(lines[i].p, prefix.p, prefix.len) != 0))
                abort();
        }
    } else if (op == TSDB_MATCH_EQ || op == TSDB_MATCH_NE) {
        abort(); /* equality never fails to compile */
    }

    /* Label set from name=value lines. */
    tsdb_label *v = tsdb_arena_alloc(&a, MAX_LINES * sizeof *v);
    size_t nl = 0;
    for (size_t i = 1; i < n_lines; i++) {
        const char *eq = memchr(lines[i].p, '=', lines[i].len);
        if (!eq)
            continue;
        v[nl].name = (tsdb_str){lines[i].p, (size_t)(eq - lines[i].p)};
        v[nl].value = (tsdb_str){eq + 1, lines[i].len - (size_t)(eq - lines[i].p) - 1};
        nl++;
    }
    tsdb_labels_sort(v, nl);
    tsdb_labels l = {v, nl};
    (void)tsdb_labels_validate(l, data[0] & 4, &err);
    (void)tsdb_labels_format(l, &a);
    tsdb_buf b;
    tsdb_buf_init(&b);
    tsdb__labels_encode(&b, l);
    tsdb_labels back;
    if (tsdb__labels_decode(b.p, b.len, &a, &back) != 0 || !tsdb_labels_equal(l, back) ||
        tsdb_labels_cmp(l, back) != 0 || tsdb_labels_hash(l) != tsdb_labels_hash(back))
        abort();
    /* Decoding arbitrary bytes must fail cleanly or succeed, never crash (it logs on failure,
     * so only some inputs take this path). */
    if (data[0] & 8)
        (void)tsdb__labels_decode(data + 1, size - 1, &a, &back);
    tsdb_buf_fini(&b);
    if (m != NULL && nl > 0) {
        const tsdb_matcher *ms[1] = {m};
        (void)tsdb_matchers_match(ms, 1, l);
    }
    tsdb_arena_fini(&a);
    return 0;
}
