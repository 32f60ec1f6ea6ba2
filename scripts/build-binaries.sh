#!/usr/bin/env bash
# Builds the Go binaries of the local stack from the Go module proxy, once per
# version, into $FLOTILLA_CACHE_DIR/bin. A binary already on PATH is used as is
# for temporal. The builds share one Go build cache.
#
#   scripts/build-binaries.sh        the stack's binaries (what `up` and `npm test` need)
#   scripts/build-binaries.sh argo   only Argo Rollouts' controller (for the side-by-side benchmark)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$FLOTILLA_BIN_DIR"
export GOFLAGS="${GOFLAGS:-} -trimpath"

need_go() { command -v go >/dev/null 2>&1 || { echo "Go is needed to build $1 (not cached in $FLOTILLA_BIN_DIR)" >&2; exit 1; }; }

if [ "${1:-}" = argo ]; then
  if [ ! -x "$ARGO_ROLLOUTS_BIN" ]; then
    need_go argo-rollouts; phase_start "go build Argo Rollouts controller v$ARGO_ROLLOUTS_VERSION"
    # A wrapper module (its go.mod repeats Argo Rollouts' replace block, which `go install` refuses)
    # builds the controller's package main; ldflags as Argo's Makefile sets them.
    pkg=github.com/argoproj/argo-rollouts
    (cd "$FLOTILLA_ROOT/stack/gobin/argo-rollouts" && CGO_ENABLED=0 go build -ldflags "-s -w \
      -X $pkg/utils/version.version=$ARGO_ROLLOUTS_VERSION -X $pkg/utils/version.gitTreeState=clean \
      -X $pkg/utils/version.buildDate=1970-01-01T00:00:00Z" \
      -o "$ARGO_ROLLOUTS_BIN.tmp" "$pkg/cmd/rollouts-controller" && mv "$ARGO_ROLLOUTS_BIN.tmp" "$ARGO_ROLLOUTS_BIN")
    phase_end
  fi
  if [ ! -d "$ARGO_ROLLOUTS_CRDS" ]; then
    # Its resource definitions, from the same module version, kept beside the binary.
    dir=$(cd "$FLOTILLA_ROOT/stack/gobin/argo-rollouts" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)
    mkdir -p "$ARGO_ROLLOUTS_CRDS.tmp" && cp "$dir"/manifests/crds/*-crd.yaml "$ARGO_ROLLOUTS_CRDS.tmp/"
    chmod 644 "$ARGO_ROLLOUTS_CRDS.tmp"/* && mv "$ARGO_ROLLOUTS_CRDS.tmp" "$ARGO_ROLLOUTS_CRDS"
  fi
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [argo]" >&2; exit 2
fi

go_install() { # name module@version dest [extra ldflags]
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -ldflags "-s -w ${4:-}" "$2"
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

if [ ! -x "$HELM_BIN" ]; then
  need_go helm; phase_start "go install helm v$HELM_VERSION"
  # The ldflags of helm's Makefile: its version, and the Kubernetes version `helm template`
  # assumes (.Capabilities.KubeVersion; 1.20 without them) from the client-go it builds with.
  tmp=$(mktemp -d) # outside any module, so `go mod download` takes a module@version
  gomod=$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p'); rm -rf "$tmp"
  kminor=$(sed -n 's/^\s*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
  go_install helm "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" "$HELM_BIN" \
    "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor \
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor"
  phase_end
fi

if [ ! -x "$KUSTOMIZE_BIN" ]; then
  need_go kustomize; phase_start "go install kustomize v$KUSTOMIZE_VERSION"
  go_install kustomize "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION" "$KUSTOMIZE_BIN"
  phase_end
fi
