// Settings page (/config): the user's plot and list options, stored per user with updateConfiguration.

import {COLOR_SCHEMES, loadSettings} from "../settings.js";
import {$, dialog, errorBox, fill, h, pageData} from "../util.js";
import {taggerCard} from "../taggercard.js";

const ROLES = ["user", "manager", "support", "admin", "api"];

/** A session-authenticated settings endpoint (/config/..., /frontend/...); form fields in, JSON or text out. */
async function call(method, url, fields = null) {
  const opts = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
  if (fields) {
    opts.body = new URLSearchParams(fields);
    opts.headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch (e) {
    throw new Error(`server not reachable: ${e.message}`);
  }
  const text = await resp.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch { doc = null; }
  if (!resp.ok) throw new Error(doc?.error || text || `HTTP ${resp.status}`);
  return doc ?? text;
}

function resultLine(el, ok, text) {
  el.textContent = text;
  el.className = "save-status" + (ok ? "" : " error");
  el.dataset.result = ok ? "ok" : "error";
}

/** "API token" card: a fresh JWT for the user (admins: for anyone in the user table). */
function tokenCard(page) {
  const out = h("textarea", {class: "token-box", readonly: true, rows: 4, dataset: {jwt: ""}, hidden: true});
  const status = h("div", {class: "save-status"});
  return h("section", {class: "card settings-card", dataset: {tokenCard: ""}}, h("h2", {class: "card-title"}, "API token"),
    h("p", {class: "muted"}, "A JSON Web Token with your roles for the REST API (Authorization: Bearer …)."),
    h("div", {}, h("button", {type: "button", class: "btn", dataset: {generateJwt: ""}, onclick: async () => {
      try {
        out.value = await call("GET", `/frontend/jwt/?username=${encodeURIComponent(page.user.username)}`);
        out.hidden = false;
        resultLine(status, true, "Token generated.");
      } catch (e) {
        resultLine(status, false, e.message);
      }
    }}, "Generate JWT")), out, status);
}

async function showToken(username) {
  let token;
  try {
    token = await call("GET", `/frontend/jwt/?username=${encodeURIComponent(username)}`);
  } catch (e) {
    token = `Error: ${e.message}`;
  }
  await dialog(`JWT of ${username}`, h("textarea", {class: "token-box", readonly: true, rows: 6, dataset: {jwtOf: username}},
                                     token), [["Close", null]], {wide: true});
}

/** Admin cards: users (list, create, delete, roles, projects, tokens) and the notice banner. */
function adminCards(page) {
  const listEl = h("div", {dataset: {userList: ""}}, h("p", {class: "loading"}, "Loading users…"));
  const allUsers = h("input", {type: "checkbox", checked: true, dataset: {field: "all-users"}});
  const listStatus = h("div", {class: "save-status", dataset: {adminStatus: "list"}});
  const loadUsers = async () => {
    let users;
    try {
      users = await call("GET", `/config/users/?not-just-user=${allUsers.checked}`);
    } catch (e) {
      fill(listEl, errorBox(e.message, "Loading users failed"));
      return;
    }
    fill(listEl, h("div", {class: "table-scroll"}, h("table", {class: "table user-table", dataset: {userTable: ""}},
      h("thead", {}, h("tr", {}, ["Username", "Name", "Projects", "Email", "Roles", "JWT", "Delete"].map((t) => h("th", {}, t)))),
      h("tbody", {}, users.map((u) => h("tr", {dataset: {userRow: u.username}},
        h("td", {}, h("a", {href: `/monitoring/user/${encodeURIComponent(u.username)}`}, u.username)),
        h("td", {}, u.name), h("td", {dataset: {userProjects: ""}}, u.projects.join(", ")), h("td", {}, u.email),
        h("td", {dataset: {userRoles: ""}}, u.roles.join(", ")),
        h("td", {}, h("button", {type: "button", class: "btn btn-small", dataset: {userJwt: u.username},
                                 disabled: !page.canSignTokens, onclick: () => showToken(u.username)}, "Generate")),
        h("td", {}, u.username === page.user.username ? null : h("button", {type: "button", class: "btn btn-small btn-danger",
          dataset: {deleteUser: u.username}, onclick: async () => {
            const ok = await dialog("Delete user", h("p", {}, `Delete the user ${u.username}? This cannot be undone.`),
                                    [["Delete", "delete", "btn-danger"], ["Cancel", null]]);
            if (ok !== "delete") return;
            try {
              resultLine(listStatus, true, (await call("DELETE", "/config/users/", {username: u.username})).msg);
            } catch (e) {
              resultLine(listStatus, false, e.message);
            }
            loadUsers();
          }}, "Delete"))))))));
  };
  allUsers.addEventListener("change", loadUsers);

  // create
  const f = (name, label, type = "text", extra = {}) => h("label", {}, label,
    h("input", {type, name, dataset: {newUser: name}, autocomplete: "off", ...extra}));
  const roleRadios = ROLES.map((r) => h("label", {class: "check"}, h("input", {type: "radio", name: "role", value: r,
                                                                               checked: r === "user", dataset: {newRole: r}}), ` ${r}`));
  const createStatus = h("div", {class: "save-status", dataset: {adminStatus: "create"}});
  const createForm = h("form", {class: "form admin-form", dataset: {createUser: ""}},
    f("username", "Username (ID)", "text", {required: true}), f("password", "Password (empty only for API users)", "password"),
    f("name", "Name"), f("email", "Email address", "email"),
    h("fieldset", {}, h("legend", {}, "Role"), roleRadios), f("project", "Project (managers only)"),
    h("div", {}, h("button", {type: "submit", class: "btn btn-primary"}, "Create user")), createStatus);
  createForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = Object.fromEntries(new FormData(createForm).entries());
    try {
      resultLine(createStatus, true, (await call("POST", "/config/users/", fields)).msg);
      createForm.reset();
    } catch (err) {
      resultLine(createStatus, false, err.message);
    }
    loadUsers();
  });

  // roles and projects
  const editCard = (kind) => {
    const user = h("input", {type: "text", placeholder: "username", dataset: {field: `${kind}-user`}});
    const value = kind === "role"
      ? h("select", {dataset: {field: "role-value"}}, ROLES.map((r) => h("option", {value: r}, r)))
      : h("input", {type: "text", placeholder: "project id", dataset: {field: "project-value"}});
    const status = h("div", {class: "save-status", dataset: {adminStatus: kind}});
    const act = (op) => async () => {
      try {
        const msg = (await call("POST", `/config/user/${encodeURIComponent(user.value.trim())}`,
                                {[`${op}-${kind}`]: value.value.trim()})).msg;
        resultLine(status, true, msg);
      } catch (e) {
        resultLine(status, false, e.message);
      }
      loadUsers();
    };
    return h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, kind === "role" ? "Edit user roles"
                                                                                                    : "Edit managed projects"),
      h("div", {class: "toolbar"}, user, value,
        h("button", {type: "button", class: "btn", dataset: {[`add${kind[0].toUpperCase()}${kind.slice(1)}`]: ""},
                     onclick: act("add")}, "Add"),
        h("button", {type: "button", class: "btn", dataset: {[`remove${kind[0].toUpperCase()}${kind.slice(1)}`]: ""},
                     onclick: act("remove")}, "Remove")), status);
  };

  // notice
  const notice = h("textarea", {rows: 3, placeholder: "No content.", dataset: {noticeText: ""}}, page.notice || "");
  const noticeStatus = h("div", {class: "save-status", dataset: {adminStatus: "notice"}});
  const noticeCard = h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Notice shown on the home page"),
    notice, h("div", {}, h("button", {type: "button", class: "btn btn-primary", dataset: {saveNotice: ""}, onclick: async () => {
      try {
        resultLine(noticeStatus, true, (await call("POST", "/config/notice/", {"new-content": notice.value})).msg);
      } catch (e) {
        resultLine(noticeStatus, false, e.message);
      }
    }}, "Save notice")), noticeStatus);

  loadUsers();
  return [
    h("h2", {class: "section-title"}, "Administration"),
    h("section", {class: "card settings-card settings-wide", dataset: {usersCard: ""}},
      h("h2", {class: "card-title"}, "Users"),
      h("label", {class: "check"}, allUsers, " Include users whose only role is 'user'"), listStatus, listEl),
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Create user"), createForm),
    editCard("role"), editCard("project"), noticeCard, taggerCard(),
  ];
}

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
  fill(root,
    h("section", {class: "card settings-card"}, h("h2", {class: "card-title"}, "Plots"),
      number("plotConfiguration_lineWidth", "Line width (pixels) ", 1, 10),
      number("plotConfiguration_plotsPerRow", "Plots per row (job and node views) ", 1, 6),
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
    status,
    page.canSignTokens ? tokenCard(page) : null,
    page.user.level >= 5 ? adminCards(page) : null);
  document.body.dataset.settingsReady = "1";
}

main();
