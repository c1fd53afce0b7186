// SPDX-License-Identifier: Apache-2.0
//
// sluice_bpf: the small N-API addon through which the TypeScript agent drives
// the system libbpf (1.1 or later): load objects with pinned maps, attach
// cgroup programs through pinned bpf_links, read and write maps, run
// BPF_PROG_TEST_RUN, read struct layouts from BTF, and consume a ring buffer
// on the libuv loop. bpf/native/index.ts describes the API for TypeScript.
//
// Conventions:
//  - Every failure is a thrown JS Error whose message names the operation and
//    the errno text (plus, where libbpf logged something, the tail of that
//    log: for a load failure it holds the verifier's verdict); err.code is the
//    errno name ('ENOENT') and err.errno its negative value, as in Node's own
//    system errors.
//  - Bad input (wrong types, wrong Buffer sizes) is a TypeError thrown before
//    any syscall: the kernel copies key_size / value_size bytes to and from
//    our buffers, so a short Buffer would otherwise be read or written past
//    its end.
//  - Everything runs on the JS thread; there is no thread of our own.

#include <napi.h>
#include <uv.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// ---------------------------------------------------------------- libbpf log

// libbpf reports the why of a failure (the verifier log above all) only
// through its print callback. We keep what it printed during the current
// operation and put the tail into the error message; on success it is
// dropped, so nothing reaches stderr. thread_local because libbpf_set_print is
// process-wide and worker threads may load the addon too.
thread_local std::string g_log;
constexpr size_t kLogKeep = 256 * 1024;  // bound memory; only the tail is ever shown
constexpr size_t kLogTail = 4096;        // enough for the verifier's last lines

int CaptureLibbpfLog(enum libbpf_print_level level, const char *format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;  // very chatty and never needed for an error message
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(line.data(), line.size(), format, args);
  line.resize(static_cast<size_t>(n));
  g_log += line;
  if (g_log.size() > kLogKeep) g_log.erase(0, g_log.size() - kLogKeep);
  return 0;
}

void ResetLog() { g_log.clear(); }

// The last kLogTail bytes of the log, cut at a line start, without the final newline.
std::string LogTail() {
  std::string tail = g_log;
  if (tail.size() > kLogTail) {
    tail.erase(0, tail.size() - kLogTail);
    size_t nl = tail.find('\n');
    if (nl != std::string::npos) tail.erase(0, nl + 1);
  }
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return tail;
}

// ---------------------------------------------------------------- errors

