// Job comparison (the job list's compare mode, as cc-backend's): for the selected jobs, oldest first, their basic
// info, a table of min/avg/max per metric and per metric one plot with a point per job (the average, with a band
// from minimum to maximum).  The data comes from one jobsMetricStats request; the GraphQL layer only answers jobs
// the viewer may see, so the ids of other users' jobs never show up here.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import {gql} from "./gql.js";
import {errorBox, fmtDateTime, fmtDuration, fmtShort, h, unitText} from "./util.js";

export const MAX_COMPARE = 100;
const PLOT_HEIGHT = 200;

const STATS_QUERY = `query($filter: [JobFilter!], $metrics: [String!]) {
  jobsMetricStats(filter: $filter, metrics: $metrics) {
    id jobId startTime duration cluster subCluster numNodes numHWThreads numAccelerators
    stats { name data { min avg max } }
  }
}`;

/**
 * The metrics to compare: the job list's selected metrics (as cc-backend does), or without any all metrics of the
 * jobs' clusters, in the order of the global metric list.
 */
function compareMetrics(info, jobs, listed) {
  if (listed?.length) return listed;
  const clusters = new Set(jobs.map((j) => j.cluster));
  return info.globalMetrics.filter((m) => m.availability.some((a) => clusters.has(a.cluster))).map((m) => m.name);
}

const cellValue = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : fmtShort(v));

export class JobCompare {
  /** container: element to fill; opts: {info (ClusterInfo), metrics: () => the job list's metrics} */
  constructor(container, opts) {
    this.el = container;
    this.opts = opts;
    this.plots = [];
  }

  destroy() {
    for (const p of this.plots) p.destroy();
    this.plots = [];
  }

  /** Load and show the jobs with these database ids. */
  async show(ids, jobs) {
    this.destroy();
    document.body.dataset.compareReady = "";
    this.el.replaceChildren(h("p", {class: "loading"}, "Loading job statistics…"));
    const metrics = compareMetrics(this.opts.info, jobs, this.opts.metrics?.());
    let rows;
    try {
      rows = (await gql(STATS_QUERY, {filter: [{dbId: ids.map(String)}], metrics})).jobsMetricStats;
    } catch (e) {
      this.el.replaceChildren(errorBox(e.message, "Loading the comparison failed"));
      document.body.dataset.compareReady = "1";
      return;
    }
    const users = new Map(jobs.map((j) => [String(j.id), j.user]));
    const shown = metrics.filter((m) => rows.some((r) => r.stats.some((s) => s.name === m)));
    this.el.replaceChildren(
      h("p", {class: "muted", dataset: {compareCount: rows.length}},
        `Comparing ${rows.length} job${rows.length === 1 ? "" : "s"}` +
        (rows.length < ids.length ? ` (${ids.length - rows.length} without data)` : "") + ", oldest first."),
      this.table(rows, shown, users),
      h("div", {class: "compare-plots"}, shown.map((m) => h("div", {class: "compare-plot", dataset: {comparePlot: m}}))));
    for (const m of shown) this.plot(this.el.querySelector(`[data-compare-plot="${CSS.escape(m)}"]`), m, rows);
    document.body.dataset.compareReady = "1";
  }

  unitOf(metric, row) {
    return this.opts.info.metricConfig(row.cluster, row.subCluster, metric)?.unit;
  }

  table(rows, metrics, users) {
    const stat = (r, m) => r.stats.find((s) => s.name === m)?.data;
    const head = h("tr", {}, ["Job", "User", "Cluster", "Start", "Duration", "Nodes"].map((t) => h("th", {rowspan: 2}, t)),
      metrics.map((m) => h("th", {colspan: 3, dataset: {metricHead: m}}, m)));
    const sub = h("tr", {}, metrics.map(() => ["min", "avg", "max"].map((t) => h("th", {class: "muted"}, t))));
    const body = rows.map((r) => h("tr", {dataset: {compareRow: r.id}},
      h("td", {}, h("a", {href: `/monitoring/job/${encodeURIComponent(r.id)}`, dataset: {compareLink: r.id}}, r.jobId)),
      h("td", {}, users.get(String(r.id)) || ""),
      h("td", {}, r.subCluster ? `${r.cluster}/${r.subCluster}` : r.cluster),
      h("td", {}, fmtDateTime(r.startTime)),
      h("td", {}, fmtDuration(r.duration)),
      h("td", {}, String(r.numNodes)),
      metrics.map((m) => {
        const d = stat(r, m);
        const unit = unitText(this.unitOf(m, r));
        return ["min", "avg", "max"].map((k) => h("td", {class: "num", title: d ? `${d[k]} ${unit}` : "",
                                                         dataset: {stat: `${m}:${k}`, value: d ? d[k] : ""}},
                                                    d ? cellValue(d[k]) : "–"));
      })));
    return h("div", {class: "compare-table-wrap"},
      h("table", {class: "table compare-table", dataset: {compareTable: ""}}, h("thead", {}, head, sub), h("tbody", {}, body)));
  }

  /** One point per job: the average as a line with points, minimum and maximum as a filled band. */
  plot(holder, metric, rows) {
    const xs = rows.map((_, i) => i);
    const get = (k) => rows.map((r) => {
      const v = r.stats.find((s) => s.name === metric)?.data?.[k];
      return v === undefined || v === null || Number.isNaN(v) ? null : v;
    });
    const data = [xs, get("min"), get("avg"), get("max")];
    const unit = rows.length ? unitText(this.unitOf(metric, rows[0])) : "";
    const labels = rows.map((r) => r.jobId);
    const width = Math.max(280, Math.floor(holder.clientWidth - 14) || 400);  // the grid cell, less padding
    holder.replaceChildren(h("div", {class: "plot-title"}, unit ? `${metric} [${unit}]` : metric));
    const u = new uPlot({
      width, height: PLOT_HEIGHT,
      scales: {x: {time: false, range: [-0.5, Math.max(0.5, rows.length - 0.5)]}},
      legend: {show: false},
      cursor: {drag: {x: false, y: false}},
      axes: [
        {splits: () => xs, values: (_, splits) => splits.map((s) => labels[s] ?? ""), rotate: rows.length > 12 ? -60 : 0},
        {values: (_, splits) => splits.map(fmtShort), size: 60},
      ],
      bands: [{series: [3, 1], fill: "rgba(31, 119, 180, 0.15)"}],
      series: [
        {label: "job"},
        {label: "min", stroke: "#d62728", width: 1, points: {show: true, size: 5}},
        {label: "avg", stroke: "#1f77b4", width: 2, points: {show: true, size: 7}},
        {label: "max", stroke: "#2ca02c", width: 1, points: {show: true, size: 5}},
      ],
    }, data, holder);
    holder.dataset.points = String(rows.length);
    holder.ccCompare = {metric, data};
    this.plots.push(u);
  }
}
