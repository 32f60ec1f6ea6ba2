#!/usr/bin/env bash
# Builds the Go binaries of the local stack from the Go module proxy, once per
# version, into $FLOTILLA_CACHE_DIR/bin. A binary already on PATH is used as is
# for temporal. The three builds share one Go build cache.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$FLOTILLA_BIN_DIR"
export GOFLAGS="${GOFLAGS:-} -trimpath"

need_go() { command -v go >/dev/null 2>&1 || { echo "Go is needed to build $1 (not cached in $FLOTILLA_BIN_DIR)" >&2; exit 1; }; }

go_install() { # name module@version dest
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -ldflags "-s -w" "$2"
  mv "$tmp/$1" "$3"; rm -rf "$tmp"
}

if [ ! -x "$TEMPORAL_BIN" ]; then
  if command -v temporal >/dev/null 2>&1 && temporal --version | grep -q "$TEMPORAL_CLI_VERSION"; then
    ln -sf "$(command -v temporal)" "$TEMPORAL_BIN"
  else
    need_go temporal; phase_start "go install temporal CLI v$TEMPORAL_CLI_VERSION"
    go_install temporal "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" "$TEMPORAL_BIN"
    phase_end
  fi
fi

if [ ! -x "$KWOK_BIN" ]; then
  need_go kwok; phase_start "go install kwok v$KWOK_VERSION"
  go_install kwok "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" "$KWOK_BIN"
  phase_end
fi

if [ ! -x "$KUBE_BIN" ]; then
  need_go flotilla-kube; phase_start "go build flotilla-kube (etcd $ETCD_VERSION + Kubernetes $KUBERNETES_VERSION control plane)"
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  (cd "$FLOTILLA_ROOT/stack/gobin/kube" && go build -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean" -o "$KUBE_BIN.tmp" . && mv "$KUBE_BIN.tmp" "$KUBE_BIN")
  phase_end
fi
