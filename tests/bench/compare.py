#!/usr/bin/env python3
"""Side-by-side benchmark: Cairn against Prometheus 2.42 on the same machine and data.

For each workload, each server in turn (fresh temporary directory, loopback only) receives the
same deterministic remote-write load from `cairnctl bench write`; then the harness measures CPU,
memory, disk bytes per sample, a Grafana-like query set and restart (WAL replay) time, repeats
the whole cycle, and prints one table of medians with min-max and the Cairn/Prometheus ratio.
Answers of every query are compared between the two servers; differences are marked.

Queries are timed the same way on both servers: over one persistent HTTP/1.1 connection per
server (as Grafana's data source keeps its connections alive; a minimal socket client, so the
client's own cost does not swamp sub-millisecond lookups), after one warm-up request, as the
median of at least QUERY_MIN_REPS requests, repeated up to QUERY_MAX_REPS or QUERY_BUDGET_S
seconds, so sub-millisecond lookups are not a median of three noisy samples. One further figure
times /api/v1/labels over a new connection per request, which includes connection set-up.

Every server it starts, it stops; every wait is bounded.

usage: compare.py [--workloads W1,W2,W3] [--reps 3] [--out FILE] [--keep]
"""
import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("CAIRN_BIN_DIR", os.path.join(ROOT, "build", "release", "bin"))
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

WORKLOADS = {
    # name: (series, duration_s, interval_s, connections, queries?)
    "W1": (10_000, 3600, 15, 4, True),
    "W2": (100_000, 1200, 15, 4, True),
    "W3": (10_000, 86400, 15, 4, False),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, timeout=300, get=False):
    """POSTs data form-encoded (or GETs it as a query string); returns (status, body, seconds)."""
    if get and data is not None:
        url += "?" + urllib.parse.urlencode(data, doseq=True)
        data = None
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    req = urllib.request.Request(url, data=body)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out = r.read()
            return r.status, out, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - t0
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return 0, str(e).encode(), time.monotonic() - t0


QUERY_MIN_REPS = 5
QUERY_MAX_REPS = 200
QUERY_BUDGET_S = 1.0


class KeepAlive:
    """One persistent HTTP/1.1 connection to a server over a plain socket, with just the parsing a
    timing client needs (status line, Content-Length or chunked body): http.client costs tens of
    microseconds per request in Python, as much as a small lookup takes a server. Reconnects
    (once per request) when the server closed the connection."""

    def __init__(self, port, timeout=300):
        self.port, self.timeout = port, timeout
        self.sock = None
        self.buf = bytearray()
        # Received into one preallocated buffer: a fresh 1 MiB bytes object per recv() call
        # cost about 16 microseconds, as much as a whole small request.
        self.rbuf = bytearray(1 << 16)
        self.rview = memoryview(self.rbuf)

    def _recv(self):
        n = self.sock.recv_into(self.rbuf)
        if n == 0:
            raise ConnectionError("connection closed")
        self.buf += self.rview[:n]

    def _read_until(self, sep):
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(sep)]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            self._recv()

    def _read_n(self, n):
        while len(self.buf) < n:
            self._recv()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _response(self):
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip().lower()
        if hdrs.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                n = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if n == 0:
                    while self._read_until(b"\r\n"):  # trailers, then the empty line
                        pass
                    break
                parts.append(self._read_n(n))
                self._read_n(2)
            body = b"".join(parts)
        else:
            body = self._read_n(int(hdrs.get("content-length", "0")))
        return status, body, hdrs.get("connection") == "close"

    def request(self, path, data, get=False, fresh=False):
        """Like http(): returns (status, body, seconds). fresh: over a new connection, whose
        set-up is timed too, closed afterwards."""
        if fresh:
            self.close()
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else b""
        if get and body:
            path, body = path + "?" + body.decode(), b""
        if body:
            req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   f"Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:
            req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
        for attempt in range(2):
            t0 = time.monotonic()
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = bytearray()
                    if not fresh:
                        t0 = time.monotonic()
                self.sock.sendall(req)
                status, out, close = self._response()
                secs = time.monotonic() - t0
                if close or fresh:
                    self.close()
                return status, out, secs
            except (ConnectionError, socket.timeout, OSError, ValueError, IndexError) as e:
                self.close()
                if attempt == 1:
                    return 0, str(e).encode(), time.monotonic() - t0
        return 0, b"", 0.0

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def time_query(fn):
    """Median seconds of fn() -> (status, body, seconds) after one warm-up; returns (s, body)."""
    fn()
    times, body = [], b""
    t_end = time.monotonic() + QUERY_BUDGET_S
    while len(times) < QUERY_MIN_REPS or (len(times) < QUERY_MAX_REPS and
                                           time.monotonic() < t_end):
        _, body, secs = fn()
        times.append(secs)
    return statistics.median(times), body


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def proc_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path):
    """Bytes a directory occupies on disk (allocated blocks, as du counts them)."""
    total = 0
    for dp, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dp, fn)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Server:
    def __init__(self, kind, datadir, port, log):
        self.kind, self.datadir, self.port, self.log = kind, datadir, port, log
        self.proc = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self):
        if self.kind == "prometheus":
            cfg = os.path.join(self.datadir, "..", f"prom-{self.port}.yml")
            with open(cfg, "w") as f:
                f.write("global:\n  scrape_interval: 1h\n")
            args = [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.datadir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver", "--web.enable-admin-api",
                    "--storage.tsdb.retention.time=3650d", "--log.level=warn"]
        else:
            args = [os.path.join(BIN, "cairn"), f"--storage.tsdb.path={self.datadir}",
                    f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api",
                    "--storage.tsdb.retention.time=3650d", "--log.level=warn"]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = t0 + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}")
            st, _, _ = http(self.base + "/-/ready", timeout=5)
            if st == 200:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} not ready after 600 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def query_set(start, end):
    """The Grafana-like panels: (name, path, params)."""
    rng = {"start": str(start), "end": str(end), "step": "15"}
    q = lambda expr: dict(rng, query=expr)
    return [
        ("sum by (job) rate", "/api/v1/query_range",
         q('sum by (job) (rate(node_cpu_seconds_total[5m]))')),
        ("sum by (mode) rate", "/api/v1/query_range",
         q('sum by (mode) (rate(node_cpu_seconds_total[5m]))')),
        ("topk", "/api/v1/query_range",
         q('topk(5, rate(node_network_receive_bytes_total[5m]))')),
        ("histogram_quantile", "/api/v1/query_range",
         q('histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))')),
        ("single-instance rate", "/api/v1/query_range",
         q('rate(node_cpu_seconds_total{instance="host-00000:9100",mode="user"}[5m])')),
        ("count all series", "/api/v1/query_range", q('count({__name__=~".+"})')),
        ("labels", "/api/v1/labels", {"start": str(start), "end": str(end)}),
        ("__name__ values", "/api/v1/label/__name__/values", {"start": str(start), "end": str(end)}),
        ("series by instance", "/api/v1/series",
         {"match[]": '{instance="host-00001:9100"}', "start": str(start), "end": str(end)}),
        ("series by metric", "/api/v1/series",
         {"match[]": "node_load1", "start": str(start), "end": str(end)}),
    ]


