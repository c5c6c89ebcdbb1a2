#!/usr/bin/env bash
# drift-demo.sh: watch dockerfaasd heal a function that is broken behind its
# back. For a function that is already deployed, it breaks the function in
# Docker a few ways in turn, without sending the daemon any request that
# could prompt it, and times how long the daemon takes to notice and repair
# each break on its own (Docker events, or the periodic resync):
#
#   rm         docker rm -f of one replica
#   stop       docker stop of one replica
#   disconnect docker network disconnect of one replica from the function network
#   network    every replica disconnected, then the function network removed
#
# A break counts as healed when Docker shows the desired number of running
# containers, all on the function's network (the broken container gone, or
# the removed network replaced), GET /system/function/NAME reports
# availableReplicas back at the desired count, and /debug/reconcile shows
# the function converged.
#
# Usage: hack/drift-demo.sh NAME [NAMESPACE]
#
# Environment:
#   OPENFAAS_URL   daemon address (default http://127.0.0.1:8080)
#   AUTH_USER      basic auth user (default admin)
#   AUTH_PASSWORD  basic auth password; else read from PASSWORD_FILE, by default
#                  the daemon's generated file (STATE_DIR/basic-auth-password)
#   INSTANCE       the daemon's INSTANCE; needed only when several daemons on
#                  this Docker host run a function of that name
#   BREAKS         which breaks, in order (default "rm stop disconnect network")
#   HEAL_TIMEOUT   seconds to wait for one heal (default 120)
#
# It only ever touches containers and networks that carry the function's
# io.dockerfaas.* labels. Needs curl and the docker CLI; no jq.
set -euo pipefail

