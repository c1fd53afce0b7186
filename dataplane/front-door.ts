// The front door's bounds: how long Sluice waits for a client at each step and how many
// connections it holds. One options object, built once from the CLI flags of `sluice run` and
// `sluice dataplane`, passed down DataplaneNode → Dataplane → ListenerServer; every wait on a
// client and every connection count reads its bound from here.
//
// Defaults and the anchors they follow are listed in README.md ("Front door: timeouts and limits").

export interface FrontDoorLimits {
  /** Longest a client may take to send a whole request head (HTTP/1.x), from its first byte. */
  requestHeadersTimeoutMs: number;
  /** Longest a TLS handshake may take, from the TCP accept (also bounds a client that never sends a ClientHello). */
  tlsHandshakeTimeoutMs: number;
  /** An idle keep-alive HTTP/1.1 connection (no request in flight) is closed after this. */
  idleTimeoutMs: number;
  /** Longest gap between two reads of a request body before the request is cut. */
  requestBodyTimeoutMs: number;
  /** An HTTP/2 connection with no open stream and no frame either way is closed (GOAWAY) after this. */
  http2IdleTimeoutMs: number;
  /** Longest wait for the client's SETTINGS ACK or PING ACK before the HTTP/2 connection is closed. */
  http2AckTimeoutMs: number;
  /** Longest wait for a TCP (and TLS) connection to a backend endpoint. */
  backendConnectTimeoutMs: number;
  /** Connections one listener holds at most; more are refused. */
  maxConnectionsPerListener: number;
  /** Connections all listeners of the process hold together at most. */
  maxConnections: number;
}

export const DEFAULT_FRONT_DOOR_LIMITS: FrontDoorLimits = {
  requestHeadersTimeoutMs: 10_000,
  tlsHandshakeTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  requestBodyTimeoutMs: 60_000,
  http2IdleTimeoutMs: 60_000,
  http2AckTimeoutMs: 10_000,
  backendConnectTimeoutMs: 10_000,
  maxConnectionsPerListener: 10_000,
  maxConnections: 20_000,
};
