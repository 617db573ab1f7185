#!/usr/bin/env bash
# tests/run.sh -- runs test programs and sums their results.
#
# Each argument is a test executable (cmocka unit test, C integration test, fuzz-corpus replay,
# shell script) or the word "promql" (bin/promqltest over tests/promql/*.test and the upstream
# files in $PROMQL_UPSTREAM when that folder exists). Every program runs with a timeout; its
# output is kept in build/<mode>/test-logs and shown when it fails. Counts come from cmocka's
# "[  PASSED  ]"/"[  FAILED  ]" lines or a final "N passed, N failed" line; a program that prints
# neither counts as one test, judged by its exit status. Ends with "N passed, N failed".
set -u
B=${B:-build/debug}
BIN=${BIN:-bin}
TIMEOUT=${TEST_TIMEOUT:-600}
LOGS=$B/test-logs
mkdir -p "$LOGS"
export B BIN
passed=0 failed=0 progs_failed=()

count() { # $1 log, $2 exit status
  local log=$1 rc=$2 p f line
  p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | tail -1 | sed -E 's/.*\] ([0-9]+).*/\1/')
  f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | tail -1 | sed -E 's/.*\] ([0-9]+).*/\1/')
  if [ -n "$p$f" ]; then
    p=${p:-0} f=${f:-0}
  else
    line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
      p=$(echo "$line" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/')
      f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    elif [ "$rc" = 0 ]; then p=1 f=0; else p=0 f=1; fi
  fi
  # A crash or non-zero exit after "all passed" still fails the program.
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  passed=$((passed + p)) failed=$((failed + f))
  [ "$f" = 0 ]
}

run_one() { # name, command...
  local name=$1; shift
  local log=$LOGS/$(echo "$name" | tr '/' '_').log
  local t0=$SECONDS
  timeout --kill-after=10 "$TIMEOUT" "$@" >"$log" 2>&1
  local rc=$?
  [ $rc = 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$log"
  if count "$log" $rc; then
    printf '  ok    %-48s %3ds\n' "$name" $((SECONDS - t0))
  else
    printf '  FAIL  %-48s %3ds (exit %d)\n' "$name" $((SECONDS - t0)) $rc
    sed 's/^/        | /' "$log" | tail -80
    progs_failed+=("$name")
  fi
}

for t in "$@"; do
  case "$t" in
  promql)
    files=(tests/promql/*.test)
    run_one "promql/cairn" "$BIN/promqltest" "${files[@]}"
    up=${PROMQL_UPSTREAM:-../shared/promql-testdata}
    if [ -d "$up" ] && ls "$up"/*.test >/dev/null 2>&1; then
      run_one "promql/upstream" "$BIN/promqltest" "$up"/*.test
    else
      echo "  skip  promql/upstream (no $up)"
    fi
    ;;
  *regress_*)
    name=${t##*/regress_}
    run_one "fuzz-regress/$name" "$t" fuzz/corpus/"$name"
    ;;
  *.sh) run_one "${t#tests/}" bash "$t" ;;
  *) run_one "${t#"$B"/tests/}" "$t" ;;
  esac
done

if [ ${#progs_failed[@]} -gt 0 ]; then
  echo "failed programs: ${progs_failed[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
