"""Node health: ``tempstat`` (hwmon), ``ipmistat`` (BMC sensors: ipmi-sensors/ipmitool), ``smartmon`` (smartctl).

``tempstat`` reads ``/sys/class/hwmon/hwmon*/temp*_input``.

The metric name comes from the chip's ``name`` and the sensor's ``label`` as upstream builds it:
coretemp's ``Core N``/``Package id N`` become ``temp_core_n``/``temp_package_id_n``, others
``<name>_<label>``, lower-cased, spaces as ``_``, prefixed ``temp_`` unless they contain ``temp``.
Values are degC (millidegrees / 1000; upstream truncates to whole degrees, here the fraction is
kept).  ``report_max_temperature``/``report_critical_temperature`` add ``max_temp_*``/
``crit_temp_*`` from ``temp*_max``/``temp*_crit`` (read once at start, as upstream).  Tags are
``type=node`` unless ``tag_override`` maps a part of the sensor's path (``"hwmon1"``) to other
tags (``{"type": "socket", "type-id": "0"}``).  A sensor whose input cannot be read at start is
left out; one that fails later is skipped that round.

``ipmistat`` prefers ``ipmi-sensors --comma-separated-output --sdr-cache-recreate`` (``ipmisensors_path``)
and falls back to ``ipmitool sensor`` (``ipmitool_path``), whichever answers at start; each sensor
with a numeric reading becomes a ``type=node`` metric named after the sensor (lower case, spaces
as ``_``: ``cpu1_temp``, ``ps1_input_power``) with its unit (ipmitool's ``degrees C`` as
``degC``).  ``include_metrics`` (sensor names) restricts what is sent; ``use_sudo`` runs the tool
through ``sudo -n``.
"""

from __future__ import annotations

import json
import os
import re

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable
from cc.agent.collectors._cmd import CommandFailed, find_command, run_command
from cc.agent.message import Message

HWMON = "sys/class/hwmon"
_INPUT_RE = re.compile(r"temp(\d+)_input$")


class TempstatCollector(Collector):
    name = "tempstat"
    source = "TempCollector"
    group = "IPMI"
    options = {"tag_override": dict, "report_max_temperature": bool, "report_critical_temperature": bool,
               "exclude_metrics": list, "only_metrics": list}

    def _check_overrides(self) -> dict[str, dict[str, str]]:
        ov = self.cfg.get("tag_override", {})
        for key, tags in ov.items():
            if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in tags.items()):
                raise AgentConfigError(f"{self.where}.tag_override.{key}: expected an object of string tags, "
                                       f"got {tags!r}")
        return ov

    def _optional_int(self, path: str) -> int | None:
        try:
            return int(self.read_text(path).strip())
        except (OSError, ValueError):
            return None

    def init(self, now: float) -> None:
        overrides = self._check_overrides()
        base = self.path(HWMON)
        try:
            chips = sorted(os.listdir(base), key=lambda n: (len(n), n))
        except OSError as e:
            raise CollectorUnavailable(f"no hwmon devices: {base}: {e.strerror}") from None
        #: (input file, metric, tags, max metric/value, crit metric/value)
        self.sensors: list[tuple[str, str, dict[str, str], tuple[str, float] | None, tuple[str, float] | None]] = []
        for chip in chips:
            d = f"{base}/{chip}"
            try:
                files = sorted(os.listdir(d))
            except OSError:
                continue
            try:
                chip_name = self.read_text(f"{d}/name").strip()
            except OSError:
                chip_name = ""
            for f in files:
                if not (m := _INPUT_RE.match(f)):
                    continue
                stem = f"{d}/temp{m.group(1)}"
                try:
                    label = self.read_text(f"{stem}_label").strip()
                except OSError:
                    label = ""
                metric = sensor_metric(chip_name, label)
                if metric is None or self._optional_int(f"{stem}_input") is None:
                    continue
                tags = {"type": "node"}
                for key, t in overrides.items():
                    if key in f"{d}/{f}":
                        tags = dict(t)
                        break
                mx = cr = None
                if self.cfg.get("report_max_temperature") and (v := self._optional_int(f"{stem}_max")):
                    mx = (metric.replace("temp", "max_temp", 1), v / 1000)
                if self.cfg.get("report_critical_temperature") and (v := self._optional_int(f"{stem}_crit")):
                    cr = (metric.replace("temp", "crit_temp", 1), v / 1000)
                self.sensors.append((f"{stem}_input", metric, tags, mx, cr))
        if not self.sensors:
            raise CollectorUnavailable(f"no readable temperature sensors in {base}")

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        for file, metric, tags, mx, cr in self.sensors:
            v = self._optional_int(file)
            if v is None:
                continue
            if self.want(metric):
                out.append(self.msg(metric, tags, v / 1000, now, "degC"))
            for extra in (mx, cr):
                if extra is not None and self.want(extra[0]):
                    out.append(self.msg(extra[0], tags, extra[1], now, "degC"))
        return out


