"""`fundflow store`: maintenance of the warning store (today: migrating the warnings table's layout)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..clock import wall_clock_ms
from ..errors import FundflowError
from ..settings import load_settings
from ..sinks.store import StoreError
from ..sinks.factory import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store", help="maintain the warning store (migrate the warnings table)",
        description="Maintenance of the warning store named by clickhouse_url.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate", help="rebuild an older warnings table keyed by warning_id alone",
        description="Tables created by earlier releases sort by (rule_id, event_time, warning_id) and are "
                    "partitioned by month, so two copies of one warning with different event times are never "
                    "merged. This copies every row into a table keyed by warning_id alone, swaps the two, and "
                    "keeps the old table under a new name until you drop it. Stop the workers first: rows "
                    "inserted into the old table during the copy would stay there. Safe to run again.")
    migrate.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    migrate.set_defaults(func=run_migrate)


def run_migrate(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    settings = load_settings(args.settings)
    url = args.store or settings.clickhouse_url
    try:
        with open_store(url) as store:
            migration = store.migrate(wall_clock_ms())
    except StoreError as exc:
        raise FundflowError(f"cannot migrate the warnings table at {url}: {exc}") from None
    out.write(migration.detail + "\n")
    return 0
