"""The pager sink: POST the warnings that matter to a webhook, once each, without storms.

A warning pages when its severity is at least `page_min_severity` and its rule names "pager" in `notify`.
`handle` only decides and queues: the page is recorded in the ledger (SQLite, durable) and `deliver_queued`
sends the queue in order. Delivery retries network errors, timeouts, 5xx, 408 and 429 with exponential
backoff and jitter (a 429's Retry-After, seconds or an HTTP date, is honoured) for as long as the webhook is
away: an outage delays pages, it never drops them. Only a permanent refusal, any other 4xx, sends a page to
the dead-letter callable with the status and body. More than `page_storm_limit` pages of one rule in one
wall-clock minute: the rest are held and sent as one summary page once that minute is over
(`flush_due`). The ledger makes "never page twice" hold across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable

from ..errors import SinkError, not_answering
from ..settings import Settings
from ..model.warning import SEVERITY_RANK, EarlyWarning
from . import payloads
from ..clock import wall_clock_ms
from .base import RetriesExhausted, RetryPolicy, Sleep, StatusReport, no_report, retry_async
from .dedupe import DEAD_LETTERED, GROUPED, HELD, PAGED, QUEUED, PageLedger

log = logging.getLogger(__name__)

PAGER_TARGET = "pager"
MINUTE_MS = 60_000
MAX_RETRY_AFTER_S = 3600.0
RESPONSE_EXCERPT = 500
DeadLetterFn = Callable[[EarlyWarning, str, str], Awaitable[None]]

# Outcomes of `PagerSink.handle`, for counters and tests.
SKIPPED_SEVERITY = "below_min_severity"
SKIPPED_TARGET = "not_for_pager"
DUPLICATE = "already_handled"
DECISIONS = (QUEUED, HELD, SKIPPED_SEVERITY, SKIPPED_TARGET, DUPLICATE)


# Answers that say "not now" rather than "never": retried like network errors.
RETRYABLE_STATUSES = frozenset({408, 429})


class WebhookRejected(SinkError):
    """The webhook answered with a 4xx other than 408 and 429: resending the same request cannot succeed."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"webhook refused the page with HTTP {status}: {body[:RESPONSE_EXCERPT]}", retryable=False)


