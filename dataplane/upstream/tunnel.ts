// Upgraded connections (WebSocket). The upgrade request goes upstream like any request (undici,
// with its `upgrade` option); only when the upstream answers 101 Switching Protocols does the
// client's connection leave HTTP: the 101 is relayed, then bytes flow both ways untouched until
// either side closes. undici hands the upgraded upstream connection over and never reuses it.

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { boundTunnel } from '../response-send.ts';

/** An HTTP/1.1 upgrade request the route may tunnel. */
export interface ClientUpgrade {
  /** The protocol asked for, lower-case (`websocket`). */
  protocol: string;
  /** Bytes the client sent after its request head (held back until the upstream says 101). */
  head: Buffer;
  /** Detaches the client's connection from its HTTP response and hands it over. */
  switchProtocols(): Socket;
  /**
   * The tunnel is closed after this long with no byte either way (--tunnel-idle-timeout). Measured
   * on the client's connection: every byte relayed in either direction is read from or written to it.
   */
  idleTimeoutMs: number;
}

/** Header text written raw to the client: never let a value break the framing. */
const UNSAFE_HEADER_TEXT = /[\r\n\0]/;

/**
 * Relays the 101 (`headers`: the upstream's, hop-by-hop ones removed, route modifiers applied)
 * and splices the two connections.
 */
export function openTunnel(upgrade: ClientUpgrade, upstream: Duplex, headers: readonly string[], route: string, logger: Logger): void {
  const client = upgrade.switchProtocols();
  let head = `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${upgrade.protocol}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    if (!UNSAFE_HEADER_TEXT.test(headers[i]) && !UNSAFE_HEADER_TEXT.test(headers[i + 1])) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  }
  client.write(head + '\r\n');
  // Either side's FIN ends the tunnel (each socket then ends its own writing half, and a closed
  // socket destroys the other below): a peer that half-closes and goes silent cannot pin both
  // connections. The cleartext front accepts connections half-open for HTTP/1.1's sake.
  client.allowHalfOpen = false;
  upstream.allowHalfOpen = false;
  if (upgrade.head.length > 0) upstream.write(upgrade.head);
  client.pipe(upstream);
  upstream.pipe(client);
  // `on`, not `once`: a socket can emit more than one error, and an unheard one would crash.
  upstream.on('error', (error: Error) => {
    logger.debug({ route, err: error.message }, 'upgraded upstream connection failed');
    client.destroy();
  });
  client.on('error', () => upstream.destroy());
  client.setTimeout(upgrade.idleTimeoutMs, () => client.destroy());
  boundTunnel(client, upstream);
  upstream.once('close', () => client.destroy());
  client.once('close', () => upstream.destroy());
}
