// Worker threads driven from outside through Node's inspector (its NodeWorker domain): of this
// process (a node:inspector session on the main thread), or of a child started with
// `--inspect=127.0.0.1:0` (its inspector's WebSocket). `block(ms)` makes the thread itself wait
// (Atomics.wait run in it) — for real, its event loop does not turn, as a thread stuck in a
// runaway loop, and Worker.terminate() still ends it (a Debugger.pause would not: terminate hangs
// on a thread paused in the debugger) — and `evaluate()` runs an expression inside it (a message
// posted from there travels the real port). No hook in the product's code: tests of the worker
// pool's watchdog, bounded waits and message checks use this.
import { existsSync, unlinkSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

export interface InspectedThread {
  /** Blocks the thread for `ms`; resolves once it is blocked (it wrote a marker file just before). */
  block(ms: number): Promise<void>;
  /** Runs `expression` in the thread (an expression of its global scope; `process.getBuiltinModule` reaches node: modules). */
  evaluate(expression: string): Promise<unknown>;
  /** Ends the inspection. */
  detach(): Promise<void>;
}

/** The inspector protocol's main target: commands and events. */
interface Inspector {
  post(method: string, params?: Record<string, unknown>): Promise<unknown>;
  onEvent(listener: (method: string, params: Record<string, unknown>) => void): void;
  close(): void;
}

function sessionInspector(): Inspector {
  const session = new Session();
  session.connect();
  return {
    post: (method, params) => session.post(method, params),
    onEvent: (listener) => {
      session.on('inspectorNotification', (message: { method: string; params?: Record<string, unknown> }) => listener(message.method, message.params ?? {}));
    },
    close: () => session.disconnect(),
  };
}

async function remoteInspector(url: string): Promise<Inspector> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`cannot reach the inspector at ${url}`));
  });
  let next = 1;
  const answers = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; method?: string; params?: Record<string, unknown>; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return void listeners.forEach((l) => l(message.method!, message.params ?? {}));
    const answer = answers.get(message.id);
    answers.delete(message.id);
    if (message.error) answer?.reject(new Error(message.error.message));
    else answer?.resolve(message.result);
  };
  return {
    post: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = next++;
        answers.set(id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params }));
      }),
    onEvent: (listener) => void listeners.push(listener),
    close: () => socket.close(),
  };
}

