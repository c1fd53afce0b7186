// The catalogue of problems Sluice reports about its inputs and its start, each
// with a stable code (as fastify's FST_ERR_*): one line per problem in the log,
// shown once while it lasts, `resolved: <same line>` when it goes away, and the
// current ones listed by the admin API (`/api/status` → `problems`).
import type { Logger } from 'pino';

export const PROBLEM_CATALOGUE = {
  SLU_MANIFEST_YAML: 'a manifest file is not valid YAML; the objects it last had are kept until it parses again',
  SLU_MANIFEST_OBJECT: 'a document in a manifest file is not an object Sluice reads (no apiVersion/kind, no name, a kind Sluice ignores); in Kubernetes mode, an object of a Gateway API family kind Sluice does not read (x-k8s.io, Inference Extension)',
  SLU_MANIFEST_INVALID: 'an object in a manifest file breaks its kind\'s schema or CEL rules (the field path and why): it is not applied, as the API server would refuse it',
  SLU_MANIFEST_DUPLICATE: 'the same object is defined in two files; the file first by path wins',
  SLU_SOURCE_READ: 'a manifest file or folder cannot be read (permissions, descriptors, I/O, moved away); its last good objects are kept',
  SLU_NOTHING_SERVED: 'the manifest folder holds no Gateway and no Ingress (or no object at all): no listener is served until one is added',
  SLU_INGRESS_NO_CLASS: 'an Ingress names no class and no IngressClass is marked default: Sluice ignores it',
  SLU_TRANSLATION: 'part of an object cannot be translated and is skipped or degraded (the line says which and why)',
  SLU_REDIS_SETTINGS: 'the Redis settings for global rate limits are incomplete or invalid',
  SLU_STARTUP_PORT: 'a port Sluice must bind at start is taken or not allowed',
  SLU_STARTUP_PATH: 'a path Sluice must read at start is missing or unreadable',
  SLU_STARTUP_BPF: '--bpf on, but eBPF cannot run here (the line says why)',
  SLU_VERSION_REJECTED: 'the dataplane refused a configuration version as a whole (every worker, or the one thread: the line says why); the last good version keeps serving',
  SLU_VERSION_CRASHED: 'a configuration version ended worker threads 3 times within 120 s while they applied it (any of them: it is all or nothing); every worker serves the last good version',
  SLU_VERSION_LATE: 'no worker thread applied a configuration version within the bound (30 s); the last good version keeps serving until every worker serves it (late), unless it turns out to crash them',
  SLU_APPLY_FAILED: 'a configuration version could not be applied for another reason than a refusal (e.g. the eBPF maps could not be written: they are put back); the last good version keeps serving',
} as const;

export type ProblemCode = keyof typeof PROBLEM_CATALOGUE;

export interface Problem {
  code: ProblemCode;
  /** Reads alone: names the object where known and what to change. */
  message: string;
  /** The manifest file, relative to the folder, or the path concerned. */
  file?: string;
  /** `Kind namespace/name` (or `Kind name`) of the object concerned, where known. */
  object?: string;
}

/** The one line a problem is logged and printed as (a message from elsewhere may hold line breaks: joined with "; "). */
export function problemLine(p: Problem): string {
  return `${p.code} ${p.file ? `${p.file}: ` : ''}${p.message}`.replace(/\s*\n\s*/g, '; ');
}

/**
 * Logs each problem once, when it appears, and `resolved: <line>` when it is gone. Every caller
 * hands it the whole current set each time (a reconcile, a poll).
 */
export class ProblemLog {
  private current = new Map<string, Problem>();
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /** Replaces the current problems with `problems`. */
  update(problems: Problem[]): void {
    const next = new Map(problems.map((p) => [problemLine(p), p]));
    for (const [line, p] of next) if (!this.current.has(line)) this.logger.warn(fields(p), line);
    for (const [line, p] of this.current) if (!next.has(line)) this.logger.info({ ...fields(p), resolved: true }, `resolved: ${line}`);
    this.current = next;
  }

  list(): Problem[] {
    return [...this.current.values()];
  }
}

function fields(p: Problem): Record<string, string> {
  return { code: p.code, ...(p.file ? { file: p.file } : {}), ...(p.object ? { object: p.object } : {}) };
}
