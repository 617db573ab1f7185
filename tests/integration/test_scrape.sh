#!/usr/bin/env bash
# tests/integration/test_scrape.sh -- the scraper end to end: bin/cairn --config.file scraping a
# real prometheus-node-exporter and small python3 targets on 127.0.0.1.
#
# Checks: node exporter series are queryable and up == 1; the targets and metadata endpoints; a
# series that leaves a page and a target that goes away are marked stale (up == 0); a slow target
# times out; a garbage page stores nothing from its body and the server stays healthy; basic
# auth (right and wrong password); honor_labels=false renames a clashing label to exported_job;
# metric_relabel_configs drops series; a SIGHUP reload that removes a job; staleness markers on
# shutdown. Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
passed=0 failed=0
pids=()
TMP=$(mktemp -d /tmp/cairn-scrape-XXXXXX)

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { # name, command...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

if [ ! -x "$CAIRN" ]; then echo "no $CAIRN"; echo "0 passed, 1 failed"; exit 1; fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A tiny exposition server: serves the file $2 on port $1; SLEEP=s delays answers, AUTH=user:pass
# demands basic auth, CTYPE sets the Content-Type, CERT/KEY serve HTTPS.
cat >"$TMP/target.py" <<'EOF'
import base64, http.server, os, ssl, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
sleep = float(os.environ.get("SLEEP", "0"))
auth = os.environ.get("AUTH", "")
ctype = os.environ.get("CTYPE", "text/plain; version=0.0.4")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if auth:
            want = "Basic " + base64.b64encode(auth.encode()).decode()
            if self.headers.get("Authorization", "") != want:
                self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
        time.sleep(sleep)
        with open(path, "rb") as f:
            body = f.read()
        try:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
if os.environ.get("CERT"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF

start_target() { # port, file, env...
  local port=$1 file=$2; shift 2
  env "$@" python3 "$TMP/target.py" "$port" "$file" >>"$TMP/targets.log" 2>&1 &
  pids+=($!)
  LAST_PID=$!
}

wait_port() { # port
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

P_NODE=$(free_port) P_VAN=$(free_port) P_SLOW=$(free_port) P_GARB=$(free_port)
P_AUTH=$(free_port) P_API=$(free_port) P_OM=$(free_port) P_TLS=$(free_port)

"$NODE_EXPORTER" --web.listen-address=127.0.0.1:$P_NODE >"$TMP/node.log" 2>&1 &
pids+=($!)

printf 'vanish_metric{a="1"} 7\nvanish_metric{a="2"} 8\n' >"$TMP/van.prom"
start_target $P_VAN "$TMP/van.prom"; VAN_PID=$LAST_PID
printf 'slow_metric 1\n' >"$TMP/slow.prom"
start_target $P_SLOW "$TMP/slow.prom" SLOW=1 SLEEP=3
printf 'good_before_garbage 1\nthis is { not a metric\n' >"$TMP/garb.prom"
start_target $P_GARB "$TMP/garb.prom"
printf 'auth_metric{job="inner"} 42\n' >"$TMP/auth.prom"
start_target $P_AUTH "$TMP/auth.prom" AUTH=scraper:s3cret
OM_TS=$(($(date +%s) - 30)).5
printf '# TYPE om_requests counter\n# HELP om_requests Requests.\nom_requests_total 5 %s\nom_requests_created 12\n# TYPE om_temp_celsius gauge\n# UNIT om_temp_celsius celsius\nom_temp_celsius 21.5\n# EOF\n' "$OM_TS" >"$TMP/om.prom"
start_target $P_OM "$TMP/om.prom" CTYPE="application/openmetrics-text; version=1.0.0; charset=utf-8"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=cairn-test.local" \
  -addext "subjectAltName=DNS:cairn-test.local" -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
  >/dev/null 2>&1
printf 'tls_metric 3\n' >"$TMP/tls.prom"
start_target $P_TLS "$TMP/tls.prom" CERT="$TMP/cert.pem" KEY="$TMP/key.pem"
mkdir -p "$TMP/sd"
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"sd": "one"}}]\n' $P_TLS >"$TMP/sd/a.json"

