-- fundflow evidence chain (docs/evidence.md): the original events of every stored warning, the rule texts they
-- were raised under, a hash chain over the warnings per outbox partition, and the signed checkpoints over it.
--
-- Runs unchanged on ClickHouse 18.16 and on current ClickHouse (chDB); the worker runs it at start beside
-- warnings.sql (CREATE ... IF NOT EXISTS), in the database named by clickhouse_url, when evidence_chain is on.
-- Every table is a ReplacingMergeTree keyed so that a re-insert (a batch re-read after a crash) replaces a row
-- by an identical one; readers use FINAL. Times are UInt64 epoch milliseconds (no DateTime64 in 18.16).
CREATE TABLE IF NOT EXISTS evidence_events (
    warning_id      String,
    event_id        String,
    topic           String,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    event_ts_ms     Int64,
    value           String,
    value_sha256    String,
    inserted_ms     UInt64
) ENGINE = ReplacingMergeTree(inserted_ms)
ORDER BY (warning_id, event_id, topic, kafka_partition, kafka_offset);
CREATE TABLE IF NOT EXISTS rule_texts (
    rule_id         String,
    rule_version    String,
    text            String,
    rule_sha256     String,
    inserted_ms     UInt64
) ENGINE = ReplacingMergeTree(inserted_ms)
ORDER BY (rule_id, rule_version, rule_sha256);
CREATE TABLE IF NOT EXISTS detector_settings (
    settings_sha256 String,
    text            String,
    inserted_ms     UInt64
) ENGINE = ReplacingMergeTree(inserted_ms)
ORDER BY settings_sha256;
CREATE TABLE IF NOT EXISTS chain (
    outbox_partition UInt32,
    seq              UInt64,
    warning_id       String,
    warning_sha256   String,
    events_sha256    String,
    rule_sha256      String,
    settings_sha256  String,
    prev_hash        String,
    record_hash      String,
    inserted_ms      UInt64
) ENGINE = ReplacingMergeTree(inserted_ms)
ORDER BY (outbox_partition, seq);
CREATE TABLE IF NOT EXISTS chain_checkpoints (
    outbox_partition UInt32,
    first_seq        UInt64,
    last_seq         UInt64,
    merkle_root      String,
    signature        String,
    key_id           String,
    public_key       String,
    signed_ms        UInt64
) ENGINE = ReplacingMergeTree(signed_ms)
ORDER BY (outbox_partition, first_seq)
