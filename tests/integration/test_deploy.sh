#!/usr/bin/env bash
# tests/integration/test_deploy.sh -- checks everything under deploy/ against the real things it
# describes:
#
#   1. every Kubernetes manifest is a valid object of its kind (OpenAPI schemas from the npm
#      package kubernetes-models, via tests/integration/k8s_validate.mjs), with no field the schema
#      lacks, and the objects of each kustomization reference each other consistently; three
#      deliberately broken copies must be rejected (negative controls);
#   2. the Dockerfile: Debian 12 stages, COPY sources that exist and are not ignored, build
#      packages that match tools/deps.sh and the Makefile's -l libraries, runtime packages that
#      hold every shared library bin/cairn and bin/cairnctl load, user/port/volume/health check
#      consistent with the StatefulSet; its build stage's make command, run on a copy of exactly
#      the files it COPYs, must produce working binaries;
#   3. every flag the image and the StatefulSet pass is one bin/cairn accepts, and bin/cairn
#      started with the StatefulSet's arguments and the ConfigMap's cairn.yml becomes ready,
#      scrapes, reloads on POST /-/reload and stops cleanly on SIGTERM within the grace period;
#   4. the examples: prometheus.yml passes promtool, and a real Prometheus running it (addresses
#      pointed at this machine) remote-writes into Cairn; the Grafana data source points at the
#      client Service with POST; every query of the dashboard (variables substituted) evaluates
#      over HTTP POST against a Cairn that scraped a real prometheus-node-exporter, with data.
#
# Needs: node + npm (the validators are installed into build/node from
# tests/integration/k8s-deps/package-lock.json), python3, curl, promtool, prometheus,
# prometheus-node-exporter, and bin/cairn (make). Servers bind 127.0.0.1 on free ports; every wait
# is bounded. Prints "N passed, N failed"; exits 1 if anything failed.
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=${BIN:-bin}
NODE_DIR=${CAIRN_NODE_DIR:-build/node}
DEPS_DIR=tests/integration/k8s-deps
VALIDATE=tests/integration/k8s_validate.mjs
K8S=deploy/kubernetes
EX=deploy/examples

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
# Counts the "ok ..."/"FAIL ..." lines a helper printed (its own total line is shown indented).
absorb() { # $1: file with a helper's output
    local p f
    p=$(grep -c '^ok    ' "$1")
    f=$(grep -c '^FAIL  ' "$1")
    passed=$((passed + p)) failed=$((failed + f))
    grep -E '^(ok|FAIL)  ' "$1"
    grep -vE '^(ok|FAIL)  ' "$1" | sed 's/^/      | /'
}

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-deploy.XXXXXX") || exit 2
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_http URL CODE SECONDS: polls until URL answers CODE (bounded).
wait_http() {
    local i code
    for ((i = 0; i < $3 * 5; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")
        [ "$code" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
# instant URL QUERY: prints the first value of an instant query's result, or nothing.
instant() {
    curl -s --max-time 10 --data-urlencode "query=$2" "$1/api/v1/query" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    r = d["data"]["result"]
    if d["status"] == "success" and r:
        print(r[0]["value"][1] if d["data"]["resultType"] == "vector" else r[1])
except Exception:
    pass'
}

need() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || return 1; done
}

# ---- 1. Kubernetes manifests ----------------------------------------------------------------------

have_node=0
if ! need node npm; then
    bad "node and npm are required to validate the manifests (Node.js >= 14 with npm on PATH)"
elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 14 ? 0 : 1)'; then
    bad "node $(node --version) is too old for the validators (need >= 14)"
else
    # One installer at a time when several test runs share the tree.
    mkdir -p "$(dirname "$NODE_DIR")"
    exec 9>"$NODE_DIR.lock"
    command -v flock >/dev/null 2>&1 && flock -w 300 9
    if ! cmp -s "$DEPS_DIR/package-lock.json" "$NODE_DIR/package-lock.json" ||
        [ ! -d "$NODE_DIR/node_modules/kubernetes-models" ]; then
        rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR" &&
            cp "$DEPS_DIR/package.json" "$DEPS_DIR/package-lock.json" "$NODE_DIR/"
        if timeout 300 npm ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
            >"$T/npm.log" 2>&1; then
            ok "npm ci of the validators into $NODE_DIR"
        else
            sed 's/^/      | /' "$T/npm.log" | tail -20
            bad "npm ci --prefix $NODE_DIR failed (see above); the manifests cannot be validated"
            rm -f "$NODE_DIR/package-lock.json"
        fi
    fi
    [ -d "$NODE_DIR/node_modules/kubernetes-models" ] && have_node=1
    exec 9>&-
fi
NM=$NODE_DIR/node_modules

if [ $have_node = 1 ]; then
    node "$VALIDATE" --modules "$NM" --kustomize "$K8S" --kustomize "$K8S/optional" \
        "$EX/prometheus-remote-write-patch.yaml" >"$T/v.out" 2>&1
    rc=$?
    absorb "$T/v.out"
    [ $rc = 0 ] || bad "k8s_validate exited $rc on the shipped manifests"
    # Every YAML file under deploy/kubernetes is reached by one of the two kustomizations.
    for f in "$K8S"/*.yaml "$K8S"/optional/*.yaml; do
        case $f in */kustomization.yaml) continue ;; esac
        if grep -q "deploy/kubernetes/${f#"$K8S"/}#0 " "$T/v.out"; then :; else
            bad "$f is not listed in any kustomization"
        fi
    done

    # Negative controls: broken copies of the real manifests must be refused, with the reason.
    neg() { # name, sed expression on statefulset.yaml, expected message
        local d=$T/neg-$1
        mkdir -p "$d" && cp "$K8S"/*.yaml "$d/"
        sed -i "$2" "$d/statefulset.yaml"
        if cmp -s "$K8S/statefulset.yaml" "$d/statefulset.yaml"; then
            bad "negative control $1: the edit '$2' changed nothing (manifest drifted?)"
            return
        fi
        node "$VALIDATE" --modules "$NM" --kustomize "$d" >"$T/neg.out" 2>&1
        local rc=$?
        if [ $rc = 1 ] && grep -q "^FAIL .*$3" "$T/neg.out"; then
            ok "negative control $1 rejected: $(grep -m1 '^FAIL' "$T/neg.out" | sed 's/^FAIL  //; s/.*: //' | cut -c1-90)"
        else
            sed 's/^/      | /' "$T/neg.out"
            bad "negative control $1 was not rejected as expected (exit $rc)"
        fi
    }
    neg string-for-integer 's/^  replicas: 1$/  replicas: "1"/' 'replicas must be integer'
    neg unknown-field 's/^          readinessProbe:$/          readinesProbe:/' 'readinesProbe'
    neg dangling-reference 's/^  serviceName: cairn-headless$/  serviceName: cairn-peers/' \
        'serviceName "cairn-peers" names no Service'

    # Facts the later sections compare against, as JSON.
    for f in statefulset service configmap; do
        node "$VALIDATE" --modules "$NM" --json "$K8S/$f.yaml" >"$T/$f.json" || bad "cannot read $f.yaml"
    done
    node "$VALIDATE" --modules "$NM" --json "$EX/grafana-datasource.yaml" >"$T/ds.json" ||
        bad "cannot read grafana-datasource.yaml"
    node "$VALIDATE" --modules "$NM" --json "$EX/prometheus-remote-write-patch.yaml" >"$T/patch.json" ||
        bad "cannot read prometheus-remote-write-patch.yaml"
fi

# ---- 2. Dockerfile ----------------------------------------------------------------------------------

# The Debian package owning a file (tries the path as given, and with and without /usr for
# merged-/usr systems); prints nothing when no package owns it.
pkg_of() {
    local p out
    [ -n "$1" ] || return 0
    for p in "$1" "${1#/usr}" "/usr$1"; do
        out=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$out" ] && { echo "$out"; return; }
    done
}
# Packages of the shared libraries the built programs load (for the runtime-stage check).
needed_pkgs() {
    local f lib path pkg
    for f in "$@"; do
        for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
            path=$(ldd "$f" | awk -v l="$lib" '$1 == l { print $3 }')
            pkg=
            [ -n "$path" ] && pkg=$(pkg_of "$path")
            [ -n "$pkg" ] || pkg=$(pkg_of "$(readlink -f "$path")")
            echo "${pkg:-?$lib}"
        done
    done | sort -u
}
required_pkgs() { # packages of priority "required" (present in every Debian base image)
    dpkg-query -W -f='${Package} ${Priority}\n' 2>/dev/null | awk '$2 == "required" { print $1 }'
}
# The -dev packages behind the Makefile's -l flags (for the build-stage check).
link_dev_pkgs() {
    local l f pkg
    for l in $(sed -n 's/^LIBS_[A-Z]* *= *//p' Makefile | grep -o -- '-l[A-Za-z0-9_+-]*' | sort -u); do
        f=$(cc -print-file-name="lib${l#-l}.so")
        case $f in /*) ;; *) f=$(cc -print-file-name="lib${l#-l}.a") ;; esac
        pkg=
        case $f in /*) pkg=$(pkg_of "$(realpath -s "$f")") ;; esac
        echo "${pkg:-?lib${l#-l}}"
    done | sort -u
}

if need dpkg-query; then
    required_pkgs >"$T/required.txt"
    link_dev_pkgs >"$T/linkdev.txt"
else
    bad "dpkg-query is missing: the Dockerfile's package lists cannot be checked"
    : >"$T/required.txt"
    : >"$T/linkdev.txt"
fi
tools/deps.sh list >"$T/deps.txt"

python3 - "$T" >"$T/docker.out" 2>&1 <<'PY'
import fnmatch, json, os, re, shlex, sys
T = sys.argv[1]
def ok(m): print("ok    " + m)
def bad(m): print("FAIL  " + m)
def load(name, default=None):
    try:
        return json.load(open(os.path.join(T, name)))
    except Exception:
        return default

# Instructions with continuations joined and comments dropped.
lines, cur = [], ""
for raw in open("deploy/Dockerfile"):
    s = raw.rstrip("\n")
    if not cur and (s.strip().startswith("#") or not s.strip()):
        continue
    if s.strip().startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    lines.append(cur.strip())
    cur = ""
ins = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
stages = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
froms = [ins[i][1].split() for i in stages]
if len(froms) >= 2 and froms[0][0] == "debian:12" and froms[-1][0] == "debian:12-slim":
    ok("Dockerfile: build stage FROM debian:12, runtime stage FROM debian:12-slim")
else:
    bad(f"Dockerfile: stages are {froms}, expected debian:12 ... debian:12-slim")
build_name = froms[0][2] if len(froms[0]) == 3 and froms[0][1].upper() == "AS" else None
final = ins[stages[-1]:]
first = ins[stages[0]:stages[1]] if len(stages) > 1 else ins

def apt_pkgs(stage):
    out = []
    for k, v in stage:
        if k != "RUN":
            continue
        for part in re.split(r"&&|;", v):
            w = shlex.split(part.replace("DEBIAN_FRONTEND=noninteractive", ""))
            if len(w) >= 2 and w[0] == "apt-get" and w[1] == "install":
                out += [x for x in w[2:] if not x.startswith("-")]
    return out

# COPY sources: present in the repository and not excluded by .dockerignore.
ignore = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
def ignored(p):
    p = p.rstrip("/")
    for pat in ignore:
        pat = pat.rstrip("/")
        if pat.startswith("**/"):
            if fnmatch.fnmatch(os.path.basename(p), pat[3:]):
                return True
        elif fnmatch.fnmatch(p, pat) or p.startswith(pat + "/"):
            return True
    return False
copies = []
for k, v in ins:
    if k not in ("COPY", "ADD"):
        continue
    w = shlex.split(v)
    if any(x.startswith("--from") for x in w):
        continue
    w = [x for x in w if not x.startswith("--")]
    copies += w[:-1]
for s in ["build", "bin", ".git", "data"]:
    if not ignored(s):
        bad(f".dockerignore: {s}/ is not excluded from the build context")
bad_src = [s for s in copies if not os.path.exists(s) or ignored(s)]
if copies and not bad_src:
    ok(f"Dockerfile: COPY sources exist and are in the context: {' '.join(copies)}")
else:
    bad(f"Dockerfile: COPY sources missing or ignored: {bad_src or 'none copied'}")
for needed in ["Makefile", "tsdb/", "query/", "ingest/", "api/", "tools/"]:
    if needed not in copies and needed.rstrip("/") not in copies:
        bad(f"Dockerfile: the build needs {needed} but it is not copied")
open(os.path.join(T, "copies.txt"), "w").write("\n".join(copies) + "\n")

# Build stage: its -dev packages are the ones tools/deps.sh installs, and cover every -l library.
deps = set(open(os.path.join(T, "deps.txt")).read().split())
bpk = apt_pkgs(first)
extra = [p for p in bpk if p not in deps]
linkdev = open(os.path.join(T, "linkdev.txt")).read().split()
missing = [p for p in linkdev if p not in bpk and p != "libc6-dev"]
if bpk and not extra and not missing and linkdev:
    ok(f"Dockerfile: build packages are in tools/deps.sh and cover the -l libraries ({len(linkdev)})")
else:
    bad(f"Dockerfile: build packages not in tools/deps.sh: {extra}; -l libraries not covered: {missing}")
mk = [v for k, v in first if k == "RUN" and "make " in v]
if mk and "MODE=release" in mk[0] and "build/release/bin/" in mk[0]:
    ok("Dockerfile: builds with make MODE=release and takes binaries from build/release/bin/")
    open(os.path.join(T, "make_cmd.txt"), "w").write(mk[0] + "\n")
else:
    bad("Dockerfile: no RUN with make MODE=release taking build/release/bin/")

# Runtime stage: only shared libraries (+ curl for the health check); their coverage of what the
# binaries load is checked on the binaries the build stage makes (below).
rpk = apt_pkgs(final)
open(os.path.join(T, "runtime_pkgs.txt"), "w").write("\n".join(rpk) + "\n")
devs = [p for p in rpk if p.endswith("-dev") or p in ("build-essential", "gcc", "make")]
if devs:
    bad(f"Dockerfile: runtime stage installs build tools: {devs}")
else:
    ok("Dockerfile: runtime stage installs no compilers or -dev packages")

def last(stage, key):
    v = [x for k, x in stage if k == key]
    return v[-1] if v else None
user = last(final, "USER") or ""
ep = last(final, "ENTRYPOINT") or "[]"
try:
    ep = json.loads(ep)
except ValueError:
    bad("Dockerfile: ENTRYPOINT is not in exec (JSON) form")
    ep = []
open(os.path.join(T, "entrypoint.txt"), "w").write("\n".join(ep[1:]) + "\n")
uid = user.split(":")[0]
sts = load("statefulset.json", [None])[0]
if sts:
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    psc = pod.get("securityContext", {})
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    if uid.isdigit() and uid != "0" and str(psc.get("runAsUser")) == uid and \
            str(psc.get("fsGroup")) == (user.split(":") + [uid])[1]:
        ok(f"Dockerfile USER {user} is non-root and matches the pod's runAsUser/fsGroup")
    else:
        bad(f"Dockerfile USER {user!r} vs pod runAsUser {psc.get('runAsUser')} fsGroup {psc.get('fsGroup')}")
    port = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "http"]
    expose = (last(final, "EXPOSE") or "").split()
    listen = [a for a in ep if a.startswith("--web.listen-address=")]
    hc = last(final, "HEALTHCHECK") or ""
    m = re.search(r"CMD\s+(\[.*\])\s*$", hc)
    if m:
        open(os.path.join(T, "healthcheck.json"), "w").write(m.group(1) + "\n")
    probes = sorted({c[k]["httpGet"]["path"] for k in ("readinessProbe", "livenessProbe", "startupProbe")
                     if "httpGet" in c.get(k, {})})
    open(os.path.join(T, "probes.txt"), "w").write("\n".join(probes) + "\n")
    if port and expose == [str(port[0])] and listen == [f"--web.listen-address=0.0.0.0:{port[0]}"] \
            and f"127.0.0.1:{port[0]}/-/healthy" in hc:
        ok(f"port {port[0]}: EXPOSE, listen address, HEALTHCHECK on /-/healthy and containerPort agree")
    else:
        bad(f"ports disagree: EXPOSE {expose}, {listen}, HEALTHCHECK {hc!r}, containerPort {port}")
    vol = last(final, "VOLUME") or ""
    if '"/data"' in vol and "--storage.tsdb.path=/data" in ep and mounts.get("data") == "/data" and \
            any(t["metadata"]["name"] == "data" for t in sts["spec"].get("volumeClaimTemplates", [])):
        ok("/data: image VOLUME, --storage.tsdb.path and the PVC mount agree")
    else:
        bad(f"/data disagrees: VOLUME {vol!r}, ENTRYPOINT {ep}, mounts {mounts}")
    cm = load("configmap.json", [None])[0]
    cfg = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--config.file=")]
    cmvol = [v for v in pod.get("volumes", []) if "configMap" in v]
    if cfg and cm and cmvol and os.path.dirname(cfg[0]) == mounts.get(cmvol[0]["name"]) and \
            os.path.basename(cfg[0]) in cm.get("data", {}) and \
            cmvol[0]["configMap"]["name"] == cm["metadata"]["name"]:
        ok(f"--config.file={cfg[0]} is the ConfigMap's key at its mount point")
        open(os.path.join(T, "cairn.yml"), "w").write(cm["data"][os.path.basename(cfg[0])])
    else:
        bad(f"--config.file {cfg} does not match the ConfigMap mount {mounts} / {cmvol}")
    sc = c.get("securityContext", {})
    want = [psc.get("runAsNonRoot") is True, psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            sc.get("readOnlyRootFilesystem") is True, sc.get("allowPrivilegeEscalation") is False,
            sc.get("capabilities", {}).get("drop") == ["ALL"], "fsGroup" in psc,
            pod.get("terminationGracePeriodSeconds", 30) >= 60,
            c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/-/ready",
            c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/-/healthy",
            "requests" in c.get("resources", {}) and "limits" in c.get("resources", {})]
    if all(want):
        ok("StatefulSet: restricted security context, probes on /-/ready and /-/healthy, resources, grace period")
    else:
        bad(f"StatefulSet: hardening/probe/resource checks {want}")
    open(os.path.join(T, "args.txt"), "w").write("\n".join(c.get("args", [])) + "\n")
    open(os.path.join(T, "grace.txt"), "w").write(str(pod.get("terminationGracePeriodSeconds", 30)) + "\n")

# Examples: every Cairn URL names the client Service and its port.
svcs = load("service.json", [])
client = [s for s in svcs if s["spec"].get("clusterIP") != "None"]
if client:
    s = client[0]
    base = f"http://{s['metadata']['name']}.{s['metadata']['namespace']}.svc:{s['spec']['ports'][0]['port']}"
    ds = load("ds.json", [{}])[0]
    d = [x for x in ds.get("datasources", []) if x.get("type") == "prometheus"]
    if ds.get("apiVersion") == 1 and len(d) == 1 and d[0].get("url") == base and \
            d[0].get("jsonData", {}).get("httpMethod") == "POST" and d[0].get("access") == "proxy":
        ok(f"grafana-datasource.yaml: type prometheus, access proxy, POST, url {base}")
    else:
        bad(f"grafana-datasource.yaml: want apiVersion 1, one prometheus source at {base} with POST; got {ds}")
    urls = re.findall(r"url:\s*(\S+)", open("deploy/examples/prometheus.yml").read())
    patch = load("patch.json", [{}])[0]
    urls += [rw.get("url") for rw in patch.get("spec", {}).get("remoteWrite", [])]
    if len(urls) == 2 and all(u == base + "/api/v1/write" for u in urls):
        ok(f"remote_write examples point at {base}/api/v1/write")
    else:
        bad(f"remote_write URLs {urls} are not {base}/api/v1/write")
    open(os.path.join(T, "base_url.txt"), "w").write(base + "\n")

# The dashboard as Grafana imports it: unique panel ids and refIds, panels that do not overlap,
# every query on the $datasource variable of type prometheus.
try:
    d = json.load(open("deploy/examples/grafana-dashboard-node.json"))
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    cells = {}
    overlap = []
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    overlap.append((cells[(x, y)], p["title"]))
                cells[(x, y)] = p["title"]
    refs_ok = all(len({t["refId"] for t in p.get("targets", [])}) == len(p.get("targets", [])) for p in panels)
    dsvar = [v for v in d["templating"]["list"] if v["name"] == "datasource"]
    width_ok = all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)
    if d.get("uid") and len(ids) == len(set(ids)) and not overlap and refs_ok and width_ok and \
            dsvar and dsvar[0]["type"] == "datasource" and dsvar[0]["query"] == "prometheus":
        ok(f"grafana-dashboard-node.json: {len(panels)} panels, unique ids, no overlaps, $datasource of type prometheus")
    else:
        bad(f"grafana-dashboard-node.json: ids unique {len(ids) == len(set(ids))}, overlaps {overlap[:3]}, "
            f"refIds unique {refs_ok}, within 24 columns {width_ok}, datasource variable {dsvar}")
