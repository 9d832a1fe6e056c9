// Canvas charts of the job view: the roofline (flops_any over arithmetic intensity against the subcluster's
// peaks, colour = time) and the polar plot of the footprint metrics (average and maximum relative to peak).

import {fmtShort, h, PREFIXES} from "./util.js";

function setupCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

const toGiga = (value, unit) => value * (PREFIXES[unit?.prefix || ""] ?? 1) / 1e9;

/**
 * Roofline points from node-scope flops_any and mem_bw data of a job: per host and time step
 * {x: intensity (F/B), y: GF/s, t: 0..1}.
 */
export function rooflinePoints(flops, membw) {
  const out = [];
  if (!flops?.series || !membw?.series) return out;
  for (const fs of flops.series) {
    const ms = membw.series.find((s) => s.hostname === fs.hostname && (s.id || null) === (fs.id || null));
    if (!ms) continue;
    const n = Math.min(fs.data.length, ms.data.length);
    for (let i = 0; i < n; i++) {
      const f = fs.data[i], m = ms.data[i];
      if (f === null || m === null || !(f > 0) || !(m > 0)) continue;
      const gf = toGiga(f, flops.unit), gb = toGiga(m, membw.unit);
      out.push({x: gf / gb, y: gf, t: n > 1 ? i / (n - 1) : 1});
    }
  }
  return out;
}

/** Peaks of a subcluster in GF/s and GB/s. */
export function subclusterPeaks(sc) {
  return {simd: toGiga(sc.flopRateSimd.value, sc.flopRateSimd.unit), scalar: toGiga(sc.flopRateScalar.value, sc.flopRateScalar.unit),
          bw: toGiga(sc.memoryBandwidth.value, sc.memoryBandwidth.unit)};
}

/**
 * Roofline: dots (points {x: F/B, y: GF/s, t: 0..1 colour}) or, with `heatmap` {tiles: rows x cols counts,
 * minX, maxX, minY, maxY} (log-spaced tiles, row 0 at minY), a heat map of many jobs, under the subcluster's roofs.
 */
