// Users (/monitoring/users/) and projects (/monitoring/projects/): jobsStatistics grouped by user or project for
// the jobs matching the filters, one sortable row each; managers see their projects' users and projects only.

import {filtersToURL, FilterBar, parseFilters, toJobFilters} from "../filters.js";
import {gql, loadInit} from "../gql.js";
import {refresher} from "../timerange.js";
import {$, debounce, errorBox, fill, h, pageData} from "../util.js";

const QUERY = `query($filter: [JobFilter!], $groupBy: Aggregate) {
  jobsStatistics(filter: $filter, groupBy: $groupBy) { id name totalJobs totalWalltime totalCoreHours totalAccHours } }`;

const page = pageData();
const isUsers = page.listType === "USER";
const key = isUsers ? "user" : "project";
const COLUMNS = [
  ["id", isUsers ? "User name" : "Project", "text"],
  ...(isUsers ? [["name", "Name", "text"]] : []),
  ["totalJobs", "Total jobs", "num"], ["totalWalltime", "Total walltime (h)", "num"],
  ["totalCoreHours", "Total core hours", "num"], ["totalAccHours", "Total accelerator hours", "num"],
];

const root = $("[data-stats-list]");
const countEl = $("[data-row-count]");
let rows = [], sort = {field: "totalJobs", order: "DESC"}, generation = 0;
let filters;

function jobListLink(row) {
  const f = {...filters, [key]: row.id, [`${key}Match`]: "eq"};
  return "/monitoring/jobs/" + filtersToURL(f);
}

function render() {
  const dir = sort.order === "ASC" ? 1 : -1;
  const type = COLUMNS.find(([f]) => f === sort.field)?.[2];
  const sorted = [...rows].sort((a, b) => dir * (type === "num" ? (a[sort.field] - b[sort.field])
    : String(a[sort.field] || "").localeCompare(String(b[sort.field] || ""))) || a.id.localeCompare(b.id));
  const head = h("tr", {}, COLUMNS.map(([f, label]) => h("th", {class: f === "id" || f === "name" ? "" : "num"},
    h("button", {type: "button", class: "sort-header" + (sort.field === f ? " active" : ""), dataset: {sortBy: f},
                 title: "Sort", onclick: () => {
                   sort = {field: f, order: sort.field === f && sort.order === "DESC" ? "ASC" : "DESC"};
                   render();
                 }}, label, sort.field === f ? (sort.order === "DESC" ? " ↓" : " ↑") : ""))));
  const body = sorted.map((r) => h("tr", {dataset: {row: r.id}},
    h("td", {}, isUsers ? h("a", {href: `/monitoring/user/${encodeURIComponent(r.id)}`, dataset: {rowLink: ""}}, r.id)
                        : h("a", {href: jobListLink(r), dataset: {rowLink: ""}}, r.id)),
    isUsers ? h("td", {}, r.name || "") : null,
    h("td", {class: "num"}, h("a", {href: jobListLink(r), dataset: {field: "totalJobs"}, title: "Show the jobs"},
                              r.totalJobs.toLocaleString())),
    ["totalWalltime", "totalCoreHours", "totalAccHours"].map((f) => h("td", {class: "num", dataset: {field: f}},
                                                                      r[f].toLocaleString()))));
  fill(root, h("div", {class: "table-scroll"}, h("table", {class: "table stats-list", dataset: {statsTable: ""}},
    h("thead", {}, head), h("tbody", {}, body.length ? body
      : h("tr", {}, h("td", {colspan: COLUMNS.length, class: "empty", dataset: {noRows: ""}}, "Nothing matches the filters."))))));
  countEl.textContent = `${rows.length} ${isUsers ? "user" : "project"}${rows.length === 1 ? "" : "s"}`;
  countEl.dataset.count = String(rows.length);
}

async function load(jobFilters) {
  const gen = ++generation;
  document.body.dataset.listReady = "";
  try {
    const d = await gql(QUERY, {filter: jobFilters, groupBy: page.listType});
    if (gen !== generation) return;
    rows = d.jobsStatistics;
  } catch (e) {
    if (gen === generation) fill(root, errorBox(e.message, "Loading failed"));
    return;
  }
  render();
  document.body.dataset.listReady = "1";
}

async function main() {
  let info, tags;
  try {
    [info, tags] = await Promise.all([loadInit(), gql("{ tags { id type name scope } }").then((d) => d.tags)]);
  } catch (e) {
    fill(root, errorBox(e.message, "Loading failed"));
    return;
  }
  filters = parseFilters(location.search);
  const changed = () => {
    history.replaceState(null, "", location.pathname + filtersToURL(filters));
    load(toJobFilters(filters));
  };
  const toolbar = $("[data-toolbar]");
  const bar = new FilterBar($("[data-filter-pills]"), toolbar, filters, {info, tags, privileged: true, fixed: {}}, changed);
  const current = typeof filters[key] === "string" ? filters[key] : "";
  const search = h("input", {type: "search", placeholder: isUsers ? "Filter by user name" : "Filter by project",
                             value: current, dataset: {field: "name-filter"}});
  search.addEventListener("input", debounce(() => {
    bar.set({[key]: search.value.trim() || null, [`${key}Match`]: "contains"});
  }, 350));
  toolbar.append(search, refresher(() => changed()));
  changed();
}

main();
