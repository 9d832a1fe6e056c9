// One node (/monitoring/node/<cluster>/<host>): every metric of the node over the chosen time range (node scope,
// finer scopes selectable where the metric has them), the jobs running on it and its recent jobs, scheduler state
// and metric health from the node table; reload now or periodically.  URL: ?range=1h or ?from=&to=.

import {gql} from "../gql.js";
import {jobDuration} from "../jobinfo.js";
import {stateBadge} from "../nodestate.js";
import {MetricPlot, scopeThresholds} from "../plot.js";
import {scopesOf} from "../scopes.js";
import {selectMetrics} from "../select.js";
import {loadInfoAndSettings} from "../settings.js";
import {fromArgs, refresher, resolutionFor, setURLParams, TimeRange} from "../timerange.js";
import {$, errorBox, fill, fmtDateTime, fmtDuration, fmtMB, h, pageData, stateClass, unitText} from "../util.js";

const DATA_QUERY = `query($cluster: String!, $nodes: [String!], $metrics: [String!], $scopes: [MetricScope!],
                          $from: Time!, $to: Time!, $res: Int) {
  nodeMetrics(cluster: $cluster, nodes: $nodes, metrics: $metrics, scopes: $scopes, from: $from, to: $to, resolution: $res) {
    host metrics { name scope metric { unit { base prefix } timestep series { hostname id data } } } } }`;
const JOB_LIST_FIELDS = "id jobId user project startTime duration state numNodes numHWThreads numAcc metaData";
const INFO_QUERY = `query($cluster: String!, $host: String!, $running: [JobFilter!], $recent: [JobFilter!]) {
  nodes(filter: [{cluster: {eq: $cluster}}, {hostname: {eq: $host}}]) {
    items { schedulerState healthState jobsRunning cpusAllocated memoryAllocated gpusAllocated healthData } }
  running: jobs(filter: $running, page: {itemsPerPage: 100, page: 1}) { items { ${JOB_LIST_FIELDS} } count }
  recent: jobs(filter: $recent, page: {itemsPerPage: 10, page: 1}, order: {field: "startTime", type: "col", order: DESC}) {
    items { ${JOB_LIST_FIELDS} } count } }`;
const NOT_RUNNING = ["completed", "failed", "cancelled", "timeout", "preempted", "out_of_memory", "node_fail", "boot_fail",
                     "deadline"];
const PLOT_HEIGHT = 220;

const page = pageData();
const {cluster, host} = page;
const grid = $("[data-plot-grid]");
let info, settings, range, sc, generation = 0;
const cards = new Map();   // metric -> {metric, mc, el, holder, scopeSel, scope, stats, jm, plot}

function allMetrics() { return info.metricNames(cluster, sc?.name || null).sort(); }

function chosenMetrics() {
  const all = allMetrics();
  const chosen = settings.get("nodeView_selectedMetrics", cluster);
  return chosen ? chosen.filter((m) => all.includes(m)) : all;
}

function jobTable(jobs, empty) {
  if (!jobs.length) return h("p", {class: "muted"}, empty);
  return h("table", {class: "table node-jobs"}, h("thead", {}, h("tr", {}, ["Job", "Name", "User", "Project", "Start",
                                                                          "Duration", "State"].map((t) => h("th", {}, t)))),
    h("tbody", {}, jobs.map((j) => h("tr", {dataset: {nodeJob: j.id}},
      h("td", {}, h("a", {href: `/monitoring/job/${j.id}`, dataset: {jobLink: j.id}}, String(j.jobId))),
      h("td", {}, j.metaData?.jobName || ""),
      h("td", {}, h("a", {href: `/monitoring/user/${encodeURIComponent(j.user)}`}, j.user)),
      h("td", {}, h("a", {href: `/monitoring/jobs/?project=${encodeURIComponent(j.project)}&projectMatch=eq`}, j.project)),
      h("td", {}, fmtDateTime(j.startTime)), h("td", {}, fmtDuration(jobDuration(j))),
      h("td", {}, h("span", {class: `state-pill ${stateClass(j.state)}`}, j.state))))));
}

