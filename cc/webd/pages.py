"""The web UI's pages: Jinja templates from ``frontend/templates``, our ES modules and CSS from
``frontend/static``, third-party browser files from ``frontend/node_modules`` (``/static/vendor/``).

Pages are rendered by the server with what needs no query (who is logged in, the
navigation for the user's roles, the notice banner, per-page parameters); the page's
module (``frontend/static/js/pages/*.js``) then loads its data through the GraphQL API
(``POST /query``) with the session cookie.  Every page needs a session: without one the
browser is sent to ``/login?redirect=<page>``.

Navigation follows cc-backend's roles (auth levels api 1 < user 2 < manager 3 < support 4
< admin 5); a page a role may not open answers 403 with a message page.  The search bar
of the navigation is ``GET /search?searchId=...`` (cc-backend's searchbar: keywords
``jobId:``, ``jobName:``, ``projectId:``, ``arrayJobId:``, ``username:``, ``name:``, or a
hierarchical guess), answered with a redirect to the right list or page.

Adding a page: a route decorated with :func:`page_route` that returns
``render("<template>.html", title, nav="<NAV key>", script="<name>", page={...})``; the
template extends ``base.html`` (navigation, notice, ``#cc-page`` JSON with the user, the
clusters, ``main.resampling`` and ``page``), and ``frontend/static/js/pages/<name>.js``
builds the page from the shared modules (``gql.js``, ``settings.js``, ``plot.js``,
``filters.js``, ``joblist.js``, ``listview.js``, ``jobinfo.js``, ``select.js``, ``charts.js``,
``histogram.js``, ``timerange.js``, ``live.js``).  Guard it with :func:`require` for the
minimum role, and add it to ``NAV`` if it belongs in the navigation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from quart import Blueprint, Response, abort, current_app, g, redirect, render_template, request, send_file

from cc.db import Viewer
from cc.db import _jobs as jobsdb
from cc.db import _stats as statsdb
from cc.db import _tags as tagsdb
from cc.db._filters import build_where, like_escape
from cc.db._users import get_user
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
    also: tuple[tuple[str, str], ...] = ()     # per cluster, after its entry: (title suffix, href) more views

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
    NavItem("nodes", "Nodes", "/monitoring/systems/{cluster}", LEVELS["support"], per_cluster=True,
            also=((" node list", "/monitoring/systems/list/{cluster}"),)),
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
            entry["children"] = [
                {"title": c + suffix, "href": href.format(cluster=quote(c, safe=""))}
                for c in clusters for suffix, href in (("", item.href), *item.also)]
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
        local = target.startswith("/") and not target.startswith("//") and "\\" not in target
        return redirect(target if local else "/", 303)
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


async def message_page(title: str, message: str, status: int, *, nav: str | None = None, kind: str = "info",
                       link: tuple[str, str] | None = None) -> Response:
    return await render("message.html", f"{title} - ClusterCockpit", nav=nav, message=message, status=status,
                        kind=kind, link=link)


#: Unknown paths under these answer cc's JSON error (clients of the APIs parse it); any other unknown
#: path is a page a person typed or followed, and gets an HTML 404 page with the navigation.
API_PREFIXES = ("/api/", "/userapi/", "/frontend/", "/config/", "/query", "/static/", "/swagger", "/playground",
                "/metrics", "/ws")


def wants_json_404(path: str) -> bool:
    return path.startswith(API_PREFIXES)


async def not_found_page() -> Response:
    """cc-backend's 404 page: what was asked for, the menu (when logged in) and a way on."""
    viewer = await session_viewer()
    g.viewer = viewer if viewer is not None else Viewer("", ())
    link = ("/", "Back to the start page") if viewer is not None else ("/login", "Log in")
    return await message_page("Page not found", f"There is no page at {request.path[:200]}.", 404,
                              kind="warning", link=link)


async def forbidden(message: str, nav: str | None = None) -> Response:
    return await message_page("Forbidden", message, 403, nav=nav, kind="danger")


