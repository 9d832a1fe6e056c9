"""``main.user`` / ``main.group``: give up root once what needs it is done.

Started as root, the supervisor binds the listening sockets (ports below 1024 need
root), opens the TLS key, reads ``.env``, and then becomes the configured user and group
for good (supplementary groups, gid, uid - in that order, and regaining root must then
fail), before it creates shared memory, opens the job database or starts any child.
So every child (forked by the fork server, itself started after the switch) runs as that
user, restarts included, and nothing the processes create belongs to root.

What they must write is handed to that user first: the ``var/`` tree below the
configuration directory (run, log, job database, notice, checkpoints), leftover
shared-memory segments of this installation and, on the first switch, the job archive
and Parquet directory when they lie below the configuration directory.  Directories
configured elsewhere are never chowned (a wrong path could be ``/``): they must be
writable by the user already, and start-up fails naming the key if they are not.
``.env`` stays root's: its values reach the children in their environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import logging
import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from cc.config import SECRETS_FROM_PARENT, Config
from cc.shm import instance_id
from cc.shm._segments import SHM_DIR

log = logging.getLogger("supervisor")

PR_SET_DUMPABLE = 4
# Where the standard library lies, found without importing anything (after the switch even a
# lazy import can fail, if the interpreter lies below a directory closed to the user).
STDLIB = Path(os.__file__).resolve().parent


class PrivilegeError(RuntimeError):
    """The configured user or group cannot be taken on (the message names the key)."""


@dataclass(frozen=True)
class Identity:
    user: str | None
    group: str | None
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str | None

    def describe(self) -> str:
        return f"user {self.user or self.uid} (uid {self.uid}), group {self.group or self.gid} (gid {self.gid})"


def identity_for(cfg: Config) -> Identity | None:
    """Who ``main.user``/``main.group`` name (None: neither is set)."""
    if not cfg.run_as_user and not cfg.run_as_group:
        return None
    pw = pwd.getpwnam(cfg.run_as_user) if cfg.run_as_user else None
    if cfg.run_as_group:
        gid = grp.getgrnam(cfg.run_as_group).gr_gid
    else:
        gid = pw.pw_gid if pw else os.getegid()
    uid = pw.pw_uid if pw else os.geteuid()
    groups = tuple(os.getgrouplist(pw.pw_name, gid)) if pw else (gid,)
    group = cfg.run_as_group or (grp.getgrgid(gid).gr_name if _has_group(gid) else None)
    return Identity(cfg.run_as_user, group, uid, gid, groups, pw.pw_dir if pw else None)


def _has_group(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def is_current(ident: Identity) -> bool:
    return os.geteuid() == ident.uid and os.getegid() == ident.gid


def _chown_at(name: str, dir_fd: int | None, ident: Identity) -> bool:
    """Chown one entry relative to an open directory, never through a symlink.

    Why so careful: root walks directories the service user can write.  Paths could be
    swapped for symlinks between listing and chown (so every step goes through directory
    descriptors), and a root-owned file with a second hard link could be a planted link to
    ``/etc/shadow`` (so those are skipped; ours never have one).
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (st.st_uid, st.st_gid) == (ident.uid, ident.gid):
        return False
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        log.warning("not handing %s to %s: it has %d hard links", name, ident.describe(), st.st_nlink)
        return False
    os.chown(name, ident.uid, ident.gid, dir_fd=dir_fd, follow_symlinks=False)
    return True


def _chown_tree(root: Path, ident: Identity, max_depth: int | None = None) -> int:
    """Chown ``root`` and what lies below it (down to ``max_depth`` levels) that is not the user's yet."""
    n = int(_chown_at(str(root), None, ident))
    if root.is_symlink() or not root.is_dir():
        return n
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames + filenames:
            n += _chown_at(name, dir_fd, ident)
        depth = len(Path(dirpath).relative_to(root).parts) + 1
        if max_depth is not None and depth >= max_depth:
            dirnames.clear()
    return n


def _inside(path: Path, base: Path) -> bool:
    """Strictly below ``base`` (never the configuration directory itself)."""
    try:
        p, b = path.resolve(), base.resolve()
    except OSError:
        return False
    return p != b and p.is_relative_to(b)


def _writable_dirs(cfg: Config) -> list[tuple[str, Path]]:
    """(config key, directory) the processes write into."""
    ms = cfg.metric_store
    out = [("var", cfg.var_dir), ("main.db", cfg.db_path.parent), ("archive.path", cfg.archive_path),
           ("metric-store.checkpoints.directory", ms.checkpoint_dir)]
    if ms.cleanup_dir is not None:
        out.append(("metric-store.cleanup.directory", ms.cleanup_dir))
    return out


