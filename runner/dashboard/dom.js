// The dashboard's building blocks, loaded first: h() builds DOM nodes (strings become text
// nodes, never markup: nothing is parsed as HTML), the API call with the tab's token, and
// the words for times and durations (`runner plan`'s: 1h30m, every 1m; dates with their zone).
"use strict";
const $ = (s, root = document) => root.querySelector(s);
const SVG_NS = "http://www.w3.org/2000/svg";

// h("a", {href: "/x", class: "c", dataset: {runId: id}, onclick: f}, "text", child, [more])
function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && !(el instanceof SVGElement) && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

// a run's state badge (its title: the limits it waits for a slot of, if any);
// `late` beside it when its deadline passed while it was active
const stateBadge = (r, attrs = {}) => [
  h("span", {...attrs, class: "state " + r.state,
    ...(r.waiting && r.waiting.length ? {title: "waiting for " + r.waiting.join(", ")} : {})}, r.state),
  r.late ? [" ", h("span", {class: "state late", title: `its deadline passed at ${r.late}`}, "late")] : []];

const state = {token: sessionStorage.getItem("runner-token") || "", role: null,
  workers: {}, queues: {}, schedules: {}, jobs: {}, status: {}, ws: null, backoff: 500,
  workflows: {}, graphs: new Map()};

async function api(path, options = {}) {
  const res = await fetch(path, {...options,
    headers: {...(options.headers || {}), Authorization: "Bearer " + state.token}});
  if (res.status === 401) { signOut("the token was refused"); throw new Error("401"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw Object.assign(new Error(detail || res.statusText), {status: res.status});
  }
  return body;
}

// 2026-12-02 01:30:00 UTC+01:00: in the viewer's zone, or in `zone` (an IANA name).
function stamp(t, zone) {
  if (t === null || t === undefined || t === "") return "-";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  const parts = {};
  for (const p of new Intl.DateTimeFormat("en-CA", {timeZone: zone || undefined, hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", timeZoneName: "longOffset"}).formatToParts(d)) parts[p.type] = p.value;
  const off = (parts.timeZoneName || "GMT").replace("GMT", "UTC");
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ` +
    (off === "UTC" ? "UTC+00:00" : off);
}
const time = (t) => stamp(t);  // approvals.js's name for it

// Seconds in the configuration's words: 5400 -> 1h30m; under a minute with hundredths.
function words(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "-";
  if (seconds < 60) return `${+seconds.toFixed(seconds < 10 ? 2 : 0)}s`;
  let rest = Math.round(seconds), out = "";
  for (const [unit, name] of [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]]) {
    if (rest >= unit) { out += Math.floor(rest / unit) + name; rest %= unit; }
  }
  return out;
}
const took = (r) => (r.started && r.finished ? words(r.finished - r.started) : "-");

// A link inside the dashboard: a real href, opened without a reload (app.js's go()).
const link = (path, ...children) => h("a", {href: path}, ...children);
const runLink = (id) => link("/runs/" + encodeURIComponent(id), h("code", {}, id));
const cell = (...children) => h("td", {}, ...children);

// "12s ago": the age of a UNIX time in the same words.
const ago = (t) => (t ? words(Math.max(0, Math.round(Date.now() / 1000 - t))) + " ago" : "-");

// Does this API serve METHOD PATH ("/api/runs/{}/output": any parameter names)? Read once
// from its OpenAPI document, so a control whose endpoint an older API lacks stays hidden.
let openapi = null;
async function hasRoute(method, path) {
  if (!openapi) {
    openapi = fetch("/openapi.json").then((r) => (r.ok ? r.json() : {})).catch(() => ({}))
      .then((doc) => new Set(Object.entries(doc.paths || {}).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m} ${p.replace(/\{[^}]*\}/g, "{}")}`))));
  }
  return (await openapi).has(`${method.toLowerCase()} ${path}`);
}
