#!/usr/bin/env bash
# Builds the local control-plane tools (etcd, kube-apiserver, kubectl), k6, actionlint, and the
# node's tools (kubelet, kube-controller-manager, kube-scheduler, kube-proxy, coredns) from their
# Go modules into a cache OUTSIDE the repo:
#   ${HERALD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/tools}/<tool>-<version>/bin/<binary>
# Idempotent: a tool whose cached binary reports the pinned version is skipped; one that
# reports another version (or nothing) is rebuilt.
# Usage: build-tools.sh [etcd] [kube-apiserver] [kubectl] [k6] [actionlint] [kubelet]
#          [kube-controller-manager] [kube-scheduler] [kube-proxy] [coredns] [promtool]
#          (default: all)
# Prints one line per tool: "<tool> <path>". Build logs / timings go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${HERALD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/tools}"
mkdir -p "$cache"

# Use the default GOPATH/GOMODCACHE/GOCACHE so builds share the module cache.
# Never let go fetch a different toolchain: build with the local one.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

command -v go >/dev/null || { echo "build-tools.sh: 'go' not found on PATH" >&2; exit 1; }

log() { echo "[build-tools] $*" >&2; }

bin_path() { echo "$cache/$1-$2/bin/$3"; }

# is_current <binary> <version> <args that print its version...>: true when the cached
# binary runs and prints exactly that version (the directory name alone proves nothing:
# a binary copied or built there by hand, or a half-written one, would pass).
is_current() {
  local bin="$1" want="${2#v}"; shift 2
  [[ -x "$bin" ]] || return 1
  local out; out="$("$bin" "$@" 2>&1)" || true
  local re="(^|[^0-9.])v?${want//./\\.}([^0-9.]|$)"
  [[ "$out" =~ $re ]] && return 0
  log "$bin: prints '$(head -n 1 <<<"$out")', not $want: rebuilding"
  return 1
}

# timed <tool> <cmd...>: runs cmd (in this shell), reports wall-clock seconds on stderr.
cached=0
timed() {
  local tool="$1"; shift
  local t0 t1
  cached=0
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  if [[ "$cached" == 1 ]]; then log "$tool: cached"; else log "$tool: built in $((t1 - t0)) s"; fi
}

# Installs a built binary atomically into place.
install_bin() { # <src> <dst>
  mkdir -p "$(dirname "$2")"
  mv -f "$1" "$2.tmp.$$"
  mv -f "$2.tmp.$$" "$2"
}

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/herald-build-tools.XXXXXX")"
trap 'rm -rf "$scratch_root"' EXIT

build_etcd() {
  local dst; dst="$(bin_path etcd "$ETCD_VERSION" etcd)"
  if is_current "$dst" "$ETCD_VERSION" --version; then cached=1; echo "etcd $dst"; return; fi
  # go.etcd.io/etcd/server/v3's go.mod has relative replace directives (../api, ...), so
  # `go install ...@version` refuses it. Build its main package (the module root,
  # server/main.go) from a scratch module that pins all etcd modules to the same version.
  local d="$scratch_root/etcd"; mkdir -p "$d"
  cat >"$d/go.mod" <<MOD
module herald.local/build/etcd

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
  log "etcd $ETCD_VERSION: resolving + building (log: stderr)"
  (
    cd "$d"
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    go build -trimpath -ldflags="-s -w" -o "$d/etcd" go.etcd.io/etcd/server/v3 >&2
  )
  install_bin "$d/etcd" "$dst"
  echo "etcd $dst"
}

