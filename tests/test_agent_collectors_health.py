"""``tempstat`` against a hwmon tree: two coretemp packages, an NVMe drive, a sensor without input, a root-only one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from cc.agent.collectors.health import sensor_metric
from tests.agent_hw import T1, deny_unreadable, fake_command, key, start, table, write

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


IPMI_SENSORS = """\
ID,Name,Type,Reading,Units,Event
4,CPU1 Temp,Temperature,52.00,C,'OK'
5,CPU2 Temp,Temperature,49.00,C,'OK'
20,PS1 Input Power,Power Supply,310.00,W,'OK'
21,PS2 Input Power,Power Supply,N/A,W,N/A
30,FAN1,Fan,5400.00,RPM,'OK'
40,Chassis Intru,Physical Security,N/A,N/A,'General Chassis Intrusion'
"""
IPMITOOL = """\
CPU1 Temp        | 52.000     | degrees C  | ok    | 0.000     | 0.000     | 0.000     | 95.000    | 100.000   | na
PS1 Input Power  | 310.000    | Watts      | ok    | na        | na        | na        | na        | na        | na
PS2 Status       | 0x0        | discrete   | 0x0100| na        | na        | na        | na        | na        | na
12V              | 12.096     | Volts      | ok    | 10.176    | 10.368    | 10.560    | 13.248    | 13.440    | 13.632
FAN2             | na         | RPM        | na    | na        | na        | na        | na        | na        | na
"""


def ipmi_tools(tmp_path: Path, sensors_ok: bool = True) -> dict:
    write(tmp_path, {"sensors.out": IPMI_SENSORS, "tool.out": IPMITOOL})
    sensors = fake_command(tmp_path, "ipmi-sensors", (
        f'[ "$1 $2" = "--comma-separated-output --sdr-cache-recreate" ] || exit 2\ncat {tmp_path}/sensors.out\n'
        if sensors_ok else "echo 'ipmi-sensors: could not find inband device' >&2; exit 1\n"))
    tool = fake_command(tmp_path, "ipmitool", f'[ "$1" = sensor ] || exit 2\ncat {tmp_path}/tool.out\n')
    return {"ipmisensors_path": str(sensors), "ipmitool_path": str(tool)}


def test_ipmistat_ipmi_sensors_first(tmp_path):
    c = start(tmp_path, "ipmistat", {**ipmi_tools(tmp_path), "exclude_metrics": ["fan1"]})
    got = c.read(T1)
    assert all(m.meta["source"] == "IpmiCollector" and m.meta["group"] == "IPMI" for m in got)
    assert table(got) == {key("cpu1_temp", type="node"): 52.0, key("cpu2_temp", type="node"): 49.0,
                          key("ps1_input_power", type="node"): 310.0}
    assert {m.name: m.meta["unit"] for m in got}["ps1_input_power"] == "W"


def test_ipmistat_falls_back_to_ipmitool(tmp_path):
    c = start(tmp_path, "ipmistat", {**ipmi_tools(tmp_path, sensors_ok=False),
                                     "include_metrics": ["CPU1_Temp ", "12v", "ps1_input_power"]})
    got = c.read(T1)
    assert table(got) == {key("cpu1_temp", type="node"): 52.0, key("ps1_input_power", type="node"): 310.0,
                          key("12v", type="node"): pytest.approx(12.096)}
    assert {m.name: m.meta["unit"] for m in got} == {"cpu1_temp": "degC", "ps1_input_power": "Watts",
                                                     "12v": "Volts"}


def test_ipmistat_unavailable(tmp_path):
    with pytest.raises(CollectorUnavailable, match=r"could not find inband device.*'/nope/ipmitool' not found"):
        start(tmp_path, "ipmistat", {**ipmi_tools(tmp_path, sensors_ok=False), "ipmitool_path": "/nope/ipmitool"})


def nvme_json(temp: int, hours: int) -> str:
    import json
    return json.dumps({"json_format_version": [1, 0], "smartctl": {"exit_status": 4}, "device": {"name": "x"},
                       "nvme_smart_health_information_log": {
                           "critical_warning": 0, "temperature": temp, "available_spare": 100,
                           "available_spare_threshold": 10, "percentage_used": 3, "data_units_read": 123456,
                           "data_units_written": 654321, "host_reads": 1000, "host_writes": 2000,
                           "controller_busy_time": 5, "power_cycles": 42, "power_on_hours": hours,
                           "unsafe_shutdowns": 7, "media_errors": 0, "num_err_log_entries": 12,
                           "warning_temp_time": 0, "critical_comp_time": 0}})


@pytest.fixture
def smartctl(tmp_path: Path) -> Path:
    scan = ('{"devices":[{"name":"/dev/nvme0","info_name":"/dev/nvme0","type":"nvme","protocol":"NVMe"},'
            '{"name":"/dev/nvme1","type":"nvme"},{"name":"/dev/sda","type":"sat"}]}')
    write(tmp_path, {"scan.json": scan, "nvme0.json": nvme_json(35, 1000), "nvme1.json": "not json at all",
                     "sda.json": '{"ata_smart_attributes": {}}'})
    # exit status 4 (bit 2: "some SMART command failed") with valid JSON, as smartctl does
    return fake_command(tmp_path, "smartctl", f"""\