std::string ErrnoName(int err) {
  if (err == 524) return "ENOTSUPP";  // kernel-internal, leaks out of some bpf() commands
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string ErrnoText(int err) {
  if (err == 524) return "Operation not supported";
  return strerror(err);
}

Napi::Error ErrnoError(Napi::Env env, const std::string &what, int err, bool withLog = false) {
  std::string message = what + ": " + ErrnoText(err);
  if (withLog) {
    std::string tail = LogTail();
    if (!tail.empty()) message += "\n" + tail;
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", ErrnoName(err));
  error.Set("errno", Napi::Number::New(env, -err));
  return error;
}

[[noreturn]] void ThrowErrno(Napi::Env env, const std::string &what, int err, bool withLog = false) {
  throw ErrnoError(env, what, err, withLog);
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string &message) {
  throw Napi::TypeError::New(env, message);
}

// ---------------------------------------------------------------- arguments

int ArgFd(const Napi::CallbackInfo &info, size_t i, const char *op, const char *name = "fd") {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowType(info.Env(), std::string(op) + ": " + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= INT_MAX) || d != static_cast<double>(static_cast<int>(d)))
    ThrowType(info.Env(), std::string(op) + ": " + name + " must be a non-negative integer");
  return static_cast<int>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo &info, size_t i, const char *op, const char *name, bool optional = false) {
  Napi::Value v = info[i];
  if (optional && (v.IsUndefined() || v.IsNull())) return 0;
  if (!v.IsNumber()) ThrowType(info.Env(), std::string(op) + ": " + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= UINT32_MAX) || d != static_cast<double>(static_cast<uint32_t>(d)))
    ThrowType(info.Env(), std::string(op) + ": " + name + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(d);
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *op, const char *name) {
  Napi::Value v = info[i];
  if (!v.IsString()) ThrowType(info.Env(), std::string(op) + ": " + name + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty() || s.find('\0') != std::string::npos)
    ThrowType(info.Env(), std::string(op) + ": " + name + " must be a non-empty string without NUL");
  return s;
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *op, const char *name) {
  Napi::Value v = info[i];
  if (!v.IsBuffer()) ThrowType(info.Env(), std::string(op) + ": " + name + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

void CheckLength(Napi::Env env, const char *op, const char *name, size_t actual, uint64_t expected) {
  if (actual != expected)
    ThrowType(env, std::string(op) + ": " + name + " must be " + std::to_string(expected) + " bytes, got " +
                       std::to_string(actual));
}

// ---------------------------------------------------------------- small helpers

// Closes on scope exit, so early throws leak no fd.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
};

// mkdir -p. bpffs accepts mkdir like any file system.
int MakeDirs(const std::string &path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return -errno;
  }
  return 0;
}

std::string Dirname(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// ---------------------------------------------------------------- loaded objects

// Objects are handed to JS as small integer handles, kept per Node
// environment (the main thread and each worker have their own).
struct AddonState {
  std::unordered_map<uint32_t, bpf_object *> objects;
  uint32_t nextHandle = 1;
  ~AddonState() {
    for (auto &entry : objects) bpf_object__close(entry.second);
  }
};

AddonState &State(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

bpf_object *FindObject(Napi::Env env, const char *op, uint32_t handle) {
  auto &objects = State(env).objects;
  auto it = objects.find(handle);
  if (it == objects.end())
    throw ErrnoError(env, std::string(op) + ": no open object with handle " + std::to_string(handle), EBADF);
  return it->second;
}

// The fds of an object belong to libbpf: closing one behind its back would
// make bpf_object__close later close whatever reused that number.
bool ObjectOwnsFd(Napi::Env env, int fd) {
  for (auto &entry : State(env).objects) {
    bpf_map *map;
    bpf_object__for_each_map(map, entry.second) {
      if (bpf_map__fd(map) == fd) return true;
    }
    bpf_program *prog;
    bpf_object__for_each_program(prog, entry.second) {
      if (bpf_program__fd(prog) == fd) return true;
    }
  }
  return false;
}

Napi::Value OpenObject(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "openObject", "objectPath");
  std::string pinRoot = ArgString(info, 1, "openObject", "pinRoot");
  std::string op = "openObject(" + path + ")";

  int err = MakeDirs(pinRoot);
  if (err) ThrowErrno(env, op + ": cannot create pin root " + pinRoot, -err);

  ResetLog();
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.pin_root_path = pinRoot.c_str();  // maps with pinning=LIBBPF_PIN_BY_NAME are reused from / pinned here
  std::unique_ptr<bpf_object, void (*)(bpf_object *)> obj(bpf_object__open_file(path.c_str(), &opts),
                                                          bpf_object__close);
  if (!obj) ThrowErrno(env, op + ": open", errno, true);
  err = bpf_object__load(obj.get());
  if (err) ThrowErrno(env, op + ": load", -err, true);

  Napi::Object programs = Napi::Object::New(env);
  bpf_program *prog;
  bpf_object__for_each_program(prog, obj.get()) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("fd", bpf_program__fd(prog));
    p.Set("type", static_cast<double>(bpf_program__type(prog)));
    p.Set("attachType", static_cast<double>(bpf_program__expected_attach_type(prog)));
    programs.Set(bpf_program__name(prog), p);
  }
  Napi::Object maps = Napi::Object::New(env);
  bpf_map *map;
  bpf_object__for_each_map(map, obj.get()) {
    if (bpf_map__fd(map) < 0) continue;  // not created (autocreate off)
    Napi::Object m = Napi::Object::New(env);
    m.Set("fd", bpf_map__fd(map));
    m.Set("type", static_cast<double>(bpf_map__type(map)));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", bpf_map__max_entries(map));
    maps.Set(bpf_map__name(map), m);
  }

  AddonState &state = State(env);
  uint32_t handle = state.nextHandle++;
  state.objects[handle] = obj.release();
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", handle);
  result.Set("programs", programs);
  result.Set("maps", maps);
  return result;
}

Napi::Value CloseObject(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t handle = ArgU32(info, 0, "closeObject", "handle");
  bpf_object *obj = FindObject(env, "closeObject", handle);
  State(env).objects.erase(handle);
  // Closes the object's map and program fds; pinned maps and pinned links stay.
  bpf_object__close(obj);
  return env.Undefined();
}

// ---------------------------------------------------------------- cgroup links

// The cgroup id the kernel reports for links (bpftool's cgroup_id) is the
// cgroup directory's kernfs id, which name_to_handle_at returns as the handle.
int CgroupId(const std::string &path, uint64_t *id) {
  union {
    file_handle fh;
    char bytes[sizeof(file_handle) + sizeof(uint64_t)];
  } h;
  h.fh.handle_bytes = sizeof(uint64_t);
  int mountId;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &h.fh, &mountId, 0) != 0) return -errno;
  memcpy(id, h.fh.f_handle, sizeof(uint64_t));
  return 0;
}

