"""cc-slurm-adapter's NATS side: job events (and, ours, node states) published on NATS.

As upstream (``internal/cc/interface.go``): with ``natsServer`` set, every job the backend
accepted over REST is also announced on ``natsSubject`` as
``job,function=start_job,hostname=<adapter host>,type=node,type-id=0 event="<payload>" <startTime>``
(``stop_job`` adds the ``partition`` tag); with ``ccRestSubmitJobs: false`` the event *is*
the submission -- cc-backend's (or our web process's) ``main.api-subjects`` consumer starts
and stops the job.  REST stays in use for ``GET /api/jobs/?state=running`` (the periodic
comparison that repairs anything a lost event left out of step), as upstream.

NATS has no answer to a publish: a start counts as delivered once a flush confirmed the
NATS server has it.  While NATS is away the backend counts as unavailable, so the job is
retried by the next poll (a repeat is refused as a duplicate by the consumer, and logged).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import orjson

from cc.adapter.backend import BackendClient, BackendUnavailable, Outcome
from cc.adapter.config import AdapterConfig
from cc.nats import NatsSettings

log = logging.getLogger("cc-adapter")
FLUSH_TIMEOUT = 5.0


class NatsJobs:
    """A backend for the sync: REST, NATS or both, with the same interface as :class:`BackendClient`."""

    def __init__(self, cfg: AdapterConfig, rest: BackendClient, settings: NatsSettings):
        from cc.nats import NatsClient

        self.cfg = cfg
        self.rest = rest
        self.submit_rest = cfg.cc_rest_submit_jobs
        self.hostname = socket.gethostname()
        self.nats = NatsClient(settings, name="cc-adapter", log=log, on_state=self._on_state)
        self.reporter = None

    def _on_state(self, state: str) -> None:
        if self.reporter is not None:
            self.reporter(state)

    async def start(self) -> None:
        from cc.nats import StateReporter

        self.reporter = StateReporter()
        await self.nats.start()

    async def aclose(self) -> None:
        await self.nats.aclose()
        await self.rest.aclose()

    async def publish(self, subject: str, line: bytes) -> None:
        """Publish and confirm; BackendUnavailable while NATS is away (the next poll retries)."""
        from cc.nats import NatsError

        if not self.nats.is_connected:
            raise BackendUnavailable(f"NATS {self.nats.settings.address} is not connected")
        try:
            await self.nats.publish_many(subject, [line], flush_timeout=FLUSH_TIMEOUT)
        except NatsError as e:
            raise BackendUnavailable(f"NATS: {e}") from None

    def _event(self, function: str, payload: dict[str, Any], ts: int, **tags: str) -> bytes:
        from cc.nats import encode_event

        return encode_event("job", {"hostname": self.hostname, "type": "node", "type-id": "0",
                                    "function": function, **tags}, orjson.dumps(payload).decode(), ts)

    async def _announce(self, line: bytes, what: str) -> None:
        try:
            await self.publish(self.cfg.nats_subject, line)
        except BackendUnavailable as e:  # only a notification: REST already has the job
            log.warning("unable to publish %s on NATS: %s", what, e)

    async def start_job(self, payload: dict[str, Any]) -> tuple[Outcome, str]:
        line = self._event("start_job", payload, int(payload.get("startTime") or 0))
        if not self.submit_rest:
            await self.publish(self.cfg.nats_subject, line)
            return Outcome.DONE, ""
        outcome, msg = await self.rest.start_job(payload)
        if outcome is Outcome.DONE:
            await self._announce(line, f"start_job of job {payload.get('jobId')}")
        return outcome, msg

    async def stop_job(self, payload: dict[str, Any], partition: str = "") -> tuple[Outcome, str]:
        tags = {"partition": partition} if partition else {}
        line = self._event("stop_job", payload, int(payload.get("stopTime") or 0), **tags)
        if not self.submit_rest:
            await self.publish(self.cfg.nats_subject, line)
            return Outcome.DONE, ""
        outcome, msg = await self.rest.stop_job(payload)
        if outcome is Outcome.DONE:
            await self._announce(line, f"stop_job of job {payload.get('jobId')}")
        return outcome, msg

    async def running_jobs(self, cluster: str, per_page: int = 1000) -> list[dict[str, Any]]:
        return await self.rest.running_jobs(cluster, per_page)

    async def node_states(self, cluster: str, nodes: list[dict[str, Any]]) -> None:
        doc = {"cluster": cluster, "nodes": nodes}
        if self.cfg.nats_node_state_subject:
            from cc.nats import encode_event

            await self.publish(self.cfg.nats_node_state_subject,
                               encode_event("nodestate", {}, orjson.dumps(doc).decode()))
        else:
            await self.rest.node_states(cluster, nodes)


def nats_settings(cfg: AdapterConfig) -> NatsSettings | None:
    """The adapter's ``nats*`` keys as connection settings (None without ``natsServer``)."""
    if not cfg.nats_server:
        return None
    from pathlib import Path

    from cc.nats import parse_servers

    servers = parse_servers(f"nats://{cfg.nats_server}:{cfg.nats_port}", "natsServer/natsPort")
    creds = Path(cfg.nats_creds_file) if cfg.nats_creds_file else None
    seed = Path(cfg.nats_nkey_seed_file) if cfg.nats_nkey_seed_file else None
    return NatsSettings(servers, cfg.nats_user or None, cfg.nats_password or None, creds, seed, "adapter")
