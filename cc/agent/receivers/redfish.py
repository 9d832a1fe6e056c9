"""``redfish`` receiver: power, thermal and processor metrics of BMCs over Redfish (HTTPS).

cc-metric-collector's keys: ``fanout``, ``interval`` (30s), ``http_insecure`` (default
true: the BMC's certificate is not verified, as most BMCs have self-signed ones),
``http_timeout`` (10s), and globally or per ``client_config`` entry ``username``,
``password``, ``endpoint`` (``https://%h-bmc``), ``exclude_metrics``,
``disable_power_metrics``, ``disable_thermal_metrics``, ``disable_processor_metrics``.

Metrics and tags as upstream: per chassis ``consumed_watts``, ``average_consumed_watts``,
``min_consumed_watts``, ``max_consumed_watts`` (each PowerControl, group Energy, unit
watts), ``temperature`` (degC) and ``fan_speed`` (the fan's reading unit) with
``chassis_typ``/``chassis_name`` and the sensor's id, member id, physical context and
name; per processor (``type=socket``) ``consumed_power`` and ``temperature`` from its
``ProcessorMetrics`` (remembered as absent after a 404).  Sensors not ``Enabled`` are
skipped; a value the BMC does not report is left out rather than sent as 0.  Requests use
HTTP basic authentication through httpx.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import Message
from cc.agent.receivers._bmc import BmcReceiver, Device
from cc.agent.sinks._base import duration_option

_FLAGS = ("disable_power_metrics", "disable_thermal_metrics", "disable_processor_metrics")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _enabled(item: dict, strict: bool = False) -> bool:
    state = (item.get("Status") or {}).get("State") or ""
    return state == "Enabled" or (not strict and state == "")


def _tags(d: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in d.items() if v not in (None, "")}


class RedfishReceiver(BmcReceiver):
    type = "redfish"
    options = {"http_insecure", "http_timeout"}
    device_keys = BmcReceiver.device_keys | set(_FLAGS)

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.insecure = cfg.get("http_insecure", True)
        if not isinstance(self.insecure, bool):
            raise AgentConfigError(f"{self.where}.http_insecure: expected true or false")
        self.timeout = duration_option(cfg, "http_timeout", "10s", self.where, 0.001)
        self.client: httpx.AsyncClient | None = None
        self._no_metrics: set[str] = set()

    def device_options(self, merged: dict[str, Any], where: str) -> dict[str, Any]:
        out = {}
        for k in _FLAGS:
            v = merged.get(k, False)
            if not isinstance(v, bool):
                raise AgentConfigError(f"{where}.{k}: expected true or false")
            out[k] = v
        if not merged["endpoint"].startswith(("https://", "http://")):
            raise AgentConfigError(f"{where}.endpoint: expected an https:// URL, got {merged['endpoint']!r}")
        return out

    async def setup(self) -> None:
        self.client = httpx.AsyncClient(verify=not self.insecure, timeout=self.timeout,
                                        limits=httpx.Limits(max_connections=self.fanout))

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def _get(self, dev: Device, path: str) -> dict:
        assert self.client is not None
        auth = (dev.username, dev.password or "") if dev.username else None
        r = await self.client.get(dev.endpoint.rstrip("/") + path, auth=auth)
        r.raise_for_status()
        doc = r.json()
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a JSON object")
        return doc

    async def _members(self, dev: Device, doc: dict, key: str) -> list[dict]:
        link = (doc.get(key) or {}).get("@odata.id")
        if not link:
            return []
        coll = await self._get(dev, link)
        return [await self._get(dev, m["@odata.id"]) for m in coll.get("Members") or [] if m.get("@odata.id")]

    async def read_device(self, dev: Device) -> list[Message]:
        root = await self._get(dev, "/redfish/v1/")
        o = dev.options
        out: list[Message] = []
        if not (o["disable_power_metrics"] and o["disable_thermal_metrics"]):
            for ch in await self._members(dev, root, "Chassis"):
                base = {"hostname": dev.hostname, "type": "node", "chassis_typ": ch.get("ChassisType"),
                        "chassis_name": ch.get("Name")}
                if not o["disable_thermal_metrics"] and (ch.get("Thermal") or {}).get("@odata.id"):
                    out += self._thermal(await self._get(dev, ch["Thermal"]["@odata.id"]), base)
                if not o["disable_power_metrics"] and (ch.get("Power") or {}).get("@odata.id"):
                    out += self._power(await self._get(dev, ch["Power"]["@odata.id"]), base)
        if not o["disable_processor_metrics"]:
            for system in await self._members(dev, root, "Systems"):
                for proc in await self._members(dev, system, "Processors"):
                    out += await self._processor(dev, proc)
        return out

    def _msg(self, name: str, tags: dict, group: str, unit: str, value: Any, ts: float,
             extra_meta: dict | None = None) -> list[Message]:
        v = _num(value)
        if v is None:
            return []
        meta = {"source": self.name, "group": group, "unit": unit, **(extra_meta or {})}
        return [Message(name, _tags(tags), {k: x for k, x in meta.items() if x}, v, ts)]

    def _thermal(self, doc: dict, base: dict) -> list[Message]:
        ts = time.time()
        out = []
        for t in doc.get("Temperatures") or []:
            if _enabled(t):
                tags = {**base, "temperature_id": t.get("Id"), "temperature_member_id": t.get("MemberId"),
                        "temperature_physical_context": t.get("PhysicalContext"), "temperature_name": t.get("Name")}
                out += self._msg("temperature", tags, "Temperature", "degC", t.get("ReadingCelsius"), ts)
        for f in doc.get("Fans") or []:
            if _enabled(f, strict=True):
                tags = {**base, "fan_id": f.get("Id"), "fan_member_id": f.get("MemberId"),
                        "fan_physical_context": f.get("PhysicalContext"), "fan_name": f.get("Name")}
                out += self._msg("fan_speed", tags, "FanSpeed", f.get("ReadingUnits") or "", f.get("Reading"), ts)
        return out

    def _power(self, doc: dict, base: dict) -> list[Message]:
        ts = time.time()
        out = []
        for pc in doc.get("PowerControl") or []:
            if not _enabled(pc):
                continue
            pm = pc.get("PowerMetrics") or {}
            tags = {**base, "power_control_id": pc.get("Id"), "power_control_member_id": pc.get("MemberId"),
                    "power_control_physical_context": pc.get("PhysicalContext"), "power_control_name": pc.get("Name")}
            iv = _num(pm.get("IntervalInMin"))
            extra = {"interval_in_minutes": f"{iv:g}"} if iv is not None else {}
            for name, v in (("consumed_watts", pc.get("PowerConsumedWatts")),
                            ("average_consumed_watts", pm.get("AverageConsumedWatts")),
                            ("min_consumed_watts", pm.get("MinConsumedWatts")),
                            ("max_consumed_watts", pm.get("MaxConsumedWatts"))):
                out += self._msg(name, tags, "Energy", "watts", v, ts, extra)
        return out

    async def _processor(self, dev: Device, proc: dict) -> list[Message]:
        url = f"{proc.get('@odata.id', '').rstrip('/')}/ProcessorMetrics"
        if not proc.get("@odata.id") or url in self._no_metrics:
            return []
        try:
            pm = await self._get(dev, url)
        except httpx.HTTPStatusError as e:
            if e.response.status_code == 404:
                self._no_metrics.add(url)
                return []
            raise
        ts = time.time()
        tags = {"hostname": dev.hostname, "type": "socket", "processor_typ": proc.get("ProcessorType"),
                "processor_name": proc.get("Name"), "processor_id": proc.get("Id")}
        out = []
        if pm.get("ConsumedPowerWatt") != 65535:  # some BMCs say 65535 for "unknown"
            out += self._msg("consumed_power", tags, "Energy", "watts", pm.get("ConsumedPowerWatt"), ts)
        out += self._msg("temperature", tags, "Temperature", "degC", pm.get("TemperatureCelsius"), ts)
        return out
