"""``main.user`` / ``main.group``: started as root, every process ends up as the configured user.

Needs root (as in CI): the test creates a system user ``ccpy-test`` when it is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pytest

from cc.config import ConfigError, load_config
from tests.helpers import ROOT, Installation
from tests.test_tls import make_cert

USER = "ccpy-test"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


def ids_of(pid: int) -> tuple[set[int], set[int], set[int]]:
    """(real/effective/saved/fs uids, gids, supplementary groups) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return ({int(x) for x in fields["Uid"].split()}, {int(x) for x in fields["Gid"].split()},
            {int(x) for x in fields["Groups"].split()})


def privileged_port() -> int:
    """A free port below 1024 (binding it needs root: the ports are taken before root is dropped)."""
    for port in range(900, 1024):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


@pytest.fixture
def site():
    # pytest's tmp_path lives below a 0700 directory of root: the service user could not even read config.json
    d = Path(tempfile.mkdtemp(prefix="cc-priv-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unknown_user_or_group_is_named(tmp_path):
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"user": "no-such-user-here"}}))
    with pytest.raises(ConfigError, match="main.user: no user 'no-such-user-here'"):
        load_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"group": "no-such-group-here"}}))
    with pytest.raises(ConfigError, match="main.group: no group 'no-such-group-here'"):
        load_config(tmp_path / "config.json")


def python_for(user: str) -> tuple[str, dict[str, str] | None]:
    """An interpreter the service user can run, with our packages.

    Ours, when the user can read it (CI: Debian's python3); a Python under a home directory
    closed to others (pyenv in /root) falls back to the system's python3 of the same version
    with our site-packages on PYTHONPATH.
    """
    try:
        probe = subprocess.run([sys.executable, "-c", "import sqlite3, cc"], user=user, capture_output=True,
                               cwd="/", env={**os.environ, "PYTHONPATH": str(ROOT)})
    except PermissionError:  # cannot even be exec'd
        probe = None
    if probe is not None and probe.returncode == 0:
        return sys.executable, None
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"{sys.executable} is not readable by {user} and there is no {system}")
    site_packages = sysconfig.get_paths()["purelib"]
    return system, {**os.environ, "PYTHONPATH": f"{ROOT}:{site_packages}"}


@root_only
def test_an_unreachable_interpreter_is_named(site):
    """Where our Python lies below a directory the user cannot enter, start-up says so (no crash loop)."""
    service_user()
    if python_for(USER)[0] == sys.executable:
        pytest.skip("the service user can run this interpreter")
    inst = Installation(site / "cc", ingest_workers=1, extra_config={"main": {"user": USER}})
    r = inst.cli("run", timeout=60)
    assert r.returncode == 1 and "Python" in r.stderr and f"not readable by user {USER}" in r.stderr, r.stderr