except (OSError, ValueError, KeyError, TypeError) as e:
    bad(f"grafana-dashboard-node.json: {e}")
PY
absorb "$T/docker.out"

# The build stage's make command, run on a copy holding exactly what the Dockerfile COPYs.
if [ -s "$T/make_cmd.txt" ] && [ -s "$T/copies.txt" ]; then
    mkdir -p "$T/ctx" "$T/out"
    while read -r src; do
        [ -n "$src" ] && cp -R "${src%/}" "$T/ctx/"
    done <"$T/copies.txt"
    cmd=$(sed 's#/out#'"$T"'/out#g' "$T/make_cmd.txt")
    t0=$SECONDS
    if (cd "$T/ctx" && timeout 900 bash -ec "$cmd") >"$T/dbuild.log" 2>&1 &&
        "$T/out/cairn" --help >/dev/null 2>&1 && [ -x "$T/out/cairnctl" ]; then
        ok "image build stage: make MODE=release on the COPY'd files builds cairn and cairnctl ($((SECONDS - t0))s)"
        # Every shared library those binaries load comes from a runtime-stage package or from the
        # base image (priority "required", and the C library with its libgcc-s1).
        needed_pkgs "$T/out/cairn" "$T/out/cairnctl" >"$T/needed.txt"
        uncovered=$(cat "$T/runtime_pkgs.txt" "$T/required.txt" - <<<"libc6 libgcc-s1" | tr ' ' '\n' |
            sort -u | comm -23 "$T/needed.txt" -)
        if [ -s "$T/needed.txt" ] && [ -z "$uncovered" ]; then
            ok "runtime stage installs the packages of all $(wc -l <"$T/needed.txt") libraries the image's binaries load"
        else
            bad "the image's binaries load libraries from packages the runtime stage lacks: $(echo $uncovered)"
        fi
        # Negative control: the same check without libsnappy1v5 in the runtime stage must miss it.
        uncovered=$(grep -vx libsnappy1v5 "$T/runtime_pkgs.txt" | cat - "$T/required.txt" <(echo libc6 libgcc-s1) |
            tr ' ' '\n' | sort -u | comm -23 "$T/needed.txt" -)
        if [ "$uncovered" = libsnappy1v5 ]; then
            ok "negative control: a runtime stage without libsnappy1v5 is caught"
        else
            bad "negative control: dropping libsnappy1v5 from the runtime stage gives '$(echo $uncovered)'"
        fi
    else
        { grep -E ': error|\*\*\*|No rule' "$T/dbuild.log" || tail -15 "$T/dbuild.log"; } | head -20 |
            sed 's/^/      | /'
        bad "image build stage: make MODE=release fails on the working tree's copy of the Dockerfile's COPY sources"
    fi
    rm -rf "$T/ctx"
