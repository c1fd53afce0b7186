// A worker thread of this process, driven from outside through Node's inspector (the NodeWorker
// domain of a node:inspector session on the main thread): `block(ms)` makes the thread itself wait
// (Atomics.wait run in it) — for real, its event loop does not turn, as a thread stuck in a
// runaway loop, and Worker.terminate() still ends it (a Debugger.pause would not: terminate hangs
// on a thread paused in the debugger) — and `evaluate()` runs an expression inside it (a message
// posted from there travels the real port). No hook in the product's code: tests of the worker
// pool's watchdog, bounded waits and message checks use this.
import { Session } from 'node:inspector/promises';

export interface InspectedThread {
  /** Blocks the thread for `ms`; resolves once it is blocked (it said so on a BroadcastChannel just before). */
  block(ms: number): Promise<void>;
  /** Runs `expression` in the thread (an expression of its global scope; `process.getBuiltinModule` reaches node: modules). */
  evaluate(expression: string): Promise<unknown>;
  /** Ends the inspection. */
  detach(): Promise<void>;
}

/** Attaches to the worker thread `threadId` (Worker.threadId) of this process. */
export async function inspectThread(threadId: number, timeoutMs = 5_000): Promise<InspectedThread> {
  const session = new Session();
  session.connect();
  const sessions = new Map<string, string>();
  const answers = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
  // The inspector numbers workers its own way; the title names the thread: `[worker <threadId>] <name>`.
  session.on('NodeWorker.attachedToWorker', ({ params }) => sessions.set(/^\[worker (\d+)\]/.exec(params.workerInfo.title)?.[1] ?? '', params.sessionId));
  session.on('NodeWorker.receivedMessageFromWorker', ({ params }) => {
    const message = JSON.parse(params.message) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id !== undefined) answers.get(message.id)?.(message);
  });
  await session.post('NodeWorker.enable', { waitForDebuggerOnStart: false });
  const deadline = performance.now() + timeoutMs;
  while (!sessions.has(String(threadId))) {
    if (performance.now() > deadline) {
      session.disconnect();
      throw new Error(`no worker thread ${threadId} to inspect within ${timeoutMs} ms (attached: ${[...sessions.keys()].join(', ') || 'none'})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const sessionId = sessions.get(String(threadId))!;
  let next = 1;
  const post = (id: number, method: string, params: Record<string, unknown>) =>
    session.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) });
  const send = async (method: string, params: Record<string, unknown> = {}): Promise<unknown> => {
    const id = next++;
    const answered = new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => answers.set(id, resolve));
    await post(id, method, params);
    const answer = await answered;
    answers.delete(id);
    if (answer.error) throw new Error(`${method}: ${answer.error.message}`);
    return answer.result;
  };
  return {
    block: async (ms) => {
      const name = `sluice-test-block-${threadId}-${next}`;
      const channel = new BroadcastChannel(name);
      const blocked = new Promise<void>((resolve) => (channel.onmessage = () => resolve()));
      // Its answer comes when the wait is over (or never: the thread is ended first).
      void post(next++, 'Runtime.evaluate', { expression: `{ const c = new BroadcastChannel(${JSON.stringify(name)}); c.postMessage('blocked'); c.close(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms}); }` }).catch(() => undefined);
      await blocked;
      channel.close();
    },
    evaluate: async (expression) => {
      const { result, exceptionDetails } = (await send('Runtime.evaluate', { expression, returnByValue: true })) as { result: { value?: unknown }; exceptionDetails?: { text: string } };
      if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.text}`);
      return result.value;
    },
    detach: async () => {
      await session.post('NodeWorker.detach', { sessionId }).catch(() => undefined);
      session.disconnect();
    },
  };
}
