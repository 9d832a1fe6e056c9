// Logs page (/monitoring/logs, admins): the processes' log records from /frontend/logs/, newest first,
// filtered by process, level, time and text; "Follow" polls for newer records and puts them on top.

import {$, fill, h, pageData} from "../util.js";

const FOLLOW_MS = 2000;
const page = pageData();
const form = $("[data-log-filters]");
const rows = $("[data-log-rows]");
const status = $("[data-log-status]");
const follow = $("[data-log-follow]");
let shown = [];          // records on the page, newest first
let timer = null;
let generation = 0;      // a filter change makes answers to older requests stale

const key = (e) => `${e.timestamp}\u0000${e.process}\u0000${e.message}`;

function params(after) {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
  if (after !== undefined) q.set("after", after);
  return q;
}

async function fetchRecords(after) {
  const resp = await fetch(`/frontend/logs/?${params(after)}`, {credentials: "same-origin",
                                                                 headers: {Accept: "application/json"}});
  const doc = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error(doc?.error || `HTTP ${resp.status}`);
  return doc;
}

function row(e) {
  return h("tr", {dataset: {logRow: "", process: e.process, level: e.level}},
    h("td", {class: "log-time"}, e.time ? e.time.replace("T", " ").replace("Z", "") : ""),
    h("td", {}, e.process),
    h("td", {}, h("span", {class: `log-level log-level-${e.level}`}, e.level)),
    h("td", {class: "log-message"}, e.message));
}

function draw() {
  if (!shown.length) fill(rows, h("tr", {}, h("td", {colspan: 4, class: "empty", dataset: {noLogs: ""}}, "No log records match.")));
  else fill(rows, shown.map(row));
  $("[data-log-count]").textContent = `${shown.length} records`;
}

function say(text, ok = true) {
  status.textContent = text;
  status.className = "save-status" + (ok ? "" : " error");
  status.dataset.result = ok ? "ok" : "error";
}

async function reload() {
  const mine = ++generation;
  try {
    const records = await fetchRecords();
    if (mine !== generation) return;
    shown = records;
    draw();
    say("");
  } catch (e) {
    if (mine === generation) say(e.message, false);
  }
}

async function poll() {
  const mine = generation;
  try {
    const newest = shown.length ? shown[0].timestamp : "0";
    const records = await fetchRecords(newest);
    if (mine !== generation) return;
    const have = new Set(shown.map(key));
    const fresh = records.filter((e) => !have.has(key(e)));
    if (fresh.length) {
      const limit = Number(form.elements.lines.value) || page.maxLines;
      shown = fresh.concat(shown).slice(0, limit);
      draw();
    }
    say("");
  } catch (e) {
    if (mine === generation) say(e.message, false);
  }
}

function setFollow(on) {
  if (timer) clearInterval(timer);
  timer = on ? setInterval(poll, FOLLOW_MS) : null;
  rows.closest("table").dataset.following = on ? "1" : "0";
}

form.addEventListener("submit", (ev) => { ev.preventDefault(); reload(); });
for (const el of form.querySelectorAll("select")) el.addEventListener("change", reload);
follow.addEventListener("change", () => setFollow(follow.checked));
reload();