// bpf_obj_get opens whatever is pinned there; only the fd's anon inode name
// tells a link from a map ("bpf-map") or a program ("bpf-prog"). Links are
// "bpf-link" on current kernels, "bpf_link" on older ones.
bool IsLinkFd(int fd) {
  char proc[64], target[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(proc, target, sizeof(target) - 1);
  if (n < 0) return false;
  target[n] = '\0';
  return strcmp(target, "anon_inode:bpf-link") == 0 || strcmp(target, "anon_inode:bpf_link") == 0;
}

Napi::Value AttachCgroup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t handle = ArgU32(info, 0, "attachCgroup", "handle");
  std::string progName = ArgString(info, 1, "attachCgroup", "programName");
  std::string cgroupPath = ArgString(info, 2, "attachCgroup", "cgroupPath");
  std::string pinPath = ArgString(info, 3, "attachCgroup", "linkPinPath");
  std::string op = "attachCgroup(" + progName + ", " + cgroupPath + ")";

  bpf_object *obj = FindObject(env, "attachCgroup", handle);
  bpf_program *prog = bpf_object__find_program_by_name(obj, progName.c_str());
  if (!prog) ThrowErrno(env, op + ": no such program in the object", ENOENT);
  int progFd = bpf_program__fd(prog);
  if (progFd < 0) ThrowErrno(env, op + ": program not loaded", EINVAL);
  bpf_attach_type attachType = bpf_program__expected_attach_type(prog);

  Fd cgroup(open(cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cgroup.fd < 0) ThrowErrno(env, op + ": open cgroup", errno);
  uint64_t cgroupId = 0;
  int err = CgroupId(cgroupPath, &cgroupId);
  if (err) ThrowErrno(env, op + ": cgroup id", -err);

  ResetLog();
  {
    Fd link(bpf_obj_get(pinPath.c_str()));
    if (link.fd < 0 && errno != ENOENT) ThrowErrno(env, op + ": open pinned link " + pinPath, errno);
    if (link.fd >= 0) {
      if (!IsLinkFd(link.fd)) ThrowErrno(env, op + ": " + pinPath + " is pinned but is not a link", EEXIST);
      bpf_link_info li{};
      uint32_t len = sizeof(li);
      if (bpf_obj_get_info_by_fd(link.fd, &li, &len) != 0) ThrowErrno(env, op + ": link info", errno);
      // A live link of this hook on this cgroup is switched to the new
      // program in one step: the hook never runs without a program. A link
      // whose cgroup was removed reports cgroup id 0 (defunct); one of
      // another cgroup or hook is not ours to update. Both are replaced.
      bool live = li.type == BPF_LINK_TYPE_CGROUP && li.cgroup.cgroup_id == cgroupId &&
                  li.cgroup.attach_type == static_cast<uint32_t>(attachType);
      if (live) {
        if (bpf_link_update(link.fd, progFd, nullptr) != 0) ThrowErrno(env, op + ": bpf_link_update", errno, true);
        return Napi::String::New(env, "updated");
      }
      if (unlink(pinPath.c_str()) != 0 && errno != ENOENT) ThrowErrno(env, op + ": unpin stale link " + pinPath, errno);
    }
  }

  err = MakeDirs(Dirname(pinPath));
  if (err) ThrowErrno(env, op + ": create " + Dirname(pinPath), -err);
  Fd link(bpf_link_create(progFd, cgroup.fd, attachType, nullptr));
  if (link.fd < 0) ThrowErrno(env, op + ": bpf_link_create", errno, true);
  // The pin keeps the link (and so the attachment) alive after our fd closes.
  if (bpf_obj_pin(link.fd, pinPath.c_str()) != 0) ThrowErrno(env, op + ": pin link at " + pinPath, errno, true);
  return Napi::String::New(env, "created");
}

// ---------------------------------------------------------------- maps

struct MapShape {
  uint32_t type;
  uint32_t keySize;
  uint64_t valueBytes;  // what userspace reads and writes per element
};

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// Asked of the kernel on every call rather than cached by fd: an fd number
// can be closed and reused for another map, and a stale size would let the
// kernel write past a Buffer. One extra cheap syscall buys that safety.
// (A non-map fd is rejected by the kernel itself before it touches a buffer.)
MapShape QueryMap(Napi::Env env, const char *op, int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) ThrowErrno(env, std::string(op) + ": map info", errno);
  MapShape shape{info.type, info.key_size, info.value_size};
  if (IsPerCpu(info.type)) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) ThrowErrno(env, std::string(op) + ": possible CPUs", -cpus);
    shape.valueBytes = ((static_cast<uint64_t>(info.value_size) + 7) / 8 * 8) * static_cast<uint64_t>(cpus);
  }
  return shape;
}

