// Per-request options for @kubernetes/client-node's generated APIs: an abort signal (a timeout,
// possibly combined with a stop signal) and, for patches, the content type (client-node picks JSON
// patch otherwise). Every API call Sluice makes outside the informers goes through this, so none
// waits on the API server unbounded.
import { Observable, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';

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
