// Output of a conformance run: one line per test, then exactly
// `N passed, M failed, K skipped`.

export class Reporter {
  passed = 0;
  failed = 0;
  skipped = 0;
  readonly verboseEnabled: boolean;
  readonly #write: (line: string) => void;

  constructor(opts: { verbose: boolean; write?: (line: string) => void }) {
    this.verboseEnabled = opts.verbose;
    this.#write = opts.write ?? ((line) => process.stdout.write(`${line}\n`));
  }

  /** `note`: why a pass had nothing to check (a test upstream also passes without checks). */
  pass(name: string, note?: string): void {
    this.passed++;
    this.#write(note ? `PASS ${name} (${oneLine(note)})` : `PASS ${name}`);
  }

  fail(name: string, why: string): void {
    this.failed++;
    this.#write(`FAIL ${name}: ${oneLine(why)}`);
  }

  skip(name: string, missingFeatures: string[]): void {
    this.skipped++;
    this.#write(`SKIP ${name}: missing feature(s) ${missingFeatures.join(', ')}`);
  }

  /** Printed in every mode (e.g. where the Sluice log is). */
  note(line: string): void {
    this.#write(line);
  }

  verbose(line: string): void {
    if (this.verboseEnabled) this.#write(line);
  }

  summary(): string {
    return `${this.passed} passed, ${this.failed} failed, ${this.skipped} skipped`;
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' | ');
}
