// Ingress fields the API server refuses (k8s.io/kubernetes pkg/apis/networking/validation:
// validateIngressRules, validateHTTPIngressPath, validateIngressTLS) are refused by standalone
// validation too, named by file, object and field, as the API server words them; before, an
// uppercase host, an empty Exact/Prefix path or one holding `/../` was read and served. What the
// API server takes stays taken (test/kube/review-s9-api-server.test.ts checks both directions
// against a real kube-apiserver).
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { problemLine } from '../../controller/problems.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-fx-ingress-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const ingress = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, namespace: 'default' }, spec });
const backend = { service: { name: 'web', port: { number: 80 } } };
const rule = (path: Record<string, unknown>, host?: string) => ({ ...(host === undefined ? {} : { host }), http: { paths: [{ backend, ...path }] } });

/** The folder's SLU_MANIFEST_INVALID lines as printed, and the Ingresses it reads. */
function load(docs: string[]): { refused: string[]; read: string[] } {
  writeFileSync(join(dir, 'ing.yaml'), docs.join('\n---\n'));
  const loaded = new ManifestFolder(dir).load();
  return {
    refused: loaded.problems.filter((p) => p.code === 'SLU_MANIFEST_INVALID').map(problemLine),
    read: loaded.snapshot.ingresses.map((i) => i.metadata!.name!),
  };
}

const REFUSED: [string, Record<string, unknown>, string][] = [
  ['upper-host', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'Foo.example')] }, `spec.rules[0].host: Invalid value: "Foo.example": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`],
  ['host-underscore', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'a_b.example')] }, 'spec.rules[0].host: Invalid value: "a_b.example": a lowercase RFC 1123 subdomain'],
  ['host-leading-zero-ip', { rules: [rule({ path: '/', pathType: 'Prefix' }, '010.0.0.1')] }, 'spec.rules[0].host: Invalid value: "010.0.0.1": must be a DNS name, not an IP address'],
  ['wildcard-inner', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'foo.*.example')] }, `spec.rules[0].host: Invalid value: "foo.*.example": a wildcard DNS-1123 subdomain must start with '*.'`],
  ['wildcard-upper', { rules: [rule({ path: '/', pathType: 'Prefix' }, '*.Example.com')] }, `spec.rules[0].host: Invalid value: "*.Example.com": a wildcard DNS-1123 subdomain`],
  ['prefix-empty', { rules: [rule({ path: '', pathType: 'Prefix' })] }, 'spec.rules[0].http.paths[0].path: Invalid value: "": must be an absolute path'],
  ['exact-no-path', { rules: [rule({ pathType: 'Exact' })] }, 'spec.rules[0].http.paths[0].path: Invalid value: "": must be an absolute path'],
  ['prefix-dotdot', { rules: [rule({ path: '/a/../b', pathType: 'Prefix' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a/../b": must not contain '/../'`],
  ['exact-dot', { rules: [rule({ path: '/a/./b', pathType: 'Exact' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a/./b": must not contain '/./'`],
  ['prefix-double-slash', { rules: [rule({ path: '/a//b', pathType: 'Prefix' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a//b": must not contain '//'`],
  ['prefix-encoded-slash', { rules: [rule({ path: '/a%2Fb', pathType: 'Prefix' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a%2Fb": must not contain '%2F'`],
  ['prefix-ends-dotdot', { rules: [rule({ path: '/a/..', pathType: 'Prefix' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a/..": cannot end with '/..'`],
  ['exact-ends-dot', { rules: [rule({ path: '/a/.', pathType: 'Exact' })] }, `spec.rules[0].http.paths[0].path: Invalid value: "/a/.": cannot end with '/.'`],
  ['paths-empty', { rules: [{ host: 'a.example', http: { paths: [] } }] }, 'spec.rules[0].http.paths: Required value'],
  ['nothing', { ingressClassName: 'sluice' }, 'spec: Invalid value: null: either `defaultBackend` or `rules` must be specified'],
  ['tls-upper', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'a.example')], tls: [{ hosts: ['A.example'], secretName: 's' }] }, 'spec.tls[0].hosts[0]: Invalid value: "A.example": a lowercase RFC 1123 subdomain'],
];

const TAKEN: [string, Record<string, unknown>][] = [
  ['wildcard', { rules: [rule({ path: '/', pathType: 'Prefix' }, '*.foo.com')] }],
  ['single-label', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'foo')] }],
  ['punycode', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'xn--bcher-kva.example')] }],
  ['numeric-labels', { rules: [rule({ path: '/', pathType: 'Prefix' }, '1.2.3')] }],
  ['is-regex', { rules: [rule({ path: '/api/v[0-9]+/(.*)', pathType: 'ImplementationSpecific' })] }],
  ['is-empty', { rules: [rule({ path: '', pathType: 'ImplementationSpecific' })] }],
  ['is-dotdot', { rules: [rule({ path: '/a/../b', pathType: 'ImplementationSpecific' })] }],
  ['prefix-dots-in-name', { rules: [rule({ path: '/a/..b/.c', pathType: 'Prefix' })] }],
  ['prefix-percent', { rules: [rule({ path: '/a%252Fb', pathType: 'Prefix' })] }],
  ['host-only', { rules: [{ host: 'only.example' }] }],
  ['default-backend-only', { defaultBackend: backend }],
  ['tls-wildcard', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'a.example')], tls: [{ hosts: ['*.example.com'], secretName: 's' }] }],
];

describe('Ingress fields the API server refuses', () => {
  it.each(REFUSED)('%s is refused, naming file, object and field; its neighbour in the file is read', (name, spec, message) => {
    const { refused, read } = load([ingress(name, spec), ingress('neighbour', { rules: [rule({ path: '/', pathType: 'Prefix' }, 'ok.example')] })]);
    expect(refused).toEqual([expect.stringContaining(`SLU_MANIFEST_INVALID ing.yaml: document 1: Ingress default/${name} refused: ${message}`)]);
    expect(read).toEqual(['neighbour']);
  });

  it.each(TAKEN)('%s (the API server takes it) is read', (name, spec) => {
    const { refused, read } = load([ingress(name, spec)]);
    expect(refused).toEqual([]);
    expect(read).toEqual([name]);
  });
});
