#!/usr/bin/env bash
# docker-restart.sh: restart the local Docker Engine and wait until it answers
# again. Used by the e2e test TestDriftDockerEngineRestart (E2E_DOCKER_RESTART=1).
#
# WARNING: this stops every container on the host (those without a restart
# policy stay stopped). Never run it where others use the same engine.
#
# Under systemd: `systemctl restart docker`. Otherwise (dockerd started by
# hack/docker-up.sh): SIGTERM to the pid in /var/run/docker.pid, wait for that
# process to exit (bounded), then start it again with hack/docker-up.sh.
set -euo pipefail

log() { echo "docker-restart: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
pidfile=/var/run/docker.pid
stop_wait=90 # seconds; dockerd gives containers up to 15 s to stop, then stops containerd

wait_answering() {
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
      log "engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
      return 0
    fi
    sleep 0.5
  done
  log "engine not answering 60s after the restart"
  return 1
}

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
  systemctl is-active --quiet docker 2>/dev/null; then
  log "dockerd is managed by systemd: systemctl restart docker"
  systemctl restart docker
  wait_answering
  exit $?
fi

# is_dockerd PID: the process exists and is dockerd (not a reused pid).
is_dockerd() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && grep -q dockerd "/proc/$1/cmdline" 2>/dev/null
}

pid=$(cat "$pidfile" 2>/dev/null || true)
if is_dockerd "$pid"; then
  log "stopping dockerd (pid $pid) with SIGTERM"
  kill -TERM "$pid"
  for _ in $(seq 1 $((stop_wait * 2))); do
    is_dockerd "$pid" || break
    sleep 0.5
  done
  if is_dockerd "$pid"; then
    log "dockerd (pid $pid) still running ${stop_wait}s after SIGTERM; giving up"
    exit 1
  fi
  log "dockerd (pid $pid) exited"
else
  log "no running dockerd found through $pidfile; starting one"
fi

# A session of its own, so a ^C to whoever ran this script does not reach
# the new dockerd (docker-up.sh starts it in the background).
if command -v setsid >/dev/null 2>&1; then
  setsid -w bash "$here/docker-up.sh"
else
  bash "$here/docker-up.sh"
fi
