// runner dashboard: a snapshot over the WebSocket, then live events; REST for details and
// actions. No build step, no dependencies. The token lives in this tab only (sessionStorage):
// a reload keeps it, another tab or a restarted browser asks again.
"use strict";
const $ = (s) => document.querySelector(s);
const COLORS = {SUCCESS: "#2f9e44", FAILURE: "#c92a2a", REVOKED: "#e8590c", STARTED: "#1971c2",
  PENDING: "#868e96", RECEIVED: "#868e96", SKIPPED: "#adb5bd", MISSED: "#ced4da"};
const ACTIVE = new Set(["PENDING", "RECEIVED", "STARTED"]);
const MAX_RUNS = 200;
localStorage.removeItem("runner-token");  // where earlier versions kept it, for good
const state = {token: sessionStorage.getItem("runner-token") || "", role: null, runs: new Map(),
  workers: {}, queues: {}, schedules: {}, jobs: {}, status: {}, ws: null, backoff: 500,
  workflows: {}, graphs: new Map()};

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[c]));
}
function time(t) { return t ? new Date(t * 1000).toLocaleTimeString() : "-"; }
function when(iso) {  // a next fire: today's as a time, later ones with their date
  if (!iso) return "-";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
function took(r) { return r.started && r.finished ? (r.finished - r.started).toFixed(2) + "s" : "-"; }

async function api(path, options = {}) {
  const res = await fetch(path, {...options,
    headers: {...(options.headers || {}), Authorization: "Bearer " + state.token}});
  if (res.status === 401) { signOut("the token was refused"); throw new Error("401"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function signOut(why) {
  sessionStorage.removeItem("runner-token");
  state.token = "";
  if (state.ws) state.ws.close();
  $("#main").hidden = true; $("#login").hidden = false; $("#signout").hidden = true;
  $("#login-error").textContent = why || "";
}

async function signIn() {
  const me = await api("/api/whoami");
  state.role = me.role;
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#login").hidden = true; $("#main").hidden = false; $("#signout").hidden = false;
  connect();
  charts();
  loadWorkflows();
  loadApprovals();
  const linked = location.hash.match(/^#run=([0-9a-f-]+)$/);  // a notification's link
  if (linked) showRun(linked[1]);
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/events";
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({token: state.token}));
  ws.onmessage = (m) => { state.backoff = 500; onEvent(JSON.parse(m.data)); };
  ws.onclose = (e) => {
    $("#conn").className = "conn off"; $("#conn").textContent = "reconnecting";
    if (e.code === 4401) { signOut(e.reason || "the token was refused"); return; }
    if (state.token && state.ws === ws) {
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(10000, state.backoff * 2);
    }
  };
}

function onEvent(e) {
  if (e.kind === "snapshot") {
    $("#conn").className = "conn on"; $("#conn").textContent = "live";
    state.runs = new Map(e.runs.map((r) => [r.run_id, r]));
    state.workers = e.workers || {}; state.status = e.status || {};
    state.queues = e.queues || {}; state.schedules = e.schedules || {}; state.jobs = e.jobs || {};
    renderAll(); refreshSoon();
  } else if (e.kind === "run") {
    state.runs.set(e.run_id, {...(state.runs.get(e.run_id) || {}), ...e.run});
    renderRuns();
    if (!$("#detail").hidden && $("#detail-id").textContent === e.run_id) showRun(e.run_id);
    if (e.run.workflow) approvalsSoon();
    refreshSoon();
  } else if (e.kind === "workers") {
    state.workers = e.workers; renderWorkers(); refreshSoon();
  } else if (e.kind === "reconcile") {
    state.graphs.clear(); loadWorkflows(); refreshSoon();
  } else if (e.kind === "beat" || e.kind === "suspended") {
    refreshSoon();
  } else if (e.kind === "schedule") {
    refreshSoon();
  }
}

let pending = null;
function refreshSoon() {  // queues, schedules and status change with runs: one refresh per burst
  if (pending) return;
  pending = setTimeout(async () => {
    pending = null;
    try {
      const [queues, schedules, status, stats, limits] = await Promise.all(
        [api("/api/queues"), api("/api/schedules"), api("/api/status"), api("/api/stats?minutes=180"),
          api("/api/limits")]);
      state.queues = queues; state.schedules = schedules; state.status = status;
      renderQueues(); renderSchedules(); renderStatus(); renderLimits(limits);
      rateChart(stats.per_minute); durationChart(stats.durations);
    } catch (err) { /* the next event tries again */ }
  }, 300);
}

function renderAll() {
  renderStatus(); renderRuns(); renderWorkers(); renderQueues(); renderSchedules(); renderJobs();
}

function renderStatus() {
  const s = state.status;
  const applied = (s.applied_revision || "none").slice(0, 12);
  const attempted = (s.attempted_revision || "-").slice(0, 12);
  $("#revision").textContent = `applied ${applied} · attempted ${attempted} · beat ${s.beat_alive ? "up" : "down"}`;
  const errors = [...(s.errors || []).map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`),
    ...[s.fetch_error, s.refused].filter(Boolean)];
  $("#errors").hidden = errors.length === 0;
  $("#error-list").innerHTML = errors.map((x) => `<li>${esc(x)}</li>`).join("");
}

const lateBadge = (r) => r.late ? ` <span class="state late" title="its deadline passed at ${esc(r.late)}">late</span>` : "";

function renderRuns() {
  const runs = [...state.runs.values()].sort((a, b) => (b.created || 0) - (a.created || 0));
  for (const r of runs.slice(MAX_RUNS)) state.runs.delete(r.run_id);
  const operator = state.role === "operator";
  $("#runs tbody").innerHTML = runs.slice(0, MAX_RUNS).map((r) => {
    const act = !operator ? "" : ACTIVE.has(r.state)
      ? `<button class="cancel" data-run-id="${esc(r.run_id)}">cancel</button>`
      : `<button class="retry" data-run-id="${esc(r.run_id)}">retry</button>`;
    return `<tr data-run-id="${esc(r.run_id)}" data-state="${esc(r.state)}" data-job="${esc(r.job)}" data-schedule="${esc(r.schedule || "")}">
      <td><code>${esc(r.run_id)}</code></td><td>${esc(r.job)}</td>
      <td><span class="state ${esc(r.state)}" title="${esc((r.waiting || []).join(", "))}">${r.waiting && r.waiting.length ? "WAITING" : esc(r.state)}</span>${lateBadge(r)}</td><td>${esc(r.queue)}</td>
      <td>${esc(r.worker || "")}</td><td>${time(r.created)}</td><td>${took(r)}</td>
      <td>${esc(r.trigger || "")}</td><td>${act}</td></tr>`;
  }).join("");
}

function renderWorkers() {
  $("#workers tbody").innerHTML = Object.entries(state.workers).map(([host, w]) => `<tr data-worker="${esc(host)}">
    <td>${esc(w.name)}</td><td>${esc(w.hostname)}</td><td>${esc((w.queues || []).join(", "))}</td>
    <td>${esc(w.concurrency)}</td><td>${esc(w.active)}</td><td>${esc(w.processed)}</td>
    <td>${w.load == null ? "-" : Math.round(w.load * 100) + "%"}</td>
    <td>${w.memory_kib ? Math.round(w.memory_kib / 1024) + " MiB" : "-"}</td>
    <td title="${esc(host)}">${time(w.last_heartbeat)}</td></tr>`).join("")
    || `<tr><td colspan="9">no worker answering</td></tr>`;
}

function renderQueues() {
  $("#queues tbody").innerHTML = Object.entries(state.queues).map(([q, i]) => `<tr>
    <td>${esc(q)}</td><td class="length">${esc(i.length)}</td><td>${esc(i.priority)}</td>
    <td>${esc(i.consumers)}</td></tr>`).join("");
}

function renderLimits(limits) {  // who holds and who waits for each cluster-wide limit
  const who = (es) => es.map((e) => `${e.run_id}${e.target ? " on " + e.target : ""}`).join(", ");
  $("#limits tbody").innerHTML = Object.entries(limits).map(([n, l]) => `<tr data-limit="${esc(n)}">
    <td>${esc(n)}</td><td class="held">${l.held.length}/${esc(l.max)}</td><td>${esc(who(l.held))}</td>
    <td class="waiting">${esc(who(l.waiting))}</td></tr>`).join("");
}

function renderSchedules() {
  $("#schedules tbody").innerHTML = Object.entries(state.schedules).map(([n, s]) => `<tr data-schedule="${esc(n)}">
    <td>${esc(n)}${s.suspended ? " (suspended)" : ""}</td><td>${esc(s.job)}</td>
    <td>${esc(s.when)} ${esc(s.timezone)}</td><td class="next" title="${esc(s.next_fire || "")}">${when(s.next_fire)}</td>
    <td><code>${esc(s.last_run_id || "-")}</code></td></tr>`).join("");
}

function renderJobs() {
  const operator = state.role === "operator";
  $("#jobs tbody").innerHTML = Object.entries(state.jobs).map(([n, j]) => `<tr>
    <td>${esc(n)}</td><td>${esc(j.queue)}</td><td>${esc(j.description)}</td>
    <td>${operator ? `<button class="run" data-job="${esc(n)}">run now</button>` : ""}</td></tr>`).join("");
}

async function showRun(id) {
  const r = await api("/api/runs/" + encodeURIComponent(id));
  $("#detail").hidden = false;
  $("#detail-id").textContent = id;
  const targets = Object.entries((r.result || {}).targets || {});
  const times = ["created", "received", "started", "finished"].map((k) => `${k} ${time(r[k])}`).join(" · ");
  $("#detail-body").innerHTML = `
    <p><span class="state ${esc(r.state)}">${esc(r.state)}</span>${lateBadge(r)} ${esc(r.job)} on ${esc(r.queue)}
      by ${esc(r.worker || "-")} · revision <code>${esc((r.revision || "").slice(0, 12))}</code> ·
      trigger ${esc(r.trigger)} · deliveries ${esc(r.deliveries || 0)}</p>
    <p>${times}</p>
    ${r.error ? `<p class="error">${esc(r.error)}</p>` : ""}
    ${(r.actions || []).map((a) => `<p>${esc(a.action)} by ${esc(a.by)} at ${time(a.at)}</p>`).join("")}
    ${targets.map(([name, t]) => `<details class="target" data-target="${esc(name)}">
      <summary><span class="state ${t.status === "success" ? "SUCCESS" : "FAILURE"}">${esc(t.status)}</span>
      ${esc(name)} rc ${esc(t.rc)} in ${esc(t.duration)}s ${esc(t.error || "")}</summary>
      <h3>stdout</h3><pre>${esc(t.stdout)}</pre><h3>stderr</h3><pre>${esc(t.stderr)}</pre></details>`).join("")
      || (r.workflow ? "" : "<p>no target result yet</p>")}`;
  const parent = r.parent ? document.createElement("p") : null;
  if (parent) {  // a child run: the way back to its workflow run
    const link = document.createElement("a");
    link.href = "#"; link.className = "parent"; link.dataset.runId = r.parent;
    link.textContent = `workflow run ${r.parent}, node ${r.node || "?"}`;
    parent.append("part of ", link);
    $("#detail-body").prepend(parent);
  }
  if (r.workflow) await drawRunGraph(r);
}

// ---- workflows (issue 20): the definitions, and a workflow run's graph ------------------
async function loadWorkflows() {
  try { state.workflows = (await api("/api/workflows")).workflows; } catch (err) { return; }
  const rows = Object.entries(state.workflows).map(([name, w]) => {
    const tr = document.createElement("tr");
    tr.dataset.workflow = name;
    for (const v of [name, w.description, w.nodes, w.schedules.join(", ") || "-"]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  });
  $("#workflows tbody").replaceChildren(...rows);
  $("#workflows-section").hidden = rows.length === 0;
}

async function graphOf(name) {
  if (!state.graphs.has(name)) state.graphs.set(name, await api("/api/workflows/" + encodeURIComponent(name)));
  return state.graphs.get(name);
}

async function showWorkflow(name) {
  const g = await graphOf(name);
  $("#workflow").hidden = false;
  $("#workflow-name").textContent = name;
  const about = document.createElement("p");
  about.textContent = `${g.description || ""} · schedules: ${g.schedules.join(", ") || "none"}`;
  $("#workflow-body").replaceChildren(about);
  drawWorkflow($("#workflow-body"), g, null, showRun);
}

async function drawRunGraph(r) {
  const body = $("#detail-body");
  let g;
  try { g = await graphOf(r.job); } catch (err) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = `workflow ${r.job} is not in the configuration any more: ${err.message}`;
    body.append(p);
    return;
  }
  if ($("#detail-id").textContent !== r.run_id) return;  // another run was opened meanwhile
  for (const old of body.querySelectorAll("svg.dag, .approval-bar")) old.remove();
  drawWorkflow(body, g, r.workflow.nodes || {}, showRun);
  body.append(...approvalBars(g, r));
}

async function act(path, method = "POST") {
  try { await api(path, {method}); } catch (err) { alert(err.message); }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && b.classList.contains("cancel")) { e.stopPropagation(); act(`/api/runs/${b.dataset.runId}/cancel`); return; }
  if (b && b.classList.contains("retry")) { e.stopPropagation(); act(`/api/runs/${b.dataset.runId}/retry`); return; }
  if (b && b.classList.contains("run")) { act(`/api/jobs/${b.dataset.job}/run`); return; }
  if (b && (b.classList.contains("approve") || b.classList.contains("reject"))) {
    e.stopPropagation(); decide(b); return;
  }
  const row = e.target.closest("tr[data-run-id]");
  if (row) showRun(row.dataset.runId);
  const flow = e.target.closest("tr[data-workflow]");
  if (flow) showWorkflow(flow.dataset.workflow);
  const up = e.target.closest("a.parent");
  if (up) { e.preventDefault(); showRun(up.dataset.runId); }
});
$("#detail-close").onclick = () => { $("#detail").hidden = true; };
$("#workflow-close").onclick = () => { $("#workflow").hidden = true; };
$("#signout").onclick = () => signOut();
$("#login").onsubmit = (e) => {
  e.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("runner-token", state.token);
  signIn().catch((err) => signOut(String(err.message)));
};

// ---- charts: plain SVG ----------------------------------------------------------------
async function charts() {
  try {
    const s = await api("/api/stats?minutes=180");
    rateChart(s.per_minute); durationChart(s.durations);
  } catch (err) { /* shown again on the next round */ }
  if (state.token) setTimeout(charts, 15000);
}

function rateChart(perMinute) {
  const svg = $("#chart-rate");
  const now = Math.floor(Date.now() / 60000) * 60, start = now - 179 * 60;
  const byMinute = new Map(perMinute.map((m) => [m.minute, m]));
  let max = 1;
  for (const m of perMinute) max = Math.max(max, Object.entries(m).reduce((n, [k, v]) => k === "minute" ? n : n + v, 0));
  const w = 600 / 180;
  let out = "";
  for (let i = 0; i < 180; i++) {
    const m = byMinute.get(start + i * 60);
    if (!m) continue;
    let y = 150;
    for (const [k, v] of Object.entries(m)) {
      if (k === "minute") continue;
      const h = (v / max) * 140;
      y -= h;
      out += `<rect x="${i * w}" y="${y}" width="${Math.max(1, w - 0.5)}" height="${h}" fill="${COLORS[k] || "#999"}"><title>${k}: ${v}</title></rect>`;
    }
  }
  svg.innerHTML = out + `<text x="2" y="12" font-size="10">max ${max}/min</text>`;
}

const PALETTE = ["#1971c2", "#e8590c", "#2f9e44", "#9c36b5", "#c92a2a", "#0c8599", "#5c940d"];
function durationChart(durations) {
  const svg = $("#chart-dur");
  const start = Date.now() / 1000 - 180 * 60;
  let max = 0.001;
  for (const d of Object.values(durations)) max = Math.max(max, d.max);
  let out = "", legend = "", i = 0;
  for (const [job, d] of Object.entries(durations)) {
    const c = PALETTE[i++ % PALETTE.length];
    legend += `<span><i data-color="${c}"></i>${esc(job)} p50 ${d.p50}s</span>`;
    for (const [at, took] of d.points) {
      out += `<circle cx="${((at - start) / (180 * 60)) * 600}" cy="${150 - (took / max) * 140}" r="2" fill="${c}"><title>${esc(job)} ${took}s</title></circle>`;
    }
  }
  svg.innerHTML = out + `<text x="2" y="12" font-size="10">max ${max.toFixed(2)}s</text>`;
  $("#dur-legend").innerHTML = legend;
  for (const i of $("#dur-legend").querySelectorAll("i[data-color]")) i.style.background = i.dataset.color;
}

if (state.token) signIn().catch((err) => signOut(String(err.message)));
else signOut();
