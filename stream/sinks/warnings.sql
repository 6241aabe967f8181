-- fundflow early warnings (docs/architecture.md §5), one row per warning_id after deduplication.
--
-- Runs unchanged on ClickHouse 18.16 and on current ClickHouse (chDB); the worker runs it at start
-- (CREATE ... IF NOT EXISTS), in the database named by clickhouse_url.
--
-- Deduplication: the sorting key is warning_id alone, and the table has no partition key, so every copy of a
-- warning shares one key in one partition: ReplacingMergeTree keeps one row per warning_id when parts merge,
-- and `count() FINAL` is exact whatever else differs between copies. Readers use FINAL (or GROUP BY
-- warning_id with argMax) so duplicates not merged yet are never shown. The row with the highest inserted_ms
-- wins. (Tables created before this key sorted by (rule_id, event_time, warning_id) and partitioned by month,
-- so copies with different event times were never merged: `fundflow store migrate` rebuilds such a table.)
--
-- Times: DateTime64 does not exist in 18.16, so every instant is a UInt64 of epoch milliseconds (UTC),
-- exactly as fundflow holds them; event_time (whole seconds, computed from event_ts_ms) serves the
-- time filters. Money: amount_minor is an Int64 of minor units (cents), as in
-- fundflow itself; amount = amount_minor / 100 for two-decimal currencies.
CREATE TABLE IF NOT EXISTS warnings (
    warning_id     String,
    rule_id        String,
    rule_version   String,
    kind           String,
    severity       String,
    severity_rank  UInt8,
    score          Float64,
    subject        String,
    accounts       Array(String),
    loan_ids       Array(String),
    txn_ids        Array(String),
    amount_minor   Int64,
    currency       String,
    first_ts_ms    UInt64,
    event_ts_ms    UInt64,
    detected_at_ms UInt64,
    summary        String,
    evidence       String,
    notify         Array(String),
    inserted_ms    UInt64,
    event_time     DateTime MATERIALIZED toDateTime(intDiv(event_ts_ms, 1000))
) ENGINE = ReplacingMergeTree(inserted_ms)
ORDER BY warning_id
