// The Gateway API suite: loads suite.json and the case files, prepares the
// environment (echo pods, certificates, manifests, Sluice on the --target),
// and runs every test in order as the suite README describes.

import { randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ArgsError, type RunnerArgs } from '../lib/args.ts';
import { keyOf, refOfObject, type KObject } from '../lib/manifest-store.ts';
import { applyPatch, matchesRef, resolveDataValue, setDataKeys } from '../lib/mutations.ts';
import { sleep } from '../lib/poll.ts';
import type { Reporter } from '../lib/report.ts';
import type { SuiteContext } from '../lib/suite-context.ts';
import { createTarget, type SluiceTarget } from '../lib/target.ts';
import {
  configMapValue,
  EchoFleet,
  type EchoPod,
  endpointSlicesForServices,
  fillEndpointSlice,
  gatewayClassObject,
  generateObjects,
  loadSuiteManifest,
  secretPem,
  suiteNamespaces,
  type PlaceholderValues,
} from './environment.ts';
import { SUITE_SCHEMA, validateCaseFile } from './schema.ts';
import { caseWithStaticAddresses, chooseStaticAddresses, injectStaticAddresses, type StaticAddressValues } from './static-addresses.ts';
import { describeCheck, evaluateStatusCheck, pollIntervalFor, StatusIndex, timeoutNameFor, type CheckContext } from './status-checks.ts';
import { runCase, type TrafficEnv } from './traffic.ts';
import { ROUTE_KINDS, type CaseFile, type MutationSpec, type RunnerAction, type StatusCheck, type SuiteFile, type TestCase } from './types.ts';

export type { SuiteContext };

const GATEWAY_CLASS_NAME = 'sluice-conformance';
const STATUS_POLL_MS = 200;
const SYNC_TIMEOUT_MS = 20_000;
/** The suite's case folders, read in this order when no --cases is given. */
export const DEFAULT_CASE_FOLDERS = ['cases', 'cases-new-kinds'];
/**
 * Our own translations of the upstream tests the shared folders lack (project-relative), read after
 * them when no --cases is given. Fallback only: a test the shared folders also define runs from there.
 */
export const PROJECT_CASE_FOLDERS = ['test/conformance/gateway-api/upstream-cases'];
const GROUP_SUITE = '00-suite';
const GROUP_BASE = '10-base';
const GROUP_BASE_SLICES = '11-base-endpointslices';
const GROUP_TEST = '50-test';
const GROUP_TEST_SLICES = '51-test-endpointslices';
/** Kinds whose status the checks read (and whose generation mutations record). */
const STATUS_KINDS = ['GatewayClass', 'Gateway', 'ListenerSet', ...ROUTE_KINDS, 'BackendTLSPolicy'];

export interface PlannedTest {
  file: string;
  name: string;
  /** Claimed features the test needs but Sluice does not claim: skipped, its file never validated. */
  missing: string[];
  /** Set when the file is valid and every feature is claimed. */
  data?: CaseFile;
  problems: string[];
}

/**
 * The tests of every folder, in file-name order per folder. Only `name` and `features` are read
 * before the claim decision, so a case file of a kind this runner cannot evaluate yet is a SKIP
 * naming the unclaimed feature, never a FAIL; the files of claimed tests are validated strictly.
 */
export function loadPlan(casesDirs: string[], only: string[], claimed: readonly string[], fallbackDirs: string[] = []): PlannedTest[] {
  const plan: PlannedTest[] = [];
  for (const dir of casesDirs) {
    if (!existsSync(dir)) throw new ArgsError(`--cases ${dir}: no such folder`);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) plan.push(planTest(join(dir, f), claimed));
  }
  const primary = new Set(plan.map((t) => t.name));
  for (const dir of fallbackDirs.filter((d) => existsSync(d))) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
      const t = planTest(join(dir, f), claimed);
      if (!primary.has(t.name)) plan.push(t);
    }
  }
  const seen = new Map<string, string>();
  for (const t of plan) {
    const first = seen.get(t.name);
    if (first === undefined) seen.set(t.name, t.file);
    else t.problems.push(`test ${t.name} is also defined in ${first}`);
  }
  if (only.length === 0) return plan;
  const unknown = only.filter((n) => !plan.some((p) => p.name === n));
  if (unknown.length) throw new ArgsError(`--only: no test named ${unknown.join(', ')} in ${[...casesDirs, ...fallbackDirs].join(', ')}`);
  return plan.filter((p) => only.includes(p.name));
}

