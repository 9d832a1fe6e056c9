// Selection dialogs: metrics (choose and order, by drag and drop or the arrow buttons) and sorting.

import {dialog, h} from "./util.js";

/**
 * Let the user pick and order metrics.  available: [{name, note}], selected: [names];
 * options: [{key, label, checked}] shown as extra check boxes.  Resolves {metrics, options} or null.
 */
export async function selectMetrics(title, available, selected, options = []) {
  const order = [...selected.filter((m) => available.some((a) => a.name === m)),
                 ...available.map((a) => a.name).filter((m) => !selected.includes(m))];
  const note = new Map(available.map((a) => [a.name, a.note || ""]));
  const list = h("ul", {class: "metric-select", dataset: {metricSelect: ""}});
  let dragged = null;
  const item = (name) => {
    const li = h("li", {draggable: "true", dataset: {metricItem: name}},
      h("span", {class: "drag-handle", title: "Drag to reorder"}, "⠿"),
      h("label", {class: "check"}, h("input", {type: "checkbox", value: name, checked: selected.includes(name)}), " ", name),
      h("span", {class: "muted metric-note"}, note.get(name)),
      h("span", {class: "order-buttons"},
        h("button", {type: "button", class: "btn btn-small", title: "Move up", dataset: {moveUp: name},
                     onclick: () => li.previousElementSibling && list.insertBefore(li, li.previousElementSibling)}, "↑"),
        h("button", {type: "button", class: "btn btn-small", title: "Move down", dataset: {moveDown: name},
                     onclick: () => li.nextElementSibling && list.insertBefore(li.nextElementSibling, li)}, "↓")));
    li.addEventListener("dragstart", (e) => { dragged = li; e.dataTransfer.effectAllowed = "move"; li.classList.add("dragging"); });
    li.addEventListener("dragend", () => { li.classList.remove("dragging"); dragged = null; });
    li.addEventListener("dragover", (e) => {
      if (!dragged || dragged === li) return;
      e.preventDefault();
      const r = li.getBoundingClientRect();
      list.insertBefore(dragged, e.clientY < r.top + r.height / 2 ? li : li.nextElementSibling);
    });
    return li;
  };
  list.append(...order.map(item));
  const opts = options.map((o) => h("label", {class: "check"},
    h("input", {type: "checkbox", checked: !!o.checked, dataset: {option: o.key}}), " ", o.label));
  const body = h("div", {class: "form"}, opts.length ? h("div", {class: "select-options"}, opts) : null, list);
  const choice = await dialog(title, body, [["Apply", "apply", "btn-primary"], ["Cancel", null]]);
  if (choice !== "apply") return null;
  const metrics = [...list.querySelectorAll("li")].map((li) => li.querySelector("input"))
    .filter((i) => i.checked).map((i) => i.value);
  const out = {};
  for (const o of options) out[o.key] = body.querySelector(`[data-option="${o.key}"]`).checked;
  return {metrics, options: out};
}
