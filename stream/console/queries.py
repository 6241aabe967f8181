"""The console's one query layer: what every page shows and what the JSON API returns, as plain dicts.

Pages render these dicts; `/api/` serialises them. Values typed by an analyst reach SQL only through
`literal` (stream.sinks.store), which escapes them. Every query runs on ClickHouse 18.16 and chDB: FINAL
and `LIMIT 1 BY` deduplicate warnings, labels come from `stream.sinks.labels`, and paging is by a key
(event time, warning id) rather than an offset, so a page deep in a million warnings costs what the first does.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import FundflowError
from ..evidence.ruletext import parse_rule_text, rule_yaml
from ..model.timefmt import format_ts
from ..model.warning import SEVERITY_RANK, EarlyWarning
from ..offline.evidence_view import money_flow
from ..sinks.schema import COLUMNS, TABLE, row_to_warning_json
from ..sinks.store import WarningStore, identifier, literal
from ..sinks import labels as label_store
from .graph import to_svg
from .views import KEYS, LIST_COLUMNS, QUEUE, ensure_views

DAY_MS = 86_400_000
MAX_LIMIT = 500
DEFAULT_COOLDOWN_MS = DAY_MS
FACETS_TTL_MS = 300_000


class NotFound(FundflowError):
    pass


class Refused(FundflowError):
    """A request the caller may not make (role) or that is malformed; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QueueFilter:
    rule_id: str | None = None
    kind: str | None = None
    severity: str | None = None
    status: str | None = None
    assignee: str | None = None
    account: str | None = None
    loan: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    rule_version: str | None = None
    before: tuple[int, str] | None = None       # the cursor: (event_ts_ms, warning_id) of the last row shown
    limit: int = 50

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITY_RANK:
            raise Refused(f"severity: expected one of {', '.join(SEVERITY_RANK)}, got {self.severity!r}")
        if self.status is not None and self.status not in label_store.STATUSES:
            raise Refused(f"status: expected one of {', '.join(label_store.STATUSES)}, got {self.status!r}")
        if not 0 < self.limit <= MAX_LIMIT:
            raise Refused(f"limit: expected 1-{MAX_LIMIT}, got {self.limit}")


def parse_cursor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    ms, _, warning_id = text.partition(":")
    if not ms.isdigit() or not warning_id:
        raise Refused(f"before: expected EVENT_MS:WARNING_ID as a page's `next` gives, got {text[:80]!r}")
    return int(ms), warning_id


@dataclass(frozen=True)
class RuleInfo:
    id: str
    version: str
    kind: str
    cooldown_ms: int
    source_file: str | None
    enabled: bool
    source_line: int = 0


@dataclass
class RuleCatalogue:
    """The rules in rules_dir as they load now, and the errors that keep some from loading."""

    rules: dict[str, RuleInfo] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    directory: str | None = None

    @classmethod
    def load(cls, rules_dir: str | None) -> "RuleCatalogue":
        if not rules_dir or not Path(rules_dir).is_dir():
            return cls(directory=rules_dir)
        from ..detection.rulebook import check_rules
        result = check_rules(rules_dir)
        rules = {}
        if result.ruleset is not None:
            for rule in result.ruleset.rules:
                rules[rule.id] = RuleInfo(rule.id, rule.version, rule.kind, rule.cooldown.ms,
                                          rule.source.file if rule.source else None, rule.enabled,
                                          rule.source.line if rule.source else 0)
        return cls(rules=rules, errors=[str(error) for error in result.errors], directory=rules_dir)


