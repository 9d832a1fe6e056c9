// Node list of a cluster (/monitoring/systems/list/<cluster>[/<subcluster>], cc-backend's Systems "list" mode): one
// row per node with its state, metric health and running jobs, and a plot per selected metric over the chosen time
// range; a page of nodes at a time (nodeMetricsList), found by host name and scheduler state.  The metric selection
// (nodeList_selectedMetrics:<cluster>[:<subcluster>]) and the page size (nodeList_nodesPerPage) are the user's
// settings, as in cc-backend.  URL: ?node=&state=&page=&range=1h (or &from=&to=).

import {gql} from "../gql.js";
import {stateBadge} from "../nodestate.js";
import {MetricPlot, scopeThresholds} from "../plot.js";
import {finest} from "../scopes.js";
import {selectMetrics} from "../select.js";
import {loadInfoAndSettings} from "../settings.js";
import {fromArgs, refresher, resolutionFor, setURLParams, TimeRange} from "../timerange.js";
import {$, debounce, errorBox, fill, h, pageData, unitText} from "../util.js";

const LIST_QUERY = `query($cluster: String!, $subCluster: String!, $nodeFilter: String!, $stateFilter: String!,
    $metrics: [String!], $scopes: [MetricScope!], $from: Time!, $to: Time!, $page: PageRequest, $res: Int) {
  nodeMetricsList(cluster: $cluster, subCluster: $subCluster, nodeFilter: $nodeFilter, stateFilter: $stateFilter,
                  scopes: $scopes, metrics: $metrics, from: $from, to: $to, page: $page, resolution: $res) {
    items { host nodeState metricHealth subCluster
      metrics { name scope metric { timestep unit { base prefix } series { id hostname data } statisticsSeries { min } } } }
    totalNodes hasNextPage } }`;
const JOBS_QUERY = `query($filter: [JobFilter!], $page: PageRequest) {
  jobs(filter: $filter, page: $page, order: {field: "startTime", type: "col", order: DESC}) {
    items { id jobId user project shared resources { hostname } } count } }`;
const SCOPES = ["core", "socket", "accelerator"];   // as cc-backend's node list: the finest served scope is shown
const STATES = ["all", "allocated", "idle", "reserved", "mixed", "down", "unknown", "notindb"];
const PAGE_SIZES = [5, 10, 25, 50, 100];
const PLOT_HEIGHT = 200;

const page = pageData();
const {cluster} = page;
const sub = page.subCluster || "";
const args = page.args || {};
const root = $("[data-node-list]");
let info, settings, range, generation = 0;
const ui = {node: args.node || "", state: STATES.includes(args.state) ? args.state : "all",
            page: Math.max(1, parseInt(args.page, 10) || 1), perPage: 10, resolution: null, metrics: []};
const plots = [];

const settingScope = () => (sub ? `${cluster}:${sub}` : cluster);   // the key's suffix: nodeList_selectedMetrics:c[:s]

function available() { return info.metricNames(cluster, sub || null); }

function chosenMetrics() {
  const all = available();
  const saved = settings.get("nodeList_selectedMetrics", cluster, sub || null);
  return Array.isArray(saved) ? saved.filter((m) => all.includes(m)) : all.slice(0, 3);
}

function listURL(subcluster) {
  const base = `/monitoring/systems/list/${encodeURIComponent(cluster)}`;
  return subcluster ? `${base}/${encodeURIComponent(subcluster)}` : base;
}

function updateURL() {
  setURLParams({node: ui.node, state: ui.state === "all" ? "" : ui.state, page: ui.page > 1 ? ui.page : "",
                ...range.params()});
  const overview = $("[data-view-switch=overview]");   // the overview of the same range
  if (overview) overview.search = new URLSearchParams(range.params()).toString();
}

function gridColumns() {
  return `minmax(240px, 300px)` + (ui.metrics.length ? ` repeat(${ui.metrics.length}, minmax(200px, 1fr))` : "");
}

