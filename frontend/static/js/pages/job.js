// Job view (/monitoring/job/<id>): info and tags, footprint, polar plot, roofline, metric plots with a scope
// selector each (finer resolution loaded on zoom), statistics table, job script, Slurm info, metadata,
// concurrent jobs; running jobs' plots get new points over the live WebSocket.

import {drawPolar, drawRoofline, rooflinePoints, subclusterPeaks} from "../charts.js";
import {gql, loadInit} from "../gql.js";
import {footprint, footprintFromStats, JOB_FIELDS, jobDuration, jobInfo, tagPill} from "../jobinfo.js";
import {LiveClient} from "../live.js";
import {MetricPlot, scopeThresholds} from "../plot.js";
import {finest, scopesOf} from "../scopes.js";
import {selectMetrics} from "../select.js";
import {loadSettings} from "../settings.js";
import {manageTags} from "../tags.js";
import {$, errorBox, fill, fmtDuration, fmtValue, h, pageData, unitText} from "../util.js";

const JOB_QUERY = `query($id: ID!) { job(id: $id) { ${JOB_FIELDS} energyFootprint { hardware metric value }
  concurrentJobs { items { id jobId } count listQuery } } }`;
const METRIC_FIELDS = "name scope metric { unit { base prefix } timestep series { hostname id data } }";
const METRICS_QUERY = `query($id: ID!, $metrics: [String!], $scopes: [MetricScope!], $res: Int) {
  jobMetrics(id: $id, metrics: $metrics, scopes: $scopes, resolution: $res) { ${METRIC_FIELDS} } }`;
// first load: CPU metrics and accelerator metrics with their own scopes (asking accelerator scope for a CPU
// metric would load its native, finest scope)
const INITIAL_QUERY = `query($id: ID!, $cpu: [String!], $acc: [String!], $cpuScopes: [MetricScope!],
                             $accScopes: [MetricScope!]) {
  cpu: jobMetrics(id: $id, metrics: $cpu, scopes: $cpuScopes) { ${METRIC_FIELDS} }
  acc: jobMetrics(id: $id, metrics: $acc, scopes: $accScopes) { ${METRIC_FIELDS} } }`;
const STATS_QUERY = `query($id: ID!, $metrics: [String!]) { jobStats(id: $id, metrics: $metrics) { name data { min avg max } } }`;
const SCOPED_STATS_QUERY = `query($id: ID!, $metrics: [String!], $scopes: [MetricScope!]) {
  scopedJobStats(id: $id, metrics: $metrics, scopes: $scopes) { name scope stats { hostname id data { min avg max } } } }`;

const PLOT_HEIGHT = 240;

const round2 = (v) => Math.round(v * 100) / 100;

/** Energy of a finished job: per hardware part (from the energy footprint metrics), total and (with
 * main.emission-constant in g/kWh) the estimated CO2 emission, as cc-backend's energy summary. */
function energySummary(job, emission) {
  const items = (job.energyFootprint || []).map((e) => h("div", {class: "energy-item", dataset: {energyHardware: e.hardware},
      title: `Estimated energy consumption based on metric ${e.metric} and the job's runtime`},
    h("div", {}, h("b", {}, `${e.hardware}: `), h("span", {dataset: {energyValue: e.value}}, `${round2(e.value)} kWh`)),
    h("div", {class: "muted small"}, e.metric)));
  const total = h("div", {class: "energy-item energy-total", title: "Estimated total energy consumption of the job"},
    h("div", {}, h("b", {}, "Total energy: "), h("span", {dataset: {energyTotal: job.energy}}, `${round2(job.energy)} kWh`)));
  const carbon = emission ? h("div", {class: "energy-item", title: `Estimated emission at ${emission} g CO2 per kWh`},
    h("div", {}, h("b", {}, "Carbon emission: "),
      h("span", {dataset: {energyCarbon: ""}}, `${round2((job.energy * emission) / 1000)} kg`))) : null;
  return h("div", {class: "card energy-summary", dataset: {energySummary: ""}}, items, total, carbon);
}

function seriesLabel(s, scope, multiHost) {
  if (scope === "node") return s.hostname;
  return multiHost ? `${s.hostname} ${s.id}` : `${scope} ${s.id}`;
}