// Maps without keys (queue, stack) want a NULL key pointer, not an empty one.
const void *KeyPtr(const Napi::Buffer<uint8_t> &key, const MapShape &shape) {
  return shape.keySize ? key.Data() : nullptr;
}

Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapUpdate");
  auto key = ArgBuffer(info, 1, "mapUpdate", "key");
  auto value = ArgBuffer(info, 2, "mapUpdate", "value");
  uint32_t flags = ArgU32(info, 3, "mapUpdate", "flags", true);
  MapShape shape = QueryMap(env, "mapUpdate", fd);
  CheckLength(env, "mapUpdate", "key", key.Length(), shape.keySize);
  CheckLength(env, "mapUpdate", "value", value.Length(), shape.valueBytes);
  if (bpf_map_update_elem(fd, KeyPtr(key, shape), value.Data(), flags) != 0) ThrowErrno(env, "mapUpdate", errno);
  return env.Undefined();
}

Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapLookup");
  auto key = ArgBuffer(info, 1, "mapLookup", "key");
  uint32_t valueSize = ArgU32(info, 2, "mapLookup", "valueSize");
  MapShape shape = QueryMap(env, "mapLookup", fd);
  CheckLength(env, "mapLookup", "key", key.Length(), shape.keySize);
  if (valueSize != shape.valueBytes)
    ThrowType(env, "mapLookup: valueSize must be " + std::to_string(shape.valueBytes) + " for this map, got " +
                       std::to_string(valueSize));
  auto value = Napi::Buffer<uint8_t>::New(env, valueSize);
  if (bpf_map_lookup_elem(fd, KeyPtr(key, shape), value.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    ThrowErrno(env, "mapLookup", errno);
  }
  return value;
}

Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapDelete");
  auto key = ArgBuffer(info, 1, "mapDelete", "key");
  MapShape shape = QueryMap(env, "mapDelete", fd);
  CheckLength(env, "mapDelete", "key", key.Length(), shape.keySize);
  if (bpf_map_delete_elem(fd, KeyPtr(key, shape)) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "mapDelete", errno);
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapNextKey");
  uint32_t keySize = ArgU32(info, 2, "mapNextKey", "keySize");
  MapShape shape = QueryMap(env, "mapNextKey", fd);
  if (keySize != shape.keySize)
    ThrowType(env, "mapNextKey: keySize must be " + std::to_string(shape.keySize) + " for this map, got " +
                       std::to_string(keySize));
  const void *keyPtr = nullptr;  // NULL asks for the first key
  Napi::Value keyArg = info[1];
  if (!keyArg.IsNull() && !keyArg.IsUndefined()) {
    auto key = ArgBuffer(info, 1, "mapNextKey", "key");
    CheckLength(env, "mapNextKey", "key", key.Length(), shape.keySize);
    keyPtr = key.Data();
  }
  auto next = Napi::Buffer<uint8_t>::New(env, keySize);
  if (bpf_map_get_next_key(fd, keyPtr, next.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    ThrowErrno(env, "mapNextKey", errno);
  }
  return next;
}

Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "mapUpdateBatch");
  auto keys = ArgBuffer(info, 1, "mapUpdateBatch", "keys");
  auto values = ArgBuffer(info, 2, "mapUpdateBatch", "values");
  uint32_t count = ArgU32(info, 3, "mapUpdateBatch", "count");
  uint32_t flags = ArgU32(info, 4, "mapUpdateBatch", "flags", true);
  MapShape shape = QueryMap(env, "mapUpdateBatch", fd);
  CheckLength(env, "mapUpdateBatch", "keys", keys.Length(), static_cast<uint64_t>(count) * shape.keySize);
  CheckLength(env, "mapUpdateBatch", "values", values.Length(), static_cast<uint64_t>(count) * shape.valueBytes);
  if (count == 0) return Napi::Number::New(env, 0);

  bpf_map_batch_opts opts{};
  opts.sz = sizeof(opts);
  opts.elem_flags = flags;  // BPF_ANY / BPF_NOEXIST / BPF_EXIST, per element
  // In: how many to write; out: how many the kernel wrote. On failure that
  // count is not reported, because a request the kernel rejects up front
  // comes back with the input count unchanged: the caller reconciles instead.
  uint32_t written = count;
  if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &written, &opts) != 0)
    ThrowErrno(env, "mapUpdateBatch", errno);
  return Napi::Number::New(env, written);
}

