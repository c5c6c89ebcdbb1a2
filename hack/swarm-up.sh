#!/usr/bin/env bash
# swarm-up.sh: a real multi-node Docker swarm on this one machine, for tests.
#
# Starts several Docker Engines (one dockerd each, with the containerd that
# dockerd manages), each in a network namespace of its own with its own
# address, hostname, data root, exec root, pid file and socket, all joined by a
# Linux bridge that lives in a separate "hub" network namespace, and forms one
# swarm of them: node1 initialises it, the other managers and the workers join.
# A veth from the root namespace into the hub gives this machine an address in
# the swarm subnet, so tests and the daemon reach node addresses (and ports
# published with --publish mode=host) from here. That veth and its address are
# the only change made in the root namespace: node dockerds program iptables
# and sysctls in their own namespaces only.
#
# Usage: hack/swarm-up.sh [--managers N] [--workers N] [--load IMAGE...] [--with-daemon]
#
#   --managers N   managers (default 1; 3 for the HA layout). node1..nodeN are
#                  the managers, the nodes after them the workers.
#   --workers N    workers (default: as many as make 3 nodes, at least 0)
#   --load IMG...  save each image from the local engine (docker save) and load
#                  it into every node; an image a node already has (same ID)
#                  is skipped. Works on a swarm that is already up.
#   --with-daemon  also build dockerfaasd from this working tree (go build,
#                  then an image built on every manager from the Dockerfile)
#                  and run it on node1 as README "When one host is not
#                  enough" shows: a container with the manager's socket, a
#                  state volume, RUNTIME=swarm and port SWARM_GATEWAY_PORT
#                  published. Prints GATEWAY=http://... (reachable from this
#                  machine) and PASSWORD_FILE=... (a copy of the generated
#                  password) before the last line. Run again, it replaces
#                  the daemon container only when the binary changed; the
#                  state volume is kept.
#
# Running it again is safe: a healthy swarm of the same layout is left as it
# is (only --load does anything); a node whose dockerd is gone (a node-loss
# test, a reboot) is started again on its data root and rejoins; a swarm of a
# different layout is refused (run hack/swarm-down.sh first).
#
# Output: progress on stderr; on stdout KEY=value lines, the last one
# DOCKER_HOST=unix:///run/dockerfaasd-swarm/node1/docker.sock (a manager):
#   export "$(hack/swarm-up.sh --load IMAGE | tail -1)"
# Every node answers on /run/dockerfaasd-swarm/nodeN/docker.sock.
#
# Environment:
#   SWARM_SUBNET       the nodes' /24 (default 10.213.0.0/24): .1 is this
#                      machine's end of the veth, nodeN is .(10+N)
#   SWARM_ADDR_POOL    swarm's pool for overlay networks (default 10.224.0.0/12,
#                      /24 each): apart from SWARM_SUBNET and the local pools
#   SWARM_STATE_DIR    data roots and logs (default /var/lib/dockerfaasd-swarm)
#   SWARM_IMAGE_SOURCE engine that --load saves from (default: DOCKER_HOST when
#                      it is not a node of this swarm, else the default socket)
#   SWARM_TIMEOUT      seconds to wait for each stage (default 120)
#   SWARM_GATEWAY_PORT port the --with-daemon gateway publishes (default 8080)
#
# Everything it creates is named dfswarm-*: network namespaces dfswarm-hub and
# dfswarm-nodeN, the bridge dfswarm-br (in the hub), the veth dfswarm-host (root
# namespace), hostnames dfswarm-nodeN, container cgroups under /dfswarm-nodeN;
# plus /run/dockerfaasd-swarm and SWARM_STATE_DIR. hack/swarm-down.sh removes
# exactly these. The host's own dockerd and its containers are never touched.
#
# Needs root, iproute2, util-linux (nsenter, unshare, flock) and docker.io.
set -euo pipefail

