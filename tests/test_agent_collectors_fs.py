"""``lustrestat``, ``nfs3stat``/``nfs4stat`` (scripts printing recorded lctl/nfsstat output) and ``nfsiostat``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from tests.agent_hw import T1, T2, fake_command, key, start, table, write

LLITE = """\
snapshot_time             1733450000.123456789 secs.nsecs
start_time                1733400000.000000000 secs.nsecs
elapsed_time              50000.123456789 secs.nsecs
read_bytes                {rr} samples [bytes] 0 1048576 {rb}
write_bytes               {wr} samples [bytes] 1 1048576 {wb}
open                      {op} samples [usecs] 1 100 {op}
close                     12 samples [usecs] 1 50 300
getattr                   40 samples [usecs] 1 20 400
statfs                    2 samples [usecs] 5 9 14
inode_permission          99 samples [usecs] 0 3 120
"""


@pytest.fixture
def lctl(tmp_path: Path) -> Path:
    out = tmp_path / "lctl-out"
    write(out, {"list": "llite.scratch-ffff9a3c.stats=\nsnapshot_time 1 secs.nsecs\n"
                        "llite.home-ffff9b00.stats=\nsnapshot_time 1 secs.nsecs\n",
                "llite.scratch-ffff9a3c.stats": LLITE.format(rr=100, rb=10_000_000, wr=50, wb=5_000_000, op=7),
                "llite.home-ffff9b00.stats": "snapshot_time 1 secs.nsecs\nopen 3 samples [usecs] 1 1 3\n"})
    # lctl get_param llite.<fs>.stats: the recorded answer, or lctl's error for an unknown file system
    return fake_command(tmp_path, "lctl", f"""\
[ "$1" = get_param ] || exit 2
case "$2" in 'llite.*.stats') cat {out}/list ;;
  *) [ -f "{out}/$2" ] || {{ echo "error: get_param: param_path '$2': No such file or directory" >&2; exit 2; }}
     cat "{out}/$2" ;; esac
