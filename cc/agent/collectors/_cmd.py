"""Running the external commands some collectors read (lctl, nfsstat, mmpmon...): found once, run with a timeout.

The command path is always configurable (upstream's ``lctl_command``, ``nfsstat``...), which is also
how the tests point a collector at a script printing recorded output.
"""

from __future__ import annotations

import shutil
import subprocess

from cc.agent.collectors._base import CollectorUnavailable

#: no round waits longer than this for one command
TIMEOUT = 10.0


class CommandFailed(OSError):
    """The command exited non-zero, timed out or could not be started."""


def find_command(configured: str | None, default: str, what: str) -> str:
    """The absolute path of ``configured`` (or ``default``) on PATH; CollectorUnavailable when missing."""
    name = configured or default
    path = shutil.which(name)
    if path is None:
        raise CollectorUnavailable(f"{what}: command {name!r} not found (or not executable)")
    return path


def run_command(argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
                ok_codes: range | tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> str:
    """The command's standard output; CommandFailed (with its stderr's last line) for other exit codes."""
    timeout = TIMEOUT if timeout is None else timeout
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{argv[0]}: no answer within {timeout:g} s") from None
    except OSError as e:
        raise CommandFailed(f"{argv[0]}: {e.strerror}") from None
    if p.returncode not in ok_codes:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CommandFailed(f"{argv[0]} exited with {p.returncode}" + (f": {err[-1]}" if err else ""))
    return p.stdout.decode("utf-8", "replace")
