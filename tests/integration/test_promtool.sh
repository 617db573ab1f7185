#!/usr/bin/env bash
# tests/integration/test_promtool.sh -- Prometheus' own CLI against Cairn.
#
# Starts bin/cairn on a free 127.0.0.1 port with a temporary directory, loads a small data set with
# `cairnctl bench write` (remote write), then runs `promtool query instant|range|series|labels`
# (which POST forms, retry with GET on 405, and parse the JSON like any Prometheus client) and
# checks their answers against the data and Cairn's own API. Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
CAIRNCTL=$(cd "$(dirname "$BIN/cairnctl")" && pwd)/cairnctl
PROMTOOL=${PROMTOOL:-/usr/bin/promtool}
passed=0 failed=0
pid=
TMP=$(mktemp -d /tmp/cairn-promtool-XXXXXX)

cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

for x in "$CAIRN" "$CAIRNCTL" "$PROMTOOL"; do
  if [ ! -x "$x" ]; then echo "missing $x"; echo "0 passed, 1 failed"; exit 1; fi
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL=http://127.0.0.1:$port
"$CAIRN" --web.listen-address=127.0.0.1:$port --storage.tsdb.path="$TMP/data" >"$TMP/cairn.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "$URL/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
check "server ready" curl -sf "$URL/-/ready" -o /dev/null

now=$(date +%s)
start=$((now - 600))
timeout 60 "$CAIRNCTL" bench write "$URL/api/v1/write" --series=150 --interval=15s --duration=10m \
  --start="$start" --connections=2 >"$TMP/bench.log" 2>&1
check "cairnctl bench write loads data" test $? -eq 0

# The number of series, as Cairn's own API reports it.
n_series=$(curl -s "$URL/api/v1/series" --data-urlencode 'match[]={__name__!=""}' |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
check "data present ($n_series series)" test "${n_series:-0}" -gt 0

out=$(timeout 30 "$PROMTOOL" query instant "$URL" 'count({__name__!=""})' --time="$((now - 60))" 2>&1)
check "promtool query instant: count = $n_series ($out)" \
  bash -c "echo '$out' | grep -Eq '=> $n_series @'"

out=$(timeout 30 "$PROMTOOL" query instant "$URL" '1+1' --time=4 2>&1)
check "promtool query instant 1+1 ($out)" bash -c "echo '$out' | grep -q '^scalar: 2 @\[4\]'"

out=$(timeout 30 "$PROMTOOL" query range "$URL" 'count({__name__!=""})' \
  --start="$((now - 300))" --end="$((now - 60))" --step=30s 2>&1)
lines=$(echo "$out" | grep -c '@\[')
check "promtool query range: 9 points (got $lines)" test "$lines" -eq 9
check "promtool query range values" bash -c "echo \"$out\" | grep -q '^$n_series @\['"

out=$(timeout 30 "$PROMTOOL" query series "$URL" --match='{__name__!=""}' \
  --start="$((now - 900))" --end="$now" 2>&1)
lines=$(echo "$out" | grep -c '^{')
check "promtool query series: $n_series lines (got $lines)" test "$lines" -eq "$n_series"

out=$(timeout 30 "$PROMTOOL" query labels "$URL" __name__ 2>&1)
want=$(curl -s "$URL/api/v1/label/__name__/values" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
lines=$(echo "$out" | grep -c .)
check "promtool query labels __name__: $want names (got $lines)" test "$lines" -eq "$want"

# Errors come back as Prometheus errors promtool understands (non-zero exit, the message).
out=$(timeout 30 "$PROMTOOL" query instant "$URL" 'sum(' 2>&1)
rc=$?
check "promtool sees a bad_data error (rc=$rc)" bash -c "[ $rc -ne 0 ] && echo '$out' | grep -qi 'bad_data\|parse'"

check "server still healthy" curl -sf "$URL/-/healthy" -o /dev/null
kill "$pid"
wait "$pid"
rc=$?
pid=
check "clean shutdown (exit $rc)" test "$rc" -eq 0
if [ "$failed" -gt 0 ]; then tail -20 "$TMP/cairn.log"; tail -5 "$TMP/bench.log"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
