// The web view (/ui) in a real browser: Debian's chromium driven by puppeteer-core against a real
// `sluice run` with real backends. Asserts what a person sees: the names in the graph, the weights,
// a route whose parent does not exist drawn red with its reason, request and rate-limit counters
// rising after real requests; and takes the README's screenshot (docs/web-view.png with
// SLUICE_UPDATE_SCREENSHOTS=1, else into a temporary folder).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { describeIfPossible } from '../support/suite.ts';
import { requiredByEnvironment } from '../support/required.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';
import { launchBrowser, CHROMIUM } from '../support/browser.ts';

/**
 * The README's screenshot is rewritten only when asked (SLUICE_UPDATE_SCREENSHOTS=1): a test run
 * must not leave the checkout modified. Otherwise it goes to a temporary folder, still taken.
 */
const DOCS = process.env.SLUICE_UPDATE_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs') : mkdtempSync(join(tmpdir(), 'sluice-web-view-'));

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    backendRefs:
    - {name: blue, port: 80, weight: 80}
    - {name: green, port: 80, weight: 20}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: limited, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /limited}}]
    backendRefs: [{name: blue, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: nope}]
  rules:
  - backendRefs: [{name: green, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: few, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  local:
    rules:
    - name: tiny
      limit: {requests: 2, unit: Hour}
`;

/** The api Service (a VIP, its own loopback address) behind an L7 policy that allows GET /api/products only. */
const api = (backend: NamedBackend) => `apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  clusterIP: 10.96.0.20
  selector: {app: api}
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: http, port: ${backend.port}}]
endpoints: [{addresses: [127.0.0.2]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEntities: [ingress]
    toPorts:
    - ports: [{port: "${backend.port}", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: /api/products}
`;

const reason = CHROMIUM ? null : 'no chromium at /usr/bin/chromium (apt-get install chromium)';

describeIfPossible('web view in a real browser', reason, requiredByEnvironment('SLUICE_BROWSER_REQUIRED'))('web view in a real browser', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backends: NamedBackend[];
  let port: number;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-ui-'));
    backends = [await startNamedBackend('blue'), await startNamedBackend('green'), await startNamedBackend('api', undefined, '127.0.0.2')];
    writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('blue', backends[0]!)}---\n${serviceYaml('green', backends[1]!)}---\n${api(backends[2]!)}`);
    writeFileSync(join(dir, 'routes.yaml'), ROUTES);
    port = await freePort();
    // Generous: seven helpers share two cores here, and chromium starts slowly under load.
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)], 60_000);
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.setViewport({ width: 1600, height: 800 });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await sluice?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The text a person reads in a graph node. */
  const nodeText = (id: string) => page.$eval(`g.node[data-id="${id}"]`, (g) => Array.from(g.querySelectorAll('text'), (t) => t.textContent).join(' | '));

  it('draws Gateway → listener → routes → backends with weights, and the route without a parent red with its reason', async () => {
    const violations: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') violations.push(m.text());
    });
    const response = await page.goto(`${sluice.admin}/ui`);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.waitForSelector('g.node[data-id="HTTPRoute/default/broken"]', { timeout: 10_000 });
    expect(await page.$eval('#connection', (e) => e.textContent)).toBe('live');

    expect(await nodeText('Gateway/default/gw')).toContain('default/gw');
    expect(await nodeText('Gateway/default/gw/http')).toContain('HTTP :80');
    expect(await nodeText('HTTPRoute/default/shop')).toContain('default/shop');
    expect(await nodeText('HTTPRoute/default/limited')).toContain('rate limit default/few');
    expect(await nodeText('service/default/blue/port/80')).toContain('default/blue');
    expect(await nodeText('service/default/green/port/80')).toContain('1 endpoint');
    const weight = (edge: string) => page.$eval(`text[data-edge-label="${edge}"]`, (t) => t.textContent);
    expect(await weight('HTTPRoute/default/shop→service/default/blue/port/80')).toContain('weight 80 (80%)');
    expect(await weight('HTTPRoute/default/shop→service/default/green/port/80')).toContain('weight 20 (20%)');

    // Red, with the reason, as the page paints it.
    const broken = 'g.node[data-id="HTTPRoute/default/broken"]';
    expect(await page.$eval(broken, (g) => g.getAttribute('data-health'))).toBe('failing');
    expect(await page.$eval(`${broken} rect`, (r) => getComputedStyle(r).stroke)).toBe('rgb(248, 81, 73)');
    expect(await nodeText('HTTPRoute/default/broken')).toContain('Accepted=False NoMatchingParent');
    expect(await page.$eval('g.node[data-id="HTTPRoute/default/shop"]', (g) => g.getAttribute('data-health'))).toBe('ok');
    // Its conditions in full, a click away.
    await page.click(broken);
    expect(await page.$eval('#details', (d) => d.textContent)).toContain('has no listener');
    expect(violations).toEqual([]);
  });

  it('shows request counters and rate-limit decisions rising after real requests', async () => {
    const totalOf = async (id: string) => Number(/(\d+) total/.exec(await nodeText(id))?.[1] ?? 0);
    expect(await totalOf('HTTPRoute/default/shop')).toBe(0);
    for (let i = 0; i < 20; i++) expect((await fetch(`http://127.0.0.1:${port}/shop/${i}`)).status).toBe(200);
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await fetch(`http://127.0.0.1:${port}/limited`)).status);
    expect(codes).toEqual([200, 200, 429, 429, 429]);

    await page.waitForFunction(() => /\b20 total/.test(document.querySelector('g.node[data-id="HTTPRoute/default/shop"]')?.textContent ?? ''), { timeout: 5000 });
    // The backends share the 20 between them; the edge into the route carries them too (one listener serves it).
    const blue = await totalOf('service/default/blue/port/80');
    const green = await totalOf('service/default/green/port/80');
    expect(blue + green).toBe(20 + 2); // the two /limited requests that were let through went to blue
    expect(await page.$eval('text[data-edge-label="Gateway/default/gw/http→HTTPRoute/default/shop"]', (t) => t.textContent)).toContain('20 total');

    await page.waitForFunction(() => (document.querySelector('#ratelimits tbody tr')?.textContent ?? '').includes('tiny'), { timeout: 5000 });
    const row = await page.$eval('#ratelimits tbody tr', (tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent));
    expect(row[0]).toBe('default/few');
    expect(row[1]).toBe('tiny');
    expect(row.slice(4)).toEqual(['2', '3']); // allowed, limited since start
  });

  it('lists a request the L7 policy denied within 2 s, and the rate-limited ones, with their reasons', async () => {
    const dropRows = () => page.$$eval('#drops tbody tr', (rows) => rows.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')));
    // The three 429s of the test before, recorded as drops by the proxy.
    await page.waitForFunction(() => document.querySelectorAll('#drops tbody tr').length >= 3, { timeout: 5000 });
    const limited = (await dropRows()).filter((r) => r[2] === 'RATE_LIMITED');
    expect(limited.length).toBe(3);
    expect(limited[0]![1]).toBe('DROPPED');
    expect(limited[0]![5]).toContain('GET /limited → 429');

    expect((await fetch(`http://127.0.0.1:${port}/api/products`)).status).toBe(200);
    const denied = await fetch(`http://127.0.0.1:${port}/api/products`, { method: 'DELETE' });
    expect(denied.status).toBe(403);
    // The bound: one update interval (1 s) plus the time to draw, well within 2 s.
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#drops tbody tr'), (tr) => tr.textContent ?? '').some((t) => t.includes('POLICY_L7') && t.includes('DELETE /api/products')), { timeout: 2000 });
    const row = (await dropRows()).find((r) => r[2] === 'POLICY_L7')!;
    expect(row[1]).toBe('DROPPED');
    expect(row[4]).toContain('127.0.0.2');
    expect(row[5]).toContain('DELETE /api/products → 403');
    expect(await nodeText('service/default/api/port/80')).toContain('default/api:80');
    // The drop is counted on the route it belongs to (drops of the last 10 s).
    expect(await nodeText('HTTPRoute/default/api')).toContain('1 dropped (10 s)');

    mkdirSync(DOCS, { recursive: true });
    await page.screenshot({ path: join(DOCS, 'web-view.png'), fullPage: true });
    expect(existsSync(join(DOCS, 'web-view.png'))).toBe(true);
  });
});
