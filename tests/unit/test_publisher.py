"""Publisher: a send that fails never raises into an agent; transient failures are retried, permanent ones
dead-lettered; and the dead letter of anything, however large, is bounded."""

from __future__ import annotations

import asyncio
import hashlib

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from stream.model.warning import EarlyWarning
from stream.worker.deadletter import (KEPT_PREFIX_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES, DeadLetter, Origin,
                                      headers_dict)
from stream.worker.handler import Outcome
from stream.worker.publisher import WARNING_UNPUBLISHABLE, Publisher, is_permanent

ORIGIN = Origin("fundflow.transfers", 1, 7, 1_772_446_500_000)


def warning(n: int, summary: str = "s") -> EarlyWarning:
    return EarlyWarning(warning_id=f"w-{n}", rule_id="r", rule_version="1", kind="fan_out", severity="high",
                        score=1.0, subject="A", accounts=("A",), loan_ids=(), txn_ids=(f"t-{n}",), amount=100,
                        currency="CNY", first_ts=1, event_ts=2, detected_at=3, summary=summary)


class Topic:
    """A topic that fails as scripted: `send_errors` raised by send(), `ack_errors` by the acknowledgement;
    each entry is used once. Records taken are kept in `sent`."""

    def __init__(self, name: str, send_errors=(), ack_errors=(), limit: int | None = None) -> None:
        self.name = name
        self.send_errors = list(send_errors)
        self.ack_errors = list(ack_errors)
        self.limit = limit
        self.sent: list[dict] = []

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key=None, value=None, headers=None):
        if self.send_errors:
            raise self.send_errors.pop(0)
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if self.limit is not None and size > self.limit:
            raise ProducerSendError(f"Error while sending: {MessageSizeTooLargeError()!r}") from \
                MessageSizeTooLargeError()
        future = asyncio.get_running_loop().create_future()
        if self.ack_errors:
            future.set_exception(self.ack_errors.pop(0))
        else:
            self.sent.append({"key": key, "value": value, "headers": headers})
            future.set_result(None)
        return future


async def no_wait(_seconds: float) -> None:
    return None


def wrapped(exc: Exception) -> ProducerSendError:
    try:
        raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    except ProducerSendError as outer:
        return outer


def test_only_refusals_of_the_record_itself_are_permanent_through_the_cause_chain():
    assert is_permanent(wrapped(MessageSizeTooLargeError()))
    assert not is_permanent(wrapped(KafkaTimeoutError()))      # the cluster is away: wait for it
    assert not is_permanent(KafkaTimeoutError())
    assert not is_permanent(ConnectionError("reset"))
    assert is_permanent(ValueError("bad"))


def test_a_warning_too_large_for_the_outbox_is_dead_lettered_and_the_next_one_goes_out():
    async def scenario():
        outbox, dlq = Topic("warnings", limit=50_000), Topic("deadletter", limit=1_000_000)
        publisher = Publisher(outbox, dlq, sleep=no_wait)
        huge, fine = warning(1, summary="x" * 1_200_000), warning(2)
        await publisher.publish(Outcome(warnings=(huge, fine), origin=ORIGIN))
        assert [r["key"] for r in outbox.sent] == [b"w-2"]
        assert len(dlq.sent) == 1 and publisher.unpublishable_warnings == 1
        letter = dlq.sent[0]
        headers = headers_dict(letter["headers"])
        assert headers["fundflow.reason"] == WARNING_UNPUBLISHABLE and "MessageSizeTooLarge" in headers["fundflow.error"]
        assert (headers["fundflow.topic"], headers["fundflow.offset"]) == ("fundflow.transfers", "7")
        assert headers["fundflow.original_sha256"] == hashlib.sha256(huge.to_json()).hexdigest()
        assert len(letter["value"]) == KEPT_PREFIX_BYTES
    asyncio.run(scenario())


def test_transient_failures_are_retried_until_the_broker_takes_the_record():
    async def scenario():
        outbox = Topic("warnings", send_errors=[wrapped(KafkaTimeoutError())] * 2,
                       ack_errors=[KafkaTimeoutError()])
        publisher = Publisher(outbox, Topic("deadletter"), sleep=no_wait)
        pending = await publisher.publish(Outcome(warnings=(warning(1),), origin=ORIGIN), wait=False)
        await asyncio.gather(*pending)
        assert [r["key"] for r in outbox.sent] == [b"w-1"] and publisher.send_retries == 3
    asyncio.run(scenario())


def test_a_dead_letter_the_broker_refuses_is_counted_and_never_raised():
    async def scenario():
        dlq = Topic("deadletter", send_errors=[wrapped(MessageSizeTooLargeError())])
        publisher = Publisher(Topic("warnings"), dlq, sleep=no_wait)
        letter = DeadLetter(b"k", b"v", "bad_amount", "e", ORIGIN)
        await publisher.publish(Outcome(dead_letter=letter, origin=ORIGIN))
        assert publisher.unpublishable_dead_letters == 1
    asyncio.run(scenario())


def test_the_dead_letter_of_a_several_megabyte_message_fits_in_a_kafka_message():
    value, key = b"{" + b"x" * 5_000_000, b"k" * 100_000
    letter = DeadLetter(key, value, "message_too_large", "message is 5000001 bytes", ORIGIN,
                        original_headers=tuple((f"h{i}", b"v" * 10_000) for i in range(100)))
    headers = letter.headers()
    size = len(letter.bounded_key()) + len(letter.bounded_value()) + sum(len(k) + len(v) for k, v in headers)
    assert size < 100_000
    found = headers_dict(headers)
    assert found["fundflow.truncated"] == "value,key"
    assert found["fundflow.original_size"] == str(len(value))
    assert found["fundflow.original_sha256"] == hashlib.sha256(value).hexdigest()
    assert found["fundflow.original_key_sha256"] == hashlib.sha256(key).hexdigest()
    assert int(found["fundflow.dropped_headers"]) > 0
    assert letter.bounded_value() == value[:KEPT_PREFIX_BYTES] and len(letter.bounded_key()) == MAX_KEY_BYTES


def test_values_within_the_limit_are_kept_whole():
    value = b"v" * MAX_VALUE_BYTES
    letter = DeadLetter(b"k", value, "bad_amount", "e", ORIGIN)
    assert letter.bounded_value() == value and "fundflow.truncated" not in headers_dict(letter.headers())
