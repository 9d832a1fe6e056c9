// Job filters: a filter state, its URL form (cc-backend's query parameters, so links are interchangeable),
// its GraphQL form (a JobFilter list), and the pill bar with one editor dialog per filter kind.
//
// URL parameters: cluster, partition, state (repeated), startTime (last6h|last24h|last7d|last30d or FROM-TO unix
// seconds), duration / numNodes / numHWThreads / numAccelerators / energy (A-B, lessthan-N, morethan-N),
// node, tag (repeated ids), stat (repeated FIELD-A-B, FIELD like flops_any_avg), user (repeated), project,
// projectMatch, jobName, jobId (repeated), arrayJobId, dbId (repeated).

import {dialog, fill, fmtDuration, h} from "./util.js";

export const JOB_STATES = ["running", "completed", "failed", "cancelled", "timeout", "preempted", "out_of_memory",
                           "node_fail", "boot_fail", "deadline", "pending", "suspended"];
export const START_RANGES = {last6h: "Last 6 hours", last24h: "Last 24 hours", last7d: "Last 7 days",
                             last30d: "Last 30 days"};
const RANGE_KEYS = ["duration", "numNodes", "numHWThreads", "numAccelerators", "energy"];

export function emptyFilters() {
  return {cluster: null, partition: null, states: [], startTime: null, duration: null, tags: [], node: null,
          numNodes: null, numHWThreads: null, numAccelerators: null, energy: null, stats: [], user: null,
          userMatch: "contains", project: null, projectMatch: "contains", jobName: null, jobId: null,
          arrayJobId: null, dbId: []};
}

function parseRange(text) {
  const parts = String(text).split("-");
  if (parts.length !== 2) return null;
  const [a, b] = parts;
  if (a === "lessthan") return Number.isFinite(+b) ? {from: 0, to: +b} : null;
  if (a === "morethan") return Number.isFinite(+b) ? {from: +b, to: 0} : null;
  return Number.isFinite(+a) && Number.isFinite(+b) && a !== "" && b !== "" ? {from: +a, to: +b} : null;
}

function rangeText(r) {
  if (!r.from) return `lessthan-${r.to}`;
  if (!r.to) return `morethan-${r.from}`;
  return `${r.from}-${r.to}`;
}

/** Filter state from URL search parameters. */
export function parseFilters(search) {
  const q = new URLSearchParams(search);
  const f = emptyFilters();
  f.cluster = q.get("cluster") || null;
  f.partition = q.get("partition") || null;
  f.states = q.getAll("state").filter((s) => s);
  const st = q.get("startTime");
  if (st) {
    if (st in START_RANGES) f.startTime = {range: st};
    else {
      const r = parseRange(st);
      if (r) f.startTime = {from: r.from, to: r.to};
    }
  }
  for (const k of RANGE_KEYS) {
    const v = q.get(k);
    if (v) f[k] = parseRange(v);
  }
  f.node = q.get("node") || null;
  f.tags = q.getAll("tag").filter((t) => /^\d+$/.test(t));
  f.stats = q.getAll("stat").map((s) => {
    const parts = s.split("-");
    if (parts.length !== 3) return null;
    const r = parseRange(`${parts[1]}-${parts[2]}`);
    return r && /^[A-Za-z0-9_]+$/.test(parts[0]) ? {field: parts[0], ...r} : null;
  }).filter(Boolean);
  const users = q.getAll("user").filter((u) => u);
  if (users.length === 1) { f.user = users[0]; f.userMatch = q.get("userMatch") || "contains"; }
  else if (users.length > 1) { f.user = users; f.userMatch = "in"; }
  f.project = q.get("project") || null;
  f.projectMatch = q.get("projectMatch") || (f.project ? "eq" : "contains");
  f.jobName = q.get("jobName") || null;
  const ids = q.getAll("jobId").filter((j) => j);
  f.jobId = ids.length > 1 ? ids : ids[0] || null;
  f.arrayJobId = /^\d+$/.test(q.get("arrayJobId") || "") ? +q.get("arrayJobId") : null;
  f.dbId = q.getAll("dbId").filter((d) => /^\d+$/.test(d));
  return f;
}

