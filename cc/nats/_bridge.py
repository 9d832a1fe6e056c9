"""nats-py (an asyncio library) used from Trio: one asyncio loop in a dedicated thread.

Why a thread and not trio-asyncio: every process of ours runs Trio, and nats-py's reader,
flusher, ping and reconnect tasks want a plain asyncio loop that runs all the time.  A
daemon thread owns that loop; Trio code submits coroutines to it (:meth:`AsyncioThread.call`,
which waits without occupying a Trio worker thread and cancels the coroutine when the Trio
caller is cancelled).  Messages flow the other way through :class:`_Inbox`, a bounded
hand-off that wakes the Trio side at most once per batch.

:class:`NatsClient` is the only thing the rest of the code sees: connect with the
configured credentials, reconnect forever with exponential backoff, report each state
change once (log + ``on_state`` callback), publish/flush, core and queue-group
subscriptions, JetStream pull consumers, clean shutdown.  No NATS protocol code here:
all of that is nats-py's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.aio.client
import nats.errors
import nats.js.api
import nats.js.errors
import trio

from cc.nats._settings import NatsSettings, is_creds_file

CONNECTING, CONNECTED, DISCONNECTED, CLOSED = "connecting", "connected", "disconnected", "closed"

# nats-py reads its socket in chunks of this module constant (32 KiB).  Our loop thread shares
# the GIL with the ingest worker's parser thread and waits for it at every read, so small reads
# cap a subscriber at a fraction of what the parser takes (measured: 55 -> 96 MB/s into one
# subscriber under load with 1 MiB).  Read at most 2 MiB at a time instead.
nats.aio.client.DEFAULT_BUFFER_SIZE = max(nats.aio.client.DEFAULT_BUFFER_SIZE, 2 << 20)
MAX_BACKOFF = 5.0


class NatsError(Exception):
    """Connecting, subscribing or publishing failed; the message says what and (at start) which key."""


class AsyncioThread:
    """An asyncio event loop running in its own daemon thread."""

    def __init__(self, name: str = "nats-asyncio"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self.loop)
                for t in pending:
                    t.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def call(self, coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on the asyncio loop; the Trio caller waits (cancellation cancels it there)."""
        fut: concurrent.futures.Future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(f: concurrent.futures.Future) -> None:
            if not f.cancelled():
                f.exception()  # retrieved here, so asyncio never logs it as "never retrieved"
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        fut.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            fut.cancel()
            raise
        return fut.result()

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


@dataclass
class Msg:
    """A received message as Trio code sees it (``raw`` is nats-py's, for JetStream acks)."""

    subject: str
    data: bytes
    delivered: int = 1  # JetStream: how often the server delivered it (> 1 = redelivery)
    raw: Any = None


class _Inbox:
    """Messages from the asyncio thread to Trio, bounded: a full inbox makes the asyncio side wait
    (nats-py then buffers up to its pending limits, as for any slow consumer)."""

    def __init__(self, aio: AsyncioThread, token: trio.lowlevel.TrioToken, max_msgs: int, max_bytes: int):
        self.aio = aio
        self.token = token
        self.max_msgs, self.max_bytes = max_msgs, max_bytes
        self.items: deque[Msg] = deque()
        self.nbytes = 0
        self.lock = threading.Lock()
        self.notified = False
        self.ready = trio.Event()
        self.room: asyncio.Event | None = None  # created on the asyncio side when it has to wait
        self.closed = False

    async def put(self, m: Msg) -> None:  # asyncio thread
        with self.lock:
            self.items.append(m)
            self.nbytes += len(m.data)
            notify = not self.notified
            self.notified = True
            full = len(self.items) >= self.max_msgs or self.nbytes >= self.max_bytes
            if full:
                self.room = asyncio.Event()
            room = self.room
        if notify:
            with contextlib.suppress(trio.RunFinishedError):
                self.token.run_sync_soon(self._wake)
        if full and room is not None:
            await room.wait()

    def _wake(self) -> None:
        self.ready.set()

    async def take(self, max_bytes: int) -> list[Msg]:  # Trio
        while True:
            with self.lock:
                out: list[Msg] = []
                size = 0
                while self.items and (not out or size + len(self.items[0].data) <= max_bytes):
                    m = self.items.popleft()
                    size += len(m.data)
                    out.append(m)
                self.nbytes -= size
                if not self.items:
                    self.notified = False
                    self.ready = trio.Event()
                room, self.room = (self.room, None) if out and self.room is not None else (None, self.room)
            if room is not None:
                self.aio.run_soon(room.set)
            if out:
                return out
            if self.closed:
                raise trio.EndOfChannel
            await self.ready.wait()


