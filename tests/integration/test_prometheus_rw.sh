#!/usr/bin/env bash
# tests/integration/test_prometheus_rw.sh -- a real Prometheus (Debian's 2.42) as remote-write
# sender and remote-read client of Cairn.
#
# 1. Cairn on a free 127.0.0.1 port, temporary directory.
# 2. Prometheus A scrapes itself every second and remote-writes to Cairn; within a bounded wait
#    Cairn holds A's series (up{job="prom"} and a few hundred others) and A's log shows no
#    remote-write errors or retries.
# 3. Prometheus B has no scrape jobs, only remote_read from Cairn: its PromQL answers can only come
#    from Cairn's /api/v1/read, and must match what Cairn answers itself.
# Every process is killed on exit; every wait is bounded. Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
passed=0 failed=0
pids=()
TMP=$(mktemp -d /tmp/cairn-promrw-XXXXXX)

# Stop in reverse order: the Prometheus servers first, while Cairn can still take their final
# remote-write flush (otherwise each waits out its flush deadline), then Cairn.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
    wait "${pids[$i]}" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

for x in "$CAIRN" "$PROMETHEUS"; do
  if [ ! -x "$x" ]; then echo "missing $x"; echo "0 passed, 1 failed"; exit 1; fi
done
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_ready() { # url
  for _ in $(seq 1 150); do
    curl -sf "$1/-/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
# Scalar result of an instant query as a plain number ("" when empty).
query_value() { # base-url, expr
  curl -s --max-time 10 "$1/api/v1/query" --data-urlencode "query=$2" |
    python3 -c 'import json,sys
d=json.load(sys.stdin)
r=d.get("data",{}).get("result",[])
print(r[0]["value"][1] if r else "")' 2>/dev/null
}

cport=$(free_port)
CAIRN_URL=http://127.0.0.1:$cport
"$CAIRN" --web.listen-address=127.0.0.1:$cport --storage.tsdb.path="$TMP/cairn" \
  >"$TMP/cairn.log" 2>&1 &
pids+=($!)
check "cairn ready" wait_ready "$CAIRN_URL"

aport=$(free_port)
cat >"$TMP/a.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prom
    static_configs:
      - targets: ['127.0.0.1:$aport']
remote_write:
  - url: $CAIRN_URL/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      max_backoff: 2s
    metadata_config:
      send_interval: 2s
YML
"$PROMETHEUS" --config.file="$TMP/a.yml" --storage.tsdb.path="$TMP/a" \
  --web.listen-address=127.0.0.1:$aport >"$TMP/a.log" 2>&1 &
pids+=($!)
check "prometheus A ready" wait_ready "http://127.0.0.1:$aport"

# Wait (at most ~40 s) until Cairn has A's up series and a few hundred series in total.
n=0
for _ in $(seq 1 80); do
  n=$(query_value "$CAIRN_URL" 'count({job="prom"})')
  up=$(query_value "$CAIRN_URL" 'up{job="prom"}')
  [ "${up:-}" = "1" ] && [ "${n:-0}" -gt 200 ] && break
  sleep 0.5
done
check "cairn has A's series via remote write (count=$n, up=${up:-none})" \
  bash -c "[ '${up:-}' = 1 ] && [ '${n:-0}' -gt 200 ]"
sleep 5 # let a few more batches and a metadata send go through
n_a=$(query_value "http://127.0.0.1:$aport" 'count(up{job="prom"})')
check "A scrapes itself (count=$n_a)" test "${n_a:-0}" = 1
sent=$(query_value "http://127.0.0.1:$aport" 'sum(prometheus_remote_storage_samples_total)')
failedc=$(query_value "http://127.0.0.1:$aport" 'sum(prometheus_remote_storage_samples_failed_total) + sum(prometheus_remote_storage_samples_retried_total)')
check "A sent samples (sent=$sent), none failed or retried (${failedc:-none})" \
  test "${sent%%.*}" -gt 0 -a "${failedc:-x}" = 0
errs=$(grep -Ei 'level=(error|warn)' "$TMP/a.log" | grep -Ei 'remote|queue_manager' | head -5)
check "A's log shows no remote-write errors" test -z "$errs"
[ -n "$errs" ] && echo "$errs"
meta=$(curl -s "$CAIRN_URL/api/v1/metadata?metric=prometheus_http_requests_total" |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d.get("prometheus_http_requests_total",[{}])[0].get("type",""))' 2>/dev/null)
check "remote-written metadata in /api/v1/metadata (type=$meta)" test "$meta" = counter

# Prometheus B: remote_read only.
bport=$(free_port)
cat >"$TMP/b.yml" <<YML
global:
  scrape_interval: 1m
remote_read:
  - url: $CAIRN_URL/api/v1/read
    read_recent: true
YML
"$PROMETHEUS" --config.file="$TMP/b.yml" --storage.tsdb.path="$TMP/b" \
  --web.listen-address=127.0.0.1:$bport >"$TMP/b.log" 2>&1 &
pids+=($!)
check "prometheus B ready" wait_ready "http://127.0.0.1:$bport"
t=$(($(date +%s) - 3))
via_b=$(curl -s --max-time 10 "http://127.0.0.1:$bport/api/v1/query" --data-urlencode 'query=count({job="prom"})' --data-urlencode "time=$t" |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null)
direct=$(curl -s --max-time 10 "$CAIRN_URL/api/v1/query" --data-urlencode 'query=count({job="prom"})' --data-urlencode "time=$t" |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null)
check "B reads Cairn's data via remote read (B=$via_b, Cairn=$direct)" \
  bash -c "[ -n '$via_b' ] && [ '$via_b' = '$direct' ]"
points() { # base-url: points of up{job="prom"} over [t-10, t] at 1 s steps
  curl -s --max-time 10 "$1/api/v1/query_range" --data-urlencode 'query=up{job="prom"}' \
    --data-urlencode "start=$((t - 10))" --data-urlencode "end=$t" --data-urlencode 'step=1' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(len(r[0]["values"]) if r else 0)' 2>/dev/null
}
rng_b=$(points "http://127.0.0.1:$bport")
rng_c=$(points "$CAIRN_URL")
check "B range query over remote read (B=$rng_b points, Cairn=$rng_c)" \
  bash -c "[ '${rng_b:-0}' -ge 3 ] && [ '$rng_b' = '$rng_c' ]"
rerr=$(grep -Ei 'level=(error|warn)' "$TMP/b.log" | grep -i 'remote' | head -3)
check "B's log shows no remote-read errors" test -z "$rerr"
[ -n "$rerr" ] && echo "$rerr"
check "cairn healthy" curl -sf "$CAIRN_URL/-/healthy" -o /dev/null
if [ "$failed" -gt 0 ]; then echo "--- cairn log"; tail -20 "$TMP/cairn.log"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
