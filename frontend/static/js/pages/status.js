// Cluster status (/monitoring/status/<cluster>, admins): per subcluster the allocated nodes, running jobs and the
// current flop rate and memory bandwidth against the peaks (with a roofline of the nodes' last minutes), node
// scheduler and health states from the node table, the top users and projects of the running jobs, and
// histograms of the running jobs.  Reload now or periodically.

import {drawRoofline, subclusterPeaks} from "../charts.js";
import {gql} from "../gql.js";
import {countBins, durationBins, Histogram} from "../histogram.js";
import {HEALTH_STATES, SCHEDULER_STATES, stateBadge} from "../nodestate.js";
import {loadInfoAndSettings} from "../settings.js";
import {refresher} from "../timerange.js";
import {$, errorBox, fill, fmtMB, h, pageData, PREFIXES} from "../util.js";

const QUERY = `query($cluster: String!, $filter: [JobFilter!], $sortBy: SortByAggregate, $from: Time!, $to: Time!,
                     $metrics: [String!]) {
  allocatedNodes(cluster: $cluster) { name count }
  nodeStates(filter: [{cluster: {eq: $cluster}}]) { state count }
  nodes(filter: [{cluster: {eq: $cluster}}]) { items { hostname subCluster schedulerState healthState healthData
    jobsRunning cpusAllocated memoryAllocated gpusAllocated } }
  perSub: jobsStatistics(filter: $filter, groupBy: SUBCLUSTER) { id runningJobs totalNodes totalCores totalAccs }
  topUsers: jobsStatistics(filter: $filter, groupBy: USER, sortBy: $sortBy, page: {itemsPerPage: 10, page: 1}) {
    id name totalJobs totalNodes totalCores totalAccs }
  topProjects: jobsStatistics(filter: $filter, groupBy: PROJECT, sortBy: $sortBy, page: {itemsPerPage: 10, page: 1}) {
    id totalJobs totalNodes totalCores totalAccs }
  hist: jobsStatistics(filter: $filter) { histDuration { count value } histNumNodes { count value }
    histNumCores { count value } histNumAccs { count value } }
  nodeMetrics(cluster: $cluster, metrics: $metrics, from: $from, to: $to) {
    host subCluster metrics { name metric { unit { base prefix } series { statistics { avg } } } } } }`;
const CATEGORIES = [["TOTALJOBS", "totalJobs", "Jobs"], ["TOTALNODES", "totalNodes", "Nodes"],
                    ["TOTALCORES", "totalCores", "Cores"], ["TOTALACCS", "totalAccs", "Accelerators"]];
const LAST = 300;   // seconds of node data behind "current" flop rate and bandwidth

const page = pageData();
const cluster = page.cluster;
const root = $("[data-status]");
let info, settings, generation = 0, category = "TOTALNODES";
const plots = [];

const giga = (v, unit) => v * (PREFIXES[unit?.prefix || ""] ?? 1) / 1e9;

function gauge(label, value, max, unit, key) {
  const pct = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return h("div", {class: "gauge", dataset: {gauge: key, value: String(Math.round(value * 100) / 100), max: String(max)}},
    h("div", {class: "gauge-label"}, h("span", {}, label),
      h("span", {class: "muted"}, `${Math.round(value * 10) / 10} / ${Math.round(max * 10) / 10} ${unit}`)),
    h("div", {class: "fp-bar"}, h("div", {class: "fp-fill gauge-fill", style: {width: pct.toFixed(1) + "%"}})));
}

/** Per subcluster: sum over nodes of the average flops_any and mem_bw of the last minutes; roofline points. */
function nodeRates(nodeMetrics) {
  const out = {};
  for (const n of nodeMetrics) {
    const r = out[n.subCluster] ||= {flops: 0, bw: 0, points: []};
    const avg = (name) => {
      const m = n.metrics.find((x) => x.name === name)?.metric;
      const v = m?.series?.[0]?.statistics?.avg;
      return v === null || v === undefined || !Number.isFinite(v) ? null : giga(v, m.unit);
    };
    const f = avg("flops_any"), b = avg("mem_bw");
    if (f !== null) r.flops += f;
    if (b !== null) r.bw += b;
    if (f > 0 && b > 0) r.points.push({x: f / b, y: f, t: 0});
  }
  return out;
}

