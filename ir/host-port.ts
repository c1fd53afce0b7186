// `HOST:PORT` listen addresses of the admin API and the snapshot server (`[v6]:PORT` too; an empty
// host is 127.0.0.1): one parser for the controller and the process wiring.
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid address ${JSON.stringify(address)}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}
