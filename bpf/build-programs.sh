#!/usr/bin/env bash
# Compiles the BPF programs: bpf/sock_lb.c -> bpf/build/sock_lb.o and
# bpf/policy.c -> bpf/build/policy.o (with BTF). Safe to run again: an object
# newer than every source is left alone. Exits 3 with one line saying why when
# the toolchain is missing (bpf/build.sh tolerates that); a compile error is any
# other non-zero status, which fails the build.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v clang >/dev/null 2>&1; then
  echo "sluice: clang not found, cannot compile the BPF programs (apt-get install clang libbpf-dev)" >&2
  exit 3
fi
# Debian keeps asm/ under the multiarch directory only.
FLAGS=(-O2 -g -target bpf -mcpu=v3 -Wall -I include "-I/usr/include/$(uname -m)-linux-gnu")
if ! printf '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n' | clang "${FLAGS[@]}" -E -x c - >/dev/null 2>&1; then
  echo "sluice: libbpf or kernel headers not found, cannot compile the BPF programs (apt-get install libbpf-dev linux-libc-dev)" >&2
  exit 3
fi

mkdir -p build
for prog in sock_lb policy; do
  out="build/$prog.o"
  if [ -f "$out" ] && [ -z "$(find "$prog.c" include build-programs.sh -newer "$out" -print -quit)" ]; then
    continue
  fi
  # Compile next to the target and rename, so a reader never sees half an object.
  clang "${FLAGS[@]}" -c "$prog.c" -o "$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
done