// ---------------------------------------------------------------- fds and misc

Napi::Value ObjGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "objGet", "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, "objGet(" + path + ")", errno);
  return Napi::Number::New(env, fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "closeFd");
  if (ObjectOwnsFd(env, fd))
    throw ErrnoError(env, "closeFd(" + std::to_string(fd) + "): the fd belongs to an open object; use closeObject",
                     EBUSY);
  if (close(fd) != 0) ThrowErrno(env, "closeFd(" + std::to_string(fd) + ")", errno);
  return env.Undefined();
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus < 0) ThrowErrno(info.Env(), "numPossibleCpus", -cpus);
  return Napi::Number::New(info.Env(), cpus);
}

// Room for programs that grow the packet (bpf_skb_adjust_room and friends);
// the kernel never writes more than we offer.
constexpr size_t kTestRunOutSlack = 4096;

Napi::Value ProgTestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "progTestRun", "progFd");
  auto dataIn = ArgBuffer(info, 1, "progTestRun", "dataIn");
  uint32_t repeat = ArgU32(info, 2, "progTestRun", "repeat");
  std::vector<uint8_t> out(dataIn.Length() + kTestRunOutSlack);

  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = dataIn.Data();
  opts.data_size_in = static_cast<uint32_t>(dataIn.Length());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = repeat;
  if (bpf_prog_test_run_opts(fd, &opts) != 0) ThrowErrno(env, "progTestRun", errno);

  size_t outSize = opts.data_size_out < out.size() ? opts.data_size_out : out.size();
  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, opts.retval));
  result.Set("durationNs", Napi::Number::New(env, opts.duration));  // mean per run
  result.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, out.data(), outSize));
  return result;
}

