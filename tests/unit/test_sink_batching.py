"""Pure sink logic: retry policy, retry loop with an injected sleep, batch shaping, the ClickHouse writer's
retry-until-stored contract, row mapping and the SQL the store runs."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from stream.errors import SinkError
from stream.settings import Settings
from stream.sinks.base import RetriesExhausted, RetryPolicy, retry_async
from stream.sinks.schema import COLUMNS, WARNINGS_DDL, row_to_warning_json, warning_to_row
from stream.sinks.store import StoreError, WarningFilter, WarningStore, literal, qualified_ddl, select_warnings_sql
from stream.sinks.writer import ClickHouseSink, chunks, dedupe_batch
from stream.model.warning import EarlyWarning, make_warning_id

REPO = Path(__file__).resolve().parents[2]


def _warning(n: int, *, rule: str = "rapid-cashout", severity: str = "high", evidence=None) -> EarlyWarning:
    return EarlyWarning(
        warning_id=make_warning_id(rule, "1", f"L-{n}"), rule_id=rule, rule_version="1", kind="rapid_cashout",
        severity=severity, score=0.93, subject=f"L-{n}", accounts=(f"U{n}", "U2002"), loan_ids=(f"L-{n}",),
        txn_ids=(f"d-{n}", f"t-{n}"), amount=485_100 + n, currency="CNY", first_ts=1_772_446_500_000,
        event_ts=1_772_448_012_000 + n, detected_at=1_772_448_012_350 + n, summary=f"loan L-{n} cashed out",
        evidence=evidence if evidence is not None else {"hops": 2, "paths": [[f"U{n}", "U2002", "card:1"]]},
        notify=("pager",))


class Recorder:
    """An injected sleep that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_policy_doubles_up_to_the_cap_without_jitter():
    policy = RetryPolicy(initial_s=0.1, max_s=1.0, jitter=0)
    assert [policy.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delay(10_000) == 1.0  # no overflow on very long outages


def test_jitter_stays_between_half_and_full_delay_and_is_reproducible_with_a_seeded_rng():
    policy = RetryPolicy(initial_s=1.0, max_s=8.0, jitter=0.5)
    delays = [policy.delay(3, random.Random(seed)) for seed in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100
    assert policy.delay(2, random.Random(7)) == policy.delay(2, random.Random(7))


@pytest.mark.parametrize("kwargs", [{"initial_s": 0}, {"initial_s": 2, "max_s": 1}, {"jitter": 1.5},
                                    {"multiplier": 0.5}, {"max_attempts": 0}])
def test_policy_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_from_settings_uses_the_retry_settings():
    settings = Settings().with_overrides(sink_retry_initial="50ms", sink_retry_max="2s")
    policy = RetryPolicy.from_settings(settings, max_attempts=3)
    assert (policy.initial_s, policy.max_s, policy.max_attempts) == (0.05, 2.0, 3)


def test_retry_async_waits_by_the_policy_then_succeeds():
    sleep, calls = Recorder(), []

    async def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise SinkError("down")
        return "stored"

    policy = RetryPolicy(initial_s=0.5, max_s=1.5, jitter=0)
    assert asyncio.run(retry_async(flaky, policy, sleep=sleep)) == "stored"
    assert sleep.waits == [0.5, 1.0, 1.5]


def test_retry_async_prefers_the_servers_retry_after_and_stops_on_permanent_errors():
    sleep, calls = Recorder(), []

    async def throttled_then_refused():
        calls.append(1)
        if len(calls) == 1:
            raise SinkError("slow down", retry_after_s=7.0)
        raise SinkError("bad request", retryable=False)

    with pytest.raises(SinkError, match="bad request"):
        asyncio.run(retry_async(throttled_then_refused, RetryPolicy(jitter=0), sleep=sleep))
    assert sleep.waits == [7.0] and len(calls) == 2


def test_retry_async_gives_up_after_max_attempts_with_the_last_error():
    sleep = Recorder()

    async def always_down():
        raise SinkError("connection refused")

    with pytest.raises(RetriesExhausted, match="3 attempts: connection refused"):
        asyncio.run(retry_async(always_down, RetryPolicy(initial_s=0.1, jitter=0, max_attempts=3), sleep=sleep))
    assert sleep.waits == [0.1, 0.2]


def test_batches_drop_repeated_ids_and_split_by_size():
    a, b = _warning(1), _warning(2)
    assert [w.warning_id for w in dedupe_batch([a, b, a])] == [b.warning_id, a.warning_id]
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        chunks([1], 0)


class FlakyStore(WarningStore):
    """An in-memory store that is down for its first `down_for` inserts (retry logic only; the real
    engines are exercised in tests/integration/test_clickhouse_sink.py)."""

    database = "mem"

    def __init__(self, down_for: int, permanent: bool = False) -> None:
        self.down_for, self.permanent = down_for, permanent
        self.inserts: list[list[dict]] = []
        self.schema_calls = 0

    def ensure_schema(self) -> None:
        self.schema_calls += 1

    def insert_rows(self, rows):
        if self.down_for > 0:
            self.down_for -= 1
            raise StoreError("Connection refused", retryable=not self.permanent)
        self.inserts.append(list(rows))

    def query(self, sql):
        raise NotImplementedError

    def execute(self, sql):
        raise NotImplementedError


@pytest.mark.parametrize("permanent", [False, True])
def test_writer_retries_until_the_store_takes_every_row_in_size_limited_inserts(permanent):
    store, sleep = FlakyStore(down_for=5, permanent=permanent), Recorder()
    sink = ClickHouseSink(store, batch_size=2, policy=RetryPolicy(initial_s=0.1, max_s=0.4, jitter=0),
                          sleep=sleep, clock=lambda: 42, in_thread=False)
    warnings = [_warning(n) for n in range(5)] + [_warning(0)]
    assert asyncio.run(sink.write(warnings)) == 5
    assert [len(chunk) for chunk in store.inserts] == [2, 2, 1]
    assert sorted(r["warning_id"] for chunk in store.inserts for r in chunk) == sorted(
        w.warning_id for w in warnings[:5])
    assert sleep.waits == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert sink.failed_attempts == 5 and sink.rows_written == 5 and store.schema_calls == 1
    assert all(r["inserted_ms"] == 42 for chunk in store.inserts for r in chunk)


def test_row_mapping_keeps_every_field_and_round_trips_to_the_warning_json():
    warning = _warning(3, evidence={"paths": [["U3", "U2002"]], "elapsed_s": 1512, "hops": 2})
    row = warning_to_row(warning, inserted_ms=99)
    assert tuple(row) == COLUMNS
    assert row["amount_minor"] == 485_103 and row["severity_rank"] == 3
    assert row["evidence"] == '{"elapsed_s":1512,"hops":2,"paths":[["U3","U2002"]]}'
    expected = warning.to_dict()
    assert row_to_warning_json(row) == expected


def test_packaged_ddl_is_the_deployed_sql_file():
    deployed = (REPO / "deploy" / "clickhouse" / "warnings.sql").read_text()
    statement = "\n".join(line for line in deployed.splitlines() if not line.startswith("--")).strip()
    assert statement == WARNINGS_DDL.strip()
    assert qualified_ddl("ff_db").startswith("CREATE TABLE IF NOT EXISTS `ff_db`.warnings (")
    with pytest.raises(StoreError, match="database name"):
        qualified_ddl("x; DROP TABLE warnings")


def test_deployed_sql_file_is_a_copy_of_the_packaged_one():
    packaged = (REPO / "stream" / "sinks" / "warnings.sql").read_bytes()
    assert (REPO / "deploy" / "clickhouse" / "warnings.sql").read_bytes() == packaged, \
        "edit stream/sinks/warnings.sql, then copy it to deploy/clickhouse/warnings.sql"


def test_literals_escape_quotes_and_backslashes():
    assert literal("U1' OR 1=1 --") == r"'U1\' OR 1=1 --'"
    assert literal("a\\") == r"'a\\'"
    assert literal(["x", 2]) == "['x', 2]"


def test_select_sql_is_deduplicated_newest_first_and_filtered():
    sql = select_warnings_sql("db", WarningFilter(rule_id="rapid-cashout", account="U1", min_severity="high",
                                                  since_ms=1_772_446_500_123, limit=5))
    assert " FROM `db`.warnings FINAL WHERE " in sql
    assert "rule_id = 'rapid-cashout'" in sql and "has(accounts, 'U1')" in sql and "severity_rank >= 3" in sql
    assert "event_ts_ms >= 1772446500123" in sql       # the millisecond cut (no time partitions to prune)
    assert sql.endswith("ORDER BY event_ts_ms DESC, warning_id LIMIT 1 BY warning_id LIMIT 5")
    with pytest.raises(ValueError, match="severity"):
        WarningFilter(min_severity="urgent")


def test_retrying_stops_when_the_owner_is_shutting_down():
    from stream.sinks.base import RetryStopped
    sleep = Recorder()

    async def down():
        raise SinkError("connection refused")

    def shutting_down() -> bool:
        return len(sleep.waits) >= 2

    with pytest.raises(RetryStopped, match="connection refused"):
        asyncio.run(retry_async(down, RetryPolicy(initial_s=0.1, jitter=0), sleep=sleep, stopping=shutting_down))
    assert sleep.waits == [0.1, 0.2]


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"null", b"{}", b'"w-1"'])
def test_sink_agents_refuse_bytes_that_are_not_a_warning(raw):
    from stream.worker.sink_agents import _decode
    with pytest.raises((ValueError, KeyError, TypeError)):
        _decode(raw)


