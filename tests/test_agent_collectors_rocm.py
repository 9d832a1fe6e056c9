"""``rocm_smi``: the metrics table decoding, a stand-in for the library with two GPUs, and this VM (no library)."""

from __future__ import annotations

import ctypes.util
import logging
import struct

import pytest

from cc.agent.agent import Agent
from cc.agent.collectors import CollectorUnavailable, Context, make_collector
from cc.agent.collectors.rocm import RocmSmiCollector, decode_metrics, pci_address
from cc.agent.config import parse_agent_config
from tests.agent_hw import T1, key, table

NA = 0xFFFF


def table_bytes(edge: int, hotspot: int, mem: int, gfx: int, umc: int, mm: int, power: int, gfxclk: int,
                hbm: tuple[int, int, int, int]) -> bytes:
    """A metrics table laid out by hand from rocm_smi.h (v1.0 base), followed by later-version fields."""
    head = struct.pack("<HBB", 120, 1, 3)
    temps = struct.pack("<6H", edge, hotspot, mem, 40, 41, NA)
    act = struct.pack("<4H", gfx, umc, mm, power)
    counters = struct.pack("<QQ", 123456789, 987654321)
    clocks = struct.pack("<7H", gfxclk, 1000, 1600, 0, 0, NA, NA) + struct.pack("<7H", *([1] * 7))
    rest = struct.pack("<IHHH2xII4H", 0, 0, 16, 160, 5, 6, *hbm)
    return head + temps + act + counters + clocks + rest + b"\x00" * 900


def test_decode_matches_the_header_layout():
    m = decode_metrics(table_bytes(35, 60, 70, 99, 45, 3, 450, 1700, (71, 72, NA, NA)))
    assert (m["structure_size"], m["format_revision"], m["content_revision"]) == (120, 1, 3)
    assert (m["temperature_edge"], m["temperature_hotspot"], m["temperature_mem"]) == (35, 60, 70)
    assert (m["temperature_vrgfx"], m["temperature_vrsoc"], m["temperature_vrmem"]) == (40, 41, NA)
    assert (m["average_gfx_activity"], m["average_umc_activity"], m["average_socket_power"]) == (99, 45, 450)
    assert m["energy_accumulator"] == 123456789 and m["system_clock_counter"] == 987654321
    assert m["average_gfxclk_frequency"] == 1700 and m["average_dclk1_frequency"] == NA
    assert m["pcie_link_speed"] == 160 and m["gfx_activity_acc"] == 5 and m["mem_activity_acc"] == 6
    assert m["temperature_hbm"] == [71, 72, NA, NA]


def test_pci_address():
    assert pci_address((0x0000 << 32) | (0xC1 << 8) | (0 << 3)) == "00000000:C1:00.0"
    assert pci_address((0x0001 << 32) | (0x03 << 8) | (2 << 3) | 1) == "00000001:03:02.0"


class FakeSmi:
    """Stands in for librocm_smi64: two MI250X-like GPUs."""

    shut = False
    tables = {0: table_bytes(35, 60, 70, 99, 45, 3, 450, 1700, (71, 72, NA, NA)),
              1: table_bytes(30, 40, 50, 0, 1, 0, 90, 800, (NA, NA, NA, NA))}

    def num_devices(self) -> int:
        return 2

    def pci_id(self, i: int) -> int:
        return (0xC1 + i * 0x10) << 8

    def serial(self, i: int) -> str:
        return f"PCB0{i}"

    def metrics(self, i: int) -> dict:
        return decode_metrics(self.tables[i])

    def shutdown(self) -> None:
        FakeSmi.shut = True


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(RocmSmiCollector, "loader", FakeSmi)


def test_metrics_per_gpu(tmp_path, fake):
    c = make_collector("rocm_smi", {"add_pci_info_tag": True, "add_serial_meta": True,
                                    "exclude_metrics": ["rocm_mm_util"]}, Context(tmp_path))
    c.init(T1)
    got = c.read(T1)
    t = table(got)
    g0 = {"type": "accelerator", "type_id": "0", "pci_identifier": "00000000:C1:00.0"}
    assert t[key("rocm_gfx_util", **g0)] == 99 and t[key("rocm_umc_util", **g0)] == 45
    assert t[key("rocm_avg_power", **g0)] == 450 and t[key("rocm_temp_edge", **g0)] == 35
    assert t[key("rocm_temp_vrsoc", **g0)] == 41 and key("rocm_temp_vrmem", **g0) not in t  # 0xFFFF: not read
    assert t[key("rocm_gfx_clock", **g0)] == 1700 and key("rocm_d1_clock", **g0) not in t
    hbm = {m.tags["stype-id"]: m.value for m in got if m.name == "rocm_temp_hbm" and m.tags["type-id"] == "0"}
    assert hbm == {"0": 71, "1": 72}
    assert not any(m.name == "rocm_mm_util" for m in got)
    assert {m.meta["serial"] for m in got if m.tags["type-id"] == "1"} == {"PCB01"}
    assert {m.meta["unit"] for m in got if m.name == "rocm_avg_power"} == {"W"}
    assert len([m for m in got if m.tags["type-id"] == "1" and m.name != "rocm_temp_hbm"]) == 13
    c.close()
    assert FakeSmi.shut


def test_pci_type_id_and_exclusions(tmp_path, fake):
    c = make_collector("rocm_smi", {"use_pci_info_as_type_id": True, "exclude_devices": ["00000000:C1:00.0"],
                                    "only_metrics": ["rocm_avg_power"]}, Context(tmp_path))
    c.init(T1)
    assert table(c.read(T1)) == {key("rocm_avg_power", type="accelerator", type_id="00000000:D1:00.0"): 90}
    c = make_collector("rocm_smi", {"exclude_devices": ["0", "1"]}, Context(tmp_path))
    with pytest.raises(CollectorUnavailable, match="no \\(non-excluded\\) GPUs"):
        c.init(T1)


@pytest.mark.skipif(ctypes.util.find_library("rocm_smi64") is not None, reason="ROCm SMI is installed here")
def test_no_library_on_this_vm(caplog):
    caplog.set_level(logging.INFO, "agent")
    agent = Agent(parse_agent_config({"hostname": "vm", "collectors": {"rocm_smi": {}, "loadavg": {}},
                                      "sinks": {"out": {"type": "stdout"}}}))
    agent.start_collectors(T1)
    assert [c.name for c in agent.active] == ["loadavg"]
    assert caplog.text.count("collector rocm_smi not available here: the ROCm SMI library") == 1