def _manages_user(conn, viewer: Viewer, username: str) -> bool:
    """A manager may open the page of a user who ran jobs in one of the projects the manager manages."""
    if not viewer.projects:
        return False
    marks = ",".join("?" * len(viewer.projects))
    row = conn.execute(f"SELECT 1 FROM job WHERE hpc_user = ? AND project IN ({marks}) LIMIT 1",
                       (username, *viewer.projects)).fetchone()
    return row is not None


@bp.route("/monitoring/user/<username>", methods=["GET"])
@page_route
async def user_jobs_page(username: str) -> Response:
    """One user's jobs: summary, histograms (duration, nodes, selectable metrics) and the job list."""
    ctx = _ctx()
    viewer = g.viewer
    level = auth_level(viewer)
    own = username == viewer.username
    if not own:
        if level < LEVELS["manager"]:
            return await forbidden("You may only list your own jobs.", nav="myjobs")
        if not viewer.sees_all and not await ctx.db.read(_manages_user, viewer, username):
            return await forbidden(f"User {username} has no jobs in the projects you manage.", nav="users")
    user = await ctx.db.read(get_user, username)
    short = int(ctx.cfg.main.get("short-running-jobs-duration", 300) or 300)
    return await render("user.html", f"User {username} - ClusterCockpit", nav="myjobs" if own else "users",
                        script="user", page={"fixedUser": username, "userName": (user.name or "") if user else "",
                                             "userEmail": (user.email or "") if user else "",
                                             "shortDuration": short})


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
                              "state": job.state, "emission": ctx.cfg.main.get("emission-constant") or None})


@bp.route("/config", methods=["GET"])
@page_route
async def config_page() -> Response:
    viewer = g.viewer
    page: dict[str, Any] = {"canSignTokens": bool(_ctx().cfg.secret("JWT_PRIVATE_KEY"))}
    if viewer.has("admin"):
        page["notice"] = _notice()
    return await render("config.html", "Settings - ClusterCockpit", nav="config", script="config", page=page)


# -- lists: users, projects, tags ---------------------------------------------------------------

@bp.route("/monitoring/users/", methods=["GET"])
@page_route
async def users_page() -> Response:
    if auth_level(g.viewer) < LEVELS["manager"]:
        return await forbidden("The user list is for managers, support staff and administrators.")
    return await render("list.html", "Users - ClusterCockpit", nav="users", script="list", page={"listType": "USER"})


@bp.route("/monitoring/projects/", methods=["GET"])
@page_route
async def projects_page() -> Response:
    if auth_level(g.viewer) < LEVELS["manager"]:
        return await forbidden("The project list is for managers, support staff and administrators.")
    return await render("list.html", "Projects - ClusterCockpit", nav="projects", script="list",
                        page={"listType": "PROJECT"})


def tag_counts(conn, viewer: Viewer) -> dict[str, list[dict[str, Any]]]:
    """Tag type -> its visible tags with the number of visible jobs carrying each (cc-backend's tag list:
    below support level, global and admin tags only when some visible job has them)."""
    where = build_where(None, viewer)
    counts = dict(conn.execute("SELECT jobtag.tag_id, COUNT(*) FROM jobtag JOIN job ON job.id = jobtag.job_id"
                               f"{where.sql()} GROUP BY jobtag.tag_id", where.params).fetchall())
    staff = auth_level(viewer) >= LEVELS["support"]
    out: dict[str, list[dict[str, Any]]] = {}
    for t in tagsdb.list_tags(conn, viewer):
        n = counts.get(t.id, 0)
        if not staff and t.scope in ("global", "admin") and n < 1:
            continue
        out.setdefault(t.type, []).append({"id": t.id, "name": t.name, "scope": t.scope, "count": n})
    return out


