// A new user's first command, `npm ci`: since npm 11.16 it ends with a warning block listing every
// dependency whose install script package.json's `allowScripts` does not decide ("install scripts
// not yet covered by allowScripts"), and npm 12 skips such scripts. Every dependency with an install
// script is decided: the pinned `node` must run its script (it installs Node 24); @swc/core's
// (a check that falls back to WebAssembly where no native build fits) and protobufjs's (a version
// check of its CLI) are not needed.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };

describe('npm ci on a fresh clone', () => {
  it('every dependency with an install script is allowed or denied in package.json allowScripts', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.hasInstallScript)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(withScripts.length).toBeGreaterThan(0);
    expect(withScripts.filter((name) => typeof pkg.allowScripts?.[name] !== 'boolean')).toEqual([]);
    // Node 24 comes from the `node` package's install script.
    expect(pkg.allowScripts?.node).toBe(true);
  });
});
