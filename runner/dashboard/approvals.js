// Approvals waiting (issue 20): the overview's table, and under a workflow run's graph a bar
// per approval node waiting; Approve / Reject buttons for operators only (a comment asked
// for in a prompt; Cancel there sends nothing). DOM nodes only (no markup from data); loaded
// after dom.js, whose api(), state, time() and $ it uses.
"use strict";

function textCell(text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  return td;
}

function decisionButtons(runId, node) {
  return ["approve", "reject"].map((verb) => {
    const b = document.createElement("button");
    b.className = verb;
    b.dataset.runId = runId; b.dataset.node = node;
    b.textContent = verb === "approve" ? "Approve" : "Reject";
    return b;
  });
}

async function loadApprovals() {
  let list;
  try { list = (await api("/api/approvals")).approvals; } catch (err) { return; }
  const operator = state.role === "operator";
  const rows = list.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.runId = a.run_id; tr.dataset.node = a.node;  // a click opens the run's graph
    const expires = a.timeout_at ? new Date(a.timeout_at * 1000).toLocaleString() : "-";
    tr.append(textCell(a.run_id), textCell(a.workflow), textCell(a.node), textCell(a.question),
      textCell(time(a.since)), textCell(expires));
    const td = document.createElement("td");
    if (operator) td.append(...decisionButtons(a.run_id, a.node));
    tr.append(td);
    return tr;
  });
  $("#approvals tbody").replaceChildren(...rows);
  $("#approvals-section").hidden = rows.length === 0;
}

let approvalsTimer = null;
function approvalsSoon() {  // a workflow run changed: one reload per burst
  if (approvalsTimer) return;
  approvalsTimer = setTimeout(() => { approvalsTimer = null; loadApprovals(); }, 300);
}

// The bars under a workflow run's graph `g` (run record `r`): one per approval node waiting.
function approvalBars(g, r) {
  const questions = new Map(g.nodes.map((n) => [n.name, n.approval]));
  const operator = state.role === "operator";
  return Object.entries(r.workflow.nodes || {}).filter(([, n]) => n.state === "approval")
    .map(([name]) => {
      const p = document.createElement("p");
      p.className = "approval-bar"; p.dataset.node = name;
      const strong = document.createElement("strong");
      strong.textContent = name;
      p.append(strong, ` waits for approval: ${questions.get(name) || ""} `);
      if (operator) p.append(...decisionButtons(r.run_id, name));
      return p;
    });
}

async function decide(button) {
  const verb = button.classList.contains("approve") ? "approve" : "reject";
  const comment = prompt(`${verb} node ${button.dataset.node} of run ${button.dataset.runId}: ` +
    "a comment (optional)", "");
  if (comment === null) return;
  button.disabled = true;
  const path = `/api/runs/${encodeURIComponent(button.dataset.runId)}/nodes/` +
    `${encodeURIComponent(button.dataset.node)}/${verb}`;
  try {
    await api(path, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(comment ? {comment} : {})});
  } catch (err) { alert(err.message); button.disabled = false; }
  loadApprovals();
}
