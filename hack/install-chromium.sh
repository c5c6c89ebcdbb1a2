#!/usr/bin/env bash
# install-chromium.sh: make sure Debian's headless-capable Chromium is
# installed, for the e2e test that looks at /debug/reconcile in a browser
# (test/e2e/debug_ui_test.go). Idempotent: does nothing when it is there.
set -euo pipefail

log() { echo "install-chromium: $*" >&2; }

for bin in chromium chromium-browser; do
  if command -v "$bin" >/dev/null 2>&1; then
    log "$(command -v "$bin") already installed"
    exit 0
  fi
done

log "installing chromium from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# fonts-liberation: without a font the screenshot shows boxes, not text.
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
log "installed $(command -v chromium)"
