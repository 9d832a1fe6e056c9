"""Framed orjson messages over Unix sockets: how our processes talk to each other.

A frame is a 4-byte big-endian length followed by one orjson document.  Requests
and replies are plain dicts; a reply carries ``{"ok": false, "error": "..."}`` on
failure.  There is no broker: the supervisor, the store process and the CLI each
listen on their own socket under ``var/run``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import trio

MAX_FRAME = 64 << 20
_HDR = struct.Struct(">I")


class IPCError(Exception):
    pass


def encode(obj: Any) -> bytes:
    data = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(data) > MAX_FRAME:
        raise IPCError(f"message of {len(data)} bytes exceeds the {MAX_FRAME} byte frame limit")
    return _HDR.pack(len(data)) + data


class FrameReader:
    """Reassembles frames from a trio stream."""

    def __init__(self, stream: trio.abc.ReceiveStream):
        self.stream = stream
        self.buf = bytearray()

    async def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                return False
            self.buf += chunk
        return True

    async def recv(self) -> Any | None:
        """The next message, or None at a clean end of stream."""
        if not await self._fill(4):
            if self.buf:
                raise IPCError("connection closed inside a frame header")
            return None
        (n,) = _HDR.unpack_from(self.buf)
        if n > MAX_FRAME:
            raise IPCError(f"peer announced a frame of {n} bytes (limit {MAX_FRAME})")
        if not await self._fill(4 + n):
            raise IPCError("connection closed inside a frame")
        data = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return orjson.loads(data)


async def send(stream: trio.abc.SendStream, obj: Any) -> None:
    await stream.send_all(encode(obj))


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve(path: Path, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Answer requests on a Unix socket until cancelled; one task per connection."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(64)
    listener = trio.SocketListener(sock)

    async def conn(stream: trio.SocketStream) -> None:
        reader = FrameReader(stream)
        async with stream:
            while True:
                try:
                    msg = await reader.recv()
                except (IPCError, orjson.JSONDecodeError, trio.BrokenResourceError) as e:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await send(stream, {"ok": False, "error": f"bad frame: {e}"})
                    return
                if msg is None:
                    return
                if not isinstance(msg, dict):
                    reply: dict[str, Any] = {"ok": False, "error": "a request must be a JSON object"}
                else:
                    try:
                        reply = await handler(msg)
                    except Exception as e:  # a failing request must not take the server down
                        reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                try:
                    await send(stream, reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    try:
        task_status.started()
        await trio.serve_listeners(conn, [listener])
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def request(path: Path, msg: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request/reply round trip (trio)."""
    with trio.fail_after(timeout):
        try:
            stream = await trio.open_unix_socket(str(path))
        except OSError as e:
            raise IPCError(f"cannot connect to {path}: {e.strerror or e}") from None
        async with stream:
            await send(stream, msg)
            reply = await FrameReader(stream).recv()
    if reply is None:
        raise IPCError(f"{path}: connection closed without a reply")
    return reply


def request_sync(path: Path, msg: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One round trip with blocking sockets, for command-line tools."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except OSError as e:
            raise IPCError(f"cannot connect to {path}: {e.strerror or e}") from None
        s.sendall(encode(msg))
        buf = b""
        while len(buf) < 4:
            chunk = s.recv(65536)
            if not chunk:
                raise IPCError(f"{path}: connection closed without a reply")
            buf += chunk
        (n,) = _HDR.unpack_from(buf)
        while len(buf) < 4 + n:
            chunk = s.recv(max(65536, 4 + n - len(buf)))
            if not chunk:
                raise IPCError(f"{path}: connection closed inside a reply")
            buf += chunk
        return orjson.loads(buf[4:4 + n])
    finally:
        s.close()
