// Why `sluice status` or `sluice observe` could not reach a running sluice's admin API, in words a
// user acts on: fetch's own message is "fetch failed" whatever happened (the cause holds the rest).

export function adminFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'no answer in time';
  const code = e.cause?.code;
  if (code === 'ECONNREFUSED') return 'nothing listens there (connection refused): is sluice running, with this --admin-address?';
  if (code === 'ENOTFOUND') return 'no such host';
  return e.cause?.message ?? e.message;
}