function tabs(items) {
  const bar = h("div", {class: "tabs", role: "tablist"});
  const panels = h("div", {class: "tab-panels"});
  const select = (key) => {
    for (const b of bar.children) b.classList.toggle("active", b.dataset.tab === key);
    for (const p of panels.children) p.hidden = p.dataset.panel !== key;
    items.find((i) => i.key === key)?.onShow?.();
  };
  for (const it of items) {
    bar.append(h("button", {type: "button", class: "tab", role: "tab", dataset: {tab: it.key}, onclick: () => select(it.key)},
      it.title));
    panels.append(h("div", {class: "tab-panel", role: "tabpanel", dataset: {panel: it.key}}, it.content));
  }
  if (items.length) select(items[0].key);
  return h("div", {class: "tab-box"}, bar, panels);
}

class JobView {
  constructor(root, page) {
    this.root = root;
    this.page = page;
    this.cards = new Map();   // metric -> card state
    this.live = null;
    this.liveUpdates = 0;
  }

  async start() {
    let job;
    try {
      [job, this.info, this.settings] = await Promise.all([
        gql(JOB_QUERY, {id: this.page.dbId}).then((d) => d.job), loadInit(), loadSettings()]);
    } catch (e) {
      this.root.replaceChildren(errorBox(e.message, "Loading the job failed"));
      return;
    }
    if (!job) {
      this.root.replaceChildren(errorBox(`No job with id ${this.page.dbId}`));
      return;
    }
    this.job = job;
    this.sc = this.info.subCluster(job.cluster, job.subCluster);
    this.topology = this.sc?.topology;
    this.multiHost = (job.resources || []).length > 1;
    this.archived = job.monitoringStatus === 3;
    this.plotMetrics = this.selectedPlotMetrics();
    this.render();
    const plots = this.loadPlots();
    this.loadFootprint();
    await plots;
    document.body.dataset.plotsReady = "1";
    document.body.dataset.plotsReadyAt = String(performance.now());
    if (job.state === "running") this.startLive();
    this.loadStatsTable();
  }

  metricNames() { return this.info.metricNames(this.job.cluster, this.job.subCluster); }

  selectedPlotMetrics() {
    const all = this.metricNames();
    const chosen = this.settings.get("metricConfig_jobViewPlotMetrics", this.job.cluster);
    if (chosen) return chosen.filter((m) => all.includes(m));
    // default: every metric the job can have (no accelerator metrics without accelerators)
    return this.hasAccelerators() ? all : all.filter((m) =>
      this.info.metricConfig(this.job.cluster, this.job.subCluster, m)?.scope !== "accelerator");
  }

