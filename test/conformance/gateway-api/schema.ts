// Strict validation of gwapi-conformance-case/v1 files. Every field, check
// kind, case kind, mutation op, request field and placeholder the runner
// implements is listed here; anything else makes the test FAIL.

import { checkShape, S, type Spec } from '../lib/strict.ts';
import { validateMutation } from '../lib/mutations.ts';
import { ROUTE_KINDS } from './types.ts';

/** gRPC status code names, by number (grpc/grpc doc/statuscodes.md). */
export const GRPC_CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

/** Question types a dnsQuery may ask (what dns-packet encodes). */
export const DNS_QUERY_TYPES = ['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT', 'ANY'] as const;

export const CASE_SCHEMA = 'gwapi-conformance-case/v1';
export const SUITE_SCHEMA = 'gwapi-conformance-suite/v1';

/** Placeholders the runner substitutes (per attempt). */
export const KNOWN_PLACEHOLDERS = ['{uuid}'] as const;

const conditionStatus = S.nullable(S.enum('True', 'False', 'Unknown'));
const condition = S.obj({ type: S.str, status: conditionStatus, reason: S.nullable(S.str) });
const conditions = S.arr(condition);
const routeKind = S.enum(...ROUTE_KINDS);
const listenerExpectation = S.obj({
  name: S.str,
  supportedKinds: S.arr(S.obj({ group: S.nullable(S.str), kind: S.str }, ['group'])),
  attachedRoutes: S.num,
  conditions,
});

/** Status check kinds and their fields. */
export const STATUS_CHECK_SPECS: Record<string, Record<string, Spec>> = {
  parentAndRoutesAccepted: {
    parentKind: S.enum('Gateway', 'ListenerSet'),
    parent: S.str,
    listenerNames: S.nullable(S.arr(S.str)),
    routes: S.arr(S.str),
    requireGatewayAddress: S.bool,
    checkListeners: S.bool,
    routeKind,
  },
  routeCondition: { route: S.str, parent: S.str, condition, routeKind },
  routeParents: {
    route: S.str,
    routeKind,
    namespaceRequired: S.bool,
    parents: S.arr(
      S.obj({
        parentRef: S.obj({ group: S.str, kind: S.str, name: S.str, namespace: S.nullable(S.str) }, ['namespace']),
        conditions,
      }),
    ),
  },
  routeHasNoAcceptedParents: { route: S.str, routeKind },
  gatewayCondition: { gateway: S.str, condition },
  gatewayConditionsAtLatestGeneration: { gateway: S.str },
  gatewayListenersExact: { gateway: S.str, listeners: S.arr(listenerExpectation) },
  gatewayListenerConditions: { gateway: S.str, listeners: S.arr(S.str), conditions },
  gatewayHasZeroRoutes: { gateway: S.str },
  gatewayHasAddress: { gateway: S.str, listener: S.nullable(S.str) },
  gatewayAttachedListenerSets: { gateway: S.str, count: S.num },
  namespacesReady: { namespaces: S.arr(S.str) },
  listenerSetCondition: { listenerSet: S.str, condition },
  listenerSetListenersExact: { listenerSet: S.str, listeners: S.arr(listenerExpectation) },
  listenerSetListenerConditions: { listenerSet: S.str, listeners: S.arr(S.str), conditions },
  gatewayClassAccepted: { gatewayClass: S.str, status: conditionStatus },
  gatewayClassConditionsAtLatestGeneration: { gatewayClass: S.str },
  routeConditionsAtLatestGeneration: { route: S.str, routeKind },
  generationIncreased: { kind: S.str, object: S.str },
  backendTLSPolicyCondition: { policy: S.str, ancestor: S.str, condition },
  backendTLSPolicyConditionsAtLatestGeneration: { policy: S.str },
  gatewayStatusAddresses: {
    gateway: S.str,
    count: S.num,
    mustContain: S.arr(S.obj({ type: S.str, value: S.str })),
    mustNotContain: S.arr(S.str),
  },
};

