// Pieces of a job shared by the job list and the job view: the info card, tag pills and the footprint.

import {fmtDateTime, fmtDuration, fmtValue, h, stateClass, toUnix} from "./util.js";

export const JOB_FIELDS = `id jobId user project cluster subCluster partition startTime duration walltime
  numNodes numHWThreads numAcc energy state shared monitoringStatus arrayJobId SMT
  resources { hostname hwthreads accelerators } tags { id type name scope }
  footprint { name stat value } metaData`;

export function tagScopeClass(scope) {
  return scope === "global" ? "tag-global" : scope === "admin" ? "tag-admin" : "tag-private";
}

export function tagPill(tag, {link = true} = {}) {
  const text = `${tag.type}: ${tag.name}`;
  const cls = `tag ${tagScopeClass(tag.scope)}`;
  const title = `scope: ${tag.scope === "global" || tag.scope === "admin" ? tag.scope : "private"}`;
  return link
    ? h("a", {class: cls, href: `/monitoring/jobs/?tag=${encodeURIComponent(tag.id)}`, title, dataset: {tagId: tag.id}}, text)
    : h("span", {class: cls, title, dataset: {tagId: tag.id}}, text);
}

export function jobName(job) {
  return job.metaData?.jobName || "";
}

/** Live duration of a job (the stored one of running jobs lags). */
export function jobDuration(job) {
  return job.state === "running" ? Math.max(0, Math.floor(Date.now() / 1000) - toUnix(job.startTime)) : job.duration;
}

function resourcesText(job) {
  const hosts = job.resources || [];
  if (job.numNodes === 1 && hosts.length === 1) {
    const parts = [hosts[0].hostname];
    if (job.shared !== "none" || job.numHWThreads) parts.push(`${job.numHWThreads} hwthreads`);
    if (job.numAcc) parts.push(`${job.numAcc} accelerators`);
    return parts.join(", ");
  }
  const parts = [`${job.numNodes} nodes`];
  if (job.numHWThreads) parts.push(`${job.numHWThreads} hwthreads`);
  if (job.numAcc) parts.push(`${job.numAcc} accelerators`);
  return parts.join(", ");
}

/** The "Job info" block: ids, user, project, resources, times and state, tags. */
export function jobInfo(job, {showTags = true, tagSlot = null} = {}) {
  const name = jobName(job);
  const dur = h("span", {class: "job-duration", dataset: {duration: ""}}, fmtDuration(jobDuration(job)));
  return h("div", {class: "job-info", dataset: {jobInfo: job.id}},
    h("div", {class: "job-info-head"},
      h("a", {class: "job-id", href: `/monitoring/job/${job.id}`, dataset: {jobLink: job.id}}, String(job.jobId)),
      job.arrayJobId ? h("span", {class: "muted"}, ` (array ${job.arrayJobId})`) : null,
      name ? h("span", {class: "job-name", title: name}, name) : null),
    h("div", {class: "job-info-row"},
      h("a", {href: `/monitoring/user/${encodeURIComponent(job.user)}`, class: "job-user", title: "User"}, job.user),
      " · ",
      h("a", {href: `/monitoring/jobs/?project=${encodeURIComponent(job.project)}&projectMatch=eq`, class: "job-project",
              title: "Project"}, job.project)),
    h("div", {class: "job-info-row", title: "Cluster, partition, resources"},
      `${job.cluster}${job.subCluster ? " / " + job.subCluster : ""}`,
      job.partition ? ` · ${job.partition}` : "", " · ", h("span", {class: "job-resources"}, resourcesText(job))),
    h("div", {class: "job-info-row"}, h("span", {title: "Start time"}, fmtDateTime(job.startTime))),
    h("div", {class: "job-info-row"},
      h("span", {class: `state-pill ${stateClass(job.state)}`, dataset: {state: job.state}}, job.state), " ", dur,
      job.walltime ? h("span", {class: "muted", title: "Walltime"}, ` / ${fmtDuration(job.walltime)}`) : null),
    showTags ? h("div", {class: "job-tags", dataset: {jobTags: job.id}},
                 (job.tags || []).map((t) => tagPill(t)), tagSlot) : null);
}

/** Update the shown durations of running jobs (called every few seconds by the pages). */
export function tickDurations(root, jobsById) {
  for (const el of root.querySelectorAll("[data-job-info]")) {
    const job = jobsById.get(el.dataset.jobInfo);
    if (job?.state === "running") {
      const d = el.querySelector("[data-duration]");
      if (d) d.textContent = fmtDuration(jobDuration(job));
    }
  }
}