async function loadInfo() {
  const base = [{cluster: {eq: cluster}}, {node: {eq: host}}];
  let d;
  try {
    d = await gql(INFO_QUERY, {cluster, host, running: [...base, {state: ["running"]}],
                               recent: [...base, {state: NOT_RUNNING}]});
  } catch (e) {
    fill($("[data-node-activity]"), errorBox(e.message, "Loading the node's jobs failed"));
    return;
  }
  const node = d.nodes.items[0];
  fill($("[data-node-badges]"), node ? [stateBadge(node.schedulerState), " ", stateBadge(node.healthState, "health", node.healthData)] : null);
  const listURL = `/monitoring/jobs/?cluster=${encodeURIComponent(cluster)}&node=${encodeURIComponent(host)}`;
  fill($("[data-node-activity]"),
    h("div", {class: "node-activity"},
      h("span", {}, h("b", {}, "Activity: "), h("span", {dataset: {runningJobs: d.running.count}},
        `${d.running.count} running job${d.running.count === 1 ? "" : "s"}`)),
      h("a", {class: "btn btn-small", href: `${listURL}&state=running`, dataset: {showRunning: ""}}, "Show list"),
      h("a", {class: "btn btn-small", href: listURL}, "All jobs on this node"),
      node ? h("span", {class: "muted"}, `cpus ${node.cpusAllocated ?? 0} · memory ${fmtMB(node.memoryAllocated ?? 0)} · ` +
                                         `gpus ${node.gpusAllocated ?? 0} allocated (scheduler)`) : null),
    h("h3", {class: "card-title"}, "Running jobs"),
    h("div", {dataset: {runningJobsTable: ""}}, jobTable(d.running.items, "No job runs on this node.")),
    h("h3", {class: "card-title"}, "Recent jobs"),
    h("div", {dataset: {recentJobsTable: ""}}, jobTable(d.recent.items, "No finished jobs on this node.")));
}

function card(metric) {
  const mc = info.metricConfig(cluster, sc?.name, metric);
  const scopes = mc ? scopesOf(mc, sc?.topology) : ["node"];
  const scopeSel = h("select", {class: "scope-select", dataset: {scopeSelect: metric}, title: "Scope"});
  const holder = h("div", {class: "plot-holder"}, h("div", {class: "plot-wait"}, "Loading…"));
  const el = h("section", {class: "plot-card", dataset: {metric}},
    h("div", {class: "plot-head"}, h("b", {class: "plot-title"}, metric),
      mc ? h("span", {class: "muted"}, ` ${unitText(mc.unit)}`) : null, h("span", {class: "spacer"}), scopeSel), holder);
  const c = {metric, mc, scopes, el, holder, scopeSel, scope: "node", stats: false, jm: null, plot: null};
  scopeSel.addEventListener("change", () => {
    const v = scopeSel.value;
    c.stats = v.endsWith("-stat");
    const scope = c.stats ? v.slice(0, -5) : v;
    if (scope === c.scope && c.jm) { draw(c); return; }
    c.scope = scope;
    c.jm = null;
    c.holder.replaceChildren(h("div", {class: "plot-wait"}, "Loading…"));
    loadData([c]);
  });
  fillScopes(c);
  return c;
}

function fillScopes(c) {
  const opts = [];
  for (const s of c.scopes) {
    opts.push(h("option", {value: s}, s));
    if (s !== "node" && (s === c.scope ? (c.jm?.series?.length ?? 0) > 1 : true)) {
      opts.push(h("option", {value: `${s}-stat`}, `stats series (${s})`));
    }
  }
  c.scopeSel.replaceChildren(...opts);
  c.scopeSel.value = c.stats ? `${c.scope}-stat` : c.scope;
}