@bp.route("/monitoring/tags/", methods=["GET"])
@page_route
async def tags_page() -> Response:
    tagmap = await _ctx().db.read(tag_counts, g.viewer)
    return await render("tags.html", "Tags - ClusterCockpit", nav="tags", script="tags", page={"tagmap": tagmap})


# -- cluster views: nodes, node, status, analysis -----------------------------------------------

async def _cluster_view(cluster: str, nav: str, level: str, what: str) -> Response | None:
    """None if the viewer may open this cluster view, else the error page."""
    if auth_level(g.viewer) < LEVELS[level]:
        who = "administrators" if level == "admin" else "support staff and administrators"
        return await forbidden(f"The {what} view is for {who}.", nav=nav)
    if cluster not in _ctx().clusters:
        return await message_page("Unknown cluster", f"There is no cluster {cluster!r}.", 404, nav=nav, kind="danger")
    return None


def _range_args() -> dict[str, Any]:
    """?from=&to= (unix seconds or RFC 3339) and ?range= of the node views, passed to the page as given."""
    out: dict[str, Any] = {}
    for key in ("from", "to", "range", "metric", "node", "subCluster"):
        v = request.args.get(key)
        if v:
            out[key] = v[:100]
    return out


@bp.route("/monitoring/systems/<cluster>", methods=["GET"])
@page_route
async def systems_page(cluster: str) -> Response:
    err = await _cluster_view(cluster, "nodes", "support", "nodes")
    if err is not None:
        return err
    return await render("systems.html", f"Nodes of {cluster} - ClusterCockpit", nav="nodes", script="systems",
                        page={"cluster": cluster, "args": _range_args()})


@bp.route("/monitoring/systems/list/<cluster>", methods=["GET"])
@bp.route("/monitoring/systems/list/<cluster>/<subcluster>", methods=["GET"])
@page_route
async def node_list_page(cluster: str, subcluster: str = "") -> Response:
    """cc-backend's node list: one row per node with its running jobs and plots of the chosen metrics."""
    err = await _cluster_view(cluster, "nodes", "support", "node list")
    if err is not None:
        return err
    if subcluster and _ctx().clusters[cluster].subcluster(subcluster) is None:
        return await message_page("Unknown subcluster", f"Cluster {cluster!r} has no subcluster {subcluster!r}.", 404,
                                  nav="nodes", kind="danger")
    args = _range_args()
    for key in ("state", "page"):
        if v := request.args.get(key):
            args[key] = v[:100]
    title = f"Nodes of {cluster}{' / ' + subcluster if subcluster else ''} - ClusterCockpit"
    return await render("nodelist.html", title, nav="nodes", script="nodelist",
                        page={"cluster": cluster, "subCluster": subcluster, "args": args})


@bp.route("/monitoring/node/<cluster>/<host>", methods=["GET"])
@page_route
async def node_page(cluster: str, host: str) -> Response:
    err = await _cluster_view(cluster, "nodes", "support", "node")
    if err is not None:
        return err
    sc = _ctx().clusters[cluster].subcluster_for_host(host)
    return await render("node.html", f"Node {host} ({cluster}) - ClusterCockpit", nav="nodes", script="node",
                        page={"cluster": cluster, "host": host, "subCluster": sc.name if sc else "",
                              "args": _range_args()})


@bp.route("/monitoring/status/<cluster>", methods=["GET"])
@page_route
async def status_page(cluster: str) -> Response:
    err = await _cluster_view(cluster, "status", "admin", "status")
    if err is not None:
        return err
    return await render("status.html", f"Status of {cluster} - ClusterCockpit", nav="status", script="status",
                        page={"cluster": cluster})


@bp.route("/monitoring/analysis/<cluster>", methods=["GET"])
@page_route
async def analysis_page(cluster: str) -> Response:
    err = await _cluster_view(cluster, "analysis", "support", "analysis")
    if err is not None:
        return err
    return await render("analysis.html", f"Analysis of {cluster} - ClusterCockpit", nav="analysis",
                        script="analysis", page={"cluster": cluster})


