#!/usr/bin/env bash
# swarm-down.sh: remove the test swarm that hack/swarm-up.sh created, and
# nothing else. Safe to run when nothing is up, and to run again.
#
# For every node dfswarm-nodeN (found from the network namespaces, the run
# directory and the state directory, so a half-created swarm goes too):
#   - its dockerd, by the pid in /run/dockerfaasd-swarm/nodeN/docker.pid (checked
#     to be that node's dockerd), gets SIGTERM and SWARM_STOP_WAIT seconds
#     (default 60) to stop its containers and its containerd, then SIGKILL;
#   - what is left of the node is killed: processes in its network namespace
#     (its containerd, shims) and in its container cgroups (/dfswarm-nodeN);
#   - its network namespace, the empty cgroups, its data root and logs go.
# Then the hub namespace (with the bridge dfswarm-br), the root namespace's veth
# dfswarm-host, /run/dockerfaasd-swarm and the state directory
# (SWARM_STATE_DIR, default /var/lib/dockerfaasd-swarm, or the one swarm-up
# recorded), and /run/netns when swarm-up was the one that mounted it.
#
# With --power-off N it cuts the power of node N only, for node-loss tests:
# SIGKILL to its dockerd and to everything of that node at once (no
# graceful stop, as a host that dies), keeping its namespace and data root;
# hack/swarm-up.sh starts it again and it rejoins.
#
# Processes are only ever found by those pid files, namespaces and cgroups,
# never by name: the host's dockerd and its containers are not touched.
set -euo pipefail

log() { echo "swarm-down: $*" >&2; }
die() { echo "swarm-down: $*" >&2; exit 1; }

P=dfswarm
RUN=/run/dockerfaasd-swarm
STATE=${SWARM_STATE_DIR:-/var/lib/dockerfaasd-swarm}
STOP_WAIT=${SWARM_STOP_WAIT:-60}

power_off=""
case ${1:-} in
--power-off) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--power-off needs a node number"; power_off=$2 ;;
"") ;;
*) die "usage: hack/swarm-down.sh [--power-off N]" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root"
[[ $STOP_WAIT =~ ^[0-9]+$ ]] || die "SWARM_STOP_WAIT must be a number of seconds"

if [ -d "$RUN" ]; then
  exec 9<"$RUN"
  flock -w 600 9 || die "another swarm-up/swarm-down holds $RUN for 10 minutes"
  if [ -f "$RUN/layout" ]; then
    s=$(sed -n 's/^state_dir=//p' "$RUN/layout")
    [ -z "$s" ] || STATE=$s
  fi
fi

# The nodes: every dfswarm-nodeN namespace, run directory or state directory.
nodes=$(
  {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$P-node\([0-9][0-9]*\)$/\1/p"
    for d in "$RUN"/node* "$STATE"/node*; do
      if [ -d "$d" ]; then basename "$d" | sed -n 's/^node\([0-9][0-9]*\)$/\1/p'; fi
    done
  } | sort -un
)

# dockerd_pid I: the pid of node I's dockerd when it runs, else nothing.
dockerd_pid() {
  local pid
  pid=$(cat "$RUN/node$1/docker.pid" 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "dockerd --config-file $STATE/node$1/daemon.json " && echo "$pid"
  return 0
}

# leftovers I: the processes of node I apart from its dockerd's own: those in
# its network namespace (its containerd, shims, docker-proxy) and those in its
# container cgroups (/dfswarm-nodeI, the dockerd's cgroup parent).
leftovers() {
  local ino p
  ino=$(stat -L -c %i "/run/netns/$P-node$1" 2>/dev/null || true)
  {
    if [ -n "$ino" ]; then
      for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/net" 2>/dev/null)" = "net:[$ino]" ] && echo "${p#/proc/}"
      done
    fi
    find /sys/fs/cgroup -maxdepth 4 -path "*/$P-node$1/*" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  } | sort -un | tr '\n' ' ' | sed 's/ $//'
}

