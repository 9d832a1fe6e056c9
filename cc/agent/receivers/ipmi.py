"""``ipmi`` receiver: BMC sensors read out of band with FreeIPMI's ``ipmi-sensors``.

cc-metric-collector's keys: ``interval`` (30s), ``fanout`` (64), ``driver_type``
(``LAN_2_0`` or ``LAN``), globally or per ``client_config`` entry ``username``,
``password``, ``endpoint`` (``ipmi-sensors://%h-bmc``: the tool, then the BMC's address),
``exclude_metrics``, and per entry ``host_list`` and ``cli_options`` (further
``ipmi-sensors`` options; the ones this receiver sets itself are refused).

Sensors become upstream's metrics, tagged ``hostname``, ``type=node`` and ``name`` (the
sensor name, lower case, spaces as ``_``, a ``NN-`` prefix removed): ``power`` (Watts),
``voltage``, ``current`` (Ampere), ``temperature`` (degC/degF), ``fan_speed`` (RPM),
``air_flow`` and ``utilization`` (percent); other sensors are skipped.  The password is
given to ipmi-sensors on its command line, as upstream does, and masked in our logs.
"""

from __future__ import annotations

import re
import shutil
import time
from typing import Any

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import Message
from cc.agent.receivers._bmc import BmcReceiver, Device

_OWN = ("--always-prefix", "--sdr-cache-recreate", "--interpret-oem-data", "--ignore-not-available-sensors",
        "--ignore-unrecognized-events", "--comma-separated-output", "--no-header-output",
        "--non-abbreviated-units")
_RESERVED = (("-u", "--username"), ("-p", "--password"), ("-h", "--hostname"), ("-D", "--driver-type"),
             ("-F", "--fanout"))
_NUM_PREFIX = re.compile(r"^\d\d-(.*)$")


def sensor_metric(stype: str, sname: str, unit: str) -> tuple[str, str, str] | None:
    """(metric, name tag, unit) for one ``ipmi-sensors`` row, or None for sensors we do not send."""
    metric = stype.lower()
    name = sname.strip().replace(" ", "_").lower()
    if m := _NUM_PREFIX.match(name):
        name = m.group(1)
    if unit == "Watts":
        metric = "power"
        name = name.removesuffix("_power").removesuffix("_pwr").removeprefix("pwr_")
    elif metric == "voltage" and unit == "Volts":
        name = name.removeprefix("volt_")
    elif metric == "current" and unit == "Amps":
        unit = "Ampere"
    elif metric == "temperature" and unit in ("degrees C", "degrees F"):
        name = name.removesuffix("_temp")
        unit = "degC" if unit == "degrees C" else "degF"
    elif metric == "fan" and unit == "RPM":
        metric = "fan_speed"
        name = name.removesuffix("_tach").removeprefix("spd_")
    elif metric in ("cooling device", "other units based sensor") and name == "system_air_flow" and unit == "CFM":
        metric, name, unit = "air_flow", name.removesuffix("_air_flow"), "CubicFeetPerMinute"
    elif (metric in ("processor", "other units based sensor")
          and name in ("cpu_utilization", "io_utilization", "mem_utilization", "sys_utilization")
          and unit in ("unspecified", "%")):
        metric, name, unit = "utilization", name.removesuffix("_utilization"), "percent"
    else:
        return None
    return metric, name, unit


class IpmiReceiver(BmcReceiver):
    type = "ipmi"
    options = {"driver_type"}
    device_keys = BmcReceiver.device_keys | {"driver_type", "cli_options"}

    def device_options(self, merged: dict[str, Any], where: str) -> dict[str, Any]:
        driver = merged.get("driver_type", "LAN_2_0")
        if driver not in ("LAN", "LAN_2_0"):
            raise AgentConfigError(f"{where}.driver_type: expected LAN or LAN_2_0, got {driver!r}")
        proto, sep, pattern = merged["endpoint"].partition("://")
        if not sep or proto != "ipmi-sensors" or not pattern:
            raise AgentConfigError(f"{where}.endpoint: expected 'ipmi-sensors://HOST' (%h = host), "
                                   f"got {merged['endpoint']!r}")
        for key in ("username", "password"):
            if not merged.get(key):
                raise AgentConfigError(f"{where}.{key}: required (globally or in the client config)")
        cli = merged.get("cli_options", [])
        if not isinstance(cli, list) or not all(isinstance(x, str) for x in cli):
            raise AgentConfigError(f"{where}.cli_options: expected a list of ipmi-sensors options")
        for opt in cli:
            if opt in _OWN:
                raise AgentConfigError(f"{where}.cli_options: {opt} is set by the receiver itself")
            for short, long in _RESERVED:
                if opt == short or opt.startswith(long):
                    raise AgentConfigError(f"{where}.cli_options: set {long.lstrip('-')} through the "
                                           "configuration, not cli_options")
        return {"driver": driver, "cli": list(cli)}

    async def read_device(self, dev: Device) -> list[Message]:
        exe = shutil.which("ipmi-sensors")
        if exe is None:
            raise RuntimeError("ipmi-sensors (FreeIPMI) is not installed")
        bmc = dev.endpoint.partition("://")[2]
        argv = [exe, *_OWN, "--driver-type", dev.options["driver"], "--hostname", bmc,
                "--username", dev.username or "", "--password", dev.password or "", *dev.options["cli"]]
        proc = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().replace(dev.password or "\0", "<PW>")
            raise RuntimeError(f"ipmi-sensors exited with {proc.returncode}: {err[:300]}")
        return self.parse(proc.stdout.decode(errors="replace"), bmc, dev.hostname, time.time())

    def parse(self, out: str, bmc: str, hostname: str, ts: float) -> list[Message]:
        msgs = []
        for line in out.splitlines():
            prefix, sep, rest = line.partition(": ")
            if not sep or prefix != bmc:
                continue
            cols = rest.split(",")
            if len(cols) != 6 or cols[3] == "N/A":
                continue
            conv = sensor_metric(cols[2], cols[1], cols[4])
            if conv is None:
                continue
            try:
                value = float(cols[3])
            except ValueError:
                continue
            metric, name, unit = conv
            msgs.append(Message(metric, {"hostname": hostname, "type": "node", "name": name},
                                {"source": self.name, "group": "IPMI", "unit": unit}, value, ts))
        return msgs