fi

# ---- 3. Flags and a run with the StatefulSet's arguments ------------------------------------------

if [ ! -x "$BIN/cairn" ]; then
    bad "$BIN/cairn is not built: flags and the live checks cannot run (make)"
else
    "$BIN/cairn" --help >"$T/help.txt" 2>&1
    nflags=0 unknown=()
    for a in $(cat "$T/entrypoint.txt" "$T/args.txt" 2>/dev/null); do
        f=${a%%=*}
        nflags=$((nflags + 1))
        grep -q -- "$f\b" "$T/help.txt" || unknown+=("$f")
    done
    if [ $nflags -gt 0 ] && [ ${#unknown[@]} = 0 ]; then
        ok "all $nflags flags of the ENTRYPOINT and the StatefulSet appear in cairn --help"
    else
        bad "flags not in cairn --help: ${unknown[*]:-(no flags found)}"
    fi
fi

NE_PORT='' C_PORT='' P_PORT=''
if [ -x "$BIN/cairn" ] && [ -s "$T/cairn.yml" ] && [ -s "$T/args.txt" ]; then
    if ! need prometheus-node-exporter && [ ! -x /usr/bin/prometheus-node-exporter ]; then
        bad "prometheus-node-exporter is not installed (tools/deps.sh)"
    fi
    NE=$(command -v prometheus-node-exporter || echo /usr/bin/prometheus-node-exporter)
    NE_PORT=$(free_port)
    "$NE" --web.listen-address="127.0.0.1:$NE_PORT" >"$T/ne.log" 2>&1 &
    PIDS+=($!)

    # The ConfigMap's file, with its address and intervals made local and fast, plus a node job.
    C_PORT=$(free_port)
    sed -e "s/localhost:9090/127.0.0.1:$C_PORT/" -e 's/scrape_interval: 30s/scrape_interval: 1s/' \
        -e 's/scrape_timeout: 10s/scrape_timeout: 1s/' "$T/cairn.yml" >"$T/live.yml"
    cat >>"$T/live.yml" <<EOF
  - job_name: node
    scrape_interval: 1s
    static_configs:
      - targets: ["127.0.0.1:$NE_PORT"]
EOF
    if grep -q "127.0.0.1:$C_PORT" "$T/live.yml" && grep -q 'scrape_interval: 1s' "$T/live.yml"; then :; else
        bad "cairn.yml in the ConfigMap no longer scrapes localhost:9090 every 30s (test needs updating)"
    fi
    args=()
    while read -r a; do
        case $a in
        --config.file=*) args+=("--config.file=$T/live.yml") ;;
        ?*) args+=("$a") ;;
        esac
    done <"$T/args.txt"
    mkdir -p "$T/data"
    "$BIN/cairn" --storage.tsdb.path="$T/data" --web.listen-address="127.0.0.1:$C_PORT" "${args[@]}" \
        >"$T/cairn.log" 2>&1 &
    CPID=$!
    PIDS+=("$CPID")
    C=http://127.0.0.1:$C_PORT
    if wait_http "$C/-/ready" 200 30 && wait_http "$C/-/healthy" 200 5; then
        ok "cairn with the StatefulSet's arguments and the ConfigMap's cairn.yml is ready"
    else
        tail -20 "$T/cairn.log" | sed 's/^/      | /'
        bad "cairn with the StatefulSet's arguments did not become ready in 30s"
        C_PORT=
    fi
