"""``rapl`` against a two-socket powercap tree: wrap-around, a root-only zone, exclusions."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from tests.agent_hw import T1, T2, deny_unreadable, key, start, table, write

P = "sys/devices/virtual/powercap/intel-rapl"
WRAP = 262143328850


def zone(rel: str, name: str, energy: int, wrap: int = WRAP) -> dict[str, str | int]:
    return {f"{P}/{rel}/name": f"{name}\n", f"{P}/{rel}/energy_uj": energy, f"{P}/{rel}/max_energy_range_uj": wrap}


def tree(root: Path, e0: int, e1: int, dram0: int, psys: int) -> None:
    write(root, {**zone("intel-rapl:0", "package-0", e0), **zone("intel-rapl:1", "package-1", e1),
                 **zone("intel-rapl:0/intel-rapl:0:0", "dram", dram0),
                 **zone("intel-rapl:1/intel-rapl:1:0", "dram", 5_000_000),
                 **zone("intel-rapl:2", "psys", psys),
                 f"{P}/enabled": 1})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    tree(r, 100_000_000, WRAP - 500_000_000, 2_000_000, 10_000_000)
    return r


def test_power_per_socket_and_wrap(root):
    c = start(root, "rapl")
    assert all(z.wrap == WRAP for z in c.zones)
    # package-0: +1.5 kJ in 10 s; package-1 wrapped: 500 J to the top, 1 kJ after; dram 0: +200 J; psys +3 kJ
    tree(root, 1_600_000_000, 1_000_000_000, 202_000_000, 3_010_000_000)
    got = c.read(T1)
    assert all(m.meta == {"source": "RAPLCollector", "group": "energy", "unit": "Watt"}
               for m in got if m.name == "rapl_average_power")
    t = table(got)
    assert t[key("rapl_average_power", type="socket", type_id="0", id="0", zone_name="package-0")] == \
        pytest.approx(150.0)
    assert t[key("rapl_average_power", type="socket", type_id="1", id="1", zone_name="package-1")] == \
        pytest.approx(150.0)
    assert t[key("rapl_average_power", type="socket", type_id="0", id="0:0", zone_name="package-0",
                 sub_zone_name="dram")] == pytest.approx(20.0)
    # the dram counter of socket 1 did not move
    assert t[key("rapl_average_power", type="socket", type_id="1", id="1:0", zone_name="package-1",
                 sub_zone_name="dram")] == 0.0
    assert t[key("rapl_average_power", type="node", id="2", zone_name="psys")] == pytest.approx(300.0)
    # standard metrics
    assert t[key("cpu_power", type="socket", type_id="0")] == pytest.approx(150.0)
    assert t[key("cpu_power", type="socket", type_id="1")] == pytest.approx(150.0)
    assert t[key("mem_power", type="socket", type_id="0")] == pytest.approx(20.0)
    assert len(t) == 5 + 4


def test_first_round_only_reads_and_exclusions(root):
    c = start(root, "rapl", {"exclude_device_by_id": ["1:0"], "exclude_device_by_name": ["psys"],
                             "exclude_metrics": ["mem_power"]}, active=frozenset({"rapl", "likwid"}))
    assert [z.id for z in c.zones] == ["0", "0:0", "1"]
    assert c.read(T1)[0].value == 0.0  # nothing moved: 0 W, no standard metrics while likwid runs
    assert {m.name for m in c.read(T2)} == {"rapl_average_power"}


def test_only_metrics_standard(root):
    c = start(root, "rapl", {"only_metrics": ["cpu_power"]})
    tree(root, 200_000_000, WRAP - 400_000_000, 2_000_000, 10_000_000)
    t = table(c.read(T1))
    assert t == {key("cpu_power", type="socket", type_id="0"): pytest.approx(10.0),
                 key("cpu_power", type="socket", type_id="1"): pytest.approx(10.0)}


def test_root_only_zone_and_vanishing_counter(root, monkeypatch, caplog):
    deny_unreadable(monkeypatch)
    (root / P / "intel-rapl:1/energy_uj").chmod(0)
    c = start(root, "rapl")
    assert "1" not in [z.id for z in c.zones] and "1:0" in [z.id for z in c.zones]
    assert "cannot read zone(s) 1 (PermissionError)" in caplog.text
    (root / P / "intel-rapl:0/energy_uj").unlink()  # e.g. a hot-unplugged socket
    got = c.read(T1)
    assert {m.tags["id"] for m in got if m.name == "rapl_average_power"} == {"0:0", "1:0", "2"}
    write(root, {f"{P}/intel-rapl:0/energy_uj": 100_000_000})
    assert {m.tags["id"] for m in c.read(T2) if m.name == "rapl_average_power"} == {"0:0", "1:0", "2"}


def test_unavailable_and_config_errors(tmp_path, monkeypatch):
    with pytest.raises(CollectorUnavailable, match="no RAPL zones"):
        start(tmp_path, "rapl")
    deny_unreadable(monkeypatch)
    write(tmp_path, zone("intel-rapl:0", "package-0", 1))
    (tmp_path / P / "intel-rapl:0/energy_uj").chmod(0)
    with pytest.raises(CollectorUnavailable, match="no readable, non-excluded RAPL zones"):
        start(tmp_path, "rapl")
    with pytest.raises(AgentConfigError, match=r"collectors\.rapl\.exclude_device_by_id: expected a list"):
        make_collector("rapl", {"exclude_device_by_id": "0"}, Context(tmp_path))
    with pytest.raises(AgentConfigError, match=r"collectors\.rapl: unknown key 'devices'"):
        make_collector("rapl", {"devices": []}, Context(tmp_path))
