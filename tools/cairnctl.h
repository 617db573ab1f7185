/* tools/cairnctl.h -- the subcommands of bin/cairnctl, one file per family. */
#ifndef TOOLS_CAIRNCTL_H
#define TOOLS_CAIRNCTL_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

/* Each returns the process exit status: 0 ok, 1 failure, 2 usage error. */
int cairnctl_query(int argc, char **argv);       /* query instant|range|series|labels */
int cairnctl_bench_write(int argc, char **argv); /* bench write URL */
int cairnctl_tsdb(int argc, char **argv);        /* tsdb list|analyze|dump|verify|import */

/* Option parsing shared by the subcommands: accepts --name=value and --name value.
 * Returns 1 and sets *val when argv[*i] is --name (advancing *i past a separate value),
 * 0 when it is not, -1 when --name lacks its value (message printed). */
int cairnctl_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Parses a time: RFC 3339 ("2026-11-25T12:00:00Z", fractions and offsets allowed), Unix seconds
 * with fractions, or "now" / "now-1h". Returns 0 and ms, or -1. */
int cairnctl_parse_time(const char *s, int64_t *ms);
/* Parses a duration: PromQL units ("1h30m", "15s", "250ms") or float seconds. */
int cairnctl_parse_duration(const char *s, int64_t *ms);

#endif
