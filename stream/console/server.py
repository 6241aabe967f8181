"""Running the console: open the store, check the users, serve with uvicorn until Ctrl-C."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, TextIO

from ..errors import FundflowError
from ..settings import Settings
from ..sinks.factory import open_store
from ..sinks.store import StoreError, WarningStore
from .app import create_app
from .auth import Tokens
from .queries import Console


def users(settings: Settings) -> Tokens:
    tokens = Tokens.from_settings(settings.console_tokens, settings.console_tokens_file)
    if not tokens.users:
        raise FundflowError("no console users: set FUNDFLOW_CONSOLE_TOKENS (NAME:ROLE:TOKEN,...) or "
                            "FUNDFLOW_CONSOLE_TOKENS_FILE; the console serves nobody without a token")
    return tokens


def build(settings: Settings, *, store_url: str | None = None, rules_dir: str | None = None):
    """The app, its Console and its store: the users checked and the store opened, or a FundflowError."""
    tokens = users(settings)
    url = store_url or settings.clickhouse_url
    try:
        store = open_store(url, create=False)
    except StoreError as exc:
        raise FundflowError(f"cannot open the warning store: {exc}{_lock_hint(url)}") from None
    try:
        store.ensure_schema()          # as the worker does at start: the console's views are defined on the table
        console = Console(store, rules_dir=rules_dir or settings.rules_dir)
    except StoreError as exc:
        store.close()
        raise FundflowError(f"cannot use the warning store: {exc}") from None
    return create_app(console, tokens), console, store


def _lock_hint(url: str) -> str:
    """chDB reports a directory locked by another process only on stderr ("Cannot lock file .../status")."""
    return (" (an embedded store admits one process: when a worker runs on it, serve the console from the worker "
            "with FUNDFLOW_CONSOLE_IN_WORKER=true, or keep the warnings in a ClickHouse server)") \
        if url.startswith("chdb:") else ""


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


def serve_store_in_thread(settings: Settings, store: WarningStore, *, rules_dir: str | None = None,
                          log: Callable[[str], None] = lambda line: None) -> threading.Thread:
    """Serve the console over a store this process already holds (the worker's), from a daemon thread.

    The users are checked and the port bound before the thread starts, so a mistake stops the caller at once.
    The thread makes the labels table once the store answers (the worker creates the database as it starts),
    then serves until the process ends."""
    import uvicorn

    tokens = users(settings)
    sock = bound_socket(settings.console_host, settings.console_port)
    address = f"http://{settings.console_host}:{sock.getsockname()[1]}/"

    def run() -> None:
        console = None
        while console is None:
            try:
                store.ensure_schema()
                console = Console(store, rules_dir=rules_dir or settings.rules_dir)
            except StoreError as exc:
                log(f"console: the store does not answer yet ({exc}); retrying")
                time.sleep(1)
        server = uvicorn.Server(uvicorn.Config(create_app(console, tokens), log_level="warning",
                                               access_log=False, lifespan="off"))
        log(f"console: serving {address} from the worker's process")
        server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="fundflow-console", daemon=True)
    thread.start()
    return thread
