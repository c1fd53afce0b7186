// L7 policy on real gRPC: a GRPCRoute to a grpc-js echo backend (test/support/demo/grpc-echo.ts)
// through a real `sluice run`, a grpc-js client over cleartext HTTP/2. The policy allows one
// method as Cilium writes gRPC rules (`POST /package.Service/Method`): that call succeeds, another
// is refused before the backend sees it, answered as Cilium's Envoy answers a gRPC call it denies
// (its 403 local reply in gRPC form: PERMISSION_DENIED, "Access denied").
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grpcEchoDefinition, startGrpcEcho, GRPC_ECHO_SERVICE, type GrpcEchoServer } from '../support/demo/grpc-echo.ts';
import { httpPolicyYaml } from '../support/http-policy-yaml.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML } from './backends.ts';

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;
type EchoClient = grpc.Client & Record<'Echo' | 'EchoTwo', Unary>;
const EchoClientCtor = (grpc.loadPackageDefinition(grpcEchoDefinition()).gateway_api_conformance as never as { echo_basic: { grpcecho: { GrpcEcho: new (target: string, creds: grpc.ChannelCredentials, options?: object) => EchoClient } } }).echo_basic.grpcecho.GrpcEcho;

describe('L7 policy on gRPC calls', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let echo: GrpcEchoServer;
  let client: EchoClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-l7-grpc-'));
    echo = await startGrpcEcho({ host: '127.0.0.6', port: 0, identity: { pod: 'echo-0', namespace: 'default' } });
    writeFileSync(
      join(dir, 'all.yaml'),
      [
        GATEWAY_YAML,
        `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {clusterIP: 10.96.0.20, selector: {app: echo}, ports: [{name: grpc, port: 8080}]}
`,
        `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: grpc, port: ${echo.port}}]
endpoints: [{addresses: [127.0.0.6]}]
`,
        `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: echo, port: 8080}]}]
`,
        httpPolicyYaml({ name: 'echo-l7', app: 'echo', port: echo.port, rules: [`{method: POST, path: /${GRPC_ECHO_SERVICE}/Echo}`] }),
      ].join('---\n'),
    );
    const port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    client = new EchoClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await sluice?.stop();
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: 'Echo' | 'EchoTwo') =>
    new Promise<grpc.ServiceError | null>((resolve) => client[method]({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) => resolve(err)));

  it('lets the allowed method through and refuses the other with PERMISSION_DENIED before the backend sees it', async () => {
    expect(await call('Echo')).toBeNull();
    const denied = await call('EchoTwo');
    expect(denied).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'Access denied' });
    expect(echo.received).toEqual([`/${GRPC_ECHO_SERVICE}/Echo`]);
    const flows = (await (await fetch(`${sluice.admin}/api/flows?type=l7&verdict=DROPPED`)).text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(flows.map((f) => `${f.l7.protocol} ${f.l7.method} ${f.l7.path} ${f.rule.name}`)).toEqual([`HTTP/2 POST /${GRPC_ECHO_SERVICE}/EchoTwo ciliumnetworkpolicy/default/echo-l7/ingress/0`]);
  });
});