function topTable(rows, kind) {
  const field = CATEGORIES.find(([k]) => k === category)[1];
  const max = Math.max(1, ...rows.map((r) => r[field]));
  const link = (r) => kind === "user"
    ? `/monitoring/user/${encodeURIComponent(r.id)}?cluster=${encodeURIComponent(cluster)}&state=running`
    : `/monitoring/jobs/?cluster=${encodeURIComponent(cluster)}&state=running&project=${encodeURIComponent(r.id)}&projectMatch=eq`;
  return h("table", {class: "table top-table", dataset: {top: kind}},
    h("thead", {}, h("tr", {}, h("th", {}, kind === "user" ? "User" : "Project"),
      CATEGORIES.map(([k, , label]) => h("th", {class: "num" + (k === category ? " active" : "")}, label)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {dataset: {topRow: r.id}},
      h("td", {}, h("a", {href: link(r)}, r.id), r.name ? h("span", {class: "muted"}, ` ${r.name}`) : null,
        h("div", {class: "top-bar"}, h("div", {style: {width: `${(100 * r[field]) / max}%`}}))),
      CATEGORIES.map(([k, f]) => h("td", {class: "num", dataset: {field: f}}, String(r[f])))))
      : h("tr", {}, h("td", {colspan: 5, class: "muted"}, "No running jobs."))));
}

