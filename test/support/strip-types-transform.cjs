// Jest transform: Node 24 strips TypeScript types natively, so tests run the
// same ESM code that `node file.ts` runs, with no compiler in between.
// Type errors are caught separately by `tsc --noEmit` (npm run typecheck).
const { stripTypeScriptTypes } = require('node:module');

module.exports = {
  process(source, filename) {
    if (!filename.endsWith('.ts')) return { code: source };
    return { code: stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: filename }) };
  },
};
