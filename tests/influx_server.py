"""A real InfluxDB 1.x (Debian's influxd) on 127.0.0.1 for tests, its data under a temporary directory."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from cc.proc import stop_subprocess
from tests.helpers import free_port


def available() -> bool:
    return shutil.which("influxd") is not None


class InfluxServer:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        conf = subprocess.run(["influxd", "config"], capture_output=True, text=True, check=True).stdout
        d = self.dir
        conf = conf.replace("/var/lib/influxdb/meta", str(d / "meta")).replace(
            "/var/lib/influxdb/data", str(d / "data")).replace("/var/lib/influxdb/wal", str(d / "wal"))
        conf = conf.replace('bind-address = "127.0.0.1:8088"', f'bind-address = "127.0.0.1:{free_port()}"')
        conf = re.sub(r'(\[http\][^\[]*?)bind-address = ":8086"', rf'\1bind-address = "127.0.0.1:{self.port}"',
                      conf, flags=re.S)
        conf = conf.replace("store-enabled = true", "store-enabled = false")
        conf = re.sub(r"(\[http\][^\[]*?)log-enabled = true", r"\1log-enabled = false", conf, flags=re.S)
        conf = conf.replace("query-log-enabled = true", "query-log-enabled = false")
        conf = conf.replace("reporting-enabled = true", "reporting-enabled = false")
        path = d / "influxdb.conf"
        path.write_text(conf)
        return path

    def start(self, timeout: float = 60) -> InfluxServer:
        conf = self._config()
        log = open(self.dir / "influxd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited: {(self.dir / 'influxd.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("influxd did not answer /ping")

    def query(self, q: str, db: str | None = None) -> dict:
        params = {"q": q, **({"db": db} if db else {})}
        r = httpx.post(f"{self.url}/query", params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc is not None:
            stop_subprocess(self.proc, 10)
            self.proc = None
