// Typed loader for the libbpf N-API addon (bpf/native/sluice_bpf.cc, built by
// bpf/native/build.sh into bpf/native/build/sluice_bpf.node).
//
// loadNative() never throws: Sluice runs without eBPF when the addon cannot be
// loaded, and says why.
//
// Errors thrown by the addon are plain Errors whose message names the
// operation and the errno text (for a load failure, followed by the tail of
// libbpf's log, verifier verdict included), with `code` the errno name
// ('ENOENT') and `errno` its negative value, as in Node's own system errors.
// Bad arguments (wrong types, Buffers of the wrong size) throw a TypeError
// before any syscall.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface MapInfo {
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface ProgramInfo {
  fd: number;
  type: number;
  attachType: number;
}

/** programs and maps are keyed by name; the fds belong to the object until closeObject. */
export interface LoadedObject {
  handle: number;
  programs: Record<string, ProgramInfo>;
  maps: Record<string, MapInfo>;
}

export interface BtfMember {
  name: string;
  offsetBits: number;
  sizeBits: number;
}

export interface BtfStruct {
  size: number;
  members: BtfMember[];
}

export interface TestRunResult {
  retval: number;
  /** Mean duration of one run, as the kernel measured it. */
  durationNs: number;
  dataOut: Buffer;
}

export interface RingBufHandle {
  /** Stops polling at once: no callback runs after it returns. Idempotent. */
  close(): void;
}

/** Errors from the addon carry these (besides a message naming the operation). */
export interface NativeError extends Error {
  code: string;
  errno: number;
}

export interface SluiceBpfNative {
  /** Opens and loads an object; maps with pinning=by-name are reused from / pinned into pinRoot (libbpf pin_root_path; create the folder if missing). */
  openObject(objectPath: string, pinRoot: string): LoadedObject;
  /** Closes the object's fds. Pinned maps and pinned links stay. */
  closeObject(handle: number): void;
  /** Attach a program of a loaded object to a cgroup through a pinned bpf_link. If linkPinPath exists and is a live link: bpf_link_update to the new program ('updated', atomic, no gap). If it exists but is defunct (its cgroup is gone) or belongs to another cgroup: unpin it and create anew. Else bpf_link_create + pin ('created'). */
  attachCgroup(handle: number, programName: string, cgroupPath: string, linkPinPath: string): 'created' | 'updated';
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  /** valueSize must be the map's value size, or possibleCpus * round8(size) for per-CPU maps. null when absent. */
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  /** false when the key was absent. */
  mapDelete(fd: number, key: Buffer): boolean;
  /** null key = first; null result = end. */
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
  /** keys and values are count elements back to back; returns how many were written. */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags?: number): number;
  objGet(path: string): number;
  /** Closes an fd from objGet. Refuses (EBUSY) an fd that belongs to an open object. */
  closeFd(fd: number): void;
  numPossibleCpus(): number;
  progTestRun(progFd: number, dataIn: Buffer, repeat: number): TestRunResult;
  /** Struct layouts from an object's BTF (btf__parse_elf), every named struct, for the agent's codec check. */
  btfStructs(objectPath: string): Record<string, BtfStruct>;
  /** Polls a BPF_MAP_TYPE_RINGBUF on the libuv loop, one JS call per batch (at most 4096 samples) with copies of the samples; no extra thread. While open it keeps the event loop alive, like a socket. */
  RingBuf: new (mapFd: number, onSamples: (samples: Buffer[]) => void) => RingBufHandle;
}

export const ADDON_PATH = fileURLToPath(new URL('./build/sluice_bpf.node', import.meta.url));

export function loadNative(): { native: SluiceBpfNative } | { reason: string } {
  if (process.platform !== 'linux') return { reason: `eBPF needs Linux (this is ${process.platform})` };
  if (!existsSync(ADDON_PATH)) return { reason: `BPF addon not built: ${ADDON_PATH} is missing (run bash bpf/native/build.sh)` };
  try {
    const require = createRequire(import.meta.url);
    return { native: require(ADDON_PATH) as SluiceBpfNative };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message.includes('libbpf.so')) return { reason: `libbpf1 missing: the BPF addon cannot load libbpf.so.1 (Debian: apt-get install libbpf1): ${message}` };
    return { reason: `BPF addon failed to load: ${message}` };
  }
}
