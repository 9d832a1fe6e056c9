"""Framed orjson messages over Unix sockets."""

from __future__ import annotations

import socket

import pytest
import trio

from cc import ipc


async def test_request_reply_and_errors(tmp_path):
    path = tmp_path / "s.sock"

    async def handler(msg):
        if msg.get("cmd") == "boom":
            raise ValueError("nope")
        return {"ok": True, "echo": msg}

    async with trio.open_nursery() as n:
        await n.start(ipc.serve, path, handler)
        assert await ipc.request(path, {"cmd": "x", "n": [1, 2]}) == {"ok": True, "echo": {"cmd": "x", "n": [1, 2]}}
        bad = await ipc.request(path, {"cmd": "boom"})
        assert bad == {"ok": False, "error": "ValueError: nope"}
        # blocking client used by the CLI, from a thread
        reply = await trio.to_thread.run_sync(ipc.request_sync, path, {"cmd": "sync"})
        assert reply["echo"] == {"cmd": "sync"}
        # a non-object request and garbage frames get an error reply, the server survives
        assert (await ipc.request(path, [1, 2]))["ok"] is False
        def garbage() -> bytes:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            s.sendall(b"\x00\x00\x00\x03abc")
            s.settimeout(5)
            data = s.recv(1000)
            s.close()
            return data

        assert b"bad frame" in await trio.to_thread.run_sync(garbage)
        assert (await ipc.request(path, {"cmd": "still"}))["ok"]
        n.cancel_scope.cancel()
    assert not path.exists()


async def test_connect_failure_is_clear(tmp_path):
    with pytest.raises(ipc.IPCError, match="cannot connect"):
        await ipc.request(tmp_path / "missing.sock", {})


def test_frame_limit():
    with pytest.raises(ipc.IPCError):
        ipc.encode({"x": "a" * (ipc.MAX_FRAME + 1)})
