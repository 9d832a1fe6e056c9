"""The fork server and the supervisor's handling of forked children (supervisor/_forkserver.py, _forking.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from supervisor._forking import ForkServerClient, SpawnError, become_subreaper, reap_orphans, socket_pair
from tests.helpers import running

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def subreaper():
    """The test process plays the supervisor: forked children come back to it."""
    assert become_subreaper()
    yield
    become_subreaper(False)


@pytest.fixture
def forkserver(subreaper):
    ours, theirs = socket_pair()
    p = subprocess.Popen([sys.executable, "-m", "supervisor._forkserver", "--socket-fd", str(theirs.fileno()),
                          "--preload", "orjson,no_such_module_to_preload"],
                         pass_fds=(theirs.fileno(),), cwd=ROOT, stderr=subprocess.PIPE)
    theirs.close()
    yield ours, p
    ours.close()
    p.wait(10)


def read_all(fd: int) -> dict:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return orjson.loads(b"".join(chunks))


async def test_forked_child_gets_args_env_cwd_fds_and_log(forkserver, tmp_path):
    ours, server = forkserver
    client = ForkServerClient(ours)
    r, w = os.pipe()
    log = open(tmp_path / "child.log", "wb")  # noqa: SIM115
    child = await client.spawn("probe", "tests._forkchild", [str(w), "7"], env={"FORKTEST": "yes", "PATH": "/bin"},
                               cwd=str(tmp_path), log_fd=log.fileno(), pass_fds=(w,))
    log.close()
    os.close(w)
    report = await trio.to_thread.run_sync(read_all, r)
    assert report["name"] == "__main__" and report["argv"] == [str(w), "7"]
    assert report["ppid"] == os.getpid()  # re-parented to the subreaper, as in the supervisor
    assert report["cwd"] == str(tmp_path) and report["env"] == "yes"
    assert report["fds"] == sorted({0, 1, 2, w})
    assert report["cmdline"].startswith(f"probe: python -m tests._forkchild {w} 7")
    # two tasks may wait at once; both see the exit code
    codes = []
    async with trio.open_nursery() as n:
        for _ in range(2):
            n.start_soon(_wait, child, codes)
    assert codes == [7, 7]
    assert child.returncode == 7
    with pytest.raises(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    text = (tmp_path / "child.log").read_text()
    assert "to stdout" in text and "to stderr" in text


async def _wait(child, out):
    out.append(await child.wait())


async def test_signals_missing_modules_and_bad_requests(forkserver, tmp_path):
    ours, server = forkserver
    client = ForkServerClient(ours)
    log = open(tmp_path / "child.log", "wb")  # noqa: SIM115
    r, w = os.pipe()
    child = await client.spawn("sleeper", "tests._forkchild", [str(w), "wait"], env={}, cwd=str(tmp_path),
                               log_fd=log.fileno(), pass_fds=(w,))
    os.close(w)
    await trio.to_thread.run_sync(read_all, r)
    child.send_signal(signal.SIGTERM)
    assert await child.wait() == -signal.SIGTERM
    # a module that does not exist: the child reports it in its log and exits 1
    missing = await client.spawn("missing", "cc.no_such_module", [], env={}, cwd=str(tmp_path), log_fd=log.fileno())
    assert await missing.wait() == 1
    assert "No module named cc.no_such_module" in (tmp_path / "child.log").read_text()
    # a malformed request gets an error answer and the server goes on serving
    await client._sock.send(b"{not json")
    assert b"bad request" in await client._sock.recv(65536)
    await client._sock.send(orjson.dumps({"name": "x", "module": "x", "args": [], "env": {}, "cwd": "/", "fds": [5]}))
    assert b"0 descriptors for x, expected 2" in await client._sock.recv(65536)
    again = await client.spawn("missing", "cc.no_such_module", [], env={}, cwd=str(tmp_path), log_fd=log.fileno())
    assert await again.wait() == 1
    log.close()
    # the server leaves when the supervisor closes its end; further requests fail clearly
    ours.close()
    assert await trio.to_thread.run_sync(server.wait, 10) == 0
    assert b"cannot preload no_such_module_to_preload" in server.stderr.read()
    with pytest.raises(SpawnError):
        await client.spawn("late", "tests._forkchild", [], env={}, cwd=str(tmp_path), log_fd=0)


def test_orphans_are_reaped_but_not_known_children(subreaper):
    orphan_maker = subprocess.run(
        [sys.executable, "-c", "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(0.3)\n    os._exit(0)\n"
                               "print(pid)"], capture_output=True, text=True, check=True)
    orphan = int(orphan_maker.stdout)
    known = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    reaped: list[int] = []
    while orphan not in reaped and time.time() < deadline:
        time.sleep(0.05)
        reaped += reap_orphans({known.pid})
    assert orphan in reaped and known.pid not in reaped
    assert known.wait(10) == 0  # still ours to wait for


def test_supervisor_children_are_forked_and_survive_a_fork_server_crash(tmp_path):
    with running(tmp_path, ingest_workers=1) as inst:
        st = inst.status()
        sup = st["supervisor"]["pid"]
        pids = {p["name"]: p["pid"] for p in st["processes"]}
        assert set(pids) == {"forkserver", "store", "ingest-0", "web", "archiver"}
        for name in ("store", "ingest-0", "web", "archiver"):
            stat = Path(f"/proc/{pids[name]}/stat").read_text()
            assert int(stat[stat.rfind(")") + 2:].split()[1]) == sup, name
            cmdline = Path(f"/proc/{pids[name]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert cmdline.startswith(f"{name}: python -m cc."), cmdline
        os.kill(pids["forkserver"], signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline:
            now = {p["name"]: p["pid"] for p in inst.status()["processes"]}
            if now["forkserver"] and now["forkserver"] != pids["forkserver"]:
                break
            time.sleep(0.1)
        assert now["forkserver"] != pids["forkserver"]
        assert {k: v for k, v in now.items() if k != "forkserver"} == \
            {k: v for k, v in pids.items() if k != "forkserver"}  # nobody else noticed
        r = inst.cli("restart", "web")  # forked by the new fork server
        assert r.returncode == 0, r.stderr
        inst.wait_ready()
        assert inst.pid_of("web") != pids["web"]
        assert httpx.get(inst.web + "/api/healthz", timeout=5).status_code == 200
        # a child that dies while the fork server is gone is started once the new one is up
        fs, web = inst.pid_of("forkserver"), inst.pid_of("web")
        os.kill(fs, signal.SIGKILL)
        os.kill(web, signal.SIGKILL)
        time.sleep(0.5)
        inst.wait_ready()
        assert inst.pid_of("forkserver") != fs and inst.pid_of("web") != web
        stat = Path(f"/proc/{inst.pid_of('web')}/stat").read_text()
        assert int(stat[stat.rfind(")") + 2:].split()[1]) == sup
        log = inst.cli("logs", "forkserver")
        assert log.stdout.count("forkserver ready") == 3, log.stdout
