// /ui at the admin address: the page (HTML, CSS and the browser modules, served from this folder
// with their types stripped by Node's own stripper: no build step) and its event stream. Only the
// files listed here are served.
import { readFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { UI_HEADERS, UiHub } from './events.ts';

const BROWSER = join(import.meta.dirname, 'browser');

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
  'app.ts': 'text/javascript; charset=utf-8',
  'render.ts': 'text/javascript; charset=utf-8',
};

/** Read (and stripped) once, on first request. */
const cache = new Map<string, string>();

function asset(name: string): string {
  let body = cache.get(name);
  if (body === undefined) {
    const source = readFileSync(join(BROWSER, name), 'utf8');
    body = name.endsWith('.ts') ? stripTypes(source) : source;
    cache.set(name, body);
  }
  return body;
}

/**
 * Node's own type stripper (the one that runs Sluice's sources). The API warns once that it is
 * experimental; that line would land, unstructured, among the JSON log lines of a checkout run
 * (the image disables the warning), so it is held back for this call only.
 */
function stripTypes(source: string): string {
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    return stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

export function registerUi(app: FastifyInstance, hub: UiHub): void {
  const send = (reply: FastifyReply, name: string) => reply.headers(UI_HEADERS).type(ASSETS[name]!).send(asset(name));
  app.get('/ui', async (_req, reply) => send(reply, 'index.html'));
  app.get('/ui/', async (_req, reply) => send(reply, 'index.html'));
  app.get<{ Params: { file: string } }>('/ui/:file', async (req, reply) => {
    const type = Object.hasOwn(ASSETS, req.params.file) ? ASSETS[req.params.file] : undefined;
    if (!type) return reply.headers(UI_HEADERS).code(404).type('text/plain; charset=utf-8').send('not found\n');
    return send(reply, req.params.file);
  });
  app.get('/ui/events', async (req, reply) => {
    reply.hijack();
    hub.attach(req.raw, reply.raw);
  });
  app.addHook('onClose', async () => hub.close());
}

export type UiMode = 'run' | 'controller' | 'dataplane';

/** What a person must know about what this process cannot show, and where to look instead. */
export function uiNotes(mode: UiMode, hasFlows: boolean): string[] {
  const notes: string[] = [];
  if (mode === 'controller') notes.push("Request rates, rate-limit decisions and drops are counted where requests are served: open /ui at a dataplane's admin address (sluice dataplane --admin-address).");
  if (mode === 'dataplane') notes.push("This graph is what this dataplane serves, from the configuration it applied; status conditions are the controller's: open /ui at the controller's admin address for them.");
  if (mode !== 'controller' && !hasFlows) notes.push('No flow records in this process: drops are not listed.');
  return notes;
}
