// Analysis of a cluster's jobs (/monitoring/analysis/<cluster>): for the jobs matching the filters the totals,
// the top users or projects, a roofline heat map, duration and core count histograms, and the distribution of
// job averages of chosen metrics (weighted histograms) and chosen metric pairs (bubble scatter plots).

import {drawPie, drawRoofline, drawScatter, PIE_COLORS, subclusterPeaks} from "../charts.js";
import {filtersToURL, FilterBar, parseFilters, toJobFilters} from "../filters.js";
import {gql, loadInit} from "../gql.js";
import {countBins, durationBins, Histogram} from "../histogram.js";
import {selectMetrics} from "../select.js";
import {loadSettings} from "../settings.js";
import {$, dialog, errorBox, fill, fmtShort, h, pageData, PREFIXES, unitText} from "../util.js";

const STATS_QUERY = `query($filter: [JobFilter!], $groupBy: Aggregate, $sortBy: SortByAggregate) {
  stats: jobsStatistics(filter: $filter) { totalJobs shortJobs totalWalltime totalNodeHours totalCoreHours totalAccHours
    histDuration { count value } histNumCores { count value } }
  top: jobsStatistics(filter: $filter, groupBy: $groupBy, sortBy: $sortBy, page: {itemsPerPage: 10, page: 1}) {
    id name totalJobs totalWalltime totalNodeHours totalCoreHours totalAccHours } }`;
const HEATMAP_QUERY = `query($filter: [JobFilter!]!, $minX: Float!, $minY: Float!, $maxX: Float!, $maxY: Float!) {
  rooflineHeatmap(filter: $filter, rows: 50, cols: 50, minX: $minX, minY: $minY, maxX: $maxX, maxY: $maxY) }`;
const FOOTPRINTS_QUERY = `query($filter: [JobFilter!], $metrics: [String!]!) {
  jobsFootprints(filter: $filter, metrics: $metrics) { timeWeights { nodeHours accHours coreHours } metrics { metric data } } }`;
const CATEGORIES = [["TOTALJOBS", "totalJobs", "Jobs"], ["TOTALWALLTIME", "totalWalltime", "Walltime (h)"],
                    ["TOTALNODEHOURS", "totalNodeHours", "Node hours"], ["TOTALCOREHOURS", "totalCoreHours", "Core hours"],
                    ["TOTALACCHOURS", "totalAccHours", "Accelerator hours"]];
const NUM_BINS = 50;
const DEFAULT_RANGE = "last24h";

const page = pageData();
const cluster = page.cluster;
let info, settings, filters, generation = 0, defaulted = false;
const plots = [];
const top = {entity: "USER", category: "TOTALJOBS"};

const jobFilters = () => toJobFilters({...filters, cluster});

function metricConfig(m) {
  const c = info.cluster(cluster);
  const configs = c.subClusters.map((s) => s.metricConfig.find((x) => x.name === m)).filter(Boolean);
  return configs.length ? {...configs[0], peak: Math.max(...configs.map((x) => x.peak || 0))} : null;
}

function renderTotals(s) {
  const row = (label, key, value) => h("tr", {}, h("th", {}, label), h("td", {class: "num", dataset: {stat: key}}, value));
  fill($("[data-totals]"), h("h2", {class: "card-title"}, "Totals"), h("table", {class: "table summary-table"}, h("tbody", {},
    row("Total jobs", "totalJobs", s.totalJobs.toLocaleString()), row("Short jobs", "shortJobs", s.shortJobs.toLocaleString()),
    row("Total walltime", "totalWalltime", `${s.totalWalltime.toLocaleString()} h`),
    row("Total node hours", "totalNodeHours", `${s.totalNodeHours.toLocaleString()} h`),
    row("Total core hours", "totalCoreHours", `${s.totalCoreHours.toLocaleString()} h`),
    row("Total accelerator hours", "totalAccHours", `${s.totalAccHours.toLocaleString()} h`))));
  const cnt = $("[data-job-count]");
  cnt.textContent = `${s.totalJobs} job${s.totalJobs === 1 ? "" : "s"}`;
  cnt.dataset.count = String(s.totalJobs);
}