function render(d) {
  for (const p of plots.splice(0)) p.destroy();
  const c = info.cluster(cluster);
  const alloc = new Map(d.allocatedNodes.map((a) => [a.name, a.count]));
  const perSub = new Map(d.perSub.map((s) => [s.id, s]));
  const rates = nodeRates(d.nodeMetrics);
  const known = {};   // subcluster -> hosts seen in the metric store or the node table
  for (const n of [...d.nodeMetrics.map((x) => [x.host, x.subCluster]), ...d.nodes.items.map((x) => [x.hostname, x.subCluster])]) {
    (known[n[1]] ||= new Set()).add(n[0]);
  }
  const subs = c.subClusters.map((sc) => {
    const peaks = subclusterPeaks(sc);
    // cluster.json may describe the nodes by a pattern ("*"): then count the nodes seen
    const total = sc.numberOfNodes || known[sc.name]?.size || 0;
    const r = rates[sc.name] || {flops: 0, bw: 0, points: []};
    const js = perSub.get(sc.name) || {runningJobs: 0, totalNodes: 0, totalCores: 0, totalAccs: 0};
    const roof = h("div", {class: "roofline-box"});
    const el = h("section", {class: "card subcluster-status", dataset: {subcluster: sc.name}},
      h("h2", {class: "card-title"}, `${sc.name}`, h("span", {class: "muted"}, ` ${sc.processorType || ""}`)),
      h("div", {class: "subcluster-grid"},
        h("div", {class: "gauges"},
          gauge("Allocated nodes", alloc.get(sc.name) || 0, total, "nodes", "allocated"),
          gauge("Flop rate (any)", r.flops, peaks.simd * total, "GF/s", "flops"),
          gauge("Memory bandwidth", r.bw, peaks.bw * total, "GB/s", "membw"),
          h("table", {class: "table summary-table"}, h("tbody", {},
            h("tr", {}, h("th", {}, "Running jobs"), h("td", {class: "num", dataset: {runningJobs: sc.name}},
              h("a", {href: `/monitoring/jobs/?cluster=${encodeURIComponent(cluster)}&state=running`}, String(js.runningJobs)))),
            h("tr", {}, h("th", {}, "Allocated cores"), h("td", {class: "num"}, String(js.totalCores))),
            h("tr", {}, h("th", {}, "Allocated accelerators"), h("td", {class: "num"}, String(js.totalAccs)))))),
        roof));
    drawRoofline(roof, r.points, peaks, {width: 360, height: 240, legend: "nodes"});
    return el;
  });
  const sched = d.nodeStates.filter((s) => SCHEDULER_STATES.includes(s.state) && !HEALTH_STATES.includes(s.state));
  const health = d.nodeStates.filter((s) => HEALTH_STATES.includes(s.state));
  const nodes = [...d.nodes.items].sort((a, b) =>
    ((b.healthState !== "full") - (a.healthState !== "full")) || ((b.schedulerState === "down") - (a.schedulerState === "down")) ||
    a.hostname.localeCompare(b.hostname, undefined, {numeric: true}));
  const states = h("section", {class: "card", dataset: {nodeStatesCard: ""}},
    h("h2", {class: "card-title"}, "Node states"),
    d.nodes.items.length ? [
      h("div", {class: "state-summary"}, h("b", {}, "Scheduler: "), sched.map((s) =>
        h("span", {class: "state-count", dataset: {stateCount: s.state}}, stateBadge(s.state), ` ${s.count}`))),
      h("div", {class: "state-summary"}, h("b", {}, "Metric health: "), health.map((s) =>
        h("span", {class: "state-count", dataset: {healthCount: s.state}}, stateBadge(s.state, "health"), ` ${s.count}`))),
      h("div", {class: "table-scroll node-state-table"}, h("table", {class: "table", dataset: {nodeTable: ""}},
        h("thead", {}, h("tr", {}, ["Node", "Subcluster", "Scheduler state", "Metric health", "Jobs", "CPUs", "Memory",
                                    "GPUs"].map((t) => h("th", {}, t)))),
        h("tbody", {}, nodes.map((n) => h("tr", {dataset: {nodeRow: n.hostname}},
          h("td", {}, h("a", {href: `/monitoring/node/${encodeURIComponent(cluster)}/${encodeURIComponent(n.hostname)}`},
                        n.hostname)),
          h("td", {}, n.subCluster), h("td", {}, stateBadge(n.schedulerState)), h("td", {}, stateBadge(n.healthState, "health", n.healthData)),
          h("td", {class: "num"}, String(n.jobsRunning)), h("td", {class: "num"}, String(n.cpusAllocated ?? "")),
          h("td", {class: "num"}, fmtMB(n.memoryAllocated)), h("td", {class: "num"}, String(n.gpusAllocated ?? ""))))))),
    ] : h("p", {class: "muted", dataset: {noNodeStates: ""}},
          "No node states reported (the scheduler adapter sends them with POST /api/nodestate)."));
  const catSel = h("select", {dataset: {field: "top-category"}, title: "Rank by", onchange: () => {
    category = catSel.value;
    settings.set("statusView_selectedTopCategory", category, cluster).catch(() => {});
    load();
  }}, CATEGORIES.map(([k, , label]) => h("option", {value: k, selected: k === category}, `Number of ${label.toLowerCase()}`)));
  const top = h("section", {class: "card"}, h("div", {class: "card-title toolbar"}, h("span", {}, "Top users and projects "),
                                                                                 catSel),
    h("div", {class: "top-grid"}, topTable(d.topUsers, "user"), topTable(d.topProjects, "project")));
  const accs = info.hasAccelerators(cluster);
  const hists = ["duration", "numNodes", "numCores", ...(accs ? ["numAccs"] : [])].map((k) =>
    h("div", {class: "card histogram-card", dataset: {hist: k}}));
  fill(root, h("div", {class: "status-subclusters"}, subs), states, top,
    h("h2", {class: "section-title"}, "Running jobs"), h("div", {class: "histogram-grid"}, hists));
  const hs = d.hist[0];
  plots.push(new Histogram(hists[0], {title: "Duration distribution", xLabel: "Duration", bins: durationBins(hs.histDuration)}),
             new Histogram(hists[1], {title: "Number of nodes", xLabel: "Nodes", bins: countBins(hs.histNumNodes, "nodes")}),
             new Histogram(hists[2], {title: "Number of cores", xLabel: "Cores", bins: countBins(hs.histNumCores, "cores")}));
  if (accs) {
    plots.push(new Histogram(hists[3], {title: "Number of accelerators", xLabel: "Accelerators",
                                        bins: countBins(hs.histNumAccs, "accelerators")}));
  }
}

async function load() {
  const gen = ++generation;
  document.body.dataset.statusReady = "";
  const to = Math.floor(Date.now() / 1000);
  const metrics = info.metricNames(cluster).filter((m) => m === "flops_any" || m === "mem_bw");
  let d;
  try {
    d = await gql(QUERY, {cluster, filter: [{cluster: {eq: cluster}}, {state: ["running"]}], sortBy: category,
                          from: to - LAST, to, metrics});
  } catch (e) {
    if (gen === generation) fill(root, errorBox(e.message, "Loading the status failed"));
    return;
  }
  if (gen !== generation) return;
  render(d);
  $("[data-updated]").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.statusReady = "1";
}

async function main() {
  const loaded = await loadInfoAndSettings(root);
  if (!loaded) return;
  [info, settings] = loaded;
  const saved = settings.get("statusView_selectedTopCategory", cluster);
  if (CATEGORIES.some(([k]) => k === saved)) category = saved;
  $("[data-toolbar]").append(refresher(() => load()));
  await load();
}

main();
