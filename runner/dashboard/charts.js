// Charts as SVG nodes (built with s(), no markup): runs per minute by status and durations
// per job over the last 3 hours, with time labels and a log scale of seconds; a job's
// duration trend.
"use strict";
const COLORS = {SUCCESS: "#2f9e44", FAILURE: "#c92a2a", REVOKED: "#e8590c", STARTED: "#1971c2", WAITING: "#7048e8",
  PENDING: "#868e96", RECEIVED: "#868e96", SKIPPED: "#adb5bd", MISSED: "#ced4da"};
const PALETTE = ["#1971c2", "#e8590c", "#2f9e44", "#9c36b5", "#c92a2a", "#0c8599", "#5c940d"];
const X0 = 40, X1 = 595, Y0 = 140, Y1 = 14;  // the plot area inside a 600 x 160 box

async function charts() {
  try {
    const st = await api("/api/stats?minutes=180");
    rateChart(st.per_minute); durationChart(st.durations);
  } catch (err) { /* shown again on the next round */ }
  if (state.token) setTimeout(charts, 15000);
}

const hhmm = (t) => stamp(t).slice(11, 16);
function timeAxis(start, end) {  // a label every hour (or every fifth of the span)
  const step = end - start > 2 * 3600 ? 3600 : Math.max(60, Math.round((end - start) / 300) * 60);
  const out = [s("line", {x1: X0, y1: Y0, x2: X1, y2: Y0, class: "axis"})];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    const x = X0 + ((t - start) / (end - start)) * (X1 - X0);
    out.push(s("line", {x1: x, y1: Y0, x2: x, y2: Y0 + 4, class: "axis"}),
      s("text", {x, y: Y0 + 15, "text-anchor": "middle", class: "tick"}, hhmm(t)));
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
  $("#dur-legend").replaceChildren(...legend);
  for (const i of $("#dur-legend").querySelectorAll("i[data-color]")) i.style.background = i.dataset.color;
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