const OPTIONAL_CHECK_FIELDS: Record<string, string[]> = {
  gatewayHasAddress: ['listener'],
  parentAndRoutesAccepted: ['listenerNames', 'checkListeners', 'routeKind'],
  routeCondition: ['routeKind'],
  routeParents: ['routeKind'],
  routeHasNoAcceptedParents: ['routeKind'],
  routeConditionsAtLatestGeneration: ['routeKind'],
};

const statusCheck = S.custom((value, where) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object`];
  const kind = (value as { check?: unknown }).check;
  if (typeof kind !== 'string' || !(kind in STATUS_CHECK_SPECS)) {
    return [`${where}: unknown status check ${JSON.stringify(kind)}`];
  }
  const spec = S.obj({ check: S.str, ...STATUS_CHECK_SPECS[kind] }, OPTIONAL_CHECK_FIELDS[kind] ?? []);
  return checkShape(value, spec, `${where}(${kind})`);
});

const tlsRequest = S.obj({ serverName: S.str, trustCertificateFrom: S.str, clientCertificateFrom: S.nullable(S.str) });

const httpRequest = S.obj(
  {
    method: S.str,
    host: S.nullable(S.str),
    path: S.str,
    headers: S.map(S.str),
    protocol: S.enum('HTTP/1.1', 'HTTP/1.1+TLS', 'h2', 'h2c-prior-knowledge'),
    followRedirects: S.bool,
    tls: S.nullable(tlsRequest),
  },
  ['tls', 'headers', 'followRedirects', 'method'],
);

const wsRequest = S.obj(
  { url: S.str, origin: S.nullable(S.str), host: S.nullable(S.str), headers: S.map(S.str) },
  ['origin', 'headers'],
);

const statusList = S.nullable(S.arr(S.num));
const backend = S.nullable(S.obj({ podNamePrefix: S.str, namespace: S.str }));
const backendRequest = S.nullable(
  S.obj(
    {
      path: S.nullable(S.str),
      method: S.nullable(S.str),
      host: S.nullable(S.str),
      headers: S.map(S.str),
      absentHeaders: S.arr(S.str),
      tls: S.nullable(S.obj({ serverName: S.str, peerCertificateFrom: S.nullable(S.str) }, ['peerCertificateFrom'])),
    },
    ['path', 'method', 'host', 'headers', 'absentHeaders', 'tls'],
  ),
);
const response = S.nullable(
  S.obj(
    {
      headers: S.map(S.str),
      headersOneOf: S.map(S.arr(S.str)),
      absentHeaders: S.arr(S.str),
      ignoreWhitespace: S.bool,
    },
    ['headers', 'headersOneOf', 'absentHeaders', 'ignoreWhitespace'],
  ),
);
const mirroredTo = S.nullable(S.arr(S.obj({ service: S.str, namespace: S.str, percent: S.nullable(S.num) }, ['percent'])));
const redirect = S.nullable(
  S.obj(
    { scheme: S.nullable(S.str), host: S.nullable(S.str), port: S.nullable(S.union(S.str, S.num)), path: S.nullable(S.str) },
    ['scheme', 'host', 'port', 'path'],
  ),
);

const plainExpectFields: Record<string, Spec> = {
  status: statusList,
  notStatus: statusList,
  backend,
  backendRequest,
  answeredByGateway: S.bool,
  response,
  mirroredTo,
  redirect,
  transportError: S.bool,
};
const plainExpectOptional = Object.keys(plainExpectFields);

const wsFrame = S.obj({ type: S.enum('text', 'binary'), data: S.str, bytes: S.arr(S.num) }, ['data', 'bytes']);

const randomJitter = S.obj({ header: S.str, note: S.str }, ['note']);

const distributionSpec = S.obj(
  {
    totalRequests: S.num,
    concurrency: S.num,
    absoluteTolerance: S.num,
    maxAttempts: S.num,
    backendFromPodName: S.str,
    zeroWeightBackendsMustGetNoTraffic: S.bool,
  },
  ['totalRequests', 'concurrency', 'absoluteTolerance', 'maxAttempts', 'backendFromPodName', 'zeroWeightBackendsMustGetNoTraffic'],
);

interface KindSpec {
  request: Spec;
  expect: Spec;
  distribution?: Spec;
  extraCaseFields?: Record<string, Spec>;
}

/** Case kinds (undefined = a plain request/response case) and their fields. */
export const CASE_KIND_SPECS: Record<string, KindSpec> = {
  plain: {
    request: httpRequest,
    expect: S.obj(plainExpectFields, plainExpectOptional),
  },
  tlsConnectionFailure: {
    request: httpRequest,
    expect: S.obj({ transportError: S.enum(true) }, ['transportError']),
  },
  weightedDistribution: {
    request: httpRequest,
    expect: S.obj({ status: statusList, backend, weights: S.map(S.num) }, ['status', 'backend']),
    distribution: distributionSpec,
  },
  percentageMirror: {
    request: httpRequest,
    expect: S.obj(plainExpectFields, plainExpectOptional),
    distribution: S.obj(
      { batchRequests: S.num, concurrency: S.num, maxBatches: S.num, toleranceStdDevs: S.num, requestIdPerBatch: S.str },
      ['batchRequests', 'concurrency', 'maxBatches', 'toleranceStdDevs', 'requestIdPerBatch'],
    ),
  },
  backendHeaderMatchesPod: {
    request: httpRequest,
    expect: S.obj(
      { ...plainExpectFields, header: S.str, exactlyOneValue: S.bool, podNameMustStartWithHeaderValue: S.bool },
      [...plainExpectOptional, 'header', 'exactlyOneValue', 'podNameMustStartWithHeaderValue'],
    ),
    distribution: S.obj({ totalRequests: S.num, requests: S.num }, ['totalRequests', 'requests']),
    // `repeat` is the suite README's count of sequential requests; distribution.totalRequests an older spelling.
    extraCaseFields: { header: S.str, repeat: S.num },
  },
  websocket: {
    request: wsRequest,
    expect: S.obj({ exchanges: S.arr(S.obj({ send: wsFrame, receive: wsFrame })) }),
  },
};

const l4Target = S.obj({ gateway: S.str, port: S.num, scheme: S.enum('tls', 'tcp') });
/** Fields every L4 kind may carry (note: informational, as in HTTP cases). */
const l4Attempts = { attemptTimeoutSeconds: S.num, retry: S.nullable(S.obj({ intervalSeconds: S.num, budgetSeconds: S.num })), note: S.str };

/** An L4 case kind: name, kind, its own fields and the attempt fields (`optional`: its own that may be absent). */
function l4Spec(fields: Record<string, Spec>, optional: string[] = []): Spec {
  return S.obj({ name: S.str, kind: S.str, ...fields, ...l4Attempts }, [...optional, 'attemptTimeoutSeconds', 'retry', 'note']);
}

const udpTarget = S.obj({ gateway: S.str, port: S.num, scheme: S.enum('udp') });
const l4EchoTarget = S.obj({ gateway: S.str, port: S.num, scheme: S.enum('tcp', 'udp') });
const payload = S.obj({ payload: S.str });

/** The L4 case kinds (suite README, "L4 cases"), each a complete shape. */
export const L4_CASE_SPECS: Record<string, Spec> = {
  tcpEcho: l4Spec(
    {
      target: l4Target,
      request: S.obj({ tls: S.obj({ serverName: S.str, trustCACertificateFrom: S.str }) }),
      expect: S.obj({ backendIsTLS: S.bool, backend: S.obj({ podNamePrefix: S.str, namespace: S.str }), backendTLS: S.nullable(S.obj({ serverName: S.str })) }),
    },
    ['request'],
  ),
  tlsConnectionRejected: l4Spec({ target: l4Target, request: S.obj({ tls: S.obj({ serverName: S.str }) }) }),
  udpEcho: l4Spec({
    target: udpTarget,
    request: payload,
    expect: S.union(S.obj({ anyReply: S.enum(true) }), S.obj({ backend: S.obj({ service: S.str, namespace: S.str }) })),
  }),
  dnsQuery: l4Spec({
    target: udpTarget,
    request: S.obj({ name: S.str, type: S.enum(...DNS_QUERY_TYPES), recursionDesired: S.bool }),
    expect: S.obj({ anyResponse: S.enum(true) }),
  }),
  echoRepeat: l4Spec(
    { target: l4EchoTarget, request: payload, repeat: S.num, onTransportError: S.enum('fail', 'retryRound'), expect: S.obj({ backendName: S.str }) },
    ['request'],
  ),
};

/** weightedDistribution over TCP/UDP (README, "L4 cases"): told apart by target.scheme. */
const L4_WEIGHTED_SPEC = l4Spec(
  {
    target: l4EchoTarget,
    request: payload,
    warmUp: S.arr(S.enum('tcpConnect', 'tcpEchoOnce', 'udpAnyReply')),
    expect: S.obj({ weights: S.map(S.num) }),
    distribution: distributionSpec,
  },
  ['request', 'warmUp', 'distribution'],
);

const grpcRequest = S.obj({ protocol: S.enum('grpc'), authority: S.nullable(S.str), service: S.str, method: S.str, metadata: S.map(S.str) });
const grpcCodeName = S.enum(...GRPC_CODE_NAMES);
const grpcBackend = S.nullable(S.obj({ podNamePrefix: S.str, namespace: S.str }));
const grpcBackendRequest = S.nullable(S.obj({ fullyQualifiedMethod: S.nullable(S.str) }, ['fullyQualifiedMethod']));

/** gRPC cases (README, "gRPC cases"): plain, or weightedDistribution. */
function grpcCaseProblems(value: Record<string, any>, where: string): string[] {
  const weighted = value.kind === 'weightedDistribution';
  if (value.kind !== undefined && !weighted) return [`${where}: unknown gRPC case kind ${JSON.stringify(value.kind)}`];
  const spec = S.obj(
    {
      name: S.str,
      kind: S.str,
      target: S.obj({ gateway: S.str, port: S.num, scheme: S.enum('http') }),
      request: grpcRequest,
      expect: weighted
        ? S.obj({ grpcCode: grpcCodeName, weights: S.map(S.num) })
        : S.obj({ grpcCode: grpcCodeName, notGrpcCode: S.arr(grpcCodeName), backend: grpcBackend, backendRequest: grpcBackendRequest }, ['grpcCode', 'notGrpcCode', 'backend', 'backendRequest']),
      randomJitter: S.obj({ metadata: S.str, note: S.str }, ['note']),
      connectionPerRequest: S.bool,
      distribution: distributionSpec,
      note: S.str,
    },
    ['kind', 'randomJitter', 'connectionPerRequest', 'distribution', 'note'],
  );
  const problems = checkShape(value, spec, where);
  const ex = value.expect ?? {};
  if (!weighted && (ex.grpcCode === undefined) === (ex.notGrpcCode === undefined)) problems.push(`${where}: expect needs exactly one of grpcCode and notGrpcCode`);
  if (!weighted && (value.randomJitter || value.connectionPerRequest !== undefined || value.distribution)) {
    problems.push(`${where}: randomJitter, connectionPerRequest and distribution belong to weightedDistribution`);
  }
  return problems;
}

function l4CaseProblems(kind: string, value: Record<string, any>, where: string): string[] {
  const problems = checkShape(value, kind === 'weightedDistribution' ? L4_WEIGHTED_SPEC : L4_CASE_SPECS[kind], where);
  if ((kind === 'echoRepeat' || kind === 'weightedDistribution') && value.target?.scheme === 'udp' && !value.request) {
    problems.push(`${where}: a udp ${kind} needs request.payload`);
  }
  if ((kind === 'echoRepeat' || kind === 'weightedDistribution') && value.target?.scheme === 'tcp' && value.request) {
    problems.push(`${where}: request given for a tcp ${kind}`);
  }
  if (kind === 'echoRepeat' && value.onTransportError === 'retryRound' && !value.retry) problems.push(`${where}: onTransportError retryRound needs retry`);
  const scheme = value.target?.scheme;
  if (kind === 'tlsConnectionRejected' && scheme !== 'tls') problems.push(`${where}: tlsConnectionRejected needs scheme tls`);
  if (kind === 'tcpEcho' && scheme === 'tls' && !value.request?.tls) problems.push(`${where}: a tls target needs request.tls`);
  if (kind === 'tcpEcho' && scheme === 'tcp' && value.request) problems.push(`${where}: request given for a tcp target`);
  return problems;
}

const httpCase = S.custom((value, where) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object`];
  const rec = value as Record<string, any>;
  if (rec.request?.protocol === 'grpc') return grpcCaseProblems(rec, where);
  if (typeof rec.kind === 'string' && rec.kind in L4_CASE_SPECS) return l4CaseProblems(rec.kind, rec, where);
  if (rec.kind === 'weightedDistribution' && (rec.target?.scheme === 'tcp' || rec.target?.scheme === 'udp')) return l4CaseProblems(rec.kind, rec, where);
  const kind = rec.kind === undefined ? 'plain' : rec.kind;
  if (typeof kind !== 'string' || kind === 'plain' && rec.kind !== undefined || !(kind in CASE_KIND_SPECS)) {
    return [`${where}: unknown case kind ${JSON.stringify(rec.kind)}`];
  }
  const k = CASE_KIND_SPECS[kind];
  const fields: Record<string, Spec> = {
    name: S.str,
    kind: S.str,
    target: S.obj({ gateway: S.str, port: S.num, scheme: S.enum('http', 'https') }),
    request: k.request,
    expect: k.expect,
    echoSetResponseHeaders: S.map(S.str),
    placeholders: S.map(S.str, KNOWN_PLACEHOLDERS),
    uniqueRequestIdQueryParam: S.str,
    note: S.str,
    randomJitter,
    ...(k.distribution ? { distribution: k.distribution } : {}),
    ...(k.extraCaseFields ?? {}),
  };
  const optional = ['kind', 'echoSetResponseHeaders', 'placeholders', 'uniqueRequestIdQueryParam', 'note', 'randomJitter', 'distribution', ...Object.keys(k.extraCaseFields ?? {})];
  const problems = checkShape(value, S.obj(fields, optional), where);
  problems.push(...semanticCaseProblems(kind, rec, where));
  return problems;
});

