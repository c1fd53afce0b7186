// gRPC cases (suite README, "gRPC cases"): unary GrpcEcho RPCs through a Gateway listener over
// cleartext HTTP/2. A case converges like an HTTP case (3 passes in a row, 100 ms after a failure,
// 30 s) over one connection, re-dialled after an attempt that ended INTERNAL; the deadline of each
// RPC is the budget left. weightedDistribution sends its RPCs over one shared connection, or one
// fresh connection each with connectionPerRequest.

import { randomInt } from 'node:crypto';
import { GrpcConnection, type GrpcCallResult } from '../lib/grpc-client.ts';
import { runWeightedAttempts } from '../lib/distribution.ts';
import { awaitConvergence, type FatalProblems } from '../lib/poll.ts';
import { grpcEchoService, type GrpcEchoResponse } from '../../support/demo/grpc-echo.ts';
import { hostForUrl, type TrafficEnv } from './traffic.ts';
import type { GrpcCase, GrpcExpectation } from './types.ts';

/** The target and RPC of one attempt. */
export interface GrpcTargetCall {
  host: string;
  port: number;
  path: string;
  authority: string;
  metadata: [string, string][];
}

export function grpcCallFor(c: GrpcCase, addr: string, portOffset: number, jitter = false): GrpcTargetCall {
  const metadata = Object.entries(c.request.metadata ?? {}).map(([k, v]) => [k.toLowerCase(), v] as [string, string]);
  if (jitter && c.randomJitter && Math.random() < 0.5) metadata.push([c.randomJitter.metadata.toLowerCase(), String(randomInt(10_000))]);
  return {
    host: addr,
    port: c.target.port + portOffset,
    path: `/${c.request.service}/${c.request.method}`,
    // null: "<gateway address>:<port>", the port written even when it is 80.
    authority: c.request.authority ?? `${hostForUrl(addr)}:${c.target.port}`,
    metadata,
  };
}

/** The echo reply of an OK call, decoded with grpcecho.proto; undefined when it does not decode. */
export function decodeEchoReply(method: string, reply: Buffer | undefined): GrpcEchoResponse | undefined {
  if (!reply) return undefined;
  const def = grpcEchoService()[method] ?? grpcEchoService().Echo;
  try {
    return def.responseDeserialize(reply) as GrpcEchoResponse;
  } catch {
    return undefined;
  }
}

/** Problems of a finished call against `expect`; `fatal` when a negative case saw a listed code. */
export function evaluateGrpcResult(expect: GrpcExpectation, method: string, r: GrpcCallResult): string[] | FatalProblems {
  if (expect.notGrpcCode && expect.notGrpcCode.length > 0) {
    if (expect.notGrpcCode.includes(r.code)) return { fatal: [`the RPC ended ${r.code} (${r.message}), which this case must never see`] };
    return [];
  }
  if (expect.grpcCode !== undefined && r.code !== expect.grpcCode) return [`grpc code ${r.code} (${r.message}), expected ${expect.grpcCode}`];
  if (r.code !== 'OK') return [];
  const out: string[] = [];
  const needsReply = Boolean(expect.backend || expect.backendRequest);
  const echo = needsReply ? decodeEchoReply(method, r.reply) : undefined;
  if (needsReply && !echo?.assertions) return ['the OK reply carries no echo assertions'];
  const a = echo?.assertions;
  if (a && expect.backend) {
    const pod = a.context?.pod ?? '';
    const ns = a.context?.namespace ?? '';
    if (!pod.startsWith(expect.backend.podNamePrefix)) out.push(`backend.pod: expected prefix ${JSON.stringify(expect.backend.podNamePrefix)}, got ${JSON.stringify(pod)}`);
    if (expect.backend.namespace !== '' && ns !== expect.backend.namespace) out.push(`backend.namespace: expected ${JSON.stringify(expect.backend.namespace)}, got ${JSON.stringify(ns)}`);
  }
  const fqm = expect.backendRequest?.fullyQualifiedMethod;
  if (a && fqm != null && a.fully_qualified_method !== fqm) out.push(`backendRequest.fullyQualifiedMethod: expected ${fqm}, got ${a.fully_qualified_method}`);
  return out;
}

