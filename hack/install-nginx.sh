#!/usr/bin/env bash
# install-nginx.sh: make sure Debian's nginx is installed, for path N of
# `make bench` (hack/bench/warm.go): one nginx reverse-proxy hop to the same
# function, set against dockerfaasd's. Idempotent: does nothing when nginx
# is installed. Only the binary is used: the bench runs its own nginx with
# its own config in a temporary directory, so the package's service must
# not run (it would take port 80, which other tests' functions serve on).
set -euo pipefail

log() { echo "install-nginx: $*" >&2; }

# Debian puts nginx in /usr/sbin, which a user's PATH may lack.
if bin=$(command -v nginx 2>/dev/null) || { bin=/usr/sbin/nginx && [ -x "$bin" ]; }; then
  log "$bin already installed"
  exit 0
fi

log "installing nginx from Debian"
export DEBIAN_FRONTEND=noninteractive
# Without systemd the package's postinst starts the service through
# invoke-rc.d; a policy-rc.d that answers 101 ("action forbidden") stops
# that. One that is already there is the machine's own and is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
had_pid=""
[ -e /run/nginx.pid ] && had_pid=1
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nginx >/dev/null
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled nginx >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
elif [ -z "$had_pid" ] && [ -s /run/nginx.pid ]; then
  # Started by this install despite the policy: stop that one only.
  /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
fi
log "installed /usr/sbin/nginx ($(/usr/sbin/nginx -v 2>&1 || echo unknown version))"