def sensor_metric(chip: str, label: str) -> str | None:
    """The metric name of a hwmon temperature sensor (None without chip name and label)."""
    if not chip and not label:
        return None
    if chip == "coretemp" and (label.startswith("Core ") or label.startswith("Package id ")):
        name = "temp_" + label
    elif chip and label:
        name = f"{chip}_{label}"
    else:
        name = chip or label
    name = name.lower().replace(" ", "_")
    return name if "temp" in name else "temp_" + name


_IPMITOOL_UNITS = {"degrees C": "degC", "degrees F": "degF"}


def parse_ipmi_sensors(text: str) -> list[tuple[str, float, str]]:
    """(name, reading, unit) from ``ipmi-sensors --comma-separated-output`` (ID,Name,Type,Reading,Units,Event)."""
    out = []
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 4 or f[3] in ("N/A", "Reading"):
            continue
        try:
            v = float(f[3])
        except ValueError:
            continue
        out.append((f[1].strip().replace(" ", "_").lower(), v, f[4].strip() if len(f) > 4 else ""))
    return out


def parse_ipmitool(text: str) -> list[tuple[str, float, str]]:
    """(name, reading, unit) from ``ipmitool sensor`` (``name | reading | unit | status | thresholds...``)."""
    out = []
    for line in text.splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) < 3 or f[1] in ("na", "0x0"):
            continue
        try:
            v = float(f[1])
        except ValueError:
            continue
        out.append((f[0].replace(" ", "_").lower(), v, _IPMITOOL_UNITS.get(f[2], f[2])))
    return out


class IpmistatCollector(Collector):
    name = "ipmistat"
    source = "IpmiCollector"
    group = "IPMI"
    options = {"ipmitool_path": str, "ipmisensors_path": str, "use_sudo": bool, "include_metrics": list,
               "exclude_metrics": list, "only_metrics": list}

    def init(self, now: float) -> None:
        sudo = [find_command(None, "sudo", self.where), "-n"] if self.cfg.get("use_sudo") else []
        self.include = {m.strip().lower() for m in self.cfg.get("include_metrics", ()) if m.strip()}
        errors = []
        tools = (("ipmisensors_path", "ipmi-sensors", ["--comma-separated-output", "--sdr-cache-recreate"],
                  parse_ipmi_sensors), ("ipmitool_path", "ipmitool", ["sensor"], parse_ipmitool))
        for key, default, args, parse in tools:
            try:
                argv = [*sudo, find_command(self.cfg.get(key), default, self.where), *args]
                parse(run_command(argv))
            except (CollectorUnavailable, CommandFailed) as e:
                errors.append(str(e))
                continue
            self.argv, self.parse = argv, parse
            return
        raise CollectorUnavailable("; ".join(errors))

    def read(self, now: float) -> list[Message]:
        out = []
        for name, v, unit in self.parse(run_command(self.argv)):
            if (not self.include or name in self.include) and self.want(name):
                out.append(self.msg(name, {"type": "node"}, v, now, unit or None))
        return out