die() { echo "drift-demo: $*" >&2; exit 1; }
say() { echo "drift-demo: $*"; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 NAME [NAMESPACE]"
name=$1
ns=${2:-openfaas-fn}
[[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "invalid function name: $name"
[[ $ns =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "invalid namespace: $ns"

url=${OPENFAAS_URL:-http://127.0.0.1:8080}
url=${url%/}
user=${AUTH_USER:-admin}
breaks=${BREAKS:-rm stop disconnect network}
heal_timeout=${HEAL_TIMEOUT:-120}
[[ $heal_timeout =~ ^[0-9]+$ ]] || die "HEAL_TIMEOUT must be a number of seconds"
poll=0.05

if [ -n "${AUTH_PASSWORD:-}" ]; then
  password=$AUTH_PASSWORD
else
  if [ -z "${PASSWORD_FILE:-}" ]; then
    if [ -n "${STATE_DIR:-}" ]; then
      PASSWORD_FILE=$STATE_DIR/basic-auth-password
    elif [ "$(id -u)" -eq 0 ]; then
      PASSWORD_FILE=/var/lib/dockerfaasd/basic-auth-password
    else
      PASSWORD_FILE=$HOME/.local/state/dockerfaasd/basic-auth-password
    fi
  fi
  [ -r "$PASSWORD_FILE" ] || die "set AUTH_PASSWORD, or PASSWORD_FILE to a readable file (tried $PASSWORD_FILE)"
  password=$(cat "$PASSWORD_FILE")
fi

command -v curl >/dev/null || die "curl is needed"
command -v docker >/dev/null || die "the docker CLI is needed"

now_ms() { date +%s%3N; }

# api PATH: GET from the daemon with basic auth, failing on HTTP errors.
api() { curl -fsS --max-time 10 -u "$user:$password" "$url$1"; }

# json_num FIELD: the first number given to FIELD in the JSON on stdin.
json_num() { grep -o "\"$1\": *[0-9]*" | sed -n '1s/.*: *//p'; }

# last_result: the function's lastResult on /debug/reconcile. The JSON is
# flattened to one line and cut at this function's key; the first
# lastResult after it is this function's.
last_result() {
  api "/debug/reconcile?format=json" | tr '\n' ' ' |
    sed -n "s|.*\"key\": *\"$ns/$name\"||p" |
    grep -o '"lastResult": *"[a-z]*"' | sed -n '1s/.*"\([a-z]*\)"$/\1/p'
}

status=$(api "/system/function/$name?namespace=$ns") ||
  die "function $name.$ns not found at $url (deploy it first, and check the credentials)"
desired=$(json_num replicas <<<"$status")
[ -n "$desired" ] && [ "$desired" -ge 1 ] || die "$name has ${desired:-no} desired replicas; scale it to 1 or more first"

# Only what carries the function's labels is ever touched.
filter=(--filter label=io.dockerfaas.managed=true
  --filter "label=io.dockerfaas.function=$name"
  --filter "label=io.dockerfaas.namespace=$ns")
if [ -n "${INSTANCE:-}" ]; then
  instance=$INSTANCE
else
  instances=$(docker ps -a "${filter[@]}" --format '{{.Label "io.dockerfaas.instance"}}' | sort -u)
  [ -n "$instances" ] || die "no container of $name.$ns found in Docker"
  [ "$(wc -l <<<"$instances")" -eq 1 ] || die "containers of $name.$ns from several daemons ($(echo $instances)); set INSTANCE"
  instance=$instances
fi
filter+=(--filter "label=io.dockerfaas.instance=$instance")

# fn_network: "ID NAME" of the function's network, empty if there is none.
fn_network() {
  docker network ls --no-trunc "${filter[@]}" --format '{{.ID}} {{.Name}}' | sed -n 1p
}

# first_replica: the ID of one running replica.
first_replica() {
  docker ps -q --no-trunc "${filter[@]}" | sed -n 1p
}

# healed GONE_ID OLD_NETWORK_ID: see the header for what healed means.
healed() {
  local gone=$1 oldnet=$2 net netid netname rows n
  net=$(fn_network)
  [ -n "$net" ] || return 1
  netid=${net%% *}
  netname=${net#* }
  [ "$netid" != "$oldnet" ] || return 1
  rows=$(docker ps -a --no-trunc "${filter[@]}" --format '{{.ID}} {{.State}} ,{{.Networks}},')
  n=$(grep -c . <<<"$rows" || true)
  [ "$n" -eq "$desired" ] || return 1
  # Every container running and attached to the function's network.
  [ "$(grep -c " running .*,$netname," <<<"$rows" || true)" -eq "$desired" ] || return 1
  if [ -n "$gone" ] && grep -q "^$gone " <<<"$rows"; then
    return 1
  fi
  [ "$(api "/system/function/$name?namespace=$ns" | json_num availableReplicas)" = "$desired" ] || return 1
  [ "$(last_result)" = converged ] || return 1
}

# wait_healed WHAT START_MS [GONE_ID] [OLD_NETWORK_ID]
wait_healed() {
  local what=$1 start=$2 gone=${3:-} oldnet=${4:-} deadline i
  deadline=$((start + heal_timeout * 1000))
  for ((i = 0; i < heal_timeout * 40; i++)); do
    if healed "$gone" "$oldnet"; then
      say "  healed: $what -> $desired ready replicas in $(($(now_ms) - start)) ms"
      return 0
    fi
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep "$poll"
  done
  die "$what: not healed within ${heal_timeout}s"
}

say "function $name.$ns of instance $instance at $url: $desired desired replicas"
start=$(now_ms)
wait_healed "initial state" "$start"

for b in $breaks; do
  case $b in
  rm)
    id=$(first_replica)
    say "break: docker rm -f ${id:0:12}"
    start=$(now_ms)
    docker rm -f "$id" >/dev/null
    wait_healed "docker rm -f" "$start" "$id"
    ;;
  stop)
    id=$(first_replica)
    say "break: docker stop ${id:0:12} (timed from when it has stopped)"
    docker stop "$id" >/dev/null
    start=$(now_ms)
    wait_healed "docker stop" "$start" "$id"
    ;;
  disconnect)
    id=$(first_replica)
    net=$(fn_network)
    say "break: docker network disconnect ${net#* } ${id:0:12}"
    start=$(now_ms)
    docker network disconnect "${net%% *}" "$id"
    wait_healed "network disconnect" "$start"
    ;;
  network)
    net=$(fn_network)
    netid=${net%% *}
    say "break: disconnect every replica from ${net#* }, then docker network rm"
    start=$(now_ms)
    # The daemon reconnects replicas as soon as it sees them disconnected,
    # so the removal may lose that race ("active endpoints"): try again.
    removed=""
    for attempt in $(seq 1 30); do
      attached=$(docker network inspect -f '{{range $id, $c := .Containers}}{{$id}} {{end}}' "$netid" 2>/dev/null) || {
        removed=yes
        break
      }
      for cid in $attached; do
        docker network disconnect -f "$netid" "$cid" 2>/dev/null || true
      done
      if docker network rm "$netid" >/dev/null 2>&1; then
        removed=yes
        break
      fi
    done
    [ -n "$removed" ] || die "could not remove network ${net#* } in 30 attempts"
    say "  network removed (attempt $attempt)"
    wait_healed "network removal" "$start" "" "$netid"
    ;;
  *) die "unknown break $b (want rm, stop, disconnect or network)" ;;
  esac
  sleep 1 # let the daemon settle before the next break
done

say "drift corrections counted by the daemon:"
api "/debug/reconcile?format=json" | tr '\n' ' ' |
  sed -n 's/.*"driftCorrections": *{\([^}]*\)}.*/\1/p' | tr ',' '\n' | sed 's/^ */  /; /^ *$/d'
