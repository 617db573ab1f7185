#!/usr/bin/env bash
# tools/check_deps.sh -- enforces the include rules between folders (DESIGN.md 2.3).
# Each folder may include only the project headers and third-party headers listed for it here;
# a third-party storage or protocol header may appear in exactly one named file.
set -u
cd "$(dirname "$0")/.." || exit 1
bad=0
fail() { echo "check-deps: $1"; bad=1; }

proj_includes() { grep -hoE '^#include "[^"]+"' "$@" 2>/dev/null | sed -E 's/#include "([^"]+)"/\1/' | sort -u; }

check_folder() { # folder, allowed-regex for project headers
  local dir=$1 allow=$2 f inc
  for f in "$dir"/*.c "$dir"/*.h; do
    [ -e "$f" ] || continue
    for inc in $(proj_includes "$f"); do
      case "$inc" in */* | cairn.h) ;; *) fail "$f includes \"$inc\": project includes must be folder-qualified" ;; esac
      if ! [[ "$inc" =~ $allow ]]; then fail "$f includes \"$inc\", which $dir/ may not"; fi
    done
  done
}

check_folder tsdb '^tsdb/'
check_folder query '^(tsdb/base\.h|tsdb/tsdb\.h|query/.*)$'
check_folder ingest '^(tsdb/base\.h|tsdb/tsdb\.h|ingest/.*|ingest/prompb.*\.pb-c\.h)$'
check_folder api '^(tsdb/base\.h|tsdb/tsdb\.h|query/query\.h|ingest/ingest\.h|api/.*|cairn\.h)$'
check_folder tools '^(tools/.*|tsdb/.*|ingest/ingest\.h|query/query\.h|cairn\.h)$'

# Third-party headers: each in its own file(s) only.
only_in() { # header-regex, allowed files...
  local re=$1; shift
  local f
  for f in $(grep -lE "^#include <($re)>" tsdb/*.[ch] query/*.[ch] ingest/*.[ch] api/*.[ch] tools/*.[ch] 2>/dev/null); do
    local ok=0 a
    for a in "$@"; do [ "$f" = "$a" ] && ok=1; done
    [ $ok = 1 ] || fail "$f includes <$re>, allowed only in: $*"
  done
}
only_in 'lmdb\.h' tsdb/index.c
only_in 'zstd\.h' tsdb/wal.c tsdb/block.c
only_in 'pcre2\.h' tsdb/labels.c tsdb/regex.c
only_in 'snappy-c\.h' ingest/remote_write.c ingest/remote_read.c
only_in 'protobuf-c/protobuf-c\.h' ingest/remote_write.c ingest/remote_read.c
only_in 'curl/curl\.h' ingest/scrape.c tools/cairnctl.c tools/bench_write.c tools/cairnctl_query.c
only_in 'yaml\.h' ingest/config.c
only_in 'microhttpd\.h' api/server.c
only_in 'zlib\.h' api/server.c
# Generated protobuf headers only where the codec lives.
for f in $(grep -lE '^#include ".*\.pb-c\.h"' tsdb/*.[ch] query/*.[ch] ingest/*.[ch] api/*.[ch] tools/*.[ch] 2>/dev/null); do
  [ "$f" = ingest/remote_write.c ] || [ "$f" = ingest/remote_read.c ] || fail "$f includes generated protobuf code"
done
# query/ and ingest/ include no third-party headers but their own listed ones.
for f in query/*.[ch]; do
  [ -e "$f" ] || continue
  if grep -qE '^#include <(lmdb|zstd|pcre2|snappy-c|microhttpd|curl/|yaml|cjson/)' "$f"; then fail "$f includes a third-party header"; fi
done

if [ $bad = 0 ]; then echo "check-deps: ok"; fi
exit $bad
