// The job list: one row per job (info, optional footprint, one metric plot per selected metric), continuous
// scroll or paging, sortable, with the metric data of a page loaded in a few batched GraphQL requests.
// Reused by every job list page (all jobs, a user's jobs, ...).

import {gql, gqlRaw} from "./gql.js";
import {footprint, footprintFromStats, JOB_FIELDS, jobInfo, tickDurations} from "./jobinfo.js";
import {MetricPlot, scopeThresholds} from "./plot.js";
import {errorBox, h} from "./util.js";

export const SORT_COLUMNS = [
  ["startTime", "Start time"], ["duration", "Duration"], ["numNodes", "Number of nodes"],
  ["numHWThreads", "Number of HWThreads"], ["numAcc", "Number of accelerators"], ["energy", "Total energy"],
];
export const DEFAULT_SORT = {field: "startTime", type: "col", order: "DESC"};
const BATCH = 10;              // jobs per metric data request
const STATS_MIN_SERIES = 8;    // jobs with this many series are drawn as min/median/max
const PLOT_HEIGHT = 150;

const METRIC_FIELDS = "name scope metric { unit { base prefix } timestep series { hostname id data } }";
const batchQueries = new Map();

function metricsQuery(n) {
  if (!batchQueries.has(n)) {
    const vars = Array.from({length: n}, (_, i) => `$i${i}: ID!`).join(", ");
    const fields = Array.from({length: n}, (_, i) =>
      `j${i}: jobMetrics(id: $i${i}, metrics: $metrics, scopes: [node]) { ${METRIC_FIELDS} }`).join("\n");
    batchQueries.set(n, `query(${vars}, $metrics: [String!]) {\n${fields}\n}`);
  }
  return batchQueries.get(n);
}

const statsQueries = new Map();

/** jobStats of n jobs in one request (each job its own subcluster's footprint metrics). */
function statsQuery(n) {
  if (!statsQueries.has(n)) {
    const vars = Array.from({length: n}, (_, i) => `$i${i}: ID!, $m${i}: [String!]`).join(", ");
    const fields = Array.from({length: n}, (_, i) =>
      `j${i}: jobStats(id: $i${i}, metrics: $m${i}) { name data { min avg max } }`).join("\n");
    statsQueries.set(n, `query(${vars}) {\n${fields}\n}`);
  }
  return statsQueries.get(n);
}

export const JOBS_QUERY = `query($filter: [JobFilter!], $page: PageRequest, $order: OrderByInput) {
  jobs(filter: $filter, page: $page, order: $order) { items { ${JOB_FIELDS} } count hasNextPage }
}`;

/**
 * opts: {info (ClusterInfo), settings, filters: () => JobFilter list, sort, metrics: [names], showFootprint,
 *        usePaging, itemsPerPage, onCount(count), onReady(), onError(msg)}
 */
