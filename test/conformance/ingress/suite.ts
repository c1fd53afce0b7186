// The Ingress suite: runs the groups of shared/conformance/ingress/cases/
// (FORMAT.md) against Sluice on the --target (a `sluice run` child, or a
// controller + dataplane on a real API server). Per group: start echo pods,
// write the group's objects, honour `setup`, run the cases in order, then
// remove everything and wait until Sluice has forgotten it (every group starts
// from an empty state). Sluice is restarted only when a group's `controller`
// settings differ from the running process's.

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ArgsError, type RunnerArgs } from '../lib/args.ts';
import { type KObject } from '../lib/manifest-store.ts';
import { awaitConvergence, sleep } from '../lib/poll.ts';
import type { Reporter } from '../lib/report.ts';
import type { SuiteContext } from '../lib/suite-context.ts';
import { createTarget, type SluiceTarget } from '../lib/target.ts';
import { AddressAllocator, generateSecrets, groupEndpointSlices, groupObjects, GroupPods, randomName, serviceKey } from './environment.ts';
import { bindingKeys, distinctPods, evaluateHttp, loadBalancerAddresses, splitProblems, type Problem } from './expect.ts';
import { validateGroup, validateIndex } from './schema.ts';
import { hopUrl, perform, type TrafficSettings } from './traffic.ts';
import type { ControllerSettings, DistributionCase, GroupFile, HttpCase, HttpExpectation, IndexFile, IngressCase, StatusCase } from './types.ts';
import { stableJson } from '../../../ir/version.ts';

export type { SuiteContext };

const REQUIRED_SUCCESSES = 3;
const POLL_MS = 250;
const RETRY_MS = 500;
const SYNC_TIMEOUT_MS = 20_000;
const CONFIG_SETTLE_MS = 3_000;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_DISTRIBUTION_BATCHES = 3;
const GROUP_FILE = '50-group';
const SLICES_FILE = '51-group-endpointslices';
const PROBE_FILE = '40-address-probe';
const PROBE_NAMESPACE = 'sluice-conformance-probe';

function itemKey(o: { kind?: string; metadata?: { name?: string; namespace?: string } }): string {
  return o.metadata?.namespace ? `${o.kind}/${o.metadata.namespace}/${o.metadata.name}` : `${o.kind}/${o.metadata?.name}`;
}

// ---------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------

export interface PlannedGroup {
  file: string;
  /** Group id: `group` of a valid file, else the file name without .json. */
  id: string;
  data?: GroupFile;
  /** Problems that stop the whole group. */
  problems: string[];
  /** Case ids in file order (best effort for invalid files). */
  caseIds: string[];
  /** Problems of single cases (e.g. an id used in another file too). */
  caseProblems: Map<string, string[]>;
  /** Case ids to run and report. */
  selected: Set<string>;
}

export interface Plan {
  groups: PlannedGroup[];
  /** Inconsistencies between index.json and the folder. */
  indexProblems: string[];
}

function rawCaseIds(data: unknown): string[] {
  const cases = (data as { cases?: unknown })?.cases;
  if (!Array.isArray(cases)) return [];
  return cases.flatMap((c) => (typeof c?.id === 'string' ? [c.id] : []));
}

