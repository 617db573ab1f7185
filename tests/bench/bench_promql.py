#!/usr/bin/env python3
"""PromQL latency over HTTP: Cairn against Prometheus 2.42, same machine, same data.

Starts Prometheus (remote-write receiver, no scrape jobs) and Cairn, each on a free 127.0.0.1
port with a temporary directory, loads the same node-exporter-shaped series into both with
`cairnctl bench write` (default 10,000 series, 1 h at 15 s, fixed start and seed), then runs range
queries typical of Grafana panels (1 h at 15 s steps) on each server in turn: one warm-up, then
--reps timed runs (POST /api/v1/query_range, form-encoded, wall time of the whole request
including JSON transfer). Prints a table of medians with min-max and the Cairn/Prometheus ratio;
the answers of both servers are compared with the differential test's rules and any difference
is marked. Run by hand (not by make test); every wait is bounded, both servers are stopped on exit.

usage: bench_promql.py [--series 10000] [--reps 5] [--cairn PATH] [--keep]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import promql_vs_prometheus as pvp  # noqa: E402  (answer comparison and HTTP client)

START = 1699999200  # hour-aligned, fixed: the data and the query window never move
QUERIES = [
    ("sum by (job) (rate(x[5m]))", "sum by (job) (rate(node_cpu_seconds_total[5m]))"),
    ("histogram_quantile(0.9, sum by (le) (rate(h[5m])))",
     "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("topk(5, sum by (instance) (rate(x[5m])))",
     "topk(5, sum by (instance) (rate(node_network_receive_bytes_total[5m])))"),
    ("group_left join (cpu share of instance)",
     "sum by (instance, mode) (rate(node_cpu_seconds_total[5m])) / on (instance) group_left "
     "sum by (instance) (rate(node_cpu_seconds_total[5m]))"),
    ("100 - avg by (instance) (rate(idle[5m]))*100",
     '100 - (avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)'),
    ("memory used % (vector/vector)",
     "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100"),
    ("raw selector node_load1", "node_load1"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cairn", default="")
    ap.add_argument("--cairnctl", default="")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    rel = os.path.join(ROOT, "build", "release", "bin")
    dbg = os.path.join(ROOT, "bin")
    pick = lambda name: (os.path.join(rel, name) if os.path.exists(os.path.join(rel, name))
                         else os.path.join(dbg, name))
    cairn = a.cairn or pick("cairn")
    cairnctl = a.cairnctl or pick("cairnctl")
    tmp = tempfile.mkdtemp(prefix="cairn-benchpromql-")
    procs = []
    try:
        pport, cport = free_port(), free_port()
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        plog = open(os.path.join(tmp, "prometheus.log"), "w")
        procs.append(subprocess.Popen(
            [a.prometheus, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(tmp, "prom"),
             "--web.listen-address=127.0.0.1:%d" % pport, "--web.enable-remote-write-receiver",
             "--storage.tsdb.retention.time=100y"], stdout=plog, stderr=subprocess.STDOUT))
        clog = open(os.path.join(tmp, "cairn.log"), "w")
        procs.append(subprocess.Popen(
            [cairn, "--web.listen-address=127.0.0.1:%d" % cport,
             "--storage.tsdb.path=" + os.path.join(tmp, "cairn"),
             "--storage.tsdb.retention.time=100y"], stdout=clog, stderr=subprocess.STDOUT))
        servers = [("prometheus", "http://127.0.0.1:%d" % pport),
                   ("cairn", "http://127.0.0.1:%d" % cport)]
        for name, url in servers:
            if not wait_ready(url):
                print("%s did not become ready" % name)
                return 1
        for name, url in servers:
            t0 = time.monotonic()
            out = subprocess.run(
                [cairnctl, "bench", "write", url + "/api/v1/write", "--series=%d" % a.series,
                 "--duration=1h", "--interval=15s", "--start=%d" % START, "--seed=7"],
                capture_output=True, text=True, timeout=600)
            line = (out.stdout.strip().splitlines() or [""])[0]
            print("load %-10s %.1f s  %s" % (name, time.monotonic() - t0, line))
            if out.returncode != 0 or "errors=0 " not in line:
                print(out.stdout, out.stderr)
                return 1
        form = {"start": str(START), "end": str(START + 3600), "step": "15"}
        clients = {name: pvp.Client(url) for name, url in servers}
        rows = []
        for label, q in QUERIES:
            f = dict(form, query=q)
            answers, times = {}, {}
            for name, _ in servers:
                answers[name] = clients[name].post("/api/v1/query_range", f)  # warm-up
                times[name] = []
            for _ in range(a.reps):
                for name, _ in servers:  # alternate, so both see the same machine state
                    t0 = time.monotonic()
                    st, body = clients[name].post("/api/v1/query_range", f)
                    times[name].append(time.monotonic() - t0)
                    if st != 200:
                        print("%s: %s failed: %s" % (name, label, pvp.short(body, 300)))
            (sp, p), (sc, c) = answers["prometheus"], answers["cairn"]
            why = pvp.compare(q, "range", sp, p, sc, c)
            nser = len(p.get("data", {}).get("result", []) or [])
            rows.append((label, nser, times["prometheus"], times["cairn"], why))
        print()
        print("%d series, 1 h at 15 s steps (241 points), median of %d after one warm-up; "
              "times in ms" % (a.series, a.reps))
        hdr = "| %-52s | %6s | %-22s | %-22s | %11s | %s |" % (
            "query", "series", "Prometheus 2.42", "Cairn", "Cairn/Prom", "same answer")
        print(hdr)
        print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
        for label, nser, tp, tc, why in rows:
            mp, mc = statistics.median(tp), statistics.median(tc)
            print("| %-52s | %6d | %-22s | %-22s | %11.2f | %s |" % (
                label, nser,
                "%.1f (%.1f-%.1f)" % (mp * 1e3, min(tp) * 1e3, max(tp) * 1e3),
                "%.1f (%.1f-%.1f)" % (mc * 1e3, min(tc) * 1e3, max(tc) * 1e3),
                mc / mp if mp > 0 else float("nan"), "yes" if why is None else "NO: " + why))
        return 0 if all(r[4] is None for r in rows) else 1
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