def retry_after_seconds(value: str | None, now_ms: int) -> float | None:
    """Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return min(max(moment.timestamp() - now_ms / 1000, 0.0), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class PagerConfig:
    url: str
    secret: str | None = None
    format: str = "generic"               # generic | pagerduty
    routing_key: str | None = None
    min_severity: str = "high"
    storm_limit: int = 10
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.format not in ("generic", "pagerduty"):
            raise ValueError(f"expected webhook format generic or pagerduty, got {self.format!r}")
        if self.format == "pagerduty" and not self.routing_key:
            raise ValueError("webhook_format pagerduty needs pagerduty_routing_key (the integration key)")
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"expected a severity among {', '.join(SEVERITY_RANK)}, got {self.min_severity!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "PagerConfig":
        if not settings.webhook_url:
            raise ValueError("webhook_url is not set, so there is nothing to page")
        return cls(url=settings.webhook_url, secret=settings.webhook_secret, format=settings.webhook_format,
                   routing_key=settings.pagerduty_routing_key, min_severity=settings.page_min_severity,
                   storm_limit=settings.page_storm_limit, timeout_s=settings.webhook_timeout / 1000)


class PagerSink:
    def __init__(self, config: PagerConfig, ledger: PageLedger, dead_letter: DeadLetterFn, *,
                 policy: RetryPolicy, sleep: Sleep = asyncio.sleep, clock: Callable[[], int] = wall_clock_ms,
                 rng: random.Random | None = None, on_status: StatusReport = no_report,
                 stopping: Callable[[], bool] | None = None) -> None:
        self.config = config
        self.stopping = stopping
        self.on_status = on_status
        self.delivered = 0            # pages the webhook took
        self.failed_attempts = 0      # posts that failed (and were retried or dead-lettered)
        self.ledger = ledger
        self.dead_letter = dead_letter
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.counts: dict[str, int] = {}    # decisions (DECISIONS, on the worker's loop) and deliveries (thread)
        self._session = None

    # ------------------------------------------------------------ decisions

    def wants(self, warning: EarlyWarning) -> str | None:
        """None when the warning should page, else why not."""
        if PAGER_TARGET not in warning.notify:
            return SKIPPED_TARGET
        if warning.severity_rank < SEVERITY_RANK[self.config.min_severity]:
            return SKIPPED_SEVERITY
        return None

    async def handle(self, warning: EarlyWarning) -> str:
        """Skip, hold (storm control) or queue one warning; returns the outcome. Never waits for the webhook."""
        outcome = self.wants(warning)
        if outcome is None:
            if self.ledger.state_of(warning.warning_id) is not None:
                outcome = DUPLICATE
            else:
                now = self.clock()
                minute = now // MINUTE_MS
                outcome = HELD if self.ledger.pages_in_minute(warning.rule_id, minute) >= self.config.storm_limit \
                    else QUEUED
                self.ledger.record(warning, outcome, minute, now)
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        return outcome

    async def deliver_queued(self) -> int:
        """Send every queued page, oldest first; returns the pages the webhook took. A page the retry policy
        gave up on stays queued, and so does everything after it, for the next call."""
        sent = 0
        for warning in self.ledger.queued():
            body = (payloads.pagerduty_body(warning, self.config.routing_key or "")
                    if self.config.format == "pagerduty" else payloads.generic_body(warning))
            delivered = await self._deliver(body, warning.warning_id, [warning])
            if delivered is None:
                break
            state = PAGED if delivered else DEAD_LETTERED
            self.ledger.mark([warning.warning_id], state, self.clock())
            self.counts[state] = self.counts.get(state, 0) + 1
            sent += delivered
        return sent

    async def flush_due(self) -> int:
        """Send the summary page of every storm group whose minute is over; returns the pages sent."""
        now = self.clock()
        sent = 0
        for rule_id, minute, warnings in list(self.ledger.held_before(now // MINUTE_MS)):
            summary = payloads.StormSummary(rule_id, minute, tuple(warnings))
            body = (payloads.pagerduty_summary_body(summary, self.config.routing_key or "", now)
                    if self.config.format == "pagerduty" else payloads.generic_summary_body(summary))
            delivered = await self._deliver(body, summary.dedup_key, list(summary.warnings))
            if delivered is None:
                break                  # still held: summarised once the webhook is back
            self.ledger.mark([w.warning_id for w in warnings], GROUPED if delivered else DEAD_LETTERED, self.clock())
            sent += delivered
            self.counts["storm_summaries"] = self.counts.get("storm_summaries", 0) + 1
        return sent

    def queue_stats(self) -> tuple[int, float]:
        """(pages queued, seconds the oldest has waited): for /metrics and /readyz."""
        return self.ledger.queue_stats(self.clock())

    # ------------------------------------------------------------ delivery

    async def _deliver(self, body: bytes, delivery_id: str, warnings: list[EarlyWarning]) -> bool | None:
        """True once the webhook took it; False when it refused it for good (dead-lettered); None when the
        retry policy ran out first (it stays where it is, for the next round)."""
        try:
            await retry_async(lambda: self._post(body, delivery_id), self.policy, sleep=self.sleep, rng=self.rng,
                              what=f"paging {delivery_id}", stopping=self.stopping)
            return True
        except WebhookRejected as exc:
            reason, detail = "pager_rejected", f"HTTP {exc.status}: {exc.body[:RESPONSE_EXCERPT]}"
        except RetriesExhausted as exc:
            log.warning("page %s not delivered yet (%s); it stays queued", delivery_id, exc)
            return None
        log.error("page %s dead-lettered (%s): %s", delivery_id, reason, detail)
        for item in warnings:
            await self.dead_letter(item, reason, detail)
        return False

    async def _post(self, body: bytes, delivery_id: str) -> None:
        import aiohttp
        headers = payloads.signed_headers(self.config.secret, self.clock(), body)
        headers[payloads.WARNING_ID_HEADER] = delivery_id
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        try:
            async with self._session.post(self.config.url, data=body, headers=headers) as response:
                status = response.status
                text = await response.text(errors="replace")
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.failed_attempts += 1
            self._report_down(f"not answering: {exc!r}")
            raise SinkError(not_answering("pager webhook", self.config.url, repr(exc))) from None
        if 200 <= status < 300:
            self.delivered += 1
            self.on_status(True, "")
            return
        self.failed_attempts += 1
        if status in RETRYABLE_STATUSES or status >= 500:
            self._report_down(f"HTTP {status}")
            raise SinkError(f"webhook answered HTTP {status}: {text[:RESPONSE_EXCERPT]}",
                            retry_after_s=retry_after_seconds(retry_after, self.clock()))
        self.on_status(True, f"HTTP {status} (refused one page)")    # it answers: reachable, the page was refused
        raise WebhookRejected(status, text)

    def _report_down(self, detail: str) -> None:
        queued, oldest_s = self.queue_stats()
        pages = f"{queued} page{'s' if queued != 1 else ''} queued"
        self.on_status(False, f"{detail}; {pages}, the oldest for {oldest_s:.0f}s" if queued else detail)

    async def close_http(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def close(self) -> None:
        await self.close_http()
        self.ledger.close()