function planTest(file: string, claimed: readonly string[]): PlannedTest {
  const fallbackName = basename(file, '.json');
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return { file, name: fallbackName, missing: [], problems: [`cannot parse ${basename(file)}: ${(err as Error).message}`] };
  }
  const header = readCaseHeader(data);
  const name = header.name ?? fallbackName;
  if (header.problems.length) return { file, name, missing: [], problems: header.problems };
  const missing = missingFeatures(header.features, claimed);
  if (missing.length) return { file, name, missing, problems: [] };
  const problems = validateCaseFile(data);
  return { file, name, missing, data: problems.length ? undefined : (data as CaseFile), problems };
}

/** `name` and `features[].name` of a case file, read without knowing the rest of its format. */
export function readCaseHeader(data: unknown): { name?: string; features: string[]; problems: string[] } {
  const rec = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
  const name = typeof rec.name === 'string' ? rec.name : undefined;
  const features = rec.features;
  const names = Array.isArray(features) ? features.map((f) => (f as { name?: unknown } | null)?.name) : [];
  if (!Array.isArray(features) || names.some((n) => typeof n !== 'string')) {
    return { name, features: [], problems: ['case: features must be a list of {name: string} (the runner decides on it before anything else)'] };
  }
  return { name, features: names as string[], problems: [] };
}

/** The features a test lists that are not claimed, each once. */
export function missingFeatures(features: string[], claimed: readonly string[]): string[] {
  return [...new Set(features.filter((n) => !claimed.includes(n)))];
}

/**
 * Upstream returns from such a test's body before checking anything (and reports a pass) unless
 * every `runWhen.supported` feature is claimed and no `runWhen.notSupported` one is. Returns why
 * the test has nothing to check, or undefined when it runs.
 */
