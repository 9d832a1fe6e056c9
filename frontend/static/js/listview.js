// The job list page's body, shared by the job list (/monitoring/jobs/) and a user's jobs (/monitoring/user/<name>):
// filters from the URL, the toolbar (filters, search, sorting, metrics, reload) and the list.

import {filtersToURL, FilterBar, parseFilters, searchBox, toJobFilters} from "./filters.js";
import {gql, loadInit} from "./gql.js";
import {JobCompare, MAX_COMPARE} from "./jobcompare.js";
import {DEFAULT_SORT, JobList, SORT_COLUMNS} from "./joblist.js";
import {selectMetrics} from "./select.js";
import {loadSettings} from "./settings.js";
import {refresher} from "./timerange.js";
import {$, errorBox, h, pageData} from "./util.js";

function parseSort(q, footprintFields) {
  const field = q.get("sort"), order = (q.get("order") || "DESC").toUpperCase();
  if (!field) return {...DEFAULT_SORT};
  const dir = order === "ASC" ? "ASC" : "DESC";
  if (SORT_COLUMNS.some(([f]) => f === field)) return {field, type: "col", order: dir};
  if (footprintFields.includes(field)) return {field, type: "foot", order: dir};
  return {...DEFAULT_SORT};
}

/**
 * Build the list into the page's [data-toolbar], [data-filter-pills], [data-job-count] and [data-job-list].
 * opts: {fixedUser, onChange(jobFilters) after every filter change and reload}.  Resolves to
 * {info, settings, filters, list, jobFilters()} or null when loading failed.
 */
export async function jobListView({fixedUser = null, onChange = null} = {}) {
  const page = pageData();
  const root = $("[data-job-list]");
  let info, settings, tags;
  try {
    [info, settings, tags] = await Promise.all([loadInit(), loadSettings(),
                                                gql("{ tags { id type name scope } }").then((d) => d.tags)]);
  } catch (e) {
    root.replaceChildren(errorBox(e.message, "Loading failed"));
    return null;
  }
  const privileged = page.user.level >= 3;
  const filters = parseFilters(location.search);
  const footprintFields = info.globalMetrics.filter((m) => m.footprint).map((m) => `${m.name}_${m.footprint}`);
  const sort = parseSort(new URLSearchParams(location.search), footprintFields);
  const jobFilters = () => toJobFilters(filters, {user: fixedUser});

  const metricsFor = () => settings.get("metricConfig_jobListMetrics", filters.cluster, filters.partition);
  const available = () => info.globalMetrics.filter((m) => !filters.cluster ||
      m.availability.some((a) => a.cluster === filters.cluster))
    .map((m) => ({name: m.name, note: m.availability.map((a) => a.cluster).join(", ")}));
  const visibleMetrics = () => metricsFor().filter((m) => available().some((a) => a.name === m));

  const countEl = $("[data-job-count]");
  const list = new JobList(root, {
    info, settings, sort,
    filters: jobFilters,
    metrics: visibleMetrics(),
    showFootprint: settings.get("jobList_showFootprint", filters.cluster),
    usePaging: settings.get("jobList_usePaging"),
    itemsPerPage: Number(settings.get("plot_list_jobsPerPage")) || 50,
    maxSelected: MAX_COMPARE,
    onSelect: (jobs) => compareUI.selected(jobs),
    onCount: (n) => { countEl.textContent = `${n} job${n === 1 ? "" : "s"}`; countEl.dataset.count = n; },
  });

  const updateURL = () => {
    const extra = sort.field === DEFAULT_SORT.field && sort.order === DEFAULT_SORT.order ? {}
      : {sort: sort.field, order: sort.order};
    history.replaceState(null, "", location.pathname + filtersToURL(filters, extra));
  };
  const reload = () => {
    onChange?.(jobFilters());
    return list.reload();
  };
  const changed = () => {
    updateURL();
    list.metrics = visibleMetrics();
    return reload();
  };

  // toolbar
  const toolbar = $("[data-toolbar]");
  const bar = new FilterBar($("[data-filter-pills]"), toolbar, filters, {info, tags, privileged, fixed: {user: fixedUser}},
                            changed);
  toolbar.append(searchBox(filters, privileged, fixedUser, (changes) => bar.set(changes)));

  const sortSel = h("select", {dataset: {field: "sort"}, title: "Sort by",
    onchange: () => {
      const v = sortSel.value;
      sort.field = v;
      sort.type = footprintFields.includes(v) ? "foot" : "col";
      list.sort = sort;
      changed();
    }},
    SORT_COLUMNS.map(([f, label]) => h("option", {value: f, selected: sort.field === f}, label)),
    footprintFields.map((f) => h("option", {value: f, selected: sort.field === f}, f)));
  const dirBtn = h("button", {type: "button", class: "btn", title: "Sort direction", dataset: {sortOrder: sort.order},
    onclick: () => {
      sort.order = sort.order === "DESC" ? "ASC" : "DESC";
      dirBtn.textContent = sort.order === "DESC" ? "↓" : "↑";
      dirBtn.dataset.sortOrder = sort.order;
      changed();
    }}, sort.order === "DESC" ? "↓" : "↑");
  toolbar.append(h("div", {class: "toolbar-group"}, h("span", {class: "muted"}, "Sort"), sortSel, dirBtn));

  toolbar.append(h("button", {type: "button", class: "btn", dataset: {selectMetrics: ""}, onclick: async () => {
    const chosen = await selectMetrics("Metrics shown in the job list" + (filters.cluster ? ` (${filters.cluster})` : ""),
      available(), metricsFor(), [{key: "footprint", label: "Show footprint column", checked: list.showFootprint}]);
    if (!chosen) return;
    try {
      await settings.set("metricConfig_jobListMetrics", chosen.metrics, filters.cluster);
      await settings.set("jobList_showFootprint", chosen.options.footprint);
    } catch (e) {
      root.prepend(errorBox(e.message, "Saving the selection failed"));
    }
    list.showFootprint = chosen.options.footprint;
    changed();
  }}, "Metrics"));

  toolbar.append(refresher(() => reload()));
  const compareUI = compareMode(toolbar, root, list, info);

  updateURL();
  const first = reload();
  const view = {info, settings, filters, list, jobFilters, bar, reload, changed, ready: first};
  return view;
}

