// The run page, /runs/ID: its header (state, job, trigger, revision, worker, times, params,
// deliveries, notifications, actions), then per target its steps and its output with line
// numbers; re-read on the run's events and every 2 s while it is active.
"use strict";
const closedOutputs = new Set();  // "TARGET/stream" the user folded: stays folded on refresh
let runTimer = null;

async function showRun(id) {
  const r = await api("/api/runs/" + encodeURIComponent(id));
  if (!current("runs", id)) return;
  $("#page").replaceChildren(h("div", {id: "detail-body"}, runPage(r)));
  if (r.workflow) await drawRunGraph(r);
  clearTimeout(runTimer);
  if (ACTIVE.has(r.state)) runTimer = setTimeout(() => current("runs", id) && refreshRun(id), 2000);
}

let runPending = null;
function refreshRun(id) {  // one read per burst of events
  if (runPending) return;
  runPending = setTimeout(() => { runPending = null; showRun(id).catch(() => {}); }, 200);
}

const fact = (name, ...value) => [h("dt", {}, name), h("dd", {}, ...value)];

function runPage(r) {
  const operator = state.role === "operator";
  const buttons = !operator ? [] : ACTIVE.has(r.state)
    ? [h("button", {class: "cancel", dataset: {runId: r.run_id}}, "cancel")]
    : [h("button", {class: "retry", dataset: {runId: r.run_id}}, "retry")];
  const facts = h("dl", {class: "facts"},
    fact("job", link("/jobs/" + encodeURIComponent(r.job), r.job)), fact("queue", r.queue),
    fact("trigger", r.trigger || "-", r.retry_of ? [" of ", runLink(r.retry_of)] : ""),
    r.schedule ? fact("schedule", link("/schedules/" + encodeURIComponent(r.schedule), r.schedule),
      r.scheduled_for ? ` for ${stamp(r.scheduled_for)}` : "") : [],
    fact("revision", h("code", {title: r.revision || ""}, (r.revision || "-").slice(0, 12))),
    fact("worker", r.worker ? link("/workers/" + encodeURIComponent(r.worker), r.worker) : "-"),
    r.limit ? fact("limit", h("code", {}, r.limit)) : [],
    ["created", "received", "started", "finished"].map((k) => r[k] ? fact(k, stamp(r[k])) : []),
    fact("duration", took(r)), fact("deliveries", r.deliveries || 0),
    r.parent ? fact("part of", h("a", {href: "/runs/" + encodeURIComponent(r.parent),
      class: "parent"}, `workflow run ${r.parent}, node ${r.node || "?"}`)) : []);
  return [
    h("h2", {}, "Run ", h("code", {id: "detail-id"}, r.run_id), " ",
      stateBadge(r, {id: "run-state"}), " ", buttons),
    facts,
    r.error ? h("p", {class: "error"}, r.error) : "",
    listing("params", Object.entries(r.params || {}), ([k, v]) => [h("code", {}, k), " = ",
      h("code", {}, JSON.stringify(v))]),
    listing("actions", r.actions || [], (a) => `${a.action} by ${a.by}${a.role ? ` (${a.role})` : ""} ` +
      `at ${stamp(a.at)}${a.via ? " via " + a.via : ""}${a.node ? ", node " + a.node : ""}` +
      `${a.comment ? ": " + a.comment : ""}`),
    listing("notifications", r.notifications || [], (n) =>
      `${n.event} to ${n.channel}: ${n.status} at ${stamp(n.at)}${n.error ? ": " + n.error : ""}`),
    ...Object.entries((r.result || {}).targets || {}).map(([name, t]) => targetBox(r, name, t)),
    (r.result || r.workflow) ? "" : h("p", {class: "hint"}, "no target result yet"),
  ];
}

function listing(title, items, show) {
  if (!items.length) return "";
  return h("div", {class: "listing", dataset: {listing: title}}, h("h3", {}, title),
    h("ul", {}, items.map((x) => h("li", {}, show(x)))));
}

const OK = {success: "SUCCESS", skipped: "SKIPPED", cancelled: "REVOKED"};
function targetBox(r, name, t) {
  const steps = t.steps || [];
  return h("section", {class: "target", dataset: {target: name}},
    h("h3", {}, h("span", {class: "state " + (OK[t.status] || "FAILURE")}, t.status), ` ${name} · rc `,
      t.rc ?? "-", ` · ${words(t.duration)}`, t.attempts > 1 ? ` · ${t.attempts} attempts` : ""),
    t.error ? h("p", {class: "error"}, t.error) : "",
    steps.length ? h("div", {class: "scroll"}, h("table", {class: "steps"},
      h("thead", {}, h("tr", {}, ["step", "kind", "state", "rc", "duration", "error"].map((c) => h("th", {}, c)))),
      h("tbody", {}, steps.map((st) => h("tr", {dataset: {step: st.name, state: st.status}},
        cell(st.name), cell(st.kind), cell(h("span", {class: "state " + (OK[st.status] || "FAILURE")}, st.status)),
        cell(st.rc ?? "-"), cell(words(st.duration)), h("td", {class: "wrap"}, st.error || "")))))) : "",
    output(name, "stdout", t.stdout), output(name, "stderr", t.stderr),
    downloads(r, t.downloads || []));
}

function output(target, stream, text) {
  if (!text) return "";  // nothing written: no empty box
  const lines = text.replace(/\n$/, "").split("\n");
  const key = `${target}/${stream}`;
  return h("details", {class: "output", dataset: {stream}, open: !closedOutputs.has(key),
    ontoggle: (e) => { if (e.target.open) closedOutputs.delete(key); else closedOutputs.add(key); }},
  h("summary", {}, `${stream} · ${lines.length} line${lines.length === 1 ? "" : "s"}`),
  h("pre", {}, h("code", {}, lines.map((l) => h("span", {class: "line"}, l + "\n")))));
}

function downloads(r, files) {
  if (!files.length) return "";
  return h("div", {class: "listing", dataset: {listing: "downloads"}}, h("h3", {}, "downloads"), h("ul", {}, files.map((f) =>
    h("li", {}, h("code", {}, f.src), ` · ${f.bytes} bytes${f.truncated ? " (truncated)" : ""} `,
      f.sha256 ? h("button", {class: "download", onclick: (e) => fetchFile(e.target, r.run_id, f)},
        "download") : ""))));
}

async function fetchFile(button, runId, f) {  // the token goes in a header: fetch, then save
  const res = await fetch(`/api/runs/${encodeURIComponent(runId)}/downloads/${f.sha256}`,
    {headers: {Authorization: "Bearer " + state.token}});
  if (!res.ok) { button.after(h("span", {class: "error"}, ` not served: ${res.status} ${res.statusText}`)); return; }
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", {href: url, download: f.src.split("/").pop() || "download"});
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function graphOf(name) {
  if (!state.graphs.has(name)) state.graphs.set(name, await api("/api/workflows/" + encodeURIComponent(name)));
  return state.graphs.get(name);
}

async function drawRunGraph(r) {
  let g;
  try { g = await graphOf(r.job); } catch (err) {
    $("#detail-body").append(h("p", {class: "error"}, `workflow ${r.job} is not in the configuration any more: ${err.message}`));
    return;
  }
  if (!current("runs", r.run_id)) return;  // another page was opened meanwhile
  for (const old of $("#detail-body").querySelectorAll("svg.dag, .approval-bar")) old.remove();
  drawWorkflow($("#detail-body"), g, r.workflow.nodes || {}, (child) => go("/runs/" + encodeURIComponent(child)));
  $("#detail-body").append(...approvalBars(g, r));
}