k8s_module_dir=""
prepare_k8s() {
  [[ -n "$k8s_module_dir" ]] && return
  local d="$scratch_root/k8s"; mkdir -p "$d"
  local minor_patch="${KUBERNETES_VERSION#v1.}"        # 34.4
  local staging_version="v0.${minor_patch}"            # v0.34.4
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
  # ./staging/src/k8s.io/<name>; pin each to its published v0.<minor>.<patch> instead.
  local kmod="$d/kubernetes.go.mod"
  ( cd "$d" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" ) >"$d/dl.json"
  local gomod; gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$d/dl.json")"
  cp "$gomod" "$kmod"
  local replaces
  replaces="$(grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/src/k8s\.io/' "$kmod" \
    | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}')"
  [[ -n "$replaces" ]] || { echo "build-tools.sh: no staging replaces found in $kmod" >&2; exit 1; }
  local godebug; godebug="$(grep -E '^godebug ' "$kmod" || true)"
  cat >"$d/go.mod" <<MOD
module herald.local/build/kubernetes

go 1.26.0

$godebug

require k8s.io/kubernetes $KUBERNETES_VERSION

replace (
$replaces
)
MOD
  log "kubernetes $KUBERNETES_VERSION: resolving modules (staging pinned to $staging_version)"
  local cmds=() c
  for c in "${k8s_cmds[@]}"; do cmds+=("k8s.io/kubernetes/cmd/$c@$KUBERNETES_VERSION"); done
  ( cd "$d" && go get "${cmds[@]}" >&2 )
  k8s_module_dir="$d"
}

k8s_ldflags() {
  local v="$KUBERNETES_VERSION" minor; minor="$(echo "$v" | cut -d. -f2)"
  local f="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$f"
}

build_k8s_cmd() { # <binary>
  local name="$1"
  local dst; dst="$(bin_path "$name" "$KUBERNETES_VERSION" "$name")"
  local version_args=(--version)
  [[ "$name" == kubectl ]] && version_args=(version --client)
  if is_current "$dst" "$KUBERNETES_VERSION" "${version_args[@]}"; then cached=1; echo "$name $dst"; return; fi
  prepare_k8s
  log "$name $KUBERNETES_VERSION: building"
  ( cd "$k8s_module_dir" && go build -trimpath -ldflags="$(k8s_ldflags)" -o "$k8s_module_dir/$name" "k8s.io/kubernetes/cmd/$name" >&2 )
  install_bin "$k8s_module_dir/$name" "$dst"
  echo "$name $dst"
}

build_coredns() {
  local dst; dst="$(bin_path coredns "$COREDNS_VERSION" coredns)"
  if is_current "$dst" "$COREDNS_VERSION" -version; then cached=1; echo "coredns $dst"; return; fi
  # CoreDNS's own main links every plugin (cloud DNS SDKs included). The cluster needs the
  # ones its Corefile names (devenv/node), so a scratch main links coremain with those only.
  local d="$scratch_root/coredns"; mkdir -p "$d"
  cat >"$d/go.mod" <<MOD
module herald.local/build/coredns

go 1.26.0

require github.com/coredns/coredns $COREDNS_VERSION
MOD
  cat >"$d/main.go" <<'GO'
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
GO
  log "coredns $COREDNS_VERSION: resolving + building"
  (
    cd "$d"
    go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2
    go mod tidy >&2
    go build -trimpath -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$d/coredns" . >&2
  )
  install_bin "$d/coredns" "$dst"
  echo "coredns $dst"
}

build_k6() {
  local dst; dst="$(bin_path k6 "$K6_VERSION" k6)"
  if is_current "$dst" "$K6_VERSION" version; then cached=1; echo "k6 $dst"; return; fi
  local d="$scratch_root/k6"; mkdir -p "$d"
  log "k6 $K6_MODULE@$K6_VERSION: building"
  GOBIN="$d" go install -trimpath -ldflags="-s -w" "$K6_MODULE@$K6_VERSION" >&2
  install_bin "$d/k6" "$dst"
  echo "k6 $dst"
}

# actionlint: the workflow linter npm test runs over .github/workflows (pure Go, go install works).
build_actionlint() {
  local dst; dst="$(bin_path actionlint "$ACTIONLINT_VERSION" actionlint)"
  if is_current "$dst" "$ACTIONLINT_VERSION" -version; then cached=1; echo "actionlint $dst"; return; fi
  local d="$scratch_root/actionlint"; mkdir -p "$d"
  log "actionlint $ACTIONLINT_MODULE@$ACTIONLINT_VERSION: building"
  GOBIN="$d" go install -trimpath -ldflags="-s -w" "$ACTIONLINT_MODULE@$ACTIONLINT_VERSION" >&2
  install_bin "$d/actionlint" "$dst"
  echo "actionlint $dst"
}

# promtool: `promtool test rules` unit-tests the PrometheusRules (ops/alerts). Its main links
# every service-discovery plugin (cloud SDKs included) through prometheus/plugins; the
# remove_all_sd tag keeps the file and http ones only, which promtool's rule tests never use
# anyway. The version is stamped from the Go module version (v0.3MM.P is Prometheus v3.MM.P).
build_promtool() {
  local dst; dst="$(bin_path promtool "$PROMETHEUS_VERSION" promtool)"
  if is_current "$dst" "$PROMETHEUS_VERSION" --version; then cached=1; echo "promtool $dst"; return; fi
  local d="$scratch_root/promtool"; mkdir -p "$d"
  log "promtool $PROMTOOL_MODULE@$PROMETHEUS_VERSION: building"
  GOBIN="$d" go install -trimpath -tags remove_all_sd \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
    "$PROMTOOL_MODULE@$PROMETHEUS_VERSION" >&2
  install_bin "$d/promtool" "$dst"
  echo "promtool $dst"
}

k8s_all=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy)
tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(etcd "${k8s_all[@]}" k6 actionlint coredns promtool)
# The kubernetes commands asked for (their packages are resolved together, once).
k8s_cmds=()
for t in "${tools[@]}"; do [[ " ${k8s_all[*]} " == *" $t "* ]] && k8s_cmds+=("$t"); done
for t in "${tools[@]}"; do
  case "$t" in
    etcd) timed etcd build_etcd ;;
    kube-apiserver|kubectl|kubelet|kube-controller-manager|kube-scheduler|kube-proxy)
      timed "$t" build_k8s_cmd "$t" ;;
    k6) timed k6 build_k6 ;;
    actionlint) timed actionlint build_actionlint ;;
    coredns) timed coredns build_coredns ;;
    promtool) timed promtool build_promtool ;;
    *) echo "build-tools.sh: unknown tool '$t' (etcd|${k8s_all[*]// /|}|k6|actionlint|coredns|promtool)" >&2; exit 2 ;;
  esac
done
