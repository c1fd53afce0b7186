// slowhttptest (the Debian package), the slow-HTTP attack tool, against a real `sluice run`: slow
// headers (Slowloris), slow body (R-U-Dead-Yet), slow read and the range attack, each with a few
// hundred connections. In every one a new client must be served all along (slowhttptest's own probe
// connection, each second); the slow head and the slow body must be cut by the gateway at its
// timeouts (here 2 s), well before the attack's own length, and the gateway must serve normally after.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { appGatewayYaml, startNamedBackend, type NamedBackend } from '../e2e/backends.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible, findOnPath, requiredByEnvironment } from '../support/suite.ts';

const SLOWHTTPTEST = findOnPath(['slowhttptest']);
/** The listener of appGatewayYaml's Gateway. */
const PORT = 80;
const TIMEOUT_MS = 2000;
/** The attack's length (-l): connections the gateway did not cut stay open this long. */
const ATTACK_SECONDS = 30;

/**
 * One second of slowhttptest's CSV report (-g -o). Its rows lag: the last one is written before the
 * final closes, so the ending is read from the exit status ("No open connections left") and the
 * gateway's own counters.
 */
interface Second {
  second: number;
  /** The probe connection was answered within -p seconds. */
  available: boolean;
}

const suite = describeIfPossible(
  'slowhttptest against a running gateway',
  SLOWHTTPTEST === null ? 'slowhttptest is not installed (Debian package slowhttptest)' : null,
  requiredByEnvironment('SLUICE_SLOWHTTPTEST_REQUIRED'),
);

suite('slowhttptest against a running gateway', () => {
  let dir: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-slowhttptest-'));
    // Answers once the whole request body is in, as an upload endpoint does: a slow body reaches it slowly.
    backend = await startNamedBackend('upload');
    writeFileSync(join(dir, 'gateway.yaml'), appGatewayYaml(backend));
    const offset = await freePortOffset([PORT]);
    url = `http://127.0.0.1:${PORT + offset}/upload`;
    const timeouts = ['--request-headers-timeout', String(TIMEOUT_MS), '--request-body-timeout', String(TIMEOUT_MS)];
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), ...timeouts]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one attack to its end and returns its per-second report and its exit status. */
  async function attack(name: string, args: string[]): Promise<{ seconds: Second[]; exit: string }> {
    const prefix = join(dir, name);
    // -p 10: a probe answered within 10 s counts as available (a busy CI box is slow, not down).
    const all = [...args, '-r', '200', '-l', String(ATTACK_SECONDS), '-p', '10', '-u', url, '-g', '-o', prefix];
    const { stdout } = await promisify(execFile)(SLOWHTTPTEST!, all, { timeout: (ATTACK_SECONDS + 60) * 1000, maxBuffer: 16 * 1024 * 1024 });
    // eslint-disable-next-line no-control-regex
    const exit = /Exit status:\s*(.*)/.exec(stdout.replace(/\x1b\[[0-9;]*m/g, ''))?.[1]?.trim() ?? `no exit status in: ${stdout.slice(-500)}`;
    const rows = readFileSync(`${prefix}.csv`, 'utf8').trim().split('\n').slice(1);
    const seconds = rows.map((row) => {
      const [second, , , , available] = row.split(',').map(Number);
      // The report writes the connection count for "available" and 0 for "not" (it is a chart's series).
      return { second: second!, available: available! > 0 };
    });
    return { seconds, exit };
  }

  /** The value of the one metric series `series` matches (its first group), 0 when absent. */
  async function counted(series: RegExp): Promise<number> {
    return Number(series.exec(await (await fetch(`${sluice.admin}/metrics`)).text())?.[1] ?? 0);
  }

  const unavailable = (seconds: Second[]) => seconds.filter((s) => !s.available).map((s) => s.second);

  async function servesNormally(): Promise<void> {
    const res = await fetch(url);
    expect([res.status, ((await res.json()) as { backend: string }).backend]).toEqual([200, 'upload']);
  }

  it('Slowloris (a request head sent a header a second): every connection is cut at the head timeout; new clients are served', async () => {
    const { seconds, exit } = await attack('slowloris', ['-H', '-c', '400', '-i', '1', '-x', '10']);
    expect({ exit, unavailable: unavailable(seconds) }).toEqual({ exit: 'No open connections left', unavailable: [] });
    expect(seconds.at(-1)!.second).toBeLessThan(ATTACK_SECONDS);
    expect(await counted(/sluice_downstream_rejected_total\{[^}]*reason="request_header_timeout"[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(400);
    await servesNormally();
  }, 120_000);

  it('R-U-Dead-Yet (a request body sent every 3 s): every connection is cut at the body timeout; new clients are served', async () => {
    const { seconds, exit } = await attack('slow-body', ['-B', '-c', '400', '-i', '3', '-s', '100000', '-x', '10']);
    expect({ exit, unavailable: unavailable(seconds) }).toEqual({ exit: 'No open connections left', unavailable: [] });
    expect(seconds.at(-1)!.second).toBeLessThan(ATTACK_SECONDS);
    expect(await counted(/sluice_client_timeouts_total\{[^}]*stage="request_body"[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(400);
    await servesNormally();
  }, 120_000);

  it('slow read (pipelined requests, a tiny receive window, 32 bytes read a second): new clients are served all along', async () => {
    const { seconds } = await attack('slow-read', ['-X', '-c', '300', '-k', '5', '-n', '1', '-z', '32', '-w', '16', '-y', '64']);
    expect({ unavailable: unavailable(seconds), seconds: seconds.length > 0 }).toEqual({ unavailable: [], seconds: true });
    await servesNormally();
  }, 120_000);

  it('range attack (overlapping byte ranges): new clients are served all along', async () => {
    const { seconds } = await attack('range', ['-R', '-c', '300', '-a', '5', '-b', '2000']);
    expect({ unavailable: unavailable(seconds), seconds: seconds.length > 0 }).toEqual({ unavailable: [], seconds: true });
    await servesNormally();
  }, 120_000);
});
