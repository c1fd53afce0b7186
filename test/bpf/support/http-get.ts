// HTTP client for the eBPF tests, run inside the client namespace: GETs URL
// COUNT times (fresh connection each) and prints {statuses, bodies, errors} as JSON.
//   http-get.ts URL COUNT
const [url, countText] = process.argv.slice(2);
const out = { statuses: {} as Record<string, number>, bodies: {} as Record<string, number>, errors: {} as Record<string, number> };
for (let i = 0; i < Number(countText ?? 1); i++) {
  try {
    const r = await fetch(url!, { headers: { connection: 'close' }, signal: AbortSignal.timeout(3000) });
    const body = (await r.text()).trim();
    out.statuses[r.status] = (out.statuses[r.status] ?? 0) + 1;
    out.bodies[body] = (out.bodies[body] ?? 0) + 1;
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as Error).name;
    out.errors[code] = (out.errors[code] ?? 0) + 1;
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
