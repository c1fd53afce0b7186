// The web view in split mode, in a real browser: a `sluice controller` against a real
// kube-apiserver and a `sluice dataplane` subscribed to it. The controller's /ui has the graph with
// the conditions it computed and says that traffic is counted by the dataplanes; the dataplane's
// /ui has the graph it serves, without conditions (and says so), and its counters rise with real
// requests.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Browser, Page } from 'puppeteer-core';
import { GATEWAY, createWebApp, getWithHost, sluice, waitFor, type Proc } from './processes.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { netnsSkipReason, startNetnsEcho, type NetnsEcho } from './netns-echo.ts';
import { describeIfPossible } from '../support/suite.ts';
import { requiredByEnvironment } from '../support/required.ts';
import { CHROMIUM, launchBrowser } from '../support/browser.ts';

const suite = describeIfPossible(
  'the web view in Kubernetes mode',
  binariesSkipReason() ?? netnsSkipReason() ?? (CHROMIUM ? null : 'no chromium at /usr/bin/chromium (apt-get install chromium)'),
  kubeTestsRequired() && requiredByEnvironment('SLUICE_BROWSER_REQUIRED'),
);

suite('the web view in Kubernetes mode', () => {
  let cluster: TestCluster;
  let echo: NetnsEcho;
  let controller: Proc;
  let dataplane: Proc;
  let browser: Browser;
  let page: Page;
  let offset: number;
  let controllerAdmin: string;
  let dataplaneAdmin: string;

  beforeAll(async () => {
    cluster = await startTestCluster();
    echo = await startNetnsEcho('web-1', 'app');
    const [snapshotPort, controllerPort, dataplanePort] = await freePorts(3);
    controllerAdmin = `127.0.0.1:${controllerPort}`;
    dataplaneAdmin = `127.0.0.1:${dataplanePort}`;
    offset = (await freePort()) - 80;
    await createWebApp(cluster.client, echo, { namespace: 'sluice-system', name: 'sluice-dataplane' });
    controller = sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', controllerAdmin, '--dataplane-service', 'sluice-system/sluice-dataplane']);
    dataplane = sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPort}`, '--name', 'dp-1', '--admin-address', dataplaneAdmin, '--listener-port-offset', String(offset), '--bpf', 'off']);
    await waitFor('the Gateway Programmed', async () => {
      const g = await cluster.client.get(GATEWAY);
      return g.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Programmed')?.status === 'True';
    }, 60_000);
    browser = await launchBrowser();
    page = await browser.newPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await dataplane?.stop();
    await controller?.stop();
    echo?.stop();
    await cluster?.stop();
  });

  const nodeOf = (id: string) =>
    page.$eval(`g.node[data-id="${id}"]`, (g) => ({ health: g.getAttribute('data-health'), text: Array.from(g.querySelectorAll('text'), (t) => t.textContent).join(' | ') }));

  it("the controller's view: the graph with its conditions, and where to find the traffic", async () => {
    await page.goto(`http://${controllerAdmin}/ui`);
    await page.waitForSelector('g.node[data-id="HTTPRoute/app/web"]', { timeout: 10_000 });
    expect(await page.$eval('#mode', (e) => e.textContent)).toBe('mode: controller');
    expect(await page.$eval('#notes', (e) => e.textContent)).toContain("open /ui at a dataplane's admin address");
    expect(await nodeOf('Gateway/app/gw')).toMatchObject({ health: 'ok', text: expect.stringContaining('app/gw') });
    expect((await nodeOf('HTTPRoute/app/web')).health).toBe('ok');
    await page.click('g.node[data-id="Gateway/app/gw"]');
    expect(await page.$eval('#details', (d) => d.textContent)).toContain('Programmed');
  });

  it("the dataplane's view: what it serves, no conditions (it says so), counters rising with requests", async () => {
    await page.goto(`http://${dataplaneAdmin}/ui`);
    await page.waitForSelector('g.node[data-id="HTTPRoute/app/web"]', { timeout: 10_000 });
    expect(await page.$eval('#mode', (e) => e.textContent)).toBe('mode: dataplane');
    expect(await page.$eval('#notes', (e) => e.textContent)).toContain("status conditions are the controller's");
    expect((await nodeOf('HTTPRoute/app/web')).health).toBe('unknown');
    for (let i = 0; i < 5; i++) expect((await getWithHost(80 + offset, `/ui-${i}`, 'web.example.com')).status).toBe(200);
    await page.waitForFunction(() => /\b5 total/.test(document.querySelector('g.node[data-id="HTTPRoute/app/web"]')?.textContent ?? ''), { timeout: 5000 });
  });
});
