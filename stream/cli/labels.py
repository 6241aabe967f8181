"""`fundflow labels export|import`: the console's triage label events as CSV or JSON lines."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import FundflowError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "labels", help="export or import the triage label events of the warning store (CSV or JSON lines)",
        description="The append-only label events the console records (who, when, status and assignee before "
                    "and after, the note), out of or into the store named by clickhouse_url.")
    actions = parser.add_subparsers(dest="labels_action", metavar="export|import")
    export = actions.add_parser("export", help="every label event, in time order per warning",
                                description="Write every label event of the store as CSV (with a header) or JSON "
                                            "lines.")
    export.add_argument("--format", choices=("csv", "jsonl"), default="jsonl", help="csv or jsonl (default)")
    export.add_argument("--out", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    export.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    export.set_defaults(func=run_export)
    imp = actions.add_parser("import", help="append label events from a file; events already stored are skipped",
                             description="Append the label events of FILE (CSV with the export's header, or JSON "
                                         "lines). Every event must name a stored warning and a known status; one "
                                         "bad event imports nothing. An event whose label_id is stored already is "
                                         "skipped, so importing twice adds nothing; missing label_id, at_ms, "
                                         "actor and role are filled in (a new id, now, `import`).")
    imp.add_argument("file", metavar="FILE", type=Path, help="the events (.csv or .jsonl)")
    imp.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file's suffix")
    imp.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    imp.set_defaults(func=run_import)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _store(args: argparse.Namespace):
    from ..settings import load_settings
    from ..sinks.factory import open_store

    return open_store(args.store or load_settings(args.settings).clickhouse_url, create=False)


def run_export(args: argparse.Namespace) -> int:
    from ..console import labels_io
    from ..sinks import labels
    from ..sinks.store import StoreError

    try:
        with _store(args) as store:
            labels.ensure_labels_table(store)
            if args.out:
                with open(args.out, "w", encoding="utf-8", newline="") as out:
                    count = labels_io.export(store, out, args.format)
            else:
                count = labels_io.export(store, sys.stdout, args.format)
    except StoreError as exc:
        raise FundflowError(f"cannot read the labels: {exc}") from None
    print(f"fundflow labels: exported {count} label events", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..console import labels_io
    from ..sinks.store import StoreError

    fmt = args.format or ("csv" if args.file.suffix.lower() == ".csv" else "jsonl")
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FundflowError(f"cannot read {args.file}: {exc.strerror}") from None
    rows = labels_io.read(text, fmt, source=str(args.file))
    try:
        with _store(args) as store:
            result = labels_io.import_rows(store, rows, source=str(args.file),
                                           clock=lambda: time.time_ns() // 1_000_000)
    except StoreError as exc:
        raise FundflowError(f"cannot store the labels: {exc}") from None
    print(f"fundflow labels: imported {result.added} label events, skipped {result.skipped} already stored")
    return 0
