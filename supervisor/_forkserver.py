"""The fork server: one process that imports the children's code once and forks them.

Why: six Python processes that each import trio, numpy, Quart, graphql-core ... hold
about 25 MiB of private memory apiece, almost all of it module objects.  Children forked
from one process that already imported everything share those pages copy-on-write (the
garbage collector is kept off them with ``gc.freeze()``), so a child costs ~7 MiB instead,
and a restarted child is serving in milliseconds instead of after a second of imports.

Protocol (over a ``SOCK_SEQPACKET`` socket pair with the supervisor, one request at a time):
the supervisor sends an orjson request ``{"name", "module", "args", "env", "cwd", "fds"}`` with file
descriptors attached (``SCM_RIGHTS``): the first becomes the child's stdout and stderr, the
others are placed at the numbers listed in ``fds`` (the numbers the child's arguments name).
The answer is ``{"pid": N}`` or ``{"error": "..."}``.

Each child is forked twice (fork server -> short-lived middle process -> child), so that
it is re-parented to the supervisor, which is a child subreaper: the supervisor waits for
its children, signals them and sees them exit exactly as if it had started them itself,
and a crash of the fork server takes no child with it.

This module runs as ``python -m supervisor._forkserver --socket-fd N --preload M,...``.
"""

from __future__ import annotations

import argparse
import array
import fcntl
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass

import orjson
import setproctitle

MAX_MESSAGE = 1 << 20
MAX_FDS = 16
REPARENT_TIMEOUT = 10.0


@dataclass
class Request:
    name: str  # shown by ps/top, as "name: python -m module args"
    module: str
    args: list[str]
    env: dict[str, str]
    cwd: str
    targets: list[int]  # where the passed descriptors (after the log) must end up


def _recv_request(sock: socket.socket) -> tuple[Request, list[int]] | None:
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(MAX_FDS * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
            fds.extend(a)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    try:
        msg = orjson.loads(data)
        req = Request(name=str(msg["name"]), module=str(msg["module"]), args=[str(a) for a in msg["args"]],
                      env={str(k): str(v) for k, v in msg["env"].items()}, cwd=str(msg["cwd"]),
                      targets=[int(t) for t in msg["fds"]])
        if len(fds) != 1 + len(req.targets):
            raise ValueError(f"{len(fds)} descriptors for {req.module}, expected {1 + len(req.targets)}")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return req, fds


def _fork_child(req: Request, fds: list[int]) -> int:
    """Fork via a middle process: the child's pid in the fork server, 0 in the child."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:  # middle process: fork the child, tell its pid, leave
        os.close(r)
        global _middle_pid
        _middle_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError as e:
            os.write(w, b"-" + str(e).encode())
            os._exit(1)
        if pid == 0:
            os.close(w)
            return 0
        os.write(w, str(pid).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 512):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(middle, 0)
    answer = b"".join(chunks)
    if not answer or answer.startswith(b"-"):
        raise OSError(f"cannot fork {req.module}: {answer[1:].decode() or 'middle process died'}")
    return int(answer)


_middle_pid = 0  # in a forked child: the process it must wait to be re-parented from


def serve(sock: socket.socket) -> tuple[Request, list[int]] | None:
    """Answer requests until the supervisor closes the socket (None); in a forked child, return its request."""
    while True:
        try:
            got = _recv_request(sock)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as e:
            sock.send(orjson.dumps({"error": f"bad request: {e}"}))
            continue
        if got is None:
            return None
        try:
            pid = _fork_child(*got)
        except OSError as e:
            answer = {"error": str(e)}
        else:
            if pid == 0:
                sock.close()
                return got
            answer = {"pid": pid}
        for fd in got[1]:
            os.close(fd)
        sock.send(orjson.dumps(answer))


def _place_fds(log_fd: int, fds: list[int], targets: list[int]) -> None:
    """stdin from /dev/null, stdout+stderr to the log, passed sockets at their numbers, nothing else open."""
    above = max([2, log_fd, *fds, *targets]) + 1  # park them above every number involved first
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in [log_fd, *fds]]
    for fd in [log_fd, *fds]:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(high[0], 1)
    os.dup2(high[0], 2)
    for src, dst in zip(high[1:], targets, strict=True):
        os.dup2(src, dst, inheritable=False)
    keep = {0, 1, 2, *targets}
    for fd in [null, *high]:
        if fd not in keep:
            os.close(fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory listing's own descriptor


def _become_child(req: Request, fds: list[int]) -> None:
    """Turn a fresh fork into the process ``python -m MODULE ARGS`` would have been."""
    deadline = time.monotonic() + REPARENT_TIMEOUT
    while os.getppid() == _middle_pid and time.monotonic() < deadline:
        time.sleep(0.0005)  # the middle process exits right after telling our pid
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _place_fds(fds[0], fds[1:], req.targets)
    os.environ.clear()
    os.environ.update(req.env)
    os.chdir(req.cwd)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    sys.argv = [req.module, *req.args]
    setproctitle.setproctitle(f"{req.name}: python -m {req.module} {' '.join(req.args)}")
    gc.enable()


def run_child(req: Request) -> int:
    import runpy

    try:
        runpy.run_module(req.module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def preload(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # the child itself will report it properly when it runs
            logging.getLogger("forkserver").warning("cannot preload %s: %s", name, e)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m supervisor._forkserver",
                                description="fork the supervisor's children from one pre-imported process")
    p.add_argument("--socket-fd", type=int, required=True, help="SOCK_SEQPACKET socket to the supervisor")
    p.add_argument("--preload", default="", help="comma-separated modules to import before forking")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the supervisor; it stops us by closing the socket
    sock = socket.socket(fileno=args.socket_fd)
    setproctitle.setproctitle(setproctitle.getproctitle())  # claims argv+environ memory while environ is intact
    gc.disable()
    from cc.logformat import configure

    configure("forkserver")  # the common format of var/log/*.log; a forked child sets up its own
    preload([m for m in args.preload.split(",") if m])
    gc.collect()
    from cc.proc import release_free_heap

    release_free_heap()
    gc.freeze()  # the children must not dirty the shared pages by collecting them
    logging.getLogger("forkserver").info("forkserver ready (pid %d, %d modules)", os.getpid(), len(sys.modules))
    got = serve(sock)
    if got is None:
        return 0
    req, fds = got
    _become_child(req, fds)
    return run_child(req)


if __name__ == "__main__":
    sys.exit(main())
