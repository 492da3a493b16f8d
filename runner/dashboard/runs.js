// The runs list of the overview: its filters are the URL's query (/?job=x&state=FAILURE),
// a page at a time from GET /api/runs with "older" following its `next` cursor. Live `run`
// events update the rows shown; a new run joins the list only on the first page without
// filters, else it is counted ("3 new", a click shows them) so the user keeps their place.
"use strict";
const ACTIVE = new Set(["PENDING", "RECEIVED", "WAITING", "STARTED"]);
const FILTERS = ["job", "state", "queue", "trigger", "worker", "since", "until", "q"];
const LIVE_MAX = 200;
const runsView = {rows: new Map(), live: true, fresh: new Set(), asked: null};

const unix = (local) => (local ? Date.parse(local) / 1000 : null);  // datetime-local: viewer's zone

// Does summary `r` pass the URL's filters? The server filters too; this keeps a filter it
// does not know yet (an older API) honest, and decides whether a live run counts as new.
function matches(r, q) {
  for (const k of ["job", "state", "queue", "trigger", "worker"]) {
    if (q.get(k) && !String(r[k] || "").startsWith(q.get(k))) return false;
  }
  if (q.get("q") && !r.run_id.startsWith(q.get("q"))) return false;
  if (q.get("since") && (r.created || 0) < unix(q.get("since"))) return false;
  return !(q.get("until") && (r.created || 0) > unix(q.get("until")));
}

function fillFilters() {
  const q = new URLSearchParams(location.search);
  const form = $("#filters");
  for (const [name, names] of [["job", Object.keys(state.jobs)], ["queue", Object.keys(state.queues)]]) {
    const known = new Set([...names, q.get(name) || ""].filter(Boolean));
    form.elements[name].replaceChildren(h("option", {value: ""}, "any"),
      ...[...known].sort().map((n) => h("option", {value: n}, n)));
  }
  for (const k of FILTERS) form.elements[k].value = q.get(k) || "";
}

$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  for (const k of FILTERS) if (e.target.elements[k].value) q.set(k, e.target.elements[k].value);
  const limit = new URLSearchParams(location.search).get("limit");
  if (limit) q.set("limit", limit);
  go("/" + (q.toString() ? "?" + q : ""));
});

async function loadRuns() {
  const q = new URLSearchParams(location.search);
  fillFilters();
  const ask = new URLSearchParams({limit: q.get("limit") || "50"});
  for (const k of ["job", "state", "queue", "trigger", "worker", "q", "cursor"]) if (q.get(k)) ask.set(k, q.get(k));
  for (const k of ["since", "until"]) if (q.get(k)) ask.set(k, String(unix(q.get(k))));
  const asked = runsView.asked = location.search;
  let page;
  try { page = await api("/api/runs?" + ask); } catch (err) {
    $("#runs-note").textContent = err.message; return;
  }
  if (runsView.asked !== asked) return;  // the user moved on meanwhile
  runsView.live = !["job", "state", "queue", "trigger", "worker", "since", "until", "q", "cursor"]
    .some((k) => q.get(k));
  runsView.rows = new Map(page.runs.filter((r) => matches(r, q)).map((r) => [r.run_id, r]));
  runsView.fresh = new Set();
  renderRuns();
  const older = new URLSearchParams(q);
  if (page.next) older.set("cursor", page.next);
  $("#runs-older").hidden = !page.next;
  $("#runs-older").href = "/?" + older;
  q.delete("cursor");
  $("#runs-first").hidden = !new URLSearchParams(location.search).get("cursor");
  $("#runs-first").href = "/" + (q.toString() ? "?" + q : "");
  $("#runs-note").textContent = runsView.rows.size ? "" : "no run matches";
}

function runRow(r) {
  const operator = state.role === "operator";
  const act = !operator ? "" : ACTIVE.has(r.state)
    ? h("button", {class: "cancel", dataset: {runId: r.run_id}}, "cancel")
    : h("button", {class: "retry", dataset: {runId: r.run_id}}, "retry");
  return h("tr", {dataset: {runId: r.run_id, state: r.state, job: r.job, schedule: r.schedule || ""}},
    cell(runLink(r.run_id)), cell(link("/jobs/" + encodeURIComponent(r.job), r.job)),
    cell(stateBadge(r)), cell(r.queue),
    cell(r.worker ? link("/workers/" + encodeURIComponent(r.worker), r.worker) : ""),
    cell(stamp(r.created)), cell(took(r)), cell(r.trigger || ""), cell(act));
}

function renderRuns() {
  const runs = [...runsView.rows.values()].sort((a, b) => (b.created || 0) - (a.created || 0));
  $("#runs tbody").replaceChildren(...runs.map(runRow));
  const button = $("#runs-new");
  button.hidden = runsView.fresh.size === 0;
  button.textContent = `${runsView.fresh.size} new`;
}
$("#runs-new").onclick = () => {
  const q = new URLSearchParams(location.search);
  q.delete("cursor");
  if (location.search === (q.toString() ? "?" + q : "")) loadRuns();
  else go("/" + (q.toString() ? "?" + q : ""));
};

function runEvent(id, run) {
  const known = runsView.rows.get(id);
  const r = {...(known || {}), ...run, run_id: id};
  if (known) runsView.rows.set(id, r);
  else if (runsView.live) {
    runsView.rows.set(id, r);
    const old = [...runsView.rows.values()].sort((a, b) => (b.created || 0) - (a.created || 0));
    for (const x of old.slice(LIVE_MAX)) runsView.rows.delete(x.run_id);
  } else if (r.created && matches(r, new URLSearchParams(location.search))) {
    runsView.fresh.add(id);
  } else return;
  renderRuns();
}

function runsSnapshot() {  // (re)connected: events may have been missed
  if ($("#overview").hidden === false && runsView.live) loadRuns();
}
