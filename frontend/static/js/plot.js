// Metric plots on uPlot: one line per series (or min/median/max for many series), crosshair with a
// hover legend, drag to zoom (double click resets), background coloured by the metric's thresholds,
// and in-place appends for live data.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import {fmtElapsed, fmtShort, fmtValue, h, median, tickLabels, unitText} from "./util.js";

export const BACKGROUNDS = {caution: "rgba(255, 128, 0, 0.25)", alert: "rgba(255, 0, 0, 0.22)"};
export const STAT_COLORS = {min: "#d62728", median: "#222222", max: "#2ca02c"};
const LEGEND_MAX = 12;      // more series than this: the hover legend shows only the time
const LEGEND_COLORS = 6;    // up to this many series the legend shows their colours
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                    172800, 345600, 604800, 1209600];

/** Thresholds of a metric for a scope: sum-aggregated metrics are divided by the units per node (as cc-backend). */
export function scopeThresholds(mc, topology, scope) {
  if (!mc) return null;
  const base = {peak: mc.peak, normal: mc.normal, caution: mc.caution, alert: mc.alert,
                lowerIsBetter: !!mc.lowerIsBetter};
  if (mc.aggregation !== "sum" || !scope || scope === "node") return base;
  const n = {socket: topology?.socket?.length, memoryDomain: topology?.memoryDomain?.length,
             core: topology?.core?.length, hwthread: topology?.node?.length,
             accelerator: topology?.accelerators?.length, die: topology?.die?.length}[scope] || 1;
  return {peak: mc.peak / n, normal: mc.normal == null ? null : mc.normal / n, caution: mc.caution / n,
          alert: mc.alert / n, lowerIsBetter: base.lowerIsBetter};
}

/** "alert", "caution" or "normal" for an average against thresholds (cc-backend's rule for plot backgrounds). */
export function thresholdLevel(avg, th) {
  if (!th || avg === null || avg === undefined || Number.isNaN(avg)) return "normal";
  const worse = th.alert < th.caution ? (a, b) => a <= b : (a, b) => a >= b;
  if (worse(avg, th.alert)) return "alert";
  if (worse(avg, th.caution)) return "caution";
  return "normal";
}

