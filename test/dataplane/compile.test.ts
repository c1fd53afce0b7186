// compileRouteTable confines problems to what they affect: an endpoint no connection pool takes
// (a hand-written EndpointSlice with a port that is not a number; found by
// test/fuzz/translate.test.ts) once threw out of compile, rejecting the whole version.
import { afterAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { compileRouteTable } from '../../dataplane/config/compile.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { backend, forwardTo, listener, route, scope } from './support/ir.ts';

const pools = new UpstreamPools(1000, 1000);
afterAll(() => pools.closeAll());

describe('compileRouteTable', () => {
  it('leaves out an unusable endpoint with a problem, keeping the backend and the version', () => {
    const table = compileRouteTable(
      'v1',
      {
        listeners: [listener(80, [scope('http', null, [['*', [route('r', {}, forwardTo('b'))]]])])],
        backends: { b: backend('b', [{ address: '10.0.0.1', port: Number.NaN }, { address: 'not an address', port: 80 }, { address: '10.0.0.2', port: 8080 }]) },
      },
      { pools, certificates: new SecureContextCache(), pickerStates: new PickerStates().begin(), metrics: new DataplaneMetrics(new Registry()) },
    );
    expect([...table.endpointKeys]).toEqual(['10.0.0.2:8080']);
    expect(table.problems).toEqual([
      { subject: 'b', message: expect.stringMatching(/^endpoint 10\.0\.0\.1:NaN is unusable \(.+\); left out$/) },
      { subject: 'b', message: expect.stringMatching(/^endpoint not an address:80 is unusable \(.+\); left out$/) },
    ]);
  });
});
