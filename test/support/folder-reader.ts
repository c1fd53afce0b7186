// A ManifestFolder in a process of its own, for tests that need real read errors a root jest
// worker cannot provoke in itself: run it as another user (setpriv) so chmod denies, or lower its
// descriptor limit (prlimit --pid) so it hits EMFILE. Each line "load" on stdin prints one JSON line:
// the HTTPRoute names it holds, its problems and read errors.
import { createInterface } from 'node:readline';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';

const folder = new ManifestFolder(process.argv[2]!);
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'load') continue;
  const { snapshot, problems, readErrors, changed } = folder.load();
  process.stdout.write(`${JSON.stringify({ routes: snapshot.httpRoutes.map((r) => r.metadata.name).sort(), problems, readErrors, changed })}\n`);
}
