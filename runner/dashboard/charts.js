// Charts as SVG nodes (built with s(), no markup): runs per minute by status, durations per
// job, queue lengths over the last 3 hours and firing lateness per schedule, with time
// labels and units (seconds on a log scale); a job's duration trend; a schedule's firings.
"use strict";
const COLORS = {SUCCESS: "#2f9e44", FAILURE: "#c92a2a", REVOKED: "#e8590c", STARTED: "#1971c2", WAITING: "#7048e8",
  PENDING: "#868e96", RECEIVED: "#868e96", SKIPPED: "#adb5bd", MISSED: "#ced4da"};
const PALETTE = ["#1971c2", "#e8590c", "#2f9e44", "#9c36b5", "#c92a2a", "#0c8599", "#5c940d"];
const X0 = 40, X1 = 595, Y0 = 140, Y1 = 14;  // the plot area inside a 600 x 160 box

async function charts() {
  try {
    const st = await api("/api/stats?minutes=180");
    statCharts(st);
  } catch (err) { /* shown again on the next round */ }
  if (state.token) setTimeout(charts, 15000);
}

// a tick every STEP seconds, the first step that gives at most 7 ticks over the span;
// labelled hh:mm (hh:mm:ss under a minute), or mm-dd hh:mm once the span passes a day
const STEPS = [10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];
function timeAxis(start, end) {
  const step = STEPS.find((x) => (end - start) / x <= 7) || STEPS[STEPS.length - 1];
  const label = (t) => stamp(t).slice(end - start > 86400 ? 5 : 11, step < 60 ? 19 : 16);
  const out = [s("line", {x1: X0, y1: Y0, x2: X1, y2: Y0, class: "axis"})];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    const x = X0 + ((t - start) / (end - start)) * (X1 - X0);
    out.push(s("line", {x1: x, y1: Y0, x2: x, y2: Y0 + 4, class: "axis"}),
      s("text", {x, y: Y0 + 15, "text-anchor": "middle", class: "tick"}, label(t)));
  }
  return out;
}

function rateChart(perMinute) {
  const now = Math.floor(Date.now() / 60000) * 60, start = now - 179 * 60;
  let max = 1;
  for (const m of perMinute) max = Math.max(max, Object.entries(m).reduce((n, [k, v]) => k === "minute" ? n : n + v, 0));
  const w = (X1 - X0) / 180, bars = [];
  for (const m of perMinute) {
    const i = (m.minute - start) / 60;
    if (i < 0 || i >= 180) continue;
    let y = Y0;
    for (const [k, v] of Object.entries(m)) {
      if (k === "minute") continue;
      const hgt = (v / max) * (Y0 - Y1);
      y -= hgt;
      bars.push(s("rect", {x: X0 + i * w, y, width: Math.max(2, w - 0.5), height: hgt, fill: COLORS[k] || "#999"},
        s("title", {}, `${stamp(m.minute)} ${k}: ${v}`)));
    }
  }
  $("#chart-rate").replaceChildren(...timeAxis(start, now + 60), ...bars,
    s("text", {x: X0 - 4, y: Y1 + 4, "text-anchor": "end", class: "tick"}, `${max}/min`),
    s("text", {x: X0 - 4, y: Y0, "text-anchor": "end", class: "tick"}, "0"));
}

// y of `seconds` on a log scale from 0.01 s to `max`
function logY(seconds, max) {
  const lo = Math.log10(0.01), hi = Math.log10(Math.max(max, 0.1));
  return Y0 - ((Math.log10(Math.max(seconds, 0.01)) - lo) / (hi - lo)) * (Y0 - Y1);
}
function logAxis(max) {
  const out = [];
  for (let v = 0.01; v <= Math.max(max, 0.1) * 1.0001; v *= 10) {
    out.push(s("line", {x1: X0, y1: logY(v, max), x2: X1, y2: logY(v, max), class: "grid-line"}),
      s("text", {x: X0 - 4, y: logY(v, max) + 3, "text-anchor": "end", class: "tick"}, words(v)));
  }
  return out;
}