class Subscription:
    """A core (optionally queue-group) subscription; ``async for batch in sub`` yields lists of Msg."""

    def __init__(self, client: NatsClient, subject: str, queue: str | None, inbox: _Inbox):
        self.client = client
        self.subject = subject
        self.queue = queue
        self.inbox = inbox
        self._sub: Any = None

    async def next_batch(self, max_bytes: int = 8 << 20) -> list[Msg]:
        return await self.inbox.take(max_bytes)

    def __aiter__(self):
        return self

    async def __anext__(self) -> list[Msg]:
        try:
            return await self.next_batch()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def unsubscribe(self) -> None:
        self.inbox.closed = True
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self.client.aio.call(self._sub.unsubscribe())


class PullConsumer:
    """A JetStream durable pull consumer: ``fetch`` a batch, ``ack`` what is durable here."""

    def __init__(self, client: NatsClient, stream: str, durable: str, psub: Any):
        self.client = client
        self.stream = stream
        self.durable = durable
        self._psub = psub

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to ``batch`` messages, waiting at most ``timeout`` s ([] when none came)."""
        async def go() -> list[Msg]:
            try:
                got = await self._psub.fetch(batch, timeout=timeout)
            except (nats.errors.TimeoutError, TimeoutError):
                return []
            return [Msg(m.subject, m.data, m.metadata.num_delivered, m) for m in got]

        return await self.client.aio.call(go())

    async def ack(self, msgs: list[Msg]) -> None:
        async def go() -> None:
            for m in msgs:
                await m.raw.ack()

        await self.client.aio.call(go())

    async def nak(self, msgs: list[Msg], delay: float | None = None) -> None:
        async def go() -> None:
            for m in msgs:
                await m.raw.nak(delay=delay)

        await self.client.aio.call(go())


def _auth_options(s: NatsSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if s.username:
        opts["user"], opts["password"] = s.username, s.password
    if s.creds_file:
        opts["user_credentials"] = str(s.creds_file)
    elif s.nkey_seed_file:
        if is_creds_file(s.nkey_seed_file):  # the agent's nkey_file may name a .creds file (as upstream)
            opts["user_credentials"] = str(s.nkey_seed_file)
        else:
            opts["nkeys_seed"] = str(s.nkey_seed_file)
    return opts


def describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.removeprefix("nats: ").strip("'")


def is_auth_error(e: BaseException) -> bool:
    t = str(e).lower()
    return isinstance(e, nats.errors.AuthorizationError) or "authorization" in t or "authentication" in t \
        or "user authentication" in t or "permissions violation" in t


class NatsClient:
    """One connection to a NATS server (cluster), used from Trio.

    ``await start()`` begins connecting and returns at once; the connection comes up in the
    background and re-establishes itself forever (backoff 0.25 s doubling to 5 s), logging
    each change of state once.  ``on_state(state)`` is called in the Trio thread.
    """

    def __init__(self, settings: NatsSettings, *, name: str, log: logging.Logger | None = None,
                 on_state: Callable[[str], None] | None = None, aio: AsyncioThread | None = None):
        self.settings = settings
        self.name = name
        self.log = log or logging.getLogger("nats")
        self.on_state = on_state
        self.aio = aio or AsyncioThread(f"nats-{name}")
        self._own_aio = aio is None
        self.nc: Any = None
        self.state = CONNECTING
        self._changed = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._last_error: str | None = None
        self._down_since = 0.0
        self._failures = 0
        self._connect_task: concurrent.futures.Future | None = None

    # -- state (Trio thread) --------------------------------------------------------------

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self.state:
            return
        old, self.state = self.state, state
        url = self.connected_url() or self.settings.address
        if state == CONNECTED:
            if old == DISCONNECTED:
                self.log.info("NATS reconnected to %s after %.1fs", url, time.monotonic() - self._down_since)
            else:
                self.log.info("NATS connected to %s", url)
        elif state == DISCONNECTED:
            self._down_since = time.monotonic()
            self.log.warning("NATS connection to %s lost%s; reconnecting (each attempt is not logged)",
                             url, f" ({detail})" if detail else "")
        elif state == CLOSED and old != CLOSED:
            self.log.info("NATS connection closed")
        self._changed.set()
        self._changed = trio.Event()
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                self.log.exception("NATS state callback failed")

    def _from_aio(self, state: str, detail: str = "") -> None:  # asyncio thread
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._set_state, state, detail)

    def connected_url(self) -> str | None:
        nc = self.nc
        if nc is None or not nc.is_connected or nc.connected_url is None:
            return None
        u = nc.connected_url
        return f"nats://{u.netloc}"

    @property
    def is_connected(self) -> bool:
        return self.state == CONNECTED

    async def wait_connected(self, timeout: float | None = None) -> bool:
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while self.state != CONNECTED:
                if self.state == CLOSED:
                    raise NatsError("NATS connection is closed")
                await self._changed.wait()
            return True
        return False

    # -- asyncio side callbacks -------------------------------------------------------------

    async def _error_cb(self, e: Exception) -> None:
        text = describe(e)
        if text != self._last_error:
            self._last_error = text
            if self.state == CONNECTING or is_auth_error(e):
                # not connected yet (the server is down or refuses us): once per distinct reason
                self.log.warning("NATS %s: %s (keys %s, %s); retrying", self.settings.address, text,
                                 self.settings.key("address"), self.settings.auth_keys())

    async def _disconnected_cb(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            self._from_aio(DISCONNECTED, self._last_error or "")

    async def _reconnected_cb(self) -> None:
        self._last_error = None
        self._failures = 0
        self._from_aio(CONNECTED)

    async def _closed_cb(self) -> None:
        self._from_aio(CLOSED)

    def _next_server(self, servers: list, _info: dict) -> tuple[Any, float]:
        """nats-py's reconnect hook: any server, after an exponentially growing, jittered delay."""
        self._failures += 1
        delay = min(MAX_BACKOFF, 0.25 * 2 ** (self._failures - 1)) if self._failures > 1 else 0.0
        return None, delay * random.uniform(0.8, 1.2)

    # -- lifecycle ------------------------------------------------------------------------------

    def _connect_options(self) -> dict[str, Any]:
        return dict(servers=list(self.settings.servers), name=self.name, error_cb=self._error_cb,
                    disconnected_cb=self._disconnected_cb, reconnected_cb=self._reconnected_cb,
                    closed_cb=self._closed_cb, allow_reconnect=True, max_reconnect_attempts=-1,
                    reconnect_time_wait=1, connect_timeout=2, ping_interval=10, max_outstanding_pings=3,
                    reconnect_to_server_handler=self._next_server, **_auth_options(self.settings))

    async def start(self) -> None:
        """Begin connecting (in the background; see :meth:`wait_connected`)."""
        self._token = trio.lowlevel.current_trio_token()
        self.nc = nats.NATS()

        async def go() -> None:
            await self.nc.connect(**self._connect_options())
            self._last_error = None
            self._from_aio(CONNECTED)

        self._connect_task = asyncio.run_coroutine_threadsafe(go(), self.aio.loop)

    async def aclose(self) -> None:
        """Drain nothing, close the connection, stop the loop thread (if ours)."""
        with trio.CancelScope(shield=True):
            if self._connect_task is not None and not self._connect_task.done():
                self._connect_task.cancel()
            if self.nc is not None and not self.nc.is_closed:
                with trio.move_on_after(3), contextlib.suppress(Exception):
                    await self.aio.call(self.nc.close())
            self._set_state(CLOSED)
            if self._own_aio:
                await trio.to_thread.run_sync(self.aio.stop)

    async def __aenter__(self) -> NatsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, subject: str, data: bytes) -> None:
        try:
            await self.aio.call(self.nc.publish(subject, data))
        except (nats.errors.Error, OSError) as e:
            raise NatsError(f"publish to {subject!r} failed: {describe(e)}") from None

    async def publish_many(self, subject: str, payloads: list[bytes], flush_timeout: float | None = None) -> None:
        """Publish in order; with ``flush_timeout``, return only once the server has them all."""
        async def go() -> None:
            for p in payloads:
                await self.nc.publish(subject, p)
            if flush_timeout is not None:
                await self.nc.flush(timeout=flush_timeout)

        try:
            await self.aio.call(go())
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise NatsError(f"publish to {subject!r} failed: {describe(e)}") from None

    async def js_publish(self, subject: str, payloads: list[bytes], timeout: float = 5.0) -> None:
        """Publish to a JetStream stream, returning once the server stored every message (PubAck)."""
        async def go() -> None:
            js = self.nc.jetstream(timeout=timeout)
            for k in range(0, len(payloads), 500):  # bounded number of unacknowledged publishes
                for f in [await js.publish_async(subject, p) for p in payloads[k:k + 500]]:
                    await f

        try:
            await self.aio.call(go())
        except (nats.errors.Error, OSError, TimeoutError) as e:
            raise NatsError(f"JetStream publish to {subject!r} failed: {describe(e)}") from None

    async def flush(self, timeout: float = 5.0) -> None:
        """Return once the server has received everything published before (PING/PONG)."""
        try:
            await self.aio.call(self.nc.flush(timeout=timeout))
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise NatsError(f"flush failed: {describe(e)}") from None

    # -- subscribing ----------------------------------------------------------------------------

    async def subscribe(self, subject: str, queue: str | None = None, *, max_msgs: int = 4096,
                        max_bytes: int = 64 << 20) -> Subscription:
        """A core subscription (all members of ``queue`` share the messages).  Needs a connection."""
        assert self._token is not None, "start() first"
        inbox = _Inbox(self.aio, self._token, max_msgs, max_bytes)
        sub = Subscription(self, subject, queue, inbox)

        async def cb(m: Any) -> None:
            await inbox.put(Msg(m.subject, m.data))

        try:
            sub._sub = await self.aio.call(self.nc.subscribe(subject, queue=queue or "", cb=cb))
        except (nats.errors.Error, OSError) as e:
            raise NatsError(f"subscribe to {subject!r} failed: {describe(e)}") from None
        return sub

    async def pull_consumer(self, subject: str, stream: str, durable: str, *, ack_wait: float,
                            max_ack_pending: int = 20000, create_stream_max_age: float | None = None) -> PullConsumer:
        """Bind to (creating if needed) the durable pull consumer ``durable`` of ``stream``, filtered
        to ``subject``.  A missing stream is created to capture ``subject`` (file storage, messages
        kept ``create_stream_max_age`` seconds)."""
        async def go() -> Any:
            js = self.nc.jetstream()
            try:
                info = await js.stream_info(stream)
                subjects = info.config.subjects or []
                if not any(_subject_covers(s, subject) for s in subjects):
                    raise NatsError(f"JetStream stream {stream!r} does not capture subject {subject!r} "
                                    f"(its subjects: {subjects})")
            except nats.js.errors.NotFoundError:
                cfg = nats.js.api.StreamConfig(name=stream, subjects=[subject],
                                               storage=nats.js.api.StorageType.FILE,
                                               max_age=create_stream_max_age)
                try:
                    await js.add_stream(cfg)
                    self.log.info("created JetStream stream %r for subject %r", stream, subject)
                except nats.js.errors.BadRequestError as e:
                    try:  # created by a sibling meanwhile?
                        await js.stream_info(stream)
                    except nats.js.errors.NotFoundError:  # no: e.g. another stream captures the subject
                        raise NatsError(f"cannot create JetStream stream {stream!r} for {subject!r}: "
                                        f"{getattr(e, 'description', None) or describe(e)}") from None
            cc = nats.js.api.ConsumerConfig(durable_name=durable, ack_policy=nats.js.api.AckPolicy.EXPLICIT,
                                            ack_wait=ack_wait, max_ack_pending=max_ack_pending,
                                            filter_subject=subject)
            for attempt in range(3):
                try:
                    return await js.pull_subscribe(subject, durable=durable, stream=stream, config=cc)
                except nats.js.errors.BadRequestError:  # a sibling created the consumer at the same moment
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.1)

        try:
            psub = await self.aio.call(go())
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise NatsError(f"JetStream consumer {durable!r} on stream {stream!r} ({subject!r}): "
                            f"{describe(e)}") from None
        return PullConsumer(self, stream, durable, psub)


