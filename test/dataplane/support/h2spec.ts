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

const XML_ENTITIES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#34;': '"', '&#39;': "'", '&amp;': '&', '&#xA;': '\n', '&#x9;': '\t' };
const unescapeXml = (text: string): string => text.replace(/&(?:lt|gt|quot|#34|#39|amp|#xA|#x9);/g, (entity) => XML_ENTITIES[entity] ?? entity);

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

/** Runs h2spec against 127.0.0.1:`port` (all its tests, or those `only` names) and returns its report's cases. */
export async function runH2spec(port: number, tls: boolean, only: string[] = []): Promise<H2specCase[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-h2spec-'));
  const report = join(dir, 'report.xml');
  try {
    const args = [...only, '-h', '127.0.0.1', '-p', String(port), '-o', String(H2SPEC_FRAME_TIMEOUT_S), '-j', report, ...(tls ? ['-t', '-k'] : [])];
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

/** Times a case lost to the early-answer ordering is run again, alone (see rerunEarlyAnswerRaces). */
const EARLY_ANSWER_ATTEMPTS = 5;

/**
 * h2spec writes a request's frames one by one and judges the server by the last of them (e.g.
 * http2/8.1/1: HEADERS, DATA, then HEADERS without END_STREAM; 8.1.2.6: a content-length the DATA
 * does not match). A gateway that answers at the HEADERS (a GRPCRoute's 415 to a non-gRPC request;
 * RFC 9113 §8.1 allows a complete response before the whole request) then sends RST_STREAM
 * NO_ERROR to stop the upload, and MUST ignore the frames the client still sends on that stream
 * (§5.1, "closed"). When h2spec's later writes reach the gateway only after that (its process
 * descheduled between writes on a loaded box), no stream error can come and h2spec fails the case
 * with our response's END_STREAM as the last frame it saw. Only a failure of exactly that shape is
 * run again, alone, up to EARLY_ANSWER_ATTEMPTS times; any other failure stands, and a case that
 * never meets the other ordering fails. The raw-frame tests in h2spec-grpc.test.ts force each
 * ordering and assert what the gateway sends.
 */
export async function rerunEarlyAnswerRaces(cases: H2specCase[], port: number, tls: boolean): Promise<H2specCase[]> {
  const result: H2specCase[] = [];
  for (const c of cases) {
    let current = c;
    for (let attempt = 0; attempt < EARLY_ANSWER_ATTEMPTS && lostToEarlyAnswer(current); attempt++) {
      process.stderr.write(`h2spec ${c.id}: the gateway's answer came before the malformed frame; run again, alone\n`);
      const rerun = await runH2spec(port, tls, [c.id]);
      if (rerun.length !== 1) throw new Error(`h2spec ${c.id} alone ran ${rerun.length} cases`);
      current = { ...rerun[0]!, id: c.id };
    }
    result.push(current);
  }
  return result;
}

/** A failed stream-error case whose last frame seen was the END_STREAM of our response (the detail's last line). */
function lostToEarlyAnswer(c: H2specCase): boolean {
  if (c.outcome !== 'failed' || !c.detail.includes('RST_STREAM Frame (Error Code: PROTOCOL_ERROR)')) return false;
  const actual = /^(?:DATA|HEADERS) Frame \(length:\d+, flags:0x([0-9a-f]{2}), stream_id:\d+\)$/.exec(c.detail.split('\n').at(-1)!.trim());
  return actual !== null && (parseInt(actual[1]!, 16) & 0x1) !== 0;
}