fi

if [ -n "$C_PORT" ]; then
    # Wait (bounded) for both jobs to be up and a handful of node scrapes stored.
    n=0
    for ((i = 0; i < 60; i++)); do
        n=$(instant "$C" 'count_over_time(up{job="node"}[1m]) and on() (up{job="cairn"} == 1)')
        [ -n "$n" ] && [ "${n%.*}" -ge 5 ] 2>/dev/null && break
        sleep 1
    done
    if [ -n "$n" ] && [ "${n%.*}" -ge 5 ] 2>/dev/null && [ "$(instant "$C" 'up{job="node"}')" = 1 ]; then
        ok "cairn scraped itself (job cairn from the ConfigMap) and node exporter: $n node scrapes"
    else
        tail -20 "$T/cairn.log" | sed 's/^/      | /'
        bad "cairn did not scrape its ConfigMap job and node exporter within 60s (got '$n')"
    fi
    # The image's HEALTHCHECK command and the pod's probe paths, against the running server.
    if [ -s "$T/healthcheck.json" ]; then
        mapfile -t hc < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))))' \
            "$T/healthcheck.json" | sed "s#127.0.0.1:9090#127.0.0.1:$C_PORT#")
        if [ "${hc[0]}" = curl ] && timeout 10 "${hc[@]}"; then
            ok "the image's HEALTHCHECK command succeeds: ${hc[*]}"
        else
            bad "the image's HEALTHCHECK command fails: ${hc[*]}"
        fi
    else
        bad "no HEALTHCHECK CMD in exec form in the Dockerfile"
    fi
    while read -r path; do
        [ -n "$path" ] || continue
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$C$path")
        if [ "$code" = 200 ]; then ok "probe path $path answers 200"; else bad "probe path $path answers $code"; fi
    done <"$T/probes.txt"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$C/-/reload")
    if [ "$code" = 200 ] && wait_http "$C/-/ready" 200 5; then
        ok "POST /-/reload answers 200 and the server stays ready"
    else
        bad "POST /-/reload answered $code"
    fi
    # A broken file is refused with the reason and the running configuration kept.
    cp "$T/live.yml" "$T/live.good"
    echo 'scrape_configs: [' >>"$T/live.yml"
    code=$(curl -s -o "$T/reload.txt" -w '%{http_code}' --max-time 10 -X POST "$C/-/reload")
    sleep 2
    age=$(instant "$C" 'time() - timestamp(up{job="node"})')
    if [ "$code" = 500 ] && grep -q 'live.yml' "$T/reload.txt" && wait_http "$C/-/ready" 200 5 &&
        python3 -c 'import sys; sys.exit(0 if 0 <= float(sys.argv[1]) < 3 else 1)' "${age:-x}" 2>/dev/null; then
        ok "POST /-/reload of a broken file answers 500 with the reason; scraping goes on (last scrape $(printf '%.1f' "$age")s ago)"
    else
        bad "POST /-/reload of a broken file answered $code: $(head -c 200 "$T/reload.txt")"
    fi
    cp "$T/live.good" "$T/live.yml"