/** Reads and validates every group file of `casesDir` (index.json order first), then applies --only. */
export function loadPlan(casesDir: string, only: string[]): Plan {
  if (!existsSync(casesDir)) throw new ArgsError(`--cases ${casesDir}: no such folder`);
  const files = readdirSync(casesDir).filter((f) => f.endsWith('.json') && f !== 'index.json').sort();
  const indexProblems: string[] = [];
  let order = files;
  let index: IndexFile | undefined;
  const indexPath = join(casesDir, 'index.json');
  if (existsSync(indexPath)) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (err) {
      indexProblems.push(`cannot parse index.json: ${(err as Error).message}`);
    }
    if (raw !== undefined) {
      const problems = validateIndex(raw);
      indexProblems.push(...problems);
      if (problems.length === 0) {
        index = raw as IndexFile;
        const listed = index.groups.map((g) => g.file);
        for (const f of listed) if (!files.includes(f)) indexProblems.push(`index.json lists ${f}, which is not in the folder`);
        for (const f of files) if (!listed.includes(f)) indexProblems.push(`${f} is not listed in index.json`);
        order = [...listed.filter((f) => files.includes(f)), ...files.filter((f) => !listed.includes(f))];
      }
    }
  }

  const seenIds = new Map<string, string>();
  const groups: PlannedGroup[] = order.map((f) => {
    const base = basename(f, '.json');
    const g: PlannedGroup = { file: join(casesDir, f), id: base, problems: [], caseIds: [], caseProblems: new Map(), selected: new Set() };
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(g.file, 'utf8'));
    } catch (err) {
      g.problems.push(`cannot parse ${f}: ${(err as Error).message}`);
      return g;
    }
    g.caseIds = rawCaseIds(data);
    g.problems.push(...validateGroup(data, base));
    if (g.problems.length === 0) g.data = data as GroupFile;
    for (const id of new Set(g.caseIds)) {
      const other = seenIds.get(id);
      if (other) g.caseProblems.set(id, [`case id ${JSON.stringify(id)} is also used in ${other}`]);
      else seenIds.set(id, f);
    }
    return g;
  });

  // index.json case counts against the files.
  if (index) {
    for (const entry of index.groups) {
      const g = groups.find((x) => basename(x.file) === entry.file);
      if (!g) continue;
      if (g.data && g.data.group !== entry.group) indexProblems.push(`index.json names ${entry.file} group ${entry.group}, the file says ${g.data.group}`);
      if (g.caseIds.length !== entry.cases) indexProblems.push(`index.json says ${entry.file} has ${entry.cases} cases, it has ${g.caseIds.length}`);
    }
  }

  if (only.length === 0) {
    for (const g of groups) g.selected = new Set(g.caseIds);
  } else {
    const unknown: string[] = [];
    for (const name of only) {
      let hit = false;
      for (const g of groups) {
        if (g.id === name || g.data?.group === name) {
          for (const id of g.caseIds) g.selected.add(id);
          hit = true;
        } else if (g.caseIds.includes(name)) {
          g.selected.add(name);
          hit = true;
        }
      }
      if (!hit) unknown.push(name);
    }
    if (unknown.length) throw new ArgsError(`--only: no case or group named ${unknown.join(', ')} in ${casesDir}`);
  }
  return { groups, indexProblems };
}

// ---------------------------------------------------------------------------
// Sluice
// ---------------------------------------------------------------------------

class SluiceHost {
  readonly target: SluiceTarget;
  readonly args: RunnerArgs;
  readonly report: Reporter;
  settingsKey: string | undefined;
  /** The Ingress listener address learned from the probe Ingress at start. */
  probeAddress: string | undefined;

  constructor(target: SluiceTarget, args: RunnerArgs, report: Reporter) {
    this.target = target;
    this.args = args;
    this.report = report;
  }

  get store() {
    return this.target.store;
  }

  get exitInfo(): string | undefined {
    return this.target.exitInfo;
  }

  /** Runs Sluice with `settings`, restarting it when they differ from the running process's. */
  async ensure(settings: ControllerSettings): Promise<void> {
    const key = stableJson(settings);
    if (this.target.running && this.settingsKey === key) return;
    this.settingsKey = key;
    this.probeAddress = undefined;
    this.report.verbose(`starting sluice (ingress class ${settings.ingressClassName}, enforce-https ${settings.enforceHttps})`);
    await this.target.start(['--ingress-classes', settings.ingressClassName, '--ingress-enforce-https', String(settings.enforceHttps)]);
    await this.probe(settings);
  }

