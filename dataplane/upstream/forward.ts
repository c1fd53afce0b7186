// One proxied request as an undici dispatch handler: the client's body is streamed up (undici
// reads the IncomingMessage), the upstream body is streamed down with backpressure both ways,
// and the upstream request is aborted the moment the client goes away, so a disconnect never
// strands an upstream connection mid-response.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { BackendChoice } from '../config/route-table.ts';
import { CLIENT_CLOSED_CODE } from '../metrics.ts';
import { sendLocalReply } from '../local-reply.ts';
import { downstreamResponseHeaders } from './headers.ts';
import type { UpstreamEndpoint } from './pools.ts';

export interface ForwardRequest {
  method: string;
  /** Path and query, as sent upstream. */
  target: string;
  headers: string[];
  /** The client's request stream when it carries a body. */
  body: IncomingMessage | null;
}

export function forward(
  request: ForwardRequest,
  res: ServerResponse,
  route: string,
  choice: BackendChoice,
  endpoint: UpstreamEndpoint,
  logger: Logger,
  startedAt: number,
): void {
  const exchange = new UpstreamExchange(res, route, choice, endpoint, logger, startedAt);
  try {
    endpoint.pool.dispatch(
      { path: request.target, method: request.method, headers: request.headers, body: request.body },
      exchange,
    );
  } catch (error) {
    // undici validates synchronously (method, path, header values): nothing was sent.
    exchange.onResponseError(null, error as Error);
  }
}

class DownstreamClosedError extends Error {
  constructor() {
    super('client closed the connection before the response completed');
    this.name = 'DownstreamClosedError';
  }
}

class UpstreamExchange implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse;
  private readonly route: string;
  private readonly choice: BackendChoice;
  private readonly endpoint: UpstreamEndpoint;
  private readonly logger: Logger;
  private readonly startedAt: number;
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private finished = false;
  private clientGone = false;
  private waitingForDrain = false;

  constructor(res: ServerResponse, route: string, choice: BackendChoice, endpoint: UpstreamEndpoint, logger: Logger, startedAt: number) {
    this.res = res;
    this.route = route;
    this.choice = choice;
    this.endpoint = endpoint;
    this.logger = logger;
    this.startedAt = startedAt;
    res.on('close', this.onDownstreamClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client may have left while the request waited for a connection.
    if (this.clientGone) controller.abort(new DownstreamClosedError());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational: Node sends its own 100-continue
    const res = this.res;
    if (res.destroyed) {
      controller.abort(new DownstreamClosedError());
      return;
    }
    this.status = statusCode;
    try {
      res.writeHead(statusCode, downstreamResponseHeaders(headers, this.choice.responseModifiers));
    } catch (error) {
      // An upstream header Node refuses to send (invalid characters): treat as a bad upstream.
      controller.abort(error as Error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.res.write(chunk)) return;
    controller.pause();
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      this.res.on('drain', this.onDownstreamDrain);
    }
  }

  onResponseEnd(): void {
    if (this.finished) return;
    this.finished = true;
    this.res.end();
    this.choice.metrics.record(this.status, this.startedAt);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.finished) return;
    this.finished = true;
    const res = this.res;
    if (this.clientGone) {
      this.choice.metrics.record(CLIENT_CLOSED_CODE, this.startedAt);
      return;
    }
    const invalidRequest = (error as { code?: string }).code === 'UND_ERR_INVALID_ARG';
    const status = invalidRequest ? 400 : 502;
    this.logger.warn(
      { route: this.route, backend: this.choice.backend?.name, endpoint: this.endpoint.key, err: { message: error.message, code: (error as { code?: string }).code }, headersSent: res.headersSent },
      invalidRequest ? 'request rejected by the upstream client' : 'upstream request failed',
    );
    if (!res.headersSent) {
      sendLocalReply(res, status, invalidRequest ? 'Bad Request\n' : 'Bad Gateway\n', this.choice.responseModifiers, this.choice.metrics, this.startedAt);
    } else {
      // Mid-body failure: cut the connection so the client sees a truncated response, not a
      // complete-looking one.
      this.choice.metrics.record(this.status, this.startedAt);
      res.destroy(error);
    }
  }

  private readonly onDownstreamDrain = (): void => {
    this.controller?.resume();
  };

  private readonly onDownstreamClose = (): void => {
    if (this.finished) return;
    this.clientGone = true;
    this.controller?.abort(new DownstreamClosedError());
  };
}
