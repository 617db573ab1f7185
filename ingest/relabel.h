/* ingest/relabel.h -- Prometheus relabeling (folder-internal).
 *
 * A rule list rewrites a label set in order; a keep/drop rule can drop it altogether. Rules come
 * from relabel_configs (targets, before a scrape) and metric_relabel_configs (every scraped
 * series). Defaults are Prometheus': action replace, separator ";", regex "(.*)" (anchored at
 * both ends), replacement "$1".
 */
#ifndef INGEST_RELABEL_H
#define INGEST_RELABEL_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"

enum ingest_relabel_action {
    INGEST_RELABEL_REPLACE,
    INGEST_RELABEL_KEEP,
    INGEST_RELABEL_DROP,
    INGEST_RELABEL_KEEPEQUAL,
    INGEST_RELABEL_DROPEQUAL,
    INGEST_RELABEL_HASHMOD,
    INGEST_RELABEL_LABELMAP,
    INGEST_RELABEL_LABELDROP,
    INGEST_RELABEL_LABELKEEP,
    INGEST_RELABEL_LOWERCASE,
    INGEST_RELABEL_UPPERCASE,
};

/* One rule. Strings are NUL-terminated and live in the arena given to ingest__relabel_compile
 * (the config's arena); the rule is immutable after compilation and may be shared by threads. */
typedef struct ingest_relabel_rule {
    enum ingest_relabel_action action;
    tsdb_str *source; /* source_labels */
    size_t n_source;
    tsdb_str separator;   /* default ";" */
    tsdb_str target;      /* target_label */
    tsdb_str regex;       /* the pattern as written; default "(.*)" */
    tsdb_str replacement; /* default "$1" */
    uint64_t modulus;     /* hashmod */
    int line;             /* where the rule starts in its file, for messages */
    tsdb_regex *re;       /* compiled, anchored; set by ingest__relabel_compile */
} ingest_relabel_rule;

/* A label set being rewritten: unsorted, names unique, values never empty (setting an empty
 * value removes the label). Storage comes from the arena passed with each call. */
typedef struct ingest_lb {
    tsdb_label *v;
    size_t n, cap;
} ingest_lb;

/* Fills unset fields with defaults, validates the rule as Prometheus does and compiles its regex
 * into a (lives as long as a). Returns 0 or TSDB_EINVAL with a message. */
int ingest__relabel_compile(ingest_relabel_rule *r, tsdb_arena *a, tsdb_err *err);
/* Parses an action name ("replace", "labelmap", ...); -1 if unknown. */
int ingest__relabel_action(tsdb_str name);
const char *ingest__relabel_action_name(enum ingest_relabel_action act);

tsdb_str ingest__lb_get(const ingest_lb *lb, tsdb_str name);
/* Sets name to value (copied into a), or removes it when value is empty. */
void ingest__lb_set(ingest_lb *lb, tsdb_str name, tsdb_str value, tsdb_arena *a);
void ingest__lb_del(ingest_lb *lb, tsdb_str name);

/* Applies rules[0..n) to lb. Returns 1 if the label set is kept, 0 if a rule dropped it (or it
 * ended up empty). */
int ingest__relabel(const ingest_relabel_rule *rules, size_t n, ingest_lb *lb, tsdb_arena *a);

#endif
