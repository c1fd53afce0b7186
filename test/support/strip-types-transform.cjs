// Jest transform: Node 24 strips TypeScript types natively, so tests run the
// same ESM code that `node file.ts` runs, with no compiler in between.
// Type errors are caught separately by `tsc --noEmit` (npm run typecheck).
//
// Jest 29's ESM loader has no `import.meta.dirname` / `import.meta.filename`
// (Node has them): the transform writes the file's own values in. Jest 29, not
// 30, because jest 30's resolver brings platform binaries the registry here
// does not all serve, which breaks `npm ci`.
const { stripTypeScriptTypes } = require('node:module');
const { dirname } = require('node:path');
const { createHash } = require('node:crypto');
const { readFileSync } = require('node:fs');

// Cached output must change when this file does, not only when the source does.
const SELF = createHash('sha256').update(readFileSync(__filename)).digest('hex');

module.exports = {
  getCacheKey(source, filename) {
    return createHash('sha256').update(SELF).update(filename).update(source).digest('hex');
  },
  process(source, filename) {
    const code = filename.endsWith('.ts') ? stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: filename }) : source;
    return {
      code: code.replaceAll('import.meta.dirname', JSON.stringify(dirname(filename))).replaceAll('import.meta.filename', JSON.stringify(filename)),
    };
  },
};