  /**
   * Learns the Ingress listener address with a throw-away Ingress of the served
   * class (for cases whose group has no Ingress with an address), then removes it.
   */
  async probe(settings: ControllerSettings): Promise<void> {
    const objects: KObject[] = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: PROBE_NAMESPACE } },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name: 'address-probe', namespace: PROBE_NAMESPACE },
        spec: {
          ingressClassName: settings.ingressClassName,
          rules: [{ host: 'address-probe.sluice-conformance.invalid', http: { paths: [{ path: '/', pathType: 'Exact', backend: { service: { name: 'none', port: { number: 80 } } } }] } }],
        },
      },
    ];
    this.store.set(PROBE_FILE, objects);
    await this.store.flush();
    const refused = this.target.takeApplyProblems();
    if (refused.length) throw new Error(`the probe Ingress: ${refused.join('; ')}`);
    const deadline = Date.now() + Math.min(this.args.statusTimeoutSeconds * 1000, 30_000);
    while (Date.now() < deadline && !this.probeAddress) {
      try {
        const ing = (await this.ingresses()).find((i) => itemKey(i) === `Ingress/${PROBE_NAMESPACE}/address-probe`);
        this.probeAddress = loadBalancerAddresses(ing)[0];
      } catch {
        // not yet
      }
      if (!this.probeAddress) await sleep(POLL_MS);
    }
    this.report.verbose(this.probeAddress ? `Ingress listener address (probe): ${this.probeAddress}` : 'warning: the probe Ingress got no address');
    this.store.remove(PROBE_FILE);
    await this.store.flush();
    const pending = await this.sync([], objects);
    if (pending.length) throw new Error(`the probe Ingress was not removed: ${pending.join(', ')}`);
    await this.settleConfig(undefined);
  }

  /** What Sluice has read (its /api/status). */
  status(): Promise<any[]> {
    return this.target.listed();
  }

  /** Ingresses with the status the cases judge (Sluice's /api/status, or the real objects). */
  ingresses(): Promise<any[]> {
    return this.target.statusObjects(['Ingress']);
  }

  configVersion(): Promise<string | undefined> {
    return this.target.configVersion();
  }

  /**
   * Sluice lists an object in /api/status before its dataplane has the new
   * configuration; wait until the served version moves away from `before`
   * (or stays put for a while: not every change alters the configuration).
   */
  async settleConfig(before: string | undefined): Promise<void> {
    const deadline = Date.now() + CONFIG_SETTLE_MS;
    let last = await this.configVersion();
    let stableSince = Date.now();
    while (Date.now() < deadline) {
      if (before !== undefined && last !== undefined && last !== before) return;
      await sleep(100);
      const v = await this.configVersion();
      if (v !== last) {
        last = v;
        stableSince = Date.now();
      } else if (before === undefined && Date.now() - stableSince >= 500) {
        return;
      }
    }
  }

  /** Waits until Sluice lists `present` (same spec) and no longer lists `absent`; returns what is still pending. */
  async sync(present: KObject[], absent: KObject[]): Promise<string[]> {
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    let pending: string[] = ['nothing read yet'];
    while (Date.now() < deadline) {
      if (this.exitInfo) return [`sluice ${this.exitInfo}`];
      let items: any[];
      try {
        items = await this.status();
      } catch {
        await sleep(POLL_MS);
        continue;
      }
      pending = this.target.pending(items, present, absent);
      if (pending.length === 0) return [];
      await sleep(POLL_MS);
    }
    return pending;
  }

  async stop(): Promise<void> {
    await this.target.stop();
    this.settingsKey = undefined;
    this.probeAddress = undefined;
  }
}

// ---------------------------------------------------------------------------
// One group
// ---------------------------------------------------------------------------

class GroupRun {
  readonly host: SluiceHost;
  readonly g: GroupFile;
  readonly args: RunnerArgs;
  readonly report: Reporter;
  readonly pods: GroupPods;
  readonly traffic: TrafficSettings;
  #written: KObject[] = [];
  #slices: KObject[] = [];
  #addressCache: { at: number; addr: string | undefined } | undefined;

  constructor(host: SluiceHost, g: GroupFile, args: RunnerArgs, report: Reporter, alloc: AddressAllocator) {
    this.host = host;
    this.g = g;
    this.args = args;
    this.report = report;
    this.pods = new GroupPods(g, alloc);
    this.traffic = { portOffset: args.portOffset, timeoutMs: REQUEST_TIMEOUT_MS };
  }

