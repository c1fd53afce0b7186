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
// A bounded young generation (README "Memory"): V8 grows each of the young generation's two
// semi-spaces to 64 MB under steady allocation on a machine this size, twice what the raw undici
// forwarder's settles at, and that growth was most of Sluice's RSS above it under load. The size
// can only be set when the process starts, so this process replaces itself (execve, same pid,
// same fds) with one started with --max-semi-space-size. Not when the user set the flag
// (NODE_OPTIONS or on the command line), SLUICE_MAX_SEMI_SPACE_MB=0 asks for V8's own sizing, this
// Node cannot execve, or a parent holds an IPC channel to this process (the new image would not
// inherit it cleanly).
const semiSpaceMb = process.env.SLUICE_MAX_SEMI_SPACE_MB ?? '32';
if (!/^\d{1,4}$/.test(semiSpaceMb)) {
  process.stderr.write(`sluice: SLUICE_MAX_SEMI_SPACE_MB must be a whole number of MB (0: V8's default), not ${JSON.stringify(semiSpaceMb)}\n`);
  process.exit(2);
}
const semiSpaceSet = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => arg.startsWith('--max-semi-space-size'));
if (semiSpaceMb !== '0' && !semiSpaceSet && typeof process.execve === 'function' && !process.channel) {
  process.execve(process.execPath, [process.execPath, `--max-semi-space-size=${semiSpaceMb}`, ...process.execArgv, ...process.argv.slice(1)], process.env);
}
// Node's compile cache first (cmd/compile-cache.js): stripped sources and V8's code cache from disk,
// no WebAssembly type stripper holding ~40 MB for the life of the process once the cache is warm.
// Pruned first (Node never does): other installations' folders beyond the last used, and this
// one's when it has grown past its bound.
const { enableSluiceCompileCache, pruneSluiceCompileCache } = await import('../cmd/compile-cache.js');
pruneSluiceCompileCache();
if (enableSluiceCompileCache()) {
  // Node writes the cache at exit; also once start-up is over, for a process that never exits cleanly.
  const { flushCompileCache } = await import('node:module');
  setTimeout(flushCompileCache, 30_000).unref();
}
await import('../cmd/cli.ts');
