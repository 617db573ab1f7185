#!/usr/bin/env bash
# tests/integration/test_cairnctl.sh -- bin/cairnctl against data directories with known content.
#
# A server receives a deterministic remote-write load spanning 6 h (so the head is cut into
# blocks), then: `query` subcommands agree with what was written; `tsdb list` counts every
# sample (blocks + head) and works beside the live server; the server stops and `tsdb dump`
# prints every sample; `tsdb import openmetrics` into a fresh directory followed by a second dump
# reproduces the first byte for byte; `tsdb verify` passes on good data and reports a flipped
# byte in a block, a truncated block and a damaged WAL segment, each with its location; `tsdb
# analyze` names the metrics; a missing or foreign directory gets a clear error.
# Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
CTL=$(cd "$(dirname "$BIN/cairnctl")" && pwd)/cairnctl
passed=0 failed=0
pid=
TMP=$(mktemp -d /tmp/cairn-ctl-XXXXXX)

cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { # name, command...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

for b in "$CAIRN" "$CTL"; do
  if [ ! -x "$b" ]; then echo "no $b"; echo "0 passed, 1 failed"; exit 1; fi
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # url; bounded to 30 s
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$1/-/ready" && return 0
    sleep 0.1
  done
  return 1
}

stop_server() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
  fi
}

json() { # file, python expression over `d`
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}

SERIES=300 STEPS=360
TOTAL=$((SERIES * STEPS))
START=$(( ( $(date +%s) - 86400 ) / 7200 * 7200 ))
END=$((START + STEPS * 60))
A=$TMP/a
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
"$CAIRN" --web.listen-address=127.0.0.1:$PORT --storage.tsdb.path="$A" --log.level=warn \
  >"$TMP/server.log" 2>&1 &
pid=$!
if ! wait_ready "$URL"; then
  bad "server starts"; cat "$TMP/server.log"; finish
fi

"$CTL" bench write "$URL/api/v1/write" --series=$SERIES --duration=$((STEPS))m --interval=60s \
  --start=$START --connections=2 >"$TMP/bench.out" 2>"$TMP/bench.err"
check "bench write delivers every sample without errors" \
  grep -q "samples=$TOTAL .*errors=0 " "$TMP/bench.out"

# query subcommands against the live server.
"$CTL" query instant "$URL" 'count(node_load1)' --time=$END >"$TMP/q1" 2>&1
check "query instant: one node_load1 per instance (3 instances)" grep -q '^{} => 3 @' "$TMP/q1"
"$CTL" query instant "$URL" 'count({__name__=~".+"})' --time=$END --format=json >"$TMP/q2" 2>&1
check "query instant --format=json: all $SERIES series" \
  json "$TMP/q2" "d['data']['result'][0]['value'][1] == '$SERIES'"
"$CTL" query range "$URL" 'node_load1{instance="host-00000:9100"}' --start=$((END - 600)) \
  --end=$END --step=60 >"$TMP/q3" 2>&1
check "query range: 11 points of one series" \
  test "$(grep -c ' @\[' "$TMP/q3")" = 11
"$CTL" query labels "$URL" instance >"$TMP/q4" 2>&1
check "query labels: the three instances" \
  test "$(cat "$TMP/q4")" = "$(printf 'host-00000:9100\nhost-00001:9100\nhost-00002:9100')"
"$CTL" query series "$URL" --match='node_cpu_seconds_total{cpu="0",mode="idle"}' >"$TMP/q5" 2>&1
check "query series: one per instance" test "$(wc -l <"$TMP/q5")" = 3
"$CTL" query instant "$URL" 'sum(' >"$TMP/q6" 2>&1
check "query instant: a bad query prints the error and fails" \
  bash -c "! '$CTL' query instant '$URL' 'sum(' >/dev/null 2>&1 && grep -q bad_data '$TMP/q6'"

