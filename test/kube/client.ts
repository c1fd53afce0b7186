// A deliberately small Kubernetes API client for tests against the real kube-apiserver started by
// cluster.ts: JSON over HTTPS with a bearer token (or client certificate), resource paths found
// through discovery. It is test tooling, not the controller's client (that is @kubernetes/client-node,
// per the Kubernetes mode issue).
import { Agent, request } from 'undici';

export interface KubeCredentials {
  /** Bearer token (static token, ServiceAccount token). */
  token?: string;
  /** Client certificate + key (PEM), as an alternative to a token. */
  certPem?: string;
  keyPem?: string;
}

export interface KubeResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** A non-2xx answer; `body` is usually a `Status` object (`reason`, `message`, `details`). */
export class KubeApiError extends Error {
  readonly status: number;
  readonly body: any;
  readonly method: string;
  readonly path: string;
  constructor(method: string, path: string, status: number, body: any) {
    const message = typeof body === 'object' && body?.message ? body.message : String(body).slice(0, 500);
    super(`${method} ${path}: ${status} ${message}`);
    this.name = 'KubeApiError';
    this.status = status;
    this.body = body;
    this.method = method;
    this.path = path;
  }
  /** The `Status.reason` (Conflict, NotFound, AlreadyExists, Invalid, Forbidden, ...). */
  get reason(): string | undefined {
    return typeof this.body === 'object' ? this.body?.reason : undefined;
  }
}

export interface RequestOptions {
  body?: unknown;
  /** Defaults to application/json when there is a body. */
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name?: string;
  namespace?: string;
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

export interface KubeClientOptions extends KubeCredentials {
  /** https://127.0.0.1:port */
  server: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caPem: string;
  /** Impersonation (the caller must be allowed to impersonate, e.g. system:masters). */
  impersonate?: { user: string; groups?: string[] };
}

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; [k: string]: any };
  [k: string]: any;
};

export class KubeClient {
  readonly server: string;
  private readonly opts: KubeClientOptions;
  private readonly dispatcher: Agent;
  private readonly discovery = new Map<string, Promise<ApiResource[]>>();

  constructor(opts: KubeClientOptions) {
    this.opts = opts;
    this.server = opts.server.replace(/\/$/, '');
    this.dispatcher = new Agent({
      connect: { ca: opts.caPem, cert: opts.certPem, key: opts.keyPem },
      // Watches are long-lived; let callers decide when to give up.
      bodyTimeout: 0,
    });
  }

  /** The same server with other credentials. */
  withCredentials(creds: KubeCredentials & Pick<KubeClientOptions, 'impersonate'>): KubeClient {
    return new KubeClient({ server: this.opts.server, caPem: this.opts.caPem, ...creds });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Raw request; never throws on HTTP status. */
  async request<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<KubeResponse<T>> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string | string[]> = { accept: 'application/json', ...o.headers };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (this.opts.impersonate) {
      headers['impersonate-user'] = this.opts.impersonate.user;
      // An array becomes one header line per group, as the API server expects.
      if (this.opts.impersonate.groups?.length) headers['impersonate-group'] = this.opts.impersonate.groups;
    }
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['content-type'] = o.contentType ?? 'application/json';
    }
    const res = await request(url, { method: method as any, headers, body, dispatcher: this.dispatcher });
    const text = await res.body.text();
    let parsed: any = text;
    if ((res.headers['content-type'] ?? '').toString().includes('json') && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        // leave as text
      }
    }
    return { status: res.statusCode, headers: res.headers as KubeResponse['headers'], body: parsed };
  }

  /** Request that throws KubeApiError unless the status is 2xx. */
  async call<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const r = await this.request<T>(method, path, o);
    if (r.status < 200 || r.status > 299) throw new KubeApiError(method, path, r.status, r.body);
    return r.body;
  }

  // ---- discovery ---------------------------------------------------------------------------------

  private groupVersionPath(apiVersion: string): string {
    return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  }

  private async resources(apiVersion: string, refresh = false): Promise<ApiResource[]> {
    if (refresh) this.discovery.delete(apiVersion);
    let p = this.discovery.get(apiVersion);
    if (!p) {
      p = this.call<{ resources: ApiResource[] }>('GET', this.groupVersionPath(apiVersion)).then((l) => l.resources);
      this.discovery.set(apiVersion, p);
      p.catch(() => this.discovery.delete(apiVersion));
    }
    return p;
  }

  /** Resource name and scope of a kind, through discovery (refreshed once if the kind is unknown). */
  async resourceFor(apiVersion: string, kind: string): Promise<ApiResource> {
    for (const refresh of [false, true]) {
      const found = (await this.resources(apiVersion, refresh).catch(() => [] as ApiResource[])).find(
        (r) => r.kind === kind && !r.name.includes('/'),
      );
      if (found) return found;
    }
    throw new Error(`kind ${kind} not served in ${apiVersion}`);
  }

  /** Path of a collection (no name) or an object, optionally a subresource. */
  async path(ref: ObjectRef, subresource?: string): Promise<string> {
    const r = await this.resourceFor(ref.apiVersion, ref.kind);
    let p = this.groupVersionPath(ref.apiVersion);
    if (r.namespaced) p += `/namespaces/${encodeURIComponent(ref.namespace ?? 'default')}`;
    p += `/${r.name}`;
    if (ref.name) p += `/${encodeURIComponent(ref.name)}`;
    if (subresource) p += `/${subresource}`;
    return p;
  }

  // ---- object verbs ------------------------------------------------------------------------------

  private refOf(obj: KubeObject): ObjectRef {
    return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace };
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    const ref = this.refOf(obj);
    return this.call('POST', await this.path({ ...ref, name: undefined }), { body: obj });
  }

  async get<T extends KubeObject = KubeObject>(ref: ObjectRef & { name: string }): Promise<T> {
    return this.call('GET', await this.path(ref));
  }

  /** GET that answers undefined on 404. */
  async getOrUndefined<T extends KubeObject = KubeObject>(ref: ObjectRef & { name: string }): Promise<T | undefined> {
    const r = await this.request('GET', await this.path(ref));
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new KubeApiError('GET', await this.path(ref), r.status, r.body);
    return r.body;
  }

  async list<T extends KubeObject = KubeObject>(
    ref: Omit<ObjectRef, 'name'>,
    query?: RequestOptions['query'],
  ): Promise<{ metadata: { resourceVersion: string }; items: T[] }> {
    return this.call('GET', await this.path(ref), { query });
  }

  /** PUT of the whole object (optimistic concurrency through metadata.resourceVersion). */
  async replace<T extends KubeObject>(obj: T, subresource?: string): Promise<T> {
    return this.call('PUT', await this.path(this.refOf(obj), subresource), { body: obj });
  }

  /** JSON merge patch (RFC 7386) of an object or a subresource such as `status`. */
  async mergePatch<T extends KubeObject = KubeObject>(
    ref: ObjectRef & { name: string },
    patch: unknown,
    subresource?: string,
  ): Promise<T> {
    return this.call('PATCH', await this.path(ref, subresource), {
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  /** Server-side apply. */
  async apply<T extends KubeObject>(obj: T, fieldManager = 'sluice-test', force = true, subresource?: string): Promise<T> {
    return this.call('PATCH', await this.path(this.refOf(obj), subresource), {
      body: obj,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager, force },
    });
  }

  async delete(ref: ObjectRef & { name: string }): Promise<void> {
    const r = await this.request('DELETE', await this.path(ref));
    if (r.status !== 200 && r.status !== 202 && r.status !== 404) {
      throw new KubeApiError('DELETE', await this.path(ref), r.status, r.body);
    }
  }
}
