#!/bin/sh
# Entrypoint of the dind29 stand-in, written for this project. It keeps the contract of docker-library's
# dockerd-entrypoint.sh (29) that the chart relies on (tests/unit/data/upstream/dockerd-pin.yaml):
#   - no arguments, or a flag first: "dockerd --host=<unix socket> --host=tcp://0.0.0.0:2375" goes in
#     front (TLS off). This stand-in makes no TLS certificates: with DOCKER_TLS_CERTDIR set it stops.
#   - "dockerd" first: no flag is added. Stale docker*.pid files go; docker-init (tini) runs dockerd as
#     its child; iptables is nft or legacy (DOCKER_IPTABLES_LEGACY decides when set, non-empty meaning
#     legacy; else legacy when the kernel already holds legacy tables, or when nft's `iptables -nL` fails
#     and legacy's works); as root, moby's hack/dind wraps all of it (cgroup v2 nesting, rshared /).
#   - anything else runs as given.
# Each decision is logged on stderr with the prefix "dockerd-entrypoint:".
set -eu

say() { echo "dockerd-entrypoint: $*" >&2; }
load() { if command -v modprobe >/dev/null 2>&1; then for m in "$@"; do modprobe "$m" 2>/dev/null || :; done; fi; }

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
    say "DOCKER_TLS_CERTDIR=$DOCKER_TLS_CERTDIR asks for TLS certificates, which this stand-in does not make; set DOCKER_TLS_CERTDIR='' or pass dockerd and its flags"
    exit 1
  fi
  socket=unix:///var/run/docker.sock
  case "${DOCKER_HOST:-}" in unix://*) socket=$DOCKER_HOST ;; esac
  say "no command, or a flag first: adding --host=$socket --host=tcp://0.0.0.0:2375"
  set -- dockerd --host="$socket" --host=tcp://0.0.0.0:2375 "$@"
elif [ "$1" = dockerd ]; then
  say "dockerd given first: its flags are used as they are"
fi

if [ "$1" != dockerd ]; then
  exec "$@"
fi

find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
set -- docker-init -- "$@"

legacy_dir=/usr/local/sbin/.iptables-legacy
legacy_tables() {
  for f in /proc/net/ip_tables_names /proc/net/ip6_tables_names /proc/net/arp_tables_names; do
    if [ -n "$(cat "$f" 2>/dev/null)" ]; then return 0; fi
  done
  return 1
}
legacy=""
why="nft works"
if [ -n "${DOCKER_IPTABLES_LEGACY+x}" ]; then
  legacy=$DOCKER_IPTABLES_LEGACY
  why="DOCKER_IPTABLES_LEGACY='$legacy'"
  if [ -n "$legacy" ]; then load ip_tables ip6_tables; else load nf_tables; fi
elif legacy_tables; then
  legacy=1
  why="the kernel already holds legacy tables"
elif ! iptables -nL >/dev/null 2>&1; then
  load nf_tables
  if ! iptables -nL >/dev/null 2>&1; then
    load ip_tables ip6_tables
    why="neither nft nor legacy answers"
    if "$legacy_dir/iptables" -nL >/dev/null 2>&1; then
      legacy=1
      why="nft does not answer, legacy does"
    fi
  fi
fi
if [ -n "$legacy" ]; then
  PATH="$legacy_dir:$PATH"
  export PATH
fi
say "iptables: $(iptables --version) ($why)"

if [ "$(id -u)" != 0 ]; then
  say "error: rootless dockerd is not part of this stand-in (no rootlesskit); run it as root"
  exit 1
fi
if [ -x /usr/local/bin/dind ]; then
  set -- /usr/local/bin/dind "$@"
fi
say "exec $*"
exec "$@"
