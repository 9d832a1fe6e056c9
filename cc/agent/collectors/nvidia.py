"""``nvidia``: NVIDIA GPUs through NVML (``pynvml``, the nvidia-ml-py package), when present.

No hard dependency: without an importable ``pynvml`` or a loadable libnvidia-ml
(``nvmlInit`` fails), ``init`` raises :class:`CollectorUnavailable` and the agent runs on
without GPUs.  Names and units follow cc-metric-collector's nvidia collector (scope
``accelerator``; ``type-id`` is the NVML index, or the PCI address with
``use_pci_info_as_type_id``).  String-valued upstream metrics are sent as numbers here
(``nv_perf_state`` P2 -> 2, ``nv_ecc_mode`` 1/0), since the metric store takes numbers only.

Standard metrics: ``acc_used`` (%), ``acc_mem_used`` (GB), ``acc_power`` (W).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cc.agent.collectors._base import Collector, CollectorUnavailable
from cc.agent.message import Message

log = logging.getLogger("agent.nvidia")


def load_nvml() -> Any:
    """The pynvml module, initialised; raises CollectorUnavailable if it or the library is missing."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise CollectorUnavailable("pynvml is not installed (pip install nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded...
        raise CollectorUnavailable(f"NVML not usable: {e}") from None
    return pynvml


class NvidiaCollector(Collector):
    name = "nvidia"
    source = "NvidiaCollector"
    group = "Nvidia"
    options = {"exclude_devices": list, "exclude_metrics": list, "use_pci_info_as_type_id": bool,
               "add_pci_info_tag": bool, "process_mig_devices": bool, "add_uuid_meta": bool,
               "add_board_number_meta": bool, "add_serial_meta": bool, "use_uuid_for_mig_device": bool,
               "use_slice_for_mig_device": bool}
    #: how NVML is obtained; tests install a stand-in for the library here
    loader: Callable[[], Any] = staticmethod(load_nvml)

    def init(self, now: float) -> None:
        nv = self.nv = self.loader()
        excluded = set(self.cfg.get("exclude_devices", ()))
        self.gpus: list[tuple[Any, dict[str, str], dict[str, float]]] = []
        for i in range(nv.nvmlDeviceGetCount()):
            if str(i) in excluded:
                continue
            h = nv.nvmlDeviceGetHandleByIndex(i)
            pci = nv.nvmlDeviceGetPciInfo(h)
            pci_id = f"{pci.domain:08X}:{pci.bus:02X}:{pci.device:02X}.0"
            if pci_id in excluded:
                continue
            tags = {"type": "accelerator",
                    "type-id": pci_id if self.cfg.get("use_pci_info_as_type_id") else str(i)}
            if self.cfg.get("add_pci_info_tag") and not self.cfg.get("use_pci_info_as_type_id"):
                tags["pci_identifier"] = pci_id
            self.gpus.append((h, tags, {}))
        if not self.gpus:
            raise CollectorUnavailable("NVML reports no (non-excluded) GPUs")
        self.unsupported: set[tuple[int, str]] = set()

    def _try(self, i: int, what: str, fn: Callable[[], Any]) -> Any:
        if (i, what) in self.unsupported:
            return None
        try:
            return fn()
        except Exception as e:  # NVMLError_NotSupported and friends: stop asking this GPU
            self.unsupported.add((i, what))
            log.debug("GPU %d: %s not available: %s", i, what, e)
            return None

    def read(self, now: float) -> list[Message]:
        nv = self.nv
        out: list[Message] = []
        std = self.ctx.standard

        def add(name: str, tags: dict[str, str], value: float | int | None, unit: str | None = None) -> None:
            if value is not None and self.want(name):
                out.append(self.msg(name, tags, value, now, unit))

        for i, (h, tags, state) in enumerate(self.gpus):
            util = self._try(i, "util", lambda h=h: nv.nvmlDeviceGetUtilizationRates(h))
            if util is not None:
                add("nv_util", tags, float(util.gpu), "%")
                add("nv_mem_util", tags, float(util.memory), "%")
                if std:
                    add("acc_used", tags, float(util.gpu), "%")
            mem = self._try(i, "mem", lambda h=h: nv.nvmlDeviceGetMemoryInfo(h))
            if mem is not None:
                add("nv_fb_mem_total", tags, mem.total / 2**20, "MByte")
                add("nv_fb_mem_used", tags, mem.used / 2**20, "MByte")
                if std:
                    add("acc_mem_used", tags, mem.used / 1e9, "GB")
            bar = self._try(i, "bar1", lambda h=h: nv.nvmlDeviceGetBAR1MemoryInfo(h))
            if bar is not None:
                add("nv_bar1_mem_total", tags, bar.bar1Total / 2**20, "MByte")
                add("nv_bar1_mem_used", tags, bar.bar1Used / 2**20, "MByte")
            temp = self._try(i, "temp", lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
            add("nv_temp", tags, None if temp is None else float(temp), "degC")
            fan = self._try(i, "fan", lambda h=h: nv.nvmlDeviceGetFanSpeed(h))
            add("nv_fan", tags, None if fan is None else float(fan), "%")
            ecc = self._try(i, "ecc", lambda h=h: nv.nvmlDeviceGetEccMode(h))
            add("nv_ecc_mode", tags, None if ecc is None else int(bool(ecc[0])))
            ps = self._try(i, "pstate", lambda h=h: nv.nvmlDeviceGetPerformanceState(h))
            add("nv_perf_state", tags, None if ps is None else int(ps))
            power = self._try(i, "power", lambda h=h: nv.nvmlDeviceGetPowerUsage(h))
            if power is not None:
                add("nv_power_usage", tags, power / 1000.0, "watts")
                if std:
                    add("acc_power", tags, power / 1000.0, "W")
            limit = self._try(i, "power_limit", lambda h=h: nv.nvmlDeviceGetPowerManagementLimit(h))
            add("nv_power_max_limit", tags, None if limit is None else limit / 1000.0, "watts")
            energy = self._try(i, "energy", lambda h=h: nv.nvmlDeviceGetTotalEnergyConsumption(h))
            if energy is not None:
                last = state.get("energy")
                if last is not None and energy >= last:
                    add("nv_energy", tags, (energy - last) / 1000.0, "Joules")
                    dt = now - state["energy_t"]
                    if dt > 0:
                        add("nv_average_power", tags, (energy - last) / 1000.0 / dt, "watts")
                add("nv_energy_abs", tags, energy / 1000.0, "Joules")
                state["energy"], state["energy_t"] = energy, now
            for what, cid in (("graphics", "NVML_CLOCK_GRAPHICS"), ("sm", "NVML_CLOCK_SM"),
                              ("mem", "NVML_CLOCK_MEM"), ("video", "NVML_CLOCK_VIDEO")):
                c = getattr(nv, cid)
                v = self._try(i, f"clock_{what}", lambda h=h, c=c: nv.nvmlDeviceGetClockInfo(h, c))
                add(f"nv_{what}_clock", tags, None if v is None else float(v), "MHz")
                v = self._try(i, f"maxclock_{what}", lambda h=h, c=c: nv.nvmlDeviceGetMaxClockInfo(h, c))
                add(f"nv_max_{what}_clock", tags, None if v is None else float(v), "MHz")
            enc = self._try(i, "enc", lambda h=h: nv.nvmlDeviceGetEncoderUtilization(h))
            add("nv_encoder_util", tags, None if enc is None else float(enc[0]), "%")
            dec = self._try(i, "dec", lambda h=h: nv.nvmlDeviceGetDecoderUtilization(h))
            add("nv_decoder_util", tags, None if dec is None else float(dec[0]), "%")
            procs = self._try(i, "procs", lambda h=h: nv.nvmlDeviceGetComputeRunningProcesses(h))
            add("nv_compute_processes", tags, None if procs is None else len(procs))
        return out

    def close(self) -> None:
        nv = getattr(self, "nv", None)
        if nv is not None:
            try:
                nv.nvmlShutdown()
            except Exception as e:
                log.debug("nvmlShutdown: %s", e)
