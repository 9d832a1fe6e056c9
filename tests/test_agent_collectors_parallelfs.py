"""``gpfs`` (a script answering like ``mmpmon -p -s``) and ``beegfs_meta``/``beegfs_storage`` (like beegfs-ctl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, _cmd, make_collector
from tests.agent_hw import T1, T2, fake_command, key, start, table, write

REC = ("_fs_io_s_ _n_ 10.0.0.5 _nn_ node05 _rc_ {rc} _t_ {t} _tu_ 500000 _cl_ gpfs.cluster _fs_ {fs} _d_ 4 "
       "_br_ {br} _bw_ {bw} _oc_ {oc} _cc_ 40 _rdc_ {rdc} _wc_ 200 _dir_ 7 _iu_ 13\n")


def mmpmon_out(t: int, br: int, bw: int, oc: int, rdc: int, rc: int = 0) -> str:
    return (REC.format(rc=rc, t=t, fs="work", br=br, bw=bw, oc=oc, rdc=rdc)
            + REC.format(rc=0, t=t, fs="scratch", br=1, bw=1, oc=1, rdc=1)
            + REC.format(rc=1, t=t, fs="broken", br=0, bw=0, oc=0, rdc=0))


@pytest.fixture
def mmpmon(tmp_path: Path) -> Path:
    write(tmp_path, {"mmpmon.out": mmpmon_out(1733450000, 10_000, 20_000, 50, 100)})
    # mmpmon -p -s reads its request from stdin
    return fake_command(tmp_path, "mmpmon", f"""\
[ "$1 $2" = "-p -s" ] || exit 2
read req; [ "$req" = "once fs_io_s" ] || {{ echo "bad request: $req" >&2; exit 1; }}
cat {tmp_path}/mmpmon.out
""")


WORK = {"type": "node", "filesystem": "work"}


def test_gpfs_counters_diffs_rates_totals(tmp_path, mmpmon):
    c = start(tmp_path, "gpfs", {"mmpmon_path": str(mmpmon), "exclude_filesystem": ["scratch"],
                                 "send_diff_values": True, "send_derived_values": True, "send_total_values": True,
                                 "exclude_metrics": ["gpfs_num_inode_updates_diff"]})
    write(tmp_path, {"mmpmon.out": mmpmon_out(1733450020, 1_010_000, 20_000, 70, 300)})  # 20 s later per mmpmon
    got = c.read(T1)
    assert all(m.meta["source"] == "GpfsCollector" and m.meta["group"] == "GPFS" for m in got)
    t = table(got)
    assert {dict(k[1])["filesystem"] for k in t} == {"work"}  # scratch excluded, broken has _rc_ 1
    assert t[key("gpfs_bytes_read", **WORK)] == 1_010_000 and t[key("gpfs_num_closes", **WORK)] == 40
    assert t[key("gpfs_bytes_read_diff", **WORK)] == 1_000_000 and t[key("gpfs_num_opens_diff", **WORK)] == 20
    assert key("gpfs_num_inode_updates_diff", **WORK) not in t
    assert t[key("gpfs_bw_read", **WORK)] == pytest.approx(50_000.0)
    assert t[key("gpfs_bw_write", **WORK)] == 0.0 and t[key("gpfs_opens_rate", **WORK)] == pytest.approx(1.0)
    assert t[key("gpfs_closes_rate", **WORK)] == 0.0 and t[key("gpfs_reads_rate", **WORK)] == pytest.approx(10.0)
    assert t[key("gpfs_bytes_total", **WORK)] == 1_030_000 and t[key("gpfs_bytes_total_diff", **WORK)] == 1_000_000
    assert t[key("gpfs_bw_total", **WORK)] == pytest.approx(50_000.0)
    assert t[key("gpfs_iops", **WORK)] == 500 and t[key("gpfs_iops_rate", **WORK)] == pytest.approx(10.0)
    assert t[key("gpfs_metaops", **WORK)] == 70 + 40 + 7 + 13 and t[key("gpfs_metaops_diff", **WORK)] == 20
    assert len(t) == 8 + 7 + 8 + 3 * 3
    assert {m.meta["unit"] for m in got if m.name == "gpfs_bw_total"} == {"bytes/sec"}
    # remounted: counters restart
    write(tmp_path, {"mmpmon.out": mmpmon_out(1733450030, 5, 20_000, 70, 300)})
    t = table(c.read(T2))
    assert key("gpfs_bw_read", **WORK) not in t and key("gpfs_bytes_read_diff", **WORK) not in t
    assert t[key("gpfs_bytes_read", **WORK)] == 5 and t[key("gpfs_bw_write", **WORK)] == 0.0


def test_gpfs_defaults_and_bandwidths_only(tmp_path, mmpmon):
    c = start(tmp_path, "gpfs", {"mmpmon_path": str(mmpmon)})
    assert {m.name for m in c.read(T1)} == {"gpfs_bytes_read", "gpfs_bytes_written", "gpfs_num_opens",
                                            "gpfs_num_closes", "gpfs_num_reads", "gpfs_num_writes",
                                            "gpfs_num_readdirs", "gpfs_num_inode_updates"}
    c = start(tmp_path, "gpfs", {"mmpmon_path": str(mmpmon), "send_abs_values": False, "send_bandwidths": True})
    write(tmp_path, {"mmpmon.out": mmpmon_out(1733450010, 20_000, 20_000, 50, 100)})
    t = table(c.read(T1))
    assert t == {key("gpfs_bw_read", **WORK): pytest.approx(1000.0), key("gpfs_bw_write", **WORK): 0.0,
                 key("gpfs_bw_total", **WORK): pytest.approx(1000.0),
                 key("gpfs_bw_read", type="node", filesystem="scratch"): 0.0,
                 key("gpfs_bw_write", type="node", filesystem="scratch"): 0.0,
                 key("gpfs_bw_total", type="node", filesystem="scratch"): 0.0}


def test_gpfs_unavailable(tmp_path, monkeypatch):
    failing = fake_command(tmp_path, "mmpmon", "echo 'mmpmon: GPFS is not running' >&2; exit 1\n")
    with pytest.raises(CollectorUnavailable, match="exited with 1: mmpmon: GPFS is not running"):
        start(tmp_path, "gpfs", {"mmpmon_path": str(failing)})
    hanging = fake_command(tmp_path, "mmpmon-hang", "exec sleep 30\n")
    monkeypatch.setattr(_cmd, "TIMEOUT", 0.5)
    with pytest.raises(CollectorUnavailable, match="no answer within 0.5 s"):
        start(tmp_path, "gpfs", {"mmpmon_path": str(hanging)})
    with pytest.raises(AgentConfigError, match=r"collectors\.gpfs\.send_bandwidths: expected true or false"):
        make_collector("gpfs", {"send_bandwidths": "yes"}, Context(tmp_path))


META = """\
====== 10 s ======
Sum:          {sum} [sum]          2 [ack]         {op} [open]          5 [close]        9 [stat]       1 [xyz]
10.0.0.5      {sum} [sum]          2 [ack]         {op} [open]          5 [close]        9 [stat]       1 [xyz]
"""
STORAGE = "Sum:   40 [sum]   4 [ops-rd]   1.5 [MiB-rd/s]   30 [ops-wr]   12.25 [MiB-wr/s]   6 [ack]\n"


@pytest.fixture
def beegfs(tmp_path: Path) -> Path:
    write(tmp_path, {"proc/mounts": "sysfs /sys sysfs rw 0 0\n"
                                    "beegfs_ondemand /mnt/beeond beegfs rw,relatime 0 0\n"
                                    "beegfs_ondemand /mnt/skip beegfs rw,relatime 0 0\n"
                                    "beegfs_nodev /mnt/beegfs beegfs rw 0 0\n",
                     "meta.out": META.format(sum=100, op=84), "storage.out": STORAGE})
    return fake_command(tmp_path, "beegfs-ctl", f"""\