/** Combinations the shape alone cannot rule out. */
function semanticCaseProblems(kind: string, c: Record<string, any>, where: string): string[] {
  const out: string[] = [];
  const req = c.request ?? {};
  const scheme = c.target?.scheme;
  if (kind !== 'websocket') {
    const proto = req.protocol;
    if (scheme === 'http' && proto !== undefined && proto !== 'HTTP/1.1' && proto !== 'h2c-prior-knowledge') {
      out.push(`${where}: protocol ${proto} cannot be used with scheme http`);
    }
    if (scheme === 'https' && proto !== undefined && proto !== 'HTTP/1.1+TLS' && proto !== 'h2') {
      out.push(`${where}: protocol ${proto} cannot be used with scheme https`);
    }
    if (scheme === 'https' && !req.tls) out.push(`${where}: an https target needs request.tls`);
    if (scheme === 'http' && req.tls) out.push(`${where}: request.tls given for an http target`);
  }
  const ex = c.expect ?? {};
  if (kind === 'plain') {
    for (const m of ex.mirroredTo ?? []) {
      if (m && m.percent !== null && m.percent !== undefined && m.percent !== 100) {
        out.push(`${where}: mirroredTo with percent ${m.percent} needs kind percentageMirror`);
      }
    }
    if (ex.transportError === true && (ex.status?.length ?? 0) > 0) out.push(`${where}: transportError and status are exclusive`);
  }
  if (kind === 'percentageMirror' && !(ex.mirroredTo ?? []).some((m: any) => typeof m?.percent === 'number')) {
    out.push(`${where}: percentageMirror needs mirroredTo[].percent`);
  }
  if (kind === 'weightedDistribution' && !ex.weights) out.push(`${where}: weightedDistribution needs expect.weights`);
  if (kind === 'backendHeaderMatchesPod' && typeof (c.header ?? ex.header) !== 'string') {
    out.push(`${where}: backendHeaderMatchesPod needs a header name (case.header or expect.header)`);
  }
  if (kind === 'websocket') {
    for (const [i, x] of (ex.exchanges ?? []).entries()) {
      for (const side of ['send', 'receive']) {
        const f = x?.[side];
        if (!f) continue;
        if (f.type === 'text' && typeof f.data !== 'string') out.push(`${where}.expect.exchanges[${i}].${side}: text frame needs data`);
        if (f.type === 'binary' && !Array.isArray(f.bytes)) out.push(`${where}.expect.exchanges[${i}].${side}: binary frame needs bytes`);
      }
    }
  }
  return out;
}