// -- footprint --------------------------------------------------------------------------------

/** Thresholds for a footprint value: scaled to the job's share of a node for shared jobs and non-avg stats. */
export function footprintThresholds(job, stat, mc, topology) {
  const t = {peak: mc.peak, normal: mc.normal ?? mc.peak, caution: mc.caution, alert: mc.alert};
  if (job.shared === "none" || stat === "avg" || !topology?.node?.length) return t;
  const frac = job.numHWThreads / topology.node.length;
  return {peak: Math.round(t.peak * frac), normal: Math.round(t.normal * frac), caution: Math.round(t.caution * frac),
          alert: Math.round(t.alert * frac)};
}

/** cc-backend's classification: alert/caution/normal/peak (above normal)/above peak. */
export function footprintLevel(value, t, lowerIsBetter) {
  if (lowerIsBetter) {
    if (value <= t.peak && value >= t.alert) return "alert";
    if (value < t.alert && value >= t.caution) return "caution";
    if (value < t.caution && value >= 0) return "normal";
    return "error";
  }
  if (value <= t.alert && value >= 0) return "alert";
  if (value <= t.caution && value > t.alert) return "caution";
  if (value <= t.normal && value > t.caution) return "normal";
  if (value <= t.peak && value > t.normal) return "peak";
  return "error";
}

const LEVEL_TEXT = {
  alert: "Footprint value way below the expected normal threshold.",
  caution: "Footprint value below the expected normal threshold.",
  normal: "Footprint value within the expected thresholds.",
  peak: "Footprint value above the expected normal threshold: check for artifacts.",
  error: "Footprint value above the expected peak threshold: check for artifacts!",
};
const IMPACT = {alert: 3, caution: 2, normal: 1, peak: 0, error: -1};

/**
 * Footprint values of a running job from its jobStats answer ([{name, data: {min, avg, max}}]): the statistic
 * each footprint metric of its subcluster names.  The job view and the job list show the same.
 */
export function footprintFromStats(job, stats, info) {
  const byName = new Map((stats || []).map((s) => [s.name, s.data]));
  return (info.subCluster(job.cluster, job.subCluster)?.footprint || []).filter((m) => byName.get(m)).map((m) => {
    const stat = info.footprintStat(m) || "avg";
    return {name: m, stat, value: byName.get(m)[stat] ?? byName.get(m).avg};
  });
}

/**
 * Footprint bars.  `values`: [{name, stat, value}] (the job's footprint, or computed from jobStats while it runs);
 * info: ClusterInfo.
 */
export function footprint(job, values, info) {
  const sc = info.subCluster(job.cluster, job.subCluster);
  const rows = (values || []).map((fp) => {
    const mc = info.metricConfig(job.cluster, job.subCluster, fp.name);
    if (!mc) return {fp, impact: 4, level: "unknown", pct: 0, text: `No configuration for metric ${fp.name}.`};
    const t = footprintThresholds(job, fp.stat, mc, sc?.topology);
    const level = footprintLevel(fp.value, t, mc.lowerIsBetter);
    const pct = t.peak ? Math.min(100, Math.max(0, (fp.value / t.peak) * 100)) : 0;
    const over = t.peak > 0 && fp.value > t.peak;
    return {fp, mc, t, level, pct, over, impact: IMPACT[level],
            text: over ? `${LEVEL_TEXT[level]} ${(fp.value / t.peak).toFixed(1)}× the peak.` : LEVEL_TEXT[level]};
  }).sort((a, b) => a.impact - b.impact || a.fp.name.localeCompare(b.fp.name));
  if (!rows.length) return h("div", {class: "footprint footprint-empty muted"}, "No footprint yet.");
  return h("div", {class: "footprint", dataset: {footprint: job.id}},
    rows.map((r) => h("div", {class: `fp-row fp-${r.level}${r.over ? " fp-over" : ""}`, title: r.text,
                              dataset: {fpMetric: r.fp.name, level: r.level, overPeak: r.over ? "1" : ""}},
      h("div", {class: "fp-label"}, h("span", {}, `${r.fp.name} (${r.fp.stat})`),
        h("span", {class: "fp-value"}, r.over ? h("span", {class: "fp-over-mark"}, "▲ over peak ") : null,
          `${fmtValue(r.fp.value, r.mc?.unit)}` + (r.t ? ` / ${fmtValue(r.t.peak, r.mc.unit)}` : ""))),
      h("div", {class: "fp-bar"}, h("div", {class: "fp-fill", style: {width: r.pct.toFixed(1) + "%"}})))));
}
