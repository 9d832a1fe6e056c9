// Tag management of one job: attach and detach tags, create new ones (private; global for support and admins;
// admin tags for admins), through the GraphQL mutations.

import {gql} from "./gql.js";
import {tagPill} from "./jobinfo.js";
import {dialog, errorBox, fill, h} from "./util.js";

export function mayUseScope(user, scope) {
  if (scope === "admin") return user.level >= 5;
  if (scope === "global") return user.level >= 4;
  return scope === user.username;
}

/** Open the dialog; `onChange(tags)` gets the job's new tag list after each change. */
export async function manageTags(job, user, onChange) {
  let all = (await gql("{ tags { id type name scope } }")).tags;
  const search = h("input", {type: "search", placeholder: "Search or create: type:name", dataset: {field: "tag-search"}});
  const list = h("div", {class: "tag-manage-list", dataset: {tagList: ""}});
  const message = h("div", {class: "tag-message"});
  const scopeSel = h("select", {dataset: {field: "tag-scope"}},
    h("option", {value: user.username}, "Private"),
    user.level >= 4 ? h("option", {value: "global"}, "Global") : null,
    user.level >= 5 ? h("option", {value: "admin"}, "Admin") : null);

  const run = async (fn) => {
    message.replaceChildren();
    try {
      await fn();
    } catch (e) {
      message.replaceChildren(errorBox(e.message, "Tag change failed"));
    }
    render();
  };
  const attach = (ids) => run(async () => {
    job.tags = (await gql("mutation($job: ID!, $ids: [ID!]!) { addTagsToJob(job: $job, tagIds: $ids) { id type name scope } }",
                          {job: job.id, ids})).addTagsToJob;
    onChange(job.tags);
  });
  const detach = (ids) => run(async () => {
    job.tags = (await gql("mutation($job: ID!, $ids: [ID!]!) { removeTagsFromJob(job: $job, tagIds: $ids) { id type name scope } }",
                          {job: job.id, ids})).removeTagsFromJob;
    onChange(job.tags);
  });
  const create = (type, name) => run(async () => {
    const tag = (await gql("mutation($t: String!, $n: String!, $s: String!) { createTag(type: $t, name: $n, scope: $s) { id type name scope } }",
                           {t: type, n: name, s: scopeSel.value})).createTag;
    if (!all.some((t) => t.id === tag.id)) all = [...all, tag];
    search.value = "";
    await attach([tag.id]);
  });

  function render() {
    const q = search.value.trim().toLowerCase();
    const attached = new Set((job.tags || []).map((t) => String(t.id)));
    const match = (t) => !q || `${t.type}:${t.name}`.toLowerCase().includes(q.replace(/\s*:\s*/, ":"));
    const rows = all.filter(match).sort((a, b) => (attached.has(String(b.id)) - attached.has(String(a.id))) ||
                                                 `${a.type}:${a.name}`.localeCompare(`${b.type}:${b.name}`))
      .map((t) => {
        const on = attached.has(String(t.id));
        const allowed = mayUseScope(user, t.scope);
        return h("div", {class: "tag-manage-row", dataset: {tagRow: `${t.type}:${t.name}`}},
          tagPill(t, {link: false}),
          h("button", {type: "button", class: "btn btn-small" + (on ? "" : " btn-primary"), disabled: !allowed,
                       title: allowed ? "" : "You may not use tags of this scope",
                       dataset: {tagAction: on ? "remove" : "add"},
                       onclick: () => (on ? detach([t.id]) : attach([t.id]))}, on ? "Remove" : "Add"));
      });
    const parts = search.value.split(":").map((s) => s.trim());
    const canCreate = parts.length === 2 && parts[0] && parts[1] &&
      !all.some((t) => t.type === parts[0] && t.name === parts[1]);
    fill(list, ...rows, rows.length ? null : h("p", {class: "muted"}, "No matching tags."),
      canCreate ? h("div", {class: "tag-create"}, `New tag ${parts[0]}: ${parts[1]} `, scopeSel,
        h("button", {type: "button", class: "btn btn-primary btn-small", dataset: {tagCreate: ""},
                     onclick: () => create(parts[0], parts[1])}, "Create and add")) : null);
  }

  search.addEventListener("input", render);
  render();
  await dialog(`Tags of job ${job.jobId}`, h("div", {class: "form"}, search, message, list), [["Close", null]]);
}