  /** Applies the group and its setup; returns a failure reason, or undefined when ready. */
  async setUp(): Promise<string | undefined> {
    const g = this.g;
    const bundles = await generateSecrets(g);
    await this.pods.startAll();
    const before = await this.host.configVersion();
    this.#written = groupObjects(g, bundles);
    this.#slices = groupEndpointSlices(g, this.pods, randomName(5));
    this.host.store.set(GROUP_FILE, this.#written);
    this.host.store.set(SLICES_FILE, this.#slices);
    await this.host.store.flush();
    const refused = this.host.target.takeApplyProblems();
    if (refused.length) return refused.join('; ');
    const pending = await this.host.sync([...this.#written, ...this.#slices], []);
    if (pending.length) return `Sluice did not pick up the group's objects within ${SYNC_TIMEOUT_MS / 1000} s: ${pending.slice(0, 5).join(', ')}`;
    await this.host.settleConfig(before);
    this.report.verbose(`  applied ${this.#written.length + this.#slices.length} object(s), ${this.pods.pods.length} echo pod(s)`);

    for (const name of g.setup?.waitForLoadBalancerAddress ?? []) {
      const r = await this.waitAddress(name, this.args.statusTimeoutSeconds * 1000);
      if (!r.ok) return `setup.waitForLoadBalancerAddress: Ingress ${name} shows no address after ${this.args.statusTimeoutSeconds} s (${r.detail})`;
      this.report.verbose(`  Ingress ${name} has address ${r.detail}`);
    }

    const scale = Object.entries(g.setup?.scale ?? {});
    if (scale.length) {
      for (const [name, n] of scale) {
        const svc = g.services.find((s) => s.name === name)!;
        await this.pods.scaleTo(serviceKey(g, svc), n);
      }
      const old = this.#slices;
      const beforeScale = await this.host.configVersion();
      this.#slices = groupEndpointSlices(g, this.pods, randomName(5));
      this.host.store.set(SLICES_FILE, this.#slices);
      await this.host.store.flush();
      const refusedSlices = this.host.target.takeApplyProblems();
      if (refusedSlices.length) return `setup.scale: ${refusedSlices.join('; ')}`;
      const p = await this.host.sync(this.#slices, old);
      if (p.length) return `setup.scale: Sluice did not pick up the scaled EndpointSlices: ${p.slice(0, 5).join(', ')}`;
      await this.host.settleConfig(beforeScale);
      this.report.verbose(`  scaled ${scale.map(([n, c]) => `${n}=${c}`).join(', ')}`);
    }
    return undefined;
  }

  async tearDown(): Promise<void> {
    const removed = [...this.#written, ...this.#slices];
    this.host.store.remove(GROUP_FILE);
    this.host.store.remove(SLICES_FILE);
    await this.host.store.flush();
    for (const p of this.host.target.takeApplyProblems()) this.report.verbose(`  warning: tear-down: ${p}`);
    if (removed.length && !this.host.exitInfo) {
      const pending = await this.host.sync([], removed);
      if (pending.length) this.report.verbose(`  warning: group objects still listed after removal: ${pending.slice(0, 5).join(', ')}`);
      await this.host.settleConfig(undefined);
    }
    await this.pods.close();
  }

  ingressNamespace(name: string): string {
    const ing = this.g.ingresses.find((i) => i.metadata.name === name);
    return ing?.metadata.namespace ?? this.g.namespace;
  }

  /** The Ingress with the status the cases judge. */
  async ingressItem(name: string): Promise<any | undefined> {
    const key = `Ingress/${this.ingressNamespace(name)}/${name}`;
    return (await this.host.ingresses()).find((i) => itemKey(i) === key);
  }

  /** Whether Sluice has read the Ingress. */
  async ingressListed(name: string): Promise<boolean> {
    const key = `Ingress/${this.ingressNamespace(name)}/${name}`;
    return (await this.host.status()).some((i) => itemKey(i) === key);
  }

  async waitAddress(name: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
    const deadline = Date.now() + timeoutMs;
    let detail = 'no such Ingress';
    for (;;) {
      if (this.host.exitInfo) return { ok: false, detail: `sluice ${this.host.exitInfo}` };
      try {
        const item = await this.ingressItem(name);
        if (item) {
          const addrs = loadBalancerAddresses(item);
          if (addrs.length) return { ok: true, detail: addrs.join(', ') };
          detail = `status.loadBalancer: ${JSON.stringify(item.status?.loadBalancer ?? null)}`;
        }
      } catch (err) {
        detail = `cannot read the status: ${(err as Error).message}`;
      }
      if (Date.now() >= deadline) return { ok: false, detail };
      await sleep(POLL_MS);
    }
  }

  /** The proxy address: the first address any Ingress of the group shows (setup ones first), else the probe's. */
  async proxyAddress(): Promise<string | undefined> {
    if (this.#addressCache && Date.now() - this.#addressCache.at < 1000) return this.#addressCache.addr;
    const names = [...new Set([...(this.g.setup?.waitForLoadBalancerAddress ?? []), ...this.g.ingresses.map((i) => i.metadata.name)])];
    let addr: string | undefined;
    try {
      const items = await this.host.ingresses();
      for (const name of names) {
        const key = `Ingress/${this.ingressNamespace(name)}/${name}`;
        addr = loadBalancerAddresses(items.find((i) => itemKey(i) === key))[0];
        if (addr) break;
      }
    } catch {
      addr = undefined;
    }
    addr ??= this.host.probeAddress;
    this.#addressCache = { at: Date.now(), addr };
    return addr;
  }

  // -- cases -------------------------------------------------------------------

  async runCase(c: IngressCase): Promise<{ failures: string[]; notes: string[] }> {
    if (this.host.exitInfo) return { failures: [`not run: sluice ${this.host.exitInfo}`], notes: [] };
    switch (c.kind) {
      case 'status':
        return { failures: await this.statusCase(c), notes: [] };
      case 'http':
        return this.httpCase(c);
      case 'distribution':
        return this.distributionCase(c);
      default:
        return { failures: [`unsupported case kind ${JSON.stringify((c as { kind?: unknown }).kind)}`], notes: [] };
    }
  }

  async statusCase(c: StatusCase): Promise<string[]> {
    const want = c.expect.loadBalancerAddress;
    if (want === 'present') {
      const r = await this.waitAddress(c.ingress, this.args.statusTimeoutSeconds * 1000);
      return r.ok ? [] : [`loadBalancerAddress: expected present, none after ${this.args.statusTimeoutSeconds} s (${r.detail})`];
    }
    // absent: Sluice must have read the Ingress, and no address may appear for the whole window.
    const window = this.args.absentWindowSeconds * 1000;
    const start = Date.now();
    let listed = false;
    for (;;) {
      if (this.host.exitInfo) return [`sluice ${this.host.exitInfo}`];
      let item: any;
      try {
        item = await this.ingressItem(c.ingress);
        if (item && !listed) listed = await this.ingressListed(c.ingress);
      } catch (err) {
        return [`cannot read the status: ${(err as Error).message}`];
      }
      if (item) {
        const addrs = loadBalancerAddresses(item);
        if (addrs.length) {
          return [`loadBalancerAddress: expected absent for ${this.args.absentWindowSeconds} s, status.loadBalancer.ingress shows ${addrs.join(', ')} after ${((Date.now() - start) / 1000).toFixed(1)} s`];
        }
      }
      if (Date.now() - start >= window) break;
      await sleep(500);
    }
    if (!listed) return [`loadBalancerAddress: Sluice never listed Ingress ${c.ingress} in /api/status, so its absence proves nothing`];
    return [];
  }

  settle(c: IngressCase, problems: Problem[]): { failures: string[]; notes: string[] } {
    return splitProblems(problems, bindingKeys(c, this.args.assertedOnly));
  }

  /** One request + judgement; `expect` without distinctPods. */
  async attempt(c: HttpCase | DistributionCase, expect: HttpExpectation): Promise<{ failures: string[]; notes: string[]; body?: Buffer }> {
    const addr = await this.proxyAddress();
    if (!addr) return { failures: ['no proxy address: no Ingress of the group shows one, and the probe Ingress got none'], notes: [] };
    const since = Date.now();
    const ex = await perform(c.request, addr, this.traffic);
    const problems = evaluateHttp(expect, { result: ex.result, podsReached: this.pods.reachedSince(since) }, { serviceOfPod: (p) => this.pods.serviceOfPod(p) }, hopUrl(ex.final));
    const r = this.settle(c, problems);
    if (ex.chain.length > 1) {
      const chain = `(requests: ${ex.chain.join(', ')})`;
      if (r.failures.length) r.failures.push(chain);
      if (r.notes.length) r.notes.push(chain);
    }
    if (r.failures.length && !ex.result.ok) r.failures.push(`(proxy ${addr})`);
    return { ...r, body: ex.result.ok ? ex.result.body : undefined };
  }

  async converge(c: HttpCase | DistributionCase, expect: HttpExpectation): Promise<{ failures: string[]; notes: string[] }> {
    let notes: string[] = [];
    const r = await awaitConvergence(
      async () => {
        const a = await this.attempt(c, expect);
        notes = a.notes;
        return a.failures;
      },
      { requiredSuccesses: REQUIRED_SUCCESSES, pollIntervalMs: RETRY_MS, budgetMs: this.args.caseBudgetSeconds * 1000 },
    );
    if (r.ok) return { failures: [], notes };
    return {
      failures: [`${r.lastProblems.join('; ')} [not ${REQUIRED_SUCCESSES}x in a row within ${this.args.caseBudgetSeconds} s, ${r.attempts} attempts]`],
      notes: [],
    };
  }

  async httpCase(c: HttpCase): Promise<{ failures: string[]; notes: string[] }> {
    return this.converge(c, c.expect);
  }

  async distributionCase(c: DistributionCase): Promise<{ failures: string[]; notes: string[] }> {
    const { distinctPods: want, ...perResponse } = c.expect;
    const plain = await this.converge(c, perResponse as HttpExpectation);
    if (plain.failures.length) return { failures: plain.failures.map((f) => `single requests: ${f}`), notes: plain.notes };
    const binding = bindingKeys(c, this.args.assertedOnly);
    const deadline = Date.now() + this.args.caseBudgetSeconds * 1000;
    let last: string[] = [];
    let notes: string[] = [];
    for (let batch = 1; batch <= MAX_DISTRIBUTION_BATCHES; batch++) {
      const bodies: Buffer[] = [];
      const failed: string[] = [];
      notes = [];
      for (let i = 0; i < c.request.repeat; i++) {
        const a = await this.attempt(c, perResponse as HttpExpectation);
        if (a.failures.length) failed.push(`request ${i + 1}: ${a.failures.join('; ')}`);
        notes.push(...a.notes);
        if (a.body) bodies.push(a.body);
      }
      const pods = distinctPods(bodies);
      const problems: string[] = [];
      if (failed.length) problems.push(`${failed.length}/${c.request.repeat} responses failed, e.g. ${failed[0]}`);
      if (pods.size !== want) {
        const msg = `distinctPods: expected ${want}, saw ${pods.size} among ${bodies.length} replies (${[...pods].sort().join(', ')})`;
        if (binding.has('distinctPods')) problems.push(msg);
        else notes.push(msg);
      }
      this.report.verbose(`    batch ${batch}: ${pods.size} distinct pod(s), ${failed.length} failed response(s)`);
      if (problems.length === 0) return { failures: [], notes: [...new Set(notes)] };
      last = [`batch ${batch}: ${problems.join('; ')}`];
      if (Date.now() > deadline) break;
    }
    return { failures: last, notes: [] };
  }
}

// ---------------------------------------------------------------------------
// Entry
// ---------------------------------------------------------------------------

function summarise(failures: string[]): string {
  return failures.length > 6 ? `${failures.slice(0, 6).join(' || ')} || (+${failures.length - 6} more)` : failures.join(' || ');
}

export async function runSuite(ctx: SuiteContext): Promise<void> {
  const { args, report } = ctx;
  // Paths in case files are relative to the folder that holds shared/ (the project's parent).
  const sharedRoot = resolve(ctx.projectRoot, '..');
  const casesDir = args.casesDir ? resolve(args.casesDir) : join(sharedRoot, 'shared', 'conformance', 'ingress', 'cases');
  const plan = loadPlan(casesDir, args.only);
  const selectedCount = plan.groups.reduce((n, g) => n + g.selected.size, 0);
  report.verbose(`ingress suite: ${plan.groups.length} group(s), ${selectedCount} case(s) selected from ${casesDir}`);
  report.note(
    `note: status cases expecting loadBalancerAddress "absent" watch for ${args.absentWindowSeconds} s (--absent-window; upstream waits 5 min); ` +
      `http cases must pass ${REQUIRED_SUCCESSES}x in a row within ${args.caseBudgetSeconds} s; ` +
      (args.assertedOnly ? 'only "asserted" keys can fail a case' : 'every expect key is binding (derived ones too; --asserted-only to relax)'),
  );

  if (args.only.length === 0 && plan.indexProblems.length) report.fail('index.json', plan.indexProblems.join('; '));

  const target = await createTarget({ projectRoot: ctx.projectRoot, args, report, tempPrefix: 'sluice-ingress-conformance-' });
  const host = new SluiceHost(target, args, report);
  const alloc = new AddressAllocator(undefined, target.podPrefix);
  let current: GroupRun | undefined;
  ctx.registerCleanup(async () => {
    await current?.pods.close();
    await target.close();
  });

  try {
    for (const pg of plan.groups) {
      if (pg.selected.size === 0) continue;
      const ids = pg.caseIds.filter((id) => pg.selected.has(id));
      if (!pg.data) {
        const why = `invalid case file (the runner cannot evaluate it exactly): ${pg.problems.join('; ')}`;
        if (ids.length) for (const id of ids) report.fail(id, why);
        else report.fail(pg.id, why);
        continue;
      }
      const g = pg.data;
      report.verbose(`GROUP ${g.group} (${ids.length} case(s))`);
      try {
        await host.ensure(g.controller);
      } catch (err) {
        const why = `cannot start sluice for this group's controller settings: ${(err as Error).message}`;
        for (const id of ids) report.fail(id, why);
        await host.stop();
        continue;
      }
      const run = new GroupRun(host, g, args, report, alloc);
      current = run;
      try {
        let setupFailure: string | undefined;
        try {
          setupFailure = await run.setUp();
        } catch (err) {
          setupFailure = `runner error during setup: ${args.verbose ? (err as Error).stack : (err as Error).message}`;
        }
        for (const c of g.cases) {
          if (!pg.selected.has(c.id)) continue;
          const pre = pg.caseProblems.get(c.id);
          if (pre) {
            report.fail(c.id, pre.join('; '));
            continue;
          }
          if (setupFailure) {
            report.fail(c.id, `group setup failed: ${setupFailure}`);
            continue;
          }
          const start = Date.now();
          let result: { failures: string[]; notes: string[] };
          try {
            result = await run.runCase(c);
          } catch (err) {
            result = { failures: [`runner error: ${args.verbose ? (err as Error).stack : (err as Error).message}`], notes: [] };
          }
          report.verbose(`  ${result.failures.length ? 'FAILED' : 'ok'} ${c.id} (${Date.now() - start} ms)`);
          if (result.failures.length) report.fail(c.id, summarise(result.failures));
          else report.pass(c.id);
          for (const n of result.notes) process.stderr.write(`note ${c.id} (not in "asserted", not binding): ${n}\n`);
        }
      } finally {
        await run.tearDown();
        current = undefined;
      }
    }
  } finally {
    await target.close();
    if (target.logFiles.length && (report.failed > 0 || args.keepTemp)) {
      report.note(`Sluice log: ${target.logFiles.join(', ')} (manifests in ${target.store.dir})`);
    } else {
      rmSync(target.tempDir, { recursive: true, force: true });
    }
  }
}