if [ -n "$power_off" ]; then
  echo "$nodes" | grep -qx "$power_off" || die "no node $power_off"
  pid=$(dockerd_pid "$power_off")
  [ -n "$pid" ] || die "node$power_off is not running"
  # shellcheck disable=SC2046
  kill -KILL "$pid" $(leftovers "$power_off") 2>/dev/null || true
  for _ in $(seq 1 20); do
    pids=$(leftovers "$power_off")
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.25
  done
  log "node$power_off: powered off (data kept; hack/swarm-up.sh starts it again)"
  exit 0
fi

if [ -z "$nodes" ]; then
  log "no nodes found"
else
  log "nodes: $(echo "$nodes" | tr '\n' ' ')"
fi

# 1. SIGTERM to every node's dockerd at once, then wait for all (bounded).
declare -A pid_of=()
for i in $nodes; do
  pid=$(dockerd_pid "$i")
  if [ -n "$pid" ]; then
    log "node$i: stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    pid_of[$i]=$pid
  fi
done
if [ ${#pid_of[@]} -gt 0 ]; then
  for _ in $(seq 1 $((STOP_WAIT * 2))); do
    alive=0
    for i in "${!pid_of[@]}"; do kill -0 "${pid_of[$i]}" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.5
  done
  for i in "${!pid_of[@]}"; do
    if kill -0 "${pid_of[$i]}" 2>/dev/null; then
      log "node$i: dockerd still running ${STOP_WAIT}s after SIGTERM; SIGKILL"
      kill -KILL "${pid_of[$i]}" 2>/dev/null || true
    fi
  done
fi

# 2. What is left of each node (containerd, shims, containers): SIGKILL, bounded.
for i in $nodes; do
  for _ in $(seq 1 20); do
    pids=$(leftovers "$i")
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  done
  pids=$(leftovers "$i")
  [ -z "$pids" ] || log "node$i: processes still left after SIGKILL: $pids"
done

# 3. Namespaces, links, cgroups, files.
for i in $nodes; do
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$P-node$i"; then
    ip netns del "$P-node$i"
  fi
  # The cgroups its dockerd created (children first).
  find /sys/fs/cgroup -maxdepth 4 -depth -type d \( -path "*/$P-node$i" -o -path "*/$P-node$i/*" \) \
    -exec rmdir {} \; 2>/dev/null || true
  if [ -n "$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$P-node$i" 2>/dev/null)" ]; then
    log "node$i: cgroups left: $(find /sys/fs/cgroup -maxdepth 2 -type d -name "$P-node$i" | tr '\n' ' ')"
  fi
  rm -rf "${STATE:?}/node$i" "$RUN/node$i"
done
if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$P-hub"; then
  ip netns del "$P-hub"
fi
# The hub's end of dfswarm-host went with the hub; the root end follows it.
for _ in $(seq 1 20); do
  ip link show "$P-host" >/dev/null 2>&1 || break
  ip link del "$P-host" 2>/dev/null || true
  sleep 0.25
done
ip link show "$P-host" >/dev/null 2>&1 && log "link $P-host still present"

if [ -f "$RUN/netns-mount" ] && mountpoint -q /run/netns &&
  [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
  # -n: util-linux would otherwise create /run/mount/utab.
  if umount -n /run/netns 2>/dev/null && grep -qx mount+dir "$RUN/netns-mount"; then
    rmdir /run/netns 2>/dev/null || true
  fi
fi
rm -f "$STATE"/.load.*.tar "$RUN/layout" "$RUN/netns-mount"
# shellcheck disable=SC2012
rmdir "$STATE" 2>/dev/null || { [ ! -d "$STATE" ] || log "$STATE not empty; left in place: $(ls -A "$STATE" | tr '\n' ' ')"; }
# shellcheck disable=SC2012
rmdir "$RUN" 2>/dev/null || { [ ! -d "$RUN" ] || log "$RUN not empty; left in place: $(ls -A "$RUN" | tr '\n' ' ')"; }
log "done"
