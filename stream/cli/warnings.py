"""`fundflow warnings`: read stored warnings (deduplicated, newest first) from the warning store."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, TextIO

import orjson

from ..errors import FundflowError
from ..model.money import format_minor
from ..settings import SEVERITIES, load_settings
from ..sinks.schema import row_to_warning_json
from ..sinks.factory import open_store
from ..sinks.store import StoreError, WarningFilter, WarningStore
from ..model.timefmt import format_ts, parse_duration_ms, parse_rfc3339_ms

SUMMARY_WIDTH = 60


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "warnings", help="list stored warnings (newest first, deduplicated)",
        usage="fundflow warnings [--rule RULE_ID] [--account ACCOUNT] [--severity LEVEL] [--since AGO|TS] "
              "[--limit N] [--json] [--store URL]\n       fundflow warnings show ID [--json | --dot] [--store URL]",
        description="Read warnings from the store named by clickhouse_url (clickhouse://HOST:PORT/DB or "
                    "chdb:///PATH), one row per warning id, newest event first; `show ID` prints one of them "
                    "in full.")
    parser.add_argument("--rule", metavar="RULE_ID", help="only this rule")
    parser.add_argument("--account", metavar="ACCOUNT", help="only warnings whose evidence touches this account")
    parser.add_argument("--severity", metavar="LEVEL", choices=SEVERITIES, help="this severity or higher")
    parser.add_argument("--since", metavar="AGO|TS",
                        help="event time at or after: a duration back from the newest warning's event time in the "
                             "store (2h, 1d: ledgers are dated by their events, not by the wall clock), an RFC "
                             "3339 time or epoch milliseconds")
    parser.add_argument("--limit", metavar="N", type=int, default=50, help="at most N warnings (default 50)")
    parser.add_argument("--json", action="store_true",
                        help="one warning JSON object per line (docs/architecture.md §5 shape)")
    parser.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    parser.set_defaults(func=run)
    # `show` is a sub-command of the list: with no sub-command the options above list warnings as before.
    # Its options default to SUPPRESS, so values given before `show` (--store URL show ID) are not reset.
    actions = parser.add_subparsers(dest="warnings_action", title="one warning", metavar="show ID")
    show = actions.add_parser(
        "show", help="one warning in full, with the path of its money",
        description="Print one stored warning with every field, then its evidence drawn as the path of the "
                    "money (loan, accounts, exit) with each transfer's id, amount and time where the warning "
                    "records them. --json prints the stored warning as JSON, --dot its evidence as a Graphviz "
                    "digraph (fundflow warnings show ID --dot | dot -Tsvg > warning.svg).")
    show.add_argument("warning_id", metavar="ID", help="a warning id, as the list and the pages show it (w-...)")
    shape = show.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="the stored warning as one JSON object (docs/architecture.md §5 shape)")
    shape.add_argument("--dot", action="store_true", default=argparse.SUPPRESS,
                       help="the evidence as a Graphviz DOT digraph")
    show.add_argument("--store", metavar="URL", default=argparse.SUPPRESS,
                      help="override clickhouse_url from the settings")
    show.set_defaults(func=run_show)


def parse_since(text: str, newest_ms: Callable[[], int | None]) -> int:
    """'2h' -> the newest event time in the store minus 2h; '2026-03-02T10:00:00Z' or epoch ms -> that instant.
    `newest_ms` is only asked for a relative time."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        ago = parse_duration_ms(value)
    except ValueError:
        ago = None
    if ago is not None:
        newest = newest_ms()
        return (newest if newest is not None else 0) - ago
    try:
        return parse_rfc3339_ms(value)
    except ValueError:
        raise FundflowError(f"--since: expected a duration like 2h or 1d, an RFC 3339 time like "
                            f"2026-03-02T10:00:00Z, or epoch milliseconds, got {text!r}") from None


