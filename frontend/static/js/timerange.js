// Controls of the node views and dashboards: the displayed time range (15 minutes to 24 hours, or a custom
// from/to) and the reload button with a periodic reload.  Both keep their state in the URL
// (?range=1h or ?from=UNIX&to=UNIX), so a link shows the same view.

import {h} from "./util.js";

export const RANGES = [["15m", 900, "Last 15 minutes"], ["30m", 1800, "Last 30 minutes"], ["1h", 3600, "Last hour"],
                       ["2h", 7200, "Last 2 hours"], ["4h", 14400, "Last 4 hours"], ["12h", 43200, "Last 12 hours"],
                       ["24h", 86400, "Last 24 hours"]];
export const RELOAD_CHOICES = [[0, "No periodic reload"], [30, "Every 30 s"], [60, "Every 60 s"], [120, "Every 2 min"],
                               [300, "Every 5 min"]];

/** Unix seconds of "1700000000" or an RFC 3339 / datetime-local string; null if neither. */
export function parseTime(text) {
  if (text === null || text === undefined || text === "") return null;
  if (/^\d+$/.test(String(text))) return Number(text);
  const t = Date.parse(text);
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

function localInput(unix) {
  const d = new Date(unix * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * A range selector.  `initial`: {range} or {from, to} (e.g. from the URL: see fromArgs); onChange(state) after
 * each change.  `state.current()` gives {from, to} in unix seconds (presets end now).
 */
export class TimeRange {
  constructor(initial, onChange, defaultRange = "2h") {
    this.onChange = onChange;
    this.state = initial?.from && initial?.to ? {from: initial.from, to: initial.to}
      : {range: RANGES.some(([k]) => k === initial?.range) ? initial.range : defaultRange};
    this.sel = h("select", {dataset: {field: "time-range"}, title: "Displayed time range",
                            onchange: () => this.selected()},
      RANGES.map(([k, , label]) => h("option", {value: k}, label)), h("option", {value: "custom"}, "Custom…"));
    const now = Math.floor(Date.now() / 1000);
    this.fromIn = h("input", {type: "datetime-local", dataset: {field: "range-from"},
                              value: localInput(this.state.from || now - 7200)});
    this.toIn = h("input", {type: "datetime-local", dataset: {field: "range-to"}, value: localInput(this.state.to || now)});
    this.applyBtn = h("button", {type: "button", class: "btn", dataset: {rangeApply: ""}, onclick: () => this.applyCustom()},
                      "Apply");
    this.custom = h("span", {class: "custom-range", hidden: !this.state.from}, this.fromIn, "–", this.toIn, this.applyBtn);
    this.sel.value = this.state.range || "custom";
    this.el = h("div", {class: "toolbar-group time-range"}, this.sel, this.custom);
  }

  selected() {
    if (this.sel.value === "custom") {
      this.custom.hidden = false;
      return;
    }
    this.custom.hidden = true;
    this.state = {range: this.sel.value};
    this.onChange(this.state);
  }

  applyCustom() {
    const from = parseTime(this.fromIn.value), to = parseTime(this.toIn.value);
    if (!from || !to || from >= to) {
      this.custom.classList.add("invalid");
      return;
    }
    this.custom.classList.remove("invalid");
    this.state = {from, to};
    this.onChange(this.state);
  }

  /** {from, to} in unix seconds. */
  current() {
    if (this.state.from) return {from: this.state.from, to: this.state.to};
    const secs = RANGES.find(([k]) => k === this.state.range)?.[1] || 7200;
    const to = Math.floor(Date.now() / 1000);
    return {from: to - secs, to};
  }

  /** URL parameters of the state. */
  params() {
    return this.state.from ? {from: String(this.state.from), to: String(this.state.to)} : {range: this.state.range};
  }

  get isLive() { return !this.state.from; }
}

/** {range} or {from, to} from the page's URL arguments. */
export function fromArgs(args) {
  const from = parseTime(args?.from), to = parseTime(args?.to);
  if (from && to && from < to) return {from, to};
  return {range: args?.range};
}

/** Reload button and periodic reload selector; `reload()` is called on each. */
export function refresher(reload, initial = 0) {
  let timer = null;
  const periodic = h("select", {dataset: {field: "reload-interval"}, title: "Periodic reload", onchange: () => start()},
    RELOAD_CHOICES.map(([v, l]) => h("option", {value: v, selected: v === initial}, l)));
  const start = () => {
    clearInterval(timer);
    timer = null;
    const s = Number(periodic.value);
    if (s) timer = setInterval(reload, s * 1000);
  };
  start();
  return h("div", {class: "toolbar-group"},
    h("button", {type: "button", class: "btn", dataset: {reload: ""}, onclick: () => reload()}, "Reload"), periodic);
}

/** Replace the page URL's query by `params` (null/"" values dropped) without a navigation. */
export function setURLParams(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
}

/** A resolution (seconds) that gives a plot of about `points` points over `span` seconds: 0 for short spans. */
export function resolutionFor(span, points = 600) {
  const want = span / points;
  if (want <= 15) return 0;
  return [30, 60, 120, 300, 600, 1800, 3600].find((r) => r >= want) ?? 3600;
}