export function runWhenExcuse(tc: Pick<CaseFile, 'runWhen'>, claimed: readonly string[]): string | undefined {
  if (!tc.runWhen) return undefined;
  const unclaimed = tc.runWhen.supported.filter((n) => !claimed.includes(n));
  if (unclaimed.length) return `runs only when ${unclaimed.join(', ')} ${unclaimed.length > 1 ? 'are' : 'is'} claimed`;
  const claimedButExcluded = tc.runWhen.notSupported.filter((n) => claimed.includes(n));
  if (claimedButExcluded.length) return `runs only when ${claimedButExcluded.join(', ')} ${claimedButExcluded.length > 1 ? 'are' : 'is'} not claimed`;
  return undefined;
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

class Environment {
  readonly suite: SuiteFile;
  readonly sharedRoot: string;
  readonly baseManifestPath: string;
  readonly values: PlaceholderValues;
  readonly target: SluiceTarget;
  readonly report: Reporter;
  readonly args: RunnerArgs;
  fleet: EchoFleet | undefined;
  kindsSeen = new Set<string>();
  #suitePristine: KObject[] = [];
  #basePristine: KObject[] = [];
  #baseSlices: KObject[] = [];
  #addressCache = new Map<string, { at: number; addr: string | undefined }>();

  constructor(suite: SuiteFile, sharedRoot: string, args: RunnerArgs, report: Reporter, target: SluiceTarget) {
    this.suite = suite;
    this.sharedRoot = sharedRoot;
    this.baseManifestPath = resolve(sharedRoot, suite.baseManifests);
    this.values = { gatewayClassName: GATEWAY_CLASS_NAME, controllerName: args.controllerName };
    this.target = target;
    this.report = report;
    this.args = args;
  }

  get store() {
    return this.target.store;
  }

  async start(): Promise<void> {
    await this.target.prepare();
    const base = loadSuiteManifest(this.baseManifestPath, this.values);
    const namespaces = suiteNamespaces(this.suite, base);
    const generated = await generateObjects(this.suite.generatedObjects ?? []);
    const prefix = this.target.podPrefix;
    this.fleet = await EchoFleet.start({
      instances: this.suite.echoBackends.instances,
      deployments: base.filter((o) => o.kind === 'Deployment'),
      objects: [...generated.objects, ...base],
      ...(prefix ? { subnet: `${prefix}.${randomInt(1, 255)}` } : {}),
    });
    this.report.verbose(`echo pods: ${this.fleet.pods.map((p) => `${p.namespace}/${p.name}@${p.ip}`).join(', ')}`);
    this.#suitePristine = [...namespaces, gatewayClassObject(GATEWAY_CLASS_NAME, this.args.controllerName), ...generated.objects];
    this.#basePristine = base;
    this.#baseSlices = endpointSlicesForServices(base, this.fleet.pods);
    this.store.set(GROUP_SUITE, structuredClone(this.#suitePristine));
    this.store.set(GROUP_BASE, structuredClone(this.#basePristine));
    this.store.set(GROUP_BASE_SLICES, structuredClone(this.#baseSlices));
    await this.store.flush();
    const refused = this.target.takeApplyProblems();
    if (refused.length) throw new Error(`suite objects: ${refused.join('; ')}`);

    await this.target.start();
    const gcCheck: StatusCheck = { check: 'gatewayClassAccepted', gatewayClass: GATEWAY_CLASS_NAME, status: 'True' };
    const failure = await this.runStatusChecks([gcCheck], 'runner GatewayClass: ', []);
    if (failure) throw new Error(failure);
    await this.listed(); // learns the kinds Sluice reads, which sync() waits for
  }

  async close(): Promise<void> {
    await this.target.close();
    await this.fleet?.close();
  }

  // -- status --------------------------------------------------------------

  /** What Sluice has read (its /api/status). */
  async listed(): Promise<any[]> {
    const items = await this.target.listed();
    for (const i of items) if (typeof i?.kind === 'string') this.kindsSeen.add(i.kind);
    return items;
  }

  /** The objects the checks judge: Sluice's /api/status (standalone) or the real objects (kubernetes). */
  async statusIndex(kinds: string[] = STATUS_KINDS): Promise<StatusIndex> {
    return new StatusIndex(await this.target.statusObjects(kinds));
  }

  timeoutMs(check: StatusCheck): number | string {
    const name = timeoutNameFor(check);
    const secs = this.suite.convergence.statusTimeoutsSeconds[name];
    if (typeof secs !== 'number') return `suite.json has no statusTimeoutsSeconds.${name}`;
    const cap = this.args.maxStatusTimeoutSeconds;
    return (cap !== undefined ? Math.min(cap, secs) : secs) * 1000;
  }

  /** Runs checks in order, each polled until it holds; returns the first failure. */
  async runStatusChecks(checks: StatusCheck[], label: string, generationsBefore: [string, number][]): Promise<string | undefined> {
    for (const [i, check] of checks.entries()) {
      const timeout = this.timeoutMs(check);
      if (typeof timeout === 'string') return `${label}statusChecks[${i}] ${describeCheck(check)}: ${timeout}`;
      const ctx: CheckContext = {
        controllerName: this.args.controllerName,
        index: new StatusIndex([]),
        generationsBefore: new Map(generationsBefore),
        declaredGateways: this.store
          .all()
          .filter((o) => o.kind === 'Gateway')
          .map((o) => ({ ref: refOfObject(o), annotations: o.metadata.annotations ?? {} })),
        state: {},
      };
      const start = Date.now();
      let problems: string[] = [];
      for (;;) {
        if (this.target.exitInfo) return `${label}statusChecks[${i}] ${describeCheck(check)}: sluice ${this.target.exitInfo}`;
        try {
          ctx.index = await this.statusIndex();
          problems = evaluateStatusCheck(check, ctx);
        } catch (err) {
          problems = [`cannot read the status: ${(err as Error).message}`];
        }
        if (problems.length === 0) break;
        const interval = pollIntervalFor(check, STATUS_POLL_MS);
        if (interval === 0) return `${label}statusChecks[${i}] ${describeCheck(check)}: ${problems.join('; ')} (evaluated once, not polled)`;
        if (Date.now() - start >= timeout) {
          return `${label}statusChecks[${i}] ${describeCheck(check)}: ${problems.join('; ')} (not true within ${Math.round(timeout / 1000)} s)`;
        }
        await sleep(interval);
      }
      this.report.verbose(`  ok ${label}statusChecks[${i}] ${describeCheck(check)} (${Date.now() - start} ms)`);
    }
    return undefined;
  }

  /** Waits until Sluice reports `present` (same spec) and no longer reports `absent`. */
  async sync(present: KObject[], absent: KObject[], what: string): Promise<void> {
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    let pending: string[] = [];
    while (Date.now() < deadline) {
      if (this.target.exitInfo) return;
      let items: any[];
      try {
        items = await this.listed();
      } catch {
        await sleep(STATUS_POLL_MS);
        continue;
      }
      pending = this.target.pending(items, present, absent, (o) => this.kindsSeen.has(o.kind));
      if (pending.length === 0) return;
      await sleep(STATUS_POLL_MS);
    }
    this.report.verbose(`  warning: Sluice did not pick up ${what} within ${SYNC_TIMEOUT_MS / 1000} s: ${pending.slice(0, 5).join(', ')}`);
  }

  // -- manifests -------------------------------------------------------------

  baseSlicesFor(baseObjects: KObject[]): KObject[] {
    const services = new Set(baseObjects.filter((o) => o.kind === 'Service').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
    return structuredClone(
      this.#baseSlices.filter((s) => services.has(`${s.metadata.namespace}/${s.metadata.labels?.['kubernetes.io/service-name']}`)),
    );
  }

  restoreBase(): void {
    this.store.set(GROUP_SUITE, structuredClone(this.#suitePristine));
    const base = structuredClone(this.#basePristine);
    this.store.set(GROUP_BASE, base);
    this.store.set(GROUP_BASE_SLICES, this.baseSlicesFor(base));
  }

  pristineObjects(): KObject[] {
    return [...this.#suitePristine, ...this.#basePristine, ...this.#baseSlices];
  }

  // -- traffic helpers -------------------------------------------------------

  async gatewayAddress(ref: string): Promise<string | undefined> {
    const cached = this.#addressCache.get(ref);
    if (cached && cached.addr && Date.now() - cached.at < 2000) return cached.addr;
    let addr: string | undefined;
    try {
      const gw = (await this.statusIndex(['Gateway'])).get('Gateway', ref);
      addr = (gw?.status?.addresses ?? []).find((a: any) => typeof a?.value === 'string' && a.value !== '')?.value;
    } catch {
      addr = undefined;
    }
    this.#addressCache.set(ref, { at: Date.now(), addr });
    return addr;
  }

  async gatewayAddresses(): Promise<Set<string>> {
    const out = new Set<string>();
    try {
      for (const gw of (await this.statusIndex(['Gateway'])).list('Gateway')) {
        for (const a of gw.status?.addresses ?? []) if (typeof a?.value === 'string') out.add(a.value);
      }
    } catch {
      // none known
    }
    return out;
  }

  servicePods(namespace: string, service: string) {
    const objects = this.store.all();
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === service && (o.metadata.namespace ?? 'default') === namespace);
    const selector: Record<string, string> | undefined = svc?.spec?.selector;
    if (selector && Object.keys(selector).length) return this.fleet!.select(namespace, selector).flatMap((p) => (p.server ? [p.server] : []));
    const ips = new Set<string>();
    for (const s of objects) {
      if (s.kind !== 'EndpointSlice' || s.metadata.namespace !== namespace || s.metadata.labels?.['kubernetes.io/service-name'] !== service) continue;
      for (const ep of (s.endpoints ?? []) as any[]) for (const a of ep?.addresses ?? []) ips.add(a);
    }
    return this.fleet!.pods.filter((p) => ips.has(p.ip)).flatMap((p) => (p.server ? [p.server] : []));
  }
}

// ---------------------------------------------------------------------------
// One test
// ---------------------------------------------------------------------------

class TestRun {
  readonly env: Environment;
  /** The case file; with staticAddressInjection, the chosen addresses substituted. */
  tc: CaseFile;
  readonly failures: string[] = [];
  #testObjects: KObject[] = [];
  /** Pods of the test's own Deployments, stopped with its objects. */
  #pods: EchoPod[] = [];
  #staticAddresses: StaticAddressValues | undefined;

  constructor(env: Environment, tc: CaseFile) {
    this.env = env;
    this.tc = tc;
  }

  get report(): Reporter {
    return this.env.report;
  }

  trafficEnv(): TrafficEnv {
    const env = this.env;
    const conv = env.suite.convergence;
    return {
      testName: this.tc.name,
      portOffset: env.args.portOffset,
      requestTimeoutMs: conv.requestTimeoutSeconds * 1000,
      convergence: {
        requiredSuccesses: conv.requiredConsecutiveSuccesses,
        pollIntervalMs: conv.defaultPollIntervalMs,
        budgetMs: conv.maxTimeToConsistencySeconds * 1000,
      },
      gatewayAddress: (ref) => env.gatewayAddress(ref),
      gatewayAddresses: () => env.gatewayAddresses(),
      secret: (ref) => secretPem(env.store.all(), ref),
      configMapValue: (ref, key) => configMapValue(env.store.all(), ref, key),
      servicePods: (ns, svc) => env.servicePods(ns, svc),
      verbose: (line) => this.report.verbose(line),
    };
  }

  /** Returns the failures (empty = PASS). */
  async run(): Promise<string[]> {
    try {
      if (this.tc.staticAddressInjection) {
        this.#staticAddresses = await chooseStaticAddresses(this.env.target.bindAddress);
        this.report.verbose(`  static addresses: usable ${this.#staticAddresses.usable}, unusable ${this.#staticAddresses.unusable}`);
        this.tc = caseWithStaticAddresses(this.tc, this.#staticAddresses);
      }
      const refused = await this.apply();
      if (refused.length) {
        this.failures.push(...refused);
        return this.failures;
      }
      if (await this.statusChecks(this.tc.statusChecks ?? [], '', [])) return this.failures;
      for (const [i, action] of (this.tc.runnerActionsBeforeCases ?? []).entries()) {
        const problem = await this.runnerAction(action);
        if (problem) {
          this.failures.push(`runnerActionsBeforeCases[${i}] ${action.action}: ${problem}`);
          return this.failures;
        }
      }
      await this.cases(this.tc.cases ?? [], '');
      for (const [i, f] of (this.tc.followUp ?? []).entries()) {
        const label = `followUp[${i}] (${f.description}) `;
        const before = await this.mutate(f.mutations ?? [], label);
        if (before === undefined) return this.failures;
        if (await this.statusChecks(f.statusChecks ?? [], label, before)) return this.failures;
        await this.cases(f.cases ?? [], label);
      }
      return this.failures;
    } catch (err) {
      const e = err as Error;
      this.failures.push(`runner error: ${this.report.verboseEnabled ? e.stack ?? e : e.message ?? e}`);
      return this.failures;
    } finally {
      await this.cleanup();
    }
  }

  /** Applies the test's manifests; returns the objects the target refused (the API server's 422s). */
  async apply(): Promise<string[]> {
    const env = this.env;
    const loaded: KObject[] = [];
    for (const m of this.tc.manifests) {
      const abs = resolve(env.sharedRoot, m);
      if (abs === env.baseManifestPath) continue;
      loaded.push(...loadSuiteManifest(abs, env.values));
    }
    // Later documents win, like `kubectl apply` of the same object twice.
    const byKey = new Map<string, KObject>();
    for (const o of loaded) byKey.set(keyOf(o), o);
    this.#testObjects = [...byKey.values()];
    const inj = this.tc.staticAddressInjection;
    if (inj && this.#staticAddresses) {
      const gw = this.#testObjects.find((o) => o.kind === 'Gateway' && refOfObject(o) === inj.gateway);
      if (!gw) return [`staticAddressInjection: Gateway ${inj.gateway} is not in the test's manifests`];
      const problems = injectStaticAddresses(gw, inj, this.#staticAddresses);
      if (problems.length) return problems;
    }
    const deployments = this.#testObjects.filter((o) => o.kind === 'Deployment');
    if (deployments.length) {
      try {
        this.#pods = await env.fleet!.startDeployments(deployments, [...env.store.all(), ...this.#testObjects]);
      } catch (err) {
        return [`the test's Deployments: ${(err as Error).message}`];
      }
      this.report.verbose(`  test pods: ${this.#pods.map((p) => `${p.namespace}/${p.name}@${p.ip} (${p.mode})`).join(', ')}`);
    }
    const overridden = new Set(byKey.keys());
    const suite = env.store.get(GROUP_SUITE).filter((o) => !overridden.has(keyOf(o)));
    const base = env.store.get(GROUP_BASE).filter((o) => !overridden.has(keyOf(o)));
    env.store.set(GROUP_SUITE, suite);
    env.store.set(GROUP_BASE, base);
    env.store.set(GROUP_BASE_SLICES, env.baseSlicesFor(base));
    env.store.set(GROUP_TEST, this.#testObjects);
    env.store.set(GROUP_TEST_SLICES, endpointSlicesForServices(this.#testObjects, env.fleet!.pods));
    await env.store.flush();
    const refused = env.target.takeApplyProblems();
    this.report.verbose(`  applied ${this.#testObjects.length} test object(s)${refused.length ? `, ${refused.length} refused` : ''}`);
    await env.sync([...this.#testObjects, ...env.store.get(GROUP_TEST_SLICES)], [], `the manifests of ${this.tc.name}`);
    return refused;
  }

  async cleanup(): Promise<void> {
    const env = this.env;
    const removed = [...env.store.get(GROUP_TEST), ...env.store.get(GROUP_TEST_SLICES)];
    env.store.remove(GROUP_TEST);
    env.store.remove(GROUP_TEST_SLICES);
    env.restoreBase();
    await env.fleet?.stopPods(this.#pods);
    this.#pods = [];
    await env.store.flush();
    for (const p of env.target.takeApplyProblems()) this.report.verbose(`  warning: cleanup: ${p}`);
    const pristineKeys = new Set(env.pristineObjects().map(keyOf));
    if (env.target.running) {
      await env.sync(
        env.store.all().filter((o) => o.kind !== 'EndpointSlice'),
        removed.filter((o) => !pristineKeys.has(keyOf(o))),
        `the removal of ${this.tc.name}`,
      );
    }
  }

  /** Returns true when a check failed (recorded). */
  async statusChecks(checks: StatusCheck[], label: string, before: [string, number][]): Promise<boolean> {
    const failure = await this.env.runStatusChecks(checks, label, before);
    if (failure) this.failures.push(failure);
    return Boolean(failure);
  }

  async cases(cases: TestCase[], label: string): Promise<void> {
    const traffic = this.trafficEnv();
    for (const c of cases) {
      const exited = this.env.target.exitInfo;
      if (exited) {
        this.failures.push(`${label}case "${c.name}": not run, sluice ${exited}`);
        continue;
      }
      const start = Date.now();
      const problems = await runCase(c, traffic);
      if (problems.length) this.failures.push(`${label}case "${c.name}": ${problems.join('; ')}`);
      this.report.verbose(`  ${problems.length ? 'FAILED' : 'ok'} ${label}case "${c.name}" (${Date.now() - start} ms)`);
    }
  }

  async runnerAction(action: RunnerAction): Promise<string | undefined> {
    if (action.action !== 'fillEndpointSlices') return `unknown runner action ${JSON.stringify(action.action)}`;
    const env = this.env;
    const deployments = [...new Set(env.suite.echoBackends.instances.map((i) => i.deployment))];
    const mentioned = deployments.filter((d) => new RegExp(`(^|[^a-z0-9-])${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^a-z0-9-]|$)`).test(action.from));
    if (mentioned.length !== 1) return `cannot tell which echo Deployment fills the slices from ${JSON.stringify(action.from)}`;
    const pods = env.fleet!.byDeployment(undefined, mentioned[0]);
    const touched: KObject[] = [];
    for (const ref of action.endpointSlices) {
      const [namespace, name] = ref.split('/', 2);
      const found = env.store.find((o) => o.kind === 'EndpointSlice' && o.metadata.name === name && (o.metadata.namespace ?? 'default') === namespace);
      if (!found) return `EndpointSlice ${ref} is not in the manifests`;
      fillEndpointSlice(found.object, pods);
      env.store.touch(found.group);
      touched.push(found.object);
    }
    await env.store.flush();
    const refused = env.target.takeApplyProblems();
    if (refused.length) return refused.join('; ');
    await env.sync(touched, [], 'the filled EndpointSlices');
    return undefined;
  }

  /** Applies follow-up mutations; returns generations before them, or undefined on failure. */
  async mutate(mutations: MutationSpec[], label: string): Promise<[string, number][] | undefined> {
    const env = this.env;
    let index: StatusIndex;
    try {
      index = await env.statusIndex([...new Set([...STATUS_KINDS, ...mutations.flatMap((m) => (m.op === 'create' ? [] : [m.kind]))])]);
    } catch (err) {
      this.failures.push(`${label}cannot read the status before the mutations: ${(err as Error).message}`);
      return undefined;
    }
    const before: [string, number][] = [];
    const present: KObject[] = [];
    const absent: KObject[] = [];
    // copyFrom reads the object's current value (earlier mutations included).
    const lookup = (kind: string, ref: string) => env.store.find((o) => o.kind === kind && refOfObject(o) === ref)?.object as Record<string, unknown> | undefined;
    for (const [i, m] of mutations.entries()) {
      if (m.op === 'create') {
        const created = structuredClone(m.object) as unknown as KObject;
        const what = `${created.kind} ${refOfObject(created)}`;
        if (env.store.find((o) => keyOf(o) === keyOf(created))) {
          this.failures.push(`${label}mutations[${i}] create ${what}: it already exists`);
          return undefined;
        }
        try {
          if ((created.kind === 'ConfigMap' || created.kind === 'Secret') && created.data) {
            const values = Object.fromEntries(Object.entries(created.data as Record<string, unknown>).map(([k, v]) => [k, resolveDataValue(v, lookup)]));
            created.data = {};
            setDataKeys(created as unknown as Record<string, unknown>, values);
          }
        } catch (err) {
          this.failures.push(`${label}mutations[${i}] create ${what}: ${(err as Error).message}`);
          return undefined;
        }
        // Upstream waits so that the creationTimestamp (second precision) is later than the rest.
        if (m.waitBeforeSeconds) await sleep(m.waitBeforeSeconds * 1000);
        env.store.get(GROUP_TEST).push(created);
        env.store.touch(GROUP_TEST);
        present.push(created);
        continue;
      }
      const found = env.store.find((o) => matchesRef(o, m));
      const target = `${m.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`;
      if (!found) {
        this.failures.push(`${label}mutations[${i}] ${m.op}: ${target} is not in the manifests`);
        return undefined;
      }
      const ref = refOfObject(found.object);
      const gen = index.get(m.kind, ref)?.metadata.generation;
      if (typeof gen === 'number') before.push([`${m.kind}/${ref}`, gen]);
      const list = env.store.get(found.group);
      if (m.op === 'delete') {
        list.splice(found.index, 1);
        absent.push(found.object);
      } else if (m.op === 'patch') {
        try {
          const setData = m.setData ? Object.fromEntries(Object.entries(m.setData).map(([k, v]) => [k, resolveDataValue(v, lookup)])) : undefined;
          list[found.index] = applyPatch(found.object as unknown as Record<string, unknown>, { ...m, ...(setData ? { setData } : {}) }) as unknown as KObject;
        } catch (err) {
          this.failures.push(`${label}mutations[${i}] patch ${target}: ${(err as Error).message}`);
          return undefined;
        }
        present.push(list[found.index]);
      } else {
        this.failures.push(`${label}mutations[${i}]: unknown op ${JSON.stringify((m as { op?: unknown }).op)}`);
        return undefined;
      }
      env.store.touch(found.group);
    }
    await env.store.flush();
    const refused = env.target.takeApplyProblems();
    if (refused.length) {
      this.failures.push(...refused.map((r) => `${label}mutations: ${r}`));
      return undefined;
    }
    await env.sync(present, absent, `${label}mutations`);
    return before;
  }
}

// ---------------------------------------------------------------------------
// Entry
// ---------------------------------------------------------------------------

export async function runSuite(ctx: SuiteContext): Promise<void> {
  const { args, report } = ctx;
  const sharedRoot = resolve(ctx.projectRoot, '..');
  const defaultDir = join(sharedRoot, 'shared', 'conformance', 'gateway-api');
  // Both folders by default: the new route kinds live in a folder of their own (see the suite README).
  const casesDirs = args.casesDir ? [resolve(args.casesDir)] : DEFAULT_CASE_FOLDERS.map((d) => join(defaultDir, d));
  const fallbackDirs = args.casesDir ? [] : PROJECT_CASE_FOLDERS.map((d) => join(ctx.projectRoot, d));
  const siblingSuite = join(casesDirs[0], '..', 'suite.json');
  const suitePath = args.suiteFile ? resolve(args.suiteFile) : existsSync(siblingSuite) ? siblingSuite : join(defaultDir, 'suite.json');
  let suite: SuiteFile;
  try {
    suite = JSON.parse(readFileSync(suitePath, 'utf8'));
  } catch (err) {
    throw new ArgsError(`cannot read ${suitePath}: ${(err as Error).message}`);
  }
  if (suite?.schema !== SUITE_SCHEMA) throw new ArgsError(`${suitePath}: schema ${JSON.stringify(suite?.schema)}, expected ${SUITE_SCHEMA}`);

  const plan = loadPlan(casesDirs, args.only, ctx.claimedFeatures, fallbackDirs);
  report.verbose(`suite ${suitePath}, ${plan.length} test(s) from ${[...casesDirs, ...fallbackDirs].join(', ')}`);

  let env: Environment | undefined;
  /** The environment whose temp dir holds the manifests and the Sluice log (also after a failed setup). */
  let envRef: Environment | undefined;
  let envError: string | undefined;
  const ensureEnv = async (): Promise<Environment | undefined> => {
    if (env || envError) return env;
    const target = await createTarget({ projectRoot: ctx.projectRoot, args, report, tempPrefix: 'sluice-conformance-' });
    const e = new Environment(suite, sharedRoot, args, report, target);
    envRef = e;
    ctx.registerCleanup(() => e.close());
    try {
      await e.start();
      env = e;
    } catch (err) {
      envError = `environment setup failed: ${(err as Error).message} (logs: ${target.logFiles.join(', ') || `none, in ${target.tempDir}`})`;
      await e.close();
      env = undefined;
    }
    return env;
  };

  for (const t of plan) {
    if (t.missing.length && t.problems.length === 0) {
      report.skip(t.name, t.missing);
      continue;
    }
    if (!t.data || t.problems.length) {
      report.fail(t.name, `invalid case file (the runner cannot evaluate it exactly): ${t.problems.join('; ')}`);
      continue;
    }
    const excuse = runWhenExcuse(t.data, ctx.claimedFeatures);
    if (excuse) {
      report.pass(t.name, `nothing to check: ${excuse} (upstream passes it the same way)`);
      continue;
    }
    const e = await ensureEnv();
    if (!e) {
      report.fail(t.name, envError ?? 'environment setup failed');
      continue;
    }
    if (e.target.exitInfo) {
      report.fail(t.name, `sluice ${e.target.exitInfo}`);
      continue;
    }
    report.verbose(`RUN ${t.name}`);
    const failures = await new TestRun(e, t.data).run();
    if (failures.length === 0) report.pass(t.name);
    else report.fail(t.name, failures.length > 4 ? `${failures.slice(0, 4).join(' || ')} || (+${failures.length - 4} more)` : failures.join(' || '));
  }

  if (env) await env.close();
  if (envRef) {
    if (report.failed > 0 || args.keepTemp) {
      report.note(`Sluice log: ${envRef.target.logFiles.join(', ')} (manifests in ${envRef.store.dir})`);
    } else {
      rmSync(envRef.target.tempDir, { recursive: true, force: true });
    }
  }
}
