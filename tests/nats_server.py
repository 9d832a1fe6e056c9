"""A real nats-server (Debian's, 2.9) on 127.0.0.1 for tests, benchmarks and the demo, stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from cc.proc import stop_subprocess


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """``nats-server -a 127.0.0.1 -p PORT`` (``jetstream``: ``-js -sd DIR``); ``restart`` keeps the port."""

    def __init__(self, workdir: Path, *, jetstream: bool = False, user: str | None = None,
                 password: str | None = None, port: int | None = None, extra_conf: str | None = None):
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.exe = exe
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.jetstream = jetstream
        self.user, self.password = user, password
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [self.exe, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.dir / "js")]
        if self.user:
            argv += ["--user", self.user, "--pass", self.password or ""]
        if self.extra_conf:
            conf = self.dir / "server.conf"
            conf.write_text(self.extra_conf)
            argv += ["-c", str(conf)]
        return argv

    def start(self, timeout: float = 10) -> NatsServer:
        log = open(self.dir / "nats-server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4096).startswith(b"INFO"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not come up on {self.port}: {self.log()[-2000:]}")

    def stop(self) -> None:
        stop_subprocess(self.proc, 10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        p = self.dir / "nats-server.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
