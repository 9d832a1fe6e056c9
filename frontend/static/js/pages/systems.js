// Nodes of a cluster (/monitoring/systems/<cluster>): one plot per node of a chosen metric over a chosen time
// range, nodes found by name, by subcluster and by scheduler state; states and metric health from the node table;
// reload now or periodically.  URL: ?metric=&subCluster=&node=&state=&range=1h (or &from=&to=).

import {gql} from "../gql.js";
import {stateBadge} from "../nodestate.js";
import {MetricPlot, scopeThresholds} from "../plot.js";
import {loadInfoAndSettings} from "../settings.js";
import {fromArgs, refresher, resolutionFor, setURLParams, TimeRange} from "../timerange.js";
import {$, debounce, errorBox, fill, h, pageData, unitText} from "../util.js";

const DATA_QUERY = `query($cluster: String!, $metrics: [String!], $from: Time!, $to: Time!, $res: Int) {
  nodeMetrics(cluster: $cluster, metrics: $metrics, from: $from, to: $to, resolution: $res) {
    host nodeState metricHealth subCluster
    metrics { name scope metric { unit { base prefix } timestep series { hostname id data } } } } }`;
const NODES_QUERY = `query($cluster: String!) {
  nodes(filter: [{cluster: {eq: $cluster}}]) { items { hostname subCluster schedulerState healthState healthData
    jobsRunning } } }`;
const PLOT_HEIGHT = 180;

const page = pageData();
const cluster = page.cluster;
const args = page.args || {};
const grid = $("[data-node-grid]");
let info, settings, range, generation = 0;
const ui = {metric: null, subCluster: args.subCluster || "", node: args.node || "", state: args.state || ""};
let loaded = [];   // [{host, subCluster, nodeState, metricHealth, jm}]
let userRange = Boolean(args.range || args.from || args.to);   // else the default range: see emptyLead
const plots = [];

function metricNames() { return info.metricNames(cluster, ui.subCluster || null).sort(); }

function updateURL() {
  setURLParams({metric: ui.metric, subCluster: ui.subCluster, node: ui.node, ...range.params()});
}

function visible() {
  return loaded.filter((n) => (!ui.subCluster || n.subCluster === ui.subCluster) &&
    (!ui.node || n.host.includes(ui.node)) && (!ui.state || n.nodeState === ui.state));
}

/**
 * Steps at the start of the range in which no shown node has data, when the range is the page's default:
 * right after an installation starts there are only minutes of data, and a 2 hour axis squeezes them into the
 * right edge.  A range the user chose is always shown whole.
 */
function emptyLead(nodes) {
  if (userRange) return 0;
  let first = Infinity, length = 0;
  for (const n of nodes) {
    for (const s of n.jm?.series || []) {
      const i = s.data.findIndex((v) => v !== null);
      if (i >= 0) first = Math.min(first, i);
      length = Math.max(length, s.data.length);
    }
  }
  if (!Number.isFinite(first) || first < length * 0.25) return 0;
  return Math.max(0, first - 2);   // two steps of margin before the first point
}

function render() {
  for (const p of plots.splice(0)) p.destroy();
  const nodes = visible();
  const lead = emptyLead(nodes);
  const note = $("[data-range-note]");
  const perRow = Math.max(1, Math.min(6, Number(settings.get("plotConfiguration_plotsPerRow")) || 3));
  const plotOpts = settings.plotOptions();
  const q = range.params();
  const cards = nodes.map((n) => {
    const holder = h("div", {class: "plot-holder"});
    const card = h("section", {class: "plot-card node-card", dataset: {node: n.host}},
      h("div", {class: "plot-head"},
        h("a", {class: "plot-title", href: `/monitoring/node/${encodeURIComponent(cluster)}/${encodeURIComponent(n.host)}?` +
                new URLSearchParams(q), dataset: {nodeLink: n.host}}, n.host),
        h("span", {class: "muted"}, n.subCluster), h("span", {class: "spacer"}),
        stateBadge(n.nodeState), stateBadge(n.metricHealth, "health", n.healthData)),
      holder);
    const mc = info.metricConfig(cluster, n.subCluster, ui.metric);
    const series = (n.jm?.series || []).map((s) => ({key: s.hostname, label: s.hostname, data: s.data.slice(lead)}));
    if (!mc) {
      holder.append(h("div", {class: "plot-empty"}, `${ui.metric} is not configured for subcluster ${n.subCluster}`));
    } else if (!series.length || !series.some((s) => s.data.some((v) => v !== null))) {
      holder.append(h("div", {class: "plot-empty", dataset: {noData: ""}}, `No data for ${ui.metric} in this range`));
    } else {
      const {from, to} = range.last;
      const start = from - (from % mc.timestep) + lead * n.jm.timestep;
      plots.push(new MetricPlot(holder, {
        metric: ui.metric, unit: n.jm.unit || mc.unit, timestep: n.jm.timestep, series, start, span: to - start,
        thresholds: scopeThresholds(mc, info.subCluster(cluster, n.subCluster)?.topology, "node"), height: PLOT_HEIGHT,
        ...plotOpts}));
    }
    return card;
  });
  const shownFrom = lead && nodes.find((n) => n.jm)?.jm.timestep;
  note.hidden = !shownFrom;
  note.textContent = shownFrom ? `Showing from ${new Date((range.last.from + lead * shownFrom) * 1000).toLocaleTimeString()}: ` +
    "no node has data earlier in the selected range." : "";
  note.dataset.lead = String(lead);
  fill(grid, nodes.length ? h("div", {class: "plot-grid", style: {gridTemplateColumns: `repeat(${perRow}, minmax(0, 1fr))`}},
                              cards)
    : h("p", {class: "empty", dataset: {noNodes: ""}}, "No nodes match."));
  const countEl = $("[data-node-count]");
  countEl.textContent = `${nodes.length} of ${loaded.length} nodes`;
  countEl.dataset.count = String(nodes.length);
  const states = {};
  for (const n of nodes) if (n.nodeState) states[n.nodeState] = (states[n.nodeState] || 0) + 1;
  fill($("[data-node-states]"), Object.entries(states).sort().map(([s, c]) =>
    h("span", {class: "state-count", dataset: {stateCount: s}}, stateBadge(s), ` ${c}`)));
}