log() { echo "swarm-up: $*" >&2; }
die() { echo "swarm-up: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//' >&2; }

P=dfswarm
RUN=/run/dockerfaasd-swarm
STATE=${SWARM_STATE_DIR:-/var/lib/dockerfaasd-swarm}
SUBNET=${SWARM_SUBNET:-10.213.0.0/24}
ADDR_POOL=${SWARM_ADDR_POOL:-10.224.0.0/12}
TIMEOUT=${SWARM_TIMEOUT:-120}
GATEWAY_PORT=${SWARM_GATEWAY_PORT:-8080}
# Every node's engine also listens here, in the node's private /run/docker:
# one path that means "this node's engine" on every node, as
# /var/run/docker.sock does on real hosts, for a service that mounts it.
NODE_SOCK=/run/docker/docker.sock
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export DOCKER_BUILDKIT=0

managers="" workers="" with_daemon=0
loads=()
while [ $# -gt 0 ]; do
  case $1 in
  --managers) [ $# -ge 2 ] || die "--managers needs a number"; managers=$2; shift 2 ;;
  --managers=*) managers=${1#*=}; shift ;;
  --workers) [ $# -ge 2 ] || die "--workers needs a number"; workers=$2; shift 2 ;;
  --workers=*) workers=${1#*=}; shift ;;
  --load)
    shift
    while [ $# -gt 0 ] && [[ $1 != --* ]]; do loads+=("$1"); shift; done
    ;;
  --with-daemon) with_daemon=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage; die "unknown argument: $1" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, mounts)"
for c in ip nsenter unshare flock mount dockerd docker; do
  command -v "$c" >/dev/null 2>&1 || die "$c not found (needs iproute2, util-linux and docker.io)"
done
[[ $SUBNET =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] || die "SWARM_SUBNET must be a /24 like 10.213.0.0/24, got $SUBNET"
net3=${BASH_REMATCH[1]}
for v in "$managers" "$workers" "$TIMEOUT" "$GATEWAY_PORT"; do
  [ -z "$v" ] || [[ $v =~ ^[0-9]+$ ]] || die "not a number: $v"
done

t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$RUN"
# One swarm-up or swarm-down at a time. The lock is on the run directory itself
# (swarm-down removes it), and fd 9 is closed for every process started here.
exec 9<"$RUN"
flock -w 600 9 || die "another swarm-up/swarm-down holds $RUN for 10 minutes"

# ---- layout: the requested one, or the one already up ----------------------
layout=$RUN/layout
cur_managers="" cur_workers="" cur_subnet="" cur_state=""
if [ -f "$layout" ]; then
  while IFS='=' read -r k v; do
    case $k in
    managers) cur_managers=$v ;; workers) cur_workers=$v ;;
    subnet) cur_subnet=$v ;; state_dir) cur_state=$v ;;
    esac
  done <"$layout"
  other=0
  [ -z "$managers" ] || [ "$managers" = "$cur_managers" ] || other=1
  [ -z "$workers" ] || [ "$workers" = "$cur_workers" ] || other=1
  [ "$SUBNET" = "$cur_subnet" ] || other=1
  [ "$STATE" = "$cur_state" ] || other=1
  [ "$other" = 0 ] || die "a swarm of another layout is up (managers: $cur_managers, workers: $cur_workers, subnet: $cur_subnet, state: $cur_state); run hack/swarm-down.sh first"
  managers=$cur_managers workers=$cur_workers
fi
managers=${managers:-1}
[ "$managers" -ge 1 ] || die "--managers must be at least 1"
if [ -z "$workers" ]; then
  workers=$((3 - managers))
  [ "$workers" -ge 0 ] || workers=0
fi
n=$((managers + workers))
[ "$n" -le 200 ] || die "at most 200 nodes"
[ $((managers % 2)) = 1 ] || log "warning: $managers managers: an even number tolerates no more failures than $((managers - 1))"

sock() { echo "$RUN/node$1/docker.sock"; }
addr() { echo "$net3.$((10 + $1))"; }
hostaddr=$net3.1
# nd I ARGS...: the docker CLI against node I.
nd() { local i=$1; shift; docker -H "unix://$(sock "$i")" "$@"; }