[ "$1 $2" = "--scan --json=c" ] && {{ cat {tmp_path}/scan.json; exit 0; }}
[ "$1 $3" = "--json=c --all" ] || exit 64
cat {tmp_path}/$(basename "$4").json; exit 4
""")


def test_smartmon_scan_and_health_log(tmp_path, smartctl):
    c = start(tmp_path, "smartmon", {"smartctl_path": str(smartctl), "excludeMetrics": ["smartmon_crit_comp_time"],
                                     "exclude_devices": ["/dev/sda"]})
    assert [d for d, _ in c.devices] == ["/dev/nvme0", "/dev/nvme1"]
    got = c.read(T1)
    assert all(m.meta["source"] == "SmartMonCollector" and m.meta["group"] == "Disk" for m in got)
    tags = {"type": "node", "stype": "disk", "stype-id": "/dev/nvme0"}
    t = {m.name: m.value for m in got}
    assert all(m.tags == tags for m in got)  # nvme1's output does not parse: left out this round
    assert t == {"smartmon_temp": 35, "smartmon_percent_used": 3, "smartmon_avail_spare": 100,
                 "smartmon_data_units_read": 123456, "smartmon_data_units_write": 654321,
                 "smartmon_host_reads": 1000, "smartmon_host_writes": 2000, "smartmon_power_cycles": 42,
                 "smartmon_power_on": 3_600_000, "smartmon_unsafe_shutdowns": 7, "smartmon_media_errors": 0,
                 "smartmon_errlog_entries": 12, "smartmon_warn_temp_time": 0}
    assert {m.name: m.meta.get("unit") for m in got}["smartmon_power_on"] == "sec"


def test_smartmon_configured_devices_and_errors(tmp_path, smartctl):
    c = start(tmp_path, "smartmon", {"smartctl_path": str(smartctl), "devices": [{"name": "/dev/sda",
                                                                                   "type": "sat"}]})
    assert c.read(T1) == []  # a SATA disk: no NVMe health log
    with pytest.raises(AgentConfigError, match=r"collectors\.smartmon\.excludeMetrics: unknown metric 'temp'"):
        start(tmp_path, "smartmon", {"smartctl_path": str(smartctl), "excludeMetrics": ["temp"]})
    with pytest.raises(AgentConfigError, match=r"collectors\.smartmon\.devices\[0\]: expected"):
        start(tmp_path, "smartmon", {"smartctl_path": str(smartctl), "devices": ["/dev/sda"]})
    with pytest.raises(CollectorUnavailable, match="no \\(non-excluded\\) devices"):
        start(tmp_path, "smartmon", {"smartctl_path": str(smartctl),
                                     "exclude_devices": ["/dev/nvme0", "/dev/nvme1", "/dev/sda"]})
