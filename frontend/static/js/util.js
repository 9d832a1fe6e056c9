// Small helpers every page uses: DOM building, formatting of times, durations and values.

/** Create an element: h("a", {href: "/", class: "x", onclick: fn, dataset: {k: "v"}}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's children (null/false children are skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

let pageCache = null;
/** What the server put into the page (user, roles, resampling, per-page parameters). */
export function pageData() {
  if (pageCache === null) {
    const el = document.getElementById("cc-page");
    pageCache = el ? JSON.parse(el.textContent) : {};
  }
  return pageCache;
}

/** Unix seconds of a GraphQL Time (RFC 3339 string) or a number. */
export function toUnix(t) {
  if (typeof t === "number") return t;
  return Math.floor(Date.parse(t) / 1000);
}

export function fmtDateTime(t) {
  const d = new Date(toUnix(t) * 1000);
  return d.toLocaleString(undefined, {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                      minute: "2-digit", second: "2-digit"});
}

const pad2 = (n) => String(n).padStart(2, "0");

/** 3725 -> "1:02:05"; more than a day: "2d 1:02:05". */
export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600);
  const mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  return (d ? `${d}d ` : "") + `${hh}:${pad2(mm)}:${pad2(ss)}`;
}

/** Axis label for seconds since job start: "0:30", "12:00" (hours:minutes), "2d 4h". */
export function fmtElapsed(sec) {
  const neg = sec < 0;
  sec = Math.abs(Math.round(sec));
  if (sec >= 2 * 86400) return `${neg ? "-" : ""}${Math.floor(sec / 86400)}d ${Math.floor((sec % 86400) / 3600)}h`;
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  return (neg ? "-" : "") + (sec < 600 && ss ? `${hh}:${pad2(mm)}:${pad2(ss)}` : `${hh}:${pad2(mm)}`);
}

export const PREFIXES = {"": 1, K: 1e3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, m: 1e-3, u: 1e-6, n: 1e-9};
const SCALE = [["E", 1e18], ["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]];

export function unitText(unit) {
  if (!unit) return "";
  return (unit.prefix || "") + (unit.base || "");
}

/** A value in the unit's prefix, rescaled to a readable prefix: (1500, {prefix: "G", base: "F/s"}) -> "1.50 TF/s". */
export function fmtValue(v, unit, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const base = unit?.base || "";
  const abs = Math.abs(v * (PREFIXES[unit?.prefix || ""] ?? 1));
  if (abs === 0) return `0 ${base}`.trim();
  for (const [p, f] of SCALE) {
    if (abs >= f) return `${(Math.sign(v) * abs / f).toFixed(digits)} ${p}${base}`;
  }
  const raw = Math.sign(v) * abs;
  return `${Math.abs(raw) < 0.01 ? raw.toExponential(1) : raw.toFixed(digits)} ${base}`.trim();
}

/** Short number for axes: 1234567 -> "1.2M". */
export function fmtShort(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  const abs = Math.abs(v);
  for (const [p, f] of SCALE) {
    if (abs >= f) return `${+(v / f).toFixed(abs / f >= 100 ? 0 : 1)}${p}`;
  }
  if (abs === 0) return "0";
  if (abs < 0.01) return v.toExponential(0);
  return `${+v.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : 2)}`;
}

/**
 * Axis tick labels: fmtShort, unless that makes two ticks look alike (0.01, 0.01 for 0.010 and 0.015 on an
 * idle node); then one SI prefix for all and as many decimals as the tick step needs.
 */
export function tickLabels(splits) {
  const labels = splits.map(fmtShort);
  if (new Set(labels).size === labels.length) return labels;
  const steps = splits.slice(1).map((v, i) => Math.abs(v - splits[i])).filter((d) => d > 0);
  if (!steps.length) return labels;
  const step = Math.min(...steps), largest = Math.max(...splits.map((v) => Math.abs(v)));
  const [p, f] = SCALE.find(([, x]) => largest >= x) || ["", 1];
  const decimals = Math.min(8, Math.max(0, Math.ceil(-Math.log10(step / f) - 1e-9)));
  return splits.map((v) => (v === 0 ? "0" : `${+(v / f).toFixed(decimals)}${p}`));
}

/** Memory in MB as Slurm reports it (node states' memoryAllocated) -> "512 GB", "750 MB". */
export function fmtMB(mb) {
  if (mb === null || mb === undefined) return "";
  if (mb < 1024) return `${mb} MB`;
  const gb = mb / 1024;
  return `${+gb.toFixed(gb >= 100 ? 0 : 1)} GB`;
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

export function errorBox(message, title = "Error") {
  return h("div", {class: "alert alert-danger", role: "alert", dataset: {error: ""}}, h("b", {}, title + ": "), message);
}

export function stateClass(state) {
  return {running: "state-running", completed: "state-completed", failed: "state-failed",
          cancelled: "state-cancelled", timeout: "state-timeout", out_of_memory: "state-failed",
          preempted: "state-cancelled", node_fail: "state-failed", boot_fail: "state-failed"}[state] || "state-other";
}

/** A modal <dialog> with a title, body and buttons; resolves with the clicked button's value (or null). */
export function dialog(title, body, buttons = [["Close", null]], {wide = false} = {}) {
  return new Promise((resolve) => {
    const dlg = h("dialog", {class: "modal" + (wide ? " modal-wide" : "")},
      h("div", {class: "modal-head"}, h("h2", {}, title),
        h("button", {type: "button", class: "btn-close", "aria-label": "Close", onclick: () => dlg.close("")}, "×")),
      h("div", {class: "modal-body"}, body),
      h("div", {class: "modal-foot"}, buttons.map(([label, value, cls]) =>
        h("button", {type: "button", class: "btn " + (cls || ""), dataset: {value: value ?? ""},
                     onclick: () => { dlg.returnValue = value ?? ""; dlg.close(value ?? ""); }}, label))));
    dlg.addEventListener("close", () => {
      const v = dlg.returnValue;
      dlg.remove();
      resolve(v === "" ? null : v);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** Median of the finite numbers in `values` (null if none). */
export function median(values) {
  const v = values.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
