#!/usr/bin/env bash
# install-compose.sh: make sure `docker compose` (Compose v2) works, for
# the e2e test of compose.yaml (test/e2e/compose_test.go). Debian bookworm
# packages only Compose v1 (docker-compose, Python), which lacks much of
# the file format, so v2 is built from its Go module (through the Go
# module proxy) and installed as a Docker CLI plugin:
# ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose.
# Idempotent: does nothing when `docker compose version` answers.
# COMPOSE_VERSION picks another release (default below).
set -euo pipefail

log() { echo "install-compose: $*" >&2; }

version=${COMPOSE_VERSION:-v2.40.3}
module=github.com/docker/compose/v2

if docker compose version >/dev/null 2>&1; then
  log "$(docker compose version) already installed"
  exit 0
fi
command -v go >/dev/null 2>&1 || { log "the go tool is not on PATH"; exit 1; }

plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
mkdir -p "$plugins"
log "building Compose $version from $module (a few minutes)"
# `go install module@version` refuses a module whose go.mod has exclude
# directives, as Compose's has: build inside the downloaded module
# instead, where its go.mod is the main one.
dir=$(cd / && GO111MODULE=on go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { log "go mod download $module@$version gave no directory"; exit 1; }
tmp=$(mktemp "$plugins/.docker-compose.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
  -ldflags "-s -w -X $module/internal.Version=$version" -o "$tmp" ./cmd)
chmod 0755 "$tmp"
mv "$tmp" "$plugins/docker-compose"
trap - EXIT
docker compose version >/dev/null 2>&1 || { log "docker does not find the plugin in $plugins"; exit 1; }
log "installed $(docker compose version) in $plugins"