async function load() {
  const gen = ++generation;
  document.body.dataset.plotsReady = "";
  const {from, to} = range.current();
  range.last = {from, to};
  updateURL();
  let data, nodes;
  try {
    [data, nodes] = await Promise.all([
      gql(DATA_QUERY, {cluster, metrics: [ui.metric], from, to, res: resolutionFor(to - from)}),
      gql(NODES_QUERY, {cluster}).then((d) => d.nodes.items)]);
  } catch (e) {
    if (gen === generation) fill(grid, errorBox(e.message, "Loading node data failed"));
    return;
  }
  if (gen !== generation) return;
  const byHost = new Map();
  for (const n of data.nodeMetrics) {
    byHost.set(n.host, {host: n.host, subCluster: n.subCluster, nodeState: n.nodeState, metricHealth: n.metricHealth,
                        jm: n.metrics.find((m) => m.name === ui.metric)?.metric || null});
  }
  for (const n of nodes) {   // nodes the node table knows but without data in the store
    if (!byHost.has(n.hostname)) {
      byHost.set(n.hostname, {host: n.hostname, subCluster: n.subCluster, nodeState: n.schedulerState,
                              metricHealth: n.healthState, jm: null});
    }
  }
  const healthData = new Map(nodes.map((n) => [n.hostname, n.healthData]));
  for (const n of byHost.values()) n.healthData = healthData.get(n.host) || null;
  loaded = [...byHost.values()].sort((a, b) => a.host.localeCompare(b.host, undefined, {numeric: true}));
  render();
  document.body.dataset.plotsReady = "1";
  document.body.dataset.plotsReadyAt = String(performance.now());
}

async function main() {
  const loaded = await loadInfoAndSettings(grid);
  if (!loaded) return;
  [info, settings] = loaded;
  const c = info.cluster(cluster);
  if (!c) {
    fill(grid, errorBox(`Cluster ${cluster} is not configured`));
    return;
  }
  const all = metricNames();
  const saved = settings.get("nodeOverview_selectedMetric", cluster);
  ui.metric = [args.metric, saved, "cpu_load", all[0]].find((m) => m && all.includes(m)) || null;
  range = new TimeRange(fromArgs(args), () => { userRange = true; load(); });
  const toolbar = $("[data-toolbar]");
  const metricSel = h("select", {dataset: {field: "metric"}, title: "Metric",
    onchange: () => {
      ui.metric = metricSel.value;
      settings.set("nodeOverview_selectedMetric", ui.metric, cluster).catch(() => {});
      load();
    }}, all.map((m) => {
      const unit = unitText(info.metricConfig(cluster, null, m)?.unit);
      return h("option", {value: m, selected: m === ui.metric}, unit ? `${m} (${unit})` : m);
    }));
  const subSel = h("select", {dataset: {field: "subcluster"}, title: "Subcluster",
    onchange: () => { ui.subCluster = subSel.value; updateURL(); render(); }},
    h("option", {value: ""}, "All subclusters"),
    c.subClusters.map((s) => h("option", {value: s.name, selected: s.name === ui.subCluster}, s.name)));
  const stateSel = h("select", {dataset: {field: "node-state"}, title: "Scheduler state",
    onchange: () => { ui.state = stateSel.value; render(); }},
    h("option", {value: ""}, "Any state"),
    ["allocated", "mixed", "idle", "reserved", "down", "unknown"].map((s) => h("option", {value: s, selected: s === ui.state}, s)));
  const find = h("input", {type: "search", placeholder: "Find node", value: ui.node, dataset: {field: "find-node"}});
  find.addEventListener("input", debounce(() => { ui.node = find.value.trim(); updateURL(); render(); }, 250));
  toolbar.append(h("div", {class: "toolbar-group"}, h("span", {class: "muted"}, "Metric"), metricSel), subSel, stateSel,
                 find, range.el, refresher(() => load()));
  if (!ui.metric) {
    fill(grid, h("p", {class: "empty"}, "This cluster has no metrics."));
    return;
  }
  await load();
}

main();