/** URL search string ("?..." or "") of a filter state (and extra parameters such as sorting). */
export function filtersToURL(f, extra = {}) {
  const q = new URLSearchParams();
  if (f.cluster) q.set("cluster", f.cluster);
  if (f.partition) q.set("partition", f.partition);
  for (const s of f.states) q.append("state", s);
  if (f.startTime) q.set("startTime", f.startTime.range || `${f.startTime.from || 0}-${f.startTime.to || 0}`);
  for (const k of RANGE_KEYS) if (f[k]) q.set(k, rangeText(f[k]));
  if (f.node) q.set("node", f.node);
  for (const t of f.tags) q.append("tag", t);
  for (const s of f.stats) q.append("stat", `${s.field}-${s.from || 0}-${s.to || 0}`);
  if (Array.isArray(f.user)) for (const u of f.user) q.append("user", u);
  else if (f.user) {
    q.set("user", f.user);
    if (f.userMatch && f.userMatch !== "contains") q.set("userMatch", f.userMatch);
  }
  if (f.project) { q.set("project", f.project); q.set("projectMatch", f.projectMatch || "contains"); }
  if (f.jobName) q.set("jobName", f.jobName);
  if (Array.isArray(f.jobId)) for (const j of f.jobId) q.append("jobId", j);
  else if (f.jobId) q.set("jobId", f.jobId);
  if (f.arrayJobId) q.set("arrayJobId", String(f.arrayJobId));
  for (const d of f.dbId) q.append("dbId", d);
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

const iso = (unix) => new Date(unix * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

/** GraphQL JobFilter list of a filter state; `fixed` adds conditions the page imposes (a user's job list). */
export function toJobFilters(f, fixed = {}) {
  const out = [];
  if (f.cluster) out.push({cluster: {eq: f.cluster}});
  if (f.partition) out.push({partition: {eq: f.partition}});
  if (f.states.length) out.push({state: f.states});
  if (f.startTime?.range) out.push({startTime: {range: f.startTime.range}});
  else if (f.startTime) {
    const t = {};
    if (f.startTime.from) t.from = iso(f.startTime.from);
    if (f.startTime.to) t.to = iso(f.startTime.to);
    out.push({startTime: t});
  }
  for (const k of ["duration", "numNodes", "numHWThreads", "numAccelerators"]) {
    if (f[k]) out.push({[k]: {from: Math.round(f[k].from || 0), to: Math.round(f[k].to || 0)}});
  }
  if (f.energy) out.push({energy: {from: f.energy.from || 0, to: f.energy.to || 0}});
  if (f.node) out.push({node: {contains: f.node}});
  if (f.tags.length) out.push({tags: f.tags});
  if (f.stats.length) {
    out.push({metricStats: f.stats.map((s) => ({metricName: s.field, range: {from: s.from || 0, to: s.to || 0}}))});
  }
  if (Array.isArray(f.user)) out.push({user: {in: f.user}});
  else if (f.user) out.push({user: {[f.userMatch === "eq" ? "eq" : "contains"]: f.user}});
  if (f.project) out.push({project: {[f.projectMatch === "eq" ? "eq" : "contains"]: f.project}});
  if (f.jobName) out.push({jobName: {contains: f.jobName}});
  if (Array.isArray(f.jobId)) out.push({jobId: {in: f.jobId}});
  else if (f.jobId) out.push({jobId: {eq: f.jobId}});
  if (f.arrayJobId) out.push({arrayJobId: f.arrayJobId});
  if (f.dbId.length) out.push({dbId: f.dbId});
  if (fixed.user) out.push({user: {eq: fixed.user}});
  return out;
}

// -- pills and editors -----------------------------------------------------------------------

const hhmm = (sec) => `${String(Math.floor(sec / 3600)).padStart(2, "0")}:${String(Math.floor((sec % 3600) / 60)).padStart(2, "0")}`;

function parseHHMM(text) {
  const m = /^\s*(\d+)(?::(\d{1,2}))?\s*$/.exec(text || "");
  return m ? (+m[1]) * 3600 + (+(m[2] || 0)) * 60 : null;
}

function localInput(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function rangeLabel(r, fmt = (v) => v) {
  if (!r.from) return `≤ ${fmt(r.to)}`;
  if (!r.to) return `≥ ${fmt(r.from)}`;
  return `${fmt(r.from)} – ${fmt(r.to)}`;
}

function numberPair(label, r, step = "1") {
  const from = h("input", {type: "number", min: "0", step, value: r?.from ? String(r.from) : "", placeholder: "from",
                           dataset: {field: label + "-from"}});
  const to = h("input", {type: "number", min: "0", step, value: r?.to ? String(r.to) : "", placeholder: "to",
                         dataset: {field: label + "-to"}});
  const read = () => {
    const a = parseFloat(from.value) || 0, b = parseFloat(to.value) || 0;
    return a || b ? {from: a, to: b} : null;
  };
  return {el: h("div", {class: "range-pair"}, h("span", {class: "range-label"}, label), from, "–", to), read};
}

/**
 * The filter pill bar.  ctx: {info (ClusterInfo), tags: [Tag], privileged, fixed: {user, cluster}} (fixed: set by
 * the page, not removable).
 * onChange(filters) runs after every edit.
 */
export class FilterBar {
  constructor(pillsEl, menuHost, filters, ctx, onChange) {
    this.pillsEl = pillsEl;
    this.filters = filters;
    this.ctx = ctx;
    this.onChange = onChange;
    this.kinds = this.editorKinds();
    menuHost.append(this.menu());
    this.renderPills();
  }

  set(changes) {
    Object.assign(this.filters, changes);
    this.renderPills();
    this.onChange(this.filters);
  }

  editorKinds() {
    return [
      ["cluster", "Cluster/Partition"], ["states", "Job states"], ["startTime", "Start time"],
      ["duration", "Duration"], ["tags", "Tags"], ["resources", "Resources"], ["energy", "Energy"],
      ["stats", "Statistics"],
    ];
  }

  menu() {
    const details = h("details", {class: "dropdown filter-menu", dataset: {filterMenu: ""}},
      h("summary", {class: "btn"}, "Filters"),
      h("div", {class: "dropdown-menu"},
        this.kinds.map(([kind, label]) => h("button", {type: "button", class: "dropdown-item", dataset: {filterKind: kind},
          onclick: () => { details.open = false; this.edit(kind); }}, label)),
        h("div", {class: "dropdown-divider"}),
        h("div", {class: "dropdown-header"}, "Start time"),
        Object.entries(START_RANGES).map(([k, label]) => h("button", {type: "button", class: "dropdown-item",
          dataset: {quickRange: k}, onclick: () => { details.open = false; this.set({startTime: {range: k}}); }}, label))));
    return details;
  }

  pills() {
    const f = this.filters, out = [];
    if (f.cluster && !this.ctx.fixed?.cluster) {
      out.push(["cluster", `Cluster: ${f.cluster}${f.partition ? ` (${f.partition})` : ""}`]);
    } else if (f.partition) out.push(["cluster", `Partition: ${f.partition}`]);
    if (f.states.length) out.push(["states", `State: ${f.states.join(", ")}`]);
    if (f.startTime) {
      out.push(["startTime", f.startTime.range ? START_RANGES[f.startTime.range]
        : `Start: ${f.startTime.from ? new Date(f.startTime.from * 1000).toLocaleString() : "…"} – ` +
          `${f.startTime.to ? new Date(f.startTime.to * 1000).toLocaleString() : "…"}`]);
    }
    if (f.duration) out.push(["duration", `Duration ${rangeLabel(f.duration, (s) => fmtDuration(s))}`]);
    if (f.tags.length) {
      const names = f.tags.map((id) => {
        const t = this.ctx.tags.find((x) => String(x.id) === String(id));
        return t ? `${t.type}:${t.name}` : `#${id}`;
      });
      out.push(["tags", `Tags: ${names.join(", ")}`]);
    }
    if (f.node) out.push(["resources", `Node: ${f.node}`]);
    if (f.numNodes) out.push(["resources", `Nodes ${rangeLabel(f.numNodes)}`]);
    if (f.numHWThreads) out.push(["resources", `HWThreads ${rangeLabel(f.numHWThreads)}`]);
    if (f.numAccelerators) out.push(["resources", `Accelerators ${rangeLabel(f.numAccelerators)}`]);
    if (f.energy) out.push(["energy", `Energy ${rangeLabel(f.energy)} kWh`]);
    for (const s of f.stats) out.push(["stats", `${s.field} ${rangeLabel(s)}`]);
    if (f.user && !this.ctx.fixed?.user) {
      out.push(["user", `User ${f.userMatch === "eq" ? "=" : Array.isArray(f.user) ? "in" : "contains"} ` +
                        `${[].concat(f.user).join(", ")}`]);
    }
    if (f.project) out.push(["project", `Project ${f.projectMatch === "eq" ? "=" : "contains"} ${f.project}`]);
    if (f.jobName) out.push(["jobName", `Job name contains ${f.jobName}`]);
    if (f.jobId) out.push(["jobId", `Job id: ${[].concat(f.jobId).join(", ")}`]);
    if (f.arrayJobId) out.push(["arrayJobId", `Array job ${f.arrayJobId}`]);
    if (f.dbId.length) out.push(["dbId", `${f.dbId.length} selected job(s)`]);
    return out;
  }

  renderPills() {
    const editable = new Set(this.kinds.map(([k]) => k));
    this.pillsEl.replaceChildren(...this.pills().map(([kind, label]) => h("span", {class: "pill", dataset: {pill: kind}},
      editable.has(kind)
        ? h("button", {type: "button", class: "pill-label", title: "Edit filter", onclick: () => this.edit(kind)}, label)
        : h("span", {class: "pill-label"}, label),
      h("button", {type: "button", class: "pill-remove", title: "Remove filter", "aria-label": "Remove filter",
                   onclick: () => this.set(this.cleared(kind))}, "×"))));
  }

  cleared(kind) {
    switch (kind) {
      case "cluster": return {cluster: this.ctx.fixed?.cluster || null, partition: null};
      case "states": return {states: []};
      case "tags": return {tags: []};
      case "resources": return {node: null, numNodes: null, numHWThreads: null, numAccelerators: null};
      case "stats": return {stats: []};
      case "user": return {user: null, userMatch: "contains"};
      case "project": return {project: null, projectMatch: "contains"};
      case "dbId": return {dbId: []};
      default: return {[kind]: null};
    }
  }

  async edit(kind) {
    const editor = this[`edit_${kind}`]?.();
    if (!editor) return;
    const title = this.kinds.find(([k]) => k === kind)?.[1] || kind;
    const choice = await dialog(`Filter: ${title}`, editor.el,
                                [["Apply", "apply", "btn-primary"], ["Remove", "remove"], ["Cancel", null]]);
    if (choice === "apply") this.set(editor.read());
    else if (choice === "remove") this.set(this.cleared(kind));
  }

  edit_cluster() {
    const f = this.filters;
    const fixed = this.ctx.fixed?.cluster;
    const clusterSel = h("select", {dataset: {field: "cluster"}, disabled: !!fixed},
      fixed ? null : h("option", {value: ""}, "Any cluster"),
      this.ctx.info.clusters.filter((c) => !fixed || c.name === fixed)
        .map((c) => h("option", {value: c.name, selected: c.name === f.cluster}, c.name)));
    const partSel = h("select", {dataset: {field: "partition"}});
    const fillPartitions = () => {
      const c = this.ctx.info.cluster(clusterSel.value);
      const parts = c ? c.partitions : [...new Set(this.ctx.info.clusters.flatMap((x) => x.partitions))];
      fill(partSel, h("option", {value: ""}, "Any partition"),
        parts.map((p) => h("option", {value: p, selected: p === f.partition}, p)));
    };
    clusterSel.addEventListener("change", fillPartitions);
    fillPartitions();
    return {el: h("div", {class: "form"}, h("label", {}, "Cluster ", clusterSel), h("label", {}, "Partition ", partSel)),
            read: () => ({cluster: clusterSel.value || null, partition: partSel.value || null})};
  }

  edit_states() {
    const boxes = JOB_STATES.map((s) => h("label", {class: "check"},
      h("input", {type: "checkbox", value: s, checked: this.filters.states.includes(s), dataset: {state: s}}), " ", s));
    return {el: h("div", {class: "check-grid"}, boxes),
            read: () => ({states: boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value)})};
  }

  edit_startTime() {
    const st = this.filters.startTime || {};
    const radios = Object.entries(START_RANGES).map(([k, label]) => h("label", {class: "check"},
      h("input", {type: "radio", name: "st-range", value: k, checked: st.range === k, dataset: {range: k}}), " ", label));
    const custom = h("input", {type: "radio", name: "st-range", value: "", checked: !st.range && !!(st.from || st.to)});
    const from = h("input", {type: "datetime-local", value: localInput(st.from), dataset: {field: "from"}});
    const to = h("input", {type: "datetime-local", value: localInput(st.to), dataset: {field: "to"}});
    for (const i of [from, to]) i.addEventListener("input", () => { custom.checked = true; });
    return {
      el: h("div", {class: "form"}, radios, h("label", {class: "check"}, custom, " Custom range"),
            h("div", {class: "range-pair"}, from, "–", to)),
      read: () => {
        const r = radios.map((l) => l.querySelector("input")).find((i) => i.checked);
        if (r) return {startTime: {range: r.value}};
        const a = from.value ? Math.floor(new Date(from.value).getTime() / 1000) : 0;
        const b = to.value ? Math.floor(new Date(to.value).getTime() / 1000) : 0;
        return {startTime: a || b ? {from: a, to: b} : null};
      },
    };
  }

  edit_duration() {
    const d = this.filters.duration;
    const mode = !d ? "less" : !d.from ? "less" : !d.to ? "more" : "between";
    const radio = (v, label) => h("label", {class: "check"},
      h("input", {type: "radio", name: "dur-mode", value: v, checked: mode === v}), " ", label);
    const a = h("input", {type: "text", placeholder: "hh:mm", dataset: {field: "duration-a"},
                          value: d ? hhmm(mode === "more" ? d.from : mode === "less" ? d.to : d.from) : ""});
    const b = h("input", {type: "text", placeholder: "hh:mm", dataset: {field: "duration-b"},
                          value: d && mode === "between" ? hhmm(d.to) : ""});
    const el = h("div", {class: "form"}, radio("less", "Less than"), radio("more", "More than"),
                 radio("between", "Between (second field: upper bound)"), h("div", {class: "range-pair"}, a, "–", b));
    return {el, read: () => {
      const m = el.querySelector("input[name=dur-mode]:checked")?.value || "less";
      const x = parseHHMM(a.value), y = parseHHMM(b.value);
      if (x === null) return {duration: null};
      if (m === "less") return {duration: {from: 0, to: x}};
      if (m === "more") return {duration: {from: x, to: 0}};
      return {duration: y === null ? {from: x, to: 0} : {from: x, to: y}};
    }};
  }

  edit_tags() {
    const search = h("input", {type: "search", placeholder: "Search tags", dataset: {field: "tag-search"}});
    const items = this.ctx.tags.map((t) => h("label", {class: "check tag-check", dataset: {tagId: t.id}},
      h("input", {type: "checkbox", value: t.id, checked: this.filters.tags.includes(String(t.id))}), " ",
      h("span", {class: `tag tag-${t.scope === "global" ? "global" : t.scope === "admin" ? "admin" : "private"}`},
        `${t.type}: ${t.name}`)));
    search.addEventListener("input", () => {
      const q = search.value.toLowerCase();
      for (const it of items) it.hidden = q && !it.textContent.toLowerCase().includes(q);
    });
    return {el: h("div", {class: "form"}, search, h("div", {class: "check-list"}, items.length ? items : "No tags.")),
            read: () => ({tags: items.map((i) => i.querySelector("input")).filter((i) => i.checked).map((i) => String(i.value))})};
  }

  edit_resources() {
    const f = this.filters;
    const node = h("input", {type: "text", value: f.node || "", placeholder: "host name (contains)", dataset: {field: "node"}});
    const nodes = numberPair("Nodes", f.numNodes), threads = numberPair("HWThreads", f.numHWThreads),
          accs = numberPair("Accelerators", f.numAccelerators);
    return {el: h("div", {class: "form"}, h("label", {}, "Named node ", node), nodes.el, threads.el, accs.el),
            read: () => ({node: node.value.trim() || null, numNodes: nodes.read(), numHWThreads: threads.read(),
                          numAccelerators: accs.read()})};
  }

  edit_energy() {
    const e = numberPair("Total energy (kWh)", this.filters.energy, "any");
    return {el: h("div", {class: "form"}, e.el), read: () => ({energy: e.read()})};
  }

  edit_stats() {
    const metrics = this.ctx.info.globalMetrics.filter((m) => m.footprint &&
      (!this.filters.cluster || m.availability.some((a) => a.cluster === this.filters.cluster)));
    const rows = metrics.map((m) => {
      const field = `${m.name}_${m.footprint}`;
      const cur = this.filters.stats.find((s) => s.field === field);
      const pair = numberPair(`${m.name} (${m.footprint})`, cur, "any");
      pair.el.dataset.stat = field;
      return {field, pair};
    });
    return {el: h("div", {class: "form"}, rows.length ? rows.map((r) => r.pair.el) : "No footprint metrics configured."),
            read: () => ({stats: rows.map((r) => ({field: r.field, r: r.pair.read()})).filter((x) => x.r)
              .map((x) => ({field: x.field, ...x.r}))})};
  }
}

/** The text search of the toolbar: job name, project, or (for privileged users) user. */
export function searchBox(filters, privileged, fixedUser, onSearch) {
  const kinds = [["jobName", "Job name"], ["project", "Project"]];
  if (privileged && !fixedUser) kinds.push(["user", "User"]);
  const current = kinds.find(([k]) => filters[k] && !Array.isArray(filters[k])) || kinds[0];
  const sel = h("select", {dataset: {field: "search-kind"}}, kinds.map(([k, l]) => h("option", {value: k, selected: k === current[0]}, l)));
  const input = h("input", {type: "search", placeholder: "Search…", value: filters[current[0]] && !Array.isArray(filters[current[0]]) ? filters[current[0]] : "",
                            dataset: {field: "search"}});
  let timer = null, active = current[0];
  const fire = () => {
    const changes = {[active]: null};   // only the search's own previous condition is replaced
    active = sel.value;
    changes[active] = input.value.trim() || null;
    if (active === "project") changes.projectMatch = "contains";
    if (active === "user") changes.userMatch = "contains";
    onSearch(changes);
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(fire, 350); });
  sel.addEventListener("change", () => { if (input.value.trim()) fire(); });
  return h("div", {class: "search-box"}, sel, input);
}
