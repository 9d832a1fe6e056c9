"""Metric ingest from NATS (``metric-store.nats-subscriptions``), in every ingest worker.

Each message is line protocol (one or many lines) and goes the way of a ``POST /api/write``
body: :meth:`IngestApp._ingest` in the worker thread (same parser, validation, counters,
shared-memory write and WAL append), ``cluster-tag`` standing in for ``?cluster=``.
Messages queued together are parsed as one body (one thread hop and one WAL record for
many small messages); errors are mapped back to the message and logged with the subject.

* **Core NATS** (default): all ingest workers of an installation subscribe in one queue
  group (``cc-py-ingest.<host>.<instance>``), so each message reaches one worker and
  throughput grows with the workers as for HTTP.  Core NATS delivers at most once: what
  arrives while no worker is subscribed is gone (use JetStream for that).
* **JetStream** (``"stream"`` set, ours): the workers share one durable pull consumer
  (``durable``, default ``cc-py-<host>-<instance>-<hash of subject>``).  A message is acked
  only once its points are in shared memory and the WAL (fsynced per ``wal-sync``, the moment
  ``/api/write`` answers), so a killed worker, a stop/start or a NATS restart loses nothing
  the server stored: unacked messages come again after ``ack-wait``.  A redelivered message
  (``num_delivered`` > 1) is written again -- a repeated point overwrites its slot with the
  same value -- but counted in ``nats_redelivered`` / ``nats_redelivered_points`` instead of
  ``lines`` / ``points_written``, so counters never count a point twice (they may miss the
  points of a delivery that died before its write, which then appear as redelivered).
  A missing stream is created (file storage, ``max_age`` = the retention).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from cc.config import Config, NatsSubscription
from cc.nats import Msg, NatsClient, NatsError, StateReporter
from cc.shm import COUNTER_INDEX, HIST_INDEX
from cc.shm._layout import PR_NATS_LAG_MS, PR_NATS_PENDING, PR_NATS_SEQ
from cc.wal import WalError

if TYPE_CHECKING:
    from cc.ingestd.app import IngestApp

log = logging.getLogger("ingest.nats")

CHUNK_BYTES = 4 << 20  # messages parsed together in one body, at most
FETCH_BATCH = 256  # messages per JetStream fetch at most; fewer for big messages (FETCH_BYTES)
FETCH_BYTES = 8 << 20  # so a fetched batch is written and acked long before ack-wait, even under load
FETCH_TIMEOUT = 1.0
LOG_EVERY = 5.0  # at most one "malformed" log line per subscription this often (the rest is counted)


def _name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", s).strip("_") or "x"


def queue_group(instance: str) -> str:
    """One group per installation: two installations on one subject each get every message."""
    return f"cc-py-ingest.{_name(socket.gethostname())}.{_name(instance)}"


def default_durable(instance: str, subject: str) -> str:
    return f"cc-py-{_name(socket.gethostname())}-{_name(instance)}-{hashlib.sha1(subject.encode()).hexdigest()[:8]}"


@dataclass
class _Outcome:
    wal_seq: int = 0
    lines: int = 0
    written: int = 0
    malformed: int = 0
    first_error: str | None = None
    failed: str | None = None  # WAL error: nothing may be acked
    bad_messages: list[tuple[int, str]] = field(default_factory=list)  # (message index, reason)


class NatsIngest:
    """The subscriptions of one ingest worker; ``run`` until cancelled, ``stop`` to finish in-flight acks."""

    def __init__(self, app: IngestApp, cfg: Config, instance: str, worker: int):
        assert cfg.nats is not None
        self.app = app
        self.cfg = cfg
        self.instance = instance
        self.worker = worker
        self.subs = cfg.metric_store.nats_subscriptions
        self.reporter = StateReporter()
        self.stopping = False
        self.inflight = 0
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    async def run(self) -> None:
        async with trio.open_nursery() as n:
            n.start_soon(self.reporter.run)
            async with NatsClient(self.cfg.nats, name=f"cc-py ingest-{self.worker}", log=log,
                                  on_state=self.reporter) as nc:
                await nc.wait_connected()
                for sub in self.subs:
                    n.start_soon(self._jetstream if sub.stream else self._core, nc, sub)
                await trio.sleep_forever()

    async def drain(self, timeout: float) -> None:
        """Stop taking messages; wait (bounded) until those taken are acked."""
        self.stopping = True
        with trio.move_on_after(timeout):
            while self.inflight:
                await trio.sleep(0.02)

    # -- core NATS ---------------------------------------------------------------------

    async def _core(self, nc: NatsClient, sub: NatsSubscription) -> None:
        group = queue_group(self.instance)
        s = await nc.subscribe(sub.subject, queue=group)
        log.info("NATS: ingest worker %d subscribed to %r (queue group %s)", self.worker, sub.subject, group)
        while not self.stopping:
            batch = await s.next_batch(CHUNK_BYTES)
            await self._ingest(sub, batch)

    # -- JetStream ---------------------------------------------------------------------

    async def _jetstream(self, nc: NatsClient, sub: NatsSubscription) -> None:
        durable = sub.durable or default_durable(self.instance, sub.subject)
        delay = 0.5
        while True:
            try:
                pc = await nc.pull_consumer(sub.subject, sub.stream, durable, ack_wait=sub.ack_wait,
                                            create_stream_max_age=float(self.cfg.metric_store.retention))
                break
            except NatsError as e:
                log.error("%s.stream: %s; retrying in %.0fs", sub.where, e, delay)
                await trio.sleep(delay)
                delay = min(30.0, delay * 2)
                await nc.wait_connected()
        log.info("NATS: ingest worker %d reads %r from JetStream stream %r (durable consumer %s)", self.worker,
                 sub.subject, sub.stream, durable)
        # fetch -> write -> ack as three tasks: the next batch is on its way while one is parsed,
        # and the one before waits for its WAL fsync meanwhile
        fetched_send, fetched_recv = trio.open_memory_channel[list[Msg]](1)
        acks_send, acks_recv = trio.open_memory_channel[tuple[list[Msg], _Outcome]](4)
        async with trio.open_nursery() as n:
            n.start_soon(self._acker, pc, acks_recv)
            n.start_soon(self._fetcher, nc, pc, sub, fetched_send)
            async with acks_send, fetched_recv:
                async for msgs in fetched_recv:
                    out = await self._ingest(sub, msgs)
                    await acks_send.send((msgs, out))

    async def _fetcher(self, nc: NatsClient, pc, sub: NatsSubscription, fetched_send) -> None:
        failures = 0
        avg = 1024.0  # running mean message size: how many messages make FETCH_BYTES
        async with fetched_send:
            while not self.stopping:
                try:
                    msgs = await pc.fetch(max(1, min(FETCH_BATCH, int(FETCH_BYTES / avg))), FETCH_TIMEOUT)
                    failures = 0
                except Exception as e:  # noqa: BLE001 - a disconnect or server restart: wait, fetch again
                    failures += 1
                    if failures == 1:
                        log.warning("JetStream fetch from %r failed (%s: %s); fetching again", sub.stream,
                                    type(e).__name__, e)
                    await nc.wait_connected()
                    await trio.sleep(min(2.0, 0.1 * failures))
                    continue
                if not msgs:
                    continue
                avg = 0.7 * avg + 0.3 * (sum(len(m.data) for m in msgs) / len(msgs))
                self.inflight += len(msgs)
                await fetched_send.send(msgs)

    async def _acker(self, pc, acks_recv) -> None:
        syncer = self.app.syncer
        async with acks_recv:
            async for msgs, out in acks_recv:
                try:
                    if out.failed is None and out.wal_seq and syncer is not None:
                        try:
                            await syncer.wait_synced(out.wal_seq)
                        except WalError as e:
                            out.failed = str(e)
                    if out.failed is not None:
                        log.error("points of %d JetStream messages not made durable (%s); asking for redelivery",
                                  len(msgs), out.failed)
                        await pc.nak(msgs, delay=1.0)
                    else:
                        await pc.ack(msgs)
                except Exception as e:  # noqa: BLE001 - unacked messages are redelivered after ack-wait
                    log.warning("acking %d JetStream messages failed (%s); they will be redelivered", len(msgs), e)
                finally:
                    self.inflight -= len(msgs)

    # -- the write ---------------------------------------------------------------------

    async def _ingest(self, sub: NatsSubscription, msgs: list[Msg]) -> _Outcome:
        app = self.app
        c = app.counters
        c[COUNTER_INDEX["nats_messages"]] += len(msgs)
        nbytes = sum(len(m.data) for m in msgs)
        c[COUNTER_INDEX["bytes_received"]] += nbytes
        t0 = time.perf_counter()
        out = await trio.to_thread.run_sync(self._write, sub, msgs, limiter=app.limiter)
        app.store.observe(app.slot, HIST_INDEX["ingest_nats"], time.perf_counter() - t0, nbytes)
        meta = getattr(msgs[-1].raw, "metadata", None)  # JetStream: the consumer's backlog and lag
        if meta is not None:
            procs = app.store.procs
            now = time.time()
            procs[app.slot, PR_NATS_PENDING] = max(0, int(meta.num_pending))
            procs[app.slot, PR_NATS_LAG_MS] = max(0, int((now - meta.timestamp.timestamp()) * 1000))
            procs[app.slot, PR_NATS_SEQ] = max(1, int(meta.sequence.stream))
        if out.bad_messages:
            self._complain(sub, msgs, out)
        return out

    def _write(self, sub: NatsSubscription, msgs: list[Msg]) -> _Outcome:
        """Worker thread: first deliveries and redeliveries as (at most) two bodies, counted differently."""
        out = _Outcome()
        fresh = [i for i, m in enumerate(msgs) if m.delivered <= 1]
        again = [i for i, m in enumerate(msgs) if m.delivered > 1]
        if again:
            self.app.counters[COUNTER_INDEX["nats_redelivered"]] += len(again)
        for idx, count in ((fresh, True), (again, False)):
            if not idx:
                continue
            parts, starts, line = [], [], 0
            for i in idx:
                data = msgs[i].data
                if not data.endswith(b"\n"):
                    data += b"\n"
                parts.append(data)
                starts.append(line)
                line += data.count(b"\n")
            try:
                res = self.app.ingestor.ingest(b"".join(parts), sub.cluster_tag, None, count=count)
            except WalError as e:
                out.failed = str(e)
                return out
            except ValueError as e:  # not decodable at all
                out.bad_messages += [(i, str(e)) for i in idx]
                continue
            if not count:
                self.app.counters[COUNTER_INDEX["nats_redelivered_points"]] += res.written
            out.wal_seq = max(out.wal_seq, res.wal_seq)
            out.lines += res.lines
            out.written += res.written
            out.malformed += res.malformed
            for err in res.errors:  # line numbers of the joined body -> (message, its own line)
                k = bisect_left(starts, err["line"]) - 1
                out.bad_messages.append((idx[k], f"line {err['line'] - starts[k]}: {err['error']}"))
        return out

    def _complain(self, sub: NatsSubscription, msgs: list[Msg], out: _Outcome) -> None:
        now = time.monotonic()
        key = sub.subject
        nbad = len({i for i, _ in out.bad_messages})
        if now - self._last_log.get(key, 0.0) < LOG_EVERY:
            self._suppressed[key] = self._suppressed.get(key, 0) + nbad
            return
        self._last_log[key] = now
        i, reason = out.bad_messages[0]
        more = self._suppressed.pop(key, 0)
        log.error("NATS %s: %d of %d messages had malformed lines (%d lines; first: message on %r, %s); "
                  "the valid lines were stored%s", sub.subject, nbad, len(msgs), out.malformed, msgs[i].subject,
                  reason, f" ({more} more bad messages since the last report)" if more else "")
