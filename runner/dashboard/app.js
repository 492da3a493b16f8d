// runner dashboard: a snapshot over the WebSocket, then live events; REST for pages and
// actions. No build step, no dependencies. Every view has its URL (/runs/ID, /jobs/NAME,
// /schedules/NAME, /workflows/NAME, /workers/NAME, / with the runs' filters in its query),
// opened through the History API. The token lives in this tab only (sessionStorage): a
// reload keeps it, another tab or a restarted browser asks again.
"use strict";
localStorage.removeItem("runner-token");  // where earlier versions kept it, for good

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
  route();  // the URL asked for before signing in
}

// ---- URLs ---------------------------------------------------------------------------------
const PAGES = {runs: showRun, jobs: showJob, schedules: showSchedule, workflows: showWorkflow,
  workers: showWorker};

function go(path) {
  if (path !== location.pathname + location.search) history.pushState(null, "", path);
  route();
}

function route() {
  const linked = location.hash.match(/^#run=([0-9A-Za-z_.:-]+)$/);  // older notification links
  if (linked) history.replaceState(null, "", "/runs/" + linked[1]);
  const m = location.pathname.match(/^\/(runs|jobs|schedules|workflows|workers)\/([^/]+)$/);
  $("#overview").hidden = Boolean(m);
  $("#page").hidden = !m;
  if (!m) { document.title = "runner"; loadRuns(); return; }
  const name = decodeURIComponent(m[2]);
  document.title = `${m[1].slice(0, -1)} ${name} · runner`;
  $("#page").replaceChildren(h("p", {class: "hint"}, "loading…"));
  $("#page").dataset.kind = m[1]; $("#page").dataset.name = name;
  PAGES[m[1]](name).catch((err) => {
    if (current(m[1], name)) $("#page").replaceChildren(h("p", {class: "error"}, err.message));
  });
}
const current = (kind, name) => !$("#page").hidden && $("#page").dataset.kind === kind
  && $("#page").dataset.name === name;
window.addEventListener("popstate", route);

// ---- live events ------------------------------------------------------------------------
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
    state.workers = e.workers || {}; state.status = e.status || {};
    state.queues = e.queues || {}; state.schedules = e.schedules || {}; state.jobs = e.jobs || {};
    renderAll();
    runsSnapshot(e.runs || []);
  } else if (e.kind === "run") {
    runEvent(e.run_id, e.run);
    if (current("runs", e.run_id)) refreshRun(e.run_id);
    if (e.run.workflow) approvalsSoon();
    refreshSoon();
  } else if (e.kind === "workers") {
    state.workers = e.workers; renderWorkers(); refreshSoon();
  } else if (e.kind === "reconcile") {
    state.graphs.clear(); loadWorkflows(); refreshSoon();
  } else if (["beat", "suspended", "schedule"].includes(e.kind)) {
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
      statCharts(stats);
    } catch (err) { /* the next event tries again */ }
  }, 300);
}

// ---- the overview -----------------------------------------------------------------------
function renderAll() {
  renderStatus(); renderWorkers(); renderQueues(); renderSchedules(); renderJobs(); fillFilters();
}

function renderStatus() {
  const st = state.status;
  const rev = (r) => h("code", {title: r || ""}, (r || "none").slice(0, 12));
  const refused = st.attempted_revision && st.attempted_revision !== st.applied_revision;
  $("#revision").textContent = `applied ${(st.applied_revision || "none").slice(0, 12)} · beat ${st.beat_alive ? "up" : "down"}`;
  $("#config-facts").replaceChildren(...[
    fact("applied", rev(st.applied_revision), st.applied_at ? ` at ${stamp(st.applied_at)}` : ""),
    fact("attempted", rev(st.attempted_revision), refused ? h("span", {class: "state FAILURE"}, "refused") : "",
      st.last_reconcile ? ` · checked ${ago(st.last_reconcile)}` : ""),
    st.source ? fact("source", `${st.source}${st.branch ? " · " + st.branch : ""}`) : [],
    fact("beat", st.beat_alive ? "up" : "down")].flat());
  const errors = [...(st.errors || []).map((p) => [h("code", {}, `${p.file}:${p.line}` +
    (p.column ? `:${p.column}` : "")), " ", p.message]), ...[st.fetch_error, st.refused].filter(Boolean)];
  $("#errors").hidden = errors.length === 0;
  $("#error-list").replaceChildren(...errors.map((x) => h("li", {class: "error"}, x)));
}

