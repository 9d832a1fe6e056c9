"""The router: hostname and cluster tags, one timestamp per interval, and ``process_messages``.

``process_messages`` follows cc-lib's message processor (the configuration
cc-metric-collector, its sinks and receivers share), with its default stage order::

    drop_by_name, drop_by_type, drop_if, add_tag, delete_tag, move_tag_to_meta, add_meta,
    delete_meta, move_meta_to_tags, rename, rename_if, change_unit_prefix, normalize_unit

Conditions use :mod:`cc.agent.expr`.  The router's own keys (``hostname_tag``,
``interval_timestamp``, and the deprecated ``add_tags``/``delete_tags``/``drop_metrics``/
``drop_metrics_if``/``rename_metrics``/``normalize_units``/``change_unit_prefix``, which
upstream folds into the processor) are accepted too; ``cluster`` is ours: it adds the
``cluster`` tag to every message that has none, which is all ClusterCockpit needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cc.agent import units
from cc.agent.aggregate import Aggregate, AggregateError
from cc.agent.expr import Condition, ConditionError, compile_condition
from cc.agent.message import Message

__all__ = ["RouterConfigError", "MessageProcessor", "Router"]

log = logging.getLogger("agent.router")

Stage = Callable[[Message], bool]  # returns True to drop the message

#: stage name -> the configuration key that fills it
STAGES = {
    "drop_by_name": "drop_messages",
    "drop_by_type": "drop_by_message_type",
    "drop_if": "drop_messages_if",
    "add_tag": "add_tags_if",
    "delete_tag": "delete_tags_if",
    "move_tag_to_meta": "move_tag_to_meta_if",
    "add_meta": "add_meta_if",
    "delete_meta": "delete_meta_if",
    "move_meta_to_tags": "move_meta_to_tag_if",
    "rename": "rename_messages",
    "rename_if": "rename_messages_if",
    "change_unit_prefix": "change_unit_prefix",
    "normalize_unit": "normalize_units",
}
_KEY_TO_STAGE = {v: k for k, v in STAGES.items()}
_UNSUPPORTED = ("add_field_if", "delete_field_if", "move_tag_to_field_if", "move_meta_to_field_if",
                "move_field_to_tag_if", "move_field_to_meta_if")
_MESSAGE_TYPES = ("metric", "event", "log", "control")


class RouterConfigError(ValueError):
    """Bad router or ``process_messages`` configuration; the message names the key."""


def _list(cfg: dict, key: str, where: str) -> list:
    """``cfg[key]`` as a list; ``where`` is the full name of the key for the error message."""
    v = cfg.get(key) or []
    if not isinstance(v, list):
        raise RouterConfigError(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _map(cfg: dict, key: str, where: str) -> dict:
    v = cfg.get(key) or {}
    if not isinstance(v, dict):
        raise RouterConfigError(f"{where}: expected an object, got {type(v).__name__}")
    for k, x in v.items():
        if not isinstance(x, str):
            raise RouterConfigError(f"{where}[{k!r}]: expected a string, got {x!r}")
    return v


class MessageProcessor:
    """Applies one ``process_messages`` configuration to messages (in place)."""

    def __init__(self, cfg: dict[str, Any] | None, where: str = "process_messages"):
        cfg = cfg or {}
        if not isinstance(cfg, dict):
            raise RouterConfigError(f"{where}: expected an object, got {type(cfg).__name__}")
        self.where = where
        known = set(STAGES.values()) | {"add_base_env", "stage_order"}
        for k in cfg:
            if k in _UNSUPPORTED:
                raise RouterConfigError(f"{where}.{k}: field operations are not supported "
                                        "(a metric has exactly one field, 'value')")
            if k not in known:
                raise RouterConfigError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(known))})")
        env = cfg.get("add_base_env") or {}
        if not isinstance(env, dict):
            raise RouterConfigError(f"{where}.add_base_env: expected an object of constants")
        self.env = dict(env)
        self.drop_names: set[str] = set()
        self.drop_types: set[str] = set()
        self.drop_if: list[Condition] = []
        self.add_tags: list[tuple[Condition, str, str]] = []
        self.del_tags: list[tuple[Condition, str]] = []
        self.tag_to_meta: list[tuple[Condition, str, str]] = []
        self.add_meta: list[tuple[Condition, str, str]] = []
        self.del_meta: list[tuple[Condition, str]] = []
        self.meta_to_tag: list[tuple[Condition, str, str]] = []
        self.renames: dict[str, str] = {}
        self.rename_if: list[tuple[Condition, str]] = []
        self.unit_prefix: list[tuple[Condition, str]] = []
        self.normalize = False
        self.labels: dict[str, str] = {}
        self.configure(cfg)
        order = cfg.get("stage_order")
        if order is None:
            order = list(STAGES)
        if not isinstance(order, list) or not all(isinstance(s, str) for s in order):
            raise RouterConfigError(f"{where}.stage_order: expected a list of stage names")
        for i, s in enumerate(order):
            if _KEY_TO_STAGE.get(s, s) not in STAGES:
                raise RouterConfigError(f"{where}.stage_order[{i}]: unknown stage {s!r} "
                                        f"(known: {', '.join(STAGES)})")
        self.order = [_KEY_TO_STAGE.get(s, s) for s in order]
        self.stages: list[Stage] = []
        self.build()

    def build(self) -> None:
        """(Re)build the list of active stages after :meth:`configure`."""
        impl = self._impl()
        self.stages = [impl[s] for s in self.order if self._active(s)]

    # -- configuration ---------------------------------------------------------------------

    def cond(self, text: Any, where: str) -> Condition:
        try:
            return compile_condition(text, where, self.env)
        except ConditionError as e:
            raise RouterConfigError(str(e)) from None

    def _w(self, key: str) -> str:
        return f"{self.where}.{self.labels.get(key, key)}"

    def _rules(self, cfg: dict, key: str, need_value: bool) -> list[tuple]:
        out = []
        for i, r in enumerate(_list(cfg, key, self._w(key))):
            w = f"{self._w(key)}[{i}]"
            if not isinstance(r, dict):
                raise RouterConfigError(f"{w}: expected an object with 'if', 'key'"
                                        + (" and 'value'" if need_value else ""))
            extra = set(r) - {"if", "key", "value"}
            if extra:
                raise RouterConfigError(f"{w}: unknown key {sorted(extra)[0]!r} (use 'if', 'key', 'value')")
            if not isinstance(r.get("key"), str) or not r["key"]:
                raise RouterConfigError(f"{w}.key: expected a non-empty string")
            if need_value and not isinstance(r.get("value"), str):
                raise RouterConfigError(f"{w}.value: expected a string")
            c = self.cond(r.get("if", "true"), f"{w}.if")
            out.append((c, r["key"], r["value"]) if need_value else (c, r["key"]))
        return out

    def configure(self, cfg: dict) -> None:
        """Add the rules of ``cfg`` (a ``process_messages`` object) to this processor."""
        w = self._w
        for i, n in enumerate(_list(cfg, "drop_messages", w("drop_messages"))):
            if not isinstance(n, str):
                raise RouterConfigError(f"{w('drop_messages')}[{i}]: expected a metric name, got {n!r}")
            self.drop_names.add(n)
        for i, t in enumerate(_list(cfg, "drop_by_message_type", w("drop_by_message_type"))):
            if t not in _MESSAGE_TYPES:
                raise RouterConfigError(f"{w('drop_by_message_type')}[{i}]: expected one of "
                                        f"{', '.join(_MESSAGE_TYPES)}, got {t!r}")
            self.drop_types.add(t)
        for i, c in enumerate(_list(cfg, "drop_messages_if", w("drop_messages_if"))):
            self.drop_if.append(self.cond(c, f"{w('drop_messages_if')}[{i}]"))
        self.add_tags += self._rules(cfg, "add_tags_if", True)
        self.del_tags += self._rules(cfg, "delete_tags_if", False)
        self.tag_to_meta += self._rules(cfg, "move_tag_to_meta_if", True)
        self.add_meta += self._rules(cfg, "add_meta_if", True)
        self.del_meta += self._rules(cfg, "delete_meta_if", False)
        self.meta_to_tag += self._rules(cfg, "move_meta_to_tag_if", True)
        self.renames.update(_map(cfg, "rename_messages", w("rename_messages")))
        for c, new in _map(cfg, "rename_messages_if", w("rename_messages_if")).items():
            self.rename_if.append((self.cond(c, f"{w('rename_messages_if')}[{c!r}]"), new))
        for c, prefix in _map(cfg, "change_unit_prefix", w("change_unit_prefix")).items():
            where = f"{w('change_unit_prefix')}[{c!r}]"
            if units.parse_prefix(prefix) is None:
                raise RouterConfigError(f"{where}: unknown unit prefix {prefix!r} "
                                        "(use e.g. 'K', 'M', 'G', 'Ki', 'Gi', or '' for none)")
            self.unit_prefix.append((self.cond(c, where), prefix))
        if "normalize_units" in cfg:
            if not isinstance(cfg["normalize_units"], bool):
                raise RouterConfigError(f"{w('normalize_units')}: expected true or false")
            self.normalize = cfg["normalize_units"]

    def _active(self, stage: str) -> bool:
        return bool({
            "drop_by_name": self.drop_names, "drop_by_type": self.drop_types, "drop_if": self.drop_if,
            "add_tag": self.add_tags, "delete_tag": self.del_tags, "move_tag_to_meta": self.tag_to_meta,
            "add_meta": self.add_meta, "delete_meta": self.del_meta, "move_meta_to_tags": self.meta_to_tag,
            "rename": self.renames, "rename_if": self.rename_if, "change_unit_prefix": self.unit_prefix,
            "normalize_unit": self.normalize,
        }[stage])

    # -- stages ------------------------------------------------------------------------------

    def _impl(self) -> dict[str, Stage]:
        def drop_by_name(m: Message) -> bool:
            return m.name in self.drop_names

        def drop_by_type(m: Message) -> bool:
            return "metric" in self.drop_types

        def drop_if(m: Message) -> bool:
            return any(c(m) for c in self.drop_if)

        def add_tag(m: Message) -> bool:
            for c, k, v in self.add_tags:
                if c(m):
                    m.tags[k] = v
            return False

        def delete_tag(m: Message) -> bool:
            for c, k in self.del_tags:
                if k in m.tags and c(m):
                    del m.tags[k]
            return False

        def move_tag_to_meta(m: Message) -> bool:
            for c, k, to in self.tag_to_meta:
                if k in m.tags and c(m):
                    m.meta[to] = m.tags.pop(k)
            return False

        def add_meta(m: Message) -> bool:
            for c, k, v in self.add_meta:
                if c(m):
                    m.meta[k] = v
            return False

        def delete_meta(m: Message) -> bool:
            for c, k in self.del_meta:
                if k in m.meta and c(m):
                    del m.meta[k]
            return False

        def move_meta_to_tags(m: Message) -> bool:
            for c, k, to in self.meta_to_tag:
                if k in m.meta and c(m):
                    m.tags[to] = m.meta.pop(k)
            return False

        def rename(m: Message) -> bool:
            new = self.renames.get(m.name)
            if new is not None:
                m.meta.setdefault("oldname", m.name)
                m.name = new
            return False

        def rename_if(m: Message) -> bool:
            for c, new in self.rename_if:
                if c(m):
                    m.meta.setdefault("oldname", m.name)
                    m.name = new
            return False

        def change_unit_prefix(m: Message) -> bool:
            for c, prefix in self.unit_prefix:
                if not c(m):
                    continue
                where = m.meta if "unit" in m.meta else m.tags if "unit" in m.tags else None
                if where is None:
                    continue
                conv = units.change_prefix(where["unit"], prefix)
                if conv is None:
                    continue
                factor, new_unit = conv
                m.value = int(m.value * factor) if isinstance(m.value, int) else m.value * factor
                where["unit"] = new_unit
            return False

        def normalize_unit(m: Message) -> bool:
            for where in (m.meta, m.tags):
                u = where.get("unit")
                if u is not None:
                    n = units.normalize(u)
                    if n is not None:
                        where["unit"] = n
                    break
            return False

        return {
            "drop_by_name": drop_by_name, "drop_by_type": drop_by_type, "drop_if": drop_if,
            "add_tag": add_tag, "delete_tag": delete_tag, "move_tag_to_meta": move_tag_to_meta,
            "add_meta": add_meta, "delete_meta": delete_meta, "move_meta_to_tags": move_meta_to_tags,
            "rename": rename, "rename_if": rename_if, "change_unit_prefix": change_unit_prefix,
            "normalize_unit": normalize_unit,
        }

    def process(self, m: Message) -> bool:
        """Apply all stages to ``m`` in place; False if the message is dropped."""
        return not any(stage(m) for stage in self.stages)

    def process_many(self, msgs: list[Message]) -> list[Message]:
        if not self.stages:
            return msgs
        return [m for m in msgs if self.process(m)]


_ROUTER_KEYS = {"hostname_tag", "interval_timestamp", "process_messages", "cluster", "num_cache_intervals",
                "max_forward", "add_tags", "delete_tags", "drop_metrics", "drop_metrics_if", "rename_metrics",
                "normalize_units", "change_unit_prefix", "interval_aggregates"}


class Router:
    """Sits between collectors and sinks: stamps, tags and processes each round's messages."""

    def __init__(self, cfg: dict[str, Any] | None, hostname: str, where: str = "router",
                 constants: dict[str, Any] | None = None):
        cfg = cfg or {}
        if not isinstance(cfg, dict):
            raise RouterConfigError(f"{where}: expected an object")
        for k in cfg:
            if k not in _ROUTER_KEYS:
                raise RouterConfigError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(_ROUTER_KEYS))})")
        for key in ("num_cache_intervals", "max_forward"):
            v = cfg.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise RouterConfigError(f"{where}.{key}: expected an integer >= 0, got {v!r}")
        consts = {"hostname": hostname, **(constants or {})}
        aggs = cfg.get("interval_aggregates") or []
        if not isinstance(aggs, list):
            raise RouterConfigError(f"{where}.interval_aggregates: expected a list of aggregates")
        try:
            self.aggregates = [Aggregate(a, f"{where}.interval_aggregates[{i}]", consts) for i, a in enumerate(aggs)]
        except AggregateError as e:
            raise RouterConfigError(str(e)) from None
        self.hostname = hostname
        self.hostname_tag = cfg.get("hostname_tag", "hostname")
        if not isinstance(self.hostname_tag, str) or not self.hostname_tag:
            raise RouterConfigError(f"{where}.hostname_tag: expected a non-empty string")
        self.interval_timestamp = cfg.get("interval_timestamp", True)
        if not isinstance(self.interval_timestamp, bool):
            raise RouterConfigError(f"{where}.interval_timestamp: expected true or false")
        self.cluster = cfg.get("cluster")
        if self.cluster is not None and (not isinstance(self.cluster, str) or not self.cluster):
            raise RouterConfigError(f"{where}.cluster: expected a cluster name")
        self.processor = MessageProcessor(cfg.get("process_messages"), f"{where}.process_messages")
        self._legacy(cfg, where)

    def _legacy(self, cfg: dict, where: str) -> None:
        """Fold the deprecated router keys into the processor, as cc-metric-collector does."""
        names = {"add_tags": "add_tags_if", "delete_tags": "delete_tags_if", "drop_metrics": "drop_messages",
                 "drop_metrics_if": "drop_messages_if", "rename_metrics": "rename_messages",
                 "normalize_units": "normalize_units", "change_unit_prefix": "change_unit_prefix"}
        legacy = {new: cfg[old] for old, new in names.items() if old in cfg}
        if not legacy:
            return
        if "change_unit_prefix" in legacy:  # the router's variant maps metric names, not conditions
            legacy["change_unit_prefix"] = {f"name == '{n}'": pre
                                            for n, pre in _map(cfg, "change_unit_prefix", f"{where}.change_unit_prefix").items()}
        p = self.processor
        saved = p.where
        p.where, p.labels = where, {new: old for old, new in names.items()}
        try:
            p.configure(legacy)
        finally:
            p.where, p.labels = saved, {}
        p.build()

    def forward(self, msgs: list[Message]) -> list[Message]:
        """Messages from a receiver: tagged and processed, but their own timestamps are kept."""
        htag, host, cluster = self.hostname_tag, self.hostname, self.cluster
        for m in msgs:
            if htag not in m.tags:
                m.tags[htag] = host
            if cluster is not None and "cluster" not in m.tags:
                m.tags["cluster"] = cluster
        return self.processor.process_many(msgs)

    def route(self, msgs: list[Message], interval_ts: float | None = None) -> list[Message]:
        """Tag, stamp and process one round of messages (in place); returns the ones to send."""
        htag, host, cluster = self.hostname_tag, self.hostname, self.cluster
        stamp = interval_ts if self.interval_timestamp else None
        for m in msgs:
            if htag not in m.tags:
                m.tags[htag] = host
            if cluster is not None and "cluster" not in m.tags:
                m.tags["cluster"] = cluster
            if stamp is not None:
                m.time = stamp
        if self.aggregates:
            base = {htag: host} if cluster is None else {htag: host, "cluster": cluster}
            ts = stamp if stamp is not None else (msgs[0].time if msgs else None)
            if ts is not None:
                derived = [d for a in self.aggregates if (d := a.evaluate(msgs, ts, base)) is not None]
                msgs = msgs + derived
        return self.processor.process_many(msgs)
