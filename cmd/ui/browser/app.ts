// The web view's page: one EventSource on /ui/events (the browser reconnects by itself), the
// latest graph and traffic kept here and drawn again on each update.
import { drawGraph } from './render.ts';
import type { UiDrop, UiEvents, UiGraph, UiNode, UiTraffic } from '../view-types.ts';

/** Drops listed at most (the server keeps its own bound too). */
const MAX_DROPS = 100;

let graph: UiGraph = { nodes: [], edges: [], version: null };
let traffic: UiTraffic | null = null;
let selected: string | null = null;
const drops: UiDrop[] = [];

const byId = <T extends Element>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from index.html`);
  return e as unknown as T;
};

function redraw(): void {
  drawGraph(byId<SVGSVGElement>('graph'), graph, traffic, selected, (node) => {
    selected = node.id;
    showDetails(node);
    redraw();
  });
  const current = graph.nodes.find((n) => n.id === selected);
  if (current) showDetails(current);
}

function showDetails(node: UiNode): void {
  const box = byId<HTMLDivElement>('details');
  box.classList.remove('muted');
  const list = document.createElement('dl');
  const add = (term: string, value: string, cls = '') => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (cls) dd.className = cls;
    list.append(dt, dd);
  };
  add(node.kind, node.label);
  if (node.detail) add('detail', node.detail);
  for (const c of node.conditions) add(c.type, `${c.status} ${c.reason}${c.message ? `: ${c.message}` : ''}`, c.status);
  if (node.problem) add('problem', node.problem, 'False');
  box.replaceChildren(list);
}

function row(cells: string[], cls: string, numeric: number[] = []): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.className = cls;
  cells.forEach((c, i) => {
    const td = document.createElement('td');
    td.textContent = c;
    if (numeric.includes(i)) td.className = 'num';
    tr.append(td);
  });
  return tr;
}

function showDrops(): void {
  const body = byId<HTMLTableElement>('drops').tBodies[0];
  body.replaceChildren(...[...drops].reverse().map((d) => row([d.time.slice(11, 23), d.verdict, d.reason, d.source, d.destination, d.detail], d.verdict === 'AUDIT' ? 'audit' : 'dropped')));
  byId('drops-empty').toggleAttribute('hidden', drops.length > 0);
}

function showTraffic(t: UiTraffic): void {
  const body = byId<HTMLTableElement>('ratelimits').tBodies[0];
  const limited = (r: Record<string, number>) => (r.limited ?? 0) + (r.fail_closed ?? 0);
  const allowed = (r: Record<string, number>) => (r.allowed ?? 0) + (r.fail_open ?? 0) + (r.shadow_limited ?? 0);
  body.replaceChildren(
    ...t.rateLimits.map((r) =>
      row([r.policy, r.rule, allowed(r.perSecond).toFixed(1), limited(r.perSecond).toFixed(1), String(allowed(r.totals)), String(limited(r.totals))], limited(r.perSecond) > 0 ? 'limited' : '', [2, 3, 4, 5]),
    ),
  );
  byId('ratelimits-empty').toggleAttribute('hidden', t.rateLimits.length > 0);
  byId('no-route').textContent = t.noRoute.total > 0 ? `no route matched: ${t.noRoute.rps.toFixed(1)}/s (${t.noRoute.total} total)` : '';
}

function on<K extends keyof UiEvents>(source: EventSource, event: K, handle: (payload: UiEvents[K]) => void): void {
  source.addEventListener(event, (e) => handle(JSON.parse((e as MessageEvent<string>).data) as UiEvents[K]));
}

const source = new EventSource('/ui/events');
const connection = byId<HTMLSpanElement>('connection');
source.addEventListener('open', () => {
  connection.dataset.state = 'live';
  connection.textContent = 'live';
});
source.addEventListener('error', () => {
  connection.dataset.state = 'reconnecting';
  connection.textContent = 'reconnecting';
});
on(source, 'hello', (hello) => {
  byId('mode').textContent = `mode: ${hello.mode}`;
  byId('notes').replaceChildren(...hello.notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
  // A reconnect starts again from the server's latest drops.
  drops.length = 0;
});
on(source, 'graph', (g) => {
  graph = g;
  byId('version').textContent = g.version ? `version ${g.version.slice(0, 12)}` : 'no configuration applied yet';
  redraw();
});
on(source, 'traffic', (t) => {
  traffic = t;
  showTraffic(t);
  redraw();
});
on(source, 'drops', (list) => {
  drops.push(...list);
  if (drops.length > MAX_DROPS) drops.splice(0, drops.length - MAX_DROPS);
  showDrops();
});
on(source, 'problems', (problems) => {
  byId('problems').replaceChildren(...problems.map((p) => Object.assign(document.createElement('li'), { textContent: `${p.code}: ${p.message}` })));
});