export class JobList {
  constructor(container, opts) {
    this.el = container;
    this.opts = opts;
    this.sort = opts.sort || DEFAULT_SORT;
    this.metrics = opts.metrics || [];
    this.showFootprint = !!opts.showFootprint;
    this.usePaging = !!opts.usePaging;
    this.itemsPerPage = opts.itemsPerPage || 50;
    this.page = 1;
    this.jobs = [];
    this.rows = new Map();      // job id -> {job, cells: {metric: el}, plots: []}
    this.generation = 0;
    this.loading = false;
    this.hasNext = false;
    this.pendingData = 0;
    this.selected = new Map();  // compare mode: job id -> job, in the order of selection
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !this.usePaging && this.hasNext && !this.loading) this.loadMore();
    }, {rootMargin: "400px"});
    this.ticker = setInterval(() => tickDurations(this.el, new Map(this.jobs.map((j) => [String(j.id), j]))), 5000);
  }

  destroy() {
    clearInterval(this.ticker);
    this.observer.disconnect();
    this.clearPlots();
  }

  clearPlots() {
    for (const r of this.rows.values()) for (const p of r.plots) p.destroy();
    this.rows.clear();
  }

  /** Start over with the first page (after a filter, sort or option change, or a periodic reload). */
  async reload() {
    this.page = 1;
    this.jobs = [];
    this.pendingData = 0;
    this.clearPlots();
    this.el.replaceChildren(this.header(), h("div", {class: "job-rows", dataset: {jobRows: ""}}),
                            h("div", {class: "joblist-foot", dataset: {joblistFoot: ""}}));
    document.body.dataset.plotsReady = "";
    await this.load(++this.generation, false);
  }

  async loadMore() {
    if (this.loading || !this.hasNext) return;
    this.page += 1;
    await this.load(this.generation, true);
  }

  async goto(page) {
    this.page = page;
    this.jobs = [];
    this.pendingData = 0;
    this.clearPlots();
    this.el.querySelector("[data-job-rows]").replaceChildren();
    await this.load(++this.generation, false);
    this.el.scrollIntoView({block: "start"});
  }

  gridColumns() {
    return `minmax(220px, 260px)${this.showFootprint ? " minmax(180px, 220px)" : ""}` +
           (this.metrics.length ? ` repeat(${this.metrics.length}, minmax(180px, 1fr))` : "");
  }

  header() {
    return h("div", {class: "job-row job-header", style: {gridTemplateColumns: this.gridColumns()}},
      h("div", {}, "Job info"), this.showFootprint ? h("div", {}, "Footprint") : null,
      this.metrics.map((m) => h("div", {dataset: {metricHeader: m}}, m)));
  }

  async load(gen, append) {
    this.loading = true;
    const foot = this.el.querySelector("[data-joblist-foot]");
    foot.replaceChildren(h("p", {class: "loading"}, "Loading jobs…"));
    let result;
    try {
      result = (await gql(JOBS_QUERY, {filter: this.opts.filters(), order: this.sort,
                                       page: {itemsPerPage: this.itemsPerPage, page: this.page}})).jobs;
    } catch (e) {
      if (gen !== this.generation) return;
      this.loading = false;
      foot.replaceChildren(errorBox(e.message, "Loading jobs failed"));
      this.opts.onError?.(e.message);
      return;
    }
    if (gen !== this.generation) return;
    this.loading = false;
    this.hasNext = !!result.hasNextPage;
    this.opts.onCount?.(result.count);
    const rowsEl = this.el.querySelector("[data-job-rows]");
    if (!append) rowsEl.replaceChildren();
    this.jobs.push(...result.items);
    const fresh = result.items.map((job) => this.row(job));
    rowsEl.append(...fresh.map((r) => r.el));
    if (!this.jobs.length) rowsEl.append(h("p", {class: "empty", dataset: {noJobs: ""}}, "No jobs match the filters."));
    this.renderFoot(foot, result.count);
    await this.loadData(gen, result.items);
  }

  renderFoot(foot, count) {
    foot.replaceChildren();
    if (this.usePaging) {
      const pages = Math.max(1, Math.ceil((count || 0) / this.itemsPerPage));
      const perPage = h("select", {dataset: {field: "items-per-page"}, onchange: (e) => {
        this.itemsPerPage = +e.target.value;
        this.opts.settings?.set("plot_list_jobsPerPage", this.itemsPerPage).catch(() => {});
        this.goto(1);
      }}, [10, 25, 50, 100].map((n) => h("option", {value: n, selected: n === this.itemsPerPage}, `${n} per page`)));
      foot.append(h("div", {class: "pager", dataset: {pager: ""}},
        h("button", {type: "button", class: "btn", disabled: this.page <= 1, dataset: {pagePrev: ""},
                     onclick: () => this.goto(this.page - 1)}, "‹ Previous"),
        h("span", {dataset: {pageInfo: ""}}, `Page ${this.page} of ${pages}`),
        h("button", {type: "button", class: "btn", disabled: this.page >= pages, dataset: {pageNext: ""},
                     onclick: () => this.goto(this.page + 1)}, "Next ›"),
        perPage));
    } else if (this.hasNext) {
      const sentinel = h("div", {class: "scroll-sentinel", dataset: {scrollSentinel: ""}},
        h("button", {type: "button", class: "btn", onclick: () => this.loadMore()}, "Load more"));
      foot.append(sentinel);
      this.observer.disconnect();
      this.observer.observe(sentinel);
    } else if (this.jobs.length) {
      foot.append(h("p", {class: "muted", dataset: {listEnd: ""}}, this.jobs.length === 1 ? "The only matching job is shown." : `All ${this.jobs.length} jobs shown.`));
    }
  }

  row(job) {
    const cells = {};
    const pick = h("label", {class: "job-select", title: "Select for comparison"},
      h("input", {type: "checkbox", checked: this.selected.has(String(job.id)), dataset: {selectJob: job.id},
                  onchange: (e) => this.toggleSelected(job, e.target)}), " compare");
    const el = h("div", {class: "job-row", style: {gridTemplateColumns: this.gridColumns()}, dataset: {jobRow: job.id}},
      h("div", {class: "cell-info"}, pick, jobInfo(job)),
      this.showFootprint ? h("div", {class: "cell-footprint"}, this.footprintPending(job)
        ? h("div", {class: "footprint muted", dataset: {footprintWait: ""}}, "…")
        : footprint(job, job.footprint, this.opts.info)) : null,
      this.metrics.map((m) => {
        const has = this.opts.info.metricConfig(job.cluster, job.subCluster, m);
        cells[m] = h("div", {class: "cell-plot", dataset: {metric: m}},
          has ? h("div", {class: "plot-wait"}, "…") : h("div", {class: "plot-empty muted"}, `${m}: not on ${job.cluster}`));
        return cells[m];
      }));
    const r = {job, el, cells, plots: []};
    this.rows.set(String(job.id), r);
    return r;
  }

  /** Compare mode: (de)select a job, at most opts.maxSelected; opts.onSelect(selected jobs) after each change. */
  toggleSelected(job, box) {
    const id = String(job.id);
    if (box.checked && this.selected.size >= (this.opts.maxSelected || Infinity)) box.checked = false;
    else if (box.checked) this.selected.set(id, job);
    else this.selected.delete(id);
    this.opts.onSelect?.([...this.selected.values()]);
  }

  clearSelected() {
    this.selected.clear();
    for (const box of this.el.querySelectorAll("[data-select-job]")) box.checked = false;
    this.opts.onSelect?.([]);
  }

  /** A running job has no stored footprint yet: it is computed from its data so far, as the job view does. */
  footprintPending(job) {
    return this.showFootprint && !job.footprint?.length && job.state === "running" &&
      (this.opts.info.subCluster(job.cluster, job.subCluster)?.footprint || []).length > 0;
  }

  async loadFootprints(gen, jobs) {
    const batches = [];
    for (let i = 0; i < jobs.length; i += BATCH) batches.push(jobs.slice(i, i + BATCH));
    await Promise.all(batches.map(async (batch) => {
      const vars = {};
      batch.forEach((j, i) => {
        vars[`i${i}`] = j.id;
        vars[`m${i}`] = this.opts.info.subCluster(j.cluster, j.subCluster)?.footprint || [];
      });
      let data = null, errors = [];
      try {
        ({data, errors} = await gqlRaw(statsQuery(batch.length), vars));
      } catch (e) {
        errors = [e.message];
      }
      if (gen !== this.generation) return;
      batch.forEach((job, i) => {
        const cell = this.rows.get(String(job.id))?.el.querySelector(".cell-footprint");
        if (!cell) return;
        const stats = data?.[`j${i}`];
        cell.replaceChildren(stats ? footprint(job, footprintFromStats(job, stats, this.opts.info), this.opts.info)
          : h("div", {class: "footprint muted", title: (errors || []).map((e) => e.message || e).join("; ")}, "Footprint not available"));
        cell.firstChild.dataset.computed = "1";
      });
    }));
  }

  async loadData(gen, jobs) {
    const wanted = jobs.filter((j) => this.metrics.some((m) => this.opts.info.metricConfig(j.cluster, j.subCluster, m)));
    const batches = [];
    for (let i = 0; i < wanted.length; i += BATCH) batches.push(wanted.slice(i, i + BATCH));
    this.pendingData += batches.length;
    await Promise.all([...batches.map((b) => this.loadBatch(gen, b)),
                       this.loadFootprints(gen, jobs.filter((j) => this.footprintPending(j)))]);
    if (gen !== this.generation) return;
    if (this.pendingData === 0) {
      document.body.dataset.plotsReady = "1";
      document.body.dataset.plotsReadyAt = String(performance.now());
      this.opts.onReady?.();
    }
  }

  async loadBatch(gen, jobs) {
    const vars = {metrics: this.metrics};
    jobs.forEach((j, i) => { vars[`i${i}`] = j.id; });
    let data = null, errors = [];
    try {
      ({data, errors} = await gqlRaw(metricsQuery(jobs.length), vars));
    } catch (e) {
      errors = [e.message];
    }
    if (gen !== this.generation) return;
    this.pendingData -= 1;
    jobs.forEach((job, i) => {
      const r = this.rows.get(String(job.id));
      if (!r) return;
      const list = data?.[`j${i}`];
      if (!list) {
        for (const c of Object.values(r.cells)) if (c.querySelector(".plot-wait")) {
          c.replaceChildren(h("div", {class: "plot-empty muted", title: errors.join("; ")}, "Data not available"));
        }
        return;
      }
      this.drawRow(r, list);
    });
  }

  drawRow(r, list) {
    const {job} = r;
    const sc = this.opts.info.subCluster(job.cluster, job.subCluster);
    const plotOpts = this.opts.settings.plotOptions();
    for (const m of this.metrics) {
      const cell = r.cells[m];
      const mc = this.opts.info.metricConfig(job.cluster, job.subCluster, m);
      if (!mc) continue;
      const jm = list.find((x) => x.name === m);
      const series = (jm?.metric.series || []).map((s) => ({key: s.hostname + (s.id ? ":" + s.id : ""),
                                                            label: s.hostname + (s.id ? ` ${s.id}` : ""), data: s.data}));
      const holder = h("div", {class: "plot-holder"});
      cell.replaceChildren(holder);
      r.plots.push(new MetricPlot(holder, {
        metric: m, unit: jm?.metric.unit || mc.unit, timestep: jm?.metric.timestep || mc.timestep, series,
        stats: series.length >= STATS_MIN_SERIES, thresholds: scopeThresholds(mc, sc?.topology, "node"),
        height: PLOT_HEIGHT, ...plotOpts,
      }));
    }
  }
}
