// Binding a backend's listeners: all of them on one address, or none (the ones already bound are
// closed again, with the caller's connections).

import type net from 'node:net';

export interface BoundListeners {
  /** The bound ports, in the order of the servers (the requested ones, or what the system chose for 0). */
  ports: number[];
  /** Destroys `sockets` and closes every listener. */
  close(): Promise<void>;
}

export async function listenAll(servers: net.Server[], host: string, ports: number[], sockets: Set<net.Socket>, onClose?: () => void): Promise<BoundListeners> {
  const close = async () => {
    for (const s of sockets) s.destroy();
    onClose?.();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  };
  try {
    await Promise.all(
      servers.map(
        (s, i) =>
          new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.listen({ host, port: ports[i], exclusive: true }, () => {
              s.off('error', reject);
              resolve();
            });
          }),
      ),
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { ports: servers.map((s) => (s.address() as net.AddressInfo).port), close };
}