function renderTop(rows) {
  const field = CATEGORIES.find(([k]) => k === top.category)[1];
  const entitySel = h("select", {dataset: {field: "top-entity"}, onchange: () => {
    top.entity = entitySel.value;
    settings.set("analysisView_selectedTopEntity", top.entity, cluster).catch(() => {});
    loadStats();
  }}, [["USER", "Users"], ["PROJECT", "Projects"]].map(([v, l]) => h("option", {value: v, selected: v === top.entity}, l)));
  const catSel = h("select", {dataset: {field: "top-category"}, onchange: () => {
    top.category = catSel.value;
    settings.set("analysisView_selectedTopCategory", top.category, cluster).catch(() => {});
    loadStats();
  }}, CATEGORIES.map(([k, , l]) => h("option", {value: k, selected: k === top.category}, l)));
  const pie = h("div", {class: "pie-box"});
  const link = (r) => top.entity === "USER"
    ? `/monitoring/user/${encodeURIComponent(r.id)}?cluster=${encodeURIComponent(cluster)}`
    : `/monitoring/jobs/?cluster=${encodeURIComponent(cluster)}&project=${encodeURIComponent(r.id)}&projectMatch=eq`;
  fill($("[data-top]"), h("div", {class: "card-title toolbar"}, h("span", {}, "Top "), entitySel, h("span", {}, "by"), catSel),
    h("div", {class: "top-pie"}, pie, h("table", {class: "table top-table", dataset: {top: top.entity.toLowerCase()}},
      h("tbody", {}, rows.map((r, i) => h("tr", {dataset: {topRow: r.id}},
        h("td", {}, h("span", {class: "swatch", style: {background: PIE_COLORS[i % PIE_COLORS.length]}})),
        h("td", {}, h("a", {href: link(r)}, r.id)), h("td", {class: "num", dataset: {field}}, r[field].toLocaleString())))))));
  drawPie(pie, rows.map((r) => ({label: r.id, value: r[field]})), {size: 180});
}

async function loadStats() {
  const gen = generation;
  try {
    const d = await gql(STATS_QUERY, {filter: jobFilters(), groupBy: top.entity, sortBy: top.category});
    if (gen !== generation) return;
    renderTotals(d.stats[0]);
    renderTop(d.top);
    for (const [sel, bins, t, x] of [["duration", durationBins(d.stats[0].histDuration), "Duration distribution", "Duration"],
                                     ["numCores", countBins(d.stats[0].histNumCores, "cores"), "Number of cores", "Cores"]]) {
      const el = $(`[data-hist=${sel}]`);
      el.ccHistogram?.destroy();
      new Histogram(el, {title: t, xLabel: x, bins});
    }
  } catch (e) {
    if (gen === generation) fill($("[data-totals]"), errorBox(e.message, "Loading statistics failed"));
  }
}

async function loadHeatmap() {
  const gen = generation;
  const el = $("[data-heatmap]");
  const c = info.cluster(cluster);
  const sc = c.subClusters[0];
  const fm = metricConfig("flops_any"), bm = metricConfig("mem_bw");
  if (!sc || !fm || !bm) {
    fill(el, h("p", {class: "muted"}, "This cluster has no flops_any and mem_bw metrics."));
    return;
  }
  // the server bins raw metric values: flops_any and flops_any/mem_bw in the metrics' units
  const pf = PREFIXES[fm.unit?.prefix || ""] ?? 1, pb = PREFIXES[bm.unit?.prefix || ""] ?? 1;
  const peaks = c.subClusters.map(subclusterPeaks).reduce((a, p) => ({simd: Math.max(a.simd, p.simd),
    scalar: Math.max(a.scalar, p.scalar), bw: Math.max(a.bw, p.bw)}), {simd: 0, scalar: 0, bw: 0});
  const bounds = {minX: 0.01, maxX: 1000, minY: 1, maxY: Math.max(10, peaks.simd * 2)};   // F/B and GF/s
  let tiles;
  try {
    tiles = (await gql(HEATMAP_QUERY, {filter: jobFilters(), minX: bounds.minX * pb / pf, maxX: bounds.maxX * pb / pf,
                                       minY: bounds.minY * 1e9 / pf, maxY: bounds.maxY * 1e9 / pf})).rooflineHeatmap;
  } catch (e) {
    if (gen === generation) fill(el, errorBox(e.message, "Roofline"));
    return;
  }
  if (gen !== generation) return;
  drawRoofline(el, [], peaks, {width: Math.max(320, Math.min(560, el.clientWidth || 420)), height: 300,
                               heatmap: {tiles, ...bounds}});
}

