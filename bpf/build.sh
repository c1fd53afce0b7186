#!/usr/bin/env bash
# Builds the BPF objects (bpf/build/*.o) and the libbpf N-API addon
# (bpf/native/build/sluice_bpf.node). Run by `npm ci` / `npm install` (the
# package's install script) and safe to run again. A missing toolchain is not
# an error: Sluice then runs with userspace endpoint picking and says so.
set -uo pipefail
cd "$(dirname "$0")"
bash ./build-programs.sh || echo "sluice: BPF programs not built (see above); eBPF features stay off"
bash ./native/build.sh || echo "sluice: BPF addon not built (see above); eBPF features stay off"
exit 0