export function drawRoofline(container, points, peaks, {width = 420, height = 300, heatmap = null,
                                                       legend = "time"} = {}) {
  const canvas = h("canvas", {class: "roofline", dataset: {roofline: "", points: points.length}});
  container.replaceChildren(canvas, rooflineLegend(heatmap ? "jobs" : legend, points.length));
  const ctx = setupCanvas(canvas, width, height);
  const pad = {l: 52, r: 12, t: 12, b: 38};
  const W = width - pad.l - pad.r, H = height - pad.t - pad.b;
  let top = peaks.simd || 1, bottom = top, left = 0.01, right = 1000;
  for (const p of points) {
    if (p.y > top) top = p.y;
    if (p.y < bottom) bottom = p.y;
    if (p.x < left) left = p.x;
    if (p.x > right) right = p.x;
  }
  let x0 = Math.max(Math.floor(Math.log10(left)), -6), x1 = Math.min(Math.ceil(Math.log10(right)), 6);
  let y1 = Math.ceil(Math.log10(top * 1.5));
  let y0 = Math.max(Math.min(y1 - 5, Math.floor(Math.log10(bottom))), y1 - 12);
  if (heatmap) {
    x0 = Math.log10(heatmap.minX); x1 = Math.log10(heatmap.maxX);
    y0 = Math.log10(heatmap.minY); y1 = Math.log10(heatmap.maxY);
  }
  const X = (v) => pad.l + ((Math.log10(v) - x0) / (x1 - x0)) * W;
  const Y = (v) => pad.t + H - ((Math.log10(v) - y0) / (y1 - y0)) * H;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e3e3e3";
  ctx.fillStyle = "#555";
  ctx.lineWidth = 1;
  for (let e = Math.ceil(x0); e <= x1; e++) {
    const x = X(10 ** e);
    ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, pad.t + H); ctx.stroke();
    ctx.textAlign = "center";
    ctx.fillText(fmtShort(10 ** e), x, pad.t + H + 14);
  }
  for (let e = Math.ceil(y0); e <= y1; e++) {
    const y = Y(10 ** e);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + W, y); ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(fmtShort(10 ** e), pad.l - 6, y + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText("Arithmetic intensity [FLOP/byte]", pad.l + W / 2, height - 6);
  ctx.save();
  ctx.translate(12, pad.t + H / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText("Performance [GFLOP/s]", 0, 0);
  ctx.restore();
  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.l, pad.t, W, H);
  ctx.clip();
  if (heatmap) {
    const rows = heatmap.tiles.length, cols = rows ? heatmap.tiles[0].length : 0;
    const max = Math.max(0, ...heatmap.tiles.flat());
    canvas.dataset.heatmapMax = String(max);
    canvas.dataset.heatmapTotal = String(heatmap.tiles.flat().reduce((a, b) => a + b, 0));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = heatmap.tiles[r][c];
        if (!v) continue;
        const xa = pad.l + (c / cols) * W, xb = pad.l + ((c + 1) / cols) * W;
        const ya = pad.t + H - ((r + 1) / rows) * H, yb = pad.t + H - (r / rows) * H;
        ctx.fillStyle = `rgba(220, 30, 30, ${(0.15 + 0.85 * Math.sqrt(v / max)).toFixed(3)})`;
        ctx.fillRect(xa, ya, xb - xa + 0.5, yb - ya + 0.5);
      }
    }
  }
  const roof = (peak, color, dash) => {
    if (!(peak > 0) || !(peaks.bw > 0)) return;
    const knee = peak / peaks.bw;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(dash);
    ctx.beginPath();
    ctx.moveTo(X(10 ** x0), Y(peaks.bw * 10 ** x0));
    ctx.lineTo(X(knee), Y(peak));
    ctx.lineTo(X(10 ** x1), Y(peak));
    ctx.stroke();
    ctx.setLineDash([]);
  };
  roof(peaks.simd, "#000", []);
  roof(peaks.scalar, "#666", [5, 4]);
  for (const p of points) {
    ctx.fillStyle = `hsl(${Math.round(240 - 240 * p.t)}, 85%, 45%)`;
    ctx.beginPath();
    ctx.arc(X(p.x), Y(p.y), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();
  if (!points.length && !(heatmap && heatmap.tiles.flat().some((v) => v > 0))) {
    ctx.fillStyle = "#888";
    ctx.textAlign = "center";
    ctx.fillText("No flops_any/mem_bw data", pad.l + W / 2, pad.t + H / 2);
  }
  return canvas;
}

/** What the colours of a roofline mean: time within the job, the number of jobs of a heat map tile, or nodes. */
function rooflineLegend(kind, n) {
  const roofs = [h("span", {class: "legend-line"}), " peak (SIMD) ", h("span", {class: "legend-line dashed"}), " scalar"];
  if (kind === "jobs") {
    return h("div", {class: "roofline-legend", dataset: {rooflineLegend: kind}}, "Jobs per tile: few ",
      h("span", {class: "legend-gradient heat"}), " many · ", roofs);
  }
  if (kind === "nodes") {
    return h("div", {class: "roofline-legend", dataset: {rooflineLegend: kind}}, `One point per node (${n}) · `, roofs);
  }
  return h("div", {class: "roofline-legend", dataset: {rooflineLegend: kind}}, "Time: start ",
    h("span", {class: "legend-gradient time"}), " end · ", roofs);
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * e).find((m) => m >= v) || 10 * e;
}

/**
 * Bubble scatter plot of two metrics' job averages: points [{x, y, w}] (w: weight, e.g. node hours, sets the size).
 * opts: {xLabel, yLabel, xMax, yMax, width, height}.
 */
