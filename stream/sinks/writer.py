"""The ClickHouse sink: warnings in, rows stored, retried with backoff until the store takes them.

`write` returns only once every row is stored, which is what lets the sink agent acknowledge the Kafka
offsets of a batch afterwards and never before: a warning is either in the table or still in the outbox.
The store is synchronous (clickhouse-driver, chDB), so each insert runs in a worker thread and the event
loop keeps serving heartbeats while ClickHouse is slow or down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable, Sequence

from ..model.warning import EarlyWarning
from ..clock import wall_clock_ms
from .base import RetryPolicy, Sleep, StatusReport, no_report, retry_async
from .schema import warning_to_row
from .store import StoreError, WarningStore

log = logging.getLogger(__name__)


def dedupe_batch(warnings: Iterable[EarlyWarning]) -> list[EarlyWarning]:
    """Drop repeats of a warning_id inside one batch (the last copy wins, as it would in the table)."""
    latest: dict[str, EarlyWarning] = {}
    for warning in warnings:
        latest.pop(warning.warning_id, None)
        latest[warning.warning_id] = warning
    return list(latest.values())


def chunks(items: Sequence, size: int) -> list[Sequence]:
    if size <= 0:
        raise ValueError(f"expected a positive chunk size, got {size}")
    return [items[start:start + size] for start in range(0, len(items), size)]


class ClickHouseSink:
    def __init__(self, store: WarningStore, *, batch_size: int, policy: RetryPolicy,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], int] = wall_clock_ms,
                 in_thread: bool = True, stopping: Callable[[], bool] | None = None,
                 on_status: StatusReport = no_report) -> None:
        self.store = store
        self.on_status = on_status
        self.batch_size = batch_size
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.in_thread = in_thread
        self.stopping = stopping
        self.rows_written = 0
        self.failed_attempts = 0
        self.schema_ready = False

    async def _call(self, fn, *args) -> None:
        try:
            if self.in_thread:
                await asyncio.to_thread(fn, *args)
            else:
                fn(*args)
        except StoreError as exc:
            self.failed_attempts += 1
            self.on_status(False, str(exc))
            if not exc.retryable:
                # Dropping rows is never an option: an operator must fix the table; keep retrying meanwhile.
                log.error("ClickHouse refused the warnings (fix the table or the server): %s", exc)
                raise StoreError(str(exc), retryable=True) from None
            raise
        self.on_status(True, "")

    async def call(self, fn, *args) -> None:
        """Run another operation on the store the way inserts run (in a thread, reported to health; a refusal
        is raised as retryable): the evidence chain's steps."""
        await self._call(fn, *args)

    async def ensure_schema(self) -> None:
        await retry_async(lambda: self._call(self.store.ensure_schema), self.policy, sleep=self.sleep,
                          what="creating the warnings table", stopping=self.stopping)
        self.schema_ready = True
        try:
            problem = await asyncio.to_thread(self.store.schema_problem) if self.in_thread else \
                self.store.schema_problem()
        except Exception as exc:  # noqa: BLE001 - only a check: the table exists and takes rows either way
            log.warning("could not check the warnings table's layout: %s", exc)
            return
        if problem:
            log.error("%s", problem)

    async def write(self, warnings: Sequence[EarlyWarning]) -> int:
        """Store every warning (at most batch_size rows per insert); returns the rows written.

        Raises RetryStopped only when `stopping()` turned true while the store was failing."""
        if not self.schema_ready:
            await self.ensure_schema()
        unique = dedupe_batch(warnings)
        inserted_ms = self.clock()
        rows = [warning_to_row(warning, inserted_ms) for warning in unique]
        for chunk in chunks(rows, self.batch_size):
            await retry_async(lambda chunk=chunk: self._call(self.store.insert_rows, chunk), self.policy,
                              sleep=self.sleep, what=f"inserting {len(chunk)} warnings into ClickHouse",
                              stopping=self.stopping)
            self.rows_written += len(chunk)
        return len(rows)
