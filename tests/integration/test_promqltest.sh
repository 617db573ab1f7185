#!/usr/bin/env bash
# tests/integration/test_promqltest.sh -- the PromQL script runner itself: a passing script
# passes, and wrong expectations, unexpected successes, bad loads and parse errors each fail
# with a report, a "N passed, N failed" summary and exit status 1.
set -u
BIN=${BIN:-bin}
T=$(mktemp -d /tmp/cairn-promqltest-XXXXXX)
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
check() { # name, condition...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}

cat >"$T/good.test" <<'T'
load 1m
	m{a="1"} 0+1x10
	m{a="2"} 5 _ stale 7

eval instant at 2m m
	m{a="1"} 2

eval instant at 3m sum(m)
	{} 10

eval_fail instant at 1m -{__name__=~"m|n"} + on() group_left m

eval instant at 1m 2 * 3
	6
T
out=$("$BIN/promqltest" "$T/good.test" 2>&1); rc=$?
check "good script exits 0" test "$rc" = 0
check "good script summary" grep -q '^4 passed, 0 failed$' <<<"$out"

cat >"$T/bad.test" <<'T'
load 1m
	m{a="1"} 0+1x10

eval instant at 5m m
	m{a="1"} 6

eval instant at 5m m
	m{a="2"} 5

eval_fail instant at 5m m

eval instant at 5m m +
	1

load 1m
	m{a="3" 1 2

eval instant at 5m m
	m{a="1"} 5
T
out=$("$BIN/promqltest" "$T/bad.test" 2>&1); rc=$?
check "bad script exits 1" test "$rc" = 1
check "wrong value reported" grep -q 'expected 6, got 5' <<<"$out"
check "unexpected series reported" grep -q 'unexpected series' <<<"$out"
check "unexpected success reported" grep -q 'expected an error, query succeeded' <<<"$out"
check "parse error reported" grep -q 'parse error' <<<"$out"
check "bad load reported" grep -q 'load failed' <<<"$out"
check "bad script summary" grep -q '^1 passed, 5 failed$' <<<"$out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