""")


SCR = {"type": "node", "device": "scratch-ffff9a3c"}
HOME = {"type": "node", "device": "home-ffff9b00"}


def test_lustre_abs_diff_rates_and_remount(tmp_path, lctl):
    c = start(tmp_path, "lustrestat", {"lctl_command": str(lctl), "send_diff_values": True,
                                       "send_derived_values": True, "exclude_metrics": ["lustre_statfs"]})
    assert c.devices == ["home-ffff9b00", "scratch-ffff9a3c"]
    out = tmp_path / "lctl-out"
    write(out, {"llite.scratch-ffff9a3c.stats": LLITE.format(rr=300, rb=60_000_000, wr=50, wb=5_000_000, op=9)})
    got = c.read(T1)
    assert all(m.meta["source"] == "LustreCollector" and m.meta["group"] == "Lustre" for m in got)
    t = table(got)
    assert t[key("lustre_read_requests", **SCR)] == 300 and t[key("lustre_read_bytes", **SCR)] == 60_000_000
    assert t[key("lustre_write_bytes", **SCR)] == 5_000_000 and t[key("lustre_open", **SCR)] == 9
    assert t[key("lustre_inode_permission", **SCR)] == 99 and key("lustre_statfs", **SCR) not in t
    assert t[key("lustre_read_bytes_diff", **SCR)] == 50_000_000 and t[key("lustre_open_diff", **SCR)] == 2
    assert t[key("lustre_read_bw", **SCR)] == pytest.approx(5_000_000.0)
    assert t[key("lustre_read_requests_rate", **SCR)] == pytest.approx(20.0)
    assert t[key("lustre_write_bw", **SCR)] == 0.0
    # home has had opens only: the other counters are 0 (lines appear with the first operation)
    assert t[key("lustre_open", **HOME)] == 3 and t[key("lustre_read_bytes", **HOME)] == 0
    assert {m.meta.get("unit") for m in got if m.name == "lustre_read_bw"} == {"bytes/sec"}
    # remounted: counters restart -> no diff or rate for the ones that went down
    write(out, {"llite.scratch-ffff9a3c.stats": LLITE.format(rr=10, rb=1_000, wr=60, wb=6_000_000, op=1)})
    t = table(c.read(T2))
    assert key("lustre_read_bw", **SCR) not in t and key("lustre_read_bytes_diff", **SCR) not in t
    assert t[key("lustre_write_bw", **SCR)] == pytest.approx(100_000.0)
    assert t[key("lustre_read_bytes", **SCR)] == 1_000


def test_lustre_unmounted_fs_and_missing_command(tmp_path, lctl):
    c = start(tmp_path, "lustrestat", {"lctl_command": str(lctl), "only_metrics": ["lustre_open"]})
    (tmp_path / "lctl-out/llite.home-ffff9b00.stats").unlink()  # lctl now fails for it
    assert table(c.read(T1)) == {key("lustre_open", **SCR): 7}
    with pytest.raises(CollectorUnavailable, match="command '/nonexistent/lctl' not found"):
        start(tmp_path, "lustrestat", {"lctl_command": "/nonexistent/lctl"})
    none = fake_command(tmp_path, "lctl-none", "exit 0\n")
    with pytest.raises(CollectorUnavailable, match="no Lustre file systems mounted"):
        start(tmp_path, "lustrestat", {"lctl_command": str(none)})
    with pytest.raises(AgentConfigError, match=r"collectors\.lustrestat\.use_sudo: expected true or false"):
        make_collector("lustrestat", {"use_sudo": "no"}, Context(tmp_path))


NFSSTAT = """\
nfs v3 client        total:      {t3}
------------- ------------- --------
nfs v3 client      getattr:      {g3}
nfs v3 client       lookup:      400
nfs v3 client         read:      {r3}
nfs v3 server      getattr:      999999
nfs v4 client        total:      {t4}
nfs v4 client         read:      10
nfs v4 client      getattr:      70
"""


@pytest.fixture
def nfsstat(tmp_path: Path) -> Path:
    write(tmp_path, {"nfsstat.out": NFSSTAT.format(t3=1000, g3=500, r3=100, t4=80)})
    return fake_command(tmp_path, "nfsstat", f'[ "$1 $2" = "-l --all" ] || exit 2\ncat {tmp_path}/nfsstat.out\n')


def test_nfs3_and_nfs4_calls_per_round(tmp_path, nfsstat):
    c3 = start(tmp_path, "nfs3stat", {"nfsstat": str(nfsstat), "exclude_metrics": ["total"]})
    c4 = start(tmp_path, "nfs4stat", {"nfsstat": str(nfsstat)})
    write(tmp_path, {"nfsstat.out": NFSSTAT.format(t3=1300, g3=700, r3=200, t4=90)})
    got3 = c3.read(T1)
    assert table(got3) == {key("nfs3_getattr", type="node"): 200, key("nfs3_lookup", type="node"): 0,
                           key("nfs3_read", type="node"): 100}
    assert all(m.meta == {"source": "Nfs3Collector", "group": "NFS", "version": "v3"} for m in got3)
    assert table(c4.read(T1)) == {key("nfs4_total", type="node"): 10, key("nfs4_read", type="node"): 0,
                                  key("nfs4_getattr", type="node"): 0}
    # the server rebooted / counters cleared (nfsstat -z): nothing negative
    write(tmp_path, {"nfsstat.out": NFSSTAT.format(t3=5, g3=2, r3=1, t4=95)})
    assert table(c3.read(T2)) == {key("nfs3_lookup", type="node"): 0}


def test_nfs_unavailable(tmp_path):
    write(tmp_path, {"nfsstat.out": "nfs v4 client total: 3\n"})
    only4 = fake_command(tmp_path, "nfsstat", f"cat {tmp_path}/nfsstat.out\n")
    with pytest.raises(CollectorUnavailable, match="no NFS v3 client statistics"):
        start(tmp_path, "nfs3stat", {"nfsstat": str(only4)})
    failing = fake_command(tmp_path, "nfsstat-fail", "echo 'nfsstat: cannot open /proc/net/rpc/nfs' >&2; exit 1\n")
    with pytest.raises(CollectorUnavailable, match="exited with 1: nfsstat: cannot open"):
        start(tmp_path, "nfs4stat", {"nfsstat": str(failing)})


MOUNTSTATS = """\
device rootfs mounted on / with fstype rootfs
device proc mounted on /proc with fstype proc
device nfs01:/export/home mounted on /home with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.2,rsize=1048576,wsize=1048576
\tage:\t123456
\tbytes:\t{n} 2000 0 0 {n} 2000 {p} 1
\tevents:\t1 2 3
device nfs02:/scratch mounted on /scratch with fstype nfs statvers=1.1
\tbytes:\t500 500 10 10 520 520 2 2
device nfs03:/old mounted on /old with fstype nfs statvers=1.1
\tbytes:\t1 1 1 1 1 1 1 1
"""


def test_nfsiostat_per_mount_rates(tmp_path):
    write(tmp_path, {"proc/self/mountstats": MOUNTSTATS.format(n=1000, p=10)})
    c = start(tmp_path, "nfsiostat", {"send_derived_values": True, "exclude_filesystem": ["/old"],
                                      "exclude_metrics": ["dwrite", "nfsio_dread"]})
    write(tmp_path, {"proc/self/mountstats": MOUNTSTATS.format(n=41000, p=20)})
    got = c.read(T1)
    t = table(got)
    home = {"type": "node", "stype": "filesystem", "stype_id": "/home"}
    home = {k.replace("stype_id", "stype-id"): v for k, v in home.items()}
    assert t[key("nfsio_nread", **home)] == 41000 and t[key("nfsio_nread_bw", **home)] == pytest.approx(4000.0)
    assert t[key("nfsio_pageread_bw", **home)] == pytest.approx(1.0)
    assert t[key("nfsio_nwrite_bw", **home)] == 0.0
    assert not any(k[0].startswith(("nfsio_dread", "nfsio_dwrite")) for k in t)
    assert {dict(k[1])["stype-id"] for k in t} == {"/home", "/scratch"}
    assert {m.meta["unit"] for m in got if m.name == "nfsio_pagewrite_bw"} == {"4K_pages/s"}
    assert len(t) == 2 * 6 * 2


def test_nfsiostat_server_as_stype_and_no_mounts(tmp_path):
    write(tmp_path, {"proc/self/mountstats": MOUNTSTATS.format(n=1, p=1)})
    c = start(tmp_path, "nfsiostat", {"use_server_as_stype": True, "only_metrics": ["nfsio_nread"]})
    assert {m.tags["stype-id"]: m.value for m in c.read(T1)} == \
        {"nfs01:/export/home": 1, "nfs02:/scratch": 500, "nfs03:/old": 1}
    write(tmp_path, {"proc/self/mountstats": "device proc mounted on /proc with fstype proc\n"})
    assert c.read(T2) == []
    with pytest.raises(CollectorUnavailable):
        start(tmp_path / "empty", "nfsiostat")