  render() {
    const job = this.job;
    document.title = `Job ${job.jobId} - ClusterCockpit`;
    this.tagsEl = h("span", {class: "job-tags-list"});
    this.renderTags();
    const info = jobInfo(job, {showTags: false});
    const infoCard = h("section", {class: "card job-card"},
      h("h2", {class: "card-title"}, "Job ", String(job.jobId)), info,
      h("div", {class: "job-tags", dataset: {jobTags: job.id}}, this.tagsEl,
        h("button", {type: "button", class: "btn btn-small", dataset: {manageTags: ""}, onclick: () => this.manageTags()},
          "Manage tags")),
      job.metaData?.message ? h("div", {class: "job-hints notice", dataset: {jobHints: ""}},  // job-class hints (tagger)
        job.metaData.message.split("\n").map((line) => h("p", {}, line))) : null);
    const conc = job.concurrentJobs;
    const tabsTop = [{key: "info", title: "Job info", content: infoCard}];
    if (conc && conc.count) {
      tabsTop.push({key: "concurrent", title: `Concurrent jobs (${conc.count})`, content: h("div", {class: "card",
        dataset: {concurrentJobs: ""}}, h("p", {}, "Jobs that ran on the same nodes at the same time:"),
        h("ul", {class: "concurrent-list"}, conc.items.map((j) => h("li", {}, h("a", {href: `/monitoring/job/${j.id}`},
          String(j.jobId))))),
        h("a", {class: "btn btn-small", href: `/monitoring/jobs/?${conc.listQuery}`}, "Show in job list"))});
    }
    this.footprintEl = h("div", {class: "footprint-box"}, h("p", {class: "loading"}, "Loading footprint…"));
    this.polarEl = h("div", {class: "polar-box"}, h("p", {class: "loading"}, "…"));
    const fpTabs = [{key: "footprint", title: "Footprint", content: this.footprintEl}];
    if (this.settings.get("jobView_showPolarPlot") !== false) fpTabs.push({key: "polar", title: "Polar", content: this.polarEl});
    if (job.energy > 0 || job.energyFootprint?.length) {
      fpTabs.push({key: "energy", title: "Energy", content: energySummary(job, this.page.emission)});
    }
    this.rooflineEl = h("div", {class: "roofline-box"}, h("p", {class: "loading"}, "…"));
    const showRoofline = this.settings.get("jobView_showRoofline") !== false && this.sc;
    const top = h("div", {class: "job-top"},
      h("div", {class: "job-top-item"}, tabs(tabsTop)),
      h("div", {class: "job-top-item"}, tabs(fpTabs)),
      showRoofline ? h("div", {class: "job-top-item"}, h("section", {class: "card"}, h("h3", {class: "card-title"}, "Roofline"),
                                                      this.rooflineEl)) : null);
    this.liveBadge = h("span", {class: "live-badge", hidden: job.state !== "running", dataset: {live: "waiting"}},
                       "● live");
    const perRow = Math.max(1, Math.min(6, Number(this.settings.get("plotConfiguration_plotsPerRow")) || 3));
    this.grid = h("div", {class: "plot-grid", style: {gridTemplateColumns: `repeat(${perRow}, minmax(0, 1fr))`},
                          dataset: {plotGrid: ""}});
    const toolbar = h("div", {class: "toolbar"},
      h("button", {type: "button", class: "btn", dataset: {selectMetrics: ""}, onclick: () => this.chooseMetrics()}, "Metrics"),
      h("span", {class: "muted"}, `${this.plotMetrics.length} of ${this.metricNames().length} metrics`), this.liveBadge);
    this.statsEl = h("div", {class: "stats-box"}, h("p", {class: "loading"}, "Loading statistics…"));
    const meta = job.metaData || {};
    const bottom = [{key: "stats", title: "Statistics", content: this.statsEl}];
    bottom.push({key: "script", title: "Job script", content: meta.jobScript
      ? h("pre", {class: "code", dataset: {jobScript: ""}}, meta.jobScript) : h("p", {class: "muted"}, "No job script.")});
    bottom.push({key: "slurm", title: "Slurm info", content: meta.slurmInfo
      ? h("pre", {class: "code", dataset: {slurmInfo: ""}}, meta.slurmInfo) : h("p", {class: "muted"}, "No Slurm information.")});
    const rest = Object.entries(meta).filter(([k]) => k !== "jobScript" && k !== "slurmInfo");
    bottom.push({key: "meta", title: "Metadata", content: rest.length
      ? h("table", {class: "table meta-table", dataset: {metadata: ""}}, h("tbody", {}, rest.map(([k, v]) =>
        h("tr", {}, h("th", {}, k), h("td", {}, h("pre", {class: "meta-value"}, typeof v === "string" ? v : JSON.stringify(v, null, 1)))))))
      : h("p", {class: "muted"}, "No metadata.")});
    this.root.replaceChildren(top, toolbar, this.grid, h("section", {class: "bottom-tabs"}, tabs(bottom)));
    if (job.state === "running") {
      this.ticker = setInterval(() => {
        const d = info.querySelector("[data-duration]");
        if (d) d.textContent = fmtDuration(jobDuration(job));
      }, 1000);
    }
  }

  renderTags() {
    this.tagsEl.replaceChildren(...(this.job.tags || []).map((t) => tagPill(t)));
  }

  async manageTags() {
    try {
      await manageTags(this.job, this.page.user, () => this.renderTags());
    } catch (e) {
      this.root.prepend(errorBox(e.message, "Tags"));
    }
  }

  // -- metric plots ---------------------------------------------------------------------------