/** The node's info cell: link to the node view, subcluster, states, and the jobs running on it (links). */
function nodeInfo(n, jobs) {
  const q = new URLSearchParams(range.params());
  const users = [...new Set(jobs.map((j) => j.user))].sort();
  const projects = [...new Set(jobs.map((j) => j.project))].sort();
  const listHref = `/monitoring/jobs/?cluster=${encodeURIComponent(cluster)}&state=running&node=${encodeURIComponent(n.host)}`;
  const kind = !jobs.length ? "none" : jobs.length === 1 && jobs[0].shared === "none" ? "exclusive" : "shared";
  return h("div", {class: "node-info"},
    h("div", {class: "node-info-head"},
      h("a", {href: `/monitoring/node/${encodeURIComponent(cluster)}/${encodeURIComponent(n.host)}?${q}`,
              dataset: {nodeLink: n.host}}, n.host),
      h("span", {class: "muted"}, n.subCluster), h("span", {class: "spacer"}),
      stateBadge(n.nodeState || "notindb"), stateBadge(n.metricHealth || "unknown", "health")),
    h("div", {dataset: {nodeActivity: kind}},
      h("b", {}, "Jobs: "), h("span", {dataset: {runningJobs: jobs.length}}, jobs.length ? `${jobs.length} running` +
        (kind === "exclusive" ? " (exclusive)" : kind === "shared" ? " (shared)" : "") : "none"), " ",
      jobs.length ? h("a", {href: listHref, title: "Jobs running on this node", dataset: {jobsOfNode: n.host}}, "list")
        : null),
    jobs.length ? h("div", {class: "node-jobs-list"}, jobs.map((j) =>
      h("a", {href: `/monitoring/job/${j.id}`, title: `${j.user} (${j.project})`, dataset: {jobLink: j.id}},
        String(j.jobId)))) : null,
    users.length ? h("div", {class: "muted", dataset: {nodeUsers: ""}}, `Users: ${users.join(", ")}`) : null,
    projects.length ? h("div", {class: "muted", dataset: {nodeProjects: ""}}, `Projects: ${projects.join(", ")}`) : null);
}

function metricCell(n, metric) {
  const cell = h("div", {class: "cell-plot", dataset: {metric}});
  const mc = info.metricConfig(cluster, n.subCluster, metric);
  const configured = info.metricNames(cluster, n.subCluster).includes(metric);
  const scoped = n.metrics.filter((m) => m.name === metric);
  const hit = scoped.length ? scoped.find((m) => m.scope === finest(scoped.map((x) => x.scope))) : null;
  if (!configured || !mc) {
    cell.append(h("div", {class: "plot-empty", dataset: {notConfigured: ""}},
      `${metric} is not configured for subcluster ${n.subCluster || "?"}`));
    return cell;
  }
  const series = (hit?.metric.series || []).map((s) => ({key: s.id ?? s.hostname,
    label: hit.scope === "node" ? s.hostname : `${hit.scope} ${s.id}`, data: s.data}));
  if (!series.some((s) => s.data.some((v) => v !== null))) {
    cell.append(h("div", {class: "plot-empty", dataset: {noData: ""}}, `No data for ${metric} in this range`));
    return cell;
  }
  const {from, to} = range.last;
  const start = from - (from % hit.metric.timestep);
  cell.dataset.scope = hit.scope;
  const holder = h("div", {class: "plot-holder"});
  cell.append(holder);
  plots.push(new MetricPlot(holder, {
    metric, unit: hit.metric.unit || mc.unit, timestep: hit.metric.timestep, series, start, span: to - start,
    stats: !!hit.metric.statisticsSeries,
    thresholds: scopeThresholds(mc, info.subCluster(cluster, n.subCluster)?.topology, hit.scope), height: PLOT_HEIGHT,
    ...settings.plotOptions()}));
  return cell;
}

