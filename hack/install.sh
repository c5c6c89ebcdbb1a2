#!/usr/bin/env bash
# Install dockerfaasd as a systemd service on this host:
#   the binary      PREFIX/bin/dockerfaasd       (PREFIX: /usr/local)
#   the unit        /etc/systemd/system/dockerfaasd.service (deploy/systemd/)
#   the state dir   /var/lib/dockerfaasd         (0700)
#   the settings    /etc/dockerfaasd/env         (0600, written only if absent)
# then `systemctl daemon-reload` and `systemctl enable --now dockerfaasd`
# (a running daemon is restarted onto the new binary; its functions keep
# running and are adopted).
#
#   make build && sudo hack/install.sh
#   hack/install.sh --destdir /tmp/root --no-start     # stage only (tests, packages)
#
# Options: --binary PATH (default bin/dockerfaasd; built with `make build`
# when absent), --prefix DIR, --destdir DIR (also DESTDIR=...; staging
# never calls systemctl), --no-start. Running it again is safe: the
# settings file is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=${DESTDIR:-}
binary=bin/dockerfaasd
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --binary) binary=${2:?--binary needs a file}; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;; esac
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: installing into / needs root (or stage with --destdir DIR)" >&2
  exit 1
fi

if [ ! -x "$binary" ]; then
  if [ "$binary" != bin/dockerfaasd ]; then
    echo "install.sh: $binary is not an executable file" >&2
    exit 1
  fi
  echo "install.sh: $binary is missing; running make build" >&2
  make build >&2
fi

bindir=$destdir$prefix/bin
unitdir=$destdir/etc/systemd/system
statedir=$destdir/var/lib/dockerfaasd
envdir=$destdir/etc/dockerfaasd

install -d -m 0755 "$bindir" "$unitdir"
install -m 0755 "$binary" "$bindir/dockerfaasd"
sed "s|^ExecStart=/usr/local/bin/dockerfaasd|ExecStart=$prefix/bin/dockerfaasd|" \
  deploy/systemd/dockerfaasd.service >"$unitdir/dockerfaasd.service.tmp"
chmod 0644 "$unitdir/dockerfaasd.service.tmp"
mv "$unitdir/dockerfaasd.service.tmp" "$unitdir/dockerfaasd.service"
# The state dir holds the database, the secrets key and the password.
install -d -m 0700 "$statedir"
chmod 0700 "$statedir"
install -d -m 0755 "$envdir"
if [ ! -e "$envdir/env" ]; then
  (umask 077 && cat >"$envdir/env" <<'EOF'
# dockerfaasd settings, one NAME=value a line (README.md, Configuration).
# Read at start: `systemctl restart dockerfaasd` after a change.

# Only this host reaches the API; put a TLS proxy in front to serve others,
# or set BIND_ADDRESS= (empty: every interface).
BIND_ADDRESS=127.0.0.1
GATEWAY_PORT=8080

# The basic auth password is generated on first start into
# /var/lib/dockerfaasd/basic-auth-password (0600) unless set here.
#AUTH_USER=admin
#AUTH_PASSWORD=
#INVOKE_AUTH=true

#LOG_LEVEL=info
#LOG_FORMAT=text
# STATE_DIR is /var/lib/dockerfaasd: the unit may write only there.
EOF
  )
  echo "install.sh: wrote default settings to $envdir/env" >&2
fi
echo "install.sh: installed $bindir/dockerfaasd and $unitdir/dockerfaasd.service" >&2

if [ -n "$destdir" ]; then
  echo "install.sh: staged under $destdir; systemctl not called" >&2
  exit 0
fi
systemctl daemon-reload
if [ "$start" = 0 ]; then
  echo "install.sh: not started (--no-start): systemctl enable --now dockerfaasd" >&2
  exit 0
fi
was_active=0
systemctl is-active --quiet dockerfaasd && was_active=1
systemctl enable --now dockerfaasd
# enable --now leaves a running daemon on the old binary.
[ "$was_active" = 1 ] && systemctl restart dockerfaasd
systemctl --no-pager --lines=5 status dockerfaasd || true
