// The IR → RouteTable seam, as golden files: each folder under golden/ holds `ir.yaml` (an
// HttpIR) and `route-table.yaml`, the compiled table as describeRouteTable renders it.
// UPDATE_GOLDEN=1 rewrites the outputs; the YAML diff is what a reviewer reads.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type tls from 'node:tls';
import { afterAll, describe, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import type { HttpIR, TlsCertificate } from '../../ir/types.ts';
import { compileRouteTable } from '../../dataplane/config/compile.ts';
import { describeRouteTable } from '../../dataplane/config/describe.ts';
import { DataplaneMetrics } from '../../dataplane/metrics.ts';
import { SecureContextCache } from '../../dataplane/tls/certificates.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { PickerStates } from '../../dataplane/upstream/weighted.ts';
import { expectGolden } from '../golden/golden.ts';

const root = join(import.meta.dirname, 'golden');

/**
 * Golden IR carries placeholders instead of PEM: contexts are not built, except that a
 * certificate whose PEM says "unusable" fails as a broken Secret would.
 */
class PlaceholderContexts extends SecureContextCache {
  override get(certificates: TlsCertificate | readonly TlsCertificate[]): tls.SecureContext {
    const list = 'hash' in certificates ? [certificates] : certificates;
    if (list.some((certificate) => certificate.certPem.includes('unusable'))) throw new Error('error:1E08010C:DECODER routines::unsupported (placeholder)');
    return { context: list.map((certificate) => certificate.name).join(' + ') } as unknown as tls.SecureContext;
  }
}

const pools = new UpstreamPools(1000, 1000);
afterAll(() => pools.closeAll());

describe('route table golden cases', () => {
  for (const name of readdirSync(root).sort()) {
    it(name, () => {
      const dir = join(root, name);
      const ir = parse(readFileSync(join(dir, 'ir.yaml'), 'utf8')) as HttpIR;
      const table = compileRouteTable('golden', ir, {
        pools,
        certificates: new PlaceholderContexts(),
        pickerStates: new PickerStates().begin(),
        metrics: new DataplaneMetrics(new Registry()),
      });
      expectGolden(join(dir, 'route-table.yaml'), describeRouteTable(table));
    });
  }
});
