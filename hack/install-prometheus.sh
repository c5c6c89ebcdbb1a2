#!/usr/bin/env bash
# install-prometheus.sh: make sure Debian's prometheus (and the promtool it
# ships) is installed, for the e2e test that scrapes the daemon with it and
# loads the shipped alert rules (test/e2e/prometheus_test.go). Idempotent:
# does nothing when both are on PATH.
set -euo pipefail

log() { echo "install-prometheus: $*" >&2; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  log "$(command -v prometheus) already installed"
  exit 0
fi

log "installing prometheus from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package enables a system service listening on :9090. The test starts
# its own Prometheus on a free port; a second one scraping nothing of ours
# would only cost memory, so the service is stopped where systemd runs it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || log "could not stop prometheus.service (ignored)"
fi
log "installed $(command -v prometheus) and $(command -v promtool)"
