// HTTP client for the eBPF tests, run inside the client namespace: sends each `METHOD PATH` of
// the JSON list to BASE (a fresh connection each) and prints [{status, body} | {error}] as JSON.
//   http-requests.ts BASE '[["GET","/a"],["POST","/b"]]'
const [base, listText] = process.argv.slice(2);
const out: ({ status: number; body: string } | { error: string })[] = [];
for (const [method, path] of JSON.parse(listText!) as [string, string][]) {
  try {
    const r = await fetch(`${base}${path}`, { method, headers: { connection: 'close' }, ...(method === 'POST' ? { body: '{}' } : {}), signal: AbortSignal.timeout(3000) });
    out.push({ status: r.status, body: await r.text() });
  } catch (err) {
    out.push({ error: ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as Error).name });
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
