#!/usr/bin/env python3
"""Differential PromQL test over HTTP: Cairn against a running Prometheus with the same data.

Driven by test_promql_vs_prometheus.sh, which starts both servers and loads the generated
node-exporter-shaped series into each with `cairnctl bench write`. This script then

  1. remote-writes a few hand-made series of special shapes (counter resets, gaps, staleness
     markers, NaN, +-Inf, negative values, jittered timestamps, a series that ends early, label
     values needing JSON escapes) into both servers, with a minimal WriteRequest encoder: the
     protobuf is written by hand (the schema is four messages) and the snappy block is made of
     literal elements only, which every snappy decoder accepts;
  2. runs every query of promql_queries.txt against both servers' /api/v1/query (at several
     times) and /api/v1/query_range (aligned 15 s and unaligned 60 s steps), POSTed
     form-encoded, and compares the answers: same status and errorType; same resultType, the
     same series (label sets), the same timestamps, values within 1e-6 relative (NaN equals NaN)
     and, when the values are identical, the same text. Where Prometheus guarantees an order
     (sort, sort_desc, topk/bottomk in instant queries) the order of the values must agree too.

  3. compares /api/v1/series, /api/v1/labels and /api/v1/label/<name>/values answers (GET,
     with match[], start and end) as sets;
  4. with --random N, also runs N generated queries (QueryGen, reproducible from --seed) with
     the same rules, except that absolute differences below 1e-12 pass and count_values labels
     compare to 14 digits (Go's libm and C's differ in last bits). The generator steers around
     the Prometheus 2.42 @-modifier bugs listed at the end of promql_queries.txt.

When the answers differ, Prometheus is asked again (up to 8 times): its answer may depend on
input order that comes out of a Go map (topk/bottomk ties, float cancellation). Cairn passes
when it matches any of them; when none matches but Prometheus' own answers vary, the case is
skipped. Prints each mismatch with both answers (truncated), then "N passed, N failed,
N skipped" counting queries x modes, and exits 1 on any failure. Every request has a timeout.

usage: promql_vs_prometheus.py --prom URL --cairn URL --start SECONDS --queries FILE
                               [--write] [--only SUBSTRING] [--random N --seed S --depth D] [-v]
"""
import argparse
import json
import math
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SKIP = "skip"  # a query whose Prometheus answers are not reproducible
MESSAGE_DIFFS = []  # (query, prometheus error, cairn error): reported, not failed
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

