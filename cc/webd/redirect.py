"""``main.redirect-http-to``: a plain-HTTP listener (port 80 by default) that sends every request to the HTTPS site.

As cc-backend, with one difference that users notice: the path and query are kept
(``http://monitor/monitoring/job/7`` goes to ``https://monitor/monitoring/job/7``, not to
the front page).  A bare ASGI callable served by the web process next to the app.
"""

from __future__ import annotations

from typing import Any


def redirect_app(target: str):
    """ASGI app answering every request with ``301 Location: <target><path>[?query]``."""
    base = target.rstrip("/")

    async def app(scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("raw_path") or scope.get("path", "/").encode()
        query = scope.get("query_string") or b""
        location = base.encode() + (path if path.startswith(b"/") else b"/" + path) + (b"?" + query if query else b"")
        await send({"type": "http.response.start", "status": 301,
                    "headers": [(b"location", location), (b"content-length", b"0"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b""})

    return app