[ "$1 $4" = "--clientstats --allstats" ] && [ "$3" = "--mount=/mnt/beeond" ] || exit 2
case "$2" in --nodetype=meta) cat {tmp_path}/meta.out ;; --nodetype=storage) cat {tmp_path}/storage.out ;;
  *) exit 2 ;; esac
""")


BEE = {"type": "node", "filesystem": "/mnt/beeond"}


def test_beegfs_meta_other_and_zeros(tmp_path, beegfs):
    c = start(tmp_path, "beegfs_meta", {"beegfs_path": str(beegfs), "exclude_filesystem": ["/mnt/skip"],
                                        "exclude_metrics": ["ack", "stat"]})
    got = c.read(T1)
    assert all(m.meta == {"source": "BeegfsMetaCollector", "group": "BeegfsMeta"} for m in got)
    t = table(got)
    assert t[key("beegfs_cmeta_sum", **BEE)] == 100 and t[key("beegfs_cmeta_open", **BEE)] == 84
    assert t[key("beegfs_cmeta_close", **BEE)] == 5 and t[key("beegfs_cmeta_mkdir", **BEE)] == 0
    assert t[key("beegfs_cmeta_other", **BEE)] == 2 + 9 + 1  # excluded ack and stat, unknown xyz
    assert key("beegfs_cmeta_ack", **BEE) not in t
    assert len(t) == 39 - 2 + 1


def test_beegfs_storage(tmp_path, beegfs):
    c = start(tmp_path, "beegfs_storage", {"beegfs_path": str(beegfs)})
    t = table(c.read(T1))
    assert t[key("beegfs_cstorage_MiB-rd/s", **BEE)] == 1.5 and t[key("beegfs_cstorage_ops-wr", **BEE)] == 30
    assert t[key("beegfs_cstorage_MiB-wr/s", **BEE)] == 12.25 and t[key("beegfs_cstorage_fsync", **BEE)] == 0
    assert key("beegfs_cstorage_other", **BEE) not in t  # nothing excluded, nothing unknown
    # beegfs-ctl fails for /mnt/skip (not excluded this time): that mount is left out of the round
    assert {dict(k[1])["filesystem"] for k in t} == {"/mnt/beeond"}
    with pytest.raises(CollectorUnavailable, match="command 'beegfs-ctl-not-installed' not found"):
        start(tmp_path, "beegfs_storage", {"beegfs_path": "beegfs-ctl-not-installed"})
