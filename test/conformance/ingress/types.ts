// Shapes of the Ingress conformance case files (schemaVersion 1, see
// shared/conformance/ingress/cases/FORMAT.md). schema.ts checks them strictly
// before anything runs; these types describe what passed that check.

export interface ControllerSettings {
  ingressClassName: string;
  enforceHttps: boolean;
}

export interface IngressClassSpec {
  name: string;
  controller: string;
  isDefaultClass: boolean;
}

export interface GenerateSpec {
  selfSigned: boolean;
  dnsNames: string[];
  commonName: string;
  organization: string;
  keyAlgorithm: string;
  keyBits: number;
  validDays: number;
}

export interface SecretSpec {
  name: string;
  namespace?: string;
  type: string;
  generate: GenerateSpec;
}

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort: number;
  protocol?: string;
}

export interface EchoIdentitySpec {
  namespace: string;
  ingress: string;
  service: string;
  podNamePrefix: string;
}

export interface ServiceSpec {
  name: string;
  namespace?: string;
  type?: string;
  ports: ServicePortSpec[];
  replicas: number;
  echo: EchoIdentitySpec;
}

export interface SetupSpec {
  waitForLoadBalancerAddress?: string[];
  scale?: Record<string, number>;
}

export interface RequestSpec {
  scheme: 'http' | 'https';
  /** null: no Host override (the header is the address dialled). */
  host: string | null;
  sni?: string;
  path: string;
  method: string;
  headers?: Record<string, string>;
  followRedirects: boolean;
  repeat?: number;
}

export interface ServicePortExpectation {
  number: number;
  name?: string;
}

export interface TlsExpectation {
  leafCertFirstDnsName?: string;
  leafCertValidForHost?: string;
}

export interface RedirectExpectation {
  scheme?: string;
  host?: string;
  path?: string;
  query?: string;
}

export interface HttpExpectation {
  status: number;
  backendService?: string | null;
  servicePort?: ServicePortExpectation;
  backendPath?: string;
  backendHost?: string;
  backendMethod?: string;
  backendProto?: string;
  backendHeaders?: Record<string, string>;
  responseProto?: string;
  responseHeaders?: Record<string, string>;
  tls?: TlsExpectation;
  redirect?: RedirectExpectation;
  /** distribution only */
  distinctPods?: number;
}

interface CaseCommon {
  id: string;
  source: string;
  summary?: string;
  upstreamScenario?: string;
  cilium?: string;
  references?: string[];
  asserted?: string[];
}

export interface HttpCase extends CaseCommon {
  kind: 'http';
  request: RequestSpec;
  expect: HttpExpectation;
}

export interface DistributionCase extends CaseCommon {
  kind: 'distribution';
  request: RequestSpec & { repeat: number };
  expect: HttpExpectation & { distinctPods: number };
}

export interface StatusCase extends CaseCommon {
  kind: 'status';
  ingress: string;
  expect: { loadBalancerAddress: 'present' | 'absent' };
}

export type IngressCase = HttpCase | DistributionCase | StatusCase;

export interface GroupFile {
  schemaVersion: 1;
  group: string;
  title?: string;
  source?: { kind: string; repo?: string; commit?: string; feature?: string; references?: string[] };
  controller: ControllerSettings;
  namespace: string;
  ingressClasses: IngressClassSpec[];
  secrets?: SecretSpec[];
  ingresses: IngressObject[];
  ingressClassNameInjected?: boolean;
  services: ServiceSpec[];
  setup?: SetupSpec;
  notes?: string[];
  cases: IngressCase[];
}

export interface IngressObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string>; [k: string]: unknown };
  spec?: any;
  [k: string]: unknown;
}

export interface IndexFile {
  schemaVersion: 1;
  groups: { file: string; group: string; source?: string; cases: number }[];
  totalCases?: number;
}
