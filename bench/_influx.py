"""Start InfluxDB 1.x (Debian package ``influxdb``) on free ports with all state in a temp dir.

Only used as a comparison peer by ``bench/ingest.py``; see /work/shared/notes/real-servers.md.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port


def available() -> str | None:
    """Path of ``influxd`` or None."""
    return shutil.which("influxd")


def version() -> str:
    try:
        return subprocess.run(["influxd", "version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _patched_config(text: str, tmp: Path, http_port: int, rpc_port: int) -> str:
    changes = {
        "": {"bind-address": f'"127.0.0.1:{rpc_port}"', "reporting-enabled": "false"},
        "meta": {"dir": f'"{tmp}/meta"', "logging-enabled": "false"},
        "data": {"dir": f'"{tmp}/data"', "wal-dir": f'"{tmp}/wal"', "query-log-enabled": "false"},
        "monitor": {"store-enabled": "false"},
        "http": {"bind-address": f'"127.0.0.1:{http_port}"', "log-enabled": "false", "pprof-enabled": "false",
                 "bind-socket": f'"{tmp}/influxdb.sock"'},
        "logging": {"level": '"warn"', "suppress-logo": "true"},
    }
    out, section = [], ""
    for line in text.splitlines():
        m = re.match(r"\s*\[\[?([A-Za-z_-]+)\]\]?\s*$", line)
        if m:
            section = m.group(1)
        else:
            kv = re.match(r"(\s*)([A-Za-z-]+)\s*=", line)
            if kv and kv.group(2) in changes.get(section, {}):
                line = f"{kv.group(1)}{kv.group(2)} = {changes[section][kv.group(2)]}"
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Influx:
    port: int
    proc: subprocess.Popen
    dir: Path

    def query(self, q: str) -> bytes:
        data = urllib.parse.urlencode({"q": q}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/query", data=data, timeout=30) as r:
            return r.read()

    def rss(self) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


@contextlib.contextmanager
def running() -> Iterator[Influx]:
    tmp = Path(tempfile.mkdtemp(prefix="ccbench-influx-"))
    proc = None
    try:
        base = subprocess.run(["influxd", "config"], capture_output=True, text=True, timeout=30).stdout
        port, rpc = free_port(), free_port()
        conf = tmp / "influxdb.conf"
        conf.write_text(_patched_config(base, tmp, port, rpc))
        log = open(tmp / "influxd.log", "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("influxd exited:\n" + (tmp / "influxd.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 204:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError("influxd did not answer /ping within 30 s")
            time.sleep(0.1)
        yield Influx(port, proc, tmp)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
