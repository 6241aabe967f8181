"""The pager sink against a real local HTTP server (ThreadingHTTPServer on a free port) that records every
request, checks signatures and answers from a script. Waits go through an injected sleep that records them,
and wall time through an injected clock, so backoff and storm minutes are checked without waiting."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stream.sinks import payloads
from stream.sinks.base import RetryPolicy
from stream.sinks.dedupe import DEAD_LETTERED, GROUPED, HELD, PAGED, QUEUED, PageLedger
from stream.sinks.page_delivery import PageDeliveryThread
from stream.sinks.pager import DUPLICATE, SKIPPED_SEVERITY, SKIPPED_TARGET, PagerConfig, PagerSink
from stream.model.warning import EarlyWarning, make_warning_id

SECRET = "hook-s3cret"
T0 = 1_772_448_000_000  # 2026-03-02T10:40:00.000Z, the start of a minute


def _warning(n: int, *, rule: str = "rapid-cashout", severity: str = "high",
             notify: tuple[str, ...] = ("pager",)) -> EarlyWarning:
    return EarlyWarning(
        warning_id=make_warning_id(rule, "1", f"L-{n}"), rule_id=rule, rule_version="1", kind="rapid_cashout",
        severity=severity, score=0.9, subject=f"L-{n}", accounts=(f"U{n}",), loan_ids=(f"L-{n}",),
        txn_ids=(f"d-{n}",), amount=100_000 + n, currency="CNY", first_ts=T0 - 60_000, event_ts=T0 - 1000,
        detected_at=T0, summary=f"loan L-{n} cashed out", evidence={"hops": 1}, notify=notify)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Webhook:
    """A real HTTP server: answers from `script` (status, headers, body) in order, then 200s; records
    (headers, body, signature_ok, and `answered`: the status the sender received, None if it went away first)
    of every request. A scripted `X-Delay` header (seconds) is not sent: the
    server waits that long before answering, like a slow receiver."""

    def __init__(self, clock: Clock) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                record = {"path": self.path, "headers": headers, "body": body, "answered": None,
                          "signature_ok": payloads.verify(SECRET, headers, body, clock() // 1000)}
                with hook.lock:
                    hook.requests.append(record)
                    status, extra, reply = hook.script.pop(0) if hook.script else (200, {}, b'{"status":"ok"}')
                extra = dict(extra)
                delay = float(extra.pop("X-Delay", 0))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                try:
                    self.end_headers()
                    self.wfile.write(reply)
                    self.wfile.flush()
                except OSError:          # the sender went away (killed, or timed out) before the answer
                    return
                record["answered"] = status

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fundflow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clock():
    return Clock(T0 + 5_000)


@pytest.fixture
def webhook(clock):
    hook = Webhook(clock)
    yield hook
    hook.close()


class Harness:
    """Builds pager sinks over one data dir (a "restart" is a new sink on the same dir)."""

    def __init__(self, tmp_path, webhook: Webhook, clock: Clock) -> None:
        self.tmp_path, self.webhook, self.clock = tmp_path, webhook, clock
        self.sleep = RecordingSleep()
        self.dead_letters: list[tuple[str, str, str]] = []
        self.reports: list[tuple[bool, str]] = []          # reachability, as /readyz would see it

    async def dead_letter(self, warning: EarlyWarning, reason: str, detail: str) -> None:
        self.dead_letters.append((warning.warning_id, reason, detail))

    def sink(self, **config) -> PagerSink:
        options = {"url": self.webhook.url, "secret": SECRET, "storm_limit": 10, **config}
        return PagerSink(PagerConfig(**options), PageLedger.in_data_dir(self.tmp_path / "data"), self.dead_letter,
                         policy=RetryPolicy(initial_s=0.5, max_s=8.0, jitter=0.5, max_attempts=5),
                         sleep=self.sleep, clock=self.clock, rng=random.Random(1),
                         on_status=lambda ok, detail: self.reports.append((ok, detail)))


@pytest.fixture
def harness(tmp_path, webhook, clock):
    return Harness(tmp_path, webhook, clock)


async def _settled(sink: PagerSink, warnings) -> list[str]:
    """Queue each warning, send the queue, and say where each ended: paged, dead-lettered, still queued, or what
    `handle` decided without queueing it (held, skipped, duplicate)."""
    outcomes = [await sink.handle(w) for w in warnings]
    await sink.deliver_queued()
    return [sink.ledger.state_of(w.warning_id) if outcome == QUEUED else outcome
            for outcome, w in zip(outcomes, warnings)]


async def _handle_all(sink: PagerSink, warnings) -> list[str]:
    try:
        return await _settled(sink, warnings)
    finally:
        await sink.close()


def test_generic_page_is_the_signed_warning_json(harness, webhook):
    warning = _warning(1)
    assert asyncio.run(_handle_all(harness.sink(), [warning])) == [PAGED]
    [request] = webhook.requests
    assert request["path"] == "/hooks/fundflow"
    assert request["signature_ok"], request["headers"]
    assert request["headers"]["X-Fundflow-Warning-Id"] == warning.warning_id
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == warning.to_dict()
    assert harness.sleep.waits == [] and harness.dead_letters == []


def test_pagerduty_page_is_an_events_v2_trigger(harness, webhook):
    warning = _warning(2, severity="critical")
    sink = harness.sink(format="pagerduty", routing_key="R0UT1NG")
    assert asyncio.run(_handle_all(sink, [warning])) == [PAGED]
    [body] = webhook.bodies()
    assert webhook.requests[0]["signature_ok"]
    assert (body["routing_key"], body["event_action"], body["dedup_key"]) == ("R0UT1NG", "trigger", warning.warning_id)
    assert body["payload"]["severity"] == "critical" and body["payload"]["source"] == "fundflow"
    assert body["payload"]["custom_details"]["warning_id"] == warning.warning_id


def test_only_pager_targets_at_or_above_the_minimum_severity_page(harness, webhook):
    warnings = [_warning(1, severity="medium"), _warning(2, notify=("clickhouse",)), _warning(3, severity="critical")]
    outcomes = asyncio.run(_handle_all(harness.sink(min_severity="high"), warnings))
    assert outcomes == [SKIPPED_SEVERITY, SKIPPED_TARGET, PAGED]
    assert [b["warning_id"] for b in webhook.bodies()] == [warnings[2].warning_id]


def test_server_error_is_retried_with_backoff_and_delivered_once(harness, webhook):
    webhook.script = [(500, {}, b"boom"), (502, {}, b"bad gateway")]
    warning = _warning(4)
    assert asyncio.run(_handle_all(harness.sink(), [warning])) == [PAGED]
    assert len(webhook.requests) == 3
    assert all(r["signature_ok"] for r in webhook.requests)
    assert [ok for ok, _ in harness.reports] == [False, False, True]
    assert harness.reports[0][1] == "HTTP 500; 1 page queued, the oldest for 0s"
    assert len(harness.sleep.waits) == 2
    assert 0.25 <= harness.sleep.waits[0] <= 0.5 and 0.5 <= harness.sleep.waits[1] <= 1.0  # backoff with jitter
    # Delivered once: a second sink on the same ledger does not send it again.
    assert asyncio.run(_handle_all(harness.sink(), [warning])) == [DUPLICATE]
    assert len(webhook.requests) == 3


@pytest.mark.parametrize("retry_after, expected_wait", [("7", 7.0), ("Mon, 02 Mar 2026 10:40:17 GMT", 12.0)])
def test_429_waits_as_long_as_retry_after_says(harness, webhook, retry_after, expected_wait):
    webhook.script = [(429, {"Retry-After": retry_after}, b"slow down")]
    assert asyncio.run(_handle_all(harness.sink(), [_warning(5)])) == [PAGED]
    assert harness.sleep.waits == [expected_wait]
    assert len(webhook.requests) == 2


def test_client_error_goes_to_the_dead_letter_with_status_and_body_and_is_not_retried(harness, webhook):
    webhook.script = [(400, {}, b'{"error":"routing key invalid"}')]
    warning = _warning(6)
    sink = harness.sink()
    assert asyncio.run(_handle_all(sink, [warning])) == [DEAD_LETTERED]
    assert len(webhook.requests) == 1 and harness.sleep.waits == []
    [(warning_id, reason, detail)] = harness.dead_letters
    assert warning_id == warning.warning_id and reason == "pager_rejected"
    assert "HTTP 400" in detail and "routing key invalid" in detail
    assert PageLedger.in_data_dir(harness.tmp_path / "data").state_of(warning.warning_id) == DEAD_LETTERED


def test_an_unreachable_webhook_keeps_the_page_queued_and_never_dead_letters_it(harness, webhook):
    """Regression: after 12 failed attempts (40-140 s of outage) a page used to be dead-lettered for good."""
    webhook.close()  # nothing listens on the port any more
    sink = harness.sink()
    warning = _warning(7)
    assert asyncio.run(_handle_all(sink, [warning])) == [QUEUED]
    assert len(harness.sleep.waits) == 4  # one round of five attempts, then it waits for the next round
    assert [ok for ok, _ in harness.reports] == [False] * 5 and "not answering" in harness.reports[0][1]
    assert "1 page queued" in harness.reports[-1][1]
    assert harness.dead_letters == []
    ledger = PageLedger.in_data_dir(harness.tmp_path / "data")
    assert [w.warning_id for w in ledger.queued()] == [warning.warning_id]     # durable: survives a restart


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_an_outage_longer_than_a_round_delays_pages_in_order_and_loses_none(harness, webhook, status):
    webhook.script = [(status, {}, b"down")] * 7
    warnings = [_warning(20), _warning(21)]

    async def outage():
        sink = harness.sink()
        try:
            first = await _settled(sink, warnings)        # five attempts: still down
            second = await sink.deliver_queued()          # two more failures, then the webhook is back
            return first, second, [sink.ledger.state_of(w.warning_id) for w in warnings], sink.queue_stats()
        finally:
            await sink.close()

    first, sent, states, (queued, _) = asyncio.run(outage())
    assert first == [QUEUED, QUEUED] and sent == 2 and states == [PAGED, PAGED] and queued == 0
    assert [b["warning_id"] for b in webhook.bodies()[-2:]] == [w.warning_id for w in warnings]
    assert harness.dead_letters == []


def test_a_restarted_sink_does_not_page_an_already_paged_warning(harness, webhook):
    first, second = _warning(8), _warning(9)
    assert asyncio.run(_handle_all(harness.sink(), [first])) == [PAGED]
    assert asyncio.run(_handle_all(harness.sink(), [first, second, first])) == [DUPLICATE, PAGED, DUPLICATE]
    assert [b["warning_id"] for b in webhook.bodies()] == [first.warning_id, second.warning_id]


def test_storm_is_grouped_into_one_summary_page_after_the_minute_even_across_a_restart(harness, webhook, clock):
    storm = [_warning(n, rule="fan-out") for n in range(10)]
    other = _warning(99, rule="cycle")

    async def first_minute():
        sink = harness.sink(storm_limit=3)
        try:
            outcomes = await _settled(sink, storm[:6] + [other])
            assert await sink.flush_due() == 0  # the minute is not over yet
            return outcomes
        finally:
            await sink.close()

    outcomes = asyncio.run(first_minute())
    assert outcomes == [PAGED] * 3 + [HELD] * 3 + [PAGED]
    assert len(webhook.requests) == 4

    clock.now_ms = T0 + 59_999  # still the same minute, after a restart: more of the storm is held
    assert asyncio.run(_handle_all(harness.sink(storm_limit=3), storm[6:])) == [HELD] * 4
    assert len(webhook.requests) == 4

    clock.now_ms = T0 + 61_000  # next minute: one summary page for the 7 held warnings

    async def next_minute():
        sink = harness.sink(storm_limit=3)
        try:
            sent = await sink.flush_due()
            again = await sink.flush_due()
            repeat = await sink.handle(storm[8])
            return sent, again, repeat
        finally:
            await sink.close()

    assert asyncio.run(next_minute()) == (1, 0, DUPLICATE)
    assert len(webhook.requests) == 5
    summary = webhook.bodies()[-1]
    assert webhook.requests[-1]["signature_ok"]
    assert summary["type"] == "storm_summary" and summary["rule_id"] == "fan-out" and summary["count"] == 7
    assert summary["warning_ids"] == [w.warning_id for w in storm[3:]]
    assert summary["minute_start"] == "2026-03-02T10:40:00.000Z"
    ledger = PageLedger.in_data_dir(harness.tmp_path / "data")
    assert {ledger.state_of(w.warning_id) for w in storm[3:]} == {GROUPED}
    assert {ledger.state_of(w.warning_id) for w in storm[:3]} == {PAGED}


STALL_S = 2.5       # a detection batch, a collection or a rebalance holding the worker's loop
SLOW_ANSWER = [(200, {"X-Delay": "0.5"}, b"slow but in time")]


async def _page_during_a_stall(sink: PagerSink, warning: EarlyWarning, start_delivery) -> str | None:
    """Queue `warning`, start its delivery with `start_delivery`, hold this loop for STALL_S as a detection batch
    does, then give the delivery time to finish; returns the page's state in the ledger."""
    assert await sink.handle(warning) == QUEUED
    await start_delivery()
    await asyncio.sleep(0.1)          # the post is on its way
    time.sleep(STALL_S)               # blocking, like the worker's loop while it detects a fetch
    for _ in range(50):
        if sink.ledger.state_of(warning.warning_id) != QUEUED:
            break
        await asyncio.sleep(0.1)
    return sink.ledger.state_of(warning.warning_id)


