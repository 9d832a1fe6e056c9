// Node scheduler and health states as badges (from the node table, written by POST /api/nodestate).

import {h} from "./util.js";

export const SCHEDULER_STATES = ["allocated", "reserved", "idle", "mixed", "down", "unknown"];
export const HEALTH_STATES = ["full", "partial", "failed"];
const STATE_CLASS = {allocated: "st-allocated", mixed: "st-mixed", idle: "st-idle", reserved: "st-reserved",
                     down: "st-down", unknown: "st-unknown", full: "st-full", partial: "st-partial",
                     failed: "st-failed", notindb: "st-unknown"};

/** A badge; for health, `healthData` (the node's health data) tells a new node still waiting for metrics. */
export function stateBadge(state, kind = "state", healthData = null) {
  if (!state) return null;
  if (kind === "health" && state === "failed" && healthData?.waiting) {
    return h("span", {class: "state-badge st-unknown", dataset: {nodeHealth: "waiting"},
                      title: "No metric data yet: the node was reported moments ago (shown as failed after 2 minutes)"},
             "metrics: waiting");
  }
  return h("span", {class: `state-badge ${STATE_CLASS[state] || "st-unknown"}`, title: `${kind}: ${state}`,
                    dataset: kind === "health" ? {nodeHealth: state} : {nodeState: state}},
           kind === "health" ? `metrics: ${state}` : state);
}
