// The flow ring keeps one instance of a path or host that consecutive requests repeat
// (dataplane/flows/flow-buffer.ts): every request's path and host are fresh strings from the parser,
// and a ring holding 4096 of them kept them long enough to be promoted, to die in the old
// generation (issue #14). Counted for real: the string objects a bare Node's heap snapshot holds
// after 1 000 requests were pushed, each with its own fresh copy of the same path and host.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const FLOW_BUFFER = join(import.meta.dirname, '..', '..', 'dataplane', 'flows', 'flow-buffer.ts');

/** Pushes 1 000 forwarded requests whose paths and hosts come from `paths` (cycled), each a fresh copy as the parser makes one; counts the string objects of each value left in the heap. */
function retainedCopies(paths: string[], host: string): { paths: number[]; host: number; readBack: string[] } {
  const script = `
    const { FlowBuffer } = await import(${JSON.stringify(FLOW_BUFFER)});
    const { getHeapSnapshot } = await import('node:v8');
    const { text } = await import('node:stream/consumers');
    const paths = ${JSON.stringify(paths)};
    const ring = new FlowBuffer(1000);
    const record = { wallClock: 0, clientIp: '10.0.0.1', clientPort: 1, method: 'GET', path: '', host: '', protocol: 'HTTP/1.1', status: 200, latencyMs: 1,
      direction: 'ingress', destination: { ip: '', port: 0, identity: 0, labels: [] }, service: undefined, rule: undefined, route: undefined, gateway: undefined };
    // A string of its own on the heap, as node:http's parser hands out for each request.
    const fresh = (s) => Buffer.from(s, 'latin1').toString('latin1');
    for (let i = 0; i < 1000; i++) {
      record.path = fresh(paths[i % paths.length]);
      record.host = fresh(${JSON.stringify(host)});
      ring.pushForwarded(record);
    }
    const snapshot = JSON.parse(await text(getHeapSnapshot()));
    const fields = snapshot.snapshot.meta.node_fields;
    const types = snapshot.snapshot.meta.node_types[0];
    const type = fields.indexOf('type'), name = fields.indexOf('name'), width = fields.length;
    const count = (value) => {
      const index = snapshot.strings.indexOf(value);
      let n = 0;
      for (let i = 0; i < snapshot.nodes.length; i += width) if (snapshot.nodes[i + name] === index && types[snapshot.nodes[i + type]] === 'string') n++;
      return n;
    };
    process.stdout.write(JSON.stringify({ paths: paths.map(count), host: count(${JSON.stringify(host)}), readBack: ring.flows().slice(-4).map((f) => f.l7.host + f.l7.path) }));
  `;
  const child = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (child.status !== 0) throw new Error(`node exited with ${child.status}: ${child.stderr}`);
  return JSON.parse(child.stdout) as { paths: number[]; host: number; readBack: string[] };
}

describe('flow ring strings', () => {
  it('keeps one copy of a path and host that consecutive requests repeat, and reads them back', () => {
    const kept = retainedCopies(['/api/marker-path-7'], 'marker.host.example');
    // The kept instance, plus the script's own literals (source text and the snapshot's lookup).
    expect(kept.paths[0]).toBeLessThanOrEqual(3);
    expect(kept.host).toBeLessThanOrEqual(3);
    expect(kept.readBack).toEqual(Array(4).fill('marker.host.example/api/marker-path-7'));
  });

  it('keeps each request its own copy when consecutive paths differ (the count sees copies), in order', () => {
    const kept = retainedCopies(['/api/marker-a', '/api/marker-b'], 'marker.host.example');
    // Alternating paths are not shared (only the previous slot is compared): 500 copies each.
    expect(kept.paths[0]).toBeGreaterThanOrEqual(500);
    expect(kept.paths[1]).toBeGreaterThanOrEqual(500);
    expect(kept.host).toBeLessThanOrEqual(3);
    expect(kept.readBack).toEqual(['marker.host.example/api/marker-a', 'marker.host.example/api/marker-b', 'marker.host.example/api/marker-a', 'marker.host.example/api/marker-b']);
  });
});