function durationChart(durations) {
  const end = Date.now() / 1000, start = end - 180 * 60;
  let max = 0.1;
  for (const d of Object.values(durations)) max = Math.max(max, d.max);
  const dots = [], legend = [];
  Object.entries(durations).forEach(([job, d], i) => {
    const c = PALETTE[i % PALETTE.length];
    legend.push(h("span", {}, h("i", {dataset: {color: c}}), `${job} p50 ${words(d.p50)}`));
    for (const [at, took] of d.points) {
      dots.push(s("circle", {cx: X0 + ((at - start) / (end - start)) * (X1 - X0), cy: logY(took, max), r: 2.5, fill: c},
        s("title", {}, `${job} ${words(took)} at ${stamp(at)}`)));
    }
  });
  $("#chart-dur").replaceChildren(...logAxis(max), ...timeAxis(start, end), ...dots);
  colorLegend($("#dur-legend"), legend);
}

// A job's durations ([[finished, seconds]...]) over their own span, log scale.
function trendChart(points) {
  const start = Math.min(...points.map((p) => p[0])), end = Math.max(start + 60, ...points.map((p) => p[0]));
  const max = Math.max(0.1, ...points.map((p) => p[1]));
  return h("div", {class: "trend"}, h("h3", {}, "durations"), s("svg", {viewBox: "0 0 600 160", role: "img",
    "aria-label": "run durations"}, ...logAxis(max), ...timeAxis(start, end),
  ...points.map(([at, took]) => s("circle", {cx: X0 + ((at - start) / (end - start)) * (X1 - X0),
    cy: logY(took, max), r: 2.5, fill: PALETTE[0]}, s("title", {}, `${words(took)} at ${stamp(at)}`)))));
}

function statCharts(st) {
  rateChart(st.per_minute); durationChart(st.durations);
  queueChart(st.queues); latenessChart(st.lateness);
}

// Queue lengths ({QUEUE: [[unix, length]...]}): a line per queue; hidden when the API has none.
function queueChart(queues) {
  $("#queues-chart").hidden = !queues;
  if (!queues) return;
  const end = Date.now() / 1000, start = end - 180 * 60;
  const max = Math.max(1, ...Object.values(queues).flat().map((p) => p[1]));
  const y = (n) => Y0 - (n / max) * (Y0 - Y1);
  const lines = [], legend = [];
  Object.entries(queues).forEach(([q, points], i) => {
    const c = PALETTE[i % PALETTE.length];
    legend.push(h("span", {}, h("i", {dataset: {color: c}}), `${q} now ${points.length ? points[points.length - 1][1] : 0}`));
    const xy = points.filter((p) => p[0] >= start).map(([t, n]) => `${X0 + ((t - start) / (end - start)) * (X1 - X0)},${y(n)}`);
    if (xy.length) lines.push(s("polyline", {points: xy.join(" "), fill: "none", stroke: c, "stroke-width": 2}, s("title", {}, q)));
  });
  $("#chart-queues").replaceChildren(...timeAxis(start, end), ...lines,
    s("text", {x: X0 - 4, y: Y1 + 4, "text-anchor": "end", class: "tick"}, `${max} msgs`),
    s("text", {x: X0 - 4, y: Y0, "text-anchor": "end", class: "tick"}, "0"));
  colorLegend($("#queues-legend"), legend);
}

function colorLegend(box, items) {
  box.replaceChildren(...items);
  for (const i of box.querySelectorAll("i[data-color]")) i.style.background = i.dataset.color;
}

