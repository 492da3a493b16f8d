// The pages of a job (/jobs/NAME, with its run-now form built from its params), a schedule
// (/schedules/NAME: next firings, past ones on a time line, suspend/resume), a workflow
// (/workflows/NAME) and a worker (/workers/NAME). Each reads the richer endpoint when the
// API has it and falls back on the overview's data when not.
"use strict";

async function optional(path) {  // null when this API does not have it (yet)
  try { return await api(path); } catch (err) { if (err.status === 404) return null; throw err; }
}

async function recentRuns(title, ask, keep = () => true) {
  const page = await api("/api/runs?" + new URLSearchParams({limit: "20", ...ask}));
  const runs = page.runs.filter(keep);
  return h("section", {class: "recent"}, h("h3", {}, title),
    runs.length ? h("div", {class: "scroll"}, h("table", {class: "runs"}, h("thead", {}, h("tr", {},
      ["run", "job", "state", "queue", "worker", "created", "duration", "trigger", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, runs.map(runRow)))) : h("p", {class: "hint"}, "no run yet"));
}

async function showJob(name) {
  if (!state.jobs[name]) state.jobs = (await api("/api/jobs")).jobs;
  const basic = state.jobs[name];
  const job = await optional("/api/jobs/" + encodeURIComponent(name));
  if (!job && !basic) throw new Error(`there is no job ${name} in the applied configuration`);
  const j = {...basic, ...job};
  const where = j.file ? `${j.file}:${j.line}` : null;
  const stats = j.stats;
  const schedules = j.schedules || Object.entries(state.schedules).filter(([, sc]) => sc.job === name)
    .map(([n, sc]) => ({name: n, next: sc.next_fire ? [sc.next_fire] : []}));
  const runs = await recentRuns("recent runs", {job: name}, (r) => r.job === name);
  if (!current("jobs", name)) return;
  $("#page").replaceChildren(
    h("h2", {}, "Job ", h("code", {id: "job-name"}, name)), j.description ? h("p", {}, j.description) : "",
    h("dl", {class: "facts"}, fact("queue", j.queue),
      fact("targets", (j.targets || []).join(", ") || "-"),
      j.timeout ? fact("timeout", words(j.timeout)) : [], j.deadline ? fact("deadline", words(j.deadline)) : [],
      j.concurrency ? fact("concurrency", j.concurrency) : [],
      where ? fact("defined in", j.commit_url ? h("a", {href: j.commit_url}, where) : where) : [],
      j.revision ? fact("revision", h("code", {}, j.revision.slice(0, 12))) : [],
      stats ? fact("runs", `${stats.runs} · ${stats.succeeded} succeeded · ${stats.failed} failed` +
        (stats.runs ? ` · ${Math.round((100 * stats.succeeded) / stats.runs)}% success` : "")) : []),
    stats && stats.durations && stats.durations.length ? trendChart(stats.durations) : "",
    state.role === "operator" ? paramsForm(name, j.params || {}) : "",
    j.yaml ? h("details", {class: "output yaml", open: true}, h("summary", {}, `definition · ${where || ""}`),
      h("pre", {}, h("code", {class: "from", dataset: {line: j.line || 1}},
        j.yaml.replace(/\n$/, "").split("\n").map((l) => h("span", {class: "line"}, l + "\n"))))) : "",
    listing("schedules", schedules, (sc) => [link("/schedules/" + encodeURIComponent(sc.name), sc.name),
      ": next ", (sc.next || []).map((t) => stamp(t)).join(", ") || "-"]),
    runs);
  const code = $("#page code.from");
  if (code) code.style.counterReset = `line ${Number(code.dataset.line) - 1}`;  // CSSOM, not a style attribute
}

function paramField(p, d) {
  const id = "param-" + p;
  const none = d.default === undefined || d.default === null;  // required
  let input;
  if (d.enum) {
    input = h("select", {id, name: p}, none ? h("option", {value: ""}, "(choose)") : "",
      d.enum.map((v) => h("option", {value: JSON.stringify(v), selected: v === d.default}, String(v))));
  } else if (d.type === "boolean") {
    input = h("input", {id, name: p, type: "checkbox", checked: d.default === true});
  } else if (d.type === "integer" || d.type === "number") {
    input = h("input", {id, name: p, type: "number", min: d.minimum, max: d.maximum,
      step: d.type === "integer" ? "1" : "any", value: none ? null : String(d.default)});
  } else {
    input = h("input", {id, name: p, type: "text", pattern: d.pattern, maxlength: d.max_length,
      value: none ? null : String(d.default)});
  }
  input.dataset.type = d.enum ? "enum" : d.type;
  return h("div", {class: "field"}, h("label", {for: id}, p, none ? " *" : ""), input,
    d.description ? h("small", {}, d.description) : "");
}

function paramValues(form) {
  const out = {};
  for (const el of form.querySelectorAll("[data-type]")) {
    const t = el.dataset.type;
    if (t === "boolean") out[el.name] = el.checked;
    else if (el.value === "") continue;  // the default applies, or the API says it is required
    else if (t === "enum") out[el.name] = JSON.parse(el.value);
    else if (t === "integer" || t === "number") out[el.name] = Number(el.value);
    else out[el.name] = el.value;
  }
  return out;
}

// The API is the one judge of a value (its 422's message is shown): no browser validation.
function paramsForm(name, params) {
  const error = h("p", {class: "error", id: "run-error", role: "alert"});
  const form = h("form", {id: "run-form", class: "run-form", novalidate: true},
    h("h3", {}, "run now"), Object.entries(params).map(([p, d]) => paramField(p, d)),
    h("button", {}, "run now"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const r = await api(`/api/jobs/${encodeURIComponent(name)}/run`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({params: paramValues(form)})});
      go("/runs/" + encodeURIComponent(r.run_id));
    } catch (err) { error.textContent = err.message; }
  });
  return form;
}

