"""Page delivery on a thread and an event loop of its own.

The worker's event loop also detects: a whole fetch is detected in one go, and a young collection or a
rebalance can hold the loop for longer. aiohttp measures `webhook_timeout` with that loop's timers, and after a
stall the expired timer runs before the task that would read the answer already waiting in the socket. A page the
webhook took in time was then counted as timed out and sent again: a double page. On a loop of its own, delivery
waits only for the GIL's switch interval (5 ms), so the timeout measures the webhook.

Deciding and queueing (`PagerSink.handle`) stays on the worker's loop, because its agent commits the offset once
the page is in the ledger. The ledger is the hand-over: the worker records, this thread sends and marks.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from .base import RetryStopped
from .pager import PagerSink

log = logging.getLogger(__name__)


class PageDeliveryThread:
    """Runs `deliver_queued` and `flush_due` in rounds: at once when woken, else every `idle_s` (for the storm
    summaries that fall due without a new page)."""

    def __init__(self, pager: PagerSink, *, idle_s: float) -> None:
        self.pager = pager
        self.idle_s = idle_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fundflow-page-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def wake(self) -> None:
        """A page was queued: start a round now. Safe from any thread, and a no-op once stopped."""
        self._call_soon(lambda: self._wake.set())

    def stop(self, timeout_s: float) -> bool:
        """Cancel the round in progress (a page cut off mid-post stays queued, and is sent again at the next
        start) and wait for the thread; False if it did not end within `timeout_s`. Blocks: call it from a
        thread, not from an event loop."""
        self._call_soon(lambda: self._task.cancel())
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _call_soon(self, callback) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:          # the loop has closed: the thread is ending or gone
            pass

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.current_task()
        self._ready.set()
        try:
            while True:
                self._wake.clear()
                try:
                    await self.pager.deliver_queued()
                    await self.pager.flush_due()
                except RetryStopped:
                    return                       # the worker is stopping: the ledger keeps the queue
                except Exception:  # noqa: BLE001 - a failing round must not end delivery for good
                    log.exception("paging round failed; the pages stay queued")
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            pass
        finally:
            await self.pager.close_http()