const mutation = S.custom((value, where) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object`];
  return validateMutation(value as Record<string, unknown>).map((p) => `${where}: ${p}`);
});

const runnerAction = S.custom((value, where) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: expected object`];
  const action = (value as { action?: unknown }).action;
  if (action !== 'fillEndpointSlices') return [`${where}: unknown runner action ${JSON.stringify(action)}`];
  return checkShape(value, S.obj({ action: S.str, endpointSlices: S.arr(S.str), from: S.str, note: S.str }, ['note']), where);
});

const feature = S.obj(
  { name: S.str, goConstant: S.str, level: S.str, channel: S.str, profile: S.str },
  ['goConstant', 'level', 'channel', 'profile'],
);

export const CASE_FILE_SPEC: Spec = S.obj(
  {
    schema: S.enum(CASE_SCHEMA),
    name: S.str,
    /** Provenance in words (our own translations say which upstream file and commit they follow). */
    description: S.str,
    upstream: S.any,
    summary: S.str,
    features: S.arr(feature),
    runWhen: S.obj({ supported: S.arr(S.str), notSupported: S.arr(S.str) }),
    provisional: S.bool,
    parallel: S.bool,
    manifests: S.arr(S.str),
    staticAddressInjection: S.obj({
      gateway: S.str,
      placeholders: S.obj({ usable: S.str, unusable: S.str }),
      usable: S.obj({ type: S.enum('IPAddress'), choose: S.str, substitutes: S.str }),
      unusable: S.obj({ type: S.enum('IPAddress'), choose: S.str, substitutes: S.str }),
      resultOrder: S.arr(S.obj({ type: S.str, value: S.str })),
    }),
    gateways: S.arr(S.str),
    statusChecks: S.arr(statusCheck),
    runnerActionsBeforeCases: S.arr(runnerAction),
    cases: S.arr(httpCase),
    followUp: S.arr(
      S.obj(
        { description: S.str, mutations: S.arr(mutation), statusChecks: S.arr(statusCheck), cases: S.arr(httpCase) },
        ['description', 'statusChecks', 'cases'],
      ),
    ),
    notes: S.arr(S.str),
  },
  ['description', 'upstream', 'summary', 'runWhen', 'provisional', 'parallel', 'staticAddressInjection', 'gateways', 'runnerActionsBeforeCases', 'followUp', 'notes', 'statusChecks', 'cases'],
);

/** Every problem that makes the runner unable to evaluate the case file exactly. */
export function validateCaseFile(value: unknown): string[] {
  return checkShape(value, CASE_FILE_SPEC, 'case');
}