  hasAccelerators() {
    return this.job.numAcc > 0 || (this.job.resources || []).some((r) => r.accelerators?.length);
  }

  async loadPlots() {
    const job = this.job;
    const wantRoofline = this.rooflineEl.isConnected && ["flops_any", "mem_bw"].every((m) => this.metricNames().includes(m));
    const metrics = [...new Set([...this.plotMetrics, ...(wantRoofline ? ["flops_any", "mem_bw"] : [])])];
    this.grid.replaceChildren(...this.plotMetrics.map((m) => this.card(m).el));
    const isAcc = (m) => this.info.metricConfig(job.cluster, job.subCluster, m)?.scope === "accelerator";
    const single = job.numNodes === 1;
    let data;
    try {
      const d = metrics.length ? await gql(INITIAL_QUERY, {
        id: job.id, cpu: metrics.filter((m) => !isAcc(m)), acc: metrics.filter(isAcc),
        cpuScopes: single ? ["node", "core"] : ["node"], accScopes: single ? ["node", "accelerator"] : ["node"],
      }) : {cpu: [], acc: []};
      data = [...d.cpu, ...d.acc];
    } catch (e) {
      this.grid.prepend(errorBox(e.message, "Loading metric data failed"));
      for (const c of this.cards.values()) c.holder.replaceChildren(h("div", {class: "plot-empty"}, "No data"));
      return;
    }
    const byMetric = new Map();
    for (const x of data) {
      if (!byMetric.has(x.name)) byMetric.set(x.name, {});
      byMetric.get(x.name)[x.scope] = x.metric;
    }
    for (const m of this.plotMetrics) {
      const card = this.cards.get(m);
      card.data = byMetric.get(m) || {};
      const loaded = Object.keys(card.data);
      card.scope = loaded.length ? finest(loaded) : "node";
      this.fillScopeSelect(card);
      this.draw(card);
    }
    if (wantRoofline) {
      const flops = byMetric.get("flops_any")?.node, membw = byMetric.get("mem_bw")?.node;
      drawRoofline(this.rooflineEl, rooflinePoints(flops, membw), subclusterPeaks(this.sc),
                   {width: Math.max(280, Math.min(460, this.rooflineEl.clientWidth || 420)), height: 280});
    } else if (this.rooflineEl.isConnected) {
      this.rooflineEl.replaceChildren(h("p", {class: "muted"}, "No flops_any and mem_bw metrics on this cluster."));
    }
  }

  card(metric) {
    const mc = this.info.metricConfig(this.job.cluster, this.job.subCluster, metric);
    const scopeSel = h("select", {class: "scope-select", dataset: {scopeSelect: metric}, title: "Scope"});
    const hostSel = this.multiHost ? h("select", {class: "host-select", dataset: {hostSelect: metric}, title: "Host"},
      h("option", {value: ""}, "All hosts"), this.job.resources.map((r) => h("option", {value: r.hostname}, r.hostname))) : null;
    const holder = h("div", {class: "plot-holder"}, h("div", {class: "plot-wait"}, "Loading…"));
    const el = h("section", {class: "plot-card", dataset: {metric}},
      h("div", {class: "plot-head"}, h("b", {class: "plot-title"}, metric),
        mc ? h("span", {class: "muted"}, ` ${unitText(mc.unit)}`) : null, h("span", {class: "spacer"}), scopeSel, hostSel),
      holder);
    const card = {metric, mc, el, holder, scopeSel, hostSel, scope: "node", stats: false, host: null, res: null,
                  data: {}, plot: null, loading: false};
    scopeSel.addEventListener("change", () => this.changeScope(card, scopeSel.value));
    hostSel?.addEventListener("change", () => { card.host = hostSel.value || null; this.draw(card); });
    this.cards.set(metric, card);
    return card;
  }

  fillScopeSelect(card) {
    if (!card.mc) return;
    const options = [];
    for (const s of scopesOf(card.mc, this.topology, this.archived)) {
      options.push(h("option", {value: s, selected: !card.stats && s === card.scope}, s));
      const n = card.data[s]?.series?.length ?? 0;
      if (n > 1) options.push(h("option", {value: `${s}-stat`, selected: card.stats && s === card.scope}, `stats series (${s})`));
    }
    card.scopeSel.replaceChildren(...options);
    card.scopeSel.value = card.stats ? `${card.scope}-stat` : card.scope;
  }

