// igpg-zoo web page: search, grouped results, model cards, charts. Plain DOM; text is never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = null; // asked for once, kept in memory only, when a write is requested
let writable = false; // the server takes writes (with its token)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

function fmt(v) {
  return typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString() : v.toPrecision(4)) : (v ?? "-");
}

function metricText(rec) {
  return Object.entries(rec.metrics || {}).map(([k, m]) => `${k}=${fmt(m.value)}`).join(" ");
}

function params() {
  const p = new URLSearchParams();
  const add = (name, id) => { const v = $(id).value.trim(); if (v) p.append(name, v); };
  add("task", "f-task"); add("arch", "f-arch"); add("dataset", "f-dataset"); add("kind", "f-kind"); add("where", "f-where");
  return p;
}

async function search(event) {
  if (event) event.preventDefault();
  showError(null);
  const p = params();
  const q = $("q").value.trim();
  const k = $("f-k").value;
  let records;
  try {
    if (q) {
      p.set("q", q); p.set("k", k);
      records = (await api(`/api/query?${p}`)).hits;
    } else {
      p.set("limit", k);
      records = (await api(`/api/records?${p}`)).records;
    }
  } catch (err) { showError(err); return; }
  renderResults(records, Boolean(q));
}

function renderResults(records, scored) {
  const box = $("results");
  box.replaceChildren();
  if (!records.length) { box.append(el("p", { class: "muted" }, "Nothing matches; widen the filters.")); return; }
  box.append(el("p", { class: "muted", id: "result-count" }, `${records.length} result(s), grouped by task and architecture`));
  const groups = new Map(); // task -> arch -> records (first-seen order keeps the ranking)
  for (const r of records) {
    if (!groups.has(r.task)) groups.set(r.task, new Map());
    const byArch = groups.get(r.task);
    if (!byArch.has(r.arch)) byArch.set(r.arch, []);
    byArch.get(r.arch).push(r);
  }
  for (const [task, byArch] of groups) {
    const group = el("div", { class: "group" }, el("h3", {}, task || "(no task)"));
    for (const [arch, recs] of byArch) {
      group.append(el("h4", {}, arch));
      const rows = recs.map((r) => el("tr", { class: "result-row", "data-id": r.id, onclick: () => openCard(r.id) },
        scored ? el("td", {}, r.score.toFixed(3)) : null,
        el("td", {}, `#${r.id}`), el("td", {}, el("span", { class: `kind ${r.kind}` }, r.kind)),
        el("td", {}, r.name), el("td", {}, r.dataset), el("td", {}, metricText(r))));
      group.append(el("table", {}, el("tbody", {}, rows)));
    }
    box.append(group);
  }
}

