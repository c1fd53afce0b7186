#!/usr/bin/env bash
# Builds kube-apiserver, etcd and helm (and, for the canary tests, kube-controller-manager, the Argo
# Rollouts controller and Flagger) from source through the Go module proxy into a cache outside the
# repository, for the tests under test/kube/ (a real API server, envtest style) and the chart tests.
# Idempotent: a binary whose stamp file matches the pinned version and Go toolchain is not rebuilt.
# Prints each binary's version at the end.
#
#   test/kube/build-binaries.sh                  # kube-apiserver, etcd, helm
#   test/kube/build-binaries.sh etcd helm        # a subset
#   test/kube/build-binaries.sh canary           # kube-controller-manager, flagger (what test/kube/canary runs)
#   test/kube/build-binaries.sh rollouts-controller  # Argo Rollouts: builds, but no test can run it yet (plugin below)
#   test/kube/build-binaries.sh --force etcd     # rebuild even if the stamp matches
#
# Environment:
#   SLUICE_KUBE_CACHE  cache root          (default ~/.cache/sluice/kube)
#   SLUICE_KUBE_BIN    where binaries go   (default $SLUICE_KUBE_CACHE/bin)
#   GO                 the go command      (default: `go` on PATH, else /usr/local/go/bin/go)
#   SLUICE_KUBE_NICE   prefix for go commands (default "nice -n 19"; set to "" to disable)
#   SLUICE_KUBE_GO_P   `go build -p` (default: number of CPUs)
#
# Why wrapper modules: k8s.io/kubernetes's go.mod replaces every k8s.io staging module with
# ./staging/src/..., and requires them at v0.0.0; `go install pkg@version` refuses modules with
# replace directives. The staging modules are published as k8s.io/<name> v0.<minor>.<patch>, so a
# throwaway module that requires k8s.io/kubernetes and replaces each staging module with its published
# version builds cmd/kube-apiserver. etcd's root module has local replaces too, so a wrapper with a
# tiny main calling etcdmain.Main (which is what etcd's own main does) builds etcd. The wrappers are
# generated under the cache (never in the repository), go.sum included. kube-controller-manager is
# built from the same wrapper as kube-apiserver. Argo Rollouts' go.mod replaces every k8s.io module
# with a published version (no local paths), so it is built inside a copy of its own module source
# (`go mod download` gives it), replaces and all; Flagger the same way.
set -euo pipefail

# ---- Pinned versions ---------------------------------------------------------------------------
# Kubernetes 1.36 (Gateway API v1.6.1's CRDs use CEL rules incl. isIP() and the `reason` field, and
# a ValidatingAdmissionPolicy; all GA well before 1.36). etcd 3.6 is what Kubernetes 1.36 runs.
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
HELM_VERSION=v4.3.1
# Canary controllers. Argo Rollouts v1.10.2 says `go 1.26.10` (newer than the toolchain here), so
# v1.10.1. Flagger v1.42.0+ waits for the route's Accepted parent (v1.40.0 and v1.42.0 are refused
# by the proxy here; v1.44.0 is served). The Gateway API traffic-router plugin of Argo Rollouts
# (github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi) is not built: the module
# proxy answers 403 "This module version is not available" for its version list and for every
# version tried (v0.11.0, v0.13.0, v0.14.0, v0.15.0, main).
ARGO_ROLLOUTS_VERSION=v1.10.1
FLAGGER_VERSION=v1.44.0
# ------------------------------------------------------------------------------------------------

CACHE=${SLUICE_KUBE_CACHE:-$HOME/.cache/sluice/kube}
BIN=${SLUICE_KUBE_BIN:-$CACHE/bin}
if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else echo "build-binaries: no Go toolchain (install Go >= 1.26 or set GO=/path/to/go)" >&2; exit 2
  fi
fi
NICE=${SLUICE_KUBE_NICE-nice -n 19}
GO_P=${SLUICE_KUBE_GO_P:-$(nproc 2>/dev/null || echo 2)}

export GOPATH=$CACHE/gopath
export GOMODCACHE=$CACHE/gopath/pkg/mod
export GOCACHE=$CACHE/gocache
export GOTOOLCHAIN=local      # never fetch another toolchain; the pinned modules need go >= 1.26.0
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0          # as upstream releases these binaries: static, no C toolchain needed
export GO111MODULE=on
unset GOWORK GOBIN || true
# Module downloads go through GOPROXY (default proxy.golang.org) and are checked against the checksum
# database, which proxy.golang.org also serves; nothing here talks to GitHub.

