// Metric scopes: which scopes a metric can be shown at (node down to its native scope), ordered by granularity.

export const GRANULARITY = {node: 10, socket: 5, die: 4.5, memoryDomain: 4, core: 3, hwthread: 2, accelerator: 1};
const CPU_SCOPES = ["node", "socket", "memoryDomain", "die", "core", "hwthread"];

/** Scopes a metric can be shown at on a subcluster: node down to its native scope (archives hold those two). */
export function scopesOf(mc, topology, archived = false) {
  if (archived) return [...new Set(["node", mc.scope])];
  if (mc.scope === "accelerator") return topology?.accelerators?.length ? ["node", "accelerator"] : ["node"];
  return CPU_SCOPES.filter((s) => GRANULARITY[s] >= (GRANULARITY[mc.scope] ?? 10) &&
    (s === "node" || s === "hwthread" || (topology?.[s]?.length ?? 0) > 0));
}

export function finest(scopes) {
  return [...scopes].sort((a, b) => (GRANULARITY[a] ?? 10) - (GRANULARITY[b] ?? 10))[0];
}