function histogramMetrics() {
  const all = info.metricNames(cluster);
  return (settings.get("analysisView_histogramMetrics", cluster) || []).filter((m) => all.includes(m));
}

function scatterPairs() {
  const all = info.metricNames(cluster);
  return (settings.get("analysisView_scatterPlotMetrics", cluster) || [])
    .filter((p) => Array.isArray(p) && p.length === 2 && all.includes(p[0]) && all.includes(p[1]));
}

function weightsFor(tw, m) {
  const scope = metricConfig(m)?.scope;
  if (scope === "core" || scope === "hwthread") return [tw.coreHours, "Core hours"];
  if (scope === "accelerator") return [tw.accHours, "Accelerator hours"];
  return [tw.nodeHours, "Node hours"];
}

async function loadFootprints() {
  const gen = generation;
  const hists = histogramMetrics(), pairs = scatterPairs();
  const metrics = [...new Set([...hists, ...pairs.flat()])];
  const histEl = $("[data-metric-histograms]"), scatterEl = $("[data-scatter-plots]"), errEl = $("[data-footprint-error]");
  for (const p of plots.splice(0)) p.destroy();
  fill(errEl);
  fill(histEl, hists.length ? h("p", {class: "loading"}, "Loading…") : null);
  fill(scatterEl);
  if (!metrics.length) {
    fill(histEl, h("p", {class: "muted"}, "No metric histograms or scatter plots selected."));
    return;
  }
  let d;
  try {
    d = (await gql(FOOTPRINTS_QUERY, {filter: jobFilters(), metrics})).jobsFootprints;
  } catch (e) {
    if (gen === generation) { fill(histEl); fill(errEl, errorBox(e.message, "Job averages")); }
    return;
  }
  if (gen !== generation) return;
  const values = new Map(d.metrics.map((m) => [m.metric, m.data]));
  fill(histEl);
  for (const m of hists) {
    const mc = metricConfig(m);
    const [weights, wLabel] = weightsFor(d.timeWeights, m);
    const vals = values.get(m) || [];
    const finite = vals.filter((v) => v !== null && Number.isFinite(v));
    const max = finite.length ? Math.max(...finite) * 1.0001 || 1 : 1;
    const counts = new Array(NUM_BINS).fill(0);
    vals.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      counts[Math.min(NUM_BINS - 1, Math.floor((Math.max(0, v) / max) * NUM_BINS))] += (weights[i] || 0) / 60;
    });
    const unit = unitText(mc?.unit);
    const bins = counts.map((c, i) => ({label: fmtShort(((i + 1) * max) / NUM_BINS), count: Math.round(c * 100) / 100,
                                        title: `${fmtShort((i * max) / NUM_BINS)} – ${fmtShort(((i + 1) * max) / NUM_BINS)} ${unit}`}));
    const el = h("div", {class: "card histogram-card", dataset: {metricHist: m, jobs: finite.length}});
    histEl.append(el);
    plots.push(new Histogram(el, {title: `${m} (job averages)`, xLabel: unit ? `${m} [${unit}]` : m, yLabel: wLabel, bins}));
  }
  for (const [mx, my] of pairs) {
    const xs = values.get(mx) || [], ys = values.get(my) || [];
    const points = [];
    xs.forEach((x, i) => {
      const y = ys[i];
      if (x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y)) return;
      points.push({x, y, w: d.timeWeights.nodeHours[i]});
    });
    const holder = h("div", {class: "scatter-box"});
    const el = h("div", {class: "card", dataset: {scatterPair: `${mx}:${my}`}},
      h("div", {class: "histogram-title"}, `${mx} / ${my}`), holder);
    scatterEl.append(el);
    const ux = unitText(metricConfig(mx)?.unit), uy = unitText(metricConfig(my)?.unit);
    drawScatter(holder, points, {xLabel: ux ? `${mx} [${ux}]` : mx, yLabel: uy ? `${my} [${uy}]` : my,
                                 width: Math.max(320, Math.min(520, el.clientWidth - 24 || 400)), height: 300});
  }
}