/** Per time step min, median and max over series (null where no series has a value). */
export function statistics(seriesData) {
  const n = Math.max(0, ...seriesData.map((d) => d.length));
  const min = new Array(n), med = new Array(n), max = new Array(n);
  const col = new Array(seriesData.length);
  for (let i = 0; i < n; i++) {
    let k = 0, lo = Infinity, hi = -Infinity;
    for (const d of seriesData) {
      const v = d[i];
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        col[k++] = v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (!k) { min[i] = med[i] = max[i] = null; continue; }
    min[i] = lo; max[i] = hi;
    med[i] = median(col.slice(0, k));
  }
  return {min, median: med, max};
}

function meanOf(seriesData) {
  let sum = 0, n = 0;
  for (const d of seriesData) for (const v of d) if (v !== null && Number.isFinite(v)) { sum += v; n++; }
  return n ? sum / n : null;
}

const resizer = new ResizeObserver((entries) => {
  for (const e of entries) e.target.ccPlot?.resize();
});

/**
 * A metric plot in `container`.
 * opts: {metric, unit, timestep, series: [{key, label, data}], stats: bool (show min/median/max),
 *        thresholds, height, lineWidth, colors, colorBackground, onZoom({min, max, visible}), title,
 *        start: unix seconds of the first point (node views: the x axis shows the time of day, not the runtime),
 *        span: seconds the x axis covers at least}
 */
export class MetricPlot {
  constructor(container, opts) {
    this.el = container;
    this.opts = {height: 220, lineWidth: 2, colors: ["#1f77b4"], colorBackground: true, stats: false, ...opts};
    this.series = (opts.series || []).map((s) => ({...s, data: s.data.slice()}));
    this.timestep = opts.timestep;
    this.zoomed = false;
    this.u = null;
    this.el.classList.add("metric-plot");
    this.el.ccPlot = this;
    this.render();
    resizer.observe(this.el);
  }

  get length() { return Math.max(0, ...this.series.map((s) => s.data.length)); }

  /** Label of an x value: runtime since the job start, or the time of day with `opts.start`. */
  fmtX(x, withDate = false) {
    if (this.opts.start === undefined || this.opts.start === null) return fmtElapsed(x);
    const d = new Date((this.opts.start + x) * 1000);
    const hm = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hour12: false});
    return withDate ? `${d.toLocaleDateString()} ${hm}` : hm;
  }

  /** [xs, ys...] for uPlot. */
  buildData() {
    // opts.span (node views): the x axis covers the whole chosen range, also where no data came yet
    const n = Math.max(this.length, this.opts.span ? Math.floor(this.opts.span / this.timestep) + 1 : 0);
    const xs = new Array(n);
    for (let i = 0; i < n; i++) xs[i] = i * this.timestep;
    const pad = (d) => (d.length < n ? d.concat(new Array(n - d.length).fill(null)) : d);
    if (this.opts.stats) {
      const st = statistics(this.series.map((s) => s.data));
      return [xs, pad(st.min), pad(st.median), pad(st.max)];
    }
    return [xs, ...this.series.map((s) => pad(s.data))];
  }

  background() {
    if (!this.opts.colorBackground || !this.opts.thresholds) return "normal";
    return thresholdLevel(meanOf(this.series.map((s) => s.data)), this.opts.thresholds);
  }

  width() {
    return Math.max(160, Math.floor(this.el.clientWidth || this.el.parentElement?.clientWidth || 320));
  }

  render() {
    this.u?.destroy();
    this.u = null;
    this.el.replaceChildren();
    this.el.dataset.resolution = String(this.timestep);
    this.el.dataset.zoomed = "false";
    if (!this.series.length || !this.length) {
      this.el.append(h("div", {class: "plot-empty", style: {height: this.opts.height + "px"}},
        `No data for ${this.opts.metric}`));
      this.el.dataset.points = "0";
      return;
    }
    const {colors, lineWidth, unit} = this.opts;
    const width = lineWidth / (window.devicePixelRatio || 1);
    let series;
    if (this.opts.stats) {
      series = [["min", STAT_COLORS.min], ["median", STAT_COLORS.median], ["max", STAT_COLORS.max]]
        .map(([label, stroke]) => ({label, stroke, width, spanGaps: false}));
    } else {
      series = this.series.map((s, i) => ({label: s.label, stroke: colors[i % colors.length], width, spanGaps: false}));
    }
    const level = this.background();
    this.el.dataset.background = level;
    const fill = BACKGROUNDS[level];
    const plot = this;
    const opts = {
      width: this.width(),
      height: this.opts.height,
      legend: {show: false},
      cursor: {drag: {x: true, y: false, setScale: true}, points: {size: 6}},
      scales: {x: {time: false}, y: {range: (u, min, max) => yRange(min, max)}},
      axes: [
        {values: (u, splits) => splits.map((x) => this.fmtX(x)), space: 60, gap: 3, size: 34,
         incrs: TIME_INCRS.filter((i) => i >= this.timestep),
         splits: this.opts.start === undefined || this.opts.start === null ? undefined
           : (u, ai, min, max, incr) => {   // ticks on whole minutes/hours of the clock
             const off = this.opts.start, out = [];
             for (let t = Math.ceil((min + off) / incr) * incr - off; t <= max + 1e-9; t += incr) out.push(t);
             return out;
           }},
        {values: (u, splits) => tickLabels(splits), size: 46, gap: 3,
         label: unitText(unit) || undefined, labelSize: unitText(unit) ? 16 : 0},
      ],
      series: [{label: this.opts.start === undefined || this.opts.start === null ? "Runtime" : "Time"}, ...series],
      hooks: {
        drawClear: [(u) => {
          if (!fill) return;
          const {ctx, bbox} = u;
          ctx.save();
          ctx.fillStyle = fill;
          ctx.fillRect(bbox.left, bbox.top, bbox.width, bbox.height);
          ctx.restore();
        }],
        setScale: [(u, key) => { if (key === "x") plot.scaleChanged(); }],
      },
      plugins: [hoverLegend(this)],
    };
    this.u = new uPlot(opts, this.buildData(), this.el);
    this.el.dataset.points = String(this.length);
  }

  scaleChanged() {
    const u = this.u;
    if (!u || !u.data[0].length) return;
    const xs = u.data[0], {min, max} = u.scales.x;
    const zoomed = min > xs[0] + 1e-9 || max < xs[xs.length - 1] - 1e-9;
    this.zoomed = zoomed;
    this.el.dataset.zoomed = String(zoomed);
    if (!zoomed || !this.opts.onZoom) return;
    let visible = 0;
    for (const x of xs) if (x >= min && x <= max) visible++;
    this.opts.onZoom({min, max, visible});
  }

  resize() {
    if (!this.u) return;
    const w = this.width();
    if (Math.abs(w - this.u.width) > 2) this.u.setSize({width: w, height: this.opts.height});
  }

  /** Replace the data (new resolution or scope); with keepRange the visible x range stays. */
  setData({series, timestep, keepRange = null}) {
    this.series = series.map((s) => ({...s, data: s.data.slice()}));
    this.timestep = timestep;
    this.render();
    if (keepRange && this.u) this.u.setScale("x", keepRange);
  }

  /**
   * Live points: `index` counts `step`-second slots from the data's first slot; `updates` maps series key
   * to values from that index on.  Unknown series are added.  Returns the number of points written.
   */
  appendLive(index, step, updates) {
    let written = 0, added = false;
    for (const [key, values] of updates) {
      let s = this.series.find((x) => x.key === key);
      if (!s) {
        s = {key, label: key, data: []};
        this.series.push(s);
        added = true;
      }
      values.forEach((v, k) => {
        if (v === null || v === undefined) return;
        const at = Math.floor(((index + k) * step) / this.timestep);
        while (s.data.length < at) s.data.push(null);
        s.data[at] = v;
        written++;
      });
    }
    if (!written) return 0;
    if (added || !this.u) {
      this.render();
    } else {
      const range = this.zoomed ? {min: this.u.scales.x.min, max: this.u.scales.x.max} : null;
      this.u.setData(this.buildData(), !range);
      if (range) this.u.setScale("x", range);
      this.el.dataset.points = String(this.length);
      const level = this.background();
      if (level !== this.el.dataset.background) this.render();
    }
    return written;
  }

  destroy() {
    resizer.unobserve(this.el);
    this.u?.destroy();
    this.u = null;
    delete this.el.ccPlot;
  }
}