export async function runGrpcCase(c: GrpcCase, env: TrafficEnv): Promise<string[]> {
  const plain = await convergeGrpc(c, env);
  if (c.kind !== 'weightedDistribution' || plain.length) return c.kind === 'weightedDistribution' ? plain.map((p) => `plain phase: ${p}`) : plain;
  return runGrpcWeighted(c, env);
}

async function convergeGrpc(c: GrpcCase, env: TrafficEnv): Promise<string[]> {
  const { weights: _weights, ...expect } = c.expect;
  const deadline = Date.now() + env.convergence.budgetMs;
  let conn: GrpcConnection | undefined;
  let earlier: string[] = [];
  try {
    const r = await awaitConvergence(async () => {
      const addr = await env.gatewayAddress(c.target.gateway);
      if (!addr) return [`Gateway ${c.target.gateway} has no address in status`];
      const call = grpcCallFor(c, addr, env.portOffset);
      const left = Math.max(1, deadline - Date.now());
      if (!conn?.usable) {
        conn?.close();
        conn = undefined;
        try {
          conn = await GrpcConnection.dial(call.host, call.port, Math.min(left, env.requestTimeoutMs));
        } catch (err) {
          return [`dial: ${(err as Error).message}`];
        }
      }
      const deadlineMs = Math.max(1, deadline - Date.now());
      const result = await conn.call({ ...call, deadlineMs });
      // Go's client drops a connection whose RPC failed at the transport: dial again next time.
      if (result.code === 'INTERNAL') {
        conn.close();
        conn = undefined;
      }
      const problems = evaluateGrpcResult(expect, c.request.method, result);
      // A call cut short by the budget's end (its deadline the little left of it) says less than the
      // attempts before it: their problems are reported, not only its DEADLINE_EXCEEDED.
      if (!Array.isArray(problems)) return problems;
      if (problems.length > 0 && result.code === 'DEADLINE_EXCEEDED' && deadlineMs < env.requestTimeoutMs && earlier.length > 0) {
        return [...earlier, `then DEADLINE_EXCEEDED in the last ${deadlineMs} ms of the budget`];
      }
      earlier = problems;
      return problems;
    }, env.convergence);
    if (r.ok) return [];
    if (r.fatal) return [`${r.lastProblems.join('; ')} (attempt ${r.attempts})`];
    return [`${r.lastProblems.join('; ')} (not ${env.convergence.requiredSuccesses}x in a row within ${Math.round(env.convergence.budgetMs / 1000)} s, ${r.attempts} attempts)`];
  } finally {
    conn?.close();
  }
}

async function runGrpcWeighted(c: GrpcCase, env: TrafficEnv): Promise<string[]> {
  const addr = await env.gatewayAddress(c.target.gateway);
  if (!addr) return [`Gateway ${c.target.gateway} has no address in status`];
  let shared: Promise<GrpcConnection> | undefined;
  const connection = async (): Promise<GrpcConnection> => {
    const call = grpcCallFor(c, addr, env.portOffset);
    if (c.connectionPerRequest) return GrpcConnection.dial(call.host, call.port, env.requestTimeoutMs);
    if (shared) {
      const s = await shared.catch(() => undefined);
      if (s?.usable) return s;
    }
    shared = GrpcConnection.dial(call.host, call.port, env.requestTimeoutMs);
    return shared;
  };
  try {
    return await runWeightedAttempts(
      c.distribution,
      c.expect.weights ?? {},
      async () => {
        let conn: GrpcConnection;
        try {
          conn = await connection();
        } catch (err) {
          return { problem: `dial: ${(err as Error).message}` };
        }
        try {
          const result = await conn.call({ ...grpcCallFor(c, addr, env.portOffset, true), deadlineMs: env.requestTimeoutMs });
          if (result.code !== (c.expect.grpcCode ?? 'OK')) return { problem: `grpc code ${result.code} (${result.message}), expected ${c.expect.grpcCode ?? 'OK'}` };
          const pod = decodeEchoReply(c.request.method, result.reply)?.assertions?.context?.pod;
          return pod ? { pod } : { problem: 'the reply names no pod (assertions.context.pod)' };
        } finally {
          if (c.connectionPerRequest) conn.close();
        }
      },
      env.verbose,
    );
  } finally {
    (await shared?.catch(() => undefined))?.close();
  }
}
