// The run page, /runs/ID: its header (state, job, trigger, revision, worker, times, params,
// deliveries, notifications, actions), then per target its steps and its output with line
// numbers; the header re-read on the run's events. While the run is active its output
// grows in place from GET /api/runs/ID/output every second (lines appended: what the user
// folded stays folded, a box scrolled up stays put, one at its end follows the end); an
// API without that endpoint gets the whole page re-read every 2 s instead.
"use strict";
const closedOutputs = new Set();  // "TARGET/stream" the user folded: stays folded on refresh
let runTimer = null;
const live = {id: null};  // the run whose output is followed (one at a time)

async function showRun(id) {
  const r = await api("/api/runs/" + encodeURIComponent(id));
  state.downloadable = await hasRoute("get", "/api/runs/{}/downloads/{}");
  if (!current("runs", id)) return;
  const body = $("#detail-body");
  if (body && body.dataset.runId === id && live.id === id && ACTIVE.has(r.state)) {
    $("#run-head").replaceChildren(...runHead(r));  // the output boxes stay as they are
  } else {
    $("#page").replaceChildren(h("div", {id: "detail-body", dataset: {runId: id}},
      h("div", {id: "run-head"}, runHead(r)), h("div", {id: "run-targets"}, runTargets(r))));
    if (r.workflow) await drawRunGraph(r);
  }
  clearTimeout(runTimer);
  if (!ACTIVE.has(r.state)) return;
  if (!r.workflow && await hasRoute("get", "/api/runs/{}/output")) follow(id);
  else runTimer = setTimeout(() => current("runs", id) && refreshRun(id), 2000);
}

let runPending = null;
function refreshRun(id) {  // one read per burst of events
  if (runPending) return;
  runPending = setTimeout(() => { runPending = null; showRun(id).catch(() => {}); }, 200);
}

async function follow(id) {
  if (live.id === id) return;  // followed already
  live.id = id;
  while (live.id === id && current("runs", id)) {
    const out = await api(`/api/runs/${encodeURIComponent(id)}/output`).catch(() => null);
    if (live.id !== id || !current("runs", id)) break;
    if (out) grow(out.targets || {});
    if (out && !out.running) break;
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  if (live.id === id) live.id = null;
  if (current("runs", id)) runTimer = setTimeout(() => refreshRun(id), 1000);  // its end, should the event be missed
}

function grow(targets) {
  for (const [name, t] of Object.entries(targets)) {
    let box = [...document.querySelectorAll("#run-targets .target")].find((b) => b.dataset.target === name);
    if (!box) {
      box = h("section", {class: "target live", dataset: {target: name}}, h("h3", {},
        h("span", {class: "state STARTED"}, "running"), ` ${name}`, h("span", {class: "step"})));
      $("#run-targets").append(box);
      $("#no-result")?.remove();
    }
    const step = box.querySelector("h3 .step");
    if (step) step.textContent = t.step ? ` · step ${t.step}` : "";
    for (const stream of ["stdout", "stderr"]) growOutput(box, name, stream, t[stream] || "");
  }
}

function growOutput(box, target, stream, text) {
  const shown = box.querySelector(`details[data-stream="${stream}"]`);
  if (!shown) {
    const made = output(target, stream, text);
    const stderr = box.querySelector('details[data-stream="stderr"]');
    if (made && stream === "stdout" && stderr) stderr.before(made); else if (made) box.append(made);
    return;
  }
  const lines = text.replace(/\n$/, "").split("\n");
  const code = shown.querySelector("code"), pre = shown.querySelector("pre");
  const following = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  if (lines.length < code.children.length) code.replaceChildren();  // another output: anew
  const from = Math.max(0, code.children.length - 1);  // the last line may have grown
  for (const el of [...code.children].slice(from)) el.remove();
  code.append(...lines.slice(from).map((l) => h("span", {class: "line"}, l + "\n")));
  shown.querySelector("summary").textContent = linesOf(stream, lines.length);
  if (following) pre.scrollTop = pre.scrollHeight;
}
const linesOf = (stream, n) => `${stream} · ${n} line${n === 1 ? "" : "s"}`;

const fact = (name, ...value) => [h("dt", {}, name), h("dd", {}, ...value)];

const runTargets = (r) => [
  ...Object.entries((r.result || {}).targets || {}).map(([name, t]) => targetBox(r, name, t)),
  (r.result || r.workflow) ? "" : h("p", {class: "hint", id: "no-result"}, "no target result yet")];

function runHead(r) {
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
  h("summary", {}, linesOf(stream, lines.length)),
  h("pre", {}, h("code", {}, lines.map((l) => h("span", {class: "line"}, l + "\n")))));
}

function downloads(r, files) {
  if (!files.length) return "";
  return h("div", {class: "listing", dataset: {listing: "downloads"}}, h("h3", {}, "downloads"), h("ul", {}, files.map((f) =>
    h("li", {}, h("code", {}, f.src), ` · ${f.bytes} bytes${f.truncated ? " (truncated)" : ""} `,
      f.sha256 && state.downloadable ? h("button", {class: "download", "aria-label": `download ${f.src}`, onclick: (e) => fetchFile(e.target, r.run_id, f)},
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