fi

# ---- 4. Examples: promtool, Prometheus remote_write into Cairn, Grafana dashboard ---------------------

if need promtool; then
    if promtool check config "$EX/prometheus.yml" >"$T/promtool.log" 2>&1; then
        ok "promtool check config deploy/examples/prometheus.yml"
    else
        sed 's/^/      | /' "$T/promtool.log"
        bad "promtool rejects deploy/examples/prometheus.yml"
    fi
else
    bad "promtool is not installed (tools/deps.sh installs prometheus)"
fi

if [ -n "$C_PORT" ] && need prometheus; then
    # The example file run by a real Prometheus: Cairn's Service URL and the scrape targets made
    # local. Its node target is addressed as localhost so its series differ from Cairn's own scrape.
    P_PORT=$(free_port)
    base=$(cat "$T/base_url.txt" 2>/dev/null)
    sed -e "s#${base:-http://cairn.monitoring.svc:9090}#http://127.0.0.1:$C_PORT#" \
        -e "s/localhost:9090/127.0.0.1:$P_PORT/" -e "s/localhost:9100/localhost:$NE_PORT/" \
        -e 's/scrape_interval: 15s/scrape_interval: 1s/' -e 's/batch_send_deadline: 5s/batch_send_deadline: 1s/' \
        "$EX/prometheus.yml" >"$T/prom.yml"
    if grep -q "http://127.0.0.1:$C_PORT/api/v1/write" "$T/prom.yml" && grep -q "localhost:$NE_PORT" "$T/prom.yml"; then
        mkdir -p "$T/prom"
        prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/prom" \
            --web.listen-address="127.0.0.1:$P_PORT" >"$T/prom.log" 2>&1 &
        PIDS+=($!)
        PPID_=$!
        # A few batches must have arrived, so that rates over them exist.
        n=
        for ((i = 0; i < 60; i++)); do
            n=$(instant "$C" "count_over_time(node_load1{job=\"node\",instance=\"localhost:$NE_PORT\"}[1m]) and on() up{job=\"prometheus\"}")
            [ -n "$n" ] && [ "${n%.*}" -ge 4 ] 2>/dev/null && break
            sleep 1
        done
        if [ -n "$n" ] && [ "${n%.*}" -ge 4 ] 2>/dev/null; then
            ok "Prometheus 2.42 running deploy/examples/prometheus.yml remote-writes into cairn ($n scrapes arrived)"
        else
            tail -15 "$T/prom.log" | sed 's/^/      | /'
            bad "no remote-written samples from Prometheus reached cairn within 60s"
        fi
    else
        bad "deploy/examples/prometheus.yml changed shape (remote_write URL or localhost:9100 target)"
    fi
