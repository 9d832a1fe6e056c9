"""What the sinks share: their configuration check, encoding, and the bounded line buffer.

The buffer is what makes a server outage survivable: lines wait in it until the server
acknowledges them.  It holds at most ``buffer_size`` lines; beyond that the oldest are
dropped, counted, and reported in the log (at most every few seconds, with counts), so
nothing is lost silently and nothing that fits is lost at all.

Lines carry absolute positions (``head`` is the position of the oldest line kept), so a
sender can deliver a range while new lines arrive or old ones are dropped, and then
release exactly what was acknowledged.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Any, ClassVar

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import PRECISIONS, Message, encode_many
from cc.agent.router import MessageProcessor, RouterConfigError
from cc.config import ConfigError, parse_duration

__all__ = ["BufferedSink", "LineBuffer", "Sink", "duration_option"]

DROP_LOG_INTERVAL = 5.0


def duration_option(cfg: dict, key: str, default: str, where: str, minimum: float = 0.0) -> float:
    try:
        v = parse_duration(cfg.get(key, default), what=f"{where}.{key}")
    except ConfigError as e:
        raise AgentConfigError(str(e)) from None
    if v < minimum:
        raise AgentConfigError(f"{where}.{key}: must be at least {minimum} s, got {cfg.get(key)!r}")
    return v


class LineBuffer:
    """Lines waiting for delivery, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int, log: logging.Logger, label: str):
        self.capacity = capacity
        self.lines: deque[str] = deque()
        self.head = 0               # absolute position of lines[0]
        self.dropped_total = 0
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self.log = log
        self.label = label
        self._changed = trio.Event()

    @property
    def end(self) -> int:
        return self.head + len(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def append(self, lines: list[str]) -> int:
        """Add lines; drop the oldest beyond capacity.  Returns how many were dropped."""
        self.lines.extend(lines)
        over = len(self.lines) - self.capacity
        if over > 0:
            for _ in range(over):
                self.lines.popleft()
            self.head += over
            self.dropped_total += over
            self._dropped_unlogged += over
            self.log_drops()
        self._changed.set()
        return max(over, 0)

    def log_drops(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._dropped_unlogged and (force or now - self._last_drop_log >= DROP_LOG_INTERVAL):
            self.log.warning("%s: buffer full (%d points): dropped the %d oldest points not yet delivered "
                             "(%d dropped since start); the server has been unreachable or refusing too long",
                             self.label, self.capacity, self._dropped_unlogged, self.dropped_total)
            self._dropped_unlogged = 0
            self._last_drop_log = now

    def get(self, start: int, n: int) -> tuple[int, list[str]]:
        """Up to ``n`` lines from position ``start`` (moved up to ``head`` if already dropped)."""
        start = max(start, self.head)
        off = start - self.head
        return start, list(itertools.islice(self.lines, off, off + n))

    def release(self, upto: int) -> None:
        """Everything before position ``upto`` was delivered."""
        n = min(upto - self.head, len(self.lines))
        for _ in range(n):
            self.lines.popleft()
        if n > 0:
            self.head += n

    async def wait_beyond(self, pos: int) -> None:
        """Wait until there is a line at position ``pos`` or later."""
        while self.end <= pos:
            if self._changed.is_set():
                self._changed = trio.Event()
            await self._changed.wait()


class Sink:
    """Base class: configuration, per-sink message processing and encoding, the buffer."""

    type: ClassVar[str] = ""
    options: ClassVar[set[str]] = set()
    common: ClassVar[set[str]] = {"type", "meta_as_tags", "process_messages", "precision"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        self.name = name
        self.where = f"sinks.{name}"
        self.log = logging.getLogger(f"agent.sink.{name}")
        for k in cfg:
            if k not in self.options | self.common:
                known = ", ".join(sorted(self.options | self.common))
                raise AgentConfigError(f"{self.where}: unknown key {k!r} for a {self.type} sink (known: {known})")
        meta = cfg.get("meta_as_tags", [])
        if meta is True:  # the influxdb sink's older form: all meta information
            meta = ["unit", "source", "group"]
        elif meta is False:
            meta = []
        if not isinstance(meta, list) or not all(isinstance(x, str) for x in meta):
            raise AgentConfigError(f"{self.where}.meta_as_tags: expected a list of meta keys (or true)")
        self.meta_as_tags = tuple(meta)
        self.precision = cfg.get("precision", "s")
        if self.precision not in PRECISIONS:
            raise AgentConfigError(f"{self.where}.precision: expected s, ms, us or ns, got {self.precision!r}")
        self.processor: MessageProcessor | None = None
        if cfg.get("process_messages"):
            try:
                self.processor = MessageProcessor(cfg["process_messages"], f"{self.where}.process_messages")
            except RouterConfigError as e:
                raise AgentConfigError(str(e)) from None
        self.sent_points = 0

    def encode(self, msgs: list[Message]) -> list[str]:
        if self.processor is not None:
            msgs = [m for m in (x.copy() for x in msgs) if self.processor.process(m)]
        return encode_many(msgs, self.precision, self.meta_as_tags)

    def _url(self, cfg: dict, schemes: tuple[str, str], example: str) -> str:
        url = cfg.get("url")
        if not isinstance(url, str) or not url.startswith(schemes):
            article = "an" if schemes[0][0] in "aeioh" else "a"
            raise AgentConfigError(f"{self.where}.url: expected {article} {schemes[0]} or {schemes[1]} URL "
                                   f"(e.g. {example}), got {url!r}")
        return url

    def _jwt(self, cfg: dict) -> str | None:
        jwt = cfg.get("jwt")
        if jwt is not None and (not isinstance(jwt, str) or not jwt):
            raise AgentConfigError(f"{self.where}.jwt: expected a token string")
        return jwt

    def _int(self, cfg: dict, key: str, default: int, minimum: int = 1) -> int:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise AgentConfigError(f"{self.where}.{key}: expected an integer >= {minimum}, got {v!r}")
        return v

    @property
    def encoding_key(self) -> tuple | None:
        """Sinks with equal keys produce identical lines, so a round is encoded once for all of them."""
        return None if self.processor is not None else (self.precision, self.meta_as_tags)

    def accept(self, lines: list[str]) -> None:
        """Take one round of encoded lines (in the Trio thread); never blocks."""
        raise NotImplementedError

    def submit(self, msgs: list[Message]) -> None:
        self.accept(self.encode(msgs))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        task_status.started()

    def pending(self) -> int:
        """Points accepted but not yet delivered."""
        return 0

    async def drain(self) -> None:
        """Return once everything submitted so far is delivered (callers bound the wait)."""
        while self.pending():
            await trio.sleep(0.05)

    def close(self) -> None:
        """Say what is left undelivered."""
        left = self.pending()
        if left:
            self.log.warning("%s: stopping with %d points not delivered", self.where, left)


class BufferedSink(Sink):
    """A sink that keeps accepted lines in a bounded :class:`LineBuffer` until they are delivered."""

    def _open_buffer(self, cfg: dict, batch_size: int) -> None:
        """``batch_size`` and ``buffer_size`` options (the buffer holds at least one batch)."""
        self.batch_size = self._int(cfg, "batch_size", batch_size)
        self.buffer = LineBuffer(max(self._int(cfg, "buffer_size", 500000), self.batch_size), self.log, self.where)

    def accept(self, lines: list[str]) -> None:
        self.buffer.append(lines)

    def pending(self) -> int:
        return len(self.buffer)
