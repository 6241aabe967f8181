"""The warning store on a real ClickHouse server (18.16, the shared fixture) and on embedded chDB: the same
tests over both engines, plus an outage of a server of our own (stopped mid-stream, started again on the
same data directory and port) during which the sink retries and loses nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from stream.dev import devstack
from stream.sinks.base import RetryPolicy
from stream.sinks.schema import COLUMNS, row_to_warning_json
from stream.sinks.store import WarningFilter
from stream.sinks.factory import open_store
from stream.sinks.writer import ClickHouseSink
from stream.model.warning import EarlyWarning, make_warning_id

T0 = 1_772_446_500_000  # 2026-03-02T10:15:00Z


def _warning(n: int, *, rule: str = "rapid-cashout", severity: str = "high", account: str | None = None,
             event_ts: int | None = None, summary: str | None = None) -> EarlyWarning:
    return EarlyWarning(
        warning_id=make_warning_id(rule, "1", f"L-{n}"), rule_id=rule, rule_version="1", kind="rapid_cashout",
        severity=severity, score=0.5 + n / 1000, subject=f"L-{n}", accounts=(account or f"U{n}", "U2002"),
        loan_ids=(f"L-{n}",), txn_ids=(f"d-{n}", f"t-{n}"), amount=485_100 + n, currency="CNY",
        first_ts=T0, event_ts=event_ts if event_ts is not None else T0 + n * 1000, detected_at=T0 + n * 1000 + 350,
        summary=summary or f"97% of loan L-{n} reached cash-out sinks",
        evidence={"paths": [[f"U{n}", "U2002", "card:1"]], "hops": 2}, notify=("pager",))


@pytest.fixture(params=["clickhouse", "chdb"])
def store(request, tmp_path, unique):
    if request.param == "clickhouse":
        server = request.getfixturevalue("clickhouse_server")
        url = f"clickhouse://{server.host}:{server.port}/{unique('ff_sink_')}"
    else:
        url = f"chdb://{tmp_path / 'chdb'}"
    opened = open_store(url)
    opened.ensure_schema()
    opened.ensure_schema()  # idempotent: the worker runs it at every start
    yield opened
    opened.close()


def _sink(store, **kwargs) -> ClickHouseSink:
    return ClickHouseSink(store, batch_size=kwargs.pop("batch_size", 100),
                          policy=RetryPolicy(initial_s=0.01, max_s=0.05), clock=lambda: T0 + 999_000, **kwargs)


def test_warnings_become_rows_with_every_column(store):
    warnings = [_warning(1), _warning(2, summary="it's a \\ 'quoted' summary, 中文")]
    assert asyncio.run(_sink(store).write(warnings)) == 2
    rows = store.select_warnings(WarningFilter())
    assert [r["warning_id"] for r in rows] == [warnings[1].warning_id, warnings[0].warning_id]  # newest first
    assert set(rows[0]) == set(COLUMNS)
    row = rows[0]
    assert row["accounts"] == ["U2", "U2002"] and row["loan_ids"] == ["L-2"] and row["txn_ids"] == ["d-2", "t-2"]
    assert row["amount_minor"] == 485_102 and row["severity_rank"] == 3 and row["event_ts_ms"] == T0 + 2000
    assert row["inserted_ms"] == T0 + 999_000
    assert json.loads(row["evidence"]) == {"paths": [["U2", "U2002", "card:1"]], "hops": 2}
    assert [row_to_warning_json(r) for r in rows] == [w.to_dict() for w in reversed(warnings)]


def test_the_same_warning_inserted_twice_is_one_row_after_final(store):
    warning = _warning(7)
    asyncio.run(_sink(store).write([warning]))
    asyncio.run(_sink(store).write([warning, _warning(8)]))
    asyncio.run(_sink(store).write([warning]))
    assert store.count_distinct() == 2
    assert [r["warning_id"] for r in store.select_warnings(WarningFilter(rule_id="rapid-cashout"))].count(
        warning.warning_id) == 1


MONTH_MS = 31 * 86_400_000
OLD_LAYOUT = ("PARTITION BY toYYYYMM(event_time)\nORDER BY (rule_id, event_time, warning_id)")


def test_copies_of_one_id_with_different_event_times_merge_into_one_row(store):
    """Regression: event time was part of the sorting and partition keys, so copies that differed in it (a
    divergent replay) stayed two rows even after OPTIMIZE FINAL, and count() FINAL overcounted."""
    first, later = _warning(5), _warning(5, event_ts=T0 + 2 * MONTH_MS)
    asyncio.run(_sink(store).write([first]))
    asyncio.run(_sink(store).write([later]))
    store.execute(f"OPTIMIZE TABLE `{store.database}`.warnings FINAL")
    assert store.count_distinct() == 1
    rows = store.query(f"SELECT count() AS n FROM `{store.database}`.warnings")
    assert rows[0]["n"] == 1
    assert store.sorting_key() == "warning_id" and store.schema_problem() is None


def test_migrate_rebuilds_an_old_layout_table_keyed_by_warning_id(store):
    from stream.sinks.schema import WARNINGS_DDL
    db = f"`{store.database}`"
    store.execute(f"DROP TABLE {db}.warnings")
    old_ddl = WARNINGS_DDL.replace("ORDER BY warning_id", OLD_LAYOUT).replace(
        "CREATE TABLE IF NOT EXISTS warnings", f"CREATE TABLE {db}.warnings")
    store.execute(old_ddl)
    assert "event_time" in store.sorting_key() and "migrate" in store.schema_problem()
    copies = [_warning(1), _warning(1, event_ts=T0 + 2 * MONTH_MS), _warning(2), _warning(2)]
    for warning in copies:
        asyncio.run(_sink(store).write([warning]))
    store.execute(f"OPTIMIZE TABLE {db}.warnings FINAL")
    assert store.count_distinct() == 3                     # the old layout overcounts

    migration = store.migrate(now_ms=T0)
    assert migration.done and migration.rows_before >= 3 and migration.warnings_after == 2
    assert store.count_distinct() == 2 and store.sorting_key() == "warning_id"
    assert store.query(f"SELECT count() AS n FROM {db}.{migration.kept_as}")[0]["n"] == migration.rows_before
    again = store.migrate(now_ms=T0 + 1)
    assert not again.done and "already keyed" in again.detail


def test_filters_by_rule_account_severity_time_and_limit(store):
    warnings = [
        _warning(1, rule="fan-out", severity="medium", account="U9"),
        _warning(2, rule="fan-out", severity="critical"),
        _warning(3, rule="cycle", severity="high", account="U9"),
        _warning(4, rule="cycle", severity="low", event_ts=T0 + 40 * 86_400_000),  # another month's partition
    ]
    asyncio.run(_sink(store, batch_size=3).write(warnings))

    def ids(**where):
        return [r["subject"] for r in store.select_warnings(WarningFilter(**where))]

    assert ids() == ["L-4", "L-3", "L-2", "L-1"]
    assert ids(rule_id="fan-out") == ["L-2", "L-1"]
    assert ids(account="U9") == ["L-3", "L-1"]
    assert ids(min_severity="high") == ["L-3", "L-2"]
    assert ids(since_ms=T0 + 2000) == ["L-4", "L-3", "L-2"]
    assert ids(since_ms=T0 + 86_400_000) == ["L-4"]
    assert ids(limit=2) == ["L-4", "L-3"]
    assert ids(rule_id="nope' OR '1'='1") == []


def test_sink_retries_through_a_clickhouse_outage_and_stores_every_warning_once(tmp_path):
    """Our own server, so that stopping it does not disturb other tests: same workdir and ports on restart."""
    workdir = tmp_path / "clickhouse"
    server = devstack.start_clickhouse(workdir=workdir)
    ports = {"tcp_port": server.port, "http_port": server.http_port}
    url = f"clickhouse://{server.host}:{server.port}/fundflow"
    restarted: list[devstack.ClickHouseServer] = []
    waits: list[float] = []

    async def sleep_then_restart(seconds: float) -> None:
        """The injected backoff sleep: records the wait; on the third failed attempt the server comes back."""
        waits.append(seconds)
        if len(waits) == 3:
            restarted.append(await asyncio.to_thread(devstack.start_clickhouse, workdir=workdir, **ports))

    try:
        sink = ClickHouseSink(open_store(url), batch_size=4, policy=RetryPolicy(initial_s=0.05, max_s=0.2),
                              sleep=sleep_then_restart)
        before = [_warning(n) for n in range(6)]
        assert asyncio.run(sink.write(before)) == 6

        server.stop()  # ClickHouse goes away mid-stream
        during = [_warning(n) for n in range(4, 15)]  # overlaps the first batch: replays happen
        assert asyncio.run(sink.write(during)) == 11
        assert len(restarted) == 1 and len(waits) >= 3 and sink.failed_attempts >= 3
        assert all(0.025 <= w <= 0.2 for w in waits)

        with open_store(url) as reader:
            stored = {r["warning_id"] for r in reader.select_warnings(WarningFilter(limit=1000))}
            assert stored == {w.warning_id for w in before + during}
            assert reader.count_distinct() == 15
        sink.store.close()
    finally:
        server.stop()
        for again in restarted:
            again.stop()


def test_fundflow_warnings_command_reads_the_store_as_a_table_and_as_json(store, capsys):
    from stream.cli import main

    warnings = [_warning(1, severity="medium"), _warning(2, severity="critical", account="U77"), _warning(3)]
    asyncio.run(_sink(store).write(warnings + [warnings[0]]))
    url = getattr(store, "url", None) or f"chdb://{store.path}"
    store.close()  # chDB allows one session per process: the command opens its own

    assert main(["warnings", "--store", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["EVENT", "TIME", "SEVERITY", "RULE"]
    assert [line.split()[3] for line in table[1:4]] == ["L-3", "L-2", "L-1"] and table[-1] == "3 warnings"
    assert "4851.02 CNY" in table[2] and "U77,U2002" in table[2]

    assert main(["warnings", "--store", url, "--json", "--severity", "high", "--since", "2026-03-02T10:15:02Z"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [warnings[2].to_dict(), warnings[1].to_dict()]

    assert main(["warnings", "--store", url, "--json", "--account", "U77", "--rule", "rapid-cashout"]) == 0
    assert [json.loads(x)["subject"] for x in capsys.readouterr().out.splitlines()] == ["L-2"]

    # Relative to the newest warning's event time (T0 + 3 s), not to the wall clock: the ledger is dated March.
    assert main(["warnings", "--store", url, "--json", "--since", "1500ms"]) == 0
    assert [json.loads(x)["subject"] for x in capsys.readouterr().out.splitlines()] == ["L-3", "L-2"]

    assert main(["warnings", "--store", url, "--rule", "rapid-cashot"]) == 1
    assert "did you mean 'rapid-cashout'?" in capsys.readouterr().err

    assert main(["warnings", "--store", url, "--since", "last tuesday"]) == 1
    assert "--since: expected a duration like 2h" in capsys.readouterr().err
