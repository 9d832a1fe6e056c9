// A user's jobs (/monitoring/user/<name>, "My jobs"): summary of the jobs matching the filters (total and short
// jobs, walltime, core and accelerator hours), duration and node count histograms, selectable metric histograms
// (footprint averages of the jobs, binned by the server) and the job list fixed to the user.

import {gql} from "../gql.js";
import {countBins, durationBins, Histogram, metricBins} from "../histogram.js";
import {jobListView} from "../listview.js";
import {selectMetrics} from "../select.js";
import {$, errorBox, fill, fmtDuration, h, pageData} from "../util.js";

const STATS_QUERY = `query($filter: [JobFilter!], $metrics: [String!], $bins: String, $mbins: Int) {
  jobsStatistics(filter: $filter, metrics: $metrics, numDurationBins: $bins, numMetricBins: $mbins) {
    totalJobs shortJobs totalWalltime totalCoreHours totalAccHours
    histDuration { count value } histNumNodes { count value }
    histMetrics { metric unit stat data { bin min max count } } } }`;
const DURATION_BINS = ["1m", "10m", "1h", "6h", "12h"];
const METRIC_BINS = [10, 20, 50];

const page = pageData();
const summaryEl = $("[data-user-summary]");
const metricsEl = $("[data-metric-histograms]");
let view = null, generation = 0, lastFilters = null;
const state = {durationBins: "1h", metricBins: 10};
const plots = [];

function histogramMetrics() {
  const cluster = view.filters.cluster;
  const key = "userView_histogramMetrics";
  const chosen = cluster ? view.settings.values[`${key}:${cluster}`] ?? view.settings.get(key) : view.settings.get(key);
  const available = availableMetrics().map((m) => m.name);
  return (chosen || []).filter((m) => available.includes(m));
}

function availableMetrics() {
  const cluster = view.filters.cluster;
  return view.info.globalMetrics.filter((m) => m.footprint && (!cluster || m.availability.some((a) => a.cluster === cluster)))
    .map((m) => ({name: m.name, note: `${m.footprint} · ${m.availability.map((a) => a.cluster).join(", ")}`}));
}

const fmtNum = (n) => Number(n || 0).toLocaleString();

function renderSummary(s) {
  const row = (label, key, value, title) => h("tr", {}, h("th", {scope: "row", title}, label),
    h("td", {class: "num", dataset: {stat: key ?? ""}}, value));
  fill(summaryEl,
    h("table", {class: "table summary-table"}, h("tbody", {},
      row("Username", "username", page.fixedUser),
      page.userName ? row("Name", "name", page.userName) : null,
      page.userEmail ? row("Email", "email", page.userEmail) : null,
      row("Total jobs", "totalJobs", fmtNum(s.totalJobs)),
      row("Short jobs", "shortJobs", fmtNum(s.shortJobs), `Jobs shorter than ${fmtDuration(page.shortDuration)}`),
      row("Total walltime", "totalWalltime", `${fmtNum(s.totalWalltime)} h`),
      row("Total core hours", "totalCoreHours", `${fmtNum(s.totalCoreHours)} h`),
      row("Total accelerator hours", "totalAccHours", `${fmtNum(s.totalAccHours)} h`))),
    h("p", {class: "muted small"}, "Jobs matching the filters."));
}

function drawHistograms(s, metrics) {
  for (const p of plots.splice(0)) p.destroy();
  plots.push(new Histogram($("[data-hist=duration]"), {title: "Duration distribution", xLabel: "Duration",
                                                       bins: durationBins(s.histDuration)}));
  plots.push(new Histogram($("[data-hist=numNodes]"), {title: "Number of nodes distribution", xLabel: "Nodes",
                                                       bins: countBins(s.histNumNodes, "nodes")}));
  fill(metricsEl, metrics.length ? null : h("p", {class: "muted"}, "No metric histograms selected (\"Histograms\")."));
  for (const hm of s.histMetrics) {
    const el = h("div", {class: "card histogram-card", dataset: {metricHist: hm.metric}});
    metricsEl.append(el);
    plots.push(new Histogram(el, {title: `${hm.metric} (${hm.stat || "avg"})`, xLabel: hm.unit || hm.metric,
                                  bins: metricBins(hm.data, hm.unit)}));
  }
}

async function loadStats(filters) {
  lastFilters = filters;
  const gen = ++generation;
  const metrics = histogramMetrics();
  document.body.dataset.statsReady = "";
  let s;
  try {
    s = (await gql(STATS_QUERY, {filter: filters, metrics, bins: state.durationBins, mbins: state.metricBins}))
      .jobsStatistics[0];
  } catch (e) {
    if (gen === generation) fill(summaryEl, errorBox(e.message, "Loading statistics failed"));
    return;
  }
  if (gen !== generation) return;
  renderSummary(s);
  drawHistograms(s, metrics);
  document.body.dataset.statsReady = "1";
}

function histogramToolbar() {
  const durSel = h("select", {dataset: {field: "duration-bins"}, title: "Bin size of the duration histogram",
                              onchange: () => { state.durationBins = durSel.value; loadStats(lastFilters); }},
    DURATION_BINS.map((b) => h("option", {value: b, selected: b === state.durationBins}, `Duration bins: ${b}`)));
  const binSel = h("select", {dataset: {field: "metric-bins"}, title: "Bins of the metric histograms",
                              onchange: () => { state.metricBins = Number(binSel.value); loadStats(lastFilters); }},
    METRIC_BINS.map((b) => h("option", {value: b, selected: b === state.metricBins}, `${b} metric bins`)));
  const choose = h("button", {type: "button", class: "btn", dataset: {selectHistograms: ""}, onclick: async () => {
    const chosen = await selectMetrics("Metric histograms" + (view.filters.cluster ? ` (${view.filters.cluster})` : ""),
                                       availableMetrics(), histogramMetrics());
    if (!chosen) return;
    try {
      await view.settings.set("userView_histogramMetrics", chosen.metrics, view.filters.cluster);
    } catch (e) {
      metricsEl.prepend(errorBox(e.message, "Saving the selection failed"));
    }
    loadStats(lastFilters);
  }}, "Histograms");
  $("[data-histogram-toolbar]").append(h("span", {class: "muted"}, "Histograms:"), durSel, binSel, choose);
}

async function main() {
  view = await jobListView({fixedUser: page.fixedUser, onChange: (filters) => { if (view) loadStats(filters); }});
  if (!view) return;
  histogramToolbar();
  loadStats(view.jobFilters());
}

main();
