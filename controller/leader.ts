// Leader election with a coordination.k8s.io/v1 Lease, with the semantics of client-go's
// leaderelection package:
//
// - a replica acquires the Lease when nobody holds it, or when the holder's record has not changed
//   for leaseDurationSeconds as observed on this replica's own clock (clocks of replicas are never
//   compared: only "when did I last see the record change");
// - the leader renews every retryPeriodSeconds; when it could not renew for renewDeadlineSeconds it
//   steps down (onStoppedLeading) before anyone else may take over (leaseDuration > renewDeadline);
// - every write is a PUT carrying the resourceVersion that was read: 409 means someone else won;
// - stop() of the leader releases the Lease (holder cleared, duration 1 s) so another replica takes
//   over at its next attempt instead of waiting for expiry.
//
// Unlike client-go's elector (which a process runs once), this one keeps competing after it lost
// leadership, so a leader cut off from the API server leads again (or follows) when it returns.
import { ApiException, CoordinationV1Api, V1MicroTime, type ConfigurationOptions, type KubeConfig, type ObservableMiddleware, type V1Lease } from '@kubernetes/client-node';
import { describeApiError as describe, requestOptions } from './sources/kube-request.ts';
import type { Logger } from 'pino';

export const LEADER_ADDRESS_ANNOTATION = 'sluice.dev/leader-address';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  logger: Logger;
  leaseDurationSeconds?: number; // default 10
  renewDeadlineSeconds?: number; // default 7
  retryPeriodSeconds?: number; // default 2
  /** Published on the Lease as annotation sluice.dev/leader-address, so non-leaders can point dataplanes at the leader. */
  address?: string;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

/** client-go's JitterFactor: non-leaders retry after retryPeriod × [1, 1.2). */
const JITTER = 0.2;

interface Observed {
  /** The Lease as last read or written. */
  lease: V1Lease;
  /** Identity of the record (holder, times, duration, transitions) to tell when it changed. */
  record: string;
  /** performance.now() when this replica first saw that record. */
  at: number;
}

export class LeaderElector {
  private readonly options: LeaderElectorOptions;
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: Observed | null = null;
  private leading = false;
  /** The last successful write made us holder (also true in the moment between acquiring and leading). */
  private holding = false;
  /** performance.now() at the start of the last successful acquire or renew. */
  private lastRenew = 0;
  /** performance.now() when the lease another replica holds expires unless we see it renewed. */
  private heldUntil = 0;
  private started = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private lastError = '';

