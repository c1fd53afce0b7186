#!/usr/bin/env node
// Entry point: Node 24 runs the TypeScript sources directly (type stripping). The runtime check
// lives here, not in package.json `engines`: npm checks `engines` against the Node that runs npm,
// which in a checkout is not the one that runs Sluice (npx and npm scripts put the pinned Node 24
// of node_modules/.bin first), so it warned on every `npx sluice` and proved nothing. An older
// Node would fail on the import below with an unhelpful error; this line says what to do instead.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `sluice: needs Node.js 24 or later to run, this is ${process.version} (${process.execPath}).\n` +
      'In a checkout, `npm ci` installs Node 24: run `npx sluice ...` or `node_modules/.bin/node bin/sluice.js ...`.\n',
  );
  process.exit(1);
}
// Node's compile cache first (cmd/compile-cache.js): stripped sources and V8's code cache from disk,
// no WebAssembly type stripper holding ~40 MB for the life of the process once the cache is warm.
const { enableSluiceCompileCache } = await import('../cmd/compile-cache.js');
if (enableSluiceCompileCache()) {
  // Node writes the cache at exit; also once start-up is over, for a process that never exits cleanly.
  const { flushCompileCache } = await import('node:module');
  setTimeout(flushCompileCache, 30_000).unref();
}
await import('../cmd/cli.ts');
