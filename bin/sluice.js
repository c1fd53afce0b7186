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
// Node strips the TypeScript with a WebAssembly compiler whose memory grows to the largest file
// stripped and is never given back: ~40 MB of RSS for Sluice's sources, kept for the life of the
// process. Node's compile cache keeps the stripped sources (and V8's code cache) on disk, keyed by
// content: from the second start on no file is stripped, and start-up is faster. In the OS temp
// folder (the chart mounts an emptyDir there); NODE_COMPILE_CACHE picks another folder and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off. A folder that cannot be written only costs the saving.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../cmd/cli.ts');