#: metric, key in nvme_smart_health_information_log, factor, unit
_SMART = (
    ("smartmon_temp", "temperature", 1, "degC"), ("smartmon_percent_used", "percentage_used", 1, "percent"),
    ("smartmon_avail_spare", "available_spare", 1, "percent"),
    ("smartmon_data_units_read", "data_units_read", 1, None),
    ("smartmon_data_units_write", "data_units_written", 1, None), ("smartmon_host_reads", "host_reads", 1, None),
    ("smartmon_host_writes", "host_writes", 1, None), ("smartmon_power_cycles", "power_cycles", 1, None),
    ("smartmon_power_on", "power_on_hours", 3600, "sec"), ("smartmon_unsafe_shutdowns", "unsafe_shutdowns", 1, None),
    ("smartmon_media_errors", "media_errors", 1, None), ("smartmon_errlog_entries", "num_err_log_entries", 1, None),
    ("smartmon_warn_temp_time", "warning_temp_time", 1, None),
    ("smartmon_crit_comp_time", "critical_comp_time", 1, None),
)


class SmartmonCollector(Collector):
    """``smartmon``: NVMe health from ``smartctl --json=c --all`` (devices from ``devices`` or ``smartctl --scan``).

    Tags ``type=node,stype=disk,stype-id=<device>`` as upstream.  Upstream spells the exclusion key
    ``excludeMetrics`` (and rejects unknown names there); both that and ``exclude_metrics`` work.
    ``smartctl_path`` (not upstream, which searches PATH) names the command.
    """

    name = "smartmon"
    source = "SmartMonCollector"
    group = "Disk"
    options = {"use_sudo": bool, "exclude_devices": list, "excludeMetrics": list, "exclude_metrics": list,
               "only_metrics": list, "devices": list, "smartctl_path": str}
    object_lists = frozenset({"devices"})

    def init(self, now: float) -> None:
        known = {m for m, *_ in _SMART}
        for m in self.cfg.get("excludeMetrics", ()):
            if m not in known:
                raise AgentConfigError(f"{self.where}.excludeMetrics: unknown metric {m!r}")
        self.exclude = self.exclude | frozenset(self.cfg.get("excludeMetrics", ()))
        sudo = [find_command(None, "sudo", self.where), "-n"] if self.cfg.get("use_sudo") else []
        ctl = find_command(self.cfg.get("smartctl_path"), "smartctl", self.where)
        devices = self.cfg.get("devices")
        if devices is not None:
            for i, d in enumerate(devices):
                if not (isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("type"), str)):
                    raise AgentConfigError(f"{self.where}.devices[{i}]: expected {{\"name\": ..., \"type\": ...}}")
        else:
            try:
                devices = json.loads(run_command([*sudo, ctl, "--scan", "--json=c"])).get("devices", [])
            except (CommandFailed, ValueError, AttributeError) as e:
                raise CollectorUnavailable(f"smartctl --scan: {e}") from None
        skip = set(self.cfg.get("exclude_devices", ()))
        self.devices = [(d["name"], [*sudo, ctl, "--json=c", f"--device={d.get('type', 'auto')}", "--all", d["name"]])
                        for d in devices if isinstance(d, dict) and "name" in d and d["name"] not in skip]
        if not self.devices:
            raise CollectorUnavailable("no (non-excluded) devices to query")

    def read(self, now: float) -> list[Message]:
        out = []
        for dev, argv in self.devices:
            try:
                # smartctl's exit status is a bit mask of health findings: judge by the JSON
                text = run_command(argv, ok_codes=range(256))
                log_ = json.loads(text).get("nvme_smart_health_information_log")
            except (CommandFailed, ValueError, AttributeError):
                continue
            if not isinstance(log_, dict):
                continue
            tags = {"type": "node", "stype": "disk", "stype-id": dev}
            for name, k, factor, unit in _SMART:
                v = log_.get(k)
                if isinstance(v, int | float) and self.want(name):
                    out.append(self.msg(name, tags, v * factor, now, unit))
        return out