class Console:
    """The queries, over one store. Calls are serialised: chDB holds one session per process."""

    def __init__(self, store: WarningStore, *, rules_dir: str | None = None,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.store = store
        self.rules_dir = rules_dir
        self.clock = clock
        self._lock = threading.RLock()
        self._catalogue: RuleCatalogue | None = None
        self._has_rule_texts: bool | None = None
        self._facets: tuple[int, dict[str, list[str]]] | None = None
        with self._lock:
            label_store.ensure_labels_table(store)
            ensure_views(store)

    @property
    def catalogue(self) -> RuleCatalogue:
        if self._catalogue is None:
            self._catalogue = RuleCatalogue.load(self.rules_dir)
        return self._catalogue

    def _q(self, sql: str) -> list[dict[str, Any]]:
        with self._lock:
            return self.store.query(sql)

    @property
    def _table(self) -> str:
        return f"{identifier(self.store.database)}.{TABLE}"

    @property
    def _queue(self) -> str:
        return f"{identifier(self.store.database)}.{QUEUE}"

    def _keyed(self, keys: list[str]) -> str:
        """A condition: the warning touches one of these accounts or loans (an index lookup in console_keys)."""
        return (f"warning_id IN (SELECT warning_id FROM {identifier(self.store.database)}.{KEYS} "
                f"WHERE key IN ({', '.join(literal(k) for k in keys)}))")

    # -- the queue ---------------------------------------------------------------------------------------------

    def conditions(self, f: QueueFilter) -> list[str]:
        c = []
        for column, value in (("rule_id", f.rule_id), ("kind", f.kind), ("severity", f.severity),
                              ("rule_version", f.rule_version)):
            if value is not None:
                c.append(f"{column} = {literal(value)}")
        if f.account is not None:
            c.append(self._keyed([f.account]) + f" AND has(accounts, {literal(f.account)})")
        if f.loan is not None:
            c.append(self._keyed([f.loan]) + f" AND has(loan_ids, {literal(f.loan)})")
        if f.since_ms is not None:
            c.append(f"event_ts_ms >= {max(int(f.since_ms), 0)}")
        if f.until_ms is not None:
            c.append(f"event_ts_ms <= {max(int(f.until_ms), 0)}")
        if f.status is not None:
            c.append(label_store.status_condition(self.store, f.status))
        if f.assignee is not None:
            c.append(label_store.assignee_condition(self.store, f.assignee))
        if f.before is not None:
            ms, warning_id = f.before
            c.append(f"(event_ts_ms < {int(ms)} OR (event_ts_ms = {int(ms)} AND warning_id > {literal(warning_id)}))")
        return c

    def queue(self, f: QueueFilter) -> dict[str, Any]:
        """One page of warnings, newest event first, each with its triage state; grouped into cases."""
        where = self.conditions(f)
        ids = self._page_ids(" AND ".join(where), f.limit + 1)
        more = len(ids) > f.limit
        rows = self._rows(ids[:f.limit], LIST_COLUMNS)
        triage = self._triage([str(r["warning_id"]) for r in rows])
        items = [self._summary(row, triage) for row in rows]
        last = rows[-1] if rows else None
        return {"warnings": items, "cases": self.cases(items),
                "next": f"{int(last['event_ts_ms'])}:{last['warning_id']}" if more and last else None}

    def _page_ids(self, where_sql: str, limit: int) -> list[tuple[str, int]]:
        """(id, event time) of the newest `limit` warnings matching `where_sql`, newest first (ties by id).

        From the console_queue view, without FINAL, reading only the id, the time and the filtered columns. A
        warning stored twice and not merged yet appears twice here, so twice the rows are asked for and repeats
        dropped; `_rows` then reads the copy kept."""
        condition = f" WHERE {where_sql}" if where_sql else ""
        found = self._q(f"SELECT warning_id, event_ts_ms FROM {self._queue}{condition} "
                        f"ORDER BY event_ts_ms DESC, warning_id LIMIT {2 * int(limit)}")
        seen: dict[str, int] = {}
        for r in found:
            seen.setdefault(str(r["warning_id"]), int(r["event_ts_ms"]))
        return list(seen.items())[:limit]

    def _rows(self, listed: list[tuple[str, int]] | list[str], columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """The kept copy of each warning, in the order of `ids`: the copy inserted last, as ReplacingMergeTree
        (inserted_ms) keeps and FINAL shows, picked by `LIMIT 1 BY` instead of FINAL, which on ClickHouse 18.16
        does not narrow an `IN` list by the primary key (600 ms at 1M warnings rather than a few)."""
        if not listed:
            return []
        ids = [item[0] if isinstance(item, tuple) else item for item in listed]
        times = {item[1] if isinstance(item, tuple) else None for item in listed}
        wanted = tuple(dict.fromkeys((*columns, "inserted_ms")))
        source, narrow = self._table, ""
        if set(columns) <= set(LIST_COLUMNS) and None not in times:    # the queue view, narrowed by its index
            source, narrow = self._queue, f"event_ts_ms IN ({', '.join(str(t) for t in sorted(times))}) AND "
        rows = self._q(f"SELECT {', '.join(wanted)} FROM {source} "
                       f"WHERE {narrow}warning_id IN ({', '.join(literal(i) for i in ids)}) "
                       f"ORDER BY warning_id, inserted_ms DESC LIMIT 1 BY warning_id")
        by_id = {str(r["warning_id"]): r for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _triage(self, ids: list[str]) -> dict[str, label_store.Triage]:
        with self._lock:
            return label_store.current(self.store, ids)

    @staticmethod
    def _summary(row: dict[str, Any], triage: dict[str, label_store.Triage]) -> dict[str, Any]:
        data = row_to_warning_json({**row, "evidence": "{}"})
        data.pop("evidence")
        data["event_ts_ms"] = int(row["event_ts_ms"])
        data["triage"] = triage.get(str(row["warning_id"]), label_store.Triage()).to_dict()
        return data

    def cases(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Warnings of one rule about one subject whose event times lie within the rule's cooldown of the case's
        newest are one case (grouped within the page shown; the page is in event-time order)."""
        out: list[dict[str, Any]] = []
        open_cases: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            key = (item["rule_id"], item["subject"])
            rule = self.catalogue.rules.get(item["rule_id"])
            cooldown = rule.cooldown_ms if rule else DEFAULT_COOLDOWN_MS
            case = open_cases.get(key)
            if case is not None and case["newest_ms"] - item["event_ts_ms"] <= cooldown:
                case["warning_ids"].append(item["warning_id"])
                case["count"] += 1
                continue
            case = {"rule_id": item["rule_id"], "subject": item["subject"], "newest_ms": item["event_ts_ms"],
                    "count": 1, "warning_ids": [item["warning_id"]], "first": item, "cooldown_ms": cooldown}
            open_cases[key] = case
            out.append(case)
        return out

    def facets(self) -> dict[str, list[str]]:
        """The values the queue's filter menus offer: the stored rules and kinds (a scan of two columns, kept for
        FACETS_TTL_MS) with those of rules_dir."""
        now = self.clock()
        if self._facets is None or now - self._facets[0] > FACETS_TTL_MS:
            rows = self._q(f"SELECT DISTINCT rule_id, kind FROM {self._table}")
            rules = {str(r["rule_id"]) for r in rows} | set(self.catalogue.rules)
            kinds = {str(r["kind"]) for r in rows} | {r.kind for r in self.catalogue.rules.values()}
            self._facets = (now, {"rules": sorted(rules), "kinds": sorted(kinds)})
        return {**self._facets[1], "severities": list(SEVERITY_RANK), "statuses": list(label_store.STATUSES)}

    # -- one warning -------------------------------------------------------------------------------------------

    def row(self, warning_id: str) -> dict[str, Any]:
        rows = self._rows([warning_id], COLUMNS)
        if not rows:
            raise NotFound(f"no warning {warning_id[:120]!r} in the store")
        return rows[0]

    def warning(self, warning_id: str) -> dict[str, Any]:
        row = self.row(warning_id)
        data = row_to_warning_json(row)
        with self._lock:
            history = label_store.history(self.store, warning_id)
        triage = self._triage([warning_id]).get(warning_id, label_store.Triage())
        flow = []
        try:
            warning = EarlyWarning.from_dict(data)
            flow = [{"src": s.src, "dst": s.dst, "txn_id": s.txn_id, "amount": s.amount,
                     "at": format_ts(s.at) if s.at is not None else None, "at_ms": s.at, "note": s.note}
                    for s in money_flow(warning).steps]
        except ValueError:
            warning = None
        return {"warning": data, "triage": triage.to_dict(), "labels": [e.to_dict() for e in history],
                "transfers": sorted(flow, key=lambda s: (s["at_ms"] is None, s["at_ms"] or 0)),
                "related": self.related(data), "rule": self.rule_text(data["rule_id"], data["rule_version"]),
                "_object": warning}

    def graph_svg(self, detail: dict[str, Any]) -> str | None:
        warning = detail.get("_object")
        return to_svg(warning) if warning is not None else None

    def related(self, data: dict[str, Any], limit: int = 50) -> list[dict[str, Any]]:
        accounts, loans = list(data["accounts"]), list(data["loan_ids"])
        if not accounts and not loans:
            return []
        ids = self._page_ids(f"{self._keyed(accounts[:200] + loans[:200])} "
                             f"AND warning_id != {literal(data['warning_id'])}", limit)
        rows = self._rows(ids, LIST_COLUMNS)
        triage = self._triage([str(r["warning_id"]) for r in rows])
        return [self._summary(row, triage) for row in rows]

    def rule_text(self, rule_id: str, version: str) -> dict[str, Any]:
        """The rule's YAML at the version that fired: from the store's rule_texts table when the worker keeps one,
        else from rules_dir when the rule there is still at that version."""
        if self._has_rule_texts is None:
            found = self._q(f"SELECT count() AS n FROM system.tables WHERE database = {literal(self.store.database)} "
                            f"AND name = 'rule_texts'")
            self._has_rule_texts = bool(found and int(found[0]["n"]))
        if self._has_rule_texts:
            rows = self._q(f"SELECT text FROM {identifier(self.store.database)}.rule_texts FINAL "
                           f"WHERE rule_id = {literal(rule_id)} AND rule_version = {literal(version)} "
                           f"ORDER BY inserted_ms DESC LIMIT 1")
            if rows:
                return {"text": stored_rule_yaml(str(rows[0]["text"])), "current": None,
                        "source": "the store (rule_texts): the rule as the worker ran it, overrides applied"}
        rule = self.catalogue.rules.get(rule_id)
        if rule is None:
            return {"text": None, "source": None, "current": None,
                    "note": f"rule {rule_id} is not in rules_dir and the store keeps no text of it"}
        if rule.version != version or not rule.source_file:
            return {"text": None, "source": None, "current": rule.version,
                    "note": f"rules_dir holds version {rule.version} of {rule_id}, not {version}, and the store "
                            f"keeps no text of {version}"}
        try:
            text = Path(rule.source_file).read_text(encoding="utf-8")
        except OSError as exc:
            return {"text": None, "source": None, "current": rule.version, "note": f"cannot read it: {exc}"}
        return {"text": rule_block(text, rule.source_line), "source": f"{rule.source_file}:{rule.source_line}",
                "current": rule.version}

    # -- an account --------------------------------------------------------------------------------------------

    def account(self, account: str, limit: int = 100) -> dict[str, Any]:
        rows = self._rows(self._page_ids(self._keyed([account]) + f" AND has(accounts, {literal(account)})", limit),
                          COLUMNS)
        triage = self._triage([str(r["warning_id"]) for r in rows])
        flows = []
        seen = set()
        for row in rows:
            data = row_to_warning_json(row)
            try:
                steps = money_flow(EarlyWarning.from_dict(data)).steps
            except ValueError:
                continue
            for s in steps:
                if account in (s.src, s.dst) and (s.src, s.dst, s.txn_id) not in seen:
                    seen.add((s.src, s.dst, s.txn_id))
                    flows.append({"src": s.src, "dst": s.dst, "txn_id": s.txn_id, "amount": s.amount,
                                  "at": format_ts(s.at) if s.at is not None else None, "at_ms": s.at,
                                  "warning_id": data["warning_id"],
                                  "direction": "out" if s.src == account else "in"})
        flows.sort(key=lambda s: -(s["at_ms"] or int(0)))
        return {"account": account, "warnings": [self._summary(r, triage) for r in rows], "flows": flows}

    # -- labels ------------------------------------------------------------------------------------------------

    def label(self, warning_id: str, *, actor: str, role: str, status: str | None = None,
              assignee: str | None = None, note: str | None = None) -> label_store.LabelEvent:
        """Append one label event, after checking what the role may do. Analysts label (and take an unassigned
        warning); supervisors also reassign and reopen. The warning row is never touched."""
        self.row(warning_id)                                      # NotFound for an unknown id
        if status is not None and status not in label_store.STATUSES:
            raise Refused(f"status: expected one of {', '.join(label_store.STATUSES)}, got {status[:40]!r}")
        note = (note or "").strip()
        if len(note) > label_store.NOTE_MAX:
            raise Refused(f"note: at most {label_store.NOTE_MAX} characters, got {len(note)}")
        if assignee is not None:
            assignee = assignee.strip()
            if len(assignee) > label_store.ASSIGNEE_MAX:
                raise Refused(f"assignee: at most {label_store.ASSIGNEE_MAX} characters")
        with self._lock:
            now = self._triage([warning_id]).get(warning_id, label_store.Triage())
            new_status = status if status is not None else now.status
            new_assignee = assignee if assignee is not None else now.assignee
            if new_status == now.status and new_assignee == now.assignee and not note:
                raise Refused("nothing to record: the status and assignee are unchanged and there is no note")
            if role != "supervisor":
                if now.status in label_store.CLOSED and new_status not in label_store.CLOSED:
                    raise Refused(f"only a supervisor reopens a warning that is {now.status}", status=403)
                if new_assignee != now.assignee and not (now.assignee in ("", actor) and new_assignee in ("", actor)):
                    raise Refused("only a supervisor reassigns a warning; an analyst may take an unassigned one "
                                  "or give one back", status=403)
            event = label_store.LabelEvent(
                label_id=label_store.new_label_id(), warning_id=warning_id,
                at_ms=max(self.clock(), (now.labelled_at_ms or 0) + 1), actor=actor, role=role,
                status_from=now.status, status_to=new_status, assignee_from=now.assignee,
                assignee_to=new_assignee, note=note)
            label_store.append(self.store, event)
        return event

    # -- rules -------------------------------------------------------------------------------------------------

    def rules(self, quiet_days: int = 7) -> dict[str, Any]:
        return rule_figures(self, quiet_days)


def rule_figures(console: Console, quiet_days: int = 7) -> dict[str, Any]:
    """Per rule and version: warnings, warnings per day, share labelled, precision from labels, median time to
    triage; the rules of rules_dir with no warning in the last `quiet_days` days of event time (counted back from
    the newest warning in the store); and the rules that do not load."""
    store = console.store
    table = console._table
    counts = console._q(f"SELECT rule_id, rule_version, count() AS n, min(event_ts_ms) AS first_ms, "
                        f"max(event_ts_ms) AS last_ms FROM {table} FINAL GROUP BY rule_id, rule_version "
                        f"ORDER BY rule_id, rule_version")
    marks = {str(r["warning_id"]): r for r in console._q(
        f"SELECT warning_id, argMax(status_to, at_ms) AS status, minIf(at_ms, status_to != 'open') AS first_ms "
        f"FROM {label_store.table(store)} GROUP BY warning_id")}
    labelled = []
    if marks:
        for row in console._q(f"SELECT warning_id, rule_id, rule_version, detected_at_ms FROM {console._queue} "
                              f"WHERE warning_id IN (SELECT warning_id FROM {label_store.table(store)}) "
                              f"LIMIT 1 BY warning_id"):
            mark = marks.get(str(row["warning_id"]))
            if mark is not None:
                labelled.append({**row, "status": str(mark["status"]), "first_ms": int(mark["first_ms"])})
    by_rule: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in labelled:
        by_rule.setdefault((str(row["rule_id"]), str(row["rule_version"])), []).append(row)
    newest = max((int(r["last_ms"]) for r in counts), default=None)
    out = []
    for row in counts:
        key = (str(row["rule_id"]), str(row["rule_version"]))
        n = int(row["n"])
        days = max(1.0, (int(row["last_ms"]) - int(row["first_ms"])) / DAY_MS)
        these = [r for r in by_rule.get(key, []) if str(r["status"]) != "open"]
        confirmed = sum(1 for r in these if r["status"] == "confirmed")
        false_pos = sum(1 for r in these if r["status"] == "false_positive")
        delays = [(int(r["first_ms"]) - int(r["detected_at_ms"])) / 1000 for r in these]
        out.append({"rule_id": key[0], "rule_version": key[1], "warnings": n,
                    "warnings_per_day": round(n / days, 2), "labelled": len(these),
                    "share_labelled": round(len(these) / n, 4) if n else None,
                    "confirmed": confirmed, "false_positive": false_pos,
                    "precision": round(confirmed / (confirmed + false_pos), 4) if confirmed + false_pos else None,
                    "median_time_to_triage_s": round(statistics.median(delays), 1) if delays else None,
                    "last_event_ts": format_ts(int(row["last_ms"]))})
    quiet = []
    if newest is not None:
        recent = {str(r["rule_id"]) for r in counts if int(r["last_ms"]) >= newest - quiet_days * DAY_MS}
    else:
        recent = set()
    for rule in console.catalogue.rules.values():
        if rule.id not in recent:
            quiet.append({"rule_id": rule.id, "rule_version": rule.version, "enabled": rule.enabled})
    return {"rules": out, "quiet_days": quiet_days, "quiet": quiet, "errors": console.catalogue.errors,
            "rules_dir": console.catalogue.directory}


def rule_block(text: str, line: int) -> str:
    """The YAML of the one rule starting at `line` (1-based) of a file of several: that line and every following
    line indented deeper (or blank); the whole file when the line is unknown."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return text
    first = lines[line - 1]
    indent = len(first) - len(first.lstrip())
    block = [first]
    for following in lines[line:]:
        if following.strip() and len(following) - len(following.lstrip()) <= indent:
            break
        block.append(following)
    return "\n".join(block).rstrip() + "\n"


def with_limit(f: QueueFilter, limit: int) -> QueueFilter:
    return replace(f, limit=limit)


def elapsed(seconds: float) -> str:
    from ..detection.kinds._common import format_elapsed
    return ("-" if seconds < 0 else "") + format_elapsed(int(abs(seconds) * 1000))


def render_rule_figures(figures: dict[str, Any]) -> str:
    """The rules page as a terminal table (`fundflow evaluate --labels`)."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    header = ("rule", "version", "warnings", "per day", "labelled", "confirmed", "false pos", "precision",
              "median triage")
    lines = [header]
    for r in figures["rules"]:
        triage = "-" if r["median_time_to_triage_s"] is None else elapsed(r["median_time_to_triage_s"])
        lines.append((r["rule_id"], r["rule_version"], str(r["warnings"]), f"{r['warnings_per_day']:.2f}",
                      pct(r["share_labelled"]), str(r["confirmed"]), str(r["false_positive"]), pct(r["precision"]),
                      triage))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
           for line in lines]
    quiet = ", ".join(q["rule_id"] for q in figures["quiet"]) or "none"
    out.append(f"no warning in the last {figures['quiet_days']} days of event time: {quiet}")
    out.append(f"rules that do not load: {len(figures['errors'])}")
    out += [f"  {error}" for error in figures["errors"]]
    return "\n".join(out)


def stored_rule_yaml(text: str) -> str:
    """The YAML of a rule the evidence chain stored as canonical text (what its version hashes); a text that is
    not one is shown as it is."""
    try:
        rule = parse_rule_text(text)
    except ValueError:
        return text
    rebuilt = rule_yaml(rule, desc="as the worker ran it (the evidence chain's canonical text of this version)")
    return rebuilt[len("rules:\n"):] if rebuilt.startswith("rules:\n") else rebuilt
