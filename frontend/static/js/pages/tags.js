// Tag list (/monitoring/tags/): rendered by the server with the job counts; here only the removal of tags the
// user may delete everywhere (admins: global and admin tags; everybody: their private tags).

import {gql} from "../gql.js";
import {$, $$, dialog, errorBox, h, pageData} from "../util.js";

const page = pageData();
const user = page.user;
const byId = new Map(Object.entries(page.tagmap || {}).flatMap(([type, tags]) => tags.map((t) => [String(t.id), {...t, type}])));

function mayDelete(tag) {
  if (tag.scope === "global" || tag.scope === "admin") return user.level >= 5;
  return tag.scope === user.username;
}

function count() {
  const n = $$("[data-tag-entry]").length;
  $("[data-tag-count]").textContent = `${n} tag${n === 1 ? "" : "s"}`;
}

for (const entry of $$("[data-tag-entry]")) {
  const tag = byId.get(entry.dataset.tagEntry);
  if (!tag || !mayDelete(tag)) continue;
  entry.append(h("button", {type: "button", class: "tag-delete", title: "Remove this tag from all jobs and delete it",
                            "aria-label": `Delete tag ${tag.type}:${tag.name}`, dataset: {deleteTag: tag.id},
                            onclick: async () => {
    const ok = await dialog("Delete tag", h("p", {}, `Remove the tag ${tag.type}: ${tag.name} from all `,
                                           `${tag.count} job(s) and delete it?`), [["Delete", "delete", "btn-danger"], ["Cancel", null]]);
    if (ok !== "delete") return;
    try {
      await gql("mutation($ids: [ID!]!) { removeTagFromList(tagIds: $ids) }", {ids: [tag.id]});
    } catch (e) {
      entry.closest("section").prepend(errorBox(e.message, "Deleting the tag failed"));
      return;
    }
    const section = entry.closest("section");
    entry.remove();
    if (!section.querySelector("[data-tag-entry]")) section.remove();
    count();
  }}, "×"));
}
count();
document.body.dataset.tagsReady = "1";