force=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    kube-apiserver|etcd|helm|kube-controller-manager|rollouts-controller|flagger) targets+=("$arg") ;;
    # Not rollouts-controller: without its Gateway API plugin no test runs it, and it is ~7 min of CI.
    canary) targets+=(kube-controller-manager flagger) ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-binaries: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(kube-apiserver etcd helm)

mkdir -p "$BIN" "$CACHE/src" "$GOPATH" "$GOCACHE"
GO_VERSION=$("$GO" env GOVERSION)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
gorun() { $NICE "$GO" "$@"; }

stamp_value() { echo "$1 $2 $GO_VERSION $(go_env_arch)"; }
go_env_arch() { "$GO" env GOOS GOARCH | tr '\n' '/' | sed 's#/$##'; }
up_to_date() { # name version
  local stamp="$BIN/.$1.stamp"
  [[ $force -eq 0 && -x "$BIN/$1" && -f "$stamp" && "$(cat "$stamp")" == "$(stamp_value "$1" "$2")" ]]
}
mark_built() { stamp_value "$1" "$2" >"$BIN/.$1.stamp"; }

timings=()
record() { timings+=("$(printf '%-15s download %6ss  compile %6ss  total %6ss' "$1" "$2" "$3" "$4")"); }

# ---- kube-apiserver, kube-controller-manager ---------------------------------------------------
build_kube_cmd() { # name: a command under k8s.io/kubernetes/cmd/
  local name=$1
  local staging_version="v0.${KUBE_VERSION#v1.}" # v1.36.3 -> v0.36.3
  local dir="$CACHE/src/kubernetes-$KUBE_VERSION"
  local t0 t1 t2
  t0=$(now)
  # The kubernetes module's go.mod lists the staging modules it needs (require k8s.io/x v0.0.0).
  local gomod
  gomod=$(cd "$CACHE" && GOFLAGS=-buildvcs=false gorun mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$gomod" ]] || { echo "build-binaries: could not download k8s.io/kubernetes@$KUBE_VERSION" >&2; return 1; }
  local staging
  staging=$(awk '/^require \(/{r=1; next} r && /^\)/{r=0} r && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  [[ -n "$staging" ]] || { echo "build-binaries: no staging modules found in $gomod" >&2; return 1; }

  mkdir -p "$dir"
  {
    echo "// Generated by sluice test/kube/build-binaries.sh; throwaway wrapper module."
    echo "module sluice.local/build/kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$dir/go.mod.new"
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.gen" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"; cp "$dir/go.mod.new" "$dir/go.mod.gen"; rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
  # The main module needs no package of its own: `go build` of a package in a required module works
  # with -mod=mod. `go list -deps` downloads every module the command needs and fills go.sum, so the
  # download and compile phases can be timed apart.
  (cd "$dir" && gorun list -deps "k8s.io/kubernetes/cmd/$name" >/dev/null)
  t1=$(now)
  # ldflags as hack/lib/version.sh sets them, so `--version` and /version report the release.
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$dir" && gorun build -p "$GO_P" -trimpath -ldflags "$ld" -o "$BIN/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  t2=$(now)
  record "$name" "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t0" "$t2")"
}

# ---- Argo Rollouts, Flagger: built inside their own module source ------------------------------
build_in_module() { # name module version package ldflags
  local name=$1 mod=$2 version=$3 pkg=$4 ld=$5
  local dir="$CACHE/src/$name-$version"
  local t0 t1 t2 src
  t0=$(now)
  src=$(cd "$CACHE" && GOFLAGS=-buildvcs=false gorun mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -d "$src" ]] || { echo "build-binaries: could not download $mod@$version" >&2; return 1; }
  # The module cache is read-only; go.sum may need entries the release left out (-mod=mod adds them).
  if [[ ! -f "$dir/.copied" ]]; then
    rm -rf "$dir"; mkdir -p "$dir"; cp -R "$src/." "$dir/"; chmod -R u+w "$dir"; touch "$dir/.copied"
  fi
  (cd "$dir" && gorun list -deps "$pkg" >/dev/null)
  t1=$(now)
  (cd "$dir" && gorun build -p "$GO_P" -trimpath -ldflags "-s -w $ld" -o "$BIN/$name.tmp" "$pkg")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  t2=$(now)
  record "$name" "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t0" "$t2")"
}

build_rollouts_controller() {
  local p=github.com/argoproj/argo-rollouts/utils/version
  # As argo-rollouts' Makefile stamps a release.
  build_in_module rollouts-controller github.com/argoproj/argo-rollouts "$ARGO_ROLLOUTS_VERSION" ./cmd/rollouts-controller \
    "-X $p.version=${ARGO_ROLLOUTS_VERSION#v} -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitTreeState=clean"
}

