// Per-user UI settings: read with GraphQL `userConfig`, written with `updateConfiguration` (configuration table).
// Keys are cc-backend's, so a database shared with cc-backend keeps its users' choices; a key may carry a
// ":<cluster>" (or ":<cluster>:<subcluster>") suffix for per-cluster values (metric selections).

import {gql, loadInit} from "./gql.js";
import {errorBox, fill} from "./util.js";

export const COLOR_SCHEMES = {
  "Default": ["#00bfff", "#0000ff", "#ff00ff", "#ff0000", "#ff8000", "#ffff00", "#80ff00"],
  "Autumn": ["rgb(255,0,0)", "rgb(255,11,0)", "rgb(255,20,0)", "rgb(255,30,0)", "rgb(255,41,0)", "rgb(255,50,0)",
             "rgb(255,60,0)", "rgb(255,71,0)", "rgb(255,80,0)", "rgb(255,90,0)", "rgb(255,101,0)", "rgb(255,111,0)",
             "rgb(255,120,0)", "rgb(255,131,0)", "rgb(255,141,0)", "rgb(255,150,0)", "rgb(255,161,0)",
             "rgb(255,171,0)", "rgb(255,180,0)", "rgb(255,190,0)", "rgb(255,201,0)", "rgb(255,210,0)"],
  "Beach": ["rgb(0,252,0)", "rgb(0,233,0)", "rgb(0,212,0)", "rgb(0,189,0)", "rgb(0,169,0)", "rgb(0,148,0)",
            "rgb(0,129,4)", "rgb(0,145,46)", "rgb(0,162,90)", "rgb(0,180,132)", "rgb(0,197,177)", "rgb(0,214,219)",
            "rgb(0,193,240)", "rgb(0,171,240)", "rgb(0,149,240)", "rgb(0,127,240)", "rgb(0,105,240)"],
  "Sunset": ["rgb(0,0,0)", "rgb(20,0,40)", "rgb(40,0,81)", "rgb(60,0,121)", "rgb(80,0,161)", "rgb(121,0,147)",
             "rgb(161,0,133)", "rgb(202,0,119)", "rgb(242,0,105)", "rgb(246,36,83)", "rgb(250,73,61)",
             "rgb(255,109,39)", "rgb(255,146,17)", "rgb(255,176,26)", "rgb(255,205,44)", "rgb(255,234,62)"],
  "Colorblind": ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"],
  "Greyscale": ["#000000", "#333333", "#555555", "#777777", "#999999", "#bbbbbb"],
};

export const DEFAULTS = {
  plotConfiguration_lineWidth: 3,
  plotConfiguration_plotsPerRow: 3,
  plotConfiguration_colorBackground: true,
  plotConfiguration_colorScheme: COLOR_SCHEMES.Default,
  jobList_usePaging: false,
  jobList_showFootprint: false,
  plot_list_jobsPerPage: 50,
  jobView_showPolarPlot: true,
  jobView_showRoofline: true,
  jobView_showStatTable: true,
  metricConfig_jobListMetrics: ["cpu_load", "flops_any", "mem_bw", "mem_used"],
  metricConfig_jobViewPlotMetrics: null,   // null: every metric of the job's cluster
  metricConfig_jobViewTableMetrics: ["flops_any", "mem_bw", "mem_used"],
};

export class Settings {
  constructor(userConfig) {
    this.values = {...(userConfig || {})};
    this.listeners = [];
  }

  /** The value of `key`, most specific first: key:cluster:sub, key:cluster, key, default. */
  get(key, cluster = null, sub = null) {
    const tries = [];
    if (cluster && sub) tries.push(`${key}:${cluster}:${sub}`);
    if (cluster) tries.push(`${key}:${cluster}`);
    tries.push(key);
    for (const k of tries) if (this.values[k] !== undefined && this.values[k] !== null) return this.values[k];
    return DEFAULTS[key] ?? null;
  }

  /** Store a setting for the user (per cluster with `cluster`). */
  async set(key, value, cluster = null) {
    const name = cluster ? `${key}:${cluster}` : key;
    await gql("mutation($name: String!, $value: String!) { updateConfiguration(name: $name, value: $value) }",
              {name, value: JSON.stringify(value)});
    this.values[name] = value;
    for (const fn of this.listeners) fn(name, value);
  }

  onChange(fn) { this.listeners.push(fn); }

  /** Plot options derived from the settings. */
  plotOptions() {
    return {
      lineWidth: Number(this.get("plotConfiguration_lineWidth")) || 3,
      colors: this.get("plotConfiguration_colorScheme") || COLOR_SCHEMES.Default,
      colorBackground: this.get("plotConfiguration_colorBackground") !== false,
    };
  }
}

let settingsPromise = null;

export function loadSettings() {
  if (!settingsPromise) settingsPromise = loadInit().then((info) => new Settings(info.userConfig));
  return settingsPromise;
}

/** [cluster info, settings] for a page; if they cannot be loaded, an error box in `target` and null. */
export async function loadInfoAndSettings(target) {
  try {
    return await Promise.all([loadInit(), loadSettings()]);
  } catch (e) {
    fill(target, errorBox(e.message, "Loading failed"));
    return null;
  }
}
