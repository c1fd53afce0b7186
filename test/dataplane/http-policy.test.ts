// L7 HTTP policy evaluation (dataplane/policy/http-policy.ts) on the IR the translator writes:
// identity by longest prefix, grants per port, Cilium's L4-only wildcard, anchored regexes,
// headers, mismatch actions, both directions and audit mode.
import { describe, expect, it } from '@jest/globals';
import { IDENTITY_ANY, type HttpPolicy, type HttpPolicyRule, type L4Policy } from '../../ir/types.ts';
import { HttpPolicyIndex } from '../../dataplane/policy/http-policy.ts';

const API = 300;
const OTHER = 301;

const rule = (r: Partial<HttpPolicyRule>): HttpPolicyRule => ({ headers: [], headerActions: [], ...r });

function policy(http: HttpPolicy[]): L4Policy {
  return {
    identities: [],
    ipcache: [
      { cidr: '10.0.0.0/8', identity: OTHER },
      { cidr: '10.0.9.91/32', identity: API },
    ],
    enforcement: [],
    rules: [],
    entries: [],
    http,
  };
}

const SEED: HttpPolicy = {
  direction: 'ingress',
  identity: API,
  audit: false,
  grants: [
    {
      rule: 1,
      ports: { from: 8080, to: 8080 },
      http: [rule({ method: 'GET', path: '/api/products' }), rule({ method: 'POST', path: '/api/orders' }), rule({ method: 'GET', path: '/api/users/[0-9]+' })],
    },
    { rule: 2, ports: { from: 9090, to: 9090 }, http: null },
  ],
};

const decide = (index: HttpPolicyIndex, address: string, port: number, method: string, target: string, headers: string[] = ['host', 'shop.example']) =>
  index.forEndpoint(address, port)?.decide(method, target, headers) ?? null;