fi

if [ -n "$C_PORT" ]; then
    python3 - "$C" "127.0.0.1:$NE_PORT" "$EX/grafana-dashboard-node.json" >"$T/dash.out" 2>&1 <<'PY'
import json, re, sys, time, urllib.parse, urllib.request
base, instance, path = sys.argv[1:4]
def ok(m): print("ok    " + m)
def bad(m): print("FAIL  " + m)
def post(endpoint, params):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(base + endpoint, data=data, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return json.load(e)
        except Exception:
            return {"status": "error", "error": f"HTTP {e.code}"}
def get(endpoint, params):
    try:
        with urllib.request.urlopen(base + endpoint + "?" + urllib.parse.urlencode(params), timeout=30) as r:
            return json.load(r)
    except Exception as e:
        return {"status": "error", "error": str(e)}

d = json.load(open(path))
variables = {"job": "node", "instance": instance}
subst = {"__rate_interval": "1m", "__interval": "15s", "__range": "2m", "__range_s": "120",
         "__interval_ms": "15000", **variables}
def expand(expr):
    def rep(m):
        name = m.group(1) or m.group(2)
        if name not in subst:
            raise KeyError(name)
        return subst[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", rep, expr)

# Template variables: label_values(...) must find the job and the instance.
tv = {v["name"]: v for v in d["templating"]["list"]}
for name in ("job", "instance"):
    q = tv[name]["query"]["query"] if isinstance(tv[name]["query"], dict) else tv[name]["query"]
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
    if not m:
        bad(f"variable {name}: unexpected query {q}")
        continue
    r = get(f"/api/v1/label/{m.group(2)}/values",
            {"match[]": expand(m.group(1)), "start": time.time() - 3600, "end": time.time()})
    if r.get("status") == "success" and variables[name] in r.get("data", []):
        ok(f"variable ${name}: {q} finds {variables[name]!r}")
    else:
        bad(f"variable ${name}: {q} -> {r}")

end = time.time()
panels = [p for p in d["panels"] if p.get("type") != "row"]
values = {}
n = 0
for p in panels:
    if p.get("datasource", {}).get("uid") != "${datasource}":
        bad(f"panel {p['title']!r}: data source is not the $datasource variable")
    for t in p.get("targets", []):
        n += 1
        try:
            q = expand(t["expr"])
        except KeyError as e:
            bad(f"panel {p['title']!r}: unknown variable {e}")
            continue
        r = post("/api/v1/query_range", {"query": q, "start": f"{end - 120:.3f}", "end": f"{end:.3f}", "step": "5"})
        res = r.get("data", {}).get("result") if r.get("status") == "success" else None
        if res is None:
            bad(f"panel {p['title']!r} [{t['refId']}]: {r.get('errorType')}: {r.get('error')}  <- {q}")
        elif not res or not any(s.get("values") for s in res):
            bad(f"panel {p['title']!r} [{t['refId']}]: no data  <- {q}")
        else:
            ok(f"panel {p['title']!r} [{t['refId']}]: {len(res)} series")
            values[(p["title"], t["refId"])] = res
if n < 20:
    bad(f"the dashboard has only {n} queries")

# A few answers checked against the machine itself.
def lastval(key):
    res = values.get(key)
    return float(res[0]["values"][-1][1]) if res else None
cores = sum(1 for l in open("/proc/cpuinfo") if l.startswith("processor"))
v = lastval(("CPU cores", "A"))
if v == cores:
    ok(f"CPU cores panel shows {cores}, as /proc/cpuinfo")
else:
    bad(f"CPU cores panel shows {v}, /proc/cpuinfo has {cores}")
mem = [int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal:")][0]
v = lastval(("Memory", "D"))
if v == mem:
    ok(f"Memory panel's total is MemTotal ({mem} bytes)")
else:
    bad(f"Memory panel's total {v} != MemTotal {mem}")
res = values.get(("Busiest nodes (CPU)", "A"), [])
# Utilisation is at most 1, give or take rate()'s extrapolation over jittered scrapes.
if len(res) == 2 and all(0 <= float(s["values"][-1][1]) <= 1.2 for s in res):
    ok("topk panel ranks both node instances (scraped and remote-written) with utilisation in [0, 1]")
else:
    bad(f"topk panel: expected 2 instances in [0, 1.2], got {[(s['metric'], s['values'][-1]) for s in res]}")
PY
    absorb "$T/dash.out"
fi

# ---- Shutdown within the grace period -------------------------------------------------------------

# Prometheus first: it flushes its remote-write queue to cairn on the way out.
if [ -n "${PPID_:-}" ]; then
    kill -TERM "$PPID_" 2>/dev/null
    for ((i = 0; i < 300; i++)); do kill -0 "$PPID_" 2>/dev/null || break; sleep 0.1; done
    echo "      | prometheus stopped after ${i}00 ms"
fi
if [ -n "$C_PORT" ]; then
    grace=$(cat "$T/grace.txt" 2>/dev/null || echo 30)
    kill -TERM "$CPID"
    rc=
    for ((i = 0; i < grace * 10; i++)); do
        if ! kill -0 "$CPID" 2>/dev/null; then
            wait "$CPID"
            rc=$?
            PIDS=("${PIDS[@]/#$CPID/}") # reaped: not to be signalled again
            break
        fi
        sleep 0.1
    done
    if [ "$rc" = 0 ]; then
        ok "cairn exits 0 on SIGTERM within ${i}00 ms (grace period ${grace}s)"
    else
        tail -10 "$T/cairn.log" | sed 's/^/      | /'
        bad "cairn did not exit cleanly on SIGTERM within ${grace}s (status '${rc:-still running}')"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