@root_only
def test_processes_run_as_the_configured_user(site):
    pw = service_user()
    inst = Installation(site / "cc", ingest_workers=2)
    inst.python, inst.env = python_for(USER)
    assert inst.cli("add-user", "admin:admin:pw-admin").returncode == 0
    # a first run as root leaves root-owned files behind (database, logs, checkpoints) ...
    inst.start()
    inst.stop()
    assert (inst.cfg.db_path.stat().st_uid, (inst.cfg.log_dir / "web.log").stat().st_uid) == (0, 0)
    # ... then the site adds main.user / main.group and a privileged port
    cfg = orjson.loads(inst.cfg.path.read_bytes())
    port = privileged_port()
    secret = site / "secret"  # the key stays root's alone, as in /etc/ssl/private
    secret.mkdir(mode=0o700)
    cert, key = make_cert(secret)
    cfg["main"].update({"user": USER, "group": USER, "addr": f"127.0.0.1:{port}",
                        "https-cert-file": str(cert), "https-key-file": str(key)})
    inst.cfg.path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2))
    inst.cfg = load_config(inst.cfg.path)
    inst.verify = ssl.create_default_context(cafile=str(cert))
    env_mode = (inst.root / ".env").stat()
    inst.start()
    try:
        assert inst.web == f"https://127.0.0.1:{port}"
        st = inst.status()
        pids = {p["name"]: p["pid"] for p in st["processes"]} | {"supervisor": st["supervisor"]["pid"]}
        assert {"supervisor", "forkserver", "store", "web", "archiver", "ingest-0", "ingest-1"} <= set(pids)
        for name, pid in pids.items():
            uids, gids, groups = ids_of(pid)
            assert uids == {pw.pw_uid} and gids == {pw.pw_gid} and groups <= set(os.getgrouplist(USER, pw.pw_gid)), \
                (name, uids, gids, groups)
        # everything works as that user: login writes a session into the database, ingest writes shm and WAL
        with httpx.Client(base_url=inst.web, timeout=30, verify=inst.verify) as c:
            assert c.post("/login", json={"username": "admin", "password": "pw-admin"}).status_code == 200
            assert c.get("/frontend/jwt/").status_code == 200
        t = int(time.time())
        assert inst.write(f"cpu_load,hostname=p1,type=node value=3 {t}\n").status_code == 200
        q = inst.query({"cluster": "c1", "from": t - 10, "to": t + 10, "queries": [{"metric": "cpu_load", "host": "p1"}]})
        assert 3 in q.json()["results"][0][0]["data"]
        # the web process serves the key it could not open itself (the supervisor handed it over)
        assert subprocess.run(["cat", str(key)], user=USER, capture_output=True).returncode != 0
        # a restarted child is that user as well
        assert inst.cli("restart", "web").returncode == 0
        inst.wait_ready()
        assert ids_of(inst.pid_of("web"))[0] == {pw.pw_uid}
        # what the processes own now; .env (secrets) stays root's
        for p in (inst.cfg.db_path, inst.cfg.log_dir / "web.log", inst.cfg.run_dir, inst.cfg.metric_store.checkpoint_dir):
            assert p.stat().st_uid == pw.pw_uid, p
        segments = list(Path("/dev/shm").glob(f"cc-{inst.instance}-*"))
        assert segments and all(s.stat().st_uid == pw.pw_uid for s in segments)
        assert (inst.root / ".env").stat().st_uid == env_mode.st_uid == 0
        assert (inst.root / ".env").stat().st_mode == env_mode.st_mode
        # an admin command run as root writes as the service user too
        r = inst.cli("add-user", "alice:user:pw-alice")
        assert r.returncode == 0, r.stderr
        assert inst.cfg.db_path.stat().st_uid == pw.pw_uid
    finally:
        inst.proc.send_signal(2)  # a clean stop by the supervisor itself, which is no longer root
        inst.proc.wait(60)
        left = inst.segments()
        inst.stop()
    out = inst.output()
    assert not left, out   # the user could remove its segments at the clean stop
    assert "running as user ccpy-test" in out and "Traceback" not in out, out
    logs = "".join(f.read_text(errors="replace") for f in inst.cfg.log_dir.glob("*.log"))
    assert "Permission denied" not in logs and "Traceback" not in logs, logs[-3000:]


@root_only
def test_another_non_root_user_cannot_switch(site):
    service_user()
    inst = Installation(site / "cc", ingest_workers=1, extra_config={"main": {"user": "root"}})
    for p in [site, *site.rglob("*")]:
        os.chown(p, pwd.getpwnam(USER).pw_uid, -1, follow_symlinks=False)
    python, env = python_for(USER)
    r = subprocess.run([python, "-m", "supervisor", "run", "--config", str(inst.cfg.path)], user=USER,
                       capture_output=True, text=True, timeout=60, cwd=inst.root, env=env)
    assert r.returncode == 1 and "main.user/main.group ask for user root" in r.stderr and "not root" in r.stderr, \
        r.stderr


@root_only
def test_hand_over_never_follows_links_nor_gives_away_the_configuration(site):
    """Root walks directories the service user could write: links planted there must not redirect a chown."""
    from supervisor._privileges import hand_over, identity_for

    pw = service_user()
    victim = site / "victim"          # stands for /etc/shadow: root's, outside the installation
    victim.write_text("secret")
    inst = Installation(site / "cc", ingest_workers=1,
                        extra_config={"main": {"user": USER}, "archive": {"path": "."}})  # archive = config dir
    (inst.cfg.log_dir).mkdir(parents=True, exist_ok=True)
    (inst.cfg.log_dir / "web.log").write_text("root's old log")
    (inst.cfg.log_dir / "evil-symlink").symlink_to(victim)
    (inst.cfg.log_dir / "evil-dir").symlink_to(site)
    os.link(victim, inst.cfg.var_dir / "evil-hardlink")   # (only root can plant this one here)
    n = hand_over(load_config(inst.cfg.path), identity_for(load_config(inst.cfg.path)))
    assert n > 0
    assert (inst.cfg.log_dir / "web.log").stat().st_uid == pw.pw_uid
    assert inst.cfg.var_dir.stat().st_uid == pw.pw_uid
    assert victim.stat().st_uid == 0 and site.stat().st_uid == 0          # links not followed, hard link skipped
    assert os.lstat(inst.cfg.log_dir / "evil-symlink").st_uid == pw.pw_uid  # the link itself is theirs anyway
    for f in (inst.cfg.path, inst.root / ".env", inst.root):                 # "archive.path: ." gives nothing away
        assert f.stat().st_uid == 0, f