function draw(c) {
  c.plot?.destroy();
  c.plot = null;
  c.holder.replaceChildren();
  c.el.dataset.scope = c.scope;
  c.el.dataset.stats = String(c.stats);
  if (!c.mc) {
    c.holder.append(h("div", {class: "plot-empty"}, `${c.metric} is not configured for this node's subcluster`));
    return;
  }
  const series = (c.jm?.series || []).map((s) => ({key: s.id ?? s.hostname,
                                                     label: c.scope === "node" ? s.hostname : `${c.scope} ${s.id}`,
                                                     data: s.data}));
  if (!series.some((s) => s.data.some((v) => v !== null))) {
    c.holder.append(h("div", {class: "plot-empty", dataset: {noData: ""}}, `No data for ${c.metric} in this range`));
    return;
  }
  const {from, to} = range.last;
  const start = from - (from % c.mc.timestep);
  c.plot = new MetricPlot(c.holder, {
    metric: c.metric, unit: c.jm.unit || c.mc.unit, timestep: c.jm.timestep, series,
    stats: c.stats, start, span: to - start,
    thresholds: scopeThresholds(c.mc, sc?.topology, c.scope), height: PLOT_HEIGHT, ...settings.plotOptions()});
}

/** Load the data of these cards (one request per scope), then draw them. */
async function loadData(list) {
  const gen = generation;
  const {from, to} = range.current();
  range.last = {from, to};
  const byScope = new Map();
  for (const c of list) {
    if (!byScope.has(c.scope)) byScope.set(c.scope, []);
    byScope.get(c.scope).push(c);
  }
  await Promise.all([...byScope.entries()].map(async ([scope, group]) => {
    let d;
    try {
      d = await gql(DATA_QUERY, {cluster, nodes: [host], metrics: group.map((c) => c.metric), scopes: [scope], from, to,
                                 res: resolutionFor(to - from)});
    } catch (e) {
      if (gen === generation) for (const c of group) c.holder.replaceChildren(errorBox(e.message));
      return;
    }
    if (gen !== generation) return;
    const metrics = d.nodeMetrics.find((n) => n.host === host)?.metrics || [];
    for (const c of group) {
      const hit = metrics.find((m) => m.name === c.metric && m.scope === scope) || metrics.find((m) => m.name === c.metric);
      c.jm = hit?.metric || null;
      if (hit && hit.scope !== c.scope) c.scope = hit.scope;   // finer than native: the native scope was served
      fillScopes(c);
      draw(c);
    }
  }));
}

async function reloadAll() {
  generation += 1;
  document.body.dataset.plotsReady = "";
  setURLParams(range.params());
  loadInfo();
  await loadData([...cards.values()]);
  document.body.dataset.plotsReady = "1";
  document.body.dataset.plotsReadyAt = String(performance.now());
}

function buildCards() {
  for (const c of cards.values()) c.plot?.destroy();
  cards.clear();
  const metrics = chosenMetrics();
  for (const m of metrics) cards.set(m, card(m));
  const perRow = Math.max(1, Math.min(6, Number(settings.get("plotConfiguration_plotsPerRow")) || 3));
  fill(grid, metrics.length ? h("div", {class: "plot-grid", style: {gridTemplateColumns: `repeat(${perRow}, minmax(0, 1fr))`}},
                                [...cards.values()].map((c) => c.el))
    : h("p", {class: "empty"}, "No metrics selected."));
  $("[data-metric-count]").textContent = ` ${metrics.length} of ${allMetrics().length} metrics`;
}

async function main() {
  const loaded = await loadInfoAndSettings(grid);
  if (!loaded) return;
  [info, settings] = loaded;
  sc = page.subCluster ? info.subCluster(cluster, page.subCluster) : null;
  range = new TimeRange(fromArgs(page.args), () => reloadAll());
  $("[data-toolbar]").append(range.el, refresher(() => reloadAll()));
  $("[data-select-metrics]").addEventListener("click", async () => {
    const chosen = await selectMetrics(`Metrics of node ${host}`, allMetrics().map((m) => ({name: m,
      note: info.metricConfig(cluster, sc?.name, m)?.scope || ""})), chosenMetrics());
    if (!chosen) return;
    try {
      await settings.set("nodeView_selectedMetrics", chosen.metrics, cluster);
    } catch (e) {
      grid.prepend(errorBox(e.message, "Saving the selection failed"));
    }
    buildCards();
    reloadAll();
  });
  buildCards();
  await reloadAll();
}

main();