  seriesOf(card) {
    const jm = card.data[card.scope];
    return (jm?.series || []).filter((s) => !card.host || s.hostname === card.host)
      .map((s) => ({key: s.hostname + (s.id !== null && s.id !== undefined ? ":" + s.id : ""),
                    label: seriesLabel(s, card.scope, this.multiHost), data: s.data}));
  }

  draw(card) {
    const jm = card.data[card.scope];
    card.plot?.destroy();
    card.plot = null;
    card.holder.replaceChildren();
    card.el.dataset.scope = card.scope;
    card.el.dataset.stats = String(card.stats);
    if (!card.mc) {
      card.holder.append(h("div", {class: "plot-empty"}, `${card.metric} is not configured for this subcluster`));
      return;
    }
    const target = h("div", {class: "plot-target"});
    card.holder.append(target);
    card.plot = new MetricPlot(target, {
      metric: card.metric, unit: jm?.unit || card.mc.unit, timestep: jm?.timestep || card.mc.timestep,
      series: this.seriesOf(card), stats: card.stats, thresholds: scopeThresholds(card.mc, this.topology, card.scope),
      height: PLOT_HEIGHT, ...this.settings.plotOptions(), onZoom: (z) => this.zoomed(card, z),
    });
  }

  async fetchMetric(metric, scope, res) {
    const d = await gql(METRICS_QUERY, {id: this.job.id, metrics: [metric], scopes: [scope], res});
    const hit = d.jobMetrics.find((x) => x.name === metric && x.scope === scope) ||
                d.jobMetrics.find((x) => x.name === metric);
    return hit ? {scope: hit.scope, jm: hit.metric} : null;
  }

  async changeScope(card, value) {
    const stats = value.endsWith("-stat");
    const scope = stats ? value.slice(0, -5) : value;
    card.stats = stats;
    if (!card.data[scope]) {
      card.holder.replaceChildren(h("div", {class: "plot-wait"}, "Loading…"));
      try {
        const got = await this.fetchMetric(card.metric, scope, card.res);
        if (got) card.data[got.scope] = got.jm;
      } catch (e) {
        card.holder.replaceChildren(errorBox(e.message));
        return;
      }
    }
    card.scope = scope;
    this.fillScopeSelect(card);
    this.draw(card);
    this.subscribe(card);
  }

  /** Zoomed in: load the next finer resolution once fewer points than the trigger are visible. */
  async zoomed(card, {min, max, visible}) {
    const rs = this.page.resampling;
    const plot = card.plot;
    if (!rs || !plot || card.loading || visible >= rs.trigger) return;
    const native = card.mc.timestep;
    const current = plot.timestep;
    if (current <= native) return;
    const finer = rs.resolutions.filter((r) => r < current && r > native);
    const res = finer.length ? Math.max(...finer) : 0;
    card.loading = true;
    card.el.dataset.loadingResolution = String(res);
    try {
      const got = await this.fetchMetric(card.metric, card.scope, res);
      if (!got || card.plot !== plot) return;
      card.res = res;
      card.data = {[got.scope]: got.jm};   // other scopes were at the old resolution
      plot.setData({series: this.seriesOf(card), timestep: got.jm.timestep, keepRange: {min, max}});
      this.fillScopeSelect(card);
    } catch (e) {
      card.holder.prepend(errorBox(e.message, "Loading a finer resolution failed"));
    } finally {
      card.loading = false;
      delete card.el.dataset.loadingResolution;
    }
  }

