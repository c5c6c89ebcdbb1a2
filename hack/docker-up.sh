#!/usr/bin/env bash
# docker-up.sh: make sure a Docker Engine answers on the local socket.
# Installs Debian's docker.io when dockerd is missing, starts dockerd when it
# is not running (clearing a stale pid file), and waits until `docker info`
# answers. Idempotent; safe to run on a machine where Docker already runs.
set -euo pipefail

log() { echo "docker-up: $*" >&2; }

# The daemon reaches every replica at its own address on its own bridge, and
# each such neighbour takes one entry of the kernel's ARP table. Its default
# hard limit (gc_thresh3 = 1024) overflows at several hundred functions:
# replicas then stop answering the daemon. Raised, never lowered.
raise_sysctl() {
  local f=/proc/sys/net/ipv4/neigh/default/gc_thresh$1
  if [ -w "$f" ] && [ "$(cat "$f")" -lt "$2" ]; then
    echo "$2" >"$f" && log "net.ipv4.neigh.default.gc_thresh$1 raised to $2"
  fi
}
raise_sysctl 1 4096
raise_sysctl 2 8192
raise_sysctl 3 16384

if docker info >/dev/null 2>&1; then
  log "engine already answering"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

# dockerfaasd gives every function its own bridge network. Docker's default
# address pools hold only ~30 networks, so a fresh engine gets a larger pool
# of /24s (4096 networks). An existing daemon.json is the operator's: it is
# left alone, with a warning when it sets no pools.
conf=/etc/docker/daemon.json
if [ ! -f "$conf" ]; then
  mkdir -p /etc/docker
  cat >"$conf" <<'JSON'
{
  "default-address-pools": [{"base": "10.192.0.0/12", "size": 24}]
}
JSON
  log "wrote $conf with a default address pool for one network per function"
elif ! grep -q default-address-pools "$conf"; then
  log "warning: $conf sets no default-address-pools; Docker then runs out of networks after ~30 functions"
fi

pidfile=/var/run/docker.pid
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null; then
    log "dockerd (pid $pid) running but not answering yet"
  else
    log "removing stale $pidfile"
    rm -f "$pidfile"
  fi
fi

if [ ! -f "$pidfile" ]; then
  # containerd's own stale state is harmless; dockerd starts its own containerd.
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "engine ready: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not answer within 60s; last log lines:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