def _check_rule_id(rule_id: str, stored: list[str]) -> None:
    """An unknown --rule is most often a typo: say so, with the nearest stored rule id, instead of an empty list."""
    if rule_id in stored:
        return
    import difflib
    close = difflib.get_close_matches(rule_id, stored, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(stored) if stored else "none yet"
    raise FundflowError(f"--rule: no warning of rule {rule_id!r} in the store{hint} (rules with warnings: {known})")


def run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    settings = load_settings(args.settings)
    url = args.store or settings.clickhouse_url
    if args.limit <= 0:
        raise FundflowError(f"--limit: expected a positive number, got {args.limit}")
    store = open_store(url, create=False)
    try:
        since = parse_since(args.since, store.newest_event_ms) if args.since else None
        where = WarningFilter(rule_id=args.rule, account=args.account, min_severity=args.severity,
                              since_ms=since, limit=args.limit)
        rows = store.select_warnings(where)
        if not rows and args.rule is not None:
            _check_rule_id(args.rule, store.rule_ids())
    except StoreError as exc:
        raise FundflowError(f"cannot read warnings: {exc}{_hint(exc)}") from None
    finally:
        store.close()
    if args.json:
        for row in rows:
            out.write(orjson.dumps(row_to_warning_json(row), option=orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        write_table(rows, out)
    return 0


LIST_ONLY = ("rule", "account", "severity", "since")


def _hint(exc: StoreError) -> str:
    """A store that answers but has no warnings table is one no worker has written to yet."""
    text = str(exc)
    return " (has a worker written to this store yet?)" if "UNKNOWN_TABLE" in text or "doesn't exist" in text \
        else ""


def run_show(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..model.warning import EarlyWarning
    from ..offline.evidence_view import to_dot
    from ..offline.warning_view import render_warning

    out = out or sys.stdout
    given = [f"--{name}" for name in LIST_ONLY if getattr(args, name, None) is not None]
    if given:
        raise FundflowError(f"{', '.join(given)} {'filters' if len(given) == 1 else 'filter'} the list; "
                            f"`fundflow warnings show ID` takes only --json, --dot and --store")
    wanted = args.warning_id.strip()
    if not wanted:
        raise FundflowError("show: expected a warning id like w-3c0e9a..., got an empty one")
    settings = load_settings(args.settings)
    url = getattr(args, "store", None) or settings.clickhouse_url
    store = open_store(url, create=False)
    try:
        row = store.warning_by_id(wanted)
        if row is None:
            raise FundflowError(_unknown_id(wanted, store, url))
    except StoreError as exc:
        raise FundflowError(f"cannot read warnings: {exc}{_hint(exc)}") from None
    finally:
        store.close()
    stored = row_to_warning_json(row)
    if getattr(args, "json", False):
        out.write(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS).decode() + "\n")
        return 0
    try:
        warning = EarlyWarning.from_dict(stored)
    except ValueError as exc:
        raise FundflowError(f"warning {wanted} in {url} is damaged ({exc}); --json prints it as stored") from None
    out.write(to_dot(warning) if getattr(args, "dot", False) else render_warning(warning) + "\n")
    return 0


def _unknown_id(wanted: str, store: WarningStore, url: str) -> str:
    """No such warning: most often part of an id was copied, or the id was typed without its `w-`."""
    from ..offline.evidence_view import printable

    prefixes = [wanted] + ([f"w-{wanted}"] if not wanted.startswith("w-") else [])
    close: list[str] = []
    for prefix in prefixes:
        close = store.warning_ids_starting(prefix, limit=4)
        if close:
            break
    message = f"no warning {printable(wanted)} in {url}"
    if not close:
        return message + "; `fundflow warnings` lists the stored ones with their ids (--json)"
    more = " (or more: give more of the id)" if len(close) > 3 else ""
    return message + "; did you mean " + " or ".join(close[:3]) + f"?{more}"


def write_table(rows: list[dict], out: TextIO) -> None:
    header = ("EVENT TIME", "SEVERITY", "RULE", "SUBJECT", "AMOUNT", "ACCOUNTS", "SUMMARY")
    lines = [header]
    for row in rows:
        accounts = list(row["accounts"])
        shown = ",".join(accounts[:3]) + (f",+{len(accounts) - 3}" if len(accounts) > 3 else "")
        summary = row["summary"] if len(row["summary"]) <= SUMMARY_WIDTH else row["summary"][:SUMMARY_WIDTH - 1] + "…"
        lines.append((format_ts(int(row["event_ts_ms"])), row["severity"], row["rule_id"], row["subject"],
                      f"{format_minor(int(row['amount_minor']))} {row['currency']}", shown, summary))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1] + "\n")
    out.write(f"{len(rows)} warning{'s' if len(rows) != 1 else ''}\n")
