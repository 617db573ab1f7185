#!/usr/bin/env bash
# tests/integration/test_scrape_corners_vs_prometheus.sh -- exposition-format corner cases, with
# Prometheus 2.42 as the oracle.
#
# Thirty text-format pages and twenty-eight OpenMetrics pages, each a small corner of the format
# (blanks, tabs, CRLF, missing newline or # EOF, escapes, NaN/Inf/hex/overflowing values,
# timestamps, trailing commas, exemplars, units, comments, duplicate TYPE lines, ...), are served
# by one python3 server and scraped by a real Prometheus and by bin/cairn with the same
# configuration. For every page both must agree on whether it is accepted (max of up over the
# last scrapes, so a scrape that times out on a busy machine does not count), on the series and
# values stored, and on /api/v1/metadata. Prints "N passed, N failed" last.
set -u
BIN=${BIN:-bin}
CAIRN=$(cd "$(dirname "$BIN/cairn")" && pwd)/cairn
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
passed=0 failed=0
pids=()
TMP=$(mktemp -d /tmp/cairn-corners-XXXXXX)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
for b in "$CAIRN" "$PROMETHEUS"; do
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
P_SRV=$(free_port) P_PROM=$(free_port) P_CAIRN=$(free_port)

# Pages: c* are served as text/plain; version=0.0.4, o* as OpenMetrics 1.0.0.
mkdir -p "$TMP/pages"
printf '  lead_space 1\n' >"$TMP/pages/c01.prom"
printf 'trail_space 1   \nm2 2 1700000000000  \n' >"$TMP/pages/c02.prom"
printf 'nospace{a="b"}1\n' >"$TMP/pages/c03.prom"
printf 'tabs\t1\nt2{a="b"}\t\t2\n' >"$TMP/pages/c04.prom"
printf 'crlf 1\r\n' >"$TMP/pages/c05.prom"
printf 'no_newline 1' >"$TMP/pages/c06.prom"
printf 'a 1\n   \n\t\nb 2\n' >"$TMP/pages/c07.prom"
printf '# HELP nohelp\n# HELP nohelp2 \nnohelp 1\n' >"$TMP/pages/c08.prom"
printf 'empty_set{} 1\n' >"$TMP/pages/c09.prom"
printf 'v1 Inf\nv2 +inf\nv3 nan\nv4 -Inf\nv5 infinity\n' >"$TMP/pages/c10.prom"
printf 'hex 0x1p3\n' >"$TMP/pages/c11.prom"
printf 'a:b:c 1\n' >"$TMP/pages/c12.prom"
printf '# TYPE dup counter\n# TYPE dup gauge\ndup 1\n' >"$TMP/pages/c13.prom"
printf 'e1 1E-3\ne2 1e+3\ne3 .5\ne4 5.\n' >"$TMP/pages/c14.prom"
printf '#   TYPE   sp   gauge\nsp 1\n' >"$TMP/pages/c15.prom"
printf 'm{a="b" , c="d"} 1\n' >"$TMP/pages/c16.prom"
printf 'm{a="b",,} 1\n' >"$TMP/pages/c17.prom"
printf 'ts_neg 1 -5\n' >"$TMP/pages/c18.prom"
printf 'ts_float 1 1.5\n' >"$TMP/pages/c19.prom"
printf 'lab{a="\\x"} 1\n' >"$TMP/pages/c20.prom"
printf 'm {a="b"} 1\n' >"$TMP/pages/c21.prom"
printf 'big 1e400\n' >"$TMP/pages/c22.prom"
printf 'under 1_000\n' >"$TMP/pages/c23.prom"
printf '#comment_no_space\nm 1\n' >"$TMP/pages/c24.prom"
printf '# TYPE x summary\nx{quantile="0.5"} 1\nx_sum 1\nx_count 1\n# TYPE x_count gauge\n' >"$TMP/pages/c25.prom"
printf 'colon_label{a:b="c"} 1\n' >"$TMP/pages/c26.prom"
printf 'utf{a="ü€"} 1\n' >"$TMP/pages/c27.prom"
printf 'm{a="b"} 1 2 3\n' >"$TMP/pages/c28.prom"
printf '# HELP h a\\tb \\\\ \\n c\nh 1\n' >"$TMP/pages/c29.prom"
printf 'x 1\n# EOF\n' >"$TMP/pages/c30.prom"
printf 'm 1\n' >"$TMP/pages/o01.prom"
printf 'm 1\n# EOF\nx 2\n' >"$TMP/pages/o02.prom"
printf 'm 1 1.5\n# EOF\n' >"$TMP/pages/o03.prom"
printf 'm 1 -1.5\n# EOF\n' >"$TMP/pages/o04.prom"
printf '# TYPE c counter\nc_total 1 # {a="b"} 1 123.4\n# EOF\n' >"$TMP/pages/o05.prom"
printf '# TYPE c counter\nc 1\n# EOF\n' >"$TMP/pages/o06.prom"
printf '# HELP m\nm 1\n# EOF\n' >"$TMP/pages/o07.prom"
printf 'a 1\n\nb 2\n# EOF\n' >"$TMP/pages/o08.prom"
printf 'm  1\n# EOF\n' >"$TMP/pages/o09.prom"
printf 'm{a="b"}1\n# EOF\n' >"$TMP/pages/o10.prom"
printf '# TYPE m_seconds gauge\n# UNIT m_seconds milliseconds\nm_seconds 1\n# EOF\n' >"$TMP/pages/o11.prom"
printf '# TYPE g gauge\ng 1\ng_created 5\n# EOF\n' >"$TMP/pages/o12.prom"
printf 'm 1 1e3\n# EOF\n' >"$TMP/pages/o13.prom"
printf '# TYPE m counter\nm_total 1\n# TYPE m counter\n# EOF\n' >"$TMP/pages/o14.prom"
printf '# TYPE i info\ni 1\n# EOF\n' >"$TMP/pages/o15.prom"
printf 'a NaN\nb +Inf\nc inf\nd -inf\n# EOF\n' >"$TMP/pages/o16.prom"
printf 'm 1\n# EOF' >"$TMP/pages/o17.prom"
printf 'm{a="t\\tb"} 1\n# EOF\n' >"$TMP/pages/o18.prom"
printf '# TYPE s stateset\ns{s="a"} 2\n# EOF\n' >"$TMP/pages/o19.prom"
printf 'm 1 1.5e3\n# EOF\n' >"$TMP/pages/o20.prom"
printf '# random comment\nm 1\n# EOF\n' >"$TMP/pages/o21.prom"
printf 'm{a="b",} 1\n# EOF\n' >"$TMP/pages/o22.prom"
printf 'm 1 # {a="b"} 1\n# EOF\n' >"$TMP/pages/o23.prom"
printf '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 3\nh_created 1\n# EOF\n' >"$TMP/pages/o24.prom"
printf 'm 0x10\n# EOF\n' >"$TMP/pages/o25.prom"
printf 'm 1\n# EOF \n' >"$TMP/pages/o26.prom"
printf '# HELP m a \\"q\\" \\\\ \\n b\nm 1\n# EOF\n' >"$TMP/pages/o27.prom"
printf 'm{a="b" , c="d"} 1\n# EOF\n' >"$TMP/pages/o28.prom"

