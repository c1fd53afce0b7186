// Per-request options for @kubernetes/client-node's generated APIs: an abort signal (a timeout,
// possibly combined with a stop signal) and, for patches, the content type (client-node picks JSON
// patch otherwise). Every API call Sluice makes outside the informers goes through this, so none
// waits on the API server unbounded.
import { ApiException, Observable, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';

export function requestOptions(options: { signal: AbortSignal; contentType?: string }): ConfigurationOptions<ObservableMiddleware> {
  const { signal, contentType } = options;
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      if (contentType) context.setHeaderParam('Content-Type', contentType);
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/**
 * One line for a failed call: the HTTP status with the API server's own message (a 403 names the
 * user, verb and resource RBAC refused), or the error and its cause (connection refused, timeout).
 */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = typeof err.body === 'string' ? parseOrText(err.body) : err.body;
    const message = typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string'
      ? (body as { message: string }).message
      : String(err.body ?? '');
    return `HTTP ${err.code}: ${message}`.slice(0, 500);
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
