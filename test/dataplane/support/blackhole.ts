// An endpoint that never answers a connect: a listening socket (python3: Node accepts by itself)
// that never accepts, its accept queue filled, so the kernel drops further SYNs — as with a
// firewalled or vanished endpoint. For backend connect timeouts.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePorts } from '../../support/ports.ts';

export interface Blackhole {
  port: number;
  close(): void;
}

export async function startBlackhole(): Promise<Blackhole> {
  const [port] = await freePorts(1);
  const child = spawn('python3', ['-c', `import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', ${port}))\ns.listen(0)\nprint('ready', flush=True)\ntime.sleep(120)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  // Queue of backlog+1 entries: a few connects take every place (later ones hang, as intended).
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const filler = net.connect(port!, '127.0.0.1');
    filler.on('error', () => undefined);
    fillers.push(filler);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    port: port!,
    close() {
      for (const filler of fillers) filler.destroy();
      child.kill();
    },
  };
}
