// Bar charts of binned counts (job durations, node counts, metric distributions) on uPlot: categorical x axis,
// hover box with the bin and its count, drag to zoom, double click to reset.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import {cursorBox} from "./plot.js";
import {fmtDuration, fmtShort, h, tickLabels} from "./util.js";

const resizer = new ResizeObserver((entries) => {
  for (const e of entries) e.target.ccHistogram?.resize();
});

/**
 * A histogram in `container`.
 * opts: {title, xLabel, yLabel ("Jobs"), bins: [{label, count, title?}], height, color}
 */
export class Histogram {
  constructor(container, opts) {
    this.el = container;
    this.opts = {height: 200, yLabel: "Jobs", color: "#3a78c3", ...opts};
    this.el.classList.add("histogram");
    this.el.ccHistogram = this;
    this.render();
    resizer.observe(this.el);
  }

  get bins() { return this.opts.bins || []; }

  width() {
    return Math.max(200, Math.floor(this.el.clientWidth || this.el.parentElement?.clientWidth || 320));
  }

  render() {
    this.u?.destroy();
    this.u = null;
    const bins = this.bins;
    const total = bins.reduce((s, b) => s + (b.count || 0), 0);
    this.el.dataset.bins = String(bins.length);
    this.el.dataset.total = String(total);
    const head = h("div", {class: "histogram-title"}, this.opts.title || "");
    const plotEl = h("div", {class: "histogram-plot"});
    this.el.replaceChildren(head, plotEl);
    if (!bins.length) {
      plotEl.append(h("div", {class: "plot-empty", style: {height: this.opts.height + "px"}}, "No data"));
      return;
    }
    const xs = bins.map((_, i) => i), ys = bins.map((b) => b.count || 0);
    const labels = bins.map((b) => b.label);
    const hist = this;
    const opts = {
      width: this.width(),
      height: this.opts.height,
      legend: {show: false},
      cursor: {drag: {x: true, y: false, setScale: true}, points: {show: false}},
      scales: {x: {time: false, range: (u, min, max) => [min - 0.5, max + 0.5]},
               y: {range: (u, min, max) => [0, Math.max(1, max) * 1.1]}},
      axes: [
        {splits: (u) => {
          const {min, max} = u.scales.x;
          const lo = Math.max(0, Math.ceil(min)), hi = Math.min(bins.length - 1, Math.floor(max));
          const every = Math.max(1, Math.ceil((hi - lo + 1) / Math.max(2, Math.floor(u.bbox.width / devicePixelRatio / 55))));
          const out = [];
          for (let i = lo; i <= hi; i += every) out.push(i);
          return out;
        }, values: (u, splits) => splits.map((i) => labels[i] ?? ""), size: 36, gap: 3,
         label: this.opts.xLabel || undefined, labelSize: this.opts.xLabel ? 16 : 0},
        {values: (u, splits) => tickLabels(splits), size: 44, gap: 3, label: this.opts.yLabel, labelSize: 16},
      ],
      series: [{label: this.opts.xLabel || "bin"},
               {label: this.opts.yLabel, fill: this.opts.color + "cc", stroke: this.opts.color, width: 1,
                paths: uPlot.paths.bars({size: [0.8, 80], align: 0}), points: {show: false}}],  // bars, no dots
      plugins: [hoverBox(hist)],
    };
    this.u = new uPlot(opts, [xs, ys], plotEl);
  }

  resize() {
    if (!this.u) return;
    const w = this.width();
    if (Math.abs(w - this.u.width) > 2) this.u.setSize({width: w, height: this.opts.height});
  }

  destroy() {
    resizer.unobserve(this.el);
    this.u?.destroy();
    this.u = null;
    delete this.el.ccHistogram;
  }
}

function hoverBox(hist) {
  return cursorBox((u, i) => {
    const b = hist.bins[i];
    return [h("div", {class: "plot-legend-time"}, b.title || b.label),
            h("div", {}, `${hist.opts.yLabel}: `, h("b", {}, String(b.count)))];
  });
}

// -- bins of cc's jobsStatistics answers ---------------------------------------------------------

/** histDuration points ({value: upper bound in s, count}) -> bins labelled by the bin's upper bound in hours. */
export function durationBins(points) {
  // trailing empty bins are cut, so a day of 10-minute bins does not squeeze the interesting part
  let last = points.length - 1;
  while (last > 0 && !points[last].count) last--;
  const step = points.length > 1 ? points[1].value - points[0].value : points[0]?.value || 3600;
  return points.slice(0, last + 1).map((p) => ({
    label: p.value >= 3600 && p.value % 3600 === 0 ? `${p.value / 3600}h` : fmtDuration(p.value).replace(/^0:/, ""),
    title: `${fmtDuration(p.value - step)} – ${fmtDuration(p.value)}`, count: p.count, value: p.value}));
}

/** histNumNodes/Cores/Accs points -> one bin per value (gaps filled when the values are few). */
export function countBins(points, unit = "") {
  if (!points.length) return [];
  const max = Math.max(...points.map((p) => p.value));
  const byValue = new Map(points.map((p) => [p.value, p.count]));
  const dense = max <= 64;
  const values = dense ? Array.from({length: max}, (_, i) => i + 1) : points.map((p) => p.value);
  if (dense && byValue.has(0)) values.unshift(0);
  return values.map((v) => ({label: String(v), title: `${v}${unit ? " " + unit : ""}`, count: byValue.get(v) || 0,
                             value: v}));
}

/** histMetrics data ({bin, min, max, count}) -> bins labelled by their range. */
export function metricBins(data, unit = "") {
  return (data || []).map((p) => ({label: `${fmtShort(p.min)}-${fmtShort(p.max)}`,
                                   title: `${p.min} – ${p.max} ${unit}`.trim(), count: p.count, value: p.bin}));
}