// ---------------------------------------------------------------- BTF

Napi::Value BtfStructs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "btfStructs", "objectPath");
  ResetLog();
  std::unique_ptr<btf, void (*)(btf *)> types(btf__parse_elf(path.c_str(), nullptr), btf__free);
  if (!types) ThrowErrno(env, "btfStructs(" + path + ")", errno, true);

  Napi::Object result = Napi::Object::New(env);
  uint32_t count = btf__type_cnt(types.get());
  for (uint32_t id = 1; id < count; id++) {
    const btf_type *t = btf__type_by_id(types.get(), id);
    if (!t || !btf_is_struct(t) || t->name_off == 0) continue;  // named structs only
    Napi::Array members = Napi::Array::New(env);
    const btf_member *m = btf_members(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
      uint32_t sizeBits = btf_member_bitfield_size(t, i);
      if (sizeBits == 0) {
        long long bytes = btf__resolve_size(types.get(), m->type);
        sizeBits = bytes > 0 ? static_cast<uint32_t>(bytes * 8) : 0;
      }
      Napi::Object member = Napi::Object::New(env);
      member.Set("name", btf__name_by_offset(types.get(), m->name_off));
      member.Set("offsetBits", btf_member_bit_offset(t, i));
      member.Set("sizeBits", sizeBits);
      members.Set(i, member);
    }
    Napi::Object s = Napi::Object::New(env);
    s.Set("size", t->size);
    s.Set("members", members);
    result.Set(btf__name_by_offset(types.get(), t->name_off), s);
  }
  return result;
}

// ---------------------------------------------------------------- ring buffer