/**
 * The compare mode of the list (as cc-backend's): "Compare" shows a checkbox per row, "Compare N jobs" (2 to
 * MAX_COMPARE selected) replaces the list by the comparison, "Back to list" returns to the list and its selection.
 */
function compareMode(toolbar, root, list, info) {
  const view = h("div", {class: "job-compare", hidden: true, dataset: {jobCompare: ""}});
  root.after(view);
  const compare = new JobCompare(view, {info, metrics: () => list.metrics});
  let chosen = [];
  const go = h("button", {type: "button", class: "btn btn-primary", hidden: true, disabled: true, dataset: {compareGo: ""},
    onclick: () => {
      if (!view.hidden) return leave();
      root.hidden = true;
      view.hidden = false;
      go.textContent = "Back to list";
      toggle.disabled = true;
      compare.show(chosen.map((j) => j.id), chosen);
    }}, "Compare 0 jobs");
  const leave = () => {
    compare.destroy();
    view.hidden = true;
    view.replaceChildren();
    root.hidden = false;
    toggle.disabled = false;
    selected(chosen);
  };
  const toggle = h("button", {type: "button", class: "btn", dataset: {compareMode: ""}, onclick: () => {
    const on = !root.classList.contains("selecting");
    root.classList.toggle("selecting", on);
    toggle.textContent = on ? "Cancel compare" : "Compare";
    go.hidden = !on;
    if (!on) list.clearSelected();
  }}, "Compare");
  const selected = (jobs) => {
    chosen = jobs;
    go.textContent = `Compare ${jobs.length} job${jobs.length === 1 ? "" : "s"}`;
    go.disabled = jobs.length < 2;
    go.title = jobs.length >= MAX_COMPARE ? `At most ${MAX_COMPARE} jobs can be compared` : "Select at least two jobs";
  };
  toolbar.append(h("div", {class: "toolbar-group"}, toggle, go));
  return {selected};
}
