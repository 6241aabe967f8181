"""A local pager webhook for the demo: a stdlib HTTP server that counts and checks the pages it receives.

The demo wants to show that paging works end to end, signatures included, without any outside service.
Each POST is recorded with whether its signature verified (when a secret is set) and answered 200.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import orjson

from ...sinks.payloads import verify

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Page:
    """One request the receiver accepted."""

    path: str
    body: bytes
    signature_ok: bool | None      # None: no secret configured, nothing to check
    kind: str                      # "warning", "storm_summary" or "unreadable"
    severity: str | None


@dataclass
class PageLog:
    """What the receiver has seen so far; read by the demo's summary."""

    pages: list[Page] = field(default_factory=list)
    refused: int = 0               # requests refused (bad signature, no body)

    @property
    def received(self) -> int:
        return len(self.pages)

    def by_kind(self) -> Counter:
        return Counter(page.kind for page in self.pages)

    def signatures_ok(self) -> int:
        return sum(1 for page in self.pages if page.signature_ok)


def classify(body: bytes) -> tuple[str, str | None]:
    """(kind, severity) of a generic-format page body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "unreadable", None
    if not isinstance(data, dict):
        return "unreadable", None
    kind = "storm_summary" if data.get("type") == "storm_summary" else "warning"
    severity = data.get("severity")
    return kind, severity if isinstance(severity, str) else None


class WebhookReceiver:
    """`with WebhookReceiver(secret) as hook:` serves `hook.url` on a free loopback port in a thread."""

    def __init__(self, secret: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.log = PageLog()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY_BYTES:
                    receiver._refuse(self, 400, b"expected a JSON body")
                    return
                body = self.rfile.read(length)
                signature_ok = None
                if receiver.secret:
                    signature_ok = verify(receiver.secret, dict(self.headers.items()), body, int(clock()))
                    if not signature_ok:
                        receiver._refuse(self, 401, b"bad signature")
                        return
                kind, severity = classify(body)
                with receiver._lock:
                    receiver.log.pages.append(Page(self.path, body, signature_ok, kind, severity))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the summary reports
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fundflow-demo-webhook",
                                        daemon=True)

    def _refuse(self, handler: BaseHTTPRequestHandler, status: int, message: bytes) -> None:
        with self._lock:
            self.log.refused += 1
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(message)))
        handler.end_headers()
        handler.wfile.write(message)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/page"

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
