// What `sluice run` checks before it starts anything or writes anything: every
// port it will bind and every path it must read. Each problem is one line naming
// the port or path and the flag to change; the process then exits with
// STARTUP_CHECK_EXIT_CODE and leaves nothing behind.
import { createServer, type Server } from 'node:net';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { problemLine, type Problem } from '../controller/problems.ts';

/** Exit code of a failed startup check (2 is a usage error, 1 a crash). */
export const STARTUP_CHECK_EXIT_CODE = 3;

export interface PortClaim {
  host: string;
  port: number;
  /** What binds it, e.g. "the admin API". */
  what: string;
  /** How to choose another, e.g. "--admin-address". */
  remedy: string;
  /** What to change when the address itself is wrong (not on this machine, not resolved); default `remedy`. */
  addressRemedy?: string;
  /** What to change when the port is below 1024 and this user may not bind it; default `remedy`. */
  privilegedRemedy?: string;
}

export class StartupCheckFailed extends Error {
  readonly problems: Problem[];
  readonly exitCode = STARTUP_CHECK_EXIT_CODE;

  constructor(problems: Problem[]) {
    super(problems.map(problemLine).join('\n'));
    this.name = 'StartupCheckFailed';
    this.problems = problems;
  }
}

/** A folder that must exist and be listable. */
export function checkFolder(path: string, flag: string): Problem[] {
  try {
    if (!statSync(path).isDirectory()) return [pathProblem(path, `not a folder; name a folder with ${flag}`)];
    accessSync(path, constants.R_OK | constants.X_OK);
    return [];
  } catch (err) {
    return [pathProblem(path, `${(err as Error).message.split(',')[0]}; check ${flag}`)];
  }
}

/** Why a file cannot be appended to (it, or the folder it would be made in), or undefined; nothing is created. */
export function unwritableFile(path: string): string | undefined {
  if (!existsSync(path)) return unwritableFolder(dirname(path));
  return statSync(path).isDirectory() ? 'a folder' : accessProblem(path, constants.W_OK);
}

/** Why files cannot be made in a folder, or undefined. */
export function unwritableFolder(path: string): string | undefined {
  return accessProblem(path, constants.W_OK | constants.X_OK);
}

/** "EACCES: permission denied" when `path` lacks `mode` for this process, else undefined. */
function accessProblem(path: string, mode: number): string | undefined {
  try {
    accessSync(path, mode);
    return undefined;
  } catch (err) {
    return (err as Error).message.split(',')[0];
  }
}

/**
 * Binds every claimed port at once (so claims that clash with each other show too), then lets
 * them go. Returns one problem per port that cannot be bound.
 */
export async function checkPorts(claims: PortClaim[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  const byAddress = new Map<string, PortClaim>();
  for (const claim of claims) {
    const address = hostPort(claim.host, claim.port);
    const earlier = byAddress.get(address);
    if (earlier) {
      if (earlier.what !== claim.what) problems.push(portProblem(claim, `is also wanted by ${earlier.what}`));
      continue;
    }
    byAddress.set(address, claim);
  }
  const servers: Server[] = [];
  try {
    for (const claim of byAddress.values()) {
      const server = createServer();
      servers.push(server);
      const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        server.once('error', resolve);
        server.listen({ host: claim.host, port: claim.port, exclusive: true }, () => resolve(null));
      });
      const remedy = ADDRESS_ERRORS.has(error?.code ?? '') ? claim.addressRemedy : error?.code === 'EACCES' ? claim.privilegedRemedy : undefined;
      if (error) problems.push(portProblem(claim, bindFailure(error), remedy));
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
  return problems;
}

/** Bind errors that say the host is wrong, not the port: no such address here, or a name that does not resolve. */
const ADDRESS_ERRORS = new Set(['EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

function bindFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'is already in use';
    case 'EACCES':
      return 'may not be bound by this user (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    case 'EADDRNOTAVAIL':
      return 'names an address this machine does not have';
    case 'ENOTFOUND':
      return 'names no address this machine can resolve';
    default:
      return `cannot be bound: ${err.message}`;
  }
}

function portProblem(claim: PortClaim, why: string, remedy = claim.remedy): Problem {
  return { code: 'SLU_STARTUP_PORT', message: `${hostPort(claim.host, claim.port)} (${claim.what}) ${why}; ${remedy}` };
}

export function pathProblem(path: string, message: string): Problem {
  return { code: 'SLU_STARTUP_PATH', file: path, message };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