async function answer(event) {
  event.preventDefault();
  showError(null);
  const p = new URLSearchParams();
  const dataset = $("a-dataset").value.trim(), arch = $("a-arch").value.trim();
  if (dataset) p.set("dataset", dataset);
  if (arch) p.append("arch", arch);
  p.set("mode", $("a-mode").value);
  const file = $("a-file").files[0];
  const out = $("answer-out");
  out.replaceChildren(el("p", { class: "muted" }, "scoring the zoo on your data…"));
  let result;
  try {
    result = await api(`/api/answer?${p}`, { method: "POST", body: file ? await file.arrayBuffer() : undefined,
      headers: file ? { "Content-Type": "application/octet-stream" } : {} });
  } catch (err) { out.replaceChildren(); showError(err); return; }
  const rows = result.candidates.map((c) => el("tr", {},
    el("td", {}, c.label), el("td", {}, c.source), el("td", {}, c.arch),
    el("td", {}, c.id ? recLink(c.id) : "-"), el("td", {}, c.dataset || c.task || "-"),
    el("td", {}, fmt(c.estimate)), el("td", {}, fmt(c.stored_acc))));
  out.replaceChildren(
    el("p", { class: "reason", id: "answer-reason" }, `${result.decision.choice}: ${result.decision.reason}`),
    el("table", {}, el("thead", {}, el("tr", {}, ...["start", "from", "architecture", "record", "trained on",
      "estimate", "stored acc"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
    ...result.notes.map((n) => el("p", { class: "muted" }, `note: ${n}`)));
}

function recLink(id, text) {
  return el("a", { class: "rec", onclick: () => openCard(id) }, text || `#${id}`);
}

function lineageTree(lin) {
  const self = el("li", { class: "self" }, `#${lin.record.id} ${lin.record.name} (this record)`);
  if (lin.children.length) {
    self.append(el("ul", {}, lin.children.map((c) => el("li", {}, recLink(c.id), ` ${c.name} · ${c.kind}`))));
  }
  let node = self;
  for (const a of lin.ancestors) { // parent first: wrap outwards
    node = el("li", {}, recLink(a.id), ` ${a.name} · ${a.kind}`, el("ul", {}, node));
  }
  return el("ul", { class: "tree" }, node);
}

function provenanceBlock(p) {
  if (!p) return null;
  const n = p.nearest || {};
  const near = n.id !== undefined && n.id !== null
    ? [recLink(n.id, `#${n.id}`), ` at ${fmt(n.distance)} (${(100 * (n.relative_distance || 0)).toFixed(1)} % of its norm)`,
      n.exact_copy_of !== null && n.exact_copy_of !== undefined ? " — EXACT COPY" : " — new weights"]
    : ["no member of this architecture to compare with"];
  return [el("h3", {}, "Provenance (generated)"), el("dl", {},
    el("dt", {}, "prior"), el("dd", {}, p.generator_artifact_id ? `artifact #${p.generator_artifact_id}` : "-"),
    el("dt", {}, "tokenizer"), el("dd", {}, p.tokenizer_artifact_id ? `artifact #${p.tokenizer_artifact_id}` : "-"),
    el("dt", {}, "zoo snapshot"), el("dd", {}, (p.zoo_snapshot_hash || "-").slice(0, 16)),
    el("dt", {}, "seed"), el("dd", {}, fmt(p.seed)),
    el("dt", {}, "sampling"), el("dd", {}, JSON.stringify(p.sampling || {})),
    el("dt", {}, "nearest member"), el("dd", {}, ...near))];
}

async function removeRecord(id) {
  if (!token) token = window.prompt("Token for writes (the server's IGPG_ZOO_TOKEN):");
  if (!token || !window.confirm(`Remove record #${id}?`)) return;
  try {
    await api(`/api/records/${id}`, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
  } catch (err) { token = null; showError(err); return; }
  $("card").hidden = true;
  search();
}

function similarTo(rec) {
  $("q").value = [rec.task, rec.dataset].filter(Boolean).join(" on ");
  for (const id of ["f-task", "f-arch", "f-dataset", "f-kind", "f-where"]) $(id).value = "";
  search();
}

async function openCard(id) {
  showError(null);
  let rec, lin;
  try { [rec, lin] = await Promise.all([api(`/api/records/${id}`), api(`/api/records/${id}/lineage`)]); }
  catch (err) { showError(err); return; }
  document.querySelectorAll("tr.result-row").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === String(id)));
  const metrics = Object.entries(rec.metrics || {}).map(([k, m]) => el("tr", {}, el("td", {}, k), el("td", {}, fmt(m.value)), el("td", {}, m.dataset || "-")));
  const card = $("card");
  card.replaceChildren(
    el("h2", { id: "card-title" }, `#${rec.id} ${rec.name}`),
    el("span", { class: `kind ${rec.kind}` }, rec.kind),
    el("dl", {},
      el("dt", {}, "task"), el("dd", {}, rec.task || "-"), el("dt", {}, "architecture"), el("dd", {}, rec.arch),
      el("dt", {}, "dataset"), el("dd", {}, rec.dataset || "-"), el("dt", {}, "parameters"), el("dd", {}, fmt(rec.n_params)),
      el("dt", {}, "tags"), el("dd", {}, (rec.tags || []).join(", ") || "-"), el("dt", {}, "license"), el("dd", {}, rec.license || "-"),
      el("dt", {}, "source"), el("dd", {}, rec.source || "-"), el("dt", {}, "created"), el("dd", {}, rec.created_at),
      el("dt", {}, "sha256"), el("dd", {}, rec.sha256)),
    el("h3", {}, "Metrics"),
    metrics.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", {}, "value"), el("th", {}, "dataset"))), el("tbody", {}, metrics))
      : el("p", { class: "muted" }, "no metrics recorded"),
    el("h3", {}, "Lineage"), lineageTree(lin),
    ...(provenanceBlock(rec.provenance) || []),
    el("h3", {}, "Export"),
    el("div", { class: "buttons" }, rec.export_formats.map((f) => el("a", { href: `/api/records/${rec.id}/export?format=${f}`, download: "" }, f)),
      el("button", { type: "button", onclick: () => similarTo(rec) }, "similar records"),
      writable ? el("button", { type: "button", onclick: () => removeRecord(rec.id) }, "remove…") : null));
  card.hidden = false;
}

async function loadFacets() {
  try {
    const s = await api("/api/summary");
    writable = s.writable;
    $("status").textContent = `${s.records.toLocaleString()} records${s.writable ? "" : " · read-only"}`;
    for (const name of ["task", "arch", "dataset"]) {
      $(`l-${name}`).replaceChildren(...s.facets[name].map((f) => el("option", { value: f.value }, `${f.count}`)));
    }
  } catch (err) { showError(err); }
}

function loadCharts() {
  const imgs = document.querySelectorAll("#charts img[data-src]");
  const observer = new IntersectionObserver((entries) => entries.forEach((e) => {
    if (e.isIntersecting) { e.target.src = e.target.dataset.src; observer.unobserve(e.target); }
  }));
  imgs.forEach((img) => observer.observe(img));
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", search);
  $("answer").addEventListener("submit", answer);
  loadFacets();
  loadCharts();
});
