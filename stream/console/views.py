"""Two materialized views the console keeps beside the warnings table, so the queue and the warning page read a
few granules instead of the whole table.

The warnings table is sorted by warning_id (what deduplication needs), so the newest warnings lie scattered over
every granule of it, and so do the warnings of one account. `console_queue` holds the list columns sorted by
(event time, id) with small granules: a page of the queue is a few contiguous granules. `console_keys` holds one
row per (account or loan, warning), sorted by that key: the warnings of an account or a loan are an index
lookup. ClickHouse fills both on every insert into the warnings table, whoever inserts; they are created (and
filled from what is stored, POPULATE) the first time a console opens the store. Both are ReplacingMergeTree by
inserted_ms like the table, and read with `LIMIT 1 BY warning_id`. The SQL runs on ClickHouse 18.16 and chDB.

A warning inserted while the views are being populated may be missing from them (ClickHouse's POPULATE caveat);
`drop_views` and a console restart rebuild them, as after `fundflow store migrate`.
"""

from __future__ import annotations

from ..sinks.schema import COLUMNS, TABLE
from ..sinks.store import WarningStore, identifier

QUEUE = "console_queue"
KEYS = "console_keys"
LIST_COLUMNS = tuple(c for c in COLUMNS if c != "evidence")


def ensure_views(store: WarningStore) -> None:
    db = identifier(store.database)
    store.execute(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{QUEUE} "
                  f"ENGINE = ReplacingMergeTree(inserted_ms) ORDER BY (event_ts_ms, warning_id) "
                  f"SETTINGS index_granularity = 1024 "
                  f"POPULATE AS SELECT {', '.join(LIST_COLUMNS)} FROM {db}.{TABLE}")
    store.execute(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{KEYS} "
                  f"ENGINE = ReplacingMergeTree(inserted_ms) ORDER BY (key, event_ts_ms, warning_id) "
                  f"SETTINGS index_granularity = 1024 "
                  f"POPULATE AS SELECT key, event_ts_ms, warning_id, inserted_ms FROM {db}.{TABLE} "
                  f"ARRAY JOIN arrayConcat(accounts, loan_ids) AS key")


def drop_views(store: WarningStore) -> None:
    db = identifier(store.database)
    for view in (QUEUE, KEYS):
        store.execute(f"DROP TABLE IF EXISTS {db}.{view}")
