"""``tempstat`` against a hwmon tree: two coretemp packages, an NVMe drive, a sensor without input, a root-only one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from cc.agent.collectors.health import sensor_metric
from tests.agent_hw import T1, deny_unreadable, key, start, table, write

H = "sys/class/hwmon"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    write(r, {
        f"{H}/hwmon0/name": "coretemp\n", f"{H}/hwmon0/temp1_label": "Package id 0\n",
        f"{H}/hwmon0/temp1_input": 45000, f"{H}/hwmon0/temp1_max": 80000, f"{H}/hwmon0/temp1_crit": 100000,
        f"{H}/hwmon0/temp2_label": "Core 0\n", f"{H}/hwmon0/temp2_input": 43500,
        f"{H}/hwmon1/name": "coretemp\n", f"{H}/hwmon1/temp1_label": "Package id 1\n",
        f"{H}/hwmon1/temp1_input": 51000, f"{H}/hwmon1/temp1_max": 80000,
        f"{H}/hwmon2/name": "nvme\n", f"{H}/hwmon2/temp1_label": "Composite\n", f"{H}/hwmon2/temp1_input": 38850,
        f"{H}/hwmon3/name": "acpitz\n", f"{H}/hwmon3/temp1_input": 27800,
        f"{H}/hwmon3/temp2_label": "no input file\n",
        f"{H}/hwmon4/name": "ipmi\n", f"{H}/hwmon4/temp1_input": 30000,
    })
    return r


def test_names_values_and_overrides(root, monkeypatch):
    deny_unreadable(monkeypatch)
    (root / H / "hwmon4/temp1_input").chmod(0)
    c = start(root, "tempstat", {"tag_override": {"hwmon1": {"type": "socket", "type-id": "1"}},
                                 "report_max_temperature": True, "report_critical_temperature": True})
    got = c.read(T1)
    assert all(m.meta == {"source": "TempCollector", "group": "IPMI", "unit": "degC"} for m in got)
    node, s1 = {"type": "node"}, {"type": "socket", "type_id": "1"}
    assert table(got) == {
        key("temp_package_id_0", **node): 45.0, key("max_temp_package_id_0", **node): 80.0,
        key("crit_temp_package_id_0", **node): 100.0, key("temp_core_0", **node): 43.5,
        key("temp_package_id_1", **s1): 51.0, key("max_temp_package_id_1", **s1): 80.0,
        key("temp_nvme_composite", **node): pytest.approx(38.85), key("temp_acpitz", **node): pytest.approx(27.8),
    }


def test_exclude_and_a_vanished_sensor(root):
    c = start(root, "tempstat", {"exclude_metrics": ["temp_core_0"]})
    (root / H / "hwmon2/temp1_input").unlink()
    assert {m.name for m in c.read(T1)} == {"temp_package_id_0", "temp_package_id_1", "temp_acpitz", "temp_ipmi"}


def test_metric_names():
    assert sensor_metric("coretemp", "Core 12") == "temp_core_12"
    assert sensor_metric("k10temp", "Tctl") == "k10temp_tctl"
    assert sensor_metric("", "CPU Temp") == "cpu_temp"
    assert sensor_metric("nct6775", "") == "temp_nct6775"
    assert sensor_metric("", "") is None


def test_unavailable_and_config_errors(tmp_path):
    with pytest.raises(CollectorUnavailable, match="no hwmon devices"):
        start(tmp_path, "tempstat")
    write(tmp_path, {f"{H}/hwmon0/name": "fan\n", f"{H}/hwmon0/fan1_input": 1200})
    with pytest.raises(CollectorUnavailable, match="no readable temperature sensors"):
        start(tmp_path, "tempstat")
    with pytest.raises(AgentConfigError, match=r"collectors\.tempstat\.tag_override\.hwmon0: expected an object"):
        start(tmp_path, "tempstat", {"tag_override": {"hwmon0": "socket"}})
    with pytest.raises(AgentConfigError, match=r"collectors\.tempstat\.tag_override: expected an object"):
        make_collector("tempstat", {"tag_override": []}, Context(tmp_path))
