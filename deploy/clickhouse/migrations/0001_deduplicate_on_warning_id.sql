-- fundflow warnings table: from the layout ORDER BY (rule_id, event_time, warning_id), PARTITION BY month,
-- to ORDER BY warning_id with no partition key, so every copy of a warning is merged into one row.
--
-- `fundflow store migrate` runs exactly these steps against the configured store (ClickHouse server or
-- chDB). Run them by hand only if you cannot run the command. Stop the workers first; replace `fundflow`
-- with your database name. The old table is kept as warnings_before_migration until you drop it.
DROP TABLE IF EXISTS fundflow.warnings_migrating;
-- Then the CREATE TABLE statement of deploy/clickhouse/warnings.sql, with the table named
-- fundflow.warnings_migrating.
INSERT INTO fundflow.warnings_migrating (warning_id, rule_id, rule_version, kind, severity, severity_rank, score,
    subject, accounts, loan_ids, txn_ids, amount_minor, currency, first_ts_ms, event_ts_ms, detected_at_ms,
    summary, evidence, notify, inserted_ms)
SELECT warning_id, rule_id, rule_version, kind, severity, severity_rank, score, subject, accounts, loan_ids,
    txn_ids, amount_minor, currency, first_ts_ms, event_ts_ms, detected_at_ms, summary, evidence, notify,
    inserted_ms
FROM fundflow.warnings;
RENAME TABLE fundflow.warnings TO fundflow.warnings_before_migration,
             fundflow.warnings_migrating TO fundflow.warnings;
OPTIMIZE TABLE fundflow.warnings FINAL;
