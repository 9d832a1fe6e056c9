// Node scheduler and health states as badges (from the node table, written by POST /api/nodestate).

import {h} from "./util.js";

export const SCHEDULER_STATES = ["allocated", "reserved", "idle", "mixed", "down", "unknown"];
export const HEALTH_STATES = ["full", "partial", "failed"];
const STATE_CLASS = {allocated: "st-allocated", mixed: "st-mixed", idle: "st-idle", reserved: "st-reserved",
                     down: "st-down", unknown: "st-unknown", full: "st-full", partial: "st-partial",
                     failed: "st-failed", notindb: "st-unknown"};

export function stateBadge(state, kind = "state") {
  if (!state) return null;
  return h("span", {class: `state-badge ${STATE_CLASS[state] || "st-unknown"}`, title: `${kind}: ${state}`,
                    dataset: kind === "health" ? {nodeHealth: state} : {nodeState: state}},
           kind === "health" ? `metrics: ${state}` : state);
}
