#!/usr/bin/env bash
# tests/integration/test_scrape_vs_prometheus.sh -- Prometheus 2.42 as the oracle for the scraper.
#
# One scrape configuration is given to a real Prometheus (/usr/bin/prometheus) and to bin/cairn.
# Targets: prometheus-node-exporter (text format) with metric_relabel_configs using keep,
# uppercase, hashmod, labelmap, replace and labeldrop; and a python3 OpenMetrics target (counters
# with _created and exemplars, a histogram with a unit, a stateset, an info metric, clashing job
# and exported_job labels) scraped with honor_labels false and true. Both servers must end up with
# the same series (label sets), the same values for series whose value does not change between
# scrapes, and the same /api/v1/metadata. Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
passed=0 failed=0
pids=()
TMP=$(mktemp -d /tmp/cairn-vsprom-XXXXXX)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

for b in "$CAIRN" "$PROMETHEUS" "$NODE_EXPORTER"; do
  if [ ! -x "$b" ]; then echo "missing $b"; echo "0 passed, 1 failed"; exit 1; fi
done
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
  for _ in $(seq 1 150); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
P_NODE=$(free_port) P_OM=$(free_port) P_PROM=$(free_port) P_CAIRN=$(free_port)
# Closed ports: targets that exist in the configuration but refuse connections.
P_C1=$(free_port) P_C2=$(free_port) P_C3=$(free_port) P_C4=$(free_port) P_C5=$(free_port)
P_TXT=$(free_port)

cat >"$TMP/om.py" <<'EOF'
import http.server, sys
body = b'''# TYPE om_requests counter
# HELP om_requests Requests \\ served.
om_requests_total{path="/a",job="inner"} 5 # {trace_id="x"} 1
om_requests_created{path="/a",job="inner"} 12
om_requests_total{path="/b",exported_job="e"} 7
# TYPE om_lat_seconds histogram
# UNIT om_lat_seconds seconds
om_lat_seconds_bucket{le="0.1"} 1
om_lat_seconds_bucket{le="+Inf"} 2
om_lat_seconds_sum 0.3
om_lat_seconds_count 2
om_lat_seconds_created 100
# TYPE om_state stateset
om_state{om_state="a"} 1
om_state{om_state="b"} 0
# TYPE om_build info
om_build_info{version="1.2",instance="i"} 1
# TYPE om_temp gauge
om_temp{esc="q\\"uote\\\\back\\nline"} -1.5e-3
# EOF
'''
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF

# A text-format page with the format's corners: escapes in label values and HELP, a trailing
# comma, an empty label value, NaN/Inf/exponents, an explicit ms timestamp, untyped, comments.
TS=$(($(date +%s) * 1000 - 10000))
cat >"$TMP/txt.prom" <<EOF
# HELP weird_total A \\\\ backslash, a \\n newline and "quotes".
# TYPE weird_total counter
weird_total{a="tab\\there",b="q\\"uote",c="nl\\nx",d="",} 1e3
weird_total{a="2"} +Inf
# TYPE g gauge
g NaN
g2{x="y"} -0.0000012345
# a plain comment
# TYPE u untyped
u 42 $TS
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
# TYPE s summary
s{quantile="0.5"} 1
s_sum 2
s_count 3
EOF
cat >"$TMP/txt.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[2], "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF

cat >"$TMP/scrape.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['127.0.0.1:$P_NODE'], labels: {env: test}}]
    metric_relabel_configs:
      - {source_labels: [__name__], regex: 'node_(cpu|memory|filesystem|network)_.*', action: keep}
      - {source_labels: [mode], target_label: mode_upper, action: uppercase}
      - {source_labels: [cpu, mode], separator: '-', modulus: 7, target_label: shard, action: hashmod}
      - {regex: '(device|fstype)', replacement: 'x_\${1}', action: labelmap}
      - {source_labels: [mountpoint], regex: '/(.*)', target_label: mp, replacement: 'root:\$1'}
      - {regex: 'mountpoint', action: labeldrop}
  - job_name: om
    static_configs: [{targets: ['127.0.0.1:$P_OM'], labels: {team: t}}]
  - job_name: om_honor
    honor_labels: true
    static_configs: [{targets: ['127.0.0.1:$P_OM']}]
  - job_name: txt
    static_configs: [{targets: ['127.0.0.1:$P_TXT']}]
  - job_name: targets
    scrape_interval: 2s
    scrape_timeout: 1500ms
    params: {module: [m1, m2], other: ['a b']}
    static_configs:
      - targets: ['127.0.0.1:$P_OM', 'localhost:$P_OM', '127.0.0.1:$P_C1', '127.0.0.1:$P_C2',
                  '127.0.0.1:$P_C3', '127.0.0.1:$P_C4', '127.0.0.1']
        labels: {__meta_zone: z1, rack: r1}
    file_sd_configs:
      - files: ['$TMP/sd/*.json']
    relabel_configs:
      - {source_labels: [__address__], modulus: 2, target_label: __tmp_shard, action: hashmod}
      - {source_labels: [__tmp_shard], regex: '1', action: drop}
      - {regex: '__meta_(.+)', replacement: 'meta_\$1', action: labelmap}
      - {source_labels: [rack], regex: 'r(.*)', target_label: __param_module, replacement: 'mod\$1'}
      - {source_labels: [__address__], regex: 'localhost:.*', target_label: __metrics_path__, replacement: /other}
      - {target_label: instance_copy, source_labels: [__address__]}
EOF
mkdir -p "$TMP/sd"
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"sd": "x"}}]\n' $P_C5 >"$TMP/sd/a.json"

