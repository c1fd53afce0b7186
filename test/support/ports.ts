// Free ports on loopback: bind port 0, note what the kernel chose, release it. The kernel
// hands out ephemeral ports in rotation, so an immediate reuse by someone else is unlikely.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
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

/** The first of the kernel's ephemeral ports (bind to port 0, connect(), a UDP socket's first send): from there any process takes them without asking. */
function firstEphemeralPort(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low > 0) return low;
  } catch {
    // not Linux: its default
  }
  return 32768;
}

/** Offsets put ports from here up to the ephemeral range (the tests' fixed ports, 8080 or 9901, are below). */
const OFFSET_PORTS_FROM = 10_000;

/**
 * A listener port offset under which every one of `ports` is free for TCP and for UDP (checked by
 * binding them all at once), for tests that serve several fixed listener ports (80 and 443, say)
 * with --listener-port-offset. The ports land below the ephemeral range: sluice binds them a second
 * or more after this check, and an ephemeral port may meanwhile be taken by any client socket (Linux
 * gives connect() the even ones, so 443's of an offset from port 0's odd choice for 80: another jest
 * worker's crowd of 2 000 connections took it in 4 of 20 tries) or UDP socket.
 */
export async function freePortOffset(ports: number[], host = '127.0.0.1'): Promise<number> {
  const lowest = Math.min(...ports);
  const from = Math.max(OFFSET_PORTS_FROM, lowest);
  const room = firstEphemeralPort() - from - (Math.max(...ports) - lowest);
  for (let attempt = 0; attempt < 50; attempt++) {
    // Where they do not fit below the range: where the kernel's port 0 says (in it), as before.
    const offset = room > 0 ? from - lowest + Math.floor(Math.random() * room) : (await freePort(host)) - ports[0]!;
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
