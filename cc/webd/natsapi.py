"""cc-backend's NATS API (``main.api-subjects``): job start/stop and node states as events.

Messages (upstream ``internal/api/nats.go``)::

    job,function=start_job event="{...start_job payload...}" <ts>
    job,function=stop_job event="{...stop_job payload...}" <ts>
    nodestate event="{\"cluster\": ..., \"nodes\": [...]}" <ts>

Why the web process subscribes: it owns the job database writes and wakes the archiver
after a stop.  Why each event goes through the REST handler itself (an in-process request
to ``POST /api/jobs/start_job/``, ``stop_job/``, ``/api/nodestate/`` with an internal
``api`` identity, :data:`cc.webd.auth.INTERNAL_VIEWER`): so validation, duplicate refusal
(same jobId and cluster within 24 h), archiving on stop and whatever checks the REST routes
gain later are exactly the same for both transports.  Events are handled one at a time,
in arrival order (a stop never overtakes its start).

Nobody answers a NATS event, so every rejected one is logged: subject, reason, job id.
These subjects are **unauthenticated**: anybody who may publish on them can start and stop
jobs.  Restrict publishing with the NATS server's accounts/permissions (upstream warns too).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import trio

from cc.config import Config
from cc.db import Viewer
from cc.nats import Msg, NatsClient, StateReporter, decode_events
from cc.webd.auth import INTERNAL_VIEWER

log = logging.getLogger("web.nats")

NATS_VIEWER = Viewer("nats", ("api",))
_ROUTES = {"start_job": "/api/jobs/start_job/", "stop_job": "/api/jobs/stop_job/"}


def _job_ref(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"job {payload.get('jobId', '?')} (cluster {payload.get('cluster', '?')})"
    return "job ?"


class NatsEvents:
    """Subscribes to the two subjects and feeds every event through the matching REST route."""

    def __init__(self, app: Any, cfg: Config):
        assert cfg.nats is not None and cfg.api_subjects is not None
        self.app = app
        self.cfg = cfg
        self.subjects = cfg.api_subjects
        self.reporter = StateReporter()
        self.handled = {"start_job": 0, "stop_job": 0, "nodestate": 0, "rejected": 0}

    async def run(self) -> None:
        async with trio.open_nursery() as n:
            n.start_soon(self.reporter.run)
            async with NatsClient(self.cfg.nats, name="cc-py web", log=log, on_state=self.reporter) as nc:
                await nc.wait_connected()
                jobs = await nc.subscribe(self.subjects.job_event)
                nodes = await nc.subscribe(self.subjects.node_state)
                log.warning("NATS API subscriptions started on subjects %r and %r -- these are UNAUTHENTICATED: "
                            "anyone with publish rights on the NATS server can start/stop jobs and update node "
                            "states; restrict publishing with the server's accounts/permissions",
                            self.subjects.job_event, self.subjects.node_state)
                n.start_soon(self._consume, jobs, self._job_message)
                n.start_soon(self._consume, nodes, self._node_message)
                await trio.sleep_forever()

    async def _consume(self, sub, handle) -> None:
        while True:
            for msg in await sub.next_batch():
                try:
                    await handle(msg)
                except Exception:  # one bad event must not end the subscription
                    log.exception("NATS %s: handling a message failed", msg.subject)

    def _reject(self, subject: str, reason: str, what: str = "") -> None:
        self.handled["rejected"] += 1
        log.error("NATS %s: rejected %s: %s", subject, what or "message", reason)

    def _events(self, msg: Msg, measurement: str) -> list:
        """The message's events of ``measurement``; everything else is rejected (and logged) here."""
        events, errors = decode_events(msg.data)
        if not events and not errors:
            self._reject(msg.subject, "empty message")
        for line, reason in errors:
            self._reject(msg.subject, f"line {line} is not line protocol: {reason}")
        wanted = []
        for ev in events:
            if ev.measurement != measurement:
                self._reject(msg.subject, f"line {ev.line}: measurement {ev.measurement!r}, expected {measurement!r}")
            else:
                wanted.append(ev)
        return wanted

    async def _job_message(self, msg: Msg) -> None:
        for ev in self._events(msg, "job"):
            function = ev.tags.get("function")
            if function is None:
                self._reject(msg.subject, f"line {ev.line}: the tag 'function' is missing (start_job or stop_job)")
                continue
            if function not in _ROUTES:
                self._reject(msg.subject, f"line {ev.line}: unknown function {function!r} "
                                          "(expected start_job or stop_job)")
                continue
            await self._forward(msg.subject, ev, _ROUTES[function], function)

    async def _node_message(self, msg: Msg) -> None:
        for ev in self._events(msg, "nodestate"):
            await self._forward(msg.subject, ev, "/api/nodestate/", "nodestate")

    async def _forward(self, subject: str, ev, path: str, kind: str) -> None:
        raw = ev.fields.get("event")
        if raw is None:
            self._reject(subject, f"line {ev.line}: {kind} event without the field 'event' (the JSON payload)")
            return
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self._reject(subject, f"line {ev.line}: the 'event' field is not JSON ({e})", kind)
            return
        what = f"{kind} of {_job_ref(payload)}" if kind != "nodestate" else \
            f"nodestate of cluster {payload.get('cluster', '?') if isinstance(payload, dict) else '?'}"
        status, body = await self._call(path, raw.encode())
        if status >= 300:
            try:
                reason = orjson.loads(body).get("error") or body[:300].decode(errors="replace")
            except (orjson.JSONDecodeError, AttributeError):
                reason = body[:300].decode(errors="replace")
            self._reject(subject, f"{reason} (HTTP {status} from {path})", what)
            return
        self.handled[kind] += 1
        log.info("NATS %s: %s done", subject, what)

    async def _call(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The REST route in-process, as the internal ``nats`` identity with the ``api`` role."""
        token = INTERNAL_VIEWER.set(NATS_VIEWER)
        try:
            client = self.app.test_client()
            resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
            return resp.status_code, await resp.get_data()
        finally:
            INTERNAL_VIEWER.reset(token)