cat >"$TMP/srv.py" <<'EOF'
import http.server, os, sys
d = sys.argv[2]
TEXT = "text/plain; version=0.0.4"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.strip("/").split("?")[0]
        try:
            body = open(os.path.join(d, name + ".prom"), "rb").read()
        except OSError:
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", OM if name.startswith("o") else TEXT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
{
  echo "global: {scrape_interval: 2s, scrape_timeout: 2s}"
  echo "scrape_configs:"
  for f in "$TMP"/pages/*.prom; do
    n=$(basename "$f" .prom)
    echo "  - {job_name: $n, metrics_path: /$n, static_configs: [{targets: ['127.0.0.1:$P_SRV']}]}"
  done
} >"$TMP/scrape.yml"
n_jobs=$(ls "$TMP"/pages/*.prom | wc -l)

python3 "$TMP/srv.py" $P_SRV "$TMP/pages" >"$TMP/srv.log" 2>&1 &
pids+=($!)
wait_port $P_SRV || { echo "page server did not start"; echo "0 passed, 1 failed"; exit 1; }
"$PROMETHEUS" --config.file="$TMP/scrape.yml" --web.listen-address=127.0.0.1:$P_PROM \
  --storage.tsdb.path="$TMP/prom" >"$TMP/prom.log" 2>&1 &
pids+=($!)
"$CAIRN" --config.file="$TMP/scrape.yml" --web.listen-address=127.0.0.1:$P_CAIRN \
  --storage.tsdb.path="$TMP/cairn" >"$TMP/cairn.log" 2>&1 &
pids+=($!)
wait_port $P_PROM && wait_port $P_CAIRN || { echo "servers did not start"; echo "0 passed, 1 failed"; exit 1; }

# Every job has at least three scrapes on both servers.
scraped() { # port
  curl -s --get --data-urlencode 'query=count(count_over_time(up[1m]) >= 3)' \
    "http://127.0.0.1:$1/api/v1/query" |
    python3 -c "import json,sys
r=json.load(sys.stdin)['data']['result']
sys.exit(0 if r and r[0]['value'][1]=='$n_jobs' else 1)" 2>/dev/null
}
for _ in $(seq 1 60); do scraped $P_PROM && scraped $P_CAIRN && break; sleep 0.5; done
if scraped $P_PROM && scraped $P_CAIRN; then ok "every page scraped 3 times by both"; else bad "every page scraped 3 times by both"; fi

# A page is "accepted" once one scrape of it succeeded, "rejected" when none did and the last
# error is about the page itself; a transport error (a timeout on a busy machine) leaves it
# "unknown" until a later scrape decides.
verdicts() { # port -> lines "job verdict"
  curl -s --get --data-urlencode 'query=max_over_time(up[2m])' "http://127.0.0.1:$1/api/v1/query" \
    >"$TMP/up.json"
  curl -s "http://127.0.0.1:$1/api/v1/targets" >"$TMP/targets.json"
  python3 -c "import json
up={x['metric']['job']:x['value'][1] for x in json.load(open('$TMP/up.json'))['data']['result']}
err={t['scrapePool']:t['lastError'] for t in json.load(open('$TMP/targets.json'))['data']['activeTargets']}
transport=('deadline','timeout','Timeout','connect','refused','reset','Empty reply')
out=[]
for job in sorted(err):
    if up.get(job)=='1': v='accepted'
    elif err[job] and not any(w in err[job] for w in transport): v='rejected'
    else: v='unknown'
    out.append(job+' '+v)
print('\n'.join(out))"
}
decided() { ! verdicts $P_PROM | grep -q unknown && ! verdicts $P_CAIRN | grep -q unknown; }
for _ in $(seq 1 40); do decided && break; sleep 1; done
if decided; then ok "every page decided on both servers"; else bad "every page decided on both servers"; fi

dump() { # port, prefix
  verdicts $1 >"$2.accepted"
  curl -s --get --data-urlencode 'query=last_over_time({job=~".+",__name__!~"up|scrape_.+"}[20s])' \
    "http://127.0.0.1:$1/api/v1/query" |
    python3 -c "import json,sys
r=json.load(sys.stdin)['data']['result']
print('\n'.join(sorted(json.dumps([x['metric'],x['value'][1]],sort_keys=True) for x in r)))" >"$2.values"
  curl -s "http://127.0.0.1:$1/api/v1/metadata" |
    python3 -c "import json,sys
d=json.load(sys.stdin)['data']
print(json.dumps({k:sorted(v,key=json.dumps) for k,v in d.items()},sort_keys=True,indent=0))" >"$2.meta"
}
dump $P_PROM "$TMP/p"
dump $P_CAIRN "$TMP/c"
same() { # name, suffix (an empty dump is a failure: the query itself went wrong)
  if [ -s "$TMP/p.$2" ] && diff "$TMP/p.$2" "$TMP/c.$2" >"$TMP/diff.$2"; then
    ok "$1 ($(wc -l <"$TMP/p.$2") lines)"
  else
    bad "$1"
    echo "--- < prometheus, > cairn"
    head -20 "$TMP/diff.$2"
  fi
}
same "same pages accepted and rejected" accepted
same "same series and values stored" values
same "same metadata" meta
acc=$(grep -c ' accepted' "$TMP/c.accepted") rej=$(grep -c ' rejected' "$TMP/c.accepted")
if [ "$acc" -ge 20 ] && [ "$rej" -ge 15 ]; then
  ok "cases cover both outcomes ($acc accepted, $rej rejected)"
else
  bad "cases cover both outcomes ($acc accepted, $rej rejected)"
fi

if [ $failed -gt 0 ]; then echo "--- cairn log"; tail -20 "$TMP/cairn.log"; fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