def _subject_covers(pattern: str, subject: str) -> bool:
    """Whether NATS subject ``pattern`` (with ``*``/``>`` wildcards) matches every ``subject``."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return i < len(s)
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
        if tok == "*" and s[i] in (">",):
            return False
    return len(p) == len(s)


async def probe(settings: NatsSettings, timeout: float = 5.0) -> str:
    """Connect once and disconnect (start-up check): the URL that answered, else NatsError naming the key.

    Wrong credentials fail at once; an unreachable address is retried until ``timeout``.
    """
    def run() -> str:
        async def go() -> str:
            deadline = time.monotonic() + timeout
            errors: dict[str, str] = {}

            async def quiet(_e: Exception) -> None:
                pass

            while True:
                for url in settings.servers:
                    nc = nats.NATS()
                    try:
                        # (max_reconnect_attempts=0 would mean "forever" to nats-py's server selection)
                        await asyncio.wait_for(nc.connect(
                            servers=[url], allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.1,
                            connect_timeout=min(2.0, timeout), error_cb=quiet, **_auth_options(settings)),
                            min(5.0, timeout + 1))
                    except Exception as e:  # noqa: BLE001 - each is reported below
                        if is_auth_error(e):
                            raise NatsError(f"{settings.auth_keys()}: the NATS server {url} refused the credentials "
                                            f"({describe(e)})") from None
                        errors[url] = describe(e) if not isinstance(e, (nats.errors.NoServersError,
                                                                        asyncio.TimeoutError)) \
                            else "connection refused or timed out"
                        continue
                    await nc.close()
                    return url
                if time.monotonic() >= deadline:
                    detail = "; ".join(f"{u}: {m}" for u, m in errors.items())
                    raise NatsError(f"{settings.key('address')}: cannot connect to {settings.address} ({detail})")
                await asyncio.sleep(0.5)

        return asyncio.run(go())

    return await trio.to_thread.run_sync(run)
