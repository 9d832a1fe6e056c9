// "Job taggers" card of the settings page (admins): cc-backend's /config/taggers/ list and run buttons.

import {fill, h} from "./util.js";

async function request(method, url, fields = null) {
  const opts = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
  if (fields) {
    opts.body = new URLSearchParams(fields);
    opts.headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  const resp = await fetch(url, opts);
  const text = await resp.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch { doc = null; }
  if (!resp.ok) throw new Error(doc?.error || text || `HTTP ${resp.status}`);
  return doc ?? text;
}

function lastRun(r) {
  if (!r) return "never run here";
  const when = new Date(r.finished * 1000).toLocaleString();
  return `${r.jobs} jobs, ${r.tags} tags in ${r.seconds} s (${when})` + (r.errors.length ? `, ${r.errors.length} errors` : "");
}

/** Lists the app and job-class taggers with their rules and errors; "Run" tags every job in the database. */
export function taggerCard() {
  const body = h("div", {dataset: {taggerList: ""}}, h("p", {class: "loading"}, "Loading taggers…"));
  const status = h("div", {class: "save-status", dataset: {adminStatus: "taggers"}});
  let timer = null;
  const load = async () => {
    let taggers;
    try {
      taggers = await request("GET", "/config/taggers/");
    } catch (e) {
      status.textContent = `Loading taggers failed: ${e.message}`;
      status.className = "save-status error";
      return;
    }
    fill(body, h("table", {class: "table"},
      h("thead", {}, h("tr", {}, ["Tagger", "Runs on", "Rules", "Status", "Last run", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, taggers.map((t) => h("tr", {dataset: {tagger: t.name}},
        h("td", {}, t.name), h("td", {}, `job ${t.type}`), h("td", {}, String(t.rules)),
        h("td", {dataset: {taggerState: t.running ? "running" : "idle"}}, t.running ? "Running…" : "Idle"),
        h("td", {}, lastRun(t.lastRun)),
        h("td", {}, h("button", {type: "button", class: "btn btn-small", disabled: t.running, dataset: {runTagger: t.name},
          onclick: async () => {
            try {
              status.textContent = await request("POST", "/config/taggers/run/", {name: t.name});
              status.className = "save-status";
              status.dataset.result = "ok";
            } catch (e) {
              status.textContent = e.message;
              status.className = "save-status error";
              status.dataset.result = "error";
            }
            load();
          }}, "Run")))))),
    taggers.flatMap((t) => t.errors).map((e) => h("p", {class: "save-status error", dataset: {taggerError: ""}}, e)));
    clearTimeout(timer);
    if (taggers.some((t) => t.running)) timer = setTimeout(load, 2000);
  };
  load();
  return h("section", {class: "card settings-card settings-wide", dataset: {taggersCard: ""}},
    h("h2", {class: "card-title"}, "Job taggers"),
    h("p", {class: "muted"}, "Application tags (from job scripts) and job classes (from archived statistics). " +
                             "Run applies a tagger to every job; rule files in var/tagger are reloaded when they change."),
    body, status);
}