# ---- kernel facts (notes, not errors) --------------------------------------
# kconf NAME MODULE: y, m or n for CONFIG_NAME of the running kernel.
kconf() {
  local v="" rel
  rel=$(uname -r)
  if [ -r /proc/config.gz ]; then
    v=$(zcat /proc/config.gz | sed -n "s/^CONFIG_$1=//p")
  elif [ -r "/boot/config-$rel" ]; then
    v=$(sed -n "s/^CONFIG_$1=//p" "/boot/config-$rel")
  elif grep -qs "/$2.ko" "/lib/modules/$rel/modules.builtin"; then
    v=y
  fi
  if [ "$v" = m ] && ! { [ -d "/sys/module/$2" ] || modinfo "$2" >/dev/null 2>&1; }; then v=n; fi
  if [ -z "$v" ] && { [ -d "/sys/module/$2" ] || modinfo "$2" >/dev/null 2>&1; }; then v=m; fi
  echo "${v:-n}"
}
ipvs=1 esp=1
[ "$(kconf IP_VS ip_vs)" != n ] || ipvs=0
[ "$(kconf INET_ESP esp4)" != n ] || esp=0
[ "$(kconf VXLAN vxlan)" != n ] || die "the kernel has no VXLAN (CONFIG_VXLAN): overlay networks cannot work"
[ "$ipvs" = 1 ] || log "note: this kernel has no IPVS (CONFIG_IP_VS unset): service VIPs and the ingress routing mesh do not work; use --endpoint-mode dnsrr, tasks.<service> DNS, task IPs and --publish mode=host"
[ "$esp" = 1 ] || log "note: this kernel has no ESP (CONFIG_INET_ESP unset): encrypted overlays (--opt encrypted) are not supported here"

