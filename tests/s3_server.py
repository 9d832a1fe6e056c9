"""A real S3-protocol server (``moto_server`` from moto[server]) on 127.0.0.1 for tests and benchmarks, stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cc.proc import stop_subprocess

ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return _exe() is not None


def _exe() -> str | None:
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server")


class S3Server:
    """``moto_server -H 127.0.0.1 -p PORT``; :meth:`bucket` creates a bucket with a PUT."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> S3Server:
        exe = _exe()
        if exe is None:
            raise RuntimeError("moto_server not installed (pip install 'moto[server]')")
        log = open(self.dir / "moto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.dir / 'moto.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on port {self.port} within {timeout}s")

    def bucket(self, name: str) -> str:
        req = urllib.request.Request(f"{self.endpoint}/{name}", data=b"", method="PUT")
        with urllib.request.urlopen(req, timeout=30):
            pass
        return name

    def settings(self, bucket: str) -> dict:
        """The archive keys of config.json for this server."""
        return {"endpoint": self.endpoint, "bucket": bucket, "access-key": ACCESS_KEY, "secret-key": SECRET_KEY,
                "region": "us-east-1", "use-path-style": True}

    def stop(self) -> None:
        if self.proc is not None:
            stop_subprocess(self.proc, 10)
            self.proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
