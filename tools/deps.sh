#!/usr/bin/env bash
# tools/deps.sh -- the Debian packages Cairn's build and tests need.
#   deps.sh install   install every package that is missing (idempotent)
#   deps.sh ensure    the same, but silent when nothing is missing (make test / make run)
#   deps.sh list      print the package list
set -euo pipefail

PKGS=(
  build-essential pkg-config git
  liblmdb-dev lmdb-utils libzstd-dev libmicrohttpd-dev libcjson-dev libsnappy-dev
  libprotobuf-c-dev protobuf-c-compiler libpcre2-dev libcurl4-openssl-dev libyaml-dev
  zlib1g-dev libcmocka-dev clang libclang-rt-14-dev clang-format curl python3
  prometheus prometheus-node-exporter
)

missing() {
  local m=()
  for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      m+=("$p")
    fi
  done
  echo "${m[@]:-}"
}

cmd=${1:-install}
case "$cmd" in
list) printf '%s\n' "${PKGS[@]}"; exit 0 ;;
install|ensure) ;;
*) echo "usage: $0 install|ensure|list" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: this is not a Debian-like system (no dpkg); install the packages listed by '$0 list' by hand" >&2
  exit 1
fi
need=$(missing)
if [ -z "$need" ]; then
  [ "$cmd" = install ] && echo "deps: all packages present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing packages ($need) and no apt-get to install them" >&2
  exit 1
fi
SUDO=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "deps: missing packages ($need); run 'make deps' as root" >&2; exit 1
  fi
fi
echo "deps: installing: $need"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
# Debian's packages start these services on install where an init system runs; tests start
# their own instances on free ports, so stop the stock ones when they are running.
for svc in prometheus prometheus-node-exporter; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "deps: done"
