/* Fuzz target: the PromQL parser and printer.
 *
 * Any input must parse or fail cleanly. When it parses, printing it must give text that parses
 * again, prints identically, and has the same static type (abort otherwise). Error results
 * must carry a message and a position inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "tsdb/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    query_expr *e = NULL, *e2 = NULL;
    tsdb_err err;
    memset(&err, 0, sizeof err);
    int rc = query_parse(&a, (const char *)data, size, &e, &err);
    if (rc < 0) {
        if (rc != TSDB_EPARSE || err.msg[0] == 0 || err.pos < 0 || (size_t)err.pos > size)
            abort();
        tsdb_arena_fini(&a);
        return 0;
    }
    tsdb_str s1, s2;
    if (query_print(e, &a, &s1) < 0)
        abort();
    if (query_parse(&a, s1.p, s1.len, &e2, &err) < 0)
        abort(); /* the printed form of a valid query must parse */
    if (query_print(e2, &a, &s2) < 0)
        abort();
    if (s1.len != s2.len || memcmp(s1.p, s2.p, s1.len) != 0)
        abort(); /* printing is a fixed point after one round */
    if (query_expr_type(e) != query_expr_type(e2))
        abort();

    /* The selector parser must never crash either. */
    const tsdb_matcher **ms;
    size_t n;
    (void)query_parse_selector(&a, (const char *)data, size, &ms, &n, &err);
    int64_t ms_dur;
    (void)query_parse_duration((const char *)data, size, &ms_dur);
    tsdb_arena_fini(&a);
    return 0;
}