"$NODE_EXPORTER" --web.listen-address=127.0.0.1:$P_NODE >"$TMP/node.log" 2>&1 &
pids+=($!)
python3 "$TMP/om.py" $P_OM >"$TMP/om.log" 2>&1 &
pids+=($!)
OM_PID=$!
python3 "$TMP/txt.py" $P_TXT "$TMP/txt.prom" >"$TMP/txt.log" 2>&1 &
pids+=($!)
wait_port $P_NODE && wait_port $P_OM && wait_port $P_TXT || { echo "targets did not start"; echo "0 passed, 1 failed"; exit 1; }
"$PROMETHEUS" --config.file="$TMP/scrape.yml" --web.listen-address=127.0.0.1:$P_PROM \
  --storage.tsdb.path="$TMP/prom" >"$TMP/prom.log" 2>&1 &
pids+=($!)
"$CAIRN" --config.file="$TMP/scrape.yml" --web.listen-address=127.0.0.1:$P_CAIRN \
  --storage.tsdb.path="$TMP/cairn" >"$TMP/cairn.log" 2>&1 &
pids+=($!)
wait_port $P_PROM && wait_port $P_CAIRN || { echo "servers did not start"; echo "0 passed, 1 failed"; exit 1; }

# Both have scraped every target at least twice once each reports scrape_series_added == 0 for
# the four scraped jobs (the first scrape adds the series).
ready() { # port
  curl -s --get --data-urlencode 'query=count(scrape_series_added{job=~"node|om|om_honor|txt"} == 0 and up == 1)' \
    "http://127.0.0.1:$1/api/v1/query" |
    python3 -c "import json,sys
r=json.load(sys.stdin)['data']['result']
sys.exit(0 if r and r[0]['value'][1]=='4' else 1)" 2>/dev/null
}
for _ in $(seq 1 60); do ready $P_PROM && ready $P_CAIRN && break; sleep 0.5; done
if ready $P_PROM && ready $P_CAIRN; then ok "both servers scraped all targets"; else bad "both servers scraped all targets"; fi