printf 's3cret\n' >"$TMP/pass"
write_config() { # with or without the vanish job
  cat >"$TMP/cairn.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$P_NODE']
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_gc_.*'
        action: drop
  - job_name: slow
    static_configs: [{targets: ['127.0.0.1:$P_SLOW']}]
  - job_name: garbage
    static_configs: [{targets: ['127.0.0.1:$P_GARB']}]
  - job_name: auth
    basic_auth: {username: scraper, password_file: $TMP/pass}
    static_configs: [{targets: ['127.0.0.1:$P_AUTH'], labels: {team: a}}]
  - job_name: badauth
    basic_auth: {username: scraper, password: wrong}
    static_configs: [{targets: ['127.0.0.1:$P_AUTH']}]
  - job_name: om
    honor_timestamps: true
    static_configs: [{targets: ['127.0.0.1:$P_OM']}]
  - job_name: tls
    scheme: https
    tls_config: {ca_file: $TMP/cert.pem, server_name: cairn-test.local}
    static_configs: [{targets: ['127.0.0.1:$P_TLS']}]
  - job_name: tls_noname
    scheme: https
    tls_config: {ca_file: $TMP/cert.pem}
    static_configs: [{targets: ['127.0.0.1:$P_TLS']}]
  - job_name: tls_insecure
    scheme: https
    tls_config: {insecure_skip_verify: true}
    static_configs: [{targets: ['127.0.0.1:$P_TLS']}]
  - job_name: sd
    scheme: https
    tls_config: {insecure_skip_verify: true}
    file_sd_configs: [{files: ['$TMP/sd/*.json'], refresh_interval: 1m}]
EOF
  if [ "$1" = with-vanish ]; then
    cat >>"$TMP/cairn.yml" <<EOF
  - job_name: vanish
    static_configs: [{targets: ['127.0.0.1:$P_VAN']}]
    relabel_configs:
      - {target_label: __tmp_unused, replacement: x}
      - {action: labeldrop, regex: '__tmp_.*'}
EOF
  fi
}
write_config with-vanish

start_cairn() {
  "$CAIRN" --web.listen-address=127.0.0.1:$P_API --storage.tsdb.path="$TMP/data" \
    --config.file="$TMP/cairn.yml" --log.level=info >>"$TMP/cairn.log" 2>&1 &
  CAIRN_PID=$!
  pids+=($CAIRN_PID)
}
start_cairn
wait_port $P_NODE || echo "node exporter did not start"
wait_port $P_API || { echo "cairn did not start"; tail -20 "$TMP/cairn.log"; echo "0 passed, 1 failed"; exit 1; }

API=http://127.0.0.1:$P_API
# q <promql> <python expression over r = data.result> -> exit 0 when the expression is true
q() {
  curl -s --max-time 5 --get --data-urlencode "query=$1" "$API/api/v1/query" |
    python3 -c "import json,sys
d=json.load(sys.stdin); r=d['data']['result']
sys.exit(0 if ($2) else 1)" 2>/dev/null
}
# eventually <seconds> <command...>: retries every 0.5 s
eventually() {
  local secs=$1; shift
  local n=$((secs * 2))
  for _ in $(seq 1 $n); do "$@" && return 0; sleep 0.5; done
  return 1
}
export API
export -f q eventually

check "node exporter up == 1" eventually 15 q 'up{job="node"}' 'len(r)==1 and r[0]["value"][1]=="1"'
check "node exporter series queryable (node_cpu_seconds_total)" \
  eventually 10 q 'count(node_cpu_seconds_total{job="node",instance="127.0.0.1:'$P_NODE'"})' 'len(r)==1 and float(r[0]["value"][1])>=1'
check "scrape_samples_scraped > 100 for node" \
  q 'scrape_samples_scraped{job="node"}' 'len(r)==1 and float(r[0]["value"][1])>100'
check "metric_relabel_configs dropped go_gc_* (post < scraped)" \
  q 'scrape_samples_post_metric_relabeling{job="node"} < scrape_samples_scraped{job="node"}' 'len(r)==1'
check "no go_gc_* series stored" q 'count({__name__=~"go_gc_.*",job="node"})' 'len(r)==0'
check "scrape_duration_seconds present" q 'scrape_duration_seconds{job="node"}' 'len(r)==1 and 0<float(r[0]["value"][1])<1'
check "scrape_series_added written" q 'scrape_series_added{job="node"}' 'len(r)==1'

