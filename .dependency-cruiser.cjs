// The layer rule (ARCHITECTURE.md): imports point one way, towards the IR.
//
//   bin/ ─▶ cmd/ ─▶ controller/, dataplane/, bpf/ ─▶ ir/ (imports nothing of ours)
//
// Run by `npm run lint:layers` and as a step of `npm test` (test/support/run-all.ts).
// Type-only imports count: a type ties two layers together as much as a value does.
const RUNTIME = '^(ir|controller|dataplane|bpf|cmd|bin)/';

/** A rule forbidding imports from the folders `from` into the folders `to`. */
const layer = (name, from, to, comment) => ({
  name,
  comment,
  severity: 'error',
  from: { path: `^(${from.join('|')})/` },
  to: { path: `^(${to.join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'ir-is-a-leaf',
      comment: 'ir/ holds what every layer shares (IR types, version hashing, the snapshot wire protocol, address helpers): it imports nothing but itself and Node built-ins.',
      severity: 'error',
      from: { path: '^ir/' },
      to: { pathNot: ['^ir/'], dependencyTypesNot: ['core'] },
    },
    layer('dataplane-only-ir', ['dataplane'], ['controller', 'bpf'],
      'dataplane/ reads the IR and nothing else of ours: process wiring (dataplane + eBPF agent + admin server) lives in cmd/.'),
    layer('bpf-only-ir', ['bpf'], ['controller', 'dataplane'],
      'bpf/ (the agent and its addon loader) reads the IR and nothing else of ours.'),
    layer('controller-not-dataplane', ['controller'], ['dataplane', 'bpf'],
      'controller/ produces the IR; it meets dataplane/ and bpf/ only through ir/. Process wiring lives in cmd/.'),
    layer('cmd-is-the-top', ['ir', 'controller', 'dataplane', 'bpf'], ['cmd', 'bin', 'scripts'],
      'cmd/ (CLI, process wiring, admin server) may import every layer; nothing of the runtime imports it (bin/ starts it).'),
    layer('test-doubles-stay-in-tests', ['ir', 'controller', 'dataplane', 'bpf', 'bin'], ['test'],
      'test/ (the demo backends in test/support/demo/ included) stays out of the runtime layers.'),
    {
      name: 'bin-starts-cmd',
      comment: 'bin/sluice.js checks the Node version, turns the compile cache on (cmd/compile-cache.js, plain JavaScript: before anything is type-stripped) and loads cmd/cli.ts, nothing else.',
      severity: 'error',
      from: { path: '^bin/' },
      to: { pathNot: '^cmd/(cli\\.ts|compile-cache\\.js)$', dependencyTypesNot: ['core'] },
    },
    {
      name: 'demo-loader-only',
      comment: 'The one way into test/ from cmd/: the on-demand loader of `--demo-backends` in cmd/standalone.ts, a dynamic import that a checkout satisfies and the image (no test/) does not.',
      severity: 'error',
      from: { path: '^cmd/', pathNot: '^cmd/standalone\\.ts$' },
      to: { path: '^test/' },
    },
    {
      name: 'demo-loader-loads-the-demo',
      comment: 'Of test/, cmd/standalone.ts reaches the demo backends\' entry module and nothing else.',
      severity: 'error',
      from: { path: '^cmd/standalone\\.ts$' },
      to: { path: '^test/', pathNot: '^test/support/demo/demo-backends\\.ts$' },
    },
    {
      name: 'demo-loader-is-dynamic',
      comment: 'Only by a dynamic import (and its `typeof import()` type): a static one would make the image, which has no test/, fail at start.',
      severity: 'error',
      from: { path: '^cmd/standalone\\.ts$' },
      to: { path: '^test/', dependencyTypesNot: ['dynamic-import', 'type-import', 'type-only'] },
    },
    {
      name: 'web-view-page-stays-in-the-browser',
      comment: 'cmd/ui/browser/ is the web view page, served as files: it imports its own modules and the event payload types (cmd/ui/view-types.ts), nothing of the server or of Node.',
      severity: 'error',
      from: { path: '^cmd/ui/browser/' },
      to: { pathNot: ['^cmd/ui/browser/', '^cmd/ui/view-types\\.ts$'] },
    },
    {
      name: 'web-view-types-are-a-leaf',
      comment: 'cmd/ui/view-types.ts is the contract between the admin server and the page, which imports it: it imports nothing.',
      severity: 'error',
      from: { path: '^cmd/ui/view-types\\.ts$' },
      to: {},
    },
    {
      name: 'web-view-page-is-not-imported',
      comment: 'The page\'s modules run in the browser; the server serves them as files and never imports them.',
      severity: 'error',
      from: { pathNot: '^cmd/ui/browser/' },
      to: { path: '^cmd/ui/browser/' },
    },
    {
      name: 'runtime-not-dev-dependencies',
      comment: 'The image runs `npm prune --omit=dev`: runtime code may only use `dependencies`.',
      severity: 'error',
      from: { path: RUNTIME },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'no-cycles',
      comment: 'Runtime modules import each other in one direction only.',
      severity: 'error',
      from: { path: RUNTIME },
      to: { circular: true },
    },
    {
      name: 'resolvable',
      comment: 'Every relative import points at a file that exists.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // TypeScript 7 has no JavaScript API for dependency-cruiser to parse with; swc parses the
    // sources (type-only imports included) instead.
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
