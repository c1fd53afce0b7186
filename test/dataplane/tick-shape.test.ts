// process.nextTick keeps its fast path after a memory-reducing GC (dataplane/tick-shape.ts). What
// V8 recorded for the tick-object literal's computed keys is read from nextTick's feedback vector
// (V8's %GetFeedback, in processes started with --allow-natives-syntax): after such a GC
// with no tick queued, a bare Node marks them megamorphic (every tick object then built through the
// runtime); with the one tick object Sluice keeps, they stay monomorphic. The last case is a real
// `sluice run` after its start-up GC (cmd/memory.ts), read through its inspector.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { evaluateInMainOf } from '../support/thread-inspector.ts';
import { appGatewayYaml, startNamedBackend, type NamedBackend } from '../e2e/backends.ts';

const TICK_SHAPE = join(import.meta.dirname, '..', '..', 'dataplane', 'tick-shape.ts');

/**
 * An expression giving the states V8 recorded for nextTick's computed-key literal slots (its three
 * symbols, `callback`, `args`), from %GetFeedback (V8's test runtime; needs --allow-natives-syntax).
 */
const LITERAL_SLOT_STATES = `new Function('f', 'return %GetFeedback(f)')(process.nextTick)
  .filter((slot) => slot?.[0] === 'DefineKeyedOwnPropertyInLiteral')
  .map((slot) => slot[1].split('\\n')[0])`;

/** A bare Node: ticks, then the last-resort GC with no tick queued, then ticks again; prints nextTick's feedback. */
function bareNode(pin: boolean): string[] {
  const script = `
    if (${pin}) (await import(${JSON.stringify(TICK_SHAPE)})).pinTickObjectShape();
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 1000; i++) process.nextTick(() => {}, i);
    await turn();
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    for (let i = 0; i < 1000; i++) process.nextTick(() => {}, i);
    await turn();
    process.stdout.write(JSON.stringify(${LITERAL_SLOT_STATES}));
  `;
  // Interpreter and baseline code only: they define every computed key through V8's runtime, which
  // is where a cleared shape turns megamorphic (optimized code may keep the shapes alive or not).
  const child = spawnSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--no-maglev', '--no-turbofan', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  if (child.status !== 0) throw new Error(`node exited with ${child.status}: ${child.stderr}`);
  return JSON.parse(child.stdout) as string[];
}

describe('nextTick after a memory-reducing GC', () => {
  it('in a bare Node, the GC leaves the tick literal megamorphic (what the kept tick object prevents)', () => {
    const states = bareNode(false);
    expect(states).toHaveLength(5);
    expect(states).toContain('MEGAMORPHIC');
  });

  it('with one tick object kept, every computed key stays monomorphic', () => {
    expect(bareNode(true)).toEqual(Array(5).fill('MONOMORPHIC'));
  });
});

describe('sluice run after its start-up GC', () => {
  let dir: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess;
  let port: number;

  beforeAll(async () => {
    backend = await startNamedBackend('app');
    dir = mkdtempSync(join(tmpdir(), 'sluice-tick-shape-'));
    writeFileSync(join(dir, 'gateway.yaml'), appGatewayYaml(backend));
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)], 20_000, { nodeArgs: ['--inspect=127.0.0.1:0', '--allow-natives-syntax'] });
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('proxies with every computed key of the tick literal monomorphic', async () => {
    // The start-up GC runs on the loop turn after the first version is served: let it pass, then proxy.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (let i = 0; i < 50; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/n${i}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ backend: 'app' });
    }
    // The process re-executes itself at start (bin/sluice.js): its inspector is the last one named.
    const url = [...sluice.logs().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    expect(url).toBeDefined();
    const states = await evaluateInMainOf(url!, LITERAL_SLOT_STATES);
    expect(states).toEqual(Array(5).fill('MONOMORPHIC'));
  });
});