async function chooseScatter() {
  const all = info.metricNames(cluster);
  let pairs = scatterPairs();
  const list = h("ul", {class: "pair-list", dataset: {pairList: ""}});
  const renderList = () => fill(list, pairs.map((p, i) => h("li", {dataset: {pair: p.join(":")}}, `${p[0]} / ${p[1]} `,
    h("button", {type: "button", class: "btn btn-small", dataset: {removePair: p.join(":")},
                 onclick: () => { pairs = pairs.filter((_, j) => j !== i); renderList(); }}, "×"))));
  const sx = h("select", {dataset: {field: "scatter-x"}}, all.map((m) => h("option", {value: m}, m)));
  const sy = h("select", {dataset: {field: "scatter-y"}}, all.map((m) => h("option", {value: m}, m)));
  renderList();
  const body = h("div", {class: "form"}, list, h("div", {class: "toolbar"}, sx, sy,
    h("button", {type: "button", class: "btn", dataset: {addPair: ""}, onclick: () => {
      if (sx.value !== sy.value && !pairs.some((p) => p[0] === sx.value && p[1] === sy.value)) pairs.push([sx.value, sy.value]);
      renderList();
    }}, "Add plot")));
  const choice = await dialog("Scatter plots", body, [["Apply", "apply", "btn-primary"], ["Cancel", null]]);
  if (choice !== "apply") return;
  try {
    await settings.set("analysisView_scatterPlotMetrics", pairs, cluster);
  } catch (e) {
    $("[data-footprint-error]").append(errorBox(e.message, "Saving the selection failed"));
  }
  loadFootprints();
}

/** The start time filter is still the default this page opened with (it stays out of the URL). */
const usesDefaultRange = () => defaulted && filters.startTime?.range === DEFAULT_RANGE;

function loadAll() {
  generation += 1;
  const shown = {...filters, cluster: null};
  if (usesDefaultRange()) shown.startTime = null;
  history.replaceState(null, "", location.pathname + filtersToURL(shown));
  return Promise.all([loadStats(), loadHeatmap(), loadFootprints()]).then(() => {
    document.body.dataset.analysisReady = "1";
  });
}

async function main() {
  let tags;
  try {
    [info, settings, tags] = await Promise.all([loadInit(), loadSettings(),
                                                gql("{ tags { id type name scope } }").then((d) => d.tags)]);
  } catch (e) {
    fill($("[data-totals]"), errorBox(e.message, "Loading failed"));
    return;
  }
  filters = parseFilters(location.search);
  filters.cluster = cluster;
  // Without any filter a large cluster matches more jobs than the job averages and the heat map may read:
  // open on the last 24 hours instead, and say so.
  defaulted = !new URLSearchParams(location.search).toString();
  if (defaulted) filters.startTime = {range: DEFAULT_RANGE};
  const shownRange = () => {
    const note = $("[data-shown-range]");
    note.hidden = !usesDefaultRange();
    note.textContent = note.hidden ? "" : `Showing the jobs started in the last 24 hours (the default without filters; ` +
      "change it with the Start time filter).";
  };
  shownRange();
  const savedEntity = settings.get("analysisView_selectedTopEntity", cluster);
  const savedCategory = settings.get("analysisView_selectedTopCategory", cluster);
  if (savedEntity === "USER" || savedEntity === "PROJECT") top.entity = savedEntity;
  if (CATEGORIES.some(([k]) => k === savedCategory)) top.category = savedCategory;
  const toolbar = $("[data-toolbar]");
  new FilterBar($("[data-filter-pills]"), toolbar, filters, {info, tags, privileged: true, fixed: {cluster}},
                () => { document.body.dataset.analysisReady = ""; shownRange(); loadAll(); });
  $("[data-select-histograms]").addEventListener("click", async () => {
    const chosen = await selectMetrics(`Metric histograms (${cluster})`, info.metricNames(cluster).map((m) => ({name: m,
      note: metricConfig(m)?.scope || ""})), histogramMetrics());
    if (!chosen) return;
    try {
      await settings.set("analysisView_histogramMetrics", chosen.metrics, cluster);
    } catch (e) {
      $("[data-footprint-error]").append(errorBox(e.message, "Saving the selection failed"));
    }
    loadFootprints();
  });
  $("[data-select-scatter]").addEventListener("click", chooseScatter);
  await loadAll();
}

main();