# ---- Remote-write encoding -------------------------------------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    """Field `num` of wire type 2 (bytes), 1 (fixed64) or 0 (varint)."""
    key = _varint((num << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _sample(value, ts_ms):
    # Sample{double value = 1; int64 timestamp = 2}
    body = _field(1, 1, struct.pack("<d", value))
    body += _field(2, 0, _varint(ts_ms & 0xFFFFFFFFFFFFFFFF))
    return body


def _timeseries(labels, samples):
    # TimeSeries{repeated Label labels = 1; repeated Sample samples = 2}; Label{name=1, value=2}
    body = b""
    for name, value in sorted(labels.items()):
        lab = _field(1, 2, name.encode()) + _field(2, 2, value.encode())
        body += _field(1, 2, lab)
    for ts, v in samples:
        body += _field(2, 2, _sample(v, ts))
    return body


def write_request(series):
    """WriteRequest{repeated TimeSeries timeseries = 1} from [(labels, [(ts_ms, value)])]."""
    return b"".join(_field(1, 2, _timeseries(l, s)) for l, s in series)


def snappy_literal(data):
    """Snappy block format: uncompressed length, then literal elements of at most 64 KiB."""
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i : i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:  # tag 61: the length-1 follows in two little-endian bytes
            out.append(61 << 2)
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


def remote_write(base, series):
    body = snappy_literal(write_request(series))
    req = urllib.request.Request(base + "/api/v1/write", data=body, method="POST")
    req.add_header("Content-Type", "application/x-protobuf")
    req.add_header("Content-Encoding", "snappy")
    req.add_header("X-Prometheus-Remote-Write-Version", "0.1.0")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def hand_made_series(start_s):
    """Series of special shapes over [start, start+1h) every 15 s (240 slots)."""
    t0 = start_s * 1000
    step = 15000
    n = 240
    out = []

    def add(labels, values, ts=None):
        samples = []
        for i, v in enumerate(values):
            if v is None:
                continue
            samples.append((ts[i] if ts else t0 + i * step, v))
        labels = dict(labels)
        labels.setdefault("job", "hm")
        out.append((labels, samples))

    # Counter with resets: to zero every 50 slots, and once to a smaller non-zero value.
    vals, c = [], 0.0
    for i in range(n):
        if i % 50 == 0 and i:
            c = 0.0
        elif i == 175:
            c = 7.0
        else:
            c += 3 + (i % 4)
        vals.append(c)
    add({"__name__": "hm_counter", "case": "resets"}, vals)
    # Counter with a 10 minute gap (slots 100..139 missing).
    add({"__name__": "hm_counter", "case": "gap"},
        [None if 100 <= i < 140 else 2.5 * i for i in range(n)])
    # Counter that ends after 20 minutes.
    add({"__name__": "hm_counter", "case": "ends"}, [float(i) if i < 80 else None for i in range(n)])
    # Gauge with a staleness marker at slot 120, resuming at slot 140.
    add({"__name__": "hm_gauge", "case": "stale"},
        [STALE_NAN if i == 120 else (None if 120 < i < 140 else 10 + (i % 7)) for i in range(n)])
    # Gauge with NaN now and then.
    add({"__name__": "hm_gauge", "case": "nan"},
        [math.nan if i % 13 == 5 else float(i % 11) for i in range(n)])
    # Negative sinusoid-ish gauge.
    add({"__name__": "hm_gauge", "case": "neg"},
        [-50 + 40 * math.sin(i / 9.0) for i in range(n)])
    # Infinities.
    add({"__name__": "hm_gauge", "case": "inf"},
        [math.inf if i % 17 == 3 else (-math.inf if i % 17 == 9 else float(i)) for i in range(n)])
    # Jittered timestamps: 15 s +- up to 6 s.
    ts = [t0 + i * step + ((i * 7919) % 13 - 6) * 1000 for i in range(n)]
    ts[0] = t0
    add({"__name__": "hm_gauge", "case": "jitter"}, [float((i * 37) % 101) for i in range(n)], ts)
    # Huge and tiny values.
    add({"__name__": "hm_gauge", "case": "huge"},
        [1e308 if i % 2 else -1e307 for i in range(n)])
    add({"__name__": "hm_gauge", "case": "tiny"},
        [1.5e-300 * (i + 1) for i in range(n)])
    # Label values that need JSON escapes.
    add({"__name__": "hm_gauge", "case": "esc", "v": 'q"uo\\te\n\t\u2603\u00e9'},
        [1.0] * n)
    # Label-function material.
    add({"__name__": "hm_info", "src": "a-b-c", "dst": "x:y", "instance": "h1:9100"}, [1.0] * n)
    add({"__name__": "hm_info", "src": "d-e", "dst": "", "instance": "h2:9100"}, [2.0] * n)
    # A classic histogram with a reset at slot 160 and a second, sparse one.
    les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    for j, le in enumerate(les):
        fr = [0.1, 0.3, 0.55, 0.8, 0.92, 0.99, 1.0][j]
        vals = []
        for i in range(n):
            k = i if i < 160 else i - 160
            vals.append(math.floor(k * 10 * fr))
        add({"__name__": "hm_hist_bucket", "le": le, "svc": "a"}, vals)
        add({"__name__": "hm_hist_bucket", "le": le, "svc": "b"},
            [math.floor(i * 3 * fr * (1 + (i % 3))) if j >= 3 else 0.0 for i in range(n)])
    add({"__name__": "hm_hist_sum", "svc": "a"}, [i * 4.2 if i < 160 else (i - 160) * 4.2 for i in range(n)])
    add({"__name__": "hm_hist_count", "svc": "a"}, [i * 10.0 if i < 160 else (i - 160) * 10.0 for i in range(n)])
    return out


# ---- Queries ---------------------------------------------------------------------------------


class Client:
    def __init__(self, base):
        self.base = base

    def post(self, path, form, get=False):
        """POSTs form-encoded, or GETs with a query string when get is true."""
        body = urllib.parse.urlencode(form).encode()
        if get:
            req = urllib.request.Request(self.base + path + "?" + body.decode(), method="GET")
        else:
            req = urllib.request.Request(self.base + path, data=body, method="POST")
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        except Exception as e:  # connection errors, timeouts
            return 0, {"status": "error", "errorType": "transport", "error": str(e)}
        try:
            return status, json.loads(text)
        except ValueError:
            return status, {"status": "error", "errorType": "unparsable",
                            "error": text[:200].decode(errors="replace")}


def load_queries(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            out.append(s)
    return out


def num(s):
    return float(s)  # Go's strconv accepts "NaN", "+Inf", "-Inf"; so does Python


def same_value(a, b, loose=False):
    """a, b: value strings. Returns None when they agree, else a reason. loose (generated
    queries) also accepts an absolute difference below 1e-12: random nesting such as
    stddev(atan(huge)) subtracts nearly equal values, which turns a last-bit difference of a
    libm function (Go's math against C's) into a large relative one."""
    try:
        x, y = num(a), num(b)
    except (TypeError, ValueError):
        return None if a == b else "value %r vs %r" % (a, b)
    if math.isnan(x) or math.isnan(y):
        return None if math.isnan(x) and math.isnan(y) else "value %s vs %s" % (a, b)
    if x == y:
        return None if a == b else "format %r vs %r" % (a, b)
    if math.isinf(x) or math.isinf(y):
        return "value %s vs %s" % (a, b)
    if abs(x - y) <= 1e-6 * max(abs(x), abs(y)) or abs(x - y) < 1e-300:
        return None
    if loose and abs(x - y) < 1e-12:
        return None
    return "value %s vs %s" % (a, b)


def lkey(metric):
    return tuple(sorted(metric.items()))


def order_sensitive(q):
    s = q.replace(" ", "")
    return s.startswith(("sort(", "sort_desc(", "topk(", "bottomk("))


def fuzzy_key(key):
    """Label values that are numbers, to 14 digits (count_values of generated queries)."""
    out = []
    for name, value in key:
        try:
            value = "%.14g" % float(value)
        except ValueError:
            pass
        out.append((name, value))
    return tuple(out)


def compare(q, mode, sp, p, sc, c, loose=False):
    """Returns None when the answers agree, else a short reason."""
    if sp != sc:
        return "HTTP status %s vs %s" % (sp, sc)
    if p.get("status") != c.get("status"):
        return "status %s vs %s" % (p.get("status"), c.get("status"))
    if p.get("status") != "success":
        if p.get("errorType") != c.get("errorType"):
            return "errorType %s vs %s" % (p.get("errorType"), c.get("errorType"))
        pe, ce = p.get("error") or "", c.get("error") or ""
        if pe != ce:
            # Messages must match too, except where Cairn words them differently on purpose:
            # regex errors (PCRE2's wording, not Go's) and many-to-many errors, which it cuts
            # at 240 bytes. Generated queries only report them.
            known = ("error parsing regexp" in pe or
                     (pe.startswith("found duplicate series") and len(ce) >= 200 and
                      pe.startswith(ce)))
            if not known and not loose:
                return "error %r vs %r" % (pe, ce)
            MESSAGE_DIFFS.append((q, pe, ce))
        return None
    pd, cd = p.get("data", {}), c.get("data", {})
    if pd.get("resultType") != cd.get("resultType"):
        return "resultType %s vs %s" % (pd.get("resultType"), cd.get("resultType"))
    rt = pd.get("resultType")
    pr, cr = pd.get("result"), cd.get("result")
    if rt in ("scalar", "string"):
        if pr[0] != cr[0]:
            return "timestamp %s vs %s" % (pr[0], cr[0])
        if rt == "string":
            return None if pr[1] == cr[1] else "string %r vs %r" % (pr[1], cr[1])
        return same_value(pr[1], cr[1])
    if not isinstance(cr, list):
        return "result is not a list"
    if len(pr) != len(cr):
        return "%d series vs %d" % (len(pr), len(cr))
    key = lkey
    if loose and "count_values" in q:
        key = lambda m: fuzzy_key(lkey(m))  # noqa: E731
    pm = {key(s["metric"]): s for s in pr}
    cm = {key(s.get("metric", {})): s for s in cr}
    if len(cm) != len(cr) or len(pm) != len(pr):
        return "duplicate label sets in an answer"
    if set(pm) != set(cm):
        only_p = sorted(set(pm) - set(cm))[:2]
        only_c = sorted(set(cm) - set(pm))[:2]
        return "series differ: only prometheus %s; only cairn %s" % (only_p, only_c)
    if (rt == "matrix" and not (loose and "count_values" in q) and
            [lkey(s["metric"]) for s in pr] != [lkey(s["metric"]) for s in cr]):
        return "matrix series in another order"  # Prometheus sorts them by label set
    if rt == "vector" and order_sensitive(q) and mode.startswith("instant"):
        for i, (a, b) in enumerate(zip(pr, cr)):
            why = same_value(a["value"][1], b["value"][1], loose)
            if why:
                return "order differs at %d: %s" % (i, why)
    for k, ps in pm.items():
        cs = cm[k]
        if rt == "vector":
            if ps["value"][0] != cs["value"][0]:
                return "%s: timestamp %s vs %s" % (dict(k), ps["value"][0], cs["value"][0])
            why = same_value(ps["value"][1], cs["value"][1], loose)
            if why:
                return "%s: %s" % (dict(k), why)
        else:
            pv, cv = ps.get("values", []), cs.get("values", [])
            pt = [v[0] for v in pv]
            ct = [v[0] for v in cv]
            if pt != ct:
                missing = sorted(set(pt) - set(ct))[:3]
                extra = sorted(set(ct) - set(pt))[:3]
                return "%s: %d points vs %d (missing %s extra %s)" % (
                    dict(k), len(pt), len(ct), missing, extra)
            for a, b in zip(pv, cv):
                why = same_value(a[1], b[1], loose)
                if why:
                    return "%s @%s: %s" % (dict(k), a[0], why)
    return None


def compare_meta(sp, p, sc, c):
    """/api/v1/series, labels and label values: same status, errorType and data (as sets)."""
    if sp != sc:
        return "HTTP status %s vs %s" % (sp, sc)
    if p.get("status") != c.get("status"):
        return "status %s vs %s" % (p.get("status"), c.get("status"))
    if p.get("status") != "success":
        if p.get("errorType") != c.get("errorType"):
            return "errorType %s vs %s" % (p.get("errorType"), c.get("errorType"))
        return None
    canon = lambda d: sorted(json.dumps(x, sort_keys=True) for x in (d or []))  # noqa: E731
    pd, cd = canon(p.get("data")), canon(c.get("data"))
    if pd != cd:
        return "data differ: only prometheus %s; only cairn %s" % (
            sorted(set(pd) - set(cd))[:3], sorted(set(cd) - set(pd))[:3])
    return None


def short(obj, n=600):
    s = json.dumps(obj, sort_keys=True)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)



# ---- Random queries --------------------------------------------------------------------------


class QueryGen:
    """Random, type-correct PromQL over the loaded series, reproducible from a seed. Most of
    what it makes is valid; some of it fails at run time (many-to-many matches, duplicate label
    sets), which both servers must then report alike."""

    SELECTORS = [
        "node_load1", "node_load5", 'node_cpu_seconds_total{cpu="0"}',
        'node_cpu_seconds_total{mode=~"user|idle",cpu="1"}', "node_memory_MemFree_bytes",
        'node_network_receive_bytes_total{device="eth0"}', "hm_gauge", 'hm_gauge{case!="esc"}',
        "hm_counter", 'hm_gauge{case=~"nan|inf|neg"}', 'hm_gauge{case="stale"}', "hm_info",
        'hm_gauge{case="jitter"}', 'hm_counter{case="gap"}', "nonexistent_metric",
        '{__name__=~"node_load.*"}', 'http_request_duration_seconds_bucket{le=~"0.1|1|\\\\+Inf"}',
    ]
    LABELS = ["instance", "job", "mode", "case", "cpu", "le", "src", "device", "__name__"]
    RANGE_FNS = ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
                 "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
                 "count_over_time", "last_over_time", "present_over_time", "stddev_over_time",
                 "stdvar_over_time", "absent_over_time"]
    MATH_FNS = ["abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10", "sgn",
                "sin", "cos", "atan", "tanh", "deg", "rad", "-", "timestamp", "sort",
                "sort_desc", "absent", "hour", "day_of_week", "minute"]
    AGGS = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
    ARITH = ["+", "-", "*", "/", "%", "^", "atan2"]
    CMP = ["==", "!=", ">", "<", ">=", "<="]
    SETS = ["and", "or", "unless"]
    RANGES = ["30s", "1m", "2m", "5m", "7m", "10m", "1h"]
    STEPS = ["", "15s", "30s", "1m", "45s", "2m"]
    OFFSETS = ["", "", "", " offset 1m", " offset 5m", " offset -2m", " @ 1700001000",
               " @ end()", " @ start() offset -10m", " offset 31s"]

    def __init__(self, seed):
        import random
        self.r = random.Random(seed)
        self.in_subquery = 0
        self.max_depth = 4

    def modifier(self, at=True):
        """An offset and/or @ suffix. No @ inside subqueries: Prometheus 2.42 turns @ into an
        offset from the query start, and a subquery whose first step equals that start keeps
        the wrong offset (its answer then depends on the alignment of the range)."""
        m = self.c(self.OFFSETS)
        if "@" in m and (not at or self.in_subquery):
            return ""
        return m

    def c(self, seq):
        return self.r.choice(seq)

    def grouping(self):
        if self.r.random() < 0.4:
            return ""
        labs = self.r.sample(self.LABELS, self.r.randint(0, 2))
        return " %s (%s)" % (self.c(["by", "without"]), ", ".join(labs))

    def scalar(self, d):
        k = self.r.random()
        if d <= 0 or k < 0.5:
            return self.c(["0", "1", "2", "0.5", "-1", "100", "1e-3", "NaN", "Inf", "0.99"])
        if k < 0.7:
            return "scalar(%s)" % self.vector(d - 1)
        if k < 0.8:
            return "time()"
        return "(%s %s %s)" % (self.scalar(d - 1), self.c(self.ARITH), self.scalar(d - 1))

    def rangev(self, d, at=True):
        if d > 0 and self.r.random() < 0.25:
            self.in_subquery += 1
            inner = self.vector(d - 1)
            self.in_subquery -= 1
            # A step no longer than the range: a subquery whose window holds no step still has
            # its inner subqueries evaluated by Prometheus 2.42, whose errors then surface.
            rng = self.c(self.RANGES)
            secs = lambda d: int(d[:-1]) * {"s": 1, "m": 60, "h": 3600}[d[-1]]  # noqa: E731
            step = self.c([x for x in self.STEPS if not x or secs(x) <= secs(rng)])
            return "(%s)[%s:%s]%s" % (inner, rng, step, self.modifier(at))
        return "%s[%s]%s" % (self.c(self.SELECTORS), self.c(self.RANGES), self.modifier(at))

    def matching(self, setop=False):
        k = self.r.random()
        if k < 0.5:
            return ""
        labs = ", ".join(self.r.sample(self.LABELS[:6], self.r.randint(0, 2)))
        m = " %s (%s)" % (self.c(["on", "ignoring"]), labs)
        if not setop and self.r.random() < 0.3:
            m += " %s" % self.c(["group_left", "group_right"])
            if self.r.random() < 0.5:
                m += " (%s)" % self.c(self.LABELS[:6])
        return m

    def vector(self, d):
        k = self.r.random()
        if d <= 0 or k < 0.15:
            return self.c(self.SELECTORS) + self.modifier()
        if k < 0.35:
            fn = self.c(self.RANGE_FNS + ["quantile_over_time", "predict_linear", "holt_winters"])
            if fn == "quantile_over_time":
                return "%s(%s, %s)" % (fn, self.c(["0.5", "0.9", "0", "1"]), self.rangev(d - 1))
            if fn == "predict_linear":
                # Not over an @ range: Prometheus 2.42 moves such a window with the step in
                # range queries (the @ becomes an offset from the start), losing its data.
                return "%s(%s, %s)" % (fn, self.rangev(d - 1, at=False),
                                       self.c(["60", "-300", "3600"]))
            if fn == "holt_winters":
                return "%s(%s, 0.5, 0.3)" % (fn, self.rangev(d - 1))
            return "%s(%s)" % (fn, self.rangev(d - 1))
        if k < 0.45:
            fn = self.c(self.MATH_FNS)
            if fn == "-":
                return "-(%s)" % self.vector(d - 1)
            if fn == "timestamp":
                # timestamp() of a selector: Prometheus 2.42 drops the offset of a selector
                # that also has @, so no combination of the two here.
                m = self.modifier()
                return "timestamp(%s%s)" % (self.c(self.SELECTORS),
                                            "" if "@" in m and "offset" in m else m)
            return "%s(%s)" % (fn, self.vector(d - 1))
        if k < 0.62:
            agg = self.c(self.AGGS + ["topk", "bottomk", "quantile", "count_values"])
            g = self.grouping()
            if agg in ("topk", "bottomk"):
                return "%s%s (%s, %s)" % (agg, g, self.c(["1", "2", "5"]), self.vector(d - 1))
            if agg == "quantile":
                return "%s%s (%s, %s)" % (agg, g, self.c(["0.5", "0.9", "0", "1"]),
                                          self.vector(d - 1))
            if agg == "count_values":
                # Rounded, and without ^ or exp(): count_values turns values into label text,
                # where a last-bit difference of a libm function (Go's math against C's) shows,
                # a hundredfold after x ^ 100.
                arg = self.vector(d - 1)
                for _ in range(20):
                    if "^" not in arg and "exp(" not in arg:
                        break
                    arg = self.vector(d - 1)
                else:
                    arg = self.c(self.SELECTORS)
                return '%s%s ("val", round(%s, 0.001))' % (agg, g, arg)
            return "%s%s (%s)" % (agg, g, self.vector(d - 1))
        if k < 0.72:
            op = self.c(self.ARITH + self.CMP)
            b = " bool" if op in self.CMP and self.r.random() < 0.4 else ""
            # A scalar side of % is a constant: time() % f(x) amplifies last-bit differences of
            # libm functions (Go's against C's) a billion times.
            sc = self.scalar(0) if op == "%" else self.scalar(d - 1)
            if self.r.random() < 0.5:
                return "(%s %s%s %s)" % (self.vector(d - 1), op, b, sc)
            return "(%s %s%s %s)" % (sc, op, b, self.vector(d - 1))
        if k < 0.86:
            op = self.c(self.ARITH + self.CMP + self.SETS)
            setop = op in self.SETS
            b = " bool" if op in self.CMP and self.r.random() < 0.4 else ""
            return "(%s %s%s%s %s)" % (self.vector(d - 1), op, b, self.matching(setop),
                                       self.vector(d - 1))
        if k < 0.9:
            return 'label_replace(%s, "%s", "$1", "%s", "%s")' % (
                self.vector(d - 1), self.c(["x", "instance", "case", "__name__"]),
                self.c(self.LABELS), self.c(["(.*)", "host-(.*):.*", "(n|i).*", ".+(.)"]))
        if k < 0.93:
            return "clamp(%s, %s, %s)" % (self.vector(d - 1), self.scalar(d - 1),
                                          self.scalar(d - 1))
        if k < 0.96:
            return "histogram_quantile(%s, %s)" % (
                self.c(["0.5", "0.9", "0.99"]),
                self.c(["rate(hm_hist_bucket[5m])", "sum by (le) (rate(hm_hist_bucket[2m]))",
                        "http_request_duration_seconds_bucket",
                        "sum by (le, instance) (increase(http_request_duration_seconds_bucket[5m]))"]))
        if k < 0.97:
            return 'label_join(%s, "%s", "%s", "%s", "%s")' % (
                self.vector(d - 1), self.c(["x", "instance", "job"]), self.c(["-", "", ":"]),
                self.c(self.LABELS), self.c(self.LABELS))
        if k < 0.98:
            return "%s(%s, %s)" % (self.c(["clamp_min", "clamp_max", "round"]),
                                   self.vector(d - 1), self.scalar(d - 1))
        return "vector(%s)" % self.scalar(d - 1)

    def query(self):
        k = self.r.random()
        if k < 0.1:
            return self.scalar(2)
        if k < 0.15:  # an order Prometheus guarantees (instant queries)
            return "%s(%s)" % (self.c(["sort", "sort_desc"]),
                               self.vector(self.r.randint(1, self.max_depth)))
        if k < 0.18:
            return "absent(%s)" % self.vector(self.r.randint(0, 2))
        if k < 0.2:
            return "(%s %s bool %s)" % (self.scalar(1), self.c(self.CMP), self.scalar(1))
        return self.vector(self.r.randint(1, self.max_depth))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prom", required=True)
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--start", type=int, required=True, help="first sample, unix seconds")
    ap.add_argument("--queries", required=True)
    ap.add_argument("--write", action="store_true", help="remote-write the hand-made series")
    ap.add_argument("--only", default="", help="run only queries containing this text")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--random", type=int, default=0, help="also run N generated queries")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated queries")
    ap.add_argument("--depth", type=int, default=4, help="nesting depth of generated queries")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()

    if a.write:
        series = hand_made_series(a.start)
        for name, base in (("prometheus", a.prom), ("cairn", a.cairn)):
            st, text = remote_write(base, series)
            if st not in (200, 204):
                print("remote write of hand-made series to %s: HTTP %s %s" % (name, st, text[:300]))
                print("0 passed, 1 failed")
                return 1

    S = a.start
    modes = [
        ("instant@30m", "/api/v1/query", {"time": str(S + 1800)}),
        ("instant@47m13.5s", "/api/v1/query", {"time": "%.1f" % (S + 2833.5)}),
        ("instant@end+2m", "/api/v1/query", {"time": str(S + 3720)}),
        # The last samples are at start+59m45s: this is exactly the lookback edge (5 m).
        ("instant@lookback-edge", "/api/v1/query", {"time": str(S + 3585 + 300)}),
        ("instant@before-data", "/api/v1/query", {"time": str(S - 100)}),
        ("range 1h/15s", "/api/v1/query_range",
         {"start": str(S), "end": str(S + 3600), "step": "15"}),
        ("range 1h/60s+7s", "/api/v1/query_range",
         {"start": str(S + 7), "end": str(S + 3607 + 600), "step": "60"}),
        ("range across-start 20m/30s", "/api/v1/query_range",
         {"start": str(S - 600), "end": str(S + 600), "step": "30"}),
    ]
    queries = [q for q in load_queries(a.queries) if a.only in q]
    gen = QueryGen(a.seed)
    gen.max_depth = a.depth
    generated = []
    while len(generated) < a.random:
        q = gen.query()
        if q not in generated and q not in queries:
            generated.append(q)
    queries += generated
    generated_set = set(generated)
    prom, cairn = Client(a.prom), Client(a.cairn)
    # Guard against a vacuous pass: both servers must hold both data sets.
    for name, cl in (("prometheus", prom), ("cairn", cairn)):
        for q in ("count(node_cpu_seconds_total)", "count(hm_gauge)"):
            st, d = cl.post("/api/v1/query", {"query": q, "time": str(S + 1800)})
            res = d.get("data", {}).get("result") or []
            if st != 200 or not res or float(res[0]["value"][1]) < 1:
                print("%s holds no data for %s: %s" % (name, q, short(d)))
                print("0 passed, 1 failed")
                return 1

    def run(job):
        q, (mname, path, params) = job
        form = dict(params)
        if not mname.startswith("api "):
            form["query"] = q
        get = path.startswith("GET ")
        path = path.split()[-1]
        sp, p = prom.post(path, form, get)
        sc, c = cairn.post(path, form, get)
        why = compare(q, mname, sp, p, sc, c, q in generated_set)
        if why:
            # Prometheus' answer can depend on the order of its input, which often comes out of
            # a Go map: topk/bottomk ties, and float sums with cancellation (stddev of
            # timestamps) vary from run to run. Cairn's answer passes when it is one of them;
            # when none matches but they vary, there is no one answer to check.
            varies = False
            for _ in range(8):
                sp2, p2 = prom.post(path, form, get)
                if compare(q, mname, sp2, p2, sc, c, q in generated_set) is None:
                    return q, mname, sp2, p2, sc, c, None
                varies = varies or compare(q, mname, sp, p, sp2, p2) is not None
            if varies:
                return q, mname, sp, p, sc, c, SKIP
        return q, mname, sp, p, sc, c, why

    jobs = [(q, m) for q in queries for m in modes]
    # Metadata endpoints over the same data (GET, as Grafana sends them).
    st, en = str(S), str(S + 3600)
    meta_cases = [
        ("/api/v1/series", [("match[]", "hm_gauge"), ("start", st), ("end", en)]),
        ("/api/v1/series", [("match[]", 'hm_gauge{case=~"n.*"}'), ("match[]", "hm_info"),
                            ("start", st), ("end", en)]),
        ("/api/v1/series", [("match[]", '{__name__=~"node_load.*", instance="host-00001:9100"}'),
                            ("start", st), ("end", en)]),
        ("/api/v1/series", [("match[]", 'hm_counter{case="ends"}'), ("start", str(S + 2400)),
                            ("end", en)]),
        ("/api/v1/series", [("match[]", "{a=~\".*\"}"), ("start", st), ("end", en)]),
        ("/api/v1/series", [("start", st), ("end", en)]),
        ("/api/v1/series", [("match[]", "sum(x)"), ("start", st), ("end", en)]),
        ("/api/v1/labels", [("start", st), ("end", en)]),
        ("/api/v1/labels", [("match[]", "hm_info"), ("start", st), ("end", en)]),
        ("/api/v1/label/case/values", [("start", st), ("end", en)]),
        ("/api/v1/label/__name__/values", [("match[]", '{job="hm"}'), ("start", st),
                                           ("end", en)]),
        ("/api/v1/label/v/values", [("start", st), ("end", en)]),
        ("/api/v1/label/nonexistent/values", [("start", st), ("end", en)]),
        ("/api/v1/label/instance/values", [("match[]", "node_load1"), ("start", str(S + 600)),
                                           ("end", str(S + 900))]),
    ]
    meta_passed = meta_failed = 0
    for path, params in meta_cases:
        url = path + "?" + urllib.parse.urlencode(params)
        res = []
        for cl in (prom, cairn):
            try:
                with urllib.request.urlopen(cl.base + url, timeout=30) as r:
                    res.append((r.status, json.loads(r.read())))
            except urllib.error.HTTPError as e:
                res.append((e.code, json.loads(e.read() or b"{}")))
        why = compare_meta(res[0][0], res[0][1], res[1][0], res[1][1])
        if why is None:
            meta_passed += 1
            continue
        meta_failed += 1
        print("FAIL [meta] %s\n     %s" % (url, why))
        print("     prometheus (%s): %s" % (res[0][0], short(res[0][1])))
        print("     cairn      (%s): %s" % (res[1][0], short(res[1][1])))
    # Parameter handling of the HTTP layer: each case once, with its own form.
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(S + 1800))
    api_cases = [
        ("/api/v1/query", {"query": "node_load1", "time": rfc}),
        ("/api/v1/query", {"query": "hm_gauge", "time": "%d.123" % (S + 1800)}),
        ("/api/v1/query", {"query": "time()", "time": "%d.5" % (S + 1800)}),
        ("/api/v1/query", {"query": "node_load1", "time": "yesterday"}),
        ("/api/v1/query", {"query": "", "time": str(S + 1800)}),
        ("/api/v1/query", {"time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1", "time": str(S + 1800), "timeout": "10s"}),
        ("/api/v1/query", {"query": "node_load1", "time": str(S + 1800), "timeout": "x"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": str(S), "end": str(S + 600),
                                 "step": "1m"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": rfc, "end": str(S + 2400),
                                 "step": "37.5"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S + 600), "end": str(S),
                                 "step": "15"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S + 600),
                                 "step": "0"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S + 600),
                                 "step": "-15"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S + 86400),
                                 "step": "1"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S + 600)}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S + 600),
                                 "step": "abc"}),
        ("/api/v1/query_range", {"query": "hm_counter", "end": str(S + 600), "step": "15"}),
        ("/api/v1/query_range", {"query": "hm_counter", "start": str(S), "end": str(S),
                                 "step": "15"}),
        ("/api/v1/query_range", {"query": "node_load1 @ start()", "start": str(S + 60),
                                 "end": str(S + 600), "step": "30"}),
        ("/api/v1/query_range", {"query": "hm_counter[5m]", "start": str(S), "end": str(S + 600),
                                 "step": "60"}),
        ("/api/v1/query_range", {"query": '"str"', "start": str(S), "end": str(S + 600),
                                 "step": "60"}),
        ("/api/v1/query", {"query": "vector(1)", "time": "%d.0005" % (S + 1800)}),
        ("/api/v1/query", {"query": "time()", "time": "%d.0014999" % (S + 1800)}),
        ("/api/v1/query", {"query": "hm_gauge", "time": "1.7000018e9"}),
        ("/api/v1/query", {"query": "node_load1", "time": "2023-11-14T23:30:00.5+01:00"}),
        ("/api/v1/query", {"query": "node_load1", "time": "2023-11-14T22:30:00.123456789Z"}),
        ("/api/v1/query", {"query": "node_load1", "time": "-1"}),
        ("/api/v1/query", {"query": "time()", "time": "0"}),
        ("/api/v1/query", {"query": "time()", "time": "0x10p0"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": "2023-11-14T22:00:00.5Z",
                                 "end": str(S + 600), "step": "1m30s"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": str(S), "end": str(S + 600),
                                 "step": "0.5"}),
        ("/api/v1/query_range", {"query": "time()", "start": str(S), "end": str(S + 600),
                                 "step": "1e1"}),
        ("/api/v1/query_range", {"query": "time()", "start": "%d.0005" % S,
                                 "end": str(S + 600), "step": "7.0005"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": str(S), "end": str(S + 3600),
                                 "step": "7"}),
        ("/api/v1/query_range", {"query": "rate(hm_counter[5m])", "start": str(S),
                                 "end": str(S + 3600), "step": "10m"}),
        ("/api/v1/query_range", {"query": "hm_gauge", "start": str(S), "end": str(S + 600),
                                 "step": "15", "timeout": "1m"}),
        ("GET /api/v1/query", {"query": "sum by (case) (hm_gauge)", "time": str(S + 1800)}),
        ("GET /api/v1/query", {"query": "sum(", "time": str(S + 1800)}),
        ("GET /api/v1/query_range", {"query": "rate(hm_counter[5m])", "start": str(S),
                                     "end": str(S + 3600), "step": "60"}),
        ("GET /api/v1/query_range", {"query": "sum(", "start": str(S), "end": str(S + 3600),
                                     "step": "60"}),
        ("/api/v1/query", {"query": "  sum(node_load1)\n\tby (job) # per job\n",
                           "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "# only a comment", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "hm_gauge{v=\"q\\\"uo\\\\te\\n\\t\u2603\u00e9\"}",
                           "time": str(S + 1800)}),
        # Go's %q of an unexpected rune: printable verbatim, else escaped.
        ("/api/v1/query", {"query": "node_load1\u00a0", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \u200b", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \u2603", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \x07", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \x0b", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \x01", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \U0001f600", "time": str(S + 1800)}),
        ("/api/v1/query", {"query": "node_load1 \ue000", "time": str(S + 1800)}),
        ("/api/v1/query_range", {"query": "sum by (job)\n(\n  rate(hm_counter[5m])\n)",
                                 "start": str(S), "end": str(S + 3600), "step": "60"}),
        # No lookback_delta cases: Prometheus 2.42 ignores that parameter (later versions
        # honour it, and so does Cairn).
    ]
    for path, form in api_cases:
        jobs.append((form.get("query", "<none>"), ("api " + path.split("/")[-1] + " " +
                     ("GET " if path.startswith("GET ") else "") +
                     json.dumps({k: v for k, v in form.items() if k != "query"}), path, form)))
    passed = failed = skipped = 0
    failed_queries = []
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for q, mname, sp, p, sc, c, why in ex.map(run, jobs):
            if why is SKIP:
                skipped += 1
                if a.v:
                    print("skip [%s] %s (Prometheus' own answers vary)" % (mname, q))
                continue
            if why is None:
                passed += 1
                if a.v:
                    print("ok   [%s] %s" % (mname, q))
                continue
            failed += 1
            if q not in failed_queries:
                failed_queries.append(q)
            print("FAIL [%s] %s\n     %s" % (mname, q, why))
            print("     prometheus (%s): %s" % (sp, short(p)))
            print("     cairn      (%s): %s" % (sc, short(c)))
    if MESSAGE_DIFFS:
        seen = set()
        print("error messages that differ (informational):")
        for q, pe, ce in MESSAGE_DIFFS:
            if (pe, ce) in seen:
                continue
            seen.add((pe, ce))
            print("  %s\n     prometheus: %s\n     cairn:      %s" % (q, pe, ce))
    print("%d queries x %d modes + %d API cases in %.1f s; %d distinct queries differ" % (
        len(queries), len(modes), len(api_cases), time.monotonic() - t0, len(failed_queries)))
    passed += meta_passed
    failed += meta_failed
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