def test_sink_agents_refuse_a_warning_with_an_unknown_severity_before_it_reaches_a_sink():
    import orjson

    from stream.worker.sink_agents import _decode
    good = _warning(1)
    assert _decode(good.to_json()) == good
    with pytest.raises(ValueError, match="got 'urgent'"):
        _decode(orjson.dumps({**good.to_dict(), "severity": "urgent"}))


def test_writer_reports_whether_the_store_answers():
    """What /readyz shows: unreachable while inserts fail, reachable again once one succeeds."""
    reports: list[tuple[bool, str]] = []
    store = FlakyStore(down_for=2)
    sink = ClickHouseSink(store, batch_size=10, policy=RetryPolicy(initial_s=0.1, jitter=0), sleep=Recorder(),
                          clock=lambda: 1, in_thread=False, on_status=lambda ok, detail: reports.append((ok, detail)))
    asyncio.run(sink.write([_warning(1)]))
    assert [ok for ok, _ in reports] == [True, False, False, True]     # schema, two refused inserts, stored
    assert "Connection refused" in reports[1][1]


def test_the_chain_gets_a_connection_of_its_own_on_a_server_and_shares_the_embedded_session(tmp_path):
    from stream.sinks.chdb_store import ChdbStore
    from stream.sinks.clickhouse import NativeStore

    server = NativeStore("clickhouse://u:p@127.0.0.1:9000/fundflow")
    other = server.for_another_thread()
    assert other is not server and isinstance(other, NativeStore)
    assert (other.address, other.user, other.password) == (server.address, "u", "p")
    embedded = ChdbStore(tmp_path / "chdb")
    try:
        assert embedded.for_another_thread() is embedded      # one session per process, its calls serialised
    finally:
        embedded.close()