function pager(total) {
  const pages = Math.max(1, Math.ceil(total / ui.perPage));
  const perPage = h("select", {dataset: {field: "items-per-page"}, title: "Nodes per page", onchange: () => {
    ui.perPage = Number(perPage.value);
    ui.page = 1;
    // as cc-backend: the new size is the user's setting first, then the list reloads (also if saving failed)
    settings.set("nodeList_nodesPerPage", ui.perPage).catch(() => {}).then(() => load());
  }}, PAGE_SIZES.map((n) => h("option", {value: n, selected: n === ui.perPage}, `${n} per page`)));
  const go = (p) => { ui.page = p; load().then(() => root.scrollIntoView({block: "start"})); };
  return h("div", {class: "pager", dataset: {pager: ""}},
    h("button", {type: "button", class: "btn", disabled: ui.page <= 1, dataset: {pagePrev: ""},
                 onclick: () => go(ui.page - 1)}, "‹ Previous"),
    h("span", {dataset: {pageInfo: `${ui.page}/${pages}`}}, `Page ${ui.page} of ${pages}`),
    h("button", {type: "button", class: "btn", disabled: ui.page >= pages, dataset: {pageNext: ""},
                 onclick: () => go(ui.page + 1)}, "Next ›"),
    perPage);
}

function render(result, jobsByHost) {
  for (const p of plots.splice(0)) p.destroy();
  const nodes = [...result.items].sort((a, b) => a.host.localeCompare(b.host, undefined, {numeric: true}));
  const header = h("div", {class: "job-row job-header", style: {gridTemplateColumns: gridColumns()}},
    h("div", {}, `${cluster}${sub ? " " + sub : ""} node info`),
    ui.metrics.map((m) => {
      const unit = unitText(info.metricConfig(cluster, sub || null, m)?.unit);
      return h("div", {dataset: {metricHeader: m}}, unit ? `${m} (${unit})` : m);
    }));
  const rows = h("div", {class: "job-rows", dataset: {nodeRows: ""}});
  fill(root, header, rows, h("div", {class: "node-list-foot"}, pager(result.totalNodes || 0)));
  if (!nodes.length) rows.append(h("p", {class: "empty", dataset: {noNodes: ""}}, "No nodes match."));
  for (const n of nodes) {
    const row = h("div", {class: "job-row node-row", style: {gridTemplateColumns: gridColumns()}, dataset: {nodeRow: n.host}},
      h("div", {class: "cell-info"}, nodeInfo(n, jobsByHost.get(n.host) || [])));
    rows.append(row);   // in the document first, so the plots get their width
    for (const m of ui.metrics) row.append(metricCell(n, m));
  }
  const countEl = $("[data-node-count]");
  countEl.textContent = `${result.totalNodes || 0} node${result.totalNodes === 1 ? "" : "s"}`;
  countEl.dataset.count = String(result.totalNodes || 0);
}

async function runningJobs(hosts) {
  if (!hosts.length) return new Map();
  const filter = [{cluster: {eq: cluster}}, {state: ["running"]}, {node: {in: hosts}}];
  const d = await gql(JOBS_QUERY, {filter, page: {itemsPerPage: 500, page: 1}});
  const out = new Map();
  for (const j of d.jobs.items) {
    for (const host of new Set((j.resources || []).map((r) => r.hostname))) {
      if (!hosts.includes(host)) continue;
      if (!out.has(host)) out.set(host, []);
      out.get(host).push(j);
    }
  }
  return out;
}