/** The worker threads whose title (`[worker <threadId>] <name>`) `wanted` accepts, once all `count` are attached. */
async function attach(inspector: Inspector, wanted: (threadId: number) => boolean, count: number, timeoutMs: number): Promise<InspectedThread[]> {
  const sessions = new Map<number, string>();
  const answers = new Map<string, (message: { result?: unknown; error?: { message: string } }) => void>();
  inspector.onEvent((method, params) => {
    if (method === 'NodeWorker.attachedToWorker') {
      // The inspector numbers workers its own way; the title names the thread.
      const info = params.workerInfo as { title: string };
      const threadId = Number(/^\[worker (\d+)\]/.exec(info.title)?.[1]);
      if (wanted(threadId)) sessions.set(threadId, params.sessionId as string);
    } else if (method === 'NodeWorker.receivedMessageFromWorker') {
      const message = JSON.parse(params.message as string) as { id?: number; result?: unknown; error?: { message: string } };
      if (message.id !== undefined) answers.get(`${params.sessionId as string}/${message.id}`)?.(message);
    }
  });
  await inspector.post('NodeWorker.enable', { waitForDebuggerOnStart: false });
  const deadline = performance.now() + timeoutMs;
  while (sessions.size < count) {
    if (performance.now() > deadline) {
      inspector.close();
      throw new Error(`${count} worker threads to inspect: ${sessions.size} within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let next = 1;
  const threads = [...sessions.values()].map((sessionId): InspectedThread => {
    const post = (id: number, method: string, params: Record<string, unknown>) => inspector.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) });
    const send = async (method: string, params: Record<string, unknown>): Promise<unknown> => {
      const id = next++;
      const answered = new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => answers.set(`${sessionId}/${id}`, resolve));
      await post(id, method, params);
      const answer = await answered;
      answers.delete(`${sessionId}/${id}`);
      if (answer.error) throw new Error(`${method}: ${answer.error.message}`);
      return answer.result;
    };
    return {
      block: async (ms) => {
        const marker = join(tmpdir(), `sluice-test-blocked-${randomUUID()}`);
        // Its answer comes when the wait is over (or never: the thread is ended first).
        void post(next++, 'Runtime.evaluate', { expression: `{ process.getBuiltinModule('node:fs').writeFileSync(${JSON.stringify(marker)}, ''); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms}); }` }).catch(() => undefined);
        const until = performance.now() + timeoutMs;
        while (!existsSync(marker)) {
          if (performance.now() > until) throw new Error(`the thread did not block within ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        unlinkSync(marker);
      },
      evaluate: async (expression) => {
        const { result, exceptionDetails } = (await send('Runtime.evaluate', { expression, returnByValue: true })) as { result: { value?: unknown }; exceptionDetails?: { text: string } };
        if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.text}`);
        return result.value;
      },
      detach: async () => {
        await inspector.post('NodeWorker.detach', { sessionId }).catch(() => undefined);
        sessions.delete([...sessions].find(([, s]) => s === sessionId)?.[0] ?? -1);
        if (sessions.size === 0) inspector.close();
      },
    };
  });
  return threads;
}

/** Attaches to the worker thread `threadId` (Worker.threadId) of this process. */
export async function inspectThread(threadId: number, timeoutMs = 5_000): Promise<InspectedThread> {
  const [thread] = await attach(sessionInspector(), (id) => id === threadId, 1, timeoutMs);
  return thread!;
}

/**
 * Attaches to `count` worker threads of a process started with `--inspect=127.0.0.1:0`; `url`: the
 * WebSocket its stderr names (`Debugger listening on ws://…`).
 */
export async function inspectWorkersOf(url: string, count: number, timeoutMs = 5_000): Promise<InspectedThread[]> {
  return attach(await remoteInspector(url), () => true, count, timeoutMs);
}

/**
 * An expression for hookWorkers: the thread exits (code 70) when it reads (JSON.parse) a text
 * holding `marker` — a version sent to it — in every worker, or only in worker `worker` (its
 * WorkerInit index, read when the text comes: the hook runs before the thread has its workerData).
 */
export function exitOnReading(marker: string, worker?: number): string {
  const only = worker === undefined ? '' : ` && process.getBuiltinModule('node:worker_threads').workerData?.index === ${worker}`;
  return `{ const parse = JSON.parse; JSON.parse = function (text, ...rest) { if (typeof text === 'string' && text.includes(${JSON.stringify(marker)})${only}) process.exit(70); return parse.call(this, text, ...rest); }; }`;
}

/** Ends hookWorkers' hooking: workers started afterwards run unhooked. */
export interface WorkerHook {
  stop(): Promise<void>;
}

/**
 * Runs `expression` in every worker thread of this process: those running now, and each one
 * started until stop() before any of its own code runs (the inspector holds a new thread at its
 * start, `waitForDebuggerOnStart`, until the expression has run). For a failure every worker must
 * meet, replacements included — e.g. a thread that exits while it applies one version.
 */
export function hookWorkers(expression: string): Promise<WorkerHook> {
  return hook(sessionInspector(), expression);
}

/**
 * Runs `expression` in the main thread of a child started with `--inspect=127.0.0.1:0` (`url`: as
 * for inspectWorkersOf) and returns its value — e.g. a fault a test cannot provoke for real.
 */
export async function evaluateInMainOf(url: string, expression: string): Promise<unknown> {
  const inspector = await remoteInspector(url);
  try {
    const { result, exceptionDetails } = (await inspector.post('Runtime.evaluate', { expression, returnByValue: true })) as { result: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } };
    if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    return result.value;
  } finally {
    inspector.close();
  }
}

/** hookWorkers in a child started with `--inspect=127.0.0.1:0` (`url`: as for inspectWorkersOf). */
export async function hookWorkersOf(url: string, expression: string): Promise<WorkerHook> {
  return hook(await remoteInspector(url), expression);
}

async function hook(inspector: Inspector, expression: string): Promise<WorkerHook> {
  let next = 1;
  const hooked: Promise<unknown>[] = [];
  /** Threads running already: the expression has run in each once its answer came. */
  const running: Promise<unknown>[] = [];
  const answers = new Map<string, () => void>();
  inspector.onEvent((method, params) => {
    if (method === 'NodeWorker.receivedMessageFromWorker') {
      const id = (JSON.parse(params.message as string) as { id?: number }).id;
      return void answers.get(`${params.sessionId as string}/${id}`)?.();
    }
    if (method !== 'NodeWorker.attachedToWorker') return;
    const sessionId = params.sessionId as string;
    const send = (method: string, params: Record<string, unknown>) => inspector.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id: next++, method, params }) });
    if (params.waitingForDebugger !== true) {
      const id = next;
      // Sent is not run: a running thread runs it between two of its own tasks.
      running.push(new Promise<void>((resolve) => answers.set(`${sessionId}/${id}`, resolve)));
    }
    // Messages to one thread are handled in order: the expression runs before the thread starts.
    hooked.push(send('Runtime.evaluate', { expression }).then(() => (params.waitingForDebugger === true ? send('Runtime.runIfWaitingForDebugger', {}) : undefined)).catch(() => undefined));
  });
  await inspector.post('NodeWorker.enable', { waitForDebuggerOnStart: true });
  // The threads running now are attached as enable is answered: hooked before this returns.
  await Promise.all(running);
  return {
    stop: async () => {
      await inspector.post('NodeWorker.disable').catch(() => undefined);
      await Promise.all(hooked);
      inspector.close();
    },
  };
}
