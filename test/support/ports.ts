// Free ports on loopback: bind port 0, note what the kernel chose, release it. The kernel
// hands out ephemeral ports in rotation, so an immediate reuse by someone else is unlikely.
import { createSocket } from 'node:dgram';
import { createServer, isIPv6, type AddressInfo, type Server } from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return (await freePorts(1, host))[0]!;
}

/** `count` distinct free ports (all held open at once, then released). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/**
 * A listener port offset under which every one of `ports` is free for TCP and for UDP (checked by
 * binding them all at once), for tests that serve several fixed listener ports (80 and 443, say)
 * with --listener-port-offset. UDP too: the offsets land in the ephemeral range, where any
 * process's UDP client socket may hold the port a UDP listener needs.
 */
export async function freePortOffset(ports: number[], host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = (await freePort(host)) - ports[0]!;
    if (ports.some((p) => p + offset > 65535)) continue;
    const held: { close(done: () => void): void }[] = [];
    try {
      for (const p of ports) {
        const server = createServer();
        held.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(p + offset, host, () => resolve());
        });
        const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
        held.push(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(p + offset, host, () => resolve());
        });
      }
      return offset;
    } catch {
      // one of them is taken: another offset
    } finally {
      await Promise.all(held.map((h) => new Promise<void>((resolve) => h.close(() => resolve()))));
    }
  }
  throw new Error(`no free port offset for ${ports.join(', ')}`);
}