describe('L7 HTTP policy', () => {
  const index = new HttpPolicyIndex(policy([SEED]));

  it('allows exactly the seed requests on the governed port, anchored as Envoy matches', () => {
    expect(decide(index, '10.0.9.91', 8080, 'GET', '/api/products')).toMatchObject({ verdict: 'FORWARDED', rules: [1] });
    expect(decide(index, '10.0.9.91', 8080, 'POST', '/api/orders')?.verdict).toBe('FORWARDED');
    expect(decide(index, '10.0.9.91', 8080, 'GET', '/api/users/42')?.verdict).toBe('FORWARDED');
    for (const [method, target] of [
      ['GET', '/api/users/abc'],
      ['GET', '/api/users/42/orders'],
      ['DELETE', '/api/products'],
      ['GETX', '/api/products'],
      ['GET', '/x/api/products'],
      // :path carries the query: the whole value must match (Cilium's Envoy header match).
      ['GET', '/api/products?page=2'],
    ] as const) {
      expect(decide(index, '10.0.9.91', 8080, method, target)).toMatchObject({ verdict: 'DROPPED', direction: 'ingress', rules: [1] });
    }
  });

  it('has no say on an L4-only port, on other identities, or on ports no grant names', () => {
    expect(index.forEndpoint('10.0.9.91', 9090)).toBeNull();
    expect(index.forEndpoint('10.0.9.92', 8080)).toBeNull(); // 10.0.0.0/8: identity OTHER
    expect(index.forEndpoint('10.0.9.91', 7070)).toBeNull();
    expect(index.identityOf('10.0.9.92')).toBe(OTHER);
    expect(index.identityOf('192.168.1.1')).toBe(2);
  });

  it('lets an L4-only grant on the same port wildcard the HTTP rules (as Cilium)', () => {
    const widened = new HttpPolicyIndex(policy([{ ...SEED, grants: [...SEED.grants, { rule: 3, ports: { from: 8000, to: 8100 }, http: null }] }]));
    expect(widened.forEndpoint('10.0.9.91', 8080)).toBeNull();
  });

  it('denies everything on a port whose grant has no HTTP rule Sluice can check (empty list)', () => {
    const closed = new HttpPolicyIndex(policy([{ direction: 'ingress', identity: API, audit: false, grants: [{ rule: 4, ports: { from: 9092, to: 9092 }, http: [] }] }]));
    expect(decide(closed, '10.0.9.91', 9092, 'GET', '/')?.verdict).toBe('DROPPED');
  });

  it('runs the rules as RE2 (Envoy safe_regex): linear time on a hostile path, RE2 syntax, refused syntax admits nothing', () => {
    const re2 = (path: string): HttpPolicyIndex =>
      new HttpPolicyIndex(policy([{ direction: 'ingress', identity: API, audit: false, grants: [{ rule: 5, ports: { from: 8080, to: 8080 }, http: [rule({ path })] }] }]));
    // Exponential for a backtracking engine (V8 needs minutes for this path); RE2 answers at once.
    // Without RE2 this test runs past jest's timeout and fails.
    const nested = re2('/(a+)+');
    expect(decide(nested, '10.0.9.91', 8080, 'GET', `/${'a'.repeat(29)}!`)?.verdict).toBe('DROPPED');
    expect(decide(nested, '10.0.9.91', 8080, 'GET', `/${'a'.repeat(29)}`)?.verdict).toBe('FORWARDED');
    // RE2's inline flags (a JavaScript RegExp refuses them).
    expect(decide(re2('(?i)/api/.*'), '10.0.9.91', 8080, 'GET', '/API/x')?.verdict).toBe('FORWARDED');
    // A lookahead (JavaScript has it, RE2 does not; the translator says so): the rule admits nothing.
    const ahead = re2('/(?=a).*');
    expect(decide(ahead, '10.0.9.91', 8080, 'GET', '/a')?.verdict).toBe('DROPPED');
    expect(decide(ahead, '10.0.9.91', 8080, 'GET', '/b')?.verdict).toBe('DROPPED');
  });

  it('matches host and headers, and runs mismatch actions on the request', () => {
    const index2 = new HttpPolicyIndex(
      policy([
        {
          direction: 'ingress',
          identity: API,
          audit: false,
          grants: [
            {
              rule: 5,
              http: [
                rule({
                  host: 'admin\\.example\\.com',
                  headers: [{ name: 'x-admin' }, { name: 'x-team', value: 'blue' }],
                  headerActions: [
                    { name: 'x-trace', value: 'on', mismatch: 'ADD' },
                    { name: 'x-env', value: 'prod', mismatch: 'REPLACE' },
                    { name: 'x-debug', value: 'no', mismatch: 'DELETE' },
                    { name: 'x-log', value: 'yes', mismatch: 'LOG' },
                  ],
                }),
              ],
            },
          ],
        },
      ]),
    );
    const headers = ['host', 'admin.example.com', 'x-admin', '1', 'x-team', 'blue', 'x-env', 'dev', 'x-debug', 'yes'];
    expect(decide(index2, '10.0.9.91', 1, 'GET', '/', headers)?.verdict).toBe('FORWARDED');
    expect(headers).toEqual(['host', 'admin.example.com', 'x-admin', '1', 'x-team', 'blue', 'x-trace', 'on', 'x-env', 'prod']);
    expect(decide(index2, '10.0.9.91', 1, 'GET', '/', ['host', 'admin.example.com', 'x-admin', '1', 'x-team', 'red'])?.verdict).toBe('DROPPED');
    expect(decide(index2, '10.0.9.91', 1, 'GET', '/', ['host', 'other.example.com', 'x-admin', '1', 'x-team', 'blue'])?.verdict).toBe('DROPPED');
  });

  it("checks the gateway's egress rules too, and audit mode forwards what it would deny", () => {
    const both = new HttpPolicyIndex(
      policy([
        { direction: 'egress', identity: IDENTITY_ANY, audit: true, grants: [{ rule: 7, http: [rule({ method: 'GET' })] }] },
        { ...SEED, audit: true },
      ]),
    );
    expect(decide(both, '10.0.9.91', 8080, 'GET', '/api/products')?.verdict).toBe('FORWARDED');
    expect(decide(both, '10.0.9.91', 8080, 'POST', '/api/products')).toMatchObject({ verdict: 'AUDIT', direction: 'egress', rules: [7] });
    const enforcedIngress = new HttpPolicyIndex(policy([{ direction: 'egress', identity: IDENTITY_ANY, audit: true, grants: [{ rule: 7, http: [rule({ method: 'GET' })] }] }, SEED]));
    expect(decide(enforcedIngress, '10.0.9.91', 8080, 'POST', '/api/products')).toMatchObject({ verdict: 'DROPPED', direction: 'ingress' });
    expect(decide(enforcedIngress, '10.0.9.92', 8080, 'POST', '/x')).toMatchObject({ verdict: 'AUDIT', direction: 'egress' });
  });

  it('denies byte streams (TCPRoute, TLSRoute) to a port with HTTP rules: DROPPED when a direction enforces, AUDIT when each audits', () => {
    const egressAudit: HttpPolicy = { direction: 'egress', identity: IDENTITY_ANY, audit: true, grants: [{ rule: 7, http: [rule({ method: 'GET' })] }] };
    // Rules that would allow any request still pass only HTTP: a stream is refused all the same.
    const open = new HttpPolicyIndex(policy([{ ...SEED, grants: [{ rule: 9, ports: { from: 8080, to: 8080 }, http: [rule({})] }] }]));
    expect(open.forEndpoint('10.0.9.91', 8080)!.decideStream()).toEqual({ verdict: 'DROPPED', direction: 'ingress', rules: [9] });
    const enforcedIngress = new HttpPolicyIndex(policy([egressAudit, SEED]));
    expect(enforcedIngress.forEndpoint('10.0.9.91', 8080)!.decideStream()).toEqual({ verdict: 'DROPPED', direction: 'ingress', rules: [1] });
    const audited = new HttpPolicyIndex(policy([egressAudit, { ...SEED, audit: true }]));
    expect(audited.forEndpoint('10.0.9.91', 8080)!.decideStream()).toEqual({ verdict: 'AUDIT', direction: 'egress', rules: [7] });
    // L4-only on the port, or no grant: no say (the relay goes on; L3/L4 decides).
    expect(new HttpPolicyIndex(policy([SEED])).forEndpoint('10.0.9.91', 9090)).toBeNull();
  });

  it('reads gRPC calls as POST /package.Service/Method paths', () => {
    const grpc = new HttpPolicyIndex(policy([{ direction: 'ingress', identity: API, audit: false, grants: [{ rule: 8, http: [rule({ method: 'POST', path: '/shop.Catalog/GetProduct' })] }] }]));
    expect(decide(grpc, '10.0.9.91', 50051, 'POST', '/shop.Catalog/GetProduct')?.verdict).toBe('FORWARDED');
    expect(decide(grpc, '10.0.9.91', 50051, 'POST', '/shop.Catalog/DeleteProduct')?.verdict).toBe('DROPPED');
  });
});

