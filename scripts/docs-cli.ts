// `npm run docs:cli`: rewrites the README's CLI block (between the markers) from the CLI's flag
// table, so the README says exactly what `sluice <command> --help` prints.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_BEGIN, CLI_END, cliReference } from '../cmd/cli-flags.ts';

const readmePath = join(import.meta.dirname, '..', 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const begin = readme.indexOf(CLI_BEGIN);
const end = readme.indexOf(CLI_END);
if (begin < 0 || end < begin) {
  process.stderr.write(`docs:cli: README.md lacks the markers ${CLI_BEGIN} … ${CLI_END}\n`);
  process.exit(1);
}
const block = `${CLI_BEGIN}\n\`\`\`\n${cliReference()}\`\`\`\n`;
const next = readme.slice(0, begin) + block + readme.slice(end);
if (next !== readme) writeFileSync(readmePath, next);
process.stdout.write(next === readme ? 'README.md: CLI block already up to date\n' : 'README.md: CLI block rewritten\n');