# Targets endpoint.
check "targets: node up, slow down with a deadline error" eventually 10 bash -c "
curl -s '$API/api/v1/targets' | python3 -c \"import json,sys
d=json.load(sys.stdin)['data']['activeTargets']
by={t['scrapePool']:t for t in d}
ok=by['node']['health']=='up' and by['node']['labels']=={'instance':'127.0.0.1:$P_NODE','job':'node'}
ok=ok and by['slow']['health']=='down' and 'deadline' in by['slow']['lastError']
ok=ok and by['node']['scrapeUrl']=='http://127.0.0.1:$P_NODE/metrics' and by['node']['scrapeInterval']=='1s'
sys.exit(0 if ok else 1)\""
check "metadata: node_cpu_seconds_total is a counter" bash -c "
curl -s '$API/api/v1/metadata?metric=node_cpu_seconds_total' | python3 -c \"import json,sys
d=json.load(sys.stdin)['data']
sys.exit(0 if d['node_cpu_seconds_total'][0]['type']=='counter' and 'CPU' in d['node_cpu_seconds_total'][0]['help'] else 1)\""
check "metadata limit=2 returns two metrics" bash -c "
curl -s '$API/api/v1/metadata?limit=2' | python3 -c \"import json,sys
sys.exit(0 if len(json.load(sys.stdin)['data'])==2 else 1)\""

# Slow target: timeout -> up 0, nothing from the body.
check "slow target: up == 0" q 'up{job="slow"}' 'len(r)==1 and r[0]["value"][1]=="0"'
check "slow target: no slow_metric" q 'slow_metric' 'len(r)==0'

# Garbage target: parse error -> up 0, nothing from the body (not even its valid first line).
check "garbage target: up == 0" eventually 5 q 'up{job="garbage"}' 'len(r)==1 and r[0]["value"][1]=="0"'
check "garbage target: good_before_garbage not stored" q 'good_before_garbage' 'len(r)==0'
check "garbage target: lastError names line:col" bash -c "
curl -s '$API/api/v1/targets?state=active' | python3 -c \"import json,sys
d=[t for t in json.load(sys.stdin)['data']['activeTargets'] if t['scrapePool']=='garbage'][0]
sys.exit(0 if d['lastError'].startswith('2:') else 1)\""
check "server healthy after garbage" bash -c "curl -sf '$API/-/healthy' >/dev/null"

# Basic auth.
check "basic auth target: up == 1 and sample stored" \
  q 'auth_metric' 'len(r)==1 and r[0]["value"][1]=="42" and r[0]["metric"].get("team")=="a"'
check "honor_labels=false: clashing job label kept as exported_job" \
  q 'auth_metric' 'r[0]["metric"]["job"]=="auth" and r[0]["metric"]["exported_job"]=="inner"'
check "wrong password: up == 0 with HTTP 401" bash -c "
q 'up{job=\"badauth\"}' 'len(r)==1 and r[0][\"value\"][1]==\"0\"' &&
curl -s '$API/api/v1/targets' | python3 -c \"import json,sys
d=[t for t in json.load(sys.stdin)['data']['activeTargets'] if t['scrapePool']=='badauth'][0]
sys.exit(0 if '401' in d['lastError'] else 1)\""

# OpenMetrics: _total and _created kept, float-second timestamps, units in metadata.
check "openmetrics: om_requests_total stored at its float-seconds timestamp" eventually 5 bash -c "
curl -s --get --data-urlencode 'query=timestamp(om_requests_total)' '$API/api/v1/query' |
python3 -c \"import json,sys
r=json.load(sys.stdin)['data']['result']
sys.exit(0 if len(r)==1 and r[0]['value'][1]=='$OM_TS' else 1)\""
check "openmetrics: _created stored, as Prometheus 2.42 does" q 'om_requests_created' 'len(r)==1 and r[0]["value"][1]=="12"'
check "openmetrics: unit in metadata" bash -c "
curl -s '$API/api/v1/metadata?metric=om_temp_celsius' | python3 -c \"import json,sys
d=json.load(sys.stdin)['data']
sys.exit(0 if d['om_temp_celsius'][0]=={'type':'gauge','help':'','unit':'celsius'} else 1)\""

# TLS: CA file + server_name verifies; without server_name the IP does not match the
# certificate; insecure_skip_verify skips the check.
check "tls: ca_file + server_name -> up == 1" eventually 5 q 'tls_metric{job="tls"}' 'len(r)==1 and r[0]["value"][1]=="3"'
check "tls: without server_name -> up == 0 (certificate mismatch)" \
  q 'up{job="tls_noname"}' 'len(r)==1 and r[0]["value"][1]=="0"'
check "tls: insecure_skip_verify -> up == 1" q 'up{job="tls_insecure"}' 'len(r)==1 and r[0]["value"][1]=="1"'