# ---- health -----------------------------------------------------------------
# node_ids: each node's own swarm node ID, one a line ("none" when unknown).
node_ids() {
  local i id
  for i in $(seq 1 "$n"); do
    id=$(timeout 20 docker -H "unix://$(sock "$i")" info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
    echo "${id:-none}"
  done
}
# listing: the manager's (node1's) entries of our hostnames: ID HOSTNAME STATUS.
listing() {
  timeout 20 docker -H "unix://$(sock 1)" node ls --format '{{.ID}} {{.Hostname}} {{.Status}}' 2>/dev/null |
    awk -v p="$P-node" 'index($2, p) == 1'
}
# ready_count IDS: how many of the nodes IDS the manager lists as Ready.
ready_count() {
  listing | awk '$3 == "Ready" { print $1 }' | grep -cxF "$1" || true
}
# healthy: every node answers and is in the swarm, and the manager lists
# exactly these nodes (no stale entries of ours), all Ready.
healthy() {
  local i ids
  [ -f "$layout" ] || return 1
  for i in $(seq 1 "$n"); do
    [ -S "$(sock "$i")" ] || return 1
    [ "$(timeout 10 docker -H "unix://$(sock "$i")" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] || return 1
  done
  ids=$(node_ids)
  [ "$(listing | wc -l)" = "$n" ] && [ "$(ready_count "$ids")" = "$n" ]
}

# ---- network ----------------------------------------------------------------
has_netns() { [ -e "/run/netns/$1" ] && ip netns list | awk '{print $1}' | grep -qx "$1"; }
add_netns() {
  if [ ! -e "$RUN/netns-mount" ] && ! mountpoint -q /run/netns 2>/dev/null; then
    # ip netns add makes /run/netns a mount point (and the directory); remember
    # that it was us, so that swarm-down undoes it when no namespace is left.
    if [ -d /run/netns ]; then echo mount; else echo mount+dir; fi >"$RUN/netns-mount"
  fi
  ip netns add "$1"
  ip -n "$1" link set lo up
}

ensure_hub() {
  local hub=$P-hub
  if ! has_netns "$hub"; then
    # A subnet that this machine already routes elsewhere would be shadowed.
    local clash
    clash=$({ ip -4 route show match "$SUBNET"; ip -4 route show root "$SUBNET"; } |
      grep -v '^default' | grep -v " dev $P-host " || true)
    [ -z "$clash" ] || die "SWARM_SUBNET $SUBNET clashes with a route of this machine: $clash"
    add_netns "$hub"
  fi
  ip -n "$hub" link show "$P-br" >/dev/null 2>&1 || ip -n "$hub" link add "$P-br" type bridge
  ip -n "$hub" link set "$P-br" up
  if ! ip link show "$P-host" >/dev/null 2>&1; then
    ip link add "$P-host" type veth peer name "$P-root" netns "$hub"
  fi
  ip -n "$hub" link set "$P-root" master "$P-br" up
  ip -4 addr show dev "$P-host" | grep -q " $hostaddr/24 " || ip addr add "$hostaddr/24" dev "$P-host"
  ip link set "$P-host" up
}

ensure_node_net() {
  local i=$1 ns=$P-node$1 hub=$P-hub
  has_netns "$ns" || add_netns "$ns"
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip -n "$hub" link del "$P-n$i" 2>/dev/null || true
    ip -n "$hub" link add "$P-n$i" type veth peer name eth0 netns "$ns"
  fi
  ip -n "$hub" link set "$P-n$i" master "$P-br" up
  ip -n "$ns" -4 addr show dev eth0 | grep -q " $(addr "$i")/24 " || ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# ---- node dockerds ----------------------------------------------------------
# Runs as the node's dockerd (exec): inside the node's network namespace
# (nsenter --net) and new mount and UTS namespaces (unshare). Not
# `ip netns exec`: it remounts /sys without /sys/fs/cgroup, which dockerd needs.
# A fresh sysfs shows this namespace's interfaces; the cgroup tree is carried
# over. Private tmpfs on /run/docker (the exec root, with the containerd that
# dockerd starts) and /run/containerd (else dockerd would use a system
# containerd found there). The node's data directory is bound on
# /var/lib/docker, its data root: dockerd writes some files under that path
# whatever --data-root says (libnetwork's load-balancer sandboxes of overlay
# networks, network/files/lb_*), which must not land in the host engine's.
# The socket and pid file are in $RUN, a directory of the shared filesystem
# that is not mounted over here, so they are visible from the root namespace.
# /run/netns is unmounted in this private copy so that the node does not keep
# the other nodes' namespaces alive. mount -n: util-linux would otherwise
# create /run/mount/utab on the shared filesystem.
# $1 hostname, $2 daemon.json, $3 data directory (sh -c arguments).
# shellcheck disable=SC2016
node_boot='set -e
hostname "$1"
mount -n -t tmpfs -o mode=0711 dfswarm-exec /run/docker
mkdir /run/docker/.cgroup
mount -n --rbind /sys/fs/cgroup /run/docker/.cgroup
umount -n -l /sys
mount -n -t sysfs sysfs /sys
mount -n --move /run/docker/.cgroup /sys/fs/cgroup
rmdir /run/docker/.cgroup
mkdir -p /run/containerd
mount -n -t tmpfs -o mode=0711 dfswarm-containerd /run/containerd
mkdir -p /var/lib/docker
mount -n --bind "$3" /var/lib/docker
if mountpoint -q /run/netns; then umount -n -l /run/netns; fi
exec dockerd --config-file "$2"'

# dockerd_pid I: the pid of node I's dockerd when it runs, else nothing.
dockerd_pid() {
  local pid
  pid=$(cat "$RUN/node$1/docker.pid" 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "dockerd --config-file $STATE/node$1/daemon.json " && echo "$pid"
  return 0
}

# node_pids I: the processes of node I apart from its dockerd's own: those in
# its network namespace (its containerd, shims, docker-proxy) and those in its
# container cgroups (/dfswarm-nodeI, the dockerd's cgroup parent).
node_pids() {
  local ino p
  ino=$(stat -L -c %i "/run/netns/$P-node$1" 2>/dev/null || true)
  if [ -n "$ino" ]; then
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/net" 2>/dev/null)" = "net:[$ino]" ] && echo "${p#/proc/}"
    done
  fi
  find /sys/fs/cgroup -maxdepth 4 -path "*/$P-node$1/*" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

# reap I: kill what is left of node I once its dockerd is gone.
reap() {
  local pids
  for _ in $(seq 1 20); do
    pids=$(node_pids "$1" | sort -un | tr '\n' ' ')
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  done
  log "node$1: processes still left: $pids"
}

start_node() {
  local i=$1 d=$STATE/node$1
  mkdir -p "$d/data" "$RUN/node$i"
  cat >"$d/daemon.json" <<JSON
{
  "hosts": ["unix://$(sock "$i")", "unix://$NODE_SOCK"],
  "data-root": "/var/lib/docker",
  "exec-root": "/run/docker",
  "pidfile": "$RUN/node$i/docker.pid",
  "cgroup-parent": "/$P-node$i",
  "deprecated-key-path": "$d/key.json",
  "default-address-pools": [{"base": "10.192.0.0/12", "size": 24}],
  "labels": ["dockerfaasd.swarm=$P", "dockerfaasd.node=node$i"]
}
JSON
  reap "$i"
  log "node$i: starting dockerd at $(addr "$i") (log: $d/dockerd.log)"
  # setsid: a ^C to whoever ran this does not reach the node. fd 9 (the lock)
  # closed, stdout/stderr to the log: `$(hack/swarm-up.sh)` must not wait on it.
  setsid nsenter --net="/run/netns/$P-node$i" \
    unshare --mount --uts --propagation private \
    sh -c "$node_boot" "$P-boot" "$P-node$i" "$d/daemon.json" "$d/data" \
    </dev/null >>"$d/dockerd.log" 2>&1 9<&- &
}

wait_answering() {
  local i=$1
  for _ in $(seq 1 $((TIMEOUT * 2))); do
    nd "$i" version --format '{{.Server.Version}}' >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "node$i: dockerd did not answer within ${TIMEOUT}s; last log lines:"
  tail -n 30 "$STATE/node$i/dockerd.log" >&2 || true
  return 1
}

# ---- swarm ------------------------------------------------------------------
swarm_state() { timeout 30 docker -H "unix://$(sock "$1")" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

# wait_state I WANT: wait until node I's local swarm state is WANT.
wait_state() {
  local s=""
  for _ in $(seq 1 $((TIMEOUT * 2))); do
    s=$(swarm_state "$1")
    [ "$s" = "$2" ] && return 0
    sleep 0.5
  done
  die "node$1: swarm state '$s', not '$2', after ${TIMEOUT}s (log: $STATE/node$1/dockerd.log)"
}

ensure_swarm() {
  local i s role tok ids id
  s=$(swarm_state 1)
  case $s in
  active) ;;
  inactive)
    log "node1: swarm init --advertise-addr $(addr 1)"
    nd 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" \
      --default-addr-pool "$ADDR_POOL" --default-addr-pool-mask-length 24 >/dev/null
    ;;
  *) wait_state 1 active ;;
  esac
  wait_state 1 active
  [ "$(nd 1 info --format '{{.Swarm.ControlAvailable}}')" = true ] ||
    die "node1 is in a swarm but not a manager; run hack/swarm-down.sh first"
  # Wait for the managers' quorum (a restarted HA swarm elects a leader first).
  for _ in $(seq 1 $((TIMEOUT * 2))); do
    ids=$(nd 1 node ls -q 2>/dev/null) && break
    sleep 0.5
  done
  [ -n "${ids:-}" ] || die "node1: docker node ls fails after ${TIMEOUT}s (no quorum?)"
  for i in $(seq 2 "$n"); do
    role=worker
    [ "$i" -le "$managers" ] && role=manager
    s=$(swarm_state "$i")
    if [ "$s" = pending ]; then
      # A restarted node rejoining on its own: give it the time to.
      for _ in $(seq 1 $((TIMEOUT * 2))); do
        s=$(swarm_state "$i"); [ "$s" = pending ] || break; sleep 0.5
      done
    fi
    if [ "$s" = active ]; then
      id=$(nd "$i" info --format '{{.Swarm.NodeID}}')
      grep -qx "$id" <<<"$ids" && continue
      log "node$i: in another swarm; leaving it"
      nd "$i" swarm leave --force >/dev/null
    elif [ "$s" != inactive ]; then
      log "node$i: swarm state '$s'; leaving and joining again"
      nd "$i" swarm leave --force >/dev/null 2>&1 || true
    fi
    tok=$(nd 1 swarm join-token -q "$role")
    log "node$i: swarm join as $role"
    timeout $((TIMEOUT)) docker -H "unix://$(sock "$i")" swarm join --token "$tok" \
      --advertise-addr "$(addr "$i")" --listen-addr "$(addr "$i"):2377" "$(addr 1):2377" >/dev/null
  done
}

# wait_ready: all nodes Ready. Entries of our hostnames that are no node's
# identity any more (a node started again without its data) are removed, and
# the nodes are labelled.
wait_ready() {
  local c="" i ids stale
  ids=$(node_ids)
  for _ in $(seq 1 $((TIMEOUT * 2))); do
    c=$(ready_count "$ids")
    [ "$c" = "$n" ] && break
    sleep 0.5
  done
  [ "$c" = "$n" ] || { nd 1 node ls >&2 || true; die "only $c of $n nodes Ready after ${TIMEOUT}s"; }
  stale=$(listing | awk '{ print $1 }' | grep -vxF "$ids" || true)
  for i in $stale; do
    log "removing stale node entry $i ($(listing | awk -v id="$i" '$1 == id { print $2, $3 }'))"
    nd 1 node demote "$i" >/dev/null 2>&1 || true
    nd 1 node rm --force "$i" >/dev/null || log "could not remove node entry $i"
  done
  i=0
  while read -r id; do
    i=$((i + 1))
    nd 1 node update --label-add "dockerfaasd.node=node$i" --label-add "dockerfaasd.swarm=$P" "$id" >/dev/null
  done <<<"$ids"
}

# ---- images -----------------------------------------------------------------
load_tar=$STATE/.load.$$.tar
trap 'rm -f "$load_tar"' EXIT
load_images() {
  local src=${SWARM_IMAGE_SOURCE:-} img id i have
  if [ -z "$src" ] && [ -n "${DOCKER_HOST:-}" ] && [[ $DOCKER_HOST != unix://$RUN/* ]]; then src=$DOCKER_HOST; fi
  hd() { if [ -n "$src" ]; then docker -H "$src" "$@"; else env -u DOCKER_HOST docker "$@"; fi; }
  for img in "${loads[@]}"; do
    id=$(hd image inspect --format '{{.Id}}' "$img" 2>/dev/null) || die "--load: no image $img on the local engine${src:+ ($src)}"
    rm -f "$load_tar"
    for i in $(seq 1 "$n"); do
      have=$(nd "$i" image inspect --format '{{.Id}}' "$img" 2>/dev/null || true)
      if [ "$have" = "$id" ]; then
        log "node$i: already has $img"
        continue
      fi
      [ -s "$load_tar" ] || hd save -o "$load_tar" "$img"
      nd "$i" load -q -i "$load_tar" >/dev/null
      log "node$i: loaded $img"
    done
  done
  rm -f "$load_tar"
}

# ---- the daemon (--with-daemon) ------------------------------------------------
DAEMON=dockerfaasd DAEMON_IMAGE=dockerfaasd:swarm-up
start_daemon() {
  local i id have running pwfile=$STATE/basic-auth-password gw
  command -v go >/dev/null 2>&1 || die "--with-daemon needs Go to build the daemon"
  log "building dockerfaasd from $ROOT"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=swarm-up -X main.commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o bin/dockerfaasd ./cmd/dockerfaasd) ||
    die "go build failed"
  # The image is FROM scratch around the static binary: built on each
  # manager (the daemon may be started on any of them), nothing to pull.
  for i in $(seq 1 "$managers"); do
    nd "$i" build -q -t "$DAEMON_IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null || die "node$i: building the daemon image failed"
  done
  id=$(nd 1 image inspect --format '{{.Id}}' "$DAEMON_IMAGE")
  have=$(nd 1 container inspect --format '{{.Image}}' "$DAEMON" 2>/dev/null || true)
  running=$(nd 1 container inspect --format '{{.State.Running}}' "$DAEMON" 2>/dev/null || true)
  if [ "$have" = "$id" ] && [ "$running" = true ]; then
    log "node1: dockerfaasd already runs this build"
  else
    [ -z "$have" ] || nd 1 rm -f "$DAEMON" >/dev/null
    # As README tells users, except the socket's path on the host: this
    # node's engine listens on its own socket.
    nd 1 run -d --name "$DAEMON" --restart unless-stopped \
      -p "$GATEWAY_PORT:8080" \
      -v "$(sock 1):/var/run/docker.sock" \
      -v dockerfaasd-state:/var/lib/dockerfaasd \
      -e RUNTIME=swarm \
      "$DAEMON_IMAGE" >/dev/null || die "node1: starting dockerfaasd failed"
    log "node1: dockerfaasd started"
  fi
  gw="http://$(addr 1):$GATEWAY_PORT"
  for i in $(seq 1 "$TIMEOUT"); do
    if curl -fsS -o /dev/null --max-time 2 "$gw/healthz" 2>/dev/null; then break; fi
    if [ "$(nd 1 container inspect --format '{{.State.Running}}' "$DAEMON" 2>/dev/null)" != true ]; then
      nd 1 logs --tail 20 "$DAEMON" >&2 || true
      die "dockerfaasd exited; its last log lines are above"
    fi
    sleep 1
  done
  curl -fsS -o /dev/null --max-time 2 "$gw/healthz" || { nd 1 logs --tail 20 "$DAEMON" >&2 || true; die "dockerfaasd did not answer on $gw within ${TIMEOUT}s"; }
  nd 1 cp "$DAEMON:/var/lib/dockerfaasd/basic-auth-password" "$pwfile" || die "could not copy the generated password out of the daemon container"
  chmod 600 "$pwfile"
  log "dockerfaasd answers on $gw after $(elapsed)s"
  printf 'GATEWAY=%s\n' "$gw"
  printf 'PASSWORD_FILE=%s\n' "$pwfile"
}

# ---- main -------------------------------------------------------------------
mkdir -p "$STATE"
if healthy; then
  log "swarm of $n nodes (managers: $managers) is up and healthy; nothing to start"
else
  ensure_hub
  for i in $(seq 1 "$n"); do ensure_node_net "$i"; done
  for i in $(seq 1 "$n"); do
    if [ -n "$(dockerd_pid "$i")" ]; then continue; fi
    start_node "$i"
  done
  for i in $(seq 1 "$n"); do wait_answering "$i" || die "node$i did not start"; done
  log "$n dockerds answering after $(elapsed)s"
  printf 'managers=%s\nworkers=%s\nsubnet=%s\nstate_dir=%s\n' "$managers" "$workers" "$SUBNET" "$STATE" >"$layout"
  ensure_swarm
  wait_ready
  log "swarm of $n nodes (managers: $managers) Ready after $(elapsed)s"
fi
[ ${#loads[@]} = 0 ] || load_images

nodes="" addrs="" mgrs=""
for i in $(seq 1 "$n"); do
  nodes="$nodes $P-node$i" addrs="$addrs $(addr "$i")"
  [ "$i" -gt "$managers" ] || mgrs="$mgrs $P-node$i"
done
printf "SWARM_NODES='%s'\n" "${nodes# }"
printf "SWARM_MANAGERS='%s'\n" "${mgrs# }"
printf "SWARM_ADDRS='%s'\n" "${addrs# }"
printf 'SWARM_HOST_ADDR=%s\n' "$hostaddr"
printf 'SWARM_IPVS=%s\n' "$ipvs"
printf 'SWARM_ESP=%s\n' "$esp"
[ "$with_daemon" = 0 ] || start_daemon
printf 'DOCKER_HOST=unix://%s\n' "$(sock 1)"