# Wait for the maintenance thread to cut blocks (head spans 6 h > 1.5 x 2 h).
for _ in $(seq 1 100); do
  ls "$A"/blocks/*.blk >/dev/null 2>&1 && break
  sleep 0.1
done
"$CTL" tsdb list "$A" --format=json >"$TMP/list.json" 2>"$TMP/list.err"
check "tsdb list beside the live server: blocks were cut" json "$TMP/list.json" "len(d['blocks']) >= 1"
check "tsdb list: blocks + head hold every sample" \
  json "$TMP/list.json" "sum(b['samples'] for b in d['blocks']) + d['head']['samples'] == $TOTAL"
check "tsdb list: block ranges are whole, aligned 2 h ranges" \
  json "$TMP/list.json" "all(b['minTime'] % 7200000 == 0 and b['maxTime'] % 7200000 == 0 for b in d['blocks'])"
"$CTL" tsdb list "$A" --human >"$TMP/list.txt" 2>&1
check "tsdb list --human: table with HEAD and WAL lines" \
  bash -c "grep -q '^HEAD  series' '$TMP/list.txt' && grep -q '^WAL ' '$TMP/list.txt' && grep -q 'B/SAMPLE' '$TMP/list.txt'"
stop_server

# dump -> import -> dump round trip.
"$CTL" tsdb dump "$A" >"$TMP/a.om" 2>"$TMP/dump.err"
check "tsdb dump prints every sample and ends with # EOF" \
  bash -c "test \$(grep -vc '^#' '$TMP/a.om') = $TOTAL && test \"\$(tail -1 '$TMP/a.om')\" = '# EOF'"
"$CTL" tsdb dump "$A" --match='node_load1' --min-time=$((END - 630)) --max-time=$END \
  >"$TMP/a1.om" 2>&1
check "tsdb dump --match --min-time --max-time selects" \
  test "$(grep -c '^node_load1{' "$TMP/a1.om")" = $((3 * 10))
"$CTL" tsdb dump "$A" --match='node_load1' --match='node_load1{instance="host-00000:9100"}' \
  --match='node_load5' >"$TMP/a2.om" 2>&1
check "tsdb dump with overlapping selectors prints each series once" \
  bash -c "test \$(grep -c '^node_load1{' '$TMP/a2.om') = $((3 * STEPS)) && test \$(grep -c '^node_load5{' '$TMP/a2.om') = $((3 * STEPS))"
"$CTL" tsdb dump "$A" --match='node_load1' --format=json >"$TMP/a.jsonl" 2>&1
check "tsdb dump --format=json: one line per series with all samples" \
  python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$TMP/a.jsonl')]
sys.exit(0 if len(rows)==3 and all(len(r['values'])==$STEPS and r['metric']['__name__']=='node_load1' for r in rows) else 1)"
"$CTL" tsdb import openmetrics "$TMP/a.om" "$TMP/b" >"$TMP/import.out" 2>&1
check "tsdb import openmetrics writes blocks" grep -q "imported $TOTAL samples of $SERIES series" "$TMP/import.out"
"$CTL" tsdb dump "$TMP/b" >"$TMP/b.om" 2>&1
check "dump -> import -> dump round-trips exactly" cmp -s "$TMP/a.om" "$TMP/b.om"
"$CTL" tsdb list "$TMP/b" --format=json >"$TMP/listb.json" 2>&1
check "imported data lives in blocks, not the head" \
  json "$TMP/listb.json" "d['head']['samples'] == 0 and sum(b['samples'] for b in d['blocks']) == $TOTAL"
printf 'x_total{a="1"} 1\n# EOF\n' >"$TMP/nots.om"
check "tsdb import refuses samples without timestamps" \
  bash -c "! '$CTL' tsdb import openmetrics '$TMP/nots.om' '$TMP/c' >/dev/null 2>&1"

# analyze.
"$CTL" tsdb analyze "$A" --limit=5 >"$TMP/analyze.txt" 2>&1
check "tsdb analyze: cardinality, churn and chunk fill" \
  bash -c "grep -q 'Series: $SERIES' '$TMP/analyze.txt' && grep -q ' node_cpu_seconds_total' '$TMP/analyze.txt' && grep -q 'new  ' '$TMP/analyze.txt' && grep -q 'SAMPLES/CHUNK' '$TMP/analyze.txt'"

check "tsdb analyze: every metric's block chunks are counted (none shows 0 samples)" \
  bash -c "sed -n '/SAMPLES\/CHUNK/,\$p' '$TMP/analyze.txt' | tail -n +2 | awk '\$1 == 0 {bad=1} END {exit bad || NR == 0}'"

# verify: clean, then each kind of damage.
"$CTL" tsdb verify "$A" >"$TMP/v0" 2>&1
check "tsdb verify passes on good data" \
  bash -c "grep -q ' 0 problems' '$TMP/v0' && '$CTL' tsdb verify '$A' >/dev/null 2>&1"
blk=$(ls "$A"/blocks/*.blk | head -1)
cp -a "$A" "$TMP/flip"
fb="$TMP/flip/blocks/$(basename "$blk")"
size=$(stat -c %s "$fb")
printf '\xff' | dd of="$fb" bs=1 seek=$((size / 2)) conv=notrunc status=none
"$CTL" tsdb verify "$TMP/flip" >"$TMP/v1" 2>&1
rc=$?
check "tsdb verify reports a flipped byte in a block" \
  bash -c "[ $rc = 1 ] && grep -q 'PROBLEM blocks/$(basename "$blk")' '$TMP/v1'"
cp -a "$A" "$TMP/trunc"
tb="$TMP/trunc/blocks/$(basename "$blk")"
truncate -s $((size - 100)) "$tb"
"$CTL" tsdb verify "$TMP/trunc" >"$TMP/v2" 2>&1
rc=$?
check "tsdb verify reports a truncated block" \
  bash -c "[ $rc = 1 ] && grep -q 'PROBLEM blocks/$(basename "$blk")' '$TMP/v2'"
# The largest WAL file, with a newer empty segment added so it is not the tail, damaged in its
# first record.
cp -a "$A" "$TMP/wal"
wf=$(ls -S "$TMP"/wal/wal/* | grep -v '\.tmp$' | head -1) # the largest: checkpoint or segment
last=$(basename "$(ls "$TMP"/wal/wal/* | grep -v -e checkpoint -e '\.tmp$' | tail -1)")
: >"$TMP/wal/wal/$(printf '%08d' $((10#$last + 1)))"
printf '\xff\xff\xff\xff' | dd of="$wf" bs=1 seek=3 conv=notrunc status=none
"$CTL" tsdb verify "$TMP/wal" >"$TMP/v3" 2>&1
rc=$?
check "tsdb verify reports a damaged WAL file with its offset" \
  bash -c "[ $rc = 1 ] && grep -q 'PROBLEM wal/$(basename "$wf"): damaged fragment at byte' '$TMP/v3'"

# Bad directories.
"$CTL" tsdb list "$TMP/nonexistent" >"$TMP/e1" 2>&1
rc=$?
check "a missing directory gets a clear error" bash -c "[ $rc = 1 ] && grep -q 'no such directory' '$TMP/e1'"
mkdir -p "$TMP/prom/wal" "$TMP/prom/chunks_head"
"$CTL" tsdb verify "$TMP/prom" >"$TMP/e2" 2>&1
rc=$?
check "a foreign directory gets a clear error" \
  bash -c "[ $rc = 1 ] && grep -q 'not a Cairn data directory' '$TMP/e2'"
check "cairnctl --help lists the commands" bash -c "'$CTL' --help | grep -q 'tsdb verify'"
check "an unknown command is a usage error" bash -c "'$CTL' frobnicate >/dev/null 2>&1; [ \$? = 2 ]"

finish