build_flagger() {
  # As Flagger's Dockerfile: the version is a constant in pkg/version, REVISION comes from ldflags.
  build_in_module flagger github.com/fluxcd/flagger "$FLAGGER_VERSION" ./cmd/flagger \
    "-X github.com/fluxcd/flagger/pkg/version.REVISION=$FLAGGER_VERSION"
}

# ---- etcd --------------------------------------------------------------------------------------
build_etcd() {
  local dir="$CACHE/src/etcd-$ETCD_VERSION"
  local t0 t1 t2
  t0=$(now)
  mkdir -p "$dir"
  cat >"$dir/go.mod.new" <<EOF
// Generated by sluice test/kube/build-binaries.sh; throwaway wrapper module.
module sluice.local/build/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.gen" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"; cp "$dir/go.mod.new" "$dir/go.mod.gen"; rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
  cat >"$dir/main.go" <<'EOF'
// Generated by sluice test/kube/build-binaries.sh. etcd's own main.go is exactly this call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
  # The server module requires api/client/pkg at its own release, so they come out matched.
  (cd "$dir" && gorun list -deps . >/dev/null)
  t1=$(now)
  (cd "$dir" && gorun build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" .)
  mv -f "$BIN/etcd.tmp" "$BIN/etcd"
  t2=$(now)
  record etcd "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t0" "$t2")"
}

# ---- helm --------------------------------------------------------------------------------------
build_helm() {
  local major=${HELM_VERSION%%.*} # v4
  local mod="helm.sh/helm/$major"
  local dir="$CACHE/src/helm-$HELM_VERSION"
  local t0 t1 t2
  t0=$(now)
  # helm's go.mod has no replace directives, but a wrapper keeps the three builds alike (and lets
  # -ldflags set the version, which `go install pkg@version` would also allow).
  mkdir -p "$dir"
  cat >"$dir/go.mod.new" <<EOF
// Generated by sluice test/kube/build-binaries.sh; throwaway wrapper module.
module sluice.local/build/helm

go 1.26.0

require $mod $HELM_VERSION
EOF
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.gen" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"; cp "$dir/go.mod.new" "$dir/go.mod.gen"; rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
  (cd "$dir" && gorun list -deps "$mod/cmd/helm" >/dev/null)
  t1=$(now)
  # As helm's Makefile does for a tagged release build.
  local ld="-s -w -X $mod/internal/version.version=$HELM_VERSION -X $mod/internal/version.metadata="
  ld+=" -X $mod/internal/version.gitTreeState=clean"
  (cd "$dir" && gorun build -p "$GO_P" -trimpath -ldflags "$ld" -o "$BIN/helm.tmp" "$mod/cmd/helm")
  mv -f "$BIN/helm.tmp" "$BIN/helm"
  t2=$(now)
  record helm "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t0" "$t2")"
}

version_of() {
  case "$1" in
    kube-apiserver) "$BIN/kube-apiserver" --version ;;
    kube-controller-manager) "$BIN/kube-controller-manager" --version ;;
    rollouts-controller) "$BIN/rollouts-controller" --version ;;
    flagger) "$BIN/flagger" -version 2>&1 | head -1 ;;
    etcd) "$BIN/etcd" --version | head -1 ;;
    helm) "$BIN/helm" version --short ;;
  esac
}

echo "build-binaries: cache $CACHE, binaries $BIN, $GO_VERSION"
for t in "${targets[@]}"; do
  case "$t" in
    kube-apiserver|kube-controller-manager) v=$KUBE_VERSION ;;
    etcd) v=$ETCD_VERSION ;;
    helm) v=$HELM_VERSION ;;
    rollouts-controller) v=$ARGO_ROLLOUTS_VERSION ;;
    flagger) v=$FLAGGER_VERSION ;;
  esac
  if up_to_date "$t" "$v"; then
    echo "build-binaries: $t $v up to date"
    continue
  fi
  echo "build-binaries: building $t $v ..."
  rm -f "$BIN/.$t.stamp"
  case "$t" in
    kube-apiserver|kube-controller-manager) build_kube_cmd "$t" ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    rollouts-controller) build_rollouts_controller ;;
    flagger) build_flagger ;;
  esac
  mark_built "$t" "$v"
done

for line in "${timings[@]}"; do echo "build-binaries: time $line"; done
for t in "${targets[@]}"; do echo "build-binaries: $t: $(version_of "$t")"; done