  constructor(options: LeaderElectorOptions) {
    this.options = options;
    this.leaseDurationMs = (options.leaseDurationSeconds ?? 10) * 1000;
    this.renewDeadlineMs = (options.renewDeadlineSeconds ?? 7) * 1000;
    this.retryPeriodMs = (options.retryPeriodSeconds ?? 2) * 1000;
    // The same checks as client-go: a leader must give up before anyone may take over.
    if (this.leaseDurationMs <= this.renewDeadlineMs) throw new Error('leaseDurationSeconds must be greater than renewDeadlineSeconds');
    if (this.renewDeadlineMs <= this.retryPeriodMs * (1 + JITTER)) throw new Error('renewDeadlineSeconds must be greater than retryPeriodSeconds × 1.2');
    if (this.retryPeriodMs <= 0) throw new Error('retryPeriodSeconds must be positive');
    // The Lease stores whole seconds.
    if (!Number.isInteger(this.leaseDurationMs / 1000)) throw new Error('leaseDurationSeconds must be a whole number');
    if (!options.identity) throw new Error('leader election needs an identity');
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.loop = this.run().catch((err) => this.options.logger.error({ err }, 'leader election loop failed'));
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Address the current leader published (from the Lease), or null. */
  leaderAddress(): string | null {
    if (this.leading) return this.options.address ?? null;
    const lease = this.observed?.lease;
    if (!lease?.spec?.holderIdentity) return null;
    return lease.metadata?.annotations?.[LEADER_ADDRESS_ANNOTATION] ?? null;
  }

  /** Identity of the holder of the Lease as last observed, or null. */
  leaderIdentity(): string | null {
    return this.observed?.lease.spec?.holderIdentity || null;
  }

  /** Stops; when leading, releases the Lease (holderIdentity cleared / duration 1s) so another replica takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.loop;
    if (this.leading) this.stepDown('stopping');
    if (this.holding) await this.release();
  }

  // ---- the loop -----------------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.leading && performance.now() - this.lastRenew >= this.renewDeadlineMs) this.stepDown(`could not renew the lease for ${this.renewDeadlineMs / 1000} s`);
      const attemptStart = performance.now();
      const outcome = await this.tryAcquireOrRenew(this.attemptTimeoutMs(attemptStart)).catch((err: unknown) => {
        this.options.logger.error({ err }, 'leader election attempt failed unexpectedly');
        return 'failed' as const;
      });
      if (this.stopped) break;
      if (outcome === 'ok') {
        this.lastRenew = attemptStart;
        if (!this.leading) {
          this.leading = true;
          this.options.logger.info({ lease: this.leaseName(), identity: this.options.identity }, 'acquired the lease: leading');
          this.callback('onStartedLeading');
        }
      } else if (this.leading) {
        if (outcome === 'held') this.stepDown(`the lease is held by ${this.leaderIdentity()}`);
        else if (performance.now() - this.lastRenew >= this.renewDeadlineMs) this.stepDown(`could not renew the lease for ${this.renewDeadlineMs / 1000} s`);
      }
      let wait = this.leading ? this.retryPeriodMs : this.retryPeriodMs * (1 + Math.random() * JITTER);
      // A leader that keeps failing steps down at its renew deadline, not up to a retry period later.
      if (this.leading) wait = Math.min(wait, Math.max(0, this.lastRenew + this.renewDeadlineMs - performance.now()));
      // A follower tries again the moment the holder's lease would expire, not up to a retry period
      // later: a dead leader is replaced within leaseDuration + one retry period (the lag of seeing
      // its last renewal), instead of leaseDuration + two.
      if (outcome === 'held') wait = Math.min(wait, Math.max(0, this.heldUntil - performance.now()) + 10);
      await this.sleep(wait);
    }
  }

  /** A leader's attempt must end by its renew deadline; a follower's within the renew deadline too. */
  private attemptTimeoutMs(now: number): number {
    if (!this.leading) return this.renewDeadlineMs;
    return Math.max(1, this.lastRenew + this.renewDeadlineMs - now);
  }

  private stepDown(why: string): void {
    this.leading = false;
    this.options.logger.warn({ lease: this.leaseName(), identity: this.options.identity, why }, `stopped leading: ${why}`);
    this.callback('onStoppedLeading');
  }

  private callback(name: 'onStartedLeading' | 'onStoppedLeading'): void {
    try {
      this.options[name]();
    } catch (err) {
      this.options.logger.error({ err }, `${name} threw`);
    }
  }

  /** 'ok' = we hold the lease now; 'held' = someone else holds a valid lease; 'failed' = could not tell. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<'ok' | 'held' | 'failed'> {
    const { namespace, name, identity } = this.options;
    const options = this.requestOptions(timeoutMs);
    try {
      let lease: V1Lease;
      try {
        lease = await this.api.readNamespacedLease({ name, namespace }, options);
      } catch (err) {
        if (!(err instanceof ApiException && err.code === 404)) throw err;
        const now = new V1MicroTime();
        const created = await this.api.createNamespacedLease(
          {
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace, ...this.annotations(undefined) },
              spec: { holderIdentity: identity, leaseDurationSeconds: this.leaseDurationMs / 1000, acquireTime: now, renewTime: now, leaseTransitions: 0 },
            },
          },
          options,
        );
        this.observe(created);
        this.holding = true;
        this.lastError = '';
        return 'ok';
      }
      this.observe(lease);
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const mine = holder === identity;
      const durationMs = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
      if (holder && !mine && this.observed!.at + durationMs > performance.now()) {
        this.heldUntil = this.observed!.at + durationMs;
        this.holding = false;
        this.lastError = '';
        return 'held';
      }
      const now = new V1MicroTime();
      const updated = await this.api.replaceNamespacedLease(
        {
          name,
          namespace,
          body: {
            ...lease,
            metadata: { ...lease.metadata, name, namespace, ...this.annotations(lease.metadata?.annotations) },
            spec: {
              ...spec,
              holderIdentity: identity,
              leaseDurationSeconds: this.leaseDurationMs / 1000,
              renewTime: now,
              acquireTime: mine && spec.acquireTime ? spec.acquireTime : now,
              leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
            },
          },
        },
        options,
      );
      this.observe(updated);
      this.holding = true;
      this.lastError = '';
      return 'ok';
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        // Someone else wrote the lease between our read and our write.
        this.options.logger.debug({ lease: this.leaseName() }, 'lost a race for the lease (409)');
        return 'failed';
      }
      const message = describe(err);
      // Say it once per kind of failure, not every retry period.
      if (message !== this.lastError && !this.stopped) {
        this.options.logger.warn({ lease: this.leaseName(), err: message }, `leader election: cannot reach the lease: ${message}`);
      }
      this.lastError = message;
      return 'failed';
    }
  }

  /** Releases a lease we hold: holder cleared, duration 1 s, so others acquire at their next attempt. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const lease = await this.api.readNamespacedLease({ name, namespace }, this.requestOptions(this.renewDeadlineMs, false));
        if (lease.spec?.holderIdentity !== identity) break; // not ours any more
        const now = new V1MicroTime();
        const annotations = { ...(lease.metadata?.annotations ?? {}) };
        delete annotations[LEADER_ADDRESS_ANNOTATION];
        const released = await this.api.replaceNamespacedLease(
          {
            name,
            namespace,
            body: {
              ...lease,
              metadata: { ...lease.metadata, name, namespace, annotations },
              spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
            },
          },
          this.requestOptions(this.renewDeadlineMs, false),
        );
        this.observe(released);
        this.options.logger.info({ lease: this.leaseName() }, 'released the lease');
        break;
      } catch (err) {
        if (err instanceof ApiException && err.code === 409) continue;
        this.options.logger.warn({ lease: this.leaseName(), err: describe(err) }, `could not release the lease; it expires in ${this.leaseDurationMs / 1000} s`);
        break;
      }
    }
    this.holding = false;
  }

  private observe(lease: V1Lease): void {
    const s = lease.spec ?? {};
    const record = JSON.stringify([s.holderIdentity ?? '', s.leaseDurationSeconds, time(s.acquireTime), time(s.renewTime), s.leaseTransitions ?? 0]);
    if (this.observed?.record !== record) this.observed = { lease, record, at: performance.now() };
    else this.observed.lease = lease;
  }

  private annotations(existing: Record<string, string> | undefined): { annotations?: Record<string, string> } {
    const annotations = { ...(existing ?? {}) };
    if (this.options.address) annotations[LEADER_ADDRESS_ANNOTATION] = this.options.address;
    else delete annotations[LEADER_ADDRESS_ANNOTATION];
    return Object.keys(annotations).length > 0 ? { annotations } : {};
  }

  private leaseName(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** A timeout per request; attempts (not the release) are also cut short by stop(). */
  private requestOptions(timeoutMs: number, abortOnStop = true): ConfigurationOptions<ObservableMiddleware> {
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    return requestOptions({ signal: abortOnStop ? AbortSignal.any([this.abort.signal, timeout]) : timeout });
  }
}

function time(value: unknown): string {
  return value instanceof Date ? value.toISOString() : String(value ?? '');
}

