"""Leaving no process behind: every child the demo starts is registered here and stopped exactly once.

Stops run newest first, and once, on a normal return, on an exception, on Ctrl-C (SIGINT), on SIGTERM/SIGHUP (turned
into KeyboardInterrupt so `finally` blocks run) and, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from typing import Callable

log = logging.getLogger(__name__)

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Cleanup:
    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._previous: dict[int, object] = {}

    def add(self, name: str, stop: Callable[[], None]) -> None:
        with self._lock:
            self._stops.append((name, stop))

    def run(self) -> list[str]:
        """Run every registered stop once, newest first; returns the names whose stop failed.

        Another Ctrl-C or SIGTERM while stopping is ignored: each stop is bounded by its own timeout, and an
        interrupted stop would leave its process running."""
        failed: list[str] = []
        previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, *TERMINATING_SIGNALS):
                previous[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            self._run_all(failed)
        finally:
            for signum, handler in previous.items():
                if handler is not None:     # None: a handler installed outside Python, cannot be restored
                    signal.signal(signum, handler)  # type: ignore[arg-type]
        return failed

    def _run_all(self, failed: list[str]) -> None:
        while True:
            with self._lock:
                if not self._stops:
                    break
                name, stop = self._stops.pop()
            try:
                stop()
            except BaseException as exc:  # noqa: BLE001 - one failed stop must not keep the others running
                log.warning("could not stop %s: %r", name, exc)
                failed.append(name)

    def install(self) -> None:
        """atexit hook plus SIGTERM/SIGHUP handlers (main thread only; elsewhere only the atexit hook)."""
        atexit.register(self.run)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in TERMINATING_SIGNALS:
            self._previous[signum] = signal.signal(signum, _interrupt)

    def uninstall(self) -> None:
        atexit.unregister(self.run)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def __enter__(self) -> "Cleanup":
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run()
        finally:
            self.uninstall()


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