# -- search bar ---------------------------------------------------------------------------------

def _visible_value(conn, viewer: Viewer, column: str, value: str) -> str | None:
    """``value`` if a job the viewer may see has it in ``column`` (hpc_user or project)."""
    where = build_where(None, viewer)
    where.add(f"job.{column} = ?", value)
    row = conn.execute(f"SELECT job.{column} FROM job{where.sql()} LIMIT 1", where.params).fetchone()
    return row[0] if row else None


def _users_by_name(conn, viewer: Viewer, term: str) -> list[str]:
    """Usernames whose full name contains ``term`` and who have jobs the viewer may see."""
    where = build_where(None, viewer)
    where.add("job.hpc_user = hpc_user.username")
    rows = conn.execute("SELECT hpc_user.username FROM hpc_user WHERE hpc_user.name LIKE ? ESCAPE '\\' AND EXISTS "
                        f"(SELECT 1 FROM job{where.sql()}) ORDER BY hpc_user.username LIMIT 100",
                        [f"%{like_escape(term)}%", *where.params]).fetchall()
    return [r[0] for r in rows]


def _jobs_url(**params: str) -> str:
    return "/monitoring/jobs/?" + urlencode(params)


@bp.route("/search", methods=["GET"])
@page_route
async def search() -> Response:
    """cc-backend's search bar: ``keyword:term`` goes to that list, a bare term to the first match of
    job id -> username -> user's full name -> project -> job name (names and projects for managers and up)."""
    ctx = _ctx()
    viewer = g.viewer
    staff = auth_level(viewer) >= LEVELS["manager"]
    text = (request.args.get("searchId") or "").strip()
    if not text:
        return await message_page("Search", "Empty search.", 400, kind="warning")
    parts = [p.strip() for p in text.split(":")]
    if len(parts) == 2:
        key, term = parts
        if not term:
            return await message_page("Search", f"Nothing to search for after '{key}:'.", 400, kind="warning")
        if key == "jobId":
            return redirect(_jobs_url(jobId=term), 302)
        if key == "jobName":
            return redirect(_jobs_url(startTime="last30d", jobName=term), 302)
        if key == "projectId":
            return redirect(_jobs_url(projectMatch="eq", project=term), 302)
        if key == "arrayJobId":
            if not term.isdigit():
                return await message_page("Search", "arrayJobId: expected a number.", 400, kind="warning")
            return redirect(_jobs_url(startTime="last30d", arrayJobId=term), 302)
        if key in ("username", "name"):
            if not staff:
                return await forbidden("Searching users needs the manager, support or admin role.")
            if key == "username":
                return redirect("/monitoring/users/?" + urlencode({"user": term, "startTime": "last30d"}), 302)
            found = await ctx.db.read(_users_by_name, viewer, term)
            query = [("user", u) for u in found] or [("user", "NoUserNameFound")]
            return redirect("/monitoring/users/?" + urlencode([*query, ("startTime", "last30d")]), 302)
        return await message_page("Search", f"Unknown search type: {key} (jobId, jobName, projectId, arrayJobId, "
                                  "username, name).", 400, kind="warning")
    if len(parts) != 1:
        return await message_page("Search", "Malformed search: use 'term' or 'type:term'.", 400, kind="warning")
    term = parts[0]
    if term.isdigit():
        return redirect(_jobs_url(jobId=term), 302)
    user = await ctx.db.read(_visible_value, viewer, "hpc_user", term)
    if user is None and staff:
        names = await ctx.db.read(_users_by_name, viewer, term)
        user = names[0] if names else None
    if user is not None and (user == viewer.username or staff):
        return redirect("/monitoring/user/" + quote(user, safe=""), 302)
    project = await ctx.db.read(_visible_value, viewer, "project", term)
    if project is not None:
        return redirect(_jobs_url(projectMatch="eq", project=project), 302)
    return redirect(_jobs_url(startTime="last30d", jobName=term), 302)
