"""``ibstat`` against a sysfs infiniband tree: two HCAs, an inactive port, a reset counter, a root-only port."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from tests.agent_hw import T1, T2, deny_unreadable, key, start, table, write

IB = "sys/class/infiniband"


def port(dev: str, p: int, lid: str, rcv: int, xmit: int, rpk: int, xpk: int) -> dict[str, str | int]:
    d = f"{IB}/{dev}/ports/{p}"
    return {f"{d}/lid": f"{lid}\n", f"{d}/counters/port_rcv_data": rcv, f"{d}/counters/port_xmit_data": xmit,
            f"{d}/counters/port_rcv_packets": rpk, f"{d}/counters/port_xmit_packets": xpk,
            f"{d}/counters/symbol_error": 0}


def tree(root: Path, rcv: int, xmit: int, rpk: int, xpk: int, *, second: int = 5000) -> None:
    write(root, {**port("mlx5_0", 1, "0x12", rcv, xmit, rpk, xpk),
                 **port("mlx5_1", 1, "0x2a", second, second, second, second),
                 **port("mlx5_1", 2, "0x0", 0, 0, 0, 0)})  # not connected: no LID


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    tree(r, 1_000_000, 2_000_000, 10_000, 20_000)
    return r


P0 = {"type": "node", "device": "mlx5_0", "port": "1", "lid": "0x12"}
P1 = {"type": "node", "device": "mlx5_1", "port": "1", "lid": "0x2a"}


def test_abs_values_by_default(root):
    c = start(root, "ibstat")
    assert [t for _, t in c.ports] == [P0, P1]
    got = c.read(T1)
    assert all(m.meta["source"] == "InfinibandCollector" and m.meta["group"] == "Network" for m in got)
    t = table(got)
    assert t == {key("ib_recv", **P0): 4_000_000, key("ib_xmit", **P0): 8_000_000,
                 key("ib_recv_pkts", **P0): 10_000, key("ib_xmit_pkts", **P0): 20_000,
                 key("ib_recv", **P1): 20_000, key("ib_xmit", **P1): 20_000,
                 key("ib_recv_pkts", **P1): 5000, key("ib_xmit_pkts", **P1): 5000}
    units = {m.name: m.meta["unit"] for m in got}
    assert units == {"ib_recv": "bytes", "ib_xmit": "bytes", "ib_recv_pkts": "packets", "ib_xmit_pkts": "packets"}


def test_rates_totals_and_a_counter_reset(root):
    c = start(root, "ibstat", {"send_abs_values": False, "send_derived_values": True, "send_total_values": True,
                               "exclude_devices": ["mlx5_1"]})
    tree(root, 3_500_000, 2_000_000, 12_000, 20_500)
    got = c.read(T1)
    t = table(got)
    assert t == {key("ib_recv_bw", **P0): pytest.approx(1_000_000.0), key("ib_xmit_bw", **P0): 0.0,
                 key("ib_recv_pkts_bw", **P0): pytest.approx(200.0), key("ib_xmit_pkts_bw", **P0): 50.0,
                 key("ib_total", **P0): 14_000_000 + 8_000_000, key("ib_total_pkts", **P0): 32_500,
                 key("ib_total_bw", **P0): pytest.approx(1_000_000.0),
                 key("ib_total_pkts_bw", **P0): pytest.approx(250.0)}
    assert {m.name: m.meta["unit"] for m in got}["ib_total_pkts_bw"] == "packets/sec"
    # perfquery -R: the receive counters start from 0 again -> no rate for them, nor their total
    tree(root, 250_000, 2_100_000, 100, 20_600)
    t = table(c.read(T2))
    assert key("ib_recv_bw", **P0) not in t and key("ib_recv_pkts_bw", **P0) not in t
    assert key("ib_total_bw", **P0) not in t and key("ib_total_pkts_bw", **P0) not in t
    assert t[key("ib_xmit_bw", **P0)] == pytest.approx(40_000.0) and t[key("ib_xmit_pkts_bw", **P0)] == 10.0
    tree(root, 1_250_000, 2_100_000, 1100, 20_600)
    t = table(c.read(T2 + 10))
    assert t[key("ib_recv_bw", **P0)] == pytest.approx(400_000.0) and t[key("ib_recv_pkts_bw", **P0)] == 100.0


def test_only_and_exclude_metrics(root):
    c = start(root, "ibstat", {"only_metrics": ["ib_recv", "ib_xmit_bw"], "send_derived_values": True,
                               "exclude_metrics": ["ib_xmit_bw"]})
    assert {m.name for m in c.read(T1)} == {"ib_recv"}


def test_unreadable_and_missing_counters(root, monkeypatch, caplog):
    deny_unreadable(monkeypatch)
    (root / IB / "mlx5_0/ports/1/counters/port_xmit_data").chmod(0)
    c = start(root, "ibstat")
    assert [t for _, t in c.ports] == [P1]
    assert "mlx5_0 port 1: cannot read port_xmit_data" in caplog.text
    (root / IB / "mlx5_1/ports/1/counters/port_rcv_data").unlink()  # the driver went away mid-run
    assert {m.name for m in c.read(T1)} == {"ib_xmit", "ib_recv_pkts", "ib_xmit_pkts"}


def test_unavailable_and_config_errors(tmp_path):
    with pytest.raises(CollectorUnavailable, match="no InfiniBand devices"):
        start(tmp_path, "ibstat")
    write(tmp_path, port("mlx4_0", 1, "0x0", 0, 0, 0, 0))
    with pytest.raises(CollectorUnavailable, match="no InfiniBand port with a LID"):
        start(tmp_path, "ibstat")
    with pytest.raises(AgentConfigError, match=r"collectors\.ibstat\.send_derived_values: expected true or false"):
        make_collector("ibstat", {"send_derived_values": 1}, Context(tmp_path))