  async chooseMetrics() {
    const available = this.metricNames().map((m) => ({name: m, note: this.info.metricConfig(this.job.cluster,
      this.job.subCluster, m)?.scope || ""}));
    const chosen = await selectMetrics(`Metrics of job ${this.job.jobId}`, available, this.plotMetrics);
    if (!chosen) return;
    try {
      await this.settings.set("metricConfig_jobViewPlotMetrics", chosen.metrics, this.job.cluster);
    } catch (e) {
      this.grid.prepend(errorBox(e.message, "Saving the selection failed"));
    }
    for (const c of this.cards.values()) { c.plot?.destroy(); this.live?.unsubscribe(c.metric); }
    this.cards.clear();
    this.plotMetrics = chosen.metrics;
    document.body.dataset.plotsReady = "";
    await this.loadPlots();
    document.body.dataset.plotsReady = "1";
    if (this.live) for (const c of this.cards.values()) this.subscribe(c);
  }

  // -- footprint, polar, statistics -----------------------------------------------------------

  async loadFootprint() {
    const job = this.job;
    const fpMetrics = this.sc?.footprint || [];
    let stats = [];
    try {
      stats = fpMetrics.length ? (await gql(STATS_QUERY, {id: job.id, metrics: fpMetrics})).jobStats : [];
    } catch (e) {
      this.footprintEl.replaceChildren(errorBox(e.message));
      return;
    }
    const byName = new Map(stats.map((s) => [s.name, s.data]));
    const values = job.footprint?.length ? job.footprint : footprintFromStats(job, stats, this.info);
    fill(this.footprintEl, footprint(job, values, this.info),
      job.footprint?.length ? null : h("p", {class: "muted small"}, "Computed from the metric data so far."));
    const axes = fpMetrics.map((m) => {
      const mc = this.info.metricConfig(job.cluster, job.subCluster, m);
      const st = byName.get(m);
      if (!mc || !st || !mc.peak) return null;
      return {name: m, avg: st.avg / mc.peak, max: st.max / mc.peak};
    }).filter(Boolean);
    drawPolar(this.polarEl, axes, {size: 280});
  }

  tableMetrics() {
    const all = this.metricNames();
    const chosen = this.settings.get("metricConfig_jobViewTableMetrics", this.job.cluster) || [];
    const list = chosen.filter((m) => all.includes(m));
    return list.length ? list : all.slice(0, 3);
  }

  async loadStatsTable() {
    if (this.settings.get("jobView_showStatTable") === false) {
      this.statsEl.replaceChildren(h("p", {class: "muted"}, "The statistics table is switched off in the settings."));
      return;
    }
    this.tableScopes = this.tableScopes || {};
    this.tableData = this.tableData || {};
    const metrics = this.tableMetrics();
    try {
      const missing = metrics.filter((m) => !this.tableData[`${m}|${this.tableScopes[m] || "node"}`]);
      if (missing.length) {
        const d = await gql(SCOPED_STATS_QUERY, {id: this.job.id, metrics: missing, scopes: ["node"]});
        for (const x of d.scopedJobStats) this.tableData[`${x.name}|${x.scope}`] = x.stats;
      }
    } catch (e) {
      this.statsEl.replaceChildren(errorBox(e.message, "Loading statistics failed"));
      return;
    }
    this.renderStatsTable(metrics);
  }

