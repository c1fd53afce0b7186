#!/usr/bin/env bash
# Builds the BPF objects (bpf/build/*.o) and the libbpf N-API addon
# (bpf/native/build/sluice_bpf.node). Run by `npm ci` / `npm install` (the
# package's install script) and safe to run again. A missing toolchain (exit 3
# from the two scripts) is not an error: Sluice then runs with userspace endpoint
# picking and says so — unless SLUICE_BPF_REQUIRED=1 (CI as root), where it is.
# A toolchain that is there but fails to compile always fails the build.
set -uo pipefail
cd "$(dirname "$0")"
required=0
case "${SLUICE_BPF_REQUIRED:-}" in 1|true|yes) required=1 ;; esac
status=0
for step in ./build-programs.sh ./native/build.sh; do
  bash "$step"
  code=$?
  if [ "$code" = 0 ]; then continue; fi
  if [ "$code" = 3 ] && [ "$required" = 0 ]; then
    echo "sluice: $step: toolchain missing (see above); eBPF features stay off"
    continue
  fi
  echo "sluice: $step failed (exit $code)" >&2
  status=1
done
exit $status
