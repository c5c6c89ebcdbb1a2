#!/usr/bin/env bash
# install-caddy.sh: make sure Debian's caddy is installed, for the e2e test
# that runs the shipped reverse-proxy recipe (deploy/caddy/Caddyfile,
# test/e2e/tls_test.go). Idempotent: does nothing when caddy is on PATH.
# Only the binary is used: the test runs its own caddy process, so the
# package's systemd service is neither needed nor started here.
set -euo pipefail

log() { echo "install-caddy: $*" >&2; }

if command -v caddy >/dev/null 2>&1; then
  log "$(command -v caddy) already installed"
  exit 0
fi

log "installing caddy from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends caddy >/dev/null
# Where systemd runs, the package starts its own service on :80, which would
# take the port that other tests (FUNCTION_CIDR addresses) serve on.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled caddy >/dev/null 2>&1; then
  systemctl disable --now caddy >/dev/null 2>&1 || true
fi
log "installed $(command -v caddy) ($(caddy version 2>/dev/null || echo unknown version))"
