"""The web UI's pages: Jinja templates from ``frontend/templates``, our ES modules and CSS from
``frontend/static``, third-party browser files from ``frontend/node_modules`` (``/static/vendor/``).

Pages are rendered by the server with what needs no query (who is logged in, the
navigation for the user's roles, the notice banner, per-page parameters); the page's
module (``frontend/static/js/pages/*.js``) then loads its data through the GraphQL API
(``POST /query``) with the session cookie.  Every page needs a session: without one the
browser is sent to ``/login?redirect=<page>``.

Navigation follows cc-backend's roles (auth levels api 1 < user 2 < manager 3 < support 4
< admin 5); views not built yet render a placeholder page, so every link works.

Adding a page: a route decorated with :func:`page_route` that returns
``render("<template>.html", title, nav="<NAV key>", script="<name>", page={...})``; the
template extends ``base.html`` (navigation, notice, ``#cc-page`` JSON with the user, the
clusters, ``main.resampling`` and ``page``), and ``frontend/static/js/pages/<name>.js``
builds the page from the shared modules (``gql.js``, ``settings.js``, ``plot.js``,
``filters.js``, ``joblist.js``, ``jobinfo.js``, ``select.js``, ``charts.js``, ``live.js``).
Remove the view's entry from ``PLACEHOLDERS`` when it exists.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from quart import Blueprint, Response, abort, current_app, g, redirect, render_template, request, send_file

from cc.db import Viewer
from cc.db import _jobs as jobsdb
from cc.db import _stats as statsdb
from cc.webd.auth import session_viewer

log = logging.getLogger("web.pages")

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
TEMPLATES = FRONTEND / "templates"
STATIC = FRONTEND / "static"
NODE_MODULES = FRONTEND / "node_modules"
# /static/vendor/<package>/<file>: only these files of these npm packages are served
VENDOR = {"uplot": ("uplot/dist", frozenset({"uPlot.esm.js", "uPlot.min.css", "uPlot.iife.min.js"}))}

LEVELS = {"api": 1, "user": 2, "manager": 3, "support": 4, "admin": 5}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

bp = Blueprint("pages", __name__, template_folder=str(TEMPLATES))


@bp.record_once
def _serve_frontend_static(state) -> None:
    # Quart always registers /static/<path:filename> for the app; point it at frontend/static
    state.app.static_folder = str(STATIC)


def _ctx():
    return current_app.config["CC"]


def auth_level(viewer: Viewer) -> int:
    return max((LEVELS.get(r, 0) for r in viewer.roles), default=0)


# -- navigation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavItem:
    key: str
    title: str
    href: str            # "{username}" and "{cluster}" are filled in
    min_level: int
    per_cluster: bool = False
    titles: tuple[tuple[int, str], ...] = ()   # (level, title) overrides, highest matching level wins

    def title_for(self, level: int) -> str:
        out = self.title
        for lvl, t in self.titles:
            if level >= lvl:
                out = t
        return out


NAV = (
    NavItem("myjobs", "My Jobs", "/monitoring/user/{username}", LEVELS["user"]),
    NavItem("jobs", "Jobs", "/monitoring/jobs/", LEVELS["api"],
            titles=((LEVELS["user"], "Job Search"), (LEVELS["manager"], "Managed Jobs"), (LEVELS["support"], "Jobs"))),
    NavItem("tags", "Tags", "/monitoring/tags/", LEVELS["user"]),
    NavItem("users", "Users", "/monitoring/users/", LEVELS["manager"],
            titles=((LEVELS["manager"], "Managed Users"), (LEVELS["support"], "Users"))),
    NavItem("projects", "Projects", "/monitoring/projects/", LEVELS["manager"],
            titles=((LEVELS["manager"], "Managed Projects"), (LEVELS["support"], "Projects"))),
    NavItem("nodes", "Nodes", "/monitoring/systems/{cluster}", LEVELS["support"], per_cluster=True),
    NavItem("analysis", "Analysis", "/monitoring/analysis/{cluster}", LEVELS["support"], per_cluster=True),
    NavItem("status", "Status", "/monitoring/status/{cluster}", LEVELS["admin"], per_cluster=True),
)


def navigation(viewer: Viewer, active: str | None) -> list[dict[str, Any]]:
    level = auth_level(viewer)
    clusters = sorted(_ctx().clusters)
    out = []
    for item in NAV:
        if level < item.min_level:
            continue
        entry: dict[str, Any] = {"key": item.key, "title": item.title_for(level), "active": item.key == active}
        if item.per_cluster:
            entry["children"] = [{"title": c, "href": item.href.format(cluster=quote(c, safe=""))} for c in clusters]
        else:
            entry["href"] = item.href.format(username=quote(viewer.username, safe=""))
        out.append(entry)
    return out


# -- rendering --------------------------------------------------------------------------------

def _notice() -> str:
    path = _ctx().cfg.var_dir / "notice.txt"
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def resampling_config() -> dict[str, Any] | None:
    """``main.resampling`` for the plots: which resolutions to load on zoom and when (cc-backend's trigger)."""
    raw = _ctx().cfg.main.get("resampling") or {}
    resolutions = sorted({int(r) for r in raw.get("resolutions") or [] if int(r) > 0}, reverse=True)
    if not resolutions:
        return None
    return {"resolutions": resolutions, "trigger": int(raw.get("trigger") or 30),
            "minimumPoints": int(raw.get("minimum-points") or 1000)}


async def render(template: str, title: str, *, nav: str | None = None, script: str | None = None,
                 page: dict[str, Any] | None = None, status: int = 200, **extra: Any) -> Response:
    viewer: Viewer = g.viewer
    data = {
        "user": {"username": viewer.username, "roles": list(viewer.roles), "level": auth_level(viewer),
                 "projects": list(viewer.projects)},
        "clusters": sorted(_ctx().clusters),
        "resampling": resampling_config(),
        **(page or {}),
    }
    body = await render_template(template, title=title, viewer=viewer, level=auth_level(viewer), active=nav,
                                 nav=navigation(viewer, nav), notice=_notice() if nav == "home" else "",
                                 script=script, page=data, **extra)
    return Response(body, status=status, mimetype="text/html")


def page_route(fn: Callable[..., Awaitable[Response]]):
    """A page that needs a logged-in user; sets ``g.viewer``, else redirects to the login page."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        viewer = await session_viewer()
        if viewer is None:
            target = request.full_path.rstrip("?") if request.query_string else request.path
            return redirect(f"/login?redirect={quote(target, safe='')}", 303)
        if not viewer.roles:
            g.viewer = viewer
            return await render("message.html", "No access", message="Your account has no roles: ask an "
                                "administrator for access.", status=403)
        g.viewer = viewer
        return await fn(*args, **kwargs)

    return wrapper


@bp.after_app_request
async def _headers(resp: Response) -> Response:
    path = request.path
    if path.startswith("/static/") or path == "/favicon.ico":
        resp.headers["Cache-Control"] = "no-cache"  # revalidate (ETag) every time: never a stale module
        resp.headers.pop("Expires", None)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    elif resp.mimetype == "text/html" and not path.startswith(("/swagger", "/playground")):
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
    return resp


# -- static files -----------------------------------------------------------------------------

@bp.route("/static/vendor/<package>/<name>", methods=["GET"])
async def vendor(package: str, name: str) -> Response:
    entry = VENDOR.get(package)
    if entry is None or name not in entry[1]:
        abort(404)
    path = NODE_MODULES / entry[0] / name
    if not path.is_file():
        log.warning("%s is missing: run 'npm ci' in frontend/ (make does)", path)
        abort(404)
    return await send_file(path, conditional=True)


@bp.route("/favicon.ico", methods=["GET"])
async def favicon() -> Response:
    return await send_file(STATIC / "favicon.svg", mimetype="image/svg+xml", conditional=True)


# -- pages ------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET"])
async def login_page() -> Response:
    viewer = await session_viewer()
    target = request.args.get("redirect") or "/"
    if viewer is not None and viewer.roles and not request.args.get("error"):
        return redirect(target if target.startswith("/") and not target.startswith("//") else "/", 303)
    body = await render_template("login.html", title="Login", error=request.args.get("error", "")[:200],
                                 target=target, notice="")
    return Response(body, mimetype="text/html")


@bp.route("/", methods=["GET"])
@page_route
async def home() -> Response:
    ctx = _ctx()
    viewer = g.viewer
    rows = await ctx.db.read(lambda conn: statsdb.job_statistics(
        conn, [], viewer, group_by="CLUSTER", fields={"totalJobs", "runningJobs"}))
    counts = {r["id"]: r for r in rows}
    clusters = [{"name": name, "running": counts.get(name, {}).get("runningJobs", 0),
                 "total": counts.get(name, {}).get("totalJobs", 0)}
                for name in sorted(set(ctx.clusters) | set(counts))]
    return await render("home.html", "ClusterCockpit", nav="home", clusters=clusters)


@bp.route("/monitoring/jobs/", methods=["GET"])
@page_route
async def jobs_page() -> Response:
    return await render("jobs.html", "Jobs - ClusterCockpit", nav="jobs", script="jobs")


@bp.route("/monitoring/jobs", methods=["GET"])
async def jobs_page_slash() -> Response:
    qs = request.query_string.decode()
    return redirect("/monitoring/jobs/" + ("?" + qs if qs else ""), 301)


@bp.route("/monitoring/user/<username>", methods=["GET"])
@page_route
async def user_jobs_page(username: str) -> Response:
    """Jobs of one user (phase 2 adds the user's statistics and histograms above the list)."""
    viewer = g.viewer
    if username != viewer.username and auth_level(viewer) < LEVELS["manager"]:
        return await render("message.html", "Forbidden", message="You may only list your own jobs.", status=403)
    return await render("jobs.html", f"User {username} - ClusterCockpit", nav="myjobs" if username == viewer.username
                        else "users", script="jobs", page={"fixedUser": username})


@bp.route("/monitoring/job/<int:db_id>", methods=["GET"])
@page_route
async def job_page(db_id: int) -> Response:
    ctx = _ctx()
    viewer = g.viewer
    job = await ctx.db.read(jobsdb.find_job, db_id, viewer)
    if job is None:
        return await render("message.html", "Job not found", message=f"There is no job with id {db_id}, or you may "
                            "not see it.", status=404)
    return await render("job.html", f"Job {job.job_id} - ClusterCockpit", nav="jobs", script="job",
                        page={"dbId": db_id, "jobId": job.job_id, "cluster": job.cluster,
                              "state": job.state})


@bp.route("/config", methods=["GET"])
@page_route
async def config_page() -> Response:
    return await render("config.html", "Settings - ClusterCockpit", nav="config", script="config")


PLACEHOLDERS = {  # phase 2 views: (nav key, title)
    "/monitoring/tags/": ("tags", "Tags"),
    "/monitoring/users/": ("users", "Users"),
    "/monitoring/projects/": ("projects", "Projects"),
    "/monitoring/systems/<cluster>": ("nodes", "Nodes"),
    "/monitoring/node/<cluster>/<host>": ("nodes", "Node"),
    "/monitoring/analysis/<cluster>": ("analysis", "Analysis"),
    "/monitoring/status/<cluster>": ("status", "Status"),
}


def _placeholder(rule: str, key: str, title: str):
    async def view(**kwargs: str) -> Response:
        name = " ".join([title, *kwargs.values()])
        return await render("message.html", f"{name} - ClusterCockpit", nav=key,
                            message=f"The {title.lower()} view is not available yet.",
                            link=("/monitoring/jobs/" + (f"?cluster={quote(kwargs['cluster'])}"
                                                         if "cluster" in kwargs else ""), "Job list"))

    view.__name__ = f"placeholder_{key}_{title.lower()}"
    bp.add_url_rule(rule, view.__name__, page_route(view), methods=["GET"])


for _rule, (_key, _title) in PLACEHOLDERS.items():
    _placeholder(_rule, _key, _title)