describe("the kernel's L3/L4 verdict, named in userspace", () => {
  const l4: L4Policy = {
    identities: [],
    ipcache: [],
    enforcement: [
      { identity: API, ingress: true, egress: false, audit: false },
      { identity: OTHER, ingress: true, egress: false, audit: true },
    ],
    rules: [],
    entries: [
      { direction: 'ingress', action: 'allow', local: API, remote: 8, protocol: 'TCP', ports: { from: 8080, to: 8080 }, rule: 1 },
      { direction: 'ingress', action: 'deny', local: API, remote: 0, protocol: 'TCP', ports: { from: 8081, to: 8081 }, rule: 2 },
      { direction: 'egress', action: 'deny', local: 8, remote: 0, protocol: 'ANY', rule: 3 },
    ],
  };

  it('follows the kernel: egress first, deny before allow, default deny, audit', async () => {
    const { L4PolicyIndex } = await import('../../dataplane/policy/l4-verdict.ts');
    const withoutEgress = new L4PolicyIndex({ ...l4, entries: l4.entries.filter((e) => e.direction === 'ingress') });
    expect(withoutEgress.decide(API, 8080)).toEqual({ verdict: 'FORWARDED', rule: 1, direction: 'ingress' });
    expect(withoutEgress.decide(API, 8081)).toEqual({ verdict: 'DROPPED', reason: 'POLICY_DENY', rule: 2, direction: 'ingress' });
    expect(withoutEgress.decide(API, 9090)).toEqual({ verdict: 'DROPPED', reason: 'DEFAULT_DENY', direction: 'ingress' });
    expect(withoutEgress.decide(OTHER, 9090)).toEqual({ verdict: 'AUDIT', reason: 'DEFAULT_DENY', direction: 'ingress' });
    expect(withoutEgress.decide(999, 9090)).toEqual({ verdict: 'FORWARDED', direction: 'ingress' });
    // The gateway's egress deny rule (no default deny for it: only deny entries refuse) decides first.
    expect(new L4PolicyIndex(l4).decide(API, 8080)).toEqual({ verdict: 'DROPPED', reason: 'POLICY_DENY', rule: 3, direction: 'egress' });
  });
});