async function load() {
  const gen = ++generation;
  document.body.dataset.plotsReady = "";
  const {from, to} = range.current();
  range.last = {from, to};
  updateURL();
  let result, jobs;
  try {
    result = (await gql(LIST_QUERY, {cluster, subCluster: sub, nodeFilter: ui.node, stateFilter: ui.state,
      metrics: ui.metrics, scopes: SCOPES, from, to, page: {itemsPerPage: ui.perPage, page: ui.page},
      res: ui.resolution ?? resolutionFor(to - from)})).nodeMetricsList;
    if (gen !== generation) return;
    const pages = Math.max(1, Math.ceil((result.totalNodes || 0) / ui.perPage));
    if (ui.page > pages) {   // e.g. a narrower filter or an old link: show the last page there is
      ui.page = pages;
      return load();
    }
    jobs = await runningJobs(result.items.map((n) => n.host));
  } catch (e) {
    if (gen === generation) fill(root, errorBox(e.message, "Loading the node list failed"));
    return;
  }
  if (gen !== generation) return;
  render(result, jobs);
  document.body.dataset.plotsReady = "1";
  document.body.dataset.plotsReadyAt = String(performance.now());
}

function toolbar() {
  const c = info.cluster(cluster);
  const metricsBtn = h("button", {type: "button", class: "btn", dataset: {selectMetrics: ""}, onclick: async () => {
    const chosen = await selectMetrics(`Metrics of the node list (${cluster}${sub ? " " + sub : ""})`,
      available().map((m) => ({name: m, note: info.metricConfig(cluster, sub || null, m)?.scope || ""})), ui.metrics);
    if (!chosen) return;
    try {
      await settings.set("nodeList_selectedMetrics", chosen.metrics, settingScope());
    } catch (e) {
      root.prepend(errorBox(e.message, "Saving the selection failed"));
    }
    ui.metrics = chosen.metrics;
    metricsBtn.textContent = `Metrics: ${ui.metrics.length} selected`;
    load();
  }}, `Metrics: ${ui.metrics.length} selected`);
  const items = [metricsBtn];
  const resolutions = page.resampling?.resolutions || [];
  if (resolutions.length) {   // cc-backend: with resampling configured, the resolution is chosen (default: coarsest)
    ui.resolution = Math.max(...resolutions);
    const resSel = h("select", {dataset: {field: "resolution"}, title: "Resolution",
      onchange: () => { ui.resolution = Number(resSel.value); load(); }},
      resolutions.map((r) => h("option", {value: r, selected: r === ui.resolution}, `${r} s`)));
    items.push(h("div", {class: "toolbar-group"}, h("span", {class: "muted"}, "Resolution"), resSel));
  }
  const find = h("input", {type: "search", placeholder: "Filter hostname", value: ui.node, dataset: {field: "find-node"}});
  find.addEventListener("input", debounce(() => { ui.node = find.value.trim(); ui.page = 1; load(); }, 400));
  const stateSel = h("select", {dataset: {field: "node-state"}, title: "Scheduler state",
    onchange: () => { ui.state = stateSel.value; ui.page = 1; load(); }},
    STATES.map((s) => h("option", {value: s, selected: s === ui.state}, s === "all" ? "Any state" : s)));
  const subSel = h("select", {dataset: {field: "subcluster"}, title: "Subcluster",
    onchange: () => { location.href = listURL(subSel.value) + location.search; }},
    h("option", {value: ""}, "All subclusters"),
    c.subClusters.map((s) => h("option", {value: s.name, selected: s.name === sub}, s.name)));
  items.push(find, stateSel, subSel, range.el, refresher(() => load()));
  $("[data-toolbar]").append(...items);
}

async function main() {
  const loaded = await loadInfoAndSettings(root);
  if (!loaded) return;
  [info, settings] = loaded;
  if (!info.cluster(cluster)) {
    fill(root, errorBox(`Cluster ${cluster} is not configured`));
    return;
  }
  const saved = Number(settings.get("nodeList_nodesPerPage"));
  ui.perPage = PAGE_SIZES.includes(saved) ? saved : 10;
  ui.metrics = chosenMetrics();
  range = new TimeRange(fromArgs(args), () => load(), "4h");
  toolbar();
  await load();
}

main();