def normalize(body):
    """Canonical form of an API answer for comparison (sorted series, floats parsed)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ("invalid json", body[:200])
    if doc.get("status") != "success":
        return ("error", doc.get("errorType"), doc.get("error"))
    data = doc["data"]
    if isinstance(data, list):
        if data and isinstance(data[0], dict):
            return sorted(json.dumps(d, sort_keys=True) for d in data)
        return sorted(data)
    res = data.get("result", [])
    out = []
    for s in res:
        vals = s.get("values") or ([s["value"]] if "value" in s else [])
        out.append((json.dumps(s.get("metric", {}), sort_keys=True),
                    [(round(float(t), 3), float(v)) for t, v in vals]))
    out.sort()
    return out


def same(a, b, rel=1e-6):
    if type(a) != type(b):
        return False
    if isinstance(a, list) and a and isinstance(a[0], tuple) and len(a[0]) == 2 \
            and isinstance(a[0][1], list):
        if len(a) != len(b):
            return False
        for (ma, va), (mb, vb) in zip(a, b):
            if ma != mb or len(va) != len(vb):
                return False
            for (ta, xa), (tb, xb) in zip(va, vb):
                if ta != tb:
                    return False
                if math.isnan(xa) and math.isnan(xb):
                    continue
                if xa != xb and abs(xa - xb) > rel * max(abs(xa), abs(xb)):
                    return False
        return True
    return a == b


def run_one(kind, wl, start_ms, tmp, rep, logdir, answers):
    series, dur, interval, conns, with_queries = WORKLOADS[wl]
    datadir = os.path.join(tmp, f"{kind}-{wl}-{rep}")
    os.makedirs(datadir)
    port = free_port()
    log = open(os.path.join(logdir, f"{kind}-{wl}-{rep}.log"), "w")
    srv = Server(kind, datadir, port, log)
    fig = {}
    try:
        srv.start()
        pid = srv.proc.pid
        cpu0 = proc_cpu_seconds(pid)
        cmd = [os.path.join(BIN, "cairnctl"), "bench", "write", srv.base + "/api/v1/write",
               f"--series={series}", f"--duration={dur}s", f"--interval={interval}s",
               f"--connections={conns}", f"--start={start_ms / 1000:.3f}", "--seed=42"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        log.write(out.stderr)
        kv = dict(p.split("=", 1) for p in out.stdout.split() if "=" in p)
        samples = int(kv.get("samples", 0))
        fig["ingest samples/s"] = float(kv.get("samples_per_sec", 0))
        fig["ingest errors"] = int(kv.get("errors", -1))
        cpu1 = proc_cpu_seconds(pid)
        fig["CPU s per M samples"] = (cpu1 - cpu0) / max(samples, 1) * 1e6
        fig["RSS after ingest MiB"] = proc_rss_bytes(pid) / 2**20
        end_s = (start_ms + dur * 1000) / 1000
        if with_queries:
            qstart = end_s - min(dur, 3600)
            client = KeepAlive(port)
            for name, path, params in query_set(qstart, end_s):
                get = path.startswith("/api/v1/label/")  # served on GET only, as Prometheus does
                secs, body = time_query(lambda: client.request(path, params, get=get))
                fig[f"query {name} ms"] = secs * 1000
                if rep == 0:
                    answers.setdefault(name, {})[kind] = normalize(body)
            lparams = {"start": str(qstart), "end": str(end_s)}
            secs, _ = time_query(lambda: client.request("/api/v1/labels", lparams, fresh=True))
            fig["labels on a new connection ms"] = secs * 1000
            client.close()
            fig["RSS after queries MiB"] = proc_rss_bytes(pid) / 2**20
        # Disk bytes per sample with everything persisted.
        st, body, _ = http(srv.base + "/api/v1/admin/tsdb/snapshot", {"skip_head": "false"})
        snap = None
        try:
            snap = json.loads(body)["data"]["name"]
        except (ValueError, KeyError, TypeError):
            log.write(f"snapshot failed: {st} {body[:200]!r}\n")
        if snap:
            fig["disk bytes/sample"] = dir_bytes(os.path.join(datadir, "snapshots", snap)) / max(
                samples, 1)
        srv.stop()
        fig["restart (WAL replay) s"] = srv.start()
    finally:
        srv.stop()
        log.close()
        shutil.rmtree(datadir, ignore_errors=True)
    return fig


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    for p in (PROMETHEUS, os.path.join(BIN, "cairn"), os.path.join(BIN, "cairnctl")):
        if not os.path.exists(p):
            sys.exit(f"compare: {p} is missing (make MODE=release; make deps)")
    tmp = tempfile.mkdtemp(prefix="cairn-bench-")
    logdir = os.path.join(tmp, "logs")
    os.makedirs(logdir)
    lines = []
    diffs = []
    try:
        for wl in args.workloads.split(","):
            series, dur, interval, _, _ = WORKLOADS[wl]
            start_ms = (int(time.time()) - dur) // 3600 * 3600 * 1000
            results = {"prometheus": [], "cairn": []}
            answers = {}
            for rep in range(args.reps):
                for kind in ("prometheus", "cairn"):
                    print(f"{wl} rep {rep + 1}/{args.reps}: {kind}", file=sys.stderr, flush=True)
                    results[kind].append(run_one(kind, wl, start_ms, tmp, rep, logdir, answers))
            keys = list(results["prometheus"][0].keys())
            for k in results["cairn"][0]:
                if k not in keys:
                    keys.append(k)
            lines.append(f"\n### {wl}: {series:,} series x {dur // 60} min at {interval} s "
                         f"({series * (dur // interval):,} samples), median of {args.reps} "
                         f"[min-max]\n")
            lines.append("| figure | Prometheus 2.42 | Cairn | Cairn / Prometheus | answers |")
            lines.append("| --- | --- | --- | --- | --- |")
            for k in keys:
                pv = [r[k] for r in results["prometheus"] if k in r]
                cv = [r[k] for r in results["cairn"] if k in r]
                pm = statistics.median(pv) if pv else None
                cm = statistics.median(cv) if cv else None
                ratio = f"{cm / pm:.2f}" if pm and cm is not None else "-"
                ans = ""
                if k.startswith("query ") and k.endswith(" ms"):
                    name = k[6:-3]
                    a = answers.get(name, {})
                    if "prometheus" in a and "cairn" in a:
                        ok = same(a["prometheus"], a["cairn"])
                        ans = "identical" if ok else "DIFFERENT"
                        if not ok:
                            diffs.append(f"{wl} {name}")
                            pa, ca = a["prometheus"], a["cairn"]
                            print(f"{wl} {name}: answers differ:\n  prometheus: "
                                  f"{str(pa)[:600]}\n  cairn:      {str(ca)[:600]}",
                                  file=sys.stderr)
                rng = lambda v: f" [{fmt(min(v))}-{fmt(max(v))}]" if len(v) > 1 else ""
                lines.append(f"| {k} | {fmt(pm)}{rng(pv)} | {fmt(cm)}{rng(cv)} | {ratio} | {ans} |")
            print("\n".join(lines[-len(keys) - 3:]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    head = [f"# Cairn vs Prometheus 2.42 — {time.strftime('%Y-%m-%d')}", "",
            f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}. Both servers on loopback, one at a time, "
            f"fresh data directories, the same `cairnctl bench write` load (seed 42).",
            "Ratios below 1 favour Cairn for every figure except ingest samples/s."]
    if diffs:
        head.append("\nQueries whose answers differ: " + ", ".join(diffs))
    report = "\n".join(head + lines) + "\n"
    print(report)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
