"""``rocm_smi``: AMD GPUs through the ROCm SMI library (``librocm_smi64.so``), when present.

No hard dependency: the library is loaded with ctypes at start; without it (or when
``rsmi_init`` fails) the collector is off with one message and the agent runs on.  Per GPU
(``type=accelerator``; ``type-id`` the device index, or the PCI address ``%08X:%02X:%02X.0``
with ``use_pci_info_as_type_id``; ``add_pci_info_tag`` adds it as ``pci_identifier``;
``add_serial_meta`` the serial number as meta ``serial``) it reads ``rsmi_dev_gpu_metrics_info_get``
and sends upstream's names: ``rocm_gfx_util``, ``rocm_umc_util``, ``rocm_mm_util`` (%),
``rocm_avg_power`` (W), ``rocm_temp_edge|hotspot|mem|vrgfx|vrsoc|vrmem`` (degC),
``rocm_gfx_clock``, ``rocm_soc_clock``, ``rocm_u_clock``, ``rocm_v0_clock``, ``rocm_v1_clock``,
``rocm_d0_clock``, ``rocm_d1_clock`` (MHz) and ``rocm_temp_hbm`` per HBM stack
(``stype=device,stype-id=<n>``).  Fields the GPU does not fill (0xFFFF) are not sent -- upstream
sends them as 65535.

Only the metrics table's leading part is declared (stable since its version 1.0); the buffer
handed to the library is far larger than any version of the whole table.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

from cc.agent.collectors._base import Collector, CollectorUnavailable
from cc.agent.message import Message

_U16_NA = 0xFFFF
_BUFFER = 1 << 16


class GpuMetricsHead(ctypes.Structure):
    """The first fields of ``rsmi_gpu_metrics_t`` (v1.0 base layout, natural alignment)."""

    _fields_ = [
        ("structure_size", ctypes.c_uint16), ("format_revision", ctypes.c_uint8),
        ("content_revision", ctypes.c_uint8),
        ("temperature_edge", ctypes.c_uint16), ("temperature_hotspot", ctypes.c_uint16),
        ("temperature_mem", ctypes.c_uint16), ("temperature_vrgfx", ctypes.c_uint16),
        ("temperature_vrsoc", ctypes.c_uint16), ("temperature_vrmem", ctypes.c_uint16),
        ("average_gfx_activity", ctypes.c_uint16), ("average_umc_activity", ctypes.c_uint16),
        ("average_mm_activity", ctypes.c_uint16), ("average_socket_power", ctypes.c_uint16),
        ("energy_accumulator", ctypes.c_uint64), ("system_clock_counter", ctypes.c_uint64),
        ("average_gfxclk_frequency", ctypes.c_uint16), ("average_socclk_frequency", ctypes.c_uint16),
        ("average_uclk_frequency", ctypes.c_uint16), ("average_vclk0_frequency", ctypes.c_uint16),
        ("average_dclk0_frequency", ctypes.c_uint16), ("average_vclk1_frequency", ctypes.c_uint16),
        ("average_dclk1_frequency", ctypes.c_uint16),
        ("current_gfxclk", ctypes.c_uint16), ("current_socclk", ctypes.c_uint16), ("current_uclk", ctypes.c_uint16),
        ("current_vclk0", ctypes.c_uint16), ("current_dclk0", ctypes.c_uint16), ("current_vclk1", ctypes.c_uint16),
        ("current_dclk1", ctypes.c_uint16),
        ("throttle_status", ctypes.c_uint32), ("current_fan_speed", ctypes.c_uint16),
        ("pcie_link_width", ctypes.c_uint16), ("pcie_link_speed", ctypes.c_uint16),
        ("gfx_activity_acc", ctypes.c_uint32), ("mem_activity_acc", ctypes.c_uint32),
        ("temperature_hbm", ctypes.c_uint16 * 4),
    ]


#: metric, field, unit
_FIELDS = (
    ("rocm_gfx_util", "average_gfx_activity", "%"), ("rocm_umc_util", "average_umc_activity", "%"),
    ("rocm_mm_util", "average_mm_activity", "%"), ("rocm_avg_power", "average_socket_power", "W"),
    ("rocm_temp_mem", "temperature_mem", "degC"), ("rocm_temp_hotspot", "temperature_hotspot", "degC"),
    ("rocm_temp_edge", "temperature_edge", "degC"), ("rocm_temp_vrgfx", "temperature_vrgfx", "degC"),
    ("rocm_temp_vrsoc", "temperature_vrsoc", "degC"), ("rocm_temp_vrmem", "temperature_vrmem", "degC"),
    ("rocm_gfx_clock", "average_gfxclk_frequency", "MHz"), ("rocm_soc_clock", "average_socclk_frequency", "MHz"),
    ("rocm_u_clock", "average_uclk_frequency", "MHz"), ("rocm_v0_clock", "average_vclk0_frequency", "MHz"),
    ("rocm_v1_clock", "average_vclk1_frequency", "MHz"), ("rocm_d0_clock", "average_dclk0_frequency", "MHz"),
    ("rocm_d1_clock", "average_dclk1_frequency", "MHz"),
)


def decode_metrics(raw: bytes) -> dict[str, Any]:
    """The fields of a metrics table (its leading part) as a dict."""
    head = GpuMetricsHead.from_buffer_copy(raw[:ctypes.sizeof(GpuMetricsHead)])
    out: dict[str, Any] = {name: getattr(head, name) for name, _ in GpuMetricsHead._fields_}
    out["temperature_hbm"] = list(head.temperature_hbm)
    return out


class RocmSmi:
    """The few ROCm SMI calls the collector makes, over ctypes."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("rocm_smi64")
        candidates = [p for p in (path, "librocm_smi64.so", "/opt/rocm/lib/librocm_smi64.so") if p]
        self.lib = None
        for p in candidates:
            try:
                self.lib = ctypes.CDLL(p)
                break
            except OSError:
                continue
        if self.lib is None:
            raise CollectorUnavailable("the ROCm SMI library (librocm_smi64.so) is not installed")
        self._check(self.lib.rsmi_init(ctypes.c_uint64(0)), "rsmi_init")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise CollectorUnavailable(f"ROCm SMI: {what} failed with status {status}")

    def num_devices(self) -> int:
        n = ctypes.c_uint32()
        self._check(self.lib.rsmi_num_monitor_devices(ctypes.byref(n)), "rsmi_num_monitor_devices")
        return n.value

    def pci_id(self, i: int) -> int:
        v = ctypes.c_uint64()
        self._check(self.lib.rsmi_dev_pci_id_get(ctypes.c_uint32(i), ctypes.byref(v)), "rsmi_dev_pci_id_get")
        return v.value

    def serial(self, i: int) -> str:
        buf = ctypes.create_string_buffer(256)
        self._check(self.lib.rsmi_dev_serial_number_get(ctypes.c_uint32(i), buf, ctypes.c_uint32(256)),
                    "rsmi_dev_serial_number_get")
        return buf.value.decode("ascii", "replace")

    def metrics(self, i: int) -> dict[str, Any]:
        buf = (ctypes.c_uint64 * (_BUFFER // 8))()  # 8-aligned, larger than any rsmi_gpu_metrics_t
        self._check(self.lib.rsmi_dev_gpu_metrics_info_get(ctypes.c_uint32(i), buf), "rsmi_dev_gpu_metrics_info_get")
        return decode_metrics(bytes(buf))

    def shutdown(self) -> None:
        self.lib.rsmi_shut_down()


def pci_address(bdfid: int) -> str:
    """ROCm's BDF id as NVML's PCI address spelling (``%08X:%02X:%02X.0``), as upstream."""
    return f"{(bdfid >> 32) & 0xFFFFFFFF:08X}:{(bdfid >> 8) & 0xFF:02X}:{(bdfid >> 3) & 0x1F:02X}.0"


class RocmSmiCollector(Collector):
    name = "rocm_smi"
    source = "RocmSmiCollector"
    group = "AMD"
    options = {"exclude_devices": list, "exclude_metrics": list, "only_metrics": list,
               "use_pci_info_as_type_id": bool, "add_pci_info_tag": bool, "add_serial_meta": bool}
    #: how the library is obtained; tests install a stand-in here
    loader: Callable[[], Any] = RocmSmi

    def init(self, now: float) -> None:
        smi = self.smi = self.loader()
        excluded = set(self.cfg.get("exclude_devices", ()))
        self.gpus: list[tuple[int, dict[str, str], dict[str, str]]] = []
        for i in range(smi.num_devices()):
            pci = pci_address(smi.pci_id(i))
            if str(i) in excluded or pci in excluded:
                continue
            tags = {"type": "accelerator", "type-id": pci if self.cfg.get("use_pci_info_as_type_id") else str(i)}
            if self.cfg.get("add_pci_info_tag"):
                tags["pci_identifier"] = pci
            meta = dict(self.meta)
            if self.cfg.get("add_serial_meta"):
                meta["serial"] = smi.serial(i)
            self.gpus.append((i, tags, meta))
        if not self.gpus:
            raise CollectorUnavailable("ROCm SMI reports no (non-excluded) GPUs")

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        for i, tags, meta in self.gpus:
            try:
                m = self.smi.metrics(i)
            except CollectorUnavailable:
                continue
            for name, field, unit in _FIELDS:
                v = m.get(field)
                if v is not None and v != _U16_NA and self.want(name):
                    out.append(Message(name, dict(tags), {**meta, "unit": unit}, v, now))
            if self.want("rocm_temp_hbm"):
                for n, v in enumerate(m.get("temperature_hbm", ())):
                    if v != _U16_NA:
                        out.append(Message("rocm_temp_hbm", {**tags, "stype": "device", "stype-id": str(n)},
                                           {**meta, "unit": "degC"}, v, now))
        return out

    def close(self) -> None:
        if getattr(self, "smi", None) is not None:
            self.smi.shutdown()
