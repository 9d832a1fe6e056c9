"""A real single-host Slurm 22.05 with accounting, for tests: MariaDB, munge, slurmdbd, slurmctld, N slurmd.

Everything lives in one directory, listens on 127.0.0.1 on free ports and runs in the
foreground as our child, so it is stopped by PID.  Several ``NodeName`` entries share
this machine (one ``slurmd -N name`` each, distinct ports); ``config_overrides`` lets
them claim a topology (2 sockets x 2 cores x 2 threads, 2 fake GPUs) the machine lacks.

Run ``python -m tests.slurm.cluster DIR`` to start one by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cc.proc import stop_subprocess
from tests.helpers import free_port

CLUSTER = "ccslurm"
NODES = ("node01", "node02", "node03", "node04")
ACCOUNTS = ("proj1", "proj2")


def have_slurm() -> str | None:
    """None when every server binary is installed, else what is missing."""
    need = ["mariadbd", "mariadb-install-db", "mariadb", "munged", "mungekey", "slurmdbd", "slurmctld",
            "slurmd", "sbatch", "sacct", "sacctmgr", "squeue", "scontrol"]
    missing = [b for b in need if not (shutil.which(b) or Path("/usr/sbin", b).exists())]
    return ", ".join(missing) or None


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """The servers of one test Slurm; ``env`` is what a Slurm client (or the adapter) needs."""

    def __init__(self, root: Path, *, prolog: str | None = None, nodes: tuple[str, ...] = NODES):
        self.root = root
        self.nodes = nodes
        self.prolog = prolog
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = root / "etc" / "slurm.conf"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env["SLURM_CONF"] = str(self.conf)
        self.env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + self.env.get("PATH", "")
        self.ports = {"db": free_port(), "dbd": free_port(), "ctld": free_port()}
        self.node_ports = {n: free_port() for n in nodes}

    # -- helpers ----------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}\n{self.logs()}")
        return r

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def _wait(self, what: str, ok, timeout: float = 60, proc: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc and self.procs[proc].poll() is not None:
                raise RuntimeError(f"{proc} exited with {self.procs[proc].returncode}\n{self.logs()}")
            with contextlib.suppress(Exception):
                if ok():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for p in sorted((self.root / "log").glob("*")):
            text = p.read_text(errors="replace")[-tail:]
            if text.strip():
                out.append(f"--- {p.name}\n{text}")
        return "\n".join(out)

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        for d in ("etc", "log", "db", "state", "spool", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        try:
            self._start_mariadb()
            self._start_munge()
            self._write_config()
            self._start_slurmdbd()
            self._start_slurmctld()
            self._start_slurmds()
        except BaseException:
            self.stop()
            raise

    def _start_mariadb(self) -> None:
        r = self.root
        subprocess.run([_bin("mariadb-install-db"), "--no-defaults", f"--datadir={r}/db", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, timeout=180)
        self.db_sock = r / "run" / "mysqld.sock"
        self._spawn("mariadb", [
            _bin("mariadbd"), "--no-defaults", f"--datadir={r}/db", "--user=root", "--bind-address=127.0.0.1",
            f"--port={self.ports['db']}", f"--socket={self.db_sock}", f"--pid-file={r}/run/mariadbd.pid",
            "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--performance-schema=OFF",
            "--skip-name-resolve"])
        self._wait("MariaDB", lambda: self._sql("SELECT 1").returncode == 0, proc="mariadb")
        self._sql("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw'; "
                  "CREATE DATABASE slurm_acct_db; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';", check=True)

    def _sql(self, sql: str, check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.db_sock}", "-uroot", "-e", sql],
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode:
            raise RuntimeError(f"SQL failed: {r.stderr}")
        return r

    def _start_munge(self) -> None:
        r = self.root
        subprocess.run([_bin("mungekey"), "-c", "-f", "-k", f"{r}/etc/munge.key"], check=True, capture_output=True)
        os.chmod(r / "etc" / "munge.key", 0o600)
        self.munge_sock = r / "run" / "munge.sock"
        self._spawn("munged", [_bin("munged"), "-F", "--force", f"--socket={self.munge_sock}",
                               f"--key-file={r}/etc/munge.key", f"--pid-file={r}/run/munged.pid",
                               f"--log-file={r}/log/munged.log", f"--seed-file={r}/run/munge.seed"])
        self._wait("munged", self.munge_sock.exists, proc="munged")

    def _write_config(self) -> None:
        r, p = self.root, self.ports
        host = socket.gethostname().split(".")[0]
        lines = [
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={p['ctld']}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={self.munge_sock}", "CredType=cred/munge",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/run/slurmctld.pid", f"SlurmdPidFile={r}/run/slurmd.%n.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd.%n.log",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_min_interval=0",
            "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={p['dbd']}", f"AccountingStoragePass={self.munge_sock}",
            "AccountingStorageTRES=gres/gpu",
            "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=30",
            "GresTypes=gpu", "SlurmdParameters=config_overrides", "ReturnToService=2",
            "MinJobAge=600", "KillWait=2", "InactiveLimit=0", "OverTimeLimit=0", "MessageTimeout=20",
            "SlurmctldTimeout=30", "SlurmdTimeout=300",
        ]
        if self.prolog:
            lines += ["PrEpPlugins=prep/script", f"PrologSlurmctld={self.prolog}", f"EpilogSlurmctld={self.prolog}"]
        for n in self.nodes:
            lines.append(f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={self.node_ports[n]} "
                         "Sockets=2 CoresPerSocket=2 ThreadsPerCore=2 RealMemory=2000 Gres=gpu:2 State=UNKNOWN")
        lines.append(f"PartitionName=main Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        # fake GPUs: two device files per node (slurmd only stats them)
        gres = []
        for n in self.nodes:
            devs = []
            for i in range(2):
                dev = r / "run" / f"{n}-gpu{i}"
                dev.touch()
                devs.append(str(dev))
            gres += [f"NodeName={n} Name=gpu File={d}" for d in devs]
        (r / "etc" / "gres.conf").write_text("AutoDetect=off\n" + "\n".join(gres) + "\n")
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text("\n".join([
            "AuthType=auth/munge", f"AuthInfo=socket={self.munge_sock}",
            "DbdHost=localhost", "DbdAddr=127.0.0.1", f"DbdPort={p['dbd']}", "SlurmUser=root",
            f"PidFile={r}/run/slurmdbd.pid", f"LogFile={r}/log/slurmdbd.log", "DebugLevel=info",
            "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1", f"StoragePort={p['db']}",
            "StorageUser=slurm", "StoragePass=slurmpw", "StorageLoc=slurm_acct_db",
        ]) + "\n")
        os.chmod(dbd, 0o600)

    def _start_slurmdbd(self) -> None:
        self._spawn("slurmdbd", [_bin("slurmdbd"), "-D"])
        self._wait("slurmdbd", lambda: self.run("sacctmgr", "-n", "show", "cluster", check=False,
                                                timeout=10).returncode == 0, timeout=120, proc="slurmdbd")
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        for acct in ACCOUNTS:
            self.run("sacctmgr", "-i", "add", "account", acct, f"Cluster={CLUSTER}")
        self.run("sacctmgr", "-i", "add", "user", "root", f"Account={','.join(ACCOUNTS)}",
                 f"DefaultAccount={ACCOUNTS[0]}", f"Cluster={CLUSTER}")

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", [_bin("slurmctld"), "-D", "-i"])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False, timeout=10).returncode == 0,
                   proc="slurmctld")

    def _start_slurmds(self) -> None:
        for n in self.nodes:
            (self.root / "spool" / n).mkdir(parents=True, exist_ok=True)
            self._spawn(f"slurmd-{n}", [_bin("slurmd"), "-D", "-N", n])

        def all_idle() -> bool:
            out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False, timeout=10).stdout.split("\n")
            states = dict(line.split() for line in out if line.strip())
            return all(states.get(n) == "idle" for n in self.nodes)

        self._wait("slurmd nodes to become idle", all_idle, timeout=90)

    # -- jobs -------------------------------------------------------------------------

    def sbatch(self, script: str, *args: str) -> int:
        """Submit a batch script, return its job id."""
        path = self.root / "jobs" / f"job-{time.monotonic_ns()}.sh"
        path.parent.mkdir(exist_ok=True)
        path.write_text(script)
        out = self.run("sbatch", "--parsable", f"--chdir={path.parent}", "-o", f"{path.parent}/%j.out",
                       *args, str(path)).stdout.strip()
        return int(out.split(";")[0])

    def job_states(self, *job_ids: int) -> dict[int, str]:
        """Current state per job (from sacct, so finished jobs are included)."""
        ids = ",".join(map(str, job_ids))
        out = self.run("sacct", "-n", "-X", "-P", "-j", ids, "-o", "JobIDRaw,State").stdout
        states = {}
        for line in out.splitlines():
            jid, _, st = line.partition("|")
            if jid.isdigit():
                states[int(jid)] = st.split()[0] if st else ""
        return states

    def wait_done(self, job_ids: list[int], timeout: float = 180) -> dict[int, str]:
        active = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", ""}
        deadline = time.monotonic() + timeout
        while True:
            st = self.job_states(*job_ids)
            if len(st) >= len(set(job_ids)) and not any(s in active for s in st.values()):
                # sacct says done; squeue must agree too (slurmctld may still be completing)
                q = self.run("squeue", "-h", "-o", "%i %T", "-j", ",".join(map(str, job_ids)), check=False).stdout
                if not any(x.split()[1] in ("COMPLETING", "RUNNING", "PENDING") for x in q.splitlines() if x.strip()):
                    return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished: {st}")
            time.sleep(0.5)

    # -- stop -------------------------------------------------------------------------

    def stop_proc(self, name: str, timeout: float = 20) -> None:
        stop_subprocess(self.procs.pop(name, None), timeout)

    def stop(self) -> None:
        """Stop every server we started, newest first, by PID."""
        for name in [n for n in self.procs if n.startswith("slurmd-")]:
            self.stop_proc(name)
        for name in ("slurmctld", "slurmdbd", "munged", "mariadb"):
            self.stop_proc(name)
        # job steps run by slurmstepd are in their own sessions; kill what slurmd left behind
        for pidfile in (self.root / "run").glob("*.pid"):
            pidfile.unlink(missing_ok=True)


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path("/tmp/ccslurm")
    if root.exists():
        shutil.rmtree(root)
    c = SlurmCluster(root)
    t = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    c.start()
    print(f"Slurm up in {time.monotonic() - t:.1f}s; export SLURM_CONF={c.conf}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    main()
