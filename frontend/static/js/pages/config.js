// Settings page (/config): the user's plot and list options, stored per user with updateConfiguration.

import {COLOR_SCHEMES, loadSettings} from "../settings.js";
import {$, errorBox, h, pageData} from "../util.js";

function sameColors(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((c, i) => c === b[i]);
}

async function main() {
  const root = $("[data-settings]");
  const page = pageData();
  let settings;
  try {
    settings = await loadSettings();
  } catch (e) {
    root.replaceChildren(errorBox(e.message, "Loading settings failed"));
    return;
  }
  const status = h("div", {class: "save-status", role: "status", dataset: {saveStatus: ""}});
  const save = async (key, value) => {
    status.textContent = "Saving…";
    status.className = "save-status";
    try {
      await settings.set(key, value);
      status.textContent = "Saved.";
      status.dataset.saved = key;
      status.dataset.savedKeys = `${status.dataset.savedKeys || ""} ${key}`.trim();
    } catch (e) {
      status.textContent = `Saving failed: ${e.message}`;
      status.className = "save-status error";
    }
  };
  const number = (key, label, min, max) => h("label", {class: "setting"}, label,
    h("input", {type: "number", min: String(min), max: String(max), value: String(settings.get(key)), dataset: {setting: key},
                onchange: (e) => {
                  const v = Math.max(min, Math.min(max, parseInt(e.target.value, 10) || min));
                  e.target.value = String(v);
                  save(key, v);
                }}));
  const check = (key, label) => h("label", {class: "check setting"},
    h("input", {type: "checkbox", checked: settings.get(key) !== false, dataset: {setting: key},
                onchange: (e) => save(key, e.target.checked)}), " ", label);
  const current = settings.get("plotConfiguration_colorScheme");
  const schemes = Object.entries(COLOR_SCHEMES).map(([name, colors]) => h("label", {class: "check scheme"},
    h("input", {type: "radio", name: "scheme", value: name, checked: sameColors(colors, current),
                dataset: {scheme: name}, onchange: () => save("plotConfiguration_colorScheme", colors)}),
    " ", name, " ", h("span", {class: "swatches"}, colors.map((c) => h("span", {class: "swatch", style: {background: c}})))));
  const paging = settings.get("jobList_usePaging");
  const pagingRadio = (value, label) => h("label", {class: "check"},
    h("input", {type: "radio", name: "paging", checked: paging === value, dataset: {paging: String(value)},
                onchange: () => save("jobList_usePaging", value)}), " ", label);
  const rs = page.resampling;
  root.replaceChildren(
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Plots"),
      number("plotConfiguration_lineWidth", "Line width (pixels) ", 1, 10),
      number("plotConfiguration_plotsPerRow", "Plots per row (job view) ", 1, 6),
      check("plotConfiguration_colorBackground", "Colour plot backgrounds by the metric's thresholds"),
      h("fieldset", {}, h("legend", {}, "Colour scheme of multi-line plots"), schemes)),
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Job lists"),
      h("fieldset", {}, h("legend", {}, "Paging"), pagingRadio(false, "Continuous scroll"), pagingRadio(true, "Pages")),
      number("plot_list_jobsPerPage", "Jobs per page ", 5, 200)),
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Job view"),
      check("jobView_showPolarPlot", "Show the polar plot"),
      check("jobView_showRoofline", "Show the roofline"),
      check("jobView_showStatTable", "Show the statistics table")),
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Metric plot resampling"),
      rs ? h("p", {}, `Plots load at ${rs.resolutions[0]} s resolution; zooming in below ${rs.trigger} visible points ` +
                      `loads ${rs.resolutions.slice(1).concat(["the native"]).join(" s, ")} resolution.`)
        : h("p", {class: "muted"}, "Resampling is not configured (main.resampling in config.json).")),
    status);
}

main();
