-- fundflow early warnings (DESIGN.md §5), one row per warning_id after deduplication.
--
-- Runs unchanged on ClickHouse 18.16 and on current ClickHouse (chDB); the worker runs it at start
-- (CREATE ... IF NOT EXISTS), in the database named by clickhouse_url.
--
-- Deduplication: warning ids are stable hashes, and detection is a pure function of the event log, so a
-- re-emitted warning has the same warning_id, rule_id and event_ts_ms: the same sorting key. ReplacingMergeTree
-- keeps one row per sorting key when parts merge; readers use FINAL (or GROUP BY warning_id with argMax)
-- so duplicates not merged yet are never shown. The row with the highest inserted_ms wins.
--
-- Times: DateTime64 does not exist in 18.16, so every instant is a UInt64 of epoch milliseconds (UTC),
-- exactly as fundflow holds them; event_time (whole seconds, computed from event_ts_ms) serves the
-- monthly partitions and time filters. Money: amount_minor is an Int64 of minor units (cents), as in
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
PARTITION BY toYYYYMM(event_time)
ORDER BY (rule_id, event_time, warning_id)
