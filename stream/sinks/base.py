"""Retrying a sink: exponential backoff with jitter, a cap, and an injected sleep and random source.

Sinks retry rather than drop (docs/architecture.md, invariant 3). The policy is a plain value and the waiting is a function
passed in, so tests check every wait without waiting, and production uses `asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from ..errors import SinkError
from ..settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


# A sink's report of whether its destination answers: (reachable, detail). /readyz reads it.
StatusReport = Callable[[bool, str], None]


def no_report(reachable: bool, detail: str) -> None:
    """The default when nobody watches a sink's reachability."""


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (0-based) waits min(max_s, initial_s * multiplier**n), minus up to `jitter` of it at random.

    Subtractive ("equal") jitter keeps the wait at most the cap and spreads retries of many workers apart.
    `max_attempts` None = retry forever (ClickHouse: never drop); a number = give up after that many.
    """

    initial_s: float = 0.2
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (self.initial_s > 0 and self.max_s >= self.initial_s and self.multiplier >= 1):
            raise ValueError(f"expected 0 < initial_s <= max_s and multiplier >= 1, got {self}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"expected jitter between 0 and 1, got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"expected max_attempts >= 1 or None, got {self.max_attempts}")

    @classmethod
    def from_settings(cls, settings: Settings, max_attempts: int | None = None) -> "RetryPolicy":
        initial = settings.sink_retry_initial / 1000
        return cls(initial_s=initial, max_s=max(settings.sink_retry_max / 1000, initial), max_attempts=max_attempts)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        if not self.jitter:
            return base
        return base - base * self.jitter * (rng or random).random()


class RetryStopped(SinkError):
    """The owner is shutting down: retrying stopped with the operation still undone."""

    def __init__(self, last: Exception) -> None:
        self.last = last
        super().__init__(f"stopped retrying on shutdown: {last}", retryable=False)


class RetriesExhausted(SinkError):
    """The policy's attempts ran out; carries the last error."""

    def __init__(self, attempts: int, last: Exception) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(f"gave up after {attempts} attempts: {last}", retryable=False)


async def retry_async(operation: Callable[[], Awaitable[T]], policy: RetryPolicy, *, sleep: Sleep = asyncio.sleep,
                      rng: random.Random | None = None, what: str = "sink operation",
                      stopping: Callable[[], bool] | None = None) -> T:
    """Run `operation` until it succeeds. A retryable SinkError is retried after the policy's wait (or the
    error's `retry_after_s`, when the far end said how long); any other exception propagates at once.
    `stopping()` true after a failure raises RetryStopped instead of waiting again (shutdown)."""
    attempt = 0
    while True:
        try:
            return await operation()
        except SinkError as exc:
            if not exc.retryable:
                raise
            attempt += 1
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                raise RetriesExhausted(attempt, exc) from None
            if stopping is not None and stopping():
                raise RetryStopped(exc) from None
            wait = exc.retry_after_s if exc.retry_after_s is not None else policy.delay(attempt - 1, rng)
            log.warning("%s failed (attempt %d), retrying in %.2fs: %s", what, attempt, wait, exc)
            await sleep(wait)