def test_a_stalled_worker_loop_does_not_time_out_a_page_sent_from_the_delivery_thread(harness, webhook):
    """The webhook answers in 0.5 s, within the 1.5 s timeout, while the worker's loop is held for 2.5 s.
    Delivered from the thread, the page is posted once and marked paged."""
    webhook.script = list(SLOW_ANSWER)
    sink = harness.sink(timeout_s=1.5)
    delivery = PageDeliveryThread(sink, idle_s=5.0)

    async def start() -> None:
        delivery.start()
        delivery.wake()

    async def run() -> str | None:
        try:
            return await _page_during_a_stall(sink, _warning(1), start)
        finally:
            assert await asyncio.to_thread(delivery.stop, 5.0)
            sink.ledger.close()

    assert asyncio.run(run()) == PAGED
    assert len(webhook.requests) == 1 and webhook.requests[0]["answered"] == 200
    assert sink.failed_attempts == 0 and sink.delivered == 1


def test_control_delivering_on_the_stalled_loop_times_out_a_page_the_webhook_took(harness, webhook):
    """The same stall with delivery on the worker's own loop (how pages were sent before the delivery thread):
    the answer is read after the timeout fired, and the page goes out twice. This is what the test above guards."""
    webhook.script = list(SLOW_ANSWER)
    sink = harness.sink(timeout_s=1.5)
    tasks = []

    async def start() -> None:
        tasks.append(asyncio.create_task(sink.deliver_queued()))

    async def run() -> str | None:
        try:
            state = await _page_during_a_stall(sink, _warning(1), start)
            await asyncio.gather(*tasks)
            return state
        finally:
            await sink.close()

    assert asyncio.run(run()) == PAGED
    assert len(webhook.requests) == 2 and [r["answered"] for r in webhook.requests] == [200, 200]
    assert sink.failed_attempts == 1


def test_the_delivery_thread_sends_pages_queued_while_it_idles_and_stops_on_request(harness, webhook):
    sink = harness.sink()
    delivery = PageDeliveryThread(sink, idle_s=0.2)

    async def run() -> list[str | None]:
        delivery.start()
        try:
            warnings = [_warning(n) for n in range(3)]
            for warning in warnings:
                await sink.handle(warning)        # not woken: the idle round finds them
            for _ in range(50):
                if len(webhook.requests) == 3:
                    break
                await asyncio.sleep(0.1)
            return [sink.ledger.state_of(w.warning_id) for w in warnings]
        finally:
            assert await asyncio.to_thread(delivery.stop, 5.0)
            assert not delivery.alive
            sink.ledger.close()

    assert asyncio.run(run()) == [PAGED] * 3
    assert [json.loads(r["body"])["warning_id"] for r in webhook.requests] == [_warning(n).warning_id for n in range(3)]
