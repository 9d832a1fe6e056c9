"""Packaging for nodes: the agent imports only what requirements-agent.txt installs, and the
systemd unit is one systemd accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"quart", "hypercorn", "numpy", "pyarrow", "graphql", "ldap3", "jwt", "authlib", "jsonschema",
         "zstandard", "posix_ipc", "bcrypt", "yaml", "setproctitle"}


def _closure(reqs: list[str]) -> set[str]:
    """Distribution names of ``reqs`` and everything they require (without extras)."""
    seen: set[str] = set()
    todo = [re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in reqs]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[<>=!~;\[ (]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return seen


_BLOCKER = """
import importlib.abc, sys
allowed = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top == "cc" or top in allowed:
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not in requirements-agent.txt)")
sys.meta_path.insert(0, Block())
import cc.agent.cli, cc.agent.agent, cc.agent.check, cc.nats._bridge
sys.exit(cc.agent.cli.main(["--once", "--collectors", "loadavg", "-loglevel", "error"]))
"""


def test_agent_runs_with_only_the_agent_requirements_importable():
    """As in a venv holding only requirements-agent.txt: every other third-party module is refused."""
    reqs = [x.strip() for x in (ROOT / "requirements-agent.txt").read_text().splitlines()
            if x.strip() and not x.startswith("#")]
    allowed = _closure(reqs)
    modules = {m for m, ds in metadata.packages_distributions().items()
               if any(d.lower().replace("_", "-") in allowed for d in ds)}
    assert not modules & HEAVY
    r = subprocess.run([sys.executable, "-c", _BLOCKER, ",".join(sorted(modules))], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("load_one,") and "proc_run," in r.stdout
    for req in reqs:  # each of them is a dependency the project declares
        assert re.split(r"[<>=!~]", req)[0].lower() in (ROOT / "pyproject.toml").read_text().lower()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "contrib/systemd/cc-agent.service").read_text()
    exe = tmp_path / "cc-agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "cc-agent.service").write_text(unit.replace("/opt/cc-agent/bin/cc-agent", str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "cc-agent.service")],
                       capture_output=True, text=True)
    problems = [x for x in (r.stdout + r.stderr).splitlines()
                if "cc-agent.service" in x and "user" not in x.lower()]  # the cc-agent user exists on nodes only
    assert r.returncode == 0 or not problems, r.stdout + r.stderr
    assert not problems, problems