// Firing lateness: a bar per schedule ({SCHEDULE: seconds}, log scale); an API that keeps
// only the histogram (count, p50, p99, last) gets its figures written instead.
function latenessChart(late) {
  const box = $("#chart-late"), note = $("#late-note");
  if (!late || typeof late.count === "number") {
    box.hidden = true;
    note.textContent = late && late.count ? `${late.count} firings queued · p50 ${words(late.p50)} · ` +
      `p99 ${words(late.p99)} · last ${words(late.last)} late` : "no firing queued yet";
    return;
  }
  const rows = Object.entries(late).sort((a, b) => b[1] - a[1]).slice(0, 12);
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const lo = Math.log10(0.01), hi = Math.log10(max);
  const x = (v) => X0 + 80 + ((Math.log10(Math.max(v, 0.01)) - lo) / (hi - lo)) * (X1 - X0 - 80);
  const row = Math.min(24, (Y0 - Y1) / Math.max(rows.length, 1));
  const out = [s("line", {x1: X0 + 80, y1: Y0, x2: X1, y2: Y0, class: "axis"})];
  for (let v = 0.01; v <= max * 1.0001; v *= 10) {
    out.push(s("line", {x1: x(v), y1: Y1, x2: x(v), y2: Y0, class: "grid-line"}),
      s("text", {x: x(v), y: Y0 + 15, "text-anchor": "middle", class: "tick"}, words(v)));
  }
  rows.forEach(([name, v], i) => {
    const top = Y1 + i * row;
    out.push(s("text", {x: X0 + 76, y: top + row / 2 + 3, "text-anchor": "end", class: "tick"}, name.slice(0, 18)),
      s("rect", {x: X0 + 80, y: top + 1, width: Math.max(2, x(v) - X0 - 80), height: Math.max(2, row - 2),
        fill: v >= LATE ? "#a34d00" : PALETTE[0]}, s("title", {}, `${name}: ${words(v)} late`)),
      s("text", {x: Math.max(x(v), X0 + 82) + 4, y: top + row / 2 + 3, class: "tick"}, words(v)));
  });
  box.hidden = false;
  note.textContent = "";
  box.replaceChildren(...out);
}

// A schedule's past firings on a time line: ran (the run's state colour), missed, skipped,
// late (a ring: queued LATE seconds or more after its instant, or its run passed its deadline).
const LATE = 5;
function firingsChart(firings) {
  const at = (f) => Date.parse(f.at) / 1000;
  const shown = firings.filter((f) => f.at && !isNaN(at(f)));
  const first = Math.min(end0(), ...shown.map(at));
  const end = end0() + (end0() - first) * 0.03, start = Math.min(end - 60, first - (end - first) * 0.03);
  const x = (t) => X0 + ((t - start) / (end - start)) * (X1 - X0);
  const marks = shown.map((f) => {
    const kind = firingKind(f), cy = {ran: 50, late: 50, skipped: 80, missed: 110}[kind];
    return s("circle", {cx: x(at(f)), cy, r: 5, fill: COLORS[f.state] || "#6b7480",
      class: kind === "late" ? "late" : null},
    s("title", {}, `${stamp(f.at)} ${kind}${f.late ? `, queued ${words(f.late)} after` : ""}` +
      `${f.overdue ? `, overdue at ${stamp(f.overdue)}` : ""}${f.run_id ? " · " + f.run_id : ""}` +
      `${f.error ? ": " + f.error : ""}`));
  });
  return h("div", {class: "trend"}, h("h3", {}, "past firings"), s("svg", {id: "firings-chart",
    viewBox: "0 0 600 160", role: "img", "aria-label": `${shown.length} past firings on a time line`},
  ...["ran", "skipped", "missed"].map((k, i) => [s("line", {x1: X0, y1: 50 + 30 * i, x2: X1, y2: 50 + 30 * i,
    class: "grid-line"}), s("text", {x: X0, y: 40 + 30 * i, class: "tick"}, k)]).flat(), ...timeAxis(start, end), ...marks));
}
const end0 = () => Date.now() / 1000;
const firingKind = (f) => f.state === "MISSED" ? "missed" : f.state === "SKIPPED" ? "skipped"
  : (f.late || 0) >= LATE || f.overdue ? "late" : "ran";
