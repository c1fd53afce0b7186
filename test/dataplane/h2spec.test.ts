// HTTP/2 conformance: h2spec (github.com/summerwind/h2spec, built by test/h2spec/build.sh) against a
// real `sluice run`, on the HTTPS listener (h2 by ALPN) and on the cleartext listener (prior
// knowledge). Every one of its 145 tests must pass on both; the assertion names the failing ids
// (e.g. http2/5.1/8) and h2spec's own words for them.

import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeIfPossible, requiredByEnvironment } from '../support/suite.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';

const H2SPEC = join(process.env.SLUICE_H2SPEC_CACHE ?? join(homedir(), '.cache', 'sluice', 'h2spec'), 'bin', 'h2spec');

/** h2spec v2.2.1 runs this many tests (generic, http2 and hpack groups); fewer means it did not run them all. */
const H2SPEC_TESTS = 145;

/** Seconds h2spec waits for each expected frame (its -o); a passing run takes about a second in all. */
const H2SPEC_FRAME_TIMEOUT_S = 3;

function skipReason(): string | null {
  try {
    accessSync(H2SPEC, constants.X_OK);
    return null;
  } catch {
    return `no h2spec binary at ${H2SPEC} (build it with test/h2spec/build.sh)`;
  }
}

interface H2specCase {
  /** As h2spec names it on its command line: section package and position, e.g. http2/6.7/2. */
  id: string;
  description: string;
  outcome: 'passed' | 'failed' | 'skipped';
  detail: string;
}

const XML_ENTITIES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&amp;': '&', '&#xA;': '\n', '&#x9;': '\t' };
const unescapeXml = (text: string): string => text.replace(/&(?:lt|gt|quot|#39|amp|#xA|#x9);/g, (entity) => XML_ENTITIES[entity] ?? entity);

/** The test cases of h2spec's JUnit report (-j), numbered within their section as h2spec numbers them. */
function parseJUnitReport(xml: string): H2specCase[] {
  const cases: H2specCase[] = [];
  for (const suite of xml.matchAll(/<testsuite\b[^>]*\bpackage="([^"]*)"[^>]*>([\s\S]*?)<\/testsuite>/g)) {
    let position = 0;
    for (const testcase of suite[2].matchAll(/<testcase\b[^>]*\bclassname="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
      position++;
      const body = testcase[2] ?? '';
      const problem = /<(failure|error)>([\s\S]*?)<\/\1>/.exec(body);
      cases.push({
        id: `${suite[1]}/${position}`,
        description: unescapeXml(testcase[1]),
        outcome: problem !== null ? 'failed' : body.includes('<skipped') ? 'skipped' : 'passed',
        detail: problem === null ? '' : unescapeXml(problem[2]).trim(),
      });
    }
  }
  return cases;
}

/** Runs h2spec against 127.0.0.1:`port` and returns its report's cases. */
async function runH2spec(port: number, tls: boolean): Promise<H2specCase[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-h2spec-'));
  const report = join(dir, 'report.xml');
  try {
    const args = ['-h', '127.0.0.1', '-p', String(port), '-o', String(H2SPEC_FRAME_TIMEOUT_S), '-j', report, ...(tls ? ['-t', '-k'] : [])];
    // h2spec exits 1 when a test fails: the report says which, so the exit status is not the verdict.
    const output = await new Promise<string>((resolve, reject) => {
      execFile(H2SPEC, args, { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') reject(new Error(`h2spec did not run to its end: ${error.message}\n${stdout}${stderr}`));
        else resolve(stdout + stderr);
      });
    });
    const cases = parseJUnitReport(readFileSync(report, 'utf8'));
    if (cases.length === 0) throw new Error(`h2spec wrote no test cases:\n${output}`);
    return cases;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The failing cases as one readable list, empty when none failed. */
function failures(cases: H2specCase[]): string[] {
  return cases.filter((c) => c.outcome === 'failed').map((c) => `${c.id} ${c.description}: ${c.detail.replace(/\s+/g, ' ')}`);
}

describeIfPossible('h2spec against sluice run', skipReason(), requiredByEnvironment('SLUICE_H2SPEC_REQUIRED'))('h2spec against sluice run', () => {
  let gateway: H2Gateway;

  beforeAll(async () => {
    gateway = await startH2Gateway();
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('passes every test on the HTTPS listener (h2 by ALPN)', async () => {
    const cases = await runH2spec(gateway.tlsPort, true);
    expect(failures(cases)).toEqual([]);
    expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  }, 300_000);

  it('passes every test on the cleartext listener (prior knowledge)', async () => {
    const cases = await runH2spec(gateway.plainPort, false);
    expect(failures(cases)).toEqual([]);
    expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  }, 300_000);

  it('still serves HTTP/1.1 and HTTP/2 after all of that', async () => {
    const res = await fetch(`http://127.0.0.1:${gateway.plainPort}/after-h2spec`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { path: string }).path).toBe('/after-h2spec');
  });
});
