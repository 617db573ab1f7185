#!/usr/bin/env bash
# make bench-compare: Cairn against Prometheus 2.42 on this machine (see compare.py).
#   WORKLOADS=W1,W2,W3 REPS=3 OUT=bench/results/<date>.md
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v prometheus >/dev/null 2>&1; then
  tools/deps.sh ensure
fi
out=${OUT:-bench/results/$(date +%Y-%m-%d).md}
exec python3 tests/bench/compare.py --workloads "${WORKLOADS:-W1,W2,W3}" --reps "${REPS:-3}" --out "$out"