export function drawScatter(container, points, {xLabel = "", yLabel = "", xMax = 0, yMax = 0, width = 400,
                                                height = 300} = {}) {
  const canvas = h("canvas", {class: "scatter", dataset: {scatter: "", points: points.length}});
  container.replaceChildren(canvas);
  const ctx = setupCanvas(canvas, width, height);
  const pad = {l: 52, r: 14, t: 12, b: 38};
  const W = width - pad.l - pad.r, H = height - pad.t - pad.b;
  const mx = niceMax(Math.max(xMax, ...points.map((p) => p.x))), my = niceMax(Math.max(yMax, ...points.map((p) => p.y)));
  const X = (v) => pad.l + (v / mx) * W, Y = (v) => pad.t + H - (v / my) * H;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e3e3e3";
  ctx.fillStyle = "#555";
  for (let i = 0; i <= 5; i++) {
    const x = X((mx * i) / 5), y = Y((my * i) / 5);
    ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, pad.t + H); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + W, y); ctx.stroke();
    ctx.textAlign = "center";
    ctx.fillText(fmtShort((mx * i) / 5), x, pad.t + H + 14);
    ctx.textAlign = "right";
    ctx.fillText(fmtShort((my * i) / 5), pad.l - 6, y + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText(xLabel, pad.l + W / 2, height - 6);
  ctx.save();
  ctx.translate(12, pad.t + H / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  const wmax = Math.max(1e-9, ...points.map((p) => p.w || 0));
  ctx.fillStyle = "rgba(40, 90, 200, 0.35)";
  ctx.strokeStyle = "rgba(40, 90, 200, 0.8)";
  for (const p of points) {
    ctx.beginPath();
    ctx.arc(X(p.x), Y(p.y), 3 + 9 * Math.sqrt((p.w || 0) / wmax), 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  if (!points.length) {
    ctx.fillStyle = "#888";
    ctx.fillText("No jobs with both values", pad.l + W / 2, pad.t + H / 2);
  }
  return canvas;
}

export const PIE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                           "#bcbd22", "#17becf"];

/** Pie chart of [{label, value}] (colours PIE_COLORS in order). */
export function drawPie(container, items, {size = 220} = {}) {
  const canvas = h("canvas", {class: "pie", dataset: {pie: "", slices: items.length}});
  container.replaceChildren(canvas);
  const ctx = setupCanvas(canvas, size, size);
  const total = items.reduce((s, i) => s + Math.max(0, i.value), 0);
  const cx = size / 2, cy = size / 2, r = size / 2 - 6;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, size, size);
  if (!total) {
    ctx.fillStyle = "#888";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText("No data", cx, cy);
    return canvas;
  }
  let a = -Math.PI / 2;
  items.forEach((it, i) => {
    const da = (2 * Math.PI * Math.max(0, it.value)) / total;
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.arc(cx, cy, r, a, a + da);
    ctx.closePath();
    ctx.fillStyle = PIE_COLORS[i % PIE_COLORS.length];
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    a += da;
  });
  return canvas;
}

const LABEL_GAP = 8, LABEL_ASCENT = 10, LABEL_HEIGHT = 13, MARGIN = 3;

const labelAlign = (a) => Math.abs(Math.cos(a)) < 0.2 ? "center" : Math.cos(a) > 0 ? "left" : "right";

/** The largest radius at which every axis name, drawn beyond the ring, stays inside the canvas. */
function polarRadius(ctx, axes, angle, cx, cy, size) {
  let R = size / 2 - 20;
  axes.forEach((ax, i) => {
    const a = angle(i), c = Math.cos(a), sn = Math.sin(a), w = ctx.measureText(ax.name).width;
    const align = labelAlign(a);
    // horizontal room: the label's far edge at cx + c (R + gap) (+ w, or + w/2 when centred)
    const reach = align === "center" ? w / 2 : w;
    if (Math.abs(c) > 1e-6) R = Math.min(R, (size / 2 - MARGIN - reach) / Math.abs(c) - LABEL_GAP);
    // vertical room: baseline at cy + s (R + gap) + 4, ascent above it
    if (sn < -1e-6) R = Math.min(R, (cy - MARGIN - LABEL_ASCENT + 4) / -sn - LABEL_GAP);
    if (sn > 1e-6) R = Math.min(R, (size - cy - MARGIN - 4 - (LABEL_HEIGHT - LABEL_ASCENT)) / sn - LABEL_GAP);
  });
  return Math.max(40, R);
}

/** Polar plot. axes: [{name, avg, max}] with values relative to peak (1.0 = peak). */
export function drawPolar(container, axes, {size = 300} = {}) {
  const shown = {avg: true, max: true};
  const canvas = h("canvas", {class: "polar", dataset: {polar: "", axes: axes.length}});
  const legend = h("div", {class: "polar-legend"},
    [["max", "Maximum", "rgba(220, 50, 50, 0.9)"], ["avg", "Average", "rgba(40, 90, 200, 0.9)"]].map(([k, label, c]) =>
      h("button", {type: "button", class: "legend-toggle", dataset: {series: k}, onclick: (e) => {
        shown[k] = !shown[k];
        e.currentTarget.classList.toggle("off", !shown[k]);
        draw();
      }}, h("span", {class: "swatch", style: {background: c}}), label)));
  container.replaceChildren(canvas, legend);
  const draw = () => {
    const ctx = setupCanvas(canvas, size, size);
    const cx = size / 2, cy = size / 2 + 4;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    ctx.font = "11px system-ui, sans-serif";
    const angle = (i) => -Math.PI / 2 + (2 * Math.PI * i) / axes.length;
    const R = polarRadius(ctx, axes, angle, cx, cy, size);
    const boxes = [];  // every text drawn, as {text, x, y, w, h} (top left): tests check they fit and do not overlap
    const label = (text, x, y, align) => {
      const w = ctx.measureText(text).width;
      ctx.textAlign = align;
      ctx.fillText(text, x, y);
      boxes.push({text, x: align === "left" ? x : align === "right" ? x - w : x - w / 2, y: y - LABEL_ASCENT, w, h: LABEL_HEIGHT});
    };
    canvas.ccLabels = boxes;
    if (axes.length < 3) {
      ctx.fillStyle = "#888";
      ctx.textAlign = "center";
      ctx.fillText(axes.length ? "Too few footprint metrics" : "No footprint metrics", cx, cy);
      return;
    }
    ctx.strokeStyle = "#ddd";
    for (const r of [0.25, 0.5, 0.75, 1]) {
      ctx.beginPath();
      axes.forEach((_, i) => {
        const a = angle(i);
        ctx[i ? "lineTo" : "moveTo"](cx + Math.cos(a) * R * r, cy + Math.sin(a) * R * r);
      });
      ctx.closePath();
      ctx.stroke();
    }
    ctx.fillStyle = "#444";
    axes.forEach((ax, i) => {
      const a = angle(i);
      ctx.strokeStyle = "#ccc";
      ctx.beginPath(); ctx.moveTo(cx, cy); ctx.lineTo(cx + Math.cos(a) * R, cy + Math.sin(a) * R); ctx.stroke();
      label(ax.name, cx + Math.cos(a) * (R + LABEL_GAP), cy + Math.sin(a) * (R + LABEL_GAP) + 4, labelAlign(a));
    });
    // the scale mark of the outer ring halfway between the first two axes, inside the ring: on no axis line
    ctx.fillStyle = "#999";
    const mid = (angle(0) + angle(1)) / 2;
    label("1.0", cx + Math.cos(mid) * (R - 14), cy + Math.sin(mid) * (R - 14) + 4, "center");
    const poly = (key, fill, stroke) => {
      if (!shown[key]) return;
      ctx.beginPath();
      axes.forEach((ax, i) => {
        const a = angle(i), v = Math.max(0, Math.min(1.2, ax[key] || 0));
        ctx[i ? "lineTo" : "moveTo"](cx + Math.cos(a) * R * v, cy + Math.sin(a) * R * v);
      });
      ctx.closePath();
      ctx.fillStyle = fill;
      ctx.fill();
      ctx.strokeStyle = stroke;
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.lineWidth = 1;
    };
    poly("max", "rgba(220, 50, 50, 0.25)", "rgba(220, 50, 50, 0.9)");
    poly("avg", "rgba(40, 90, 200, 0.3)", "rgba(40, 90, 200, 0.9)");
  };
  draw();
  return canvas;
}
