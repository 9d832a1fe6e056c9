// GraphQL client: POST /query with the session cookie (cc-backend's schema).

export class GraphQLError extends Error {
  constructor(messages, data = null) {
    super(messages.join("; "));
    this.name = "GraphQLError";
    this.messages = messages;
    this.data = data;
  }
}

function toLogin() {
  const here = location.pathname + location.search;
  location.href = "/login?redirect=" + encodeURIComponent(here);
}

/** Run a query; returns {data, errors} (errors: list of messages, maybe empty) without throwing on field errors. */
export async function gqlRaw(query, variables = {}, {signal} = {}) {
  let resp;
  try {
    resp = await fetch("/query", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      credentials: "same-origin",
      body: JSON.stringify({query, variables}),
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new GraphQLError([`server not reachable: ${e.message}`]);
  }
  if (resp.status === 401) {
    toLogin();
    throw new GraphQLError(["not logged in"]);
  }
  let doc;
  try {
    doc = await resp.json();
  } catch (e) {
    throw new GraphQLError([`bad answer from the server (HTTP ${resp.status})`]);
  }
  const errors = (doc.errors || []).map((e) => e.message + (e.path ? ` (at ${e.path.join(".")})` : ""));
  if (!resp.ok && !doc.data) throw new GraphQLError(errors.length ? errors : [`HTTP ${resp.status}`]);
  return {data: doc.data || null, errors};
}

/** Run a query that must succeed completely; throws GraphQLError otherwise. */
export async function gql(query, variables = {}, opts = {}) {
  const {data, errors} = await gqlRaw(query, variables, opts);
  if (errors.length) throw new GraphQLError(errors, data);
  return data;
}

export const CLUSTERS_QUERY = `{
  clusters { name partitions subClusters { name nodes numberOfNodes processorType socketsPerNode coresPerSocket
    threadsPerCore flopRateScalar { unit { base prefix } value } flopRateSimd { unit { base prefix } value }
    memoryBandwidth { unit { base prefix } value }
    topology { node socket memoryDomain die core accelerators { id type model } }
    metricConfig { name unit { base prefix } scope aggregation timestep peak normal caution alert lowerIsBetter }
    footprint } }
  globalMetrics { name unit { base prefix } scope footprint availability { cluster subClusters } }
  userConfig
}`;

let initPromise = null;

/** Clusters, subclusters with topology and metric configuration, the global metric list and the user's settings. */
export function loadInit() {
  if (!initPromise) {
    initPromise = gql(CLUSTERS_QUERY).then((d) => new ClusterInfo(d));
    initPromise.catch(() => { initPromise = null; });
  }
  return initPromise;
}

/** Lookups over the `clusters` and `globalMetrics` answer. */
export class ClusterInfo {
  constructor(d) {
    this.clusters = d.clusters || [];
    this.globalMetrics = d.globalMetrics || [];
    this.userConfig = d.userConfig || {};
    this.byName = new Map(this.clusters.map((c) => [c.name, c]));
  }

  cluster(name) { return this.byName.get(name) || null; }

  subCluster(cluster, sub) {
    const c = this.cluster(cluster);
    if (!c) return null;
    return c.subClusters.find((s) => s.name === sub) || c.subClusters[0] || null;
  }

  /** Effective metric configuration on a subcluster (thresholds, scope, unit, timestep). */
  metricConfig(cluster, sub, metric) {
    const sc = this.subCluster(cluster, sub);
    return sc ? sc.metricConfig.find((m) => m.name === metric) || null : null;
  }

  /** Metric names of a cluster (subcluster if given), in configuration order. */
  metricNames(cluster, sub = null) {
    const c = this.cluster(cluster);
    if (!c) return [];
    const subs = sub ? c.subClusters.filter((s) => s.name === sub) : c.subClusters;
    const names = [];
    for (const s of subs) for (const m of s.metricConfig) if (!names.includes(m.name)) names.push(m.name);
    return names;
  }

  /** All metric names, or those of one cluster. */
  allMetrics(cluster = null) {
    return this.globalMetrics.filter((m) => !cluster || m.availability.some((a) => a.cluster === cluster))
      .map((m) => m.name);
  }

  /** Footprint statistic of a metric ("avg", "max", ...) or null. */
  footprintStat(metric) {
    return this.globalMetrics.find((m) => m.name === metric)?.footprint || null;
  }

  globalMetric(metric) { return this.globalMetrics.find((m) => m.name === metric) || null; }

  /** Whether any node of the cluster has accelerators (else accelerator counts are all zero: not worth a plot). */
  hasAccelerators(cluster) {
    return (this.cluster(cluster)?.subClusters || []).some((s) => (s.topology?.accelerators || []).length > 0);
  }
}
