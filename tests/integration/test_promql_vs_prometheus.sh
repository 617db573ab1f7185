#!/usr/bin/env bash
# tests/integration/test_promql_vs_prometheus.sh -- Cairn's PromQL answers against a running
# Prometheus 2.42, over both HTTP query APIs.
#
# Starts Prometheus (remote-write receiver on, no scrape jobs) and Cairn, each on a free
# 127.0.0.1 port with a temporary directory; loads the same node-exporter-shaped series into both
# with `cairnctl bench write` (fixed start and seed) and the hand-made special series of
# promql_vs_prometheus.py; then runs every query of promql_queries.txt as instant and range
# queries on both and compares the answers (see the .py). Both servers are killed on exit; every
# wait is bounded. Prints "N passed, N failed" last. Skips (and passes) without Prometheus.
#
# env: SERIES (default 600), PROMETHEUS, BIN, ONLY (run only queries containing this text),
#      RANDOM_QUERIES (generated queries added to the list, default 1500), SEED (their seed, 1),
#      DEPTH (their nesting depth, 4), VERBOSE (any value: list passes and skips too).
set -u
BIN=${BIN:-bin}
HERE=$(cd "$(dirname "$0")" && pwd)
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
CAIRNCTL=$(cd "$(dirname "$BIN/cairnctl")" && pwd)/cairnctl
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
SERIES=${SERIES:-600}
START=1699999200 # 2023-11-14T22:00:00Z, hour-aligned; data spans one hour from here
pids=()
TMP=$(mktemp -d /tmp/cairn-pqvs-XXXXXX)

cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    wait "${pids[$i]}" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$PROMETHEUS" ]; then
  echo "skip: no $PROMETHEUS"
  echo "0 passed, 0 failed"
  exit 0
fi
for x in "$CAIRN" "$CAIRNCTL"; do
  if [ ! -x "$x" ]; then echo "missing $x"; echo "0 passed, 1 failed"; exit 1; fi
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_ready() { # url
  for _ in $(seq 1 150); do
    curl -sf --max-time 2 "$1/-/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
fail_setup() {
  echo "setup failed: $1"
  for f in "$TMP"/*.log; do echo "--- $f"; tail -15 "$f"; done
  echo "0 passed, 1 failed"
  exit 1
}

pport=$(free_port)
PROM_URL=http://127.0.0.1:$pport
printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' >"$TMP/prometheus.yml"
"$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom" \
  --web.listen-address=127.0.0.1:$pport --web.enable-remote-write-receiver \
  --storage.tsdb.retention.time=100y >"$TMP/prometheus.log" 2>&1 &
pids+=($!)

cport=$(free_port)
CAIRN_URL=http://127.0.0.1:$cport
"$CAIRN" --web.listen-address=127.0.0.1:$cport --storage.tsdb.path="$TMP/cairn" \
  --storage.tsdb.retention.time=100y >"$TMP/cairn.log" 2>&1 &
pids+=($!)

wait_ready "$PROM_URL" || fail_setup "prometheus not ready"
wait_ready "$CAIRN_URL" || fail_setup "cairn not ready"

# All data (here and the hand-made series) lies within one hour, so neither server's head refuses
# any of it as too old whatever the order.
for url in "$PROM_URL" "$CAIRN_URL"; do
  timeout 120 "$CAIRNCTL" bench write "$url/api/v1/write" --series="$SERIES" --duration=1h \
    --interval=15s --start=$START --seed=7 --connections=1 >"$TMP/write.out" 2>&1 ||
    { cat "$TMP/write.out"; fail_setup "bench write to $url"; }
done

ONLY=${ONLY:-}
timeout 600 python3 "$HERE/promql_vs_prometheus.py" --prom "$PROM_URL" --cairn "$CAIRN_URL" \
  --start $START --queries "${QUERIES:-$HERE/promql_queries.txt}" --write --only "$ONLY" \
  --random "${RANDOM_QUERIES:-1500}" --seed "${SEED:-1}" --depth "${DEPTH:-4}" ${VERBOSE:+-v}
rc=$?
[ $rc = 124 ] && echo "timed out" && echo "0 passed, 1 failed"
# A sanitizer build reports memory and UB errors in the server's log.
if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$TMP/cairn.log"; then
  grep -E -A20 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$TMP/cairn.log" | head -40
  echo "0 passed, 1 failed"
  exit 1
fi
if [ $rc != 0 ]; then echo "--- cairn log (tail)"; tail -15 "$TMP/cairn.log"; fi
exit $rc