const pct = (v) => (v === null || v === undefined ? "-" : Math.round(v * 100) + "%");
function renderWorkers() {
  const rows = Object.entries(state.workers).map(([host, w]) => h("tr", {dataset: {worker: host}},
    cell(link("/workers/" + encodeURIComponent(host), w.name)), cell(w.hostname),
    cell((w.queues || []).join(", ")), cell(w.concurrency), cell(w.active), cell(w.processed),
    cell(pct(w.load)), cell(w.memory_kib ? Math.round(w.memory_kib / 1024) + " MiB" : "-"),
    h("td", {class: "age", title: stamp(w.last_heartbeat)}, ago(w.last_heartbeat))));
  $("#workers tbody").replaceChildren(...rows);
  if (!rows.length) $("#workers tbody").append(h("tr", {}, h("td", {colspan: 9}, "no worker answering")));
}

setInterval(() => { if (state.token && !$("#overview").hidden) renderWorkers(); }, 5000);  // the ages

function renderQueues() {
  $("#queues tbody").replaceChildren(...Object.entries(state.queues).map(([q, i]) => h("tr", {},
    cell(q), h("td", {class: "length"}, i.length), cell(i.priority), cell(i.consumers))));
}

function renderLimits(limits) {  // who holds and who waits for each cluster-wide limit
  const who = (es) => es.map((e) => `${e.run_id}${e.target ? " on " + e.target : ""}`).join(", ");
  $("#limits tbody").replaceChildren(...Object.entries(limits).map(([n, l]) => h("tr", {dataset: {limit: n}},
    cell(n), h("td", {class: "held"}, `${l.held.length}/${l.max}`), cell(who(l.held)),
    h("td", {class: "waiting"}, who(l.waiting)))));
}

function renderSchedules() {
  $("#schedules tbody").replaceChildren(...Object.entries(state.schedules).map(([n, sc]) =>
    h("tr", {dataset: {schedule: n}},
      cell(link("/schedules/" + encodeURIComponent(n), n), sc.suspended ? " (suspended)" : ""),
      cell(link("/jobs/" + encodeURIComponent(sc.job), sc.job)), cell(`${sc.when} ${sc.timezone}`),
      h("td", {class: "next", title: sc.next_fire || ""}, stamp(sc.next_fire, sc.timezone)),
      cell(sc.last_run_id ? runLink(sc.last_run_id) : h("code", {}, "-")))));
}

function runButton(job) {
  return state.role === "operator" ? h("button", {class: "run", dataset: {job}}, "run now") : "";
}

function renderJobs() {
  $("#jobs tbody").replaceChildren(...Object.entries(state.jobs).map(([n, j]) => h("tr", {},
    cell(link("/jobs/" + encodeURIComponent(n), n)), cell(j.queue),
    h("td", {class: "wrap"}, j.description), cell(runButton(n)))));
}

async function loadWorkflows() {
  try { state.workflows = (await api("/api/workflows")).workflows; } catch (err) { return; }
  const rows = Object.entries(state.workflows).map(([name, w]) => h("tr", {dataset: {workflow: name}},
    cell(link("/workflows/" + encodeURIComponent(name), name)), cell(w.description), cell(w.nodes),
    cell(w.schedules.join(", ") || "-")));
  $("#workflows tbody").replaceChildren(...rows);
  $("#workflows-section").hidden = rows.length === 0;
}

async function act(path, options = {method: "POST"}) {
  try { return await api(path, options); } catch (err) { alert(err.message); return null; }
}

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const b = e.target.closest("button");
  const id = b && b.dataset.runId;
  if (b && b.classList.contains("cancel")) { act(`/api/runs/${encodeURIComponent(id)}/cancel`); return; }
  if (b && b.classList.contains("retry")) {
    act(`/api/runs/${encodeURIComponent(id)}/retry`).then((r) => r && go("/runs/" + r.run_id));
    return;
  }
  if (b && b.classList.contains("run")) { act(`/api/jobs/${encodeURIComponent(b.dataset.job)}/run`); return; }
  if (b && (b.classList.contains("approve") || b.classList.contains("reject"))) { decide(b); return; }
  const a = e.target.closest("a[href]");
  if (a && a.origin === location.origin && !a.hasAttribute("download")
      && !/^\/(api|docs|static|metrics)\b/.test(a.pathname)) {
    e.preventDefault(); go(a.pathname + a.search); return;
  }
  const row = !a && !b && e.target.closest("tr[data-run-id], tr[data-workflow]");
  if (row) go(row.dataset.runId ? "/runs/" + encodeURIComponent(row.dataset.runId)
    : "/workflows/" + encodeURIComponent(row.dataset.workflow));
});
$("#signout").onclick = () => signOut();
$("#login").onsubmit = (e) => {
  e.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("runner-token", state.token);
  signIn().catch((err) => signOut(String(err.message)));
};

if (state.token) signIn().catch((err) => signOut(String(err.message)));
else signOut();