# file_sd: targets and labels from a JSON file, re-read when it changes.
check "file_sd: target found with its labels" eventually 5 q 'up{job="sd"}' 'len(r)==1 and r[0]["metric"]["sd"]=="one" and r[0]["value"][1]=="1"'
check "file_sd: __meta_filepath among discovered labels" bash -c "
curl -s '$API/api/v1/targets' | python3 -c \"import json,sys
d=[t for t in json.load(sys.stdin)['data']['activeTargets'] if t['scrapePool']=='sd'][0]
sys.exit(0 if d['discoveredLabels']['__meta_filepath']=='$TMP/sd/a.json' else 1)\""
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"sd": "two"}}]\n' $P_TLS >"$TMP/sd/a.json.tmp"
mv "$TMP/sd/a.json.tmp" "$TMP/sd/a.json"
check "file_sd: changed file re-read (sd=two scraped)" eventually 8 q 'up{job="sd",sd="two"}' 'len(r)==1 and r[0]["value"][1]=="1"'
check "file_sd: old target's series go stale" eventually 8 q 'up{job="sd",sd="one"}' 'len(r)==0'

# A series that leaves a page is marked stale; the other stays.
check "vanish: both series present" q 'vanish_metric' 'len(r)==2'
check "vanish: relabel_configs labeldrop removed __tmp label from discovered set" bash -c "
curl -s '$API/api/v1/targets' | python3 -c \"import json,sys
d=[t for t in json.load(sys.stdin)['data']['activeTargets'] if t['scrapePool']=='vanish'][0]
sys.exit(0 if d['labels']=={'instance':'127.0.0.1:$P_VAN','job':'vanish'} else 1)\""
printf 'vanish_metric{a="1"} 7\n' >"$TMP/van.prom.new" && mv "$TMP/van.prom.new" "$TMP/van.prom"
check "vanish: disappeared series is stale at once (no 5m lookback)" \
  eventually 5 q 'vanish_metric' 'len(r)==1 and r[0]["metric"]["a"]=="1"'
# The target goes away: up == 0 and its series go stale.
kill $VAN_PID
check "vanish: target gone -> up == 0" eventually 5 q 'up{job="vanish"}' 'len(r)==1 and r[0]["value"][1]=="0"'
check "vanish: target gone -> its series are stale" q 'vanish_metric' 'len(r)==0'

# Reload without the vanish job: its target leaves /api/v1/targets and, after 2 intervals +
# 10 %, its report series go stale.
write_config without-vanish
kill -HUP $CAIRN_PID
check "reload: vanish job removed from targets" eventually 5 bash -c "
curl -s '$API/api/v1/targets' | python3 -c \"import json,sys
d=json.load(sys.stdin)['data']['activeTargets']
sys.exit(0 if d and not [t for t in d if t['scrapePool']=='vanish'] else 1)\""
check "reload: removed target's up series goes stale" eventually 8 q 'up{job="vanish"}' 'len(r)==0'
check "reload: node target kept scraping" eventually 5 q 'up{job="node"}' 'len(r)==1 and r[0]["value"][1]=="1"'
# A broken file keeps the running configuration.
cp "$TMP/cairn.yml" "$TMP/cairn.yml.good"
printf 'scrape_configs:\n  - job_name: x\n    bogus_key: 1\n' >"$TMP/cairn.yml"
kill -HUP $CAIRN_PID
sleep 1.5
check "bad reload logged with the key and line" grep -q 'bogus_key' "$TMP/cairn.log"
check "bad reload keeps scraping" q 'up{job="node"}' 'len(r)==1 and r[0]["value"][1]=="1"'
cp "$TMP/cairn.yml.good" "$TMP/cairn.yml"

# Shutdown writes staleness markers: after a restart without a scrape config nothing is current.
kill -TERM $CAIRN_PID
wait $CAIRN_PID 2>/dev/null
check "shutdown: clean exit, no sanitizer report" bash -c "! grep -qE 'Sanitizer|runtime error' '$TMP/cairn.log'"
"$CAIRN" --web.listen-address=127.0.0.1:$P_API --storage.tsdb.path="$TMP/data" >>"$TMP/cairn.log" 2>&1 &
CAIRN_PID=$!
pids+=($CAIRN_PID)
wait_port $P_API
check "shutdown: up is stale after restart" eventually 5 q 'up' 'len(r)==0'
check "shutdown: node series stale after restart" q 'count(node_cpu_seconds_total)' 'len(r)==0'
check "shutdown: data is still there for range queries" bash -c "
curl -s --get --data-urlencode 'query=count_over_time(up{job=\"node\"}[10m])' '$API/api/v1/query' |
python3 -c \"import json,sys
r=json.load(sys.stdin)['data']['result']
sys.exit(0 if len(r)==1 and float(r[0]['value'][1])>=3 else 1)\""

if [ $failed -gt 0 ]; then echo "--- cairn log"; tail -30 "$TMP/cairn.log"; fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
