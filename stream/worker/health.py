"""Liveness and readiness of the worker, and the bodies of its /healthz and /readyz pages.

Live means the process runs its event loop: an orchestrator restarts a worker that is not. Ready means
it is worth routing to and rolling past: detector state rebuilt from the log window (docs/architecture.md, invariant 6) and
every sink reachable. A worker that is live but not ready must not be restarted: it is catching up, or
waiting for a sink, and restarting it only starts the rebuild again. That is why the two are separate.

Everything here is pure (a snapshot in, a response out), so the web framework only copies
`PageResponse` fields into its own response object.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class SinkStatus:
    """The last thing a sink learned about its destination."""

    name: str
    reachable: bool
    detail: str = ""


@dataclass(frozen=True)
class HealthSnapshot:
    started: bool = False
    state_rebuilt: bool = False
    rebuild_detail: str = ""
    sinks: tuple[SinkStatus, ...] = ()
    required_sinks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Readiness:
    live: bool
    ready: bool
    reasons: tuple[str, ...]   # why not ready (or not live), one line each; empty when ready


@dataclass(frozen=True)
class PageResponse:
    status: int
    content_type: str
    body: str


def assess(snapshot: HealthSnapshot) -> Readiness:
    """Ready only when state is rebuilt and every sink (reported or required) is reachable."""
    if not snapshot.started:
        return Readiness(live=False, ready=False, reasons=("worker has not started yet",))
    reasons: list[str] = []
    if not snapshot.state_rebuilt:
        detail = f": {snapshot.rebuild_detail}" if snapshot.rebuild_detail else ""
        reasons.append(f"detector state not rebuilt from the log window yet{detail}")
    reported = {sink.name: sink for sink in snapshot.sinks}
    for name in snapshot.required_sinks:
        if name not in reported:
            reasons.append(f"sink {name}: not checked yet")
    for sink in sorted(reported.values(), key=lambda s: s.name):
        if not sink.reachable:
            detail = f" ({sink.detail})" if sink.detail else ""
            reasons.append(f"sink {sink.name}: unreachable{detail}")
    return Readiness(live=True, ready=not reasons, reasons=tuple(reasons))


def healthz_page(snapshot: HealthSnapshot) -> PageResponse:
    """200 once started; a liveness probe failing here means the worker should be restarted."""
    readiness = assess(snapshot)
    body = {"status": "ok" if readiness.live else "starting"}
    return PageResponse(200 if readiness.live else 503, JSON_CONTENT_TYPE, _json(body))


def readyz_page(snapshot: HealthSnapshot) -> PageResponse:
    """200 when ready, else 503 with every reason, so an operator sees the cause in one request."""
    readiness = assess(snapshot)
    body = {
        "status": "ready" if readiness.ready else "not ready",
        "reasons": list(readiness.reasons),
        "sinks": {sink.name: {"reachable": sink.reachable, "detail": sink.detail}
                  for sink in sorted(snapshot.sinks, key=lambda s: s.name)},
    }
    return PageResponse(200 if readiness.ready else 503, JSON_CONTENT_TYPE, _json(body))


def _json(body: dict) -> str:
    return json.dumps(body, sort_keys=True) + "\n"


class HealthTracker:
    """The mutable side: the worker and the sinks report here, the pages read `snapshot()`.

    `required_sinks` names the sinks that must report before the worker is ready, so that a sink that
    never managed to check its destination keeps the worker out of rotation instead of being forgotten.
    """

    def __init__(self, required_sinks: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._snapshot = HealthSnapshot(required_sinks=tuple(required_sinks))
        self._sinks: dict[str, SinkStatus] = {}

    def mark_started(self) -> None:
        self._update(started=True)

    def mark_state_rebuilt(self, rebuilt: bool = True, detail: str = "") -> None:
        self._update(state_rebuilt=rebuilt, rebuild_detail=detail)

    def set_sink(self, name: str, reachable: bool, detail: str = "") -> None:
        with self._lock:
            self._sinks[name] = SinkStatus(name, reachable, detail)
            self._snapshot = replace(self._snapshot, sinks=tuple(self._sinks[n] for n in sorted(self._sinks)))

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return self._snapshot

    def _update(self, **changes) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)
