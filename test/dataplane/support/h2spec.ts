// h2spec (github.com/summerwind/h2spec, built by test/h2spec/build.sh): where its binary is, and a
// run against a port read from its JUnit report, for the h2spec tests of every listener setup.

import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const H2SPEC = join(process.env.SLUICE_H2SPEC_CACHE ?? join(homedir(), '.cache', 'sluice', 'h2spec'), 'bin', 'h2spec');

/** h2spec v2.2.1 runs this many tests (generic, http2 and hpack groups); fewer means it did not run them all. */
export const H2SPEC_TESTS = 145;

/** Seconds h2spec waits for each expected frame (its -o); a passing run takes about a second in all. */
const H2SPEC_FRAME_TIMEOUT_S = 3;

export function skipReason(): string | null {
  try {
    accessSync(H2SPEC, constants.X_OK);
    return null;
  } catch {
    return `no h2spec binary at ${H2SPEC} (build it with test/h2spec/build.sh)`;
  }
}

export interface H2specCase {
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
export async function runH2spec(port: number, tls: boolean): Promise<H2specCase[]> {
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
export function failures(cases: H2specCase[]): string[] {
  return cases.filter((c) => c.outcome === 'failed').map((c) => `${c.id} ${c.description}: ${c.detail.replace(/\s+/g, ' ')}`);
}