function yRange(min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const lo = Math.min(0, min);
  let hi = max;
  if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
  return [lo, hi + (hi - lo) * 0.08];
}

/**
 * A uPlot plugin: a box floating next to the cursor, filled by ``rows(u, idx)`` (an array of elements)
 * while the cursor is over a data point.  Shared by the metric plots and the histograms.
 */
export function cursorBox(rows) {
  let box = null;
  return {
    hooks: {
      init: (u) => {
        box = h("div", {class: "plot-legend", hidden: true});
        u.over.append(box);
        u.over.addEventListener("mouseleave", () => { box.hidden = true; });
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || u.cursor.left < 0) { box.hidden = true; return; }
        box.replaceChildren(...rows(u, i));
        box.hidden = false;
        const left = u.cursor.left, overW = u.over.clientWidth;
        box.style.left = (left + 12 + box.offsetWidth > overW ? Math.max(0, left - box.offsetWidth - 12) : left + 12) + "px";
        box.style.top = Math.max(0, u.cursor.top - 10) + "px";
      },
    },
  };
}

/** The hover legend: time and (for up to 12 series) each series' value at the cursor. */
function hoverLegend(plot) {
  return cursorBox((u, i) => {
    const rows = [h("div", {class: "plot-legend-time"}, plot.fmtX(u.data[0][i], true))];
    const n = u.series.length - 1;
    if (n <= LEGEND_MAX || plot.opts.stats) {
      for (let s = 1; s <= n; s++) {
        const ser = u.series[s];
        rows.push(h("div", {class: "plot-legend-row"},
          n <= LEGEND_COLORS || plot.opts.stats ? h("span", {class: "swatch", style: {background: ser.stroke(u, s)}}) : null,
          h("span", {class: "plot-legend-label"}, ser.label), " ",
          h("b", {}, fmtValue(u.data[s][i], plot.opts.unit))));
      }
    }
    return rows;
  });
}
