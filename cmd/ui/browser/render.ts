// Draws the graph as SVG in four columns (Gateways, listeners, routes, backends). A layered graph
// of four fixed layers needs no layout library: each column is ordered by the mean position of
// what points into it (the barycenter heuristic), which keeps most edges from crossing.
// Text only through textContent: names come from users' manifests.
import type { UiGraph, UiNode, UiRate, UiTraffic } from '../view-types.ts';

const SVG = 'http://www.w3.org/2000/svg';
const COLUMNS: UiNode['column'][] = ['gateway', 'listener', 'route', 'backend'];
const TITLES = ['Gateways', 'Listeners', 'Routes', 'Backends'];
const NODE_WIDTH = 240;
const GAP_X = 150;
const GAP_Y = 14;
const TOP = 34;
const MAX_CHARS = 37;

interface Placed {
  node: UiNode;
  x: number;
  y: number;
  height: number;
}

export function drawGraph(svg: SVGSVGElement, graph: UiGraph, traffic: UiTraffic | null, selected: string | null, onSelect: (node: UiNode) => void): void {
  const placed = layout(graph);
  svg.replaceChildren();
  let height = TOP;
  COLUMNS.forEach((_, i) => svg.append(text(20 + i * (NODE_WIDTH + GAP_X), 20, TITLES[i], 'column-title')));
  const edgeLayer = el('g', { class: 'edges' });
  const nodeLayer = el('g', { class: 'nodes' });
  svg.append(edgeLayer, nodeLayer);
  for (const e of graph.edges) {
    const from = placed.get(e.from);
    const to = placed.get(e.to);
    if (!from || !to) continue;
    const x1 = from.x + NODE_WIDTH;
    const y1 = from.y + from.height / 2;
    const x2 = to.x;
    const y2 = to.y + to.height / 2;
    const rate = traffic?.edges[e.id];
    const flows = traffic?.flows[e.id];
    const classes = ['edge', ...(rate && rate.rps > 0 ? ['active'] : []), ...(rate && rate.errorRps > 0 ? ['errors'] : [])];
    const path = el('path', { class: classes.join(' '), d: `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2},${y2}`, 'data-edge': e.id, 'data-health': e.health });
    if (rate) path.setAttribute('stroke-width', String(1.5 + Math.min(6, Math.log2(1 + rate.rps))));
    if (e.problem) path.append(title(e.problem));
    edgeLayer.append(path);
    // Two short lines at the middle of the curve: what the edge is (weight, problem), then what flows on it.
    const lines = [[e.weight ? `weight ${e.weight}` : '', e.problem ? truncate(e.problem, 30) : ''], [flowText(rate, flows)]]
      .map((parts) => parts.filter(Boolean).join(' · '))
      .filter(Boolean);
    if (lines.length > 0) {
      const label = el('text', { x: String((x1 + x2) / 2), y: String((y1 + y2) / 2 - 3 - (lines.length - 1) * 6), class: `edge-label${e.health === 'failing' ? ' failing' : ''}`, 'text-anchor': 'middle', 'data-edge-label': e.id });
      lines.forEach((line, i) => {
        const span = el('tspan', { x: String((x1 + x2) / 2), dy: i === 0 ? '0' : '12' });
        span.textContent = line;
        label.append(span);
      });
      edgeLayer.append(label);
    }
  }
  for (const p of placed.values()) {
    height = Math.max(height, p.y + p.height + GAP_Y);
    nodeLayer.append(drawNode(p, traffic?.nodes[p.node.id], traffic?.flows[p.node.id], traffic?.drops[p.node.id], p.node.id === selected, onSelect));
  }
  const width = 40 + COLUMNS.length * NODE_WIDTH + (COLUMNS.length - 1) * GAP_X;
  // Scaled to the section's width by the stylesheet; the viewBox keeps the proportions.
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
}

function drawNode(p: Placed, rate: UiRate | undefined, flows: number | undefined, drops: number | undefined, selected: boolean, onSelect: (node: UiNode) => void): SVGGElement {
  const n = p.node;
  const g = el('g', { class: `node${selected ? ' selected' : ''}`, 'data-id': n.id, 'data-health': n.health, 'data-column': n.column, transform: `translate(${p.x},${p.y})` }) as SVGGElement;
  g.append(el('rect', { width: String(NODE_WIDTH), height: String(p.height), rx: '6' }));
  g.append(title([`${n.kind} ${n.label}`, ...n.conditions.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`), ...(n.problem ? [n.problem] : [])].join('\n')));
  let y = 15;
  g.append(text(10, y, n.kind, 'kind'));
  if (drops) {
    // On the kind's line, right-aligned: the one line that always has room.
    const d = text(NODE_WIDTH - 10, y, `${drops} dropped (10 s)`, 'drops');
    d.setAttribute('text-anchor', 'end');
    g.append(d);
  }
  y += 16;
  g.append(text(10, y, truncate(n.label, MAX_CHARS - 4), 'label'));
  const detail = [n.detail, ...(n.rateLimits ?? []).map((r) => `rate limit ${r}`)].filter(Boolean).join(' · ');
  if (detail) g.append(text(10, (y += 15), truncate(detail, MAX_CHARS), 'detail'));
  if (rate || flows) g.append(text(10, (y += 15), flowText(rate, flows), 'rate'));

  if (n.problem) g.append(text(10, (y += 15), truncate(n.problem, MAX_CHARS), 'problem'));
  g.addEventListener('click', () => onSelect(n));
  return g;
}

/** Requests when the counters have them; flow records otherwise (a Service only the kernel saw). */
function flowText(rate: UiRate | undefined, flows: number | undefined): string {
  if (rate) return rateText(rate);
  return flows ? `${flows.toFixed(1)} flows/s` : '';
}

function rateText(rate: UiRate): string {
  return `${rate.rps.toFixed(1)} req/s${rate.errorRps > 0 ? ` (${rate.errorRps.toFixed(1)} 5xx)` : ''} · ${rate.total} total`;
}

/** Positions: columns left to right; within a column, by the mean row of the nodes pointing in. */
function layout(graph: UiGraph): Map<string, Placed> {
  const incoming = new Map<string, string[]>();
  for (const e of graph.edges) (incoming.get(e.to) ?? incoming.set(e.to, []).get(e.to)!).push(e.from);
  const row = new Map<string, number>();
  const placed = new Map<string, Placed>();
  COLUMNS.forEach((column, i) => {
    const nodes = graph.nodes.filter((n) => n.column === column);
    const weight = (n: UiNode) => {
      const rows = (incoming.get(n.id) ?? []).map((id) => row.get(id)).filter((r): r is number => r !== undefined);
      return rows.length > 0 ? rows.reduce((a, b) => a + b, 0) / rows.length : Number.MAX_SAFE_INTEGER;
    };
    nodes.sort((a, b) => weight(a) - weight(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let y = TOP;
    nodes.forEach((n, r) => {
      row.set(n.id, r);
      const lines = 2 + (n.detail || n.rateLimits ? 1 : 0) + 1 + (n.problem ? 1 : 0);
      const height = 12 + lines * 15;
      placed.set(n.id, { node: n, x: 20 + i * (NODE_WIDTH + GAP_X), y, height });
      y += height + GAP_Y;
    });
  });
  return placed;
}

function el(name: string, attributes: Record<string, string>): SVGElement {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  return e;
}

function text(x: number, y: number, content: string, cls: string): SVGElement {
  const t = el('text', { x: String(x), y: String(y), class: cls });
  t.textContent = content;
  return t;
}

function title(content: string): SVGElement {
  const t = el('title', {});
  t.textContent = content;
  return t;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
