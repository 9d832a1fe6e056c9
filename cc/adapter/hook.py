"""Prolog/Epilog mode: hand slurmctld's job event to the running daemon, never block Slurm.

slurmctld runs ``PrologSlurmctld``/``EpilogSlurmctld`` with the job in ``SLURM_*``
variables; a non-zero exit would make Slurm fail the job, so every problem here is
reported on stderr and the exit code stays 0.  The message is the JSON object
cc-slurm-adapter sends (all variables as strings, empty when unset), so either
adapter's hook talks to either daemon.  Only the standard library is imported:
slurmctld waits for this process.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from cc.adapter.config import parse_sock_addr

# The variables slurmctld sets for PrologSlurmctld/EpilogSlurmctld (Slurm's prolog_epilog docs).
ENV_NAMES = (
    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
    "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "SLURM_CLUSTER_NAME", "SLURM_JOB_ACCOUNT",
    "SLURM_JOB_COMMENT", "SLURM_JOB_CONSTRAINTS", "SLURM_JOB_CPUS_PER_NODE", "SLURM_JOB_DERIVED_EC",
    "SLURM_JOB_END_TIME", "SLURM_JOB_EXIT_CODE", "SLURM_JOB_EXIT_CODE2", "SLURM_JOB_EXTRA", "SLURM_JOB_GID",
    "SLURM_JOB_GROUP", "SLURM_JOB_ID", "SLURM_JOB_LICENSES", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST",
    "SLURM_JOB_NUM_NODES", "SLURM_JOB_OVERSUBSCRIBE", "SLURM_JOB_PARTITION", "SLURM_JOB_RESERVATION",
    "SLURM_JOB_RESTART_COUNT", "SLURM_JOB_START_TIME", "SLURM_JOB_STDERR", "SLURM_JOB_STDIN", "SLURM_JOB_STDOUT",
    "SLURM_JOB_UID", "SLURM_JOB_USER", "SLURM_JOB_WORK_DIR", "SLURM_SCRIPT_CONTEXT", "SLURM_WCKEY",
)
CONTEXTS = ("prolog_slurmctld", "epilog_slurmctld")


class HookError(Exception):
    """Not a slurmctld Prolog/Epilog environment, or the daemon is unreachable (message says which)."""


def collect_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The event message from a Prolog/Epilog environment; raises when it is not one."""
    if not environ.get("SLURM_JOB_ID"):
        raise HookError("SLURM_JOB_ID is not set: not running as slurmctld Prolog/Epilog "
                        "(start the daemon with -daemon)")
    ctx = environ.get("SLURM_SCRIPT_CONTEXT", "")
    if ctx not in CONTEXTS:
        raise HookError(f"SLURM_SCRIPT_CONTEXT is {ctx!r}; expected one of {', '.join(CONTEXTS)} "
                        "(use PrologSlurmctld/EpilogSlurmctld, not the slurmd Prolog)")
    return {name: environ.get(name, "") for name in ENV_NAMES}


def send_event(address: str, message: dict[str, str], timeout: float = 5.0) -> None:
    """Write the message to the daemon's socket and close it (the daemon reads until EOF)."""
    kind, addr = parse_sock_addr(address)
    data = json.dumps(message).encode()
    try:
        if kind == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(addr)
                s.sendall(data)
        else:
            with socket.create_connection((addr[0] or "127.0.0.1", addr[1]), timeout=timeout) as s:
                s.sendall(data)
    except OSError as e:
        raise HookError(f"cannot reach the cc-adapter daemon at {address} ({e.strerror or e}); is it running? "
                        "The next poll will pick the job up") from None


def hook_main(connect_path: str, environ: dict[str, str] | os._Environ | None = None) -> int:
    """Prolog/Epilog entry point: always 0, so Slurm never fails a job because of the adapter."""
    try:
        msg = collect_env(os.environ if environ is None else environ)
        send_event(connect_path, msg)
    except HookError as e:
        print(f"cc-adapter: {e}", file=sys.stderr)
    except Exception as e:  # never let an unexpected error fail the job
        print(f"cc-adapter: unexpected error in Prolog/Epilog mode: {type(e).__name__}: {e}", file=sys.stderr)
    return 0