def _holds_config(d: Path, cfg: Config) -> bool:
    """Would handing ``d`` over give the user config.json or .env (which root reads at the next start)?"""
    return any(_inside(f, d) for f in (cfg.path, cfg.base_dir / ".env"))


def hand_over(cfg: Config, ident: Identity) -> int:
    """As root: give the user what the processes write (see the module docstring); returns how many entries changed."""
    n = 0
    for _key, d in _writable_dirs(cfg):
        if not _inside(d, cfg.base_dir) or _holds_config(d, cfg) or not d.exists():
            continue
        if d == cfg.archive_path or d == cfg.metric_store.cleanup_dir:
            try:
                first = d.stat().st_uid != ident.uid
            except OSError:
                first = False
            if first:  # the first switch: the whole tree (may take a while on a big archive)
                log.info("handing %s to %s (first start as that user)", d, ident.describe())
            # later only the first levels (clusters, job-id buckets): what root tools may have added
            n += _chown_tree(d, ident, None if first else 2)
            continue
        n += _chown_tree(d, ident)
    for suffix in ("", "-wal", "-shm"):
        db = cfg.db_path.with_name(cfg.db_path.name + suffix)
        if db.exists() and _inside(db, cfg.base_dir):
            n += _chown_at(str(db), None, ident)
    for seg in Path(SHM_DIR).glob(f"cc-{instance_id(cfg.var_dir)}-*"):
        n += _chown_at(str(seg), None, ident)
    return n


def check_access(cfg: Config, ident: Identity) -> None:
    """After the switch: everything the processes read or write is within reach, else an error naming it."""
    import cc

    problems = []
    for key, d in _writable_dirs(cfg):
        if d.exists() and not os.access(d, os.W_OK | os.X_OK):
            problems.append(f"{key} {d} is not writable by {ident.describe()} (chown it to that user)")
    if cfg.db_path.exists() and not os.access(cfg.db_path, os.R_OK | os.W_OK):
        problems.append(f"main.db {cfg.db_path} is not writable by {ident.describe()} (chown it to that user)")
    for what, p, mode in (("the configuration", cfg.path, os.R_OK),
                          ("the program", Path(cc.__file__).resolve().parent, os.R_OK | os.X_OK),
                          ("the Python interpreter", Path(sys.executable).resolve(), os.R_OK | os.X_OK),
                          ("Python's standard library", STDLIB, os.R_OK | os.X_OK)):
        if not os.access(p, mode):  # the children are started by exec'ing it: they would die at once
            problems.append(f"{what} {p} is not readable by {ident.describe()}")
    if problems:
        raise PrivilegeError("main.user/main.group: " + "; ".join(problems))


def _export_secrets(cfg: Config) -> None:
    """``.env`` stays readable by root alone: its values go to the children in the environment instead."""
    for k, v in cfg.env.items():
        os.environ.setdefault(k, v)
    os.environ[SECRETS_FROM_PARENT] = "1"


def drop(ident: Identity) -> None:
    """Become ``ident`` for good: supplementary groups, gid, uid; then check root cannot come back."""
    os.setgroups(list(ident.groups))
    os.setresgid(ident.gid, ident.gid, ident.gid)
    os.setresuid(ident.uid, ident.uid, ident.uid)
    if ident.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError("dropping privileges failed: the process could become root again")
    # The kernel marks a process that changed its ids as not dumpable, which makes its /proc files root's;
    # we hold nothing the user may not see, and tools (and ours) read /proc/<pid>.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    if ident.user:
        os.environ.update(USER=ident.user, LOGNAME=ident.user)
    if ident.home:
        os.environ["HOME"] = ident.home


def become(cfg: Config, *, strict: bool = True) -> Identity | None:
    """Take on ``main.user``/``main.group``: as root hand over, export secrets and drop; already them: nothing.

    Not root and someone else: an error with ``strict`` (the supervisor), else nothing (CLI
    commands, run by an admin who may write the installation directly).
    """
    ident = identity_for(cfg)
    if ident is None or is_current(ident):
        return ident
    if os.geteuid() != 0:
        if not strict:
            return None
        me = pwd.getpwuid(os.geteuid()).pw_name if _has_user(os.geteuid()) else str(os.geteuid())
        raise PrivilegeError(f"main.user/main.group ask for {ident.describe()}, but cc-supervise runs as {me}, "
                             "not root: start it as root or as that user")
    changed = hand_over(cfg, ident)
    if changed:
        log.info("gave %d files and directories to %s", changed, ident.describe())
    _export_secrets(cfg)
    drop(ident)
    check_access(cfg, ident)
    log.info("running as %s", ident.describe())
    return ident


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True