async function showSchedule(name) {
  const full = await optional("/api/schedules/" + encodeURIComponent(name));
  if (!full && !state.schedules[name]) state.schedules = await api("/api/schedules");
  const base = state.schedules[name];
  if (!full && !base) throw new Error(`there is no schedule ${name} in the applied configuration`);
  const sc = {...base, ...full};
  const next = sc.next || (sc.next_fire ? [sc.next_fire] : []);
  const runs = await recentRuns("recent runs", {job: sc.job}, (r) => r.schedule === name);
  const toggle = state.role === "operator" && await hasRoute("post", "/api/schedules/{}/suspend")
    ? suspendButton(name, sc.suspended) : "";
  if (!current("schedules", name)) return;
  const firings = sc.firings || [];
  const count = (k) => firings.filter((f) => firingKind(f) === k).length;
  $("#page").replaceChildren(
    h("h2", {}, "Schedule ", h("code", {}, name), " ", sc.suspended
      ? h("span", {class: "state SKIPPED", id: "schedule-state"}, "suspended")
      : h("span", {class: "state SUCCESS", id: "schedule-state"}, "active"), " ", toggle),
    h("dl", {class: "facts"}, fact("job", link("/jobs/" + encodeURIComponent(sc.job), sc.job)),
      fact("when", sc.when), fact("time zone", sc.timezone || "-"),
      sc.deadline ? fact("deadline", `${words(sc.deadline)} after a firing`) : [],
      sc.last_run_id ? fact("last run", runLink(sc.last_run_id)) : [],
      firings.length ? fact("past firings", ["ran", "late", "skipped", "missed"]
        .map((k) => `${count(k)} ${k}`).join(" · ")) : []),
    listing("next firings", next, (t) => !sc.timezone ? stamp(t) : stamp(t, sc.timezone) === stamp(t)
      ? `${stamp(t)} (${sc.timezone}, as here)` : `${stamp(t, sc.timezone)} (${sc.timezone}) · ${stamp(t)}`),
    firings.length ? firingsChart(firings) : "",
    listing("firings", firings, (f) => [stamp(f.at, sc.timezone), " ",
      h("span", {class: "state " + (f.state || "MISSED")}, firingKind(f)), f.late ? ` queued ${words(f.late)} after` : "",
      f.run_id ? [" ", runLink(f.run_id)] : "", f.overdue ? `, overdue at ${stamp(f.overdue)}` : "",
      f.error ? `: ${f.error}` : ""]),
    runs);
}

function suspendButton(name, suspended) {  // POST …/suspend or …/resume, then the page again
  const verb = suspended ? "resume" : "suspend";
  return h("button", {id: "schedule-toggle", onclick: async () => {
    if (await act(`/api/schedules/${encodeURIComponent(name)}/${verb}`)) showSchedule(name);
  }}, verb);
}

async function showWorkflow(name) {
  const g = await graphOf(name);
  const runs = await recentRuns("recent runs", {job: name}, (r) => r.job === name);
  if (!current("workflows", name)) return;
  const body = h("div", {id: "workflow-body"},
    h("p", {}, `${g.description || ""} · schedules: ${g.schedules.join(", ") || "none"}`));
  $("#page").replaceChildren(h("h2", {}, "Workflow ", h("code", {id: "workflow-name"}, name)), body);
  drawWorkflow(body, g, null, () => {});
  $("#page").append(runs);
}

async function showWorker(name) {
  if (!Object.keys(state.workers).length) state.workers = (await api("/api/workers")).workers;
  const [host, w] = Object.entries(state.workers).find(([k, x]) => [k, x.name, x.hostname].includes(name))
    || [name, null];
  const beat = await optional("/api/workers/" + encodeURIComponent(name));  // its heartbeat entry
  const runs = await recentRuns("recent runs", {worker: name}, (r) => r.worker === name || r.worker === host);
  if (!current("workers", name)) return;
  $("#page").replaceChildren(h("h2", {}, "Worker ", h("code", {}, name)),
    w ? h("dl", {class: "facts"}, fact("host", w.hostname), fact("queues", (w.queues || []).join(", ")),
      fact("concurrency", w.concurrency), fact("active", w.active), fact("processed", w.processed),
      fact("load", pct(w.load)), fact("heartbeat", `${ago(w.last_heartbeat)} (${stamp(w.last_heartbeat)})`),
      fact("revision", w.revision || "-"))
      : h("p", {class: "hint"}, "not answering now"),
    beat && beat.heartbeat_age !== undefined ? h("p", {}, `last heartbeat in the store ${words(beat.heartbeat_age)} ago`) : "",
    runs);
}
