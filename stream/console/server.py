"""Running the console: open the store, check the users, serve with uvicorn until Ctrl-C."""

from __future__ import annotations

import socket
import threading
from typing import TextIO

from ..errors import FundflowError
from ..settings import Settings
from ..sinks.factory import open_store
from ..sinks.store import StoreError
from .app import create_app
from .auth import Tokens
from .queries import Console


def build(settings: Settings, *, store_url: str | None = None, rules_dir: str | None = None):
    """The app, its Console and its store: the users checked and the store opened, or a FundflowError."""
    tokens = Tokens.from_settings(settings.console_tokens, settings.console_tokens_file)
    if not tokens.users:
        raise FundflowError("no console users: set FUNDFLOW_CONSOLE_TOKENS (NAME:ROLE:TOKEN,...) or "
                            "FUNDFLOW_CONSOLE_TOKENS_FILE; the console serves nobody without a token")
    url = store_url or settings.clickhouse_url
    try:
        store = open_store(url, create=False)
    except StoreError as exc:
        raise FundflowError(f"cannot open the warning store: {exc}{_lock_hint(exc)}") from None
    try:
        console = Console(store, rules_dir=rules_dir or settings.rules_dir)
    except StoreError as exc:
        store.close()
        raise FundflowError(f"cannot use the warning store: {exc}") from None
    return create_app(console, tokens), console, store


def _lock_hint(exc: StoreError) -> str:
    return (" (the embedded store is locked by the process that has it open, most often a running worker: "
            "stop it, or keep the warnings in a ClickHouse server)") if "lock" in str(exc).lower() else ""


def bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FundflowError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(settings: Settings, *, store_url: str | None = None, host: str | None = None, port: int | None = None,
          rules_dir: str | None = None, out: TextIO, ready: threading.Event | None = None) -> int:
    import uvicorn

    app, _, store = build(settings, store_url=store_url, rules_dir=rules_dir)
    host = host or settings.console_host
    sock = bound_socket(host, settings.console_port if port is None else port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    out.write(f"fundflow console on http://{shown}:{bound}/ (store {store_url or settings.clickhouse_url}); "
              f"Ctrl-C stops it\n")
    out.flush()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
        sock.close()
    return 0
