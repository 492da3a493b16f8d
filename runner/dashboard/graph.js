// A workflow's graph as SVG (issue 20): nodes in layers by their topological depth, edges as
// lines styled by their `when`, each node coloured by its state in a workflow run. DOM nodes
// only (no markup from data); loaded after dom.js (SVG_NS), before app.js, which calls
// drawWorkflow.
"use strict";
const NODE_W = 160, NODE_H = 44, GAP_X = 70, GAP_Y = 26, PAD = 16;

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Where each node sits: x by depth, y by its place in its layer (topological order).
function layout(nodes) {
  const rows = new Map(), at = new Map();
  for (const n of nodes) {
    const row = rows.get(n.depth) || 0;
    rows.set(n.depth, row + 1);
    at.set(n.name, {x: PAD + n.depth * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y)});
  }
  const width = PAD * 2 + (Math.max(0, ...nodes.map((n) => n.depth)) + 1) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...rows.values()) * (NODE_H + GAP_Y) - GAP_Y;
  return {at, width, height};
}

function drawEdge(svg, e, at) {
  const a = at.get(e.from), b = at.get(e.to);
  const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
  const g = svgEl("g", {class: `edge ${e.when}`, "data-from": e.from, "data-to": e.to});
  g.append(svgEl("line", {x1, y1, x2: x2 - 2, y2, "marker-end": "url(#arrow)"}));
  if (e.when !== "on_success") {  // the default goes unlabelled
    g.append(svgEl("text", {x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle"},
      e.when.replace("_", " ")));
  }
  g.append(svgEl("title", {}, `${e.from} → ${e.to} (${e.when})`));
  svg.append(g);
}

function drawNode(svg, n, p, run, onOpen) {
  const state = run ? (run.state || "pending") : "definition";
  const child = run && run.run_id;
  const g = svgEl("g", {class: `node kind-${n.kind} ${state}${child ? " link" : ""}`,
    "data-node": n.name, "data-state": state, transform: `translate(${p.x},${p.y})`});
  g.append(svgEl("rect", {width: NODE_W, height: NODE_H, rx: 6}));
  g.append(svgEl("text", {x: 8, y: 18, class: "name"}, n.name));
  const what = n.kind === "approval" ? `approval: ${n.approval}` : n.job + (n.limit ? ` (${n.limit})` : "");
  const label = run ? `${state === "approval" ? "waiting" : state} · ${what}` : what;
  g.append(svgEl("text", {x: 8, y: 35, class: "what"}, label.length > 24 ? label.slice(0, 23) + "…" : label));
  const tip = [n.kind === "approval" ? n.approval : `job ${n.job}`, `when ${n.when}`];
  if (run && run.decision) tip.push(`${run.decision} by ${run.by || "runner"}${run.comment ? ": " + run.comment : ""}`);
  if (child) tip.push(`run ${child} (click to open)`);
  g.append(svgEl("title", {}, tip.join("\n")));
  if (child) g.addEventListener("click", () => onOpen(child));
  svg.append(g);
}

// Draws `graph` (GET /api/workflows/NAME) into a new <svg class="dag"> appended to `parent`;
// `nodes` (a workflow run's record.workflow.nodes) colours them; onOpen(runId) on a click.
function drawWorkflow(parent, graph, nodes, onOpen) {
  const {at, width, height} = layout(graph.nodes);
  const svg = svgEl("svg", {class: "dag", "data-workflow": graph.name,
    viewBox: `0 0 ${width} ${height}`, width, height});
  const marker = svgEl("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"});
  marker.append(svgEl("path", {d: "M 0 0 L 10 5 L 0 10 z"}));
  const defs = svgEl("defs");
  defs.append(marker);
  svg.append(defs);
  for (const e of graph.edges) drawEdge(svg, e, at);
  for (const n of graph.nodes) {
    drawNode(svg, n, at.get(n.name), nodes ? (nodes[n.name] || {state: "pending"}) : null, onOpen);
  }
  parent.append(svg);
  return svg;
}
