"""``http`` receiver: line protocol POSTed to ``http://<address>:<port>/<path>``.

cc-metric-collector's keys: ``address`` (default all interfaces), ``port`` (default
``"8080"``), ``path`` (default ``/write``), ``idle_timeout`` (default 120s),
``keep_alives_enabled`` (default true), ``username``/``password`` (basic
authentication).  Bodies may be gzip-compressed; a ``precision`` query parameter (s, ms,
us, ns) fixes the timestamp unit, otherwise it is read by its magnitude.  Answers 204;
400 names the bad lines (the good ones of the same body are forwarded); 401 without the
configured credentials; 413 beyond ``max_body_size`` (ours, default 64 MiB).

The stdlib's threading HTTP server runs in its own threads, so this adds no dependency to
an agent-only installation; each body is handed to the Trio side once parsed.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.lineproto import parse_lines
from cc.agent.message import PRECISIONS
from cc.agent.receivers._base import Emit, Receiver, port_option
from cc.agent.sinks._base import duration_option


class HttpReceiver(Receiver):
    type = "http"
    options = {"address", "port", "path", "idle_timeout", "keep_alives_enabled", "username", "password",
               "max_body_size"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.address = self._str(cfg, "address", "") or ""
        self.port = port_option(cfg, "port", "8080", self.where)
        path = self._str(cfg, "path", "/write") or "/write"
        self.path = "/" + path.strip("/")
        self.idle_timeout = duration_option(cfg, "idle_timeout", "120s", self.where, 0.001)
        self.keep_alive = cfg.get("keep_alives_enabled", True)
        if not isinstance(self.keep_alive, bool):
            raise AgentConfigError(f"{self.where}.keep_alives_enabled: expected true or false")
        user, password = cfg.get("username"), cfg.get("password")
        self.auth: bytes | None = None
        if user or password:
            if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
                raise AgentConfigError(f"{self.where}: basic authentication needs both username and password")
            self.auth = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        self.max_body = cfg.get("max_body_size", 64 << 20)
        if isinstance(self.max_body, bool) or not isinstance(self.max_body, int) or self.max_body < 1:
            raise AgentConfigError(f"{self.where}.max_body_size: expected a positive number of bytes")
        self.bound_port: int | None = None

    async def run(self, emit: Emit, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        token = trio.lowlevel.current_trio_token()
        rcv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if rcv.keep_alive else "HTTP/1.0"
            timeout = rcv.idle_timeout

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                pass

            def _answer(self, code: int, text: str = "") -> None:
                body = text.encode()
                self.send_response(code)
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="cc-agent"')
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._answer(405, "POST line protocol to this path\n")

            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path.rstrip("/") != rcv.path.rstrip("/"):
                    self._drain()
                    self._answer(404, f"write to {rcv.path}\n")
                    return
                if rcv.auth is not None and not hmac.compare_digest(
                        self.headers.get("Authorization", "").encode(), rcv.auth):
                    self._drain()
                    self._answer(401, "authentication required\n")
                    return
                precision = (parse_qs(url.query).get("precision") or ["auto"])[0]
                if precision not in PRECISIONS and precision != "auto":
                    self._drain()
                    self._answer(400, f"precision: expected s, ms, us or ns, got {precision!r}\n")
                    return
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    n = -1
                if n < 0 or n > rcv.max_body:
                    self.close_connection = True
                    self._answer(413, f"body larger than {rcv.max_body} bytes\n")
                    return
                body = self.rfile.read(n)
                try:
                    if self.headers.get("Content-Encoding", "").lower() == "gzip":
                        body = gzip.decompress(body)
                    text = body.decode()
                except (OSError, EOFError, UnicodeDecodeError) as e:
                    self._answer(400, f"cannot read the body: {e}\n")
                    return
                msgs, errors = parse_lines(text, precision)
                if msgs:
                    try:
                        trio.from_thread.run_sync(rcv.deliver, emit, msgs, trio_token=token)
                    except trio.RunFinishedError:
                        self._answer(503, "agent stopping\n")
                        return
                if errors:
                    rcv.rejected_lines += len(errors)
                    self._answer(400, "\n".join(errors[:20]) + "\n")
                    return
                self._answer(204)

            def _drain(self) -> None:
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    n = 0
                if 0 < n <= rcv.max_body:
                    self.rfile.read(n)
                else:
                    self.close_connection = True

        try:
            httpd = ThreadingHTTPServer((self.address, self.port), Handler)
        except OSError as e:
            raise AgentConfigError(f"{self.where}: cannot listen on {self.address or '*'}:{self.port}: {e}") from None
        httpd.daemon_threads = True
        self.bound_port = httpd.server_port
        thread = threading.Thread(target=httpd.serve_forever, name=f"receiver-{self.name}", daemon=True)
        thread.start()
        self.log.info("%s: accepting line protocol at http://%s:%d%s", self.where, self.address or "*",
                      self.bound_port, self.path)
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            httpd.shutdown()
            httpd.server_close()