// Consumes a BPF_MAP_TYPE_RINGBUF on the libuv loop: libbpf's ring_buffer
// owns an epoll fd that turns readable when the kernel has data; a uv_poll
// watches it, ring_buffer__consume copies the samples out, then one JS call
// gets the whole batch. While open the poll handle keeps the loop alive, like
// a socket; close() stops and frees it at once.
class RingBuf : public Napi::ObjectWrap<RingBuf> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBuf", {InstanceMethod<&RingBuf::Close>("close")});
  }

  RingBuf(const Napi::CallbackInfo &info) : Napi::ObjectWrap<RingBuf>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0, "RingBuf", "mapFd");
    if (!info[1].IsFunction()) ThrowType(env, "RingBuf: onSamples must be a function");
    uv_loop_t *loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) ThrowErrno(env, "RingBuf: no event loop", EINVAL);

    ResetLog();
    ring_ = ring_buffer__new(fd, OnSample, this, nullptr);
    if (!ring_) ThrowErrno(env, "RingBuf: ring_buffer__new", errno, true);
    poll_ = new uv_poll_t;
    int err = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(ring_));
    if (err == 0) {
      poll_->data = this;
      err = uv_poll_start(poll_, UV_READABLE, OnReadable);
      if (err != 0) uv_close(reinterpret_cast<uv_handle_t *>(poll_), FreePoll);
    } else {
      delete poll_;  // never initialised, so never registered with the loop
    }
    if (err != 0) {
      poll_ = nullptr;
      ring_buffer__free(ring_);
      ring_ = nullptr;
      ThrowErrno(env, "RingBuf: uv_poll", -err);
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    // Stay alive while polling even if JS drops every reference: the poll
    // callback needs this object. close() lets it go.
    Ref();
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  }

  ~RingBuf() override { Stop(); }

 private:
  // Cap one batch so that a flood of events still yields to the loop; the
  // epoll fd is level-triggered, so the rest comes on the next iteration.
  static constexpr size_t kMaxBatch = 4096;
  static constexpr int kBatchFull = -EAGAIN;

  static int OnSample(void *ctx, void *data, size_t size) {
    auto *self = static_cast<RingBuf *>(ctx);
    const auto *bytes = static_cast<const uint8_t *>(data);
    self->offsets_.push_back(self->bytes_.size());
    self->bytes_.insert(self->bytes_.end(), bytes, bytes + size);
    // A negative return stops consuming; this sample is already taken.
    return self->offsets_.size() >= kMaxBatch ? kBatchFull : 0;
  }

  static void OnReadable(uv_poll_t *poll, int status, int) {
    auto *self = static_cast<RingBuf *>(poll->data);
    if (!self || !self->ring_ || status < 0) return;
    self->offsets_.clear();
    self->bytes_.clear();
    ring_buffer__consume(self->ring_);  // calls OnSample for each sample, synchronously
    if (self->offsets_.empty()) return;

    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    size_t n = self->offsets_.size();
    Napi::Array samples = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; i++) {
      size_t begin = self->offsets_[i];
      size_t end = i + 1 < n ? self->offsets_[i + 1] : self->bytes_.size();
      samples.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, self->bytes_.data() + begin, end - begin));
    }
    // The callback may call close(); `self` stays valid meanwhile because
    // `receiver` holds the JS object on the stack.
    Napi::Object receiver = self->Value();
    try {
      self->callback_.MakeCallback(receiver, {samples});
    } catch (const Napi::Error &e) {
      // No JS frame above us to catch it: report it like any uncaught error.
      napi_fatal_exception(env, e.Value());
    }
  }

  static void FreePoll(uv_handle_t *handle) { delete reinterpret_cast<uv_poll_t *>(handle); }

  // The environment is going away (worker exit) with the ring still open.
  static void OnEnvCleanup(void *arg) { static_cast<RingBuf *>(arg)->Stop(); }

  // Stops polling and frees libbpf's ring. Calls no JS, so it is safe from
  // the destructor and the cleanup hook. uv_close guarantees no further poll
  // callback; its memory goes in FreePoll, on the loop's next turn. libuv
  // allows closing the watched fd right after uv_close.
  void Stop() {
    if (!ring_) return;
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(poll_), FreePoll);
    poll_ = nullptr;
    ring_buffer__free(ring_);
    ring_ = nullptr;
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  }

  void Close(const Napi::CallbackInfo &) {
    if (!ring_) return;  // closing twice is harmless
    Stop();
    callback_.Reset();
    Unref();  // now collectable like any object
  }

  Napi::Env env_;
  Napi::FunctionReference callback_;
  ring_buffer *ring_ = nullptr;
  uv_poll_t *poll_ = nullptr;
  std::vector<uint8_t> bytes_;   // the current batch, back to back
  std::vector<size_t> offsets_;  // where each sample starts in bytes_
};

// ---------------------------------------------------------------- module

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(CaptureLibbpfLog);
  env.SetInstanceData<AddonState>(new AddonState());
  exports.Set("openObject", Napi::Function::New<OpenObject>(env, "openObject"));
  exports.Set("closeObject", Napi::Function::New<CloseObject>(env, "closeObject"));
  exports.Set("attachCgroup", Napi::Function::New<AttachCgroup>(env, "attachCgroup"));
  exports.Set("mapUpdate", Napi::Function::New<MapUpdate>(env, "mapUpdate"));
  exports.Set("mapLookup", Napi::Function::New<MapLookup>(env, "mapLookup"));
  exports.Set("mapDelete", Napi::Function::New<MapDelete>(env, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New<MapNextKey>(env, "mapNextKey"));
  exports.Set("mapUpdateBatch", Napi::Function::New<MapUpdateBatch>(env, "mapUpdateBatch"));
  exports.Set("objGet", Napi::Function::New<ObjGet>(env, "objGet"));
  exports.Set("closeFd", Napi::Function::New<CloseFd>(env, "closeFd"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("progTestRun", Napi::Function::New<ProgTestRun>(env, "progTestRun"));
  exports.Set("btfStructs", Napi::Function::New<BtfStructs>(env, "btfStructs"));
  exports.Set("RingBuf", RingBuf::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(sluice_bpf, Init)