  renderStatsTable(metrics) {
    const hosts = this.job.resources.map((r) => r.hostname);
    const head1 = h("tr", {}, h("th", {rowspan: 2}, "Host"), metrics.map((m) => {
      const mc = this.info.metricConfig(this.job.cluster, this.job.subCluster, m);
      const scope = this.tableScopes[m] || "node";
      const sel = h("select", {dataset: {tableScope: m}}, (mc ? scopesOf(mc, this.topology, this.archived) : ["node"]).map((s) =>
        h("option", {value: s, selected: s === scope}, s)));
      sel.addEventListener("change", async () => {
        this.tableScopes[m] = sel.value;
        const key = `${m}|${sel.value}`;
        if (!this.tableData[key]) {
          try {
            const d = await gql(SCOPED_STATS_QUERY, {id: this.job.id, metrics: [m], scopes: [sel.value]});
            for (const x of d.scopedJobStats) this.tableData[`${x.name}|${x.scope}`] = x.stats;
            this.tableData[key] = this.tableData[key] || [];
          } catch (e) {
            this.statsEl.prepend(errorBox(e.message));
            return;
          }
        }
        this.renderStatsTable(metrics);
      });
      return h("th", {colspan: 3, class: "metric-col"}, m, mc && unitText(mc.unit) ? ` (${unitText(mc.unit)}) ` : " ", sel);
    }));
    const head2 = h("tr", {}, metrics.map(() => [h("th", {}, "min"), h("th", {}, "avg"), h("th", {}, "max")]));
    const rows = hosts.map((host) => h("tr", {dataset: {statsHost: host}}, h("th", {}, host), metrics.map((m) => {
      const mc = this.info.metricConfig(this.job.cluster, this.job.subCluster, m);
      const stats = (this.tableData[`${m}|${this.tableScopes[m] || "node"}`] || []).filter((s) => s.hostname === host);
      return ["min", "avg", "max"].map((k) => h("td", {class: "num"}, stats.length === 0 ? "–" : stats.length === 1
        ? fmtValue(stats[0].data[k], mc?.unit)
        : h("div", {class: "stack"}, stats.map((s) => h("div", {}, h("span", {class: "muted"}, `${s.id}: `),
                                                     fmtValue(s.data[k], mc?.unit))))));
    })));
    const choose = h("button", {type: "button", class: "btn btn-small", dataset: {selectTableMetrics: ""}, onclick: async () => {
      const chosen = await selectMetrics("Metrics of the statistics table", this.metricNames().map((n) => ({name: n})),
                                         this.tableMetrics());
      if (!chosen) return;
      try {
        await this.settings.set("metricConfig_jobViewTableMetrics", chosen.metrics, this.job.cluster);
      } catch (e) {
        this.statsEl.prepend(errorBox(e.message));
      }
      this.loadStatsTable();
    }}, "Metrics");
    this.statsEl.replaceChildren(choose, h("div", {class: "table-scroll"},
      h("table", {class: "table stats-table", dataset: {statsTable: ""}}, h("thead", {}, head1, head2), h("tbody", {}, rows))));
  }

  // -- live updates ---------------------------------------------------------------------------

  startLive() {
    this.live = new LiveClient({
      onPoints: (msg) => this.livePoints(msg),
      onEnded: (msg) => {
        this.liveBadge.textContent = `job ${msg.state} — reload for the final data`;
        this.liveBadge.dataset.live = "ended";
      },
      onError: (msg) => { if (msg.key) this.liveBadge.title = msg.message; },
      onStatus: (s) => { this.liveBadge.dataset.live = s; this.liveBadge.classList.toggle("off", s !== "connected"); },
    });
    for (const c of this.cards.values()) this.subscribe(c);
  }

  subscribe(card) {
    if (!this.live || !card.mc) return;
    const native = card.mc.timestep;
    this.live.subscribe(card.metric, this.job.id, [card.metric], card.scope, () => {
      const p = card.plot;
      return {[card.metric]: p ? Math.floor((p.length * p.timestep) / native) : 0};
    });
  }

  livePoints(msg) {
    const card = this.cards.get(msg.key);
    if (!card || !card.plot || msg.scope !== card.scope) return;
    const updates = msg.series.filter((s) => !card.host || s.hostname === card.host)
      .map((s) => [s.hostname + (s.id !== null && s.id !== undefined ? ":" + s.id : ""), s.data]);
    const jm = card.data[card.scope];
    const written = card.plot.appendLive(msg.index, msg.timestep, updates);
    if (jm && written) {   // keep the cached data in step, so a host or scope switch shows the new points too
      for (const s of jm.series) {
        const u = msg.series.find((x) => x.hostname === s.hostname && (x.id ?? null) === (s.id ?? null));
        if (!u) continue;
        u.data.forEach((v, k) => {
          if (v === null) return;
          const at = Math.floor(((msg.index + k) * msg.timestep) / jm.timestep);
          while (s.data.length < at) s.data.push(null);
          s.data[at] = v;
        });
      }
    }
    if (written) {
      this.liveUpdates += 1;
      document.body.dataset.liveUpdates = String(this.liveUpdates);
      this.liveBadge.dataset.lastUpdate = new Date().toISOString();
      this.liveBadge.title = `last update ${new Date().toLocaleTimeString()}`;
    }
  }
}

const page = pageData();
new JobView($("[data-job-view]"), page).start();