# Series of every job, as sorted JSON lines; values of the stable ones.
dump() { # port, file
  curl -s --get --data-urlencode 'match[]={job=~"node|om|om_honor|txt"}' \
    "http://127.0.0.1:$1/api/v1/series" |
    python3 -c "import json,sys
d=json.load(sys.stdin)['data']
print('\n'.join(sorted(json.dumps(x,sort_keys=True) for x in d)))" >"$2.series"
  curl -s --get --data-urlencode 'query={job=~"om|om_honor|txt",__name__!~"scrape_duration_seconds"}' \
    "http://127.0.0.1:$1/api/v1/query" |
    python3 -c "import json,sys
r=json.load(sys.stdin)['data']['result']
print('\n'.join(sorted(json.dumps([x['metric'],x['value'][1]],sort_keys=True) for x in r)))" >"$2.values"
  curl -s "http://127.0.0.1:$1/api/v1/metadata" |
    python3 -c "import json,sys
d=json.load(sys.stdin)['data']
print(json.dumps({k:sorted(v,key=json.dumps) for k,v in d.items()},sort_keys=True,indent=0))" >"$2.meta"
  curl -s "http://127.0.0.1:$1/api/v1/targets" |
    python3 -c "import json,sys
d=json.load(sys.stdin)['data']
keep=('discoveredLabels','labels','scrapePool','scrapeUrl','scrapeInterval','scrapeTimeout')
a=[json.dumps({k:t[k] for k in keep},sort_keys=True) for t in d['activeTargets']]
b=[json.dumps(t['discoveredLabels'],sort_keys=True) for t in d['droppedTargets']]
print('\\n'.join(['active '+x for x in sorted(a)]+['dropped '+x for x in sorted(b)]))" >"$2.targets"
}
# A scrape that times out on a busy machine between the two dumps changes up and the report
# counts on one side only: dump again (at most 5 times) until both are ready and agree.
for _ in 1 2 3 4 5; do
  ready $P_PROM && ready $P_CAIRN || { sleep 1; continue; }
  dump $P_PROM "$TMP/p"
  dump $P_CAIRN "$TMP/c"
  cmp -s "$TMP/p.values" "$TMP/c.values" && cmp -s "$TMP/p.series" "$TMP/c.series" && break
  sleep 1
done

same() { # name, file suffix (an empty dump is a failure: the query itself went wrong)
  if [ -s "$TMP/p.$2" ] && diff "$TMP/p.$2" "$TMP/c.$2" >"$TMP/diff.$2"; then
    ok "$1 ($(wc -l <"$TMP/p.$2") lines)"
  else
    bad "$1"
    echo "--- < prometheus, > cairn"
    head -20 "$TMP/diff.$2"
  fi
}
same "identical series sets" series
same "identical values of the OpenMetrics and text series and report counts" values
same "identical metadata" meta
same "identical active and dropped targets (relabel_configs, params, file_sd)" targets
if grep -q '^dropped' "$TMP/c.targets" && grep -q 'meta_zone' "$TMP/c.targets" &&
  grep -q '__meta_filepath' "$TMP/c.targets"; then
  ok "targets cover drops, labelmap and file_sd"
else
  bad "targets cover drops, labelmap and file_sd"
fi
check_nonempty() { # file, min lines
  [ "$(wc -l <"$1")" -ge "$2" ]
}
if check_nonempty "$TMP/c.series" 100; then ok "series set is not trivially small"; else bad "series set is not trivially small"; fi
if grep -q '"shard"' "$TMP/c.series" && grep -q '"x_device"' "$TMP/c.series" &&
  grep -q '"mp": "root:' "$TMP/c.series"; then
  ok "relabel results present (hashmod, labelmap, replace)"
else
  bad "relabel results present (hashmod, labelmap, replace)"
fi

# Staleness, compared: a series leaves the text page and the OpenMetrics target goes away.
# After a few scrapes both servers must answer the same instant query: g2 and the OpenMetrics
# series are gone (stale), up is 0 for the om jobs, the report counts are 0.
grep -v '^g2' "$TMP/txt.prom" >"$TMP/txt.new" && mv "$TMP/txt.new" "$TMP/txt.prom"
kill $OM_PID
settled() { # port
  curl -s --get --data-urlencode 'query=count(up{job=~"om|om_honor"} == 0) and count(absent(g2))' \
    "http://127.0.0.1:$1/api/v1/query" |
    python3 -c "import json,sys
r=json.load(sys.stdin)['data']['result']
sys.exit(0 if r and r[0]['value'][1]=='2' else 1)" 2>/dev/null
}
for _ in $(seq 1 40); do settled $P_PROM && settled $P_CAIRN && break; sleep 0.5; done
sleep 2.5 # a couple more scrapes on both sides, so the report series settle too
for _ in 1 2 3 4 5; do
  dump $P_PROM "$TMP/p"
  dump $P_CAIRN "$TMP/c"
  cmp -s "$TMP/p.values" "$TMP/c.values" && break
  sleep 1
done
same "after a series and a target went away: identical current values" values
if grep -q '"g2"' "$TMP/c.values" || grep -q 'om_requests_total' "$TMP/c.values"; then
  bad "stale series are not returned"
else
  ok "stale series are not returned"
fi

if [ $failed -gt 0 ]; then echo "--- cairn log"; tail -20 "$TMP/cairn.log"; fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
