// Child process for test/bpf/native.test.ts: shows that an open RingBuf keeps
// the event loop alive and a closed one does not. The only timer is unref'd,
// so "closed" is printed only if the ring kept the process up for it, and the
// process then exits by itself only if close() released the loop.
import { loadNative } from '../../../bpf/native/index.ts';

const loaded = loadNative();
if ('reason' in loaded) throw new Error(loaded.reason);
const { native } = loaded;
const fd = native.objGet(process.argv[2]!);
const ring = new native.RingBuf(fd, () => {});
setTimeout(() => {
  ring.close();
  native.closeFd(fd);
  console.log('closed');
}, 200).unref();
