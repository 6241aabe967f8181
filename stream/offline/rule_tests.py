"""Rule tests (`*.test.yaml`), in the spirit of `promtool test rules`: given these events, expect these warnings
and not those. They run the real Detector, so a passing test means production would warn the same way.

```yaml
rule_files: [cashout.yaml]          # relative to this file; default: every rule file of this directory
start: 2026-03-02T10:00:00Z         # what relative times ("+5m") count from; per test too
tests:
  - name: loan cashed out through a mule
    window: 72h                     # optional detector settings
    lateness: 5m
    events:
      - {type: disbursement, event_id: d1, ts: +0m, loan_id: L1, account: U1, amount: "5000.00"}
      - {type: transfer, event_id: t1, ts: +10m, src: U1, dst: card:1, amount: "4900.00", channel: withdrawal}
    expect:
      - {rule: rapid-cashout, subject: L1}
    expect_none: [layering-chain]
```
`enable: [rule-id]` runs rules of the pack that ship disabled; `indicators:` (per file, or per test in place of the
file's) is the local indicator set the detector is handed, as if imported from the members' feeds:
`{type: card, value: "6222...", source: lender-a, reason: rapid_cashout, expires: +30d}` (source, reason and
expires optional; the values are hashed under a test consortium key).
For every rule named in `expect`, its warnings must match the expected entries one to one (the fields given
must be equal; `accounts`, `loan_ids`, `txn_ids` compare as sets). Rules in `expect_none` must stay silent.
`expect: []` means no rule at all may warn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import EventError, FundflowError, RuleSetError
from ..model import defaults
from ..model.events import Event, parse_event
from ..model.timefmt import format_ts, parse_duration_ms, parse_rfc3339_ms
from ..model.warning import EarlyWarning
from ..rules.loader import TEST_SUFFIXES
from ..detection.rulebook import load_rules
from ..rules.model import RuleSet
from ..rules.yamlsource import YamlSyntaxError, YList, YMap, load_yaml_file

FILE_KEYS = ("rule_files", "overrides", "enable", "start", "window", "lateness", "indicators", "tests")
TEST_KEYS = ("name", "start", "window", "lateness", "indicators", "events", "expect", "expect_none")
INDICATOR_KEYS = ("type", "value", "source", "reason", "first_seen", "last_seen", "expires")
# The consortium key rule tests hash their indicators under (a test needs no real key).
TEST_KEY_ID = "rule-test"
EXPECT_KEYS = ("rule", "subject", "kind", "severity", "accounts", "loan_ids", "txn_ids", "amount", "currency")
SET_FIELDS = ("accounts", "loan_ids", "txn_ids")
DEFAULT_START = "2026-01-01T00:00:00Z"
DEFAULT_WINDOW = defaults.WINDOW
DEFAULT_LATENESS = defaults.ALLOWED_LATENESS


class RuleTestError(FundflowError):
    """The test file itself is wrong (not the rules under test)."""

    def __init__(self, message: str, file: str, line: int | None) -> None:
        self.file, self.line = file, line
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Expected:
    fields: dict[str, Any]
    line: int

    def matches(self, warning: dict[str, Any]) -> bool:
        for key, want in self.fields.items():
            got = warning.get(key)
            if key in SET_FIELDS:
                if sorted(map(str, want)) != sorted(map(str, got or [])):
                    return False
            elif str(want) != str(got):
                return False
        return True

    def render(self) -> str:
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in self.fields.items()) + "}"


@dataclass(frozen=True)
class TestCase:
    name: str
    line: int
    events: tuple[Event, ...]
    expect: tuple[Expected, ...] | None
    expect_none: tuple[str, ...]
    window_ms: int
    lateness_ms: int
    indicators: Any = None          # the IndicatorSet the detector is handed (None: none)


@dataclass(frozen=True)
class BrokenTest:
    """A test the file describes wrongly (an event the parser refuses, an unknown rule): it fails with `error`,
    and the file's other tests still run."""

    name: str
    line: int
    error: str


@dataclass
class TestResult:
    name: str
    line: int
    ok: bool
    missing: list[Expected] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def render(self) -> str:
        if self.ok:
            return f"  OK      {self.name}"
        lines = [f"  FAILED  {self.name}  (line {self.line})"]
        if self.error:
            lines.append(f"      error: {self.error}")
        for item in self.missing:
            lines.append(f"      missing:    {item.render()}  (expected at line {item.line})")
        for warning in self.unexpected:
            lines.append(f"      unexpected: {_brief(warning)}")
        if self.missing or self.unexpected:
            lines.append("      got:" + ("" if self.got else " no warnings"))
            lines += [f"        - {_brief(w)}" for w in self.got]
        return "\n".join(lines)


@dataclass
class FileReport:
    file: str
    results: list[TestResult] = field(default_factory=list)
    error: str | None = None
    ruleset_version: str | None = None     # of the rules the tests ran against (None: they did not load)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok) + (1 if self.error else 0)

    def render(self) -> str:
        lines = [self.file + (f"  (rule set version {self.ruleset_version})" if self.ruleset_version else "")]
        if self.error:
            lines.append(f"  FAILED  {self.error}")
        lines += [r.render() for r in self.results]
        return "\n".join(lines)


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEST_SUFFIXES))
        else:
            files.append(path)
    return files


def run_test_file(path: str | Path, *, name_filter: str | None = None) -> FileReport:
    """Load the rules and every test of one file, run them; problems with the file are a failure, not a crash."""
    path = Path(path)
    report = FileReport(str(path))
    try:
        ruleset, settings, cases = load_test_file(path)
    except RuleTestError as exc:
        report.error = str(exc)
        return report
    except RuleSetError as exc:
        report.error = "the rules under test do not load:\n" + "\n".join(f"    {e.located()}" for e in exc.errors)
        return report
    report.ruleset_version = ruleset.version
    for case in cases:
        if name_filter and name_filter not in case.name:
            continue
        if isinstance(case, BrokenTest):
            report.results.append(TestResult(case.name, case.line, False, error=case.error))
        else:
            report.results.append(run_case(ruleset, case))
    return report


def run_case(ruleset: RuleSet, case: TestCase) -> TestResult:
    from ..detection.detector import Detector

    detector = Detector(ruleset, window_ms=case.window_ms, lateness_ms=case.lateness_ms, indicators=case.indicators)
    warnings: list[EarlyWarning] = []
    try:
        for event in case.events:
            try:
                warnings += detector.process(event)
            except EventError:       # older than the window: refused, as the worker refuses it
                continue
    except Exception as exc:   # a detector crash is a failed test with its reason, and the other tests still run
        return TestResult(case.name, case.line, False, error=f"detector raised {type(exc).__name__}: {exc}")
    got = [warning.to_dict() for warning in warnings]
    missing, unexpected = compare(case, got)
    return TestResult(case.name, case.line, not missing and not unexpected, missing, unexpected, got)


def compare(case: TestCase, got: list[dict[str, Any]]) -> tuple[list[Expected], list[dict[str, Any]]]:
    if case.expect is not None and not case.expect:
        return [], list(got)                          # `expect: []`: nothing may warn
    missing: list[Expected] = []
    unexpected: list[dict[str, Any]] = []
    expected_rules = {e.fields["rule"] for e in case.expect or ()}
    for rule_id in sorted(expected_rules):
        pool = [w for w in got if w["rule_id"] == rule_id]
        for expected in (e for e in case.expect or () if e.fields["rule"] == rule_id):
            match = next((w for w in pool if expected.matches(_comparable(w))), None)
            if match is None:
                missing.append(expected)
            else:
                pool.remove(match)
        unexpected += pool
    unexpected += [w for w in got if w["rule_id"] in case.expect_none and w["rule_id"] not in expected_rules]
    return missing, unexpected


def _comparable(warning: dict[str, Any]) -> dict[str, Any]:
    return {**warning, "rule": warning["rule_id"]}


# -- reading a test file ---------------------------------------------------------------------------------------

def load_test_file(path: Path) -> tuple[RuleSet, dict[str, Any], list["TestCase | BrokenTest"]]:
    file = str(path)
    try:
        doc = load_yaml_file(path)
    except YamlSyntaxError as exc:
        raise RuleTestError(str(exc), file, exc.line) from None
    except OSError as exc:
        raise RuleTestError(f"cannot read: {exc}", file, None) from None
    if not isinstance(doc, YMap):
        raise RuleTestError("expected a mapping with `tests:` (and optionally rule_files, start, window)", file, 1)
    _check_keys(doc, FILE_KEYS, file, "key")
    base = path.parent
    rule_paths = _relative_paths(doc, "rule_files", base, file)
    if rule_paths is None:
        rule_paths = [base]
    overrides = _relative_paths(doc, "overrides", base, file) or []
    defaults = {
        "start": _start(doc.get("start", DEFAULT_START), file, doc.value_line("start")),
        "window": _duration(doc.get("window", DEFAULT_WINDOW), file, doc.value_line("window"), "window"),
        "lateness": _duration(doc.get("lateness", DEFAULT_LATENESS), file, doc.value_line("lateness"), "lateness"),
    }
    ruleset = load_rules(rule_paths, overrides, window_ms=defaults["window"])
    ruleset = _enabled(ruleset, doc, file)
    defaults["indicators"] = (_indicators(doc["indicators"], file, doc.value_line("indicators"), defaults["start"])
                              if "indicators" in doc else None)
    tests = doc.get("tests")
    if not isinstance(tests, YList) or not tests:
        raise RuleTestError("`tests` must be a non-empty list of tests", file, doc.value_line("tests"))
    known_rules = {rule.id for rule in ruleset.rules}
    cases: list[TestCase | BrokenTest] = []
    for i, entry in enumerate(tests):
        try:
            cases.append(_test_case(entry, tests.item_line(i), file, defaults, known_rules))
        except RuleTestError as exc:   # this test is wrong: reported as a failure, the other tests still run
            name = entry.get("name") if isinstance(entry, YMap) else None
            cases.append(BrokenTest(name if isinstance(name, str) and name.strip() else
                                    f"test at line {tests.item_line(i)}", tests.item_line(i), str(exc)))
    names = [case.name for case in cases]
    for case in cases:
        if names.count(case.name) > 1:
            raise RuleTestError(f"test name {case.name!r} is used twice", file, case.line)
    return ruleset, defaults, cases


def _test_case(entry: Any, line: int, file: str, defaults: dict[str, Any], known_rules: set[str]) -> TestCase:
    if not isinstance(entry, YMap):
        raise RuleTestError("a test must be a mapping with name, events and expect", file, line)
    _check_keys(entry, TEST_KEYS, file, "test key")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleTestError("every test needs a `name`", file, line)
    start = _start(entry["start"], file, entry.value_line("start")) if "start" in entry else defaults["start"]
    window = (_duration(entry["window"], file, entry.value_line("window"), "window") if "window" in entry
              else defaults["window"])
    lateness = (_duration(entry["lateness"], file, entry.value_line("lateness"), "lateness") if "lateness" in entry
                else defaults["lateness"])
    indicators = (_indicators(entry["indicators"], file, entry.value_line("indicators"), start)
                  if "indicators" in entry else defaults["indicators"])
    raw_events = entry.get("events")
    if not isinstance(raw_events, YList) or not raw_events:
        raise RuleTestError(f"test {name!r}: `events` must be a non-empty list of events", file,
                            entry.value_line("events") if "events" in entry else line)
    events_list: list[Event] = []
    refused: list[RuleTestError] = []
    for index, raw in enumerate(raw_events):            # every refused event is reported, not just the first
        try:
            events_list.append(_event(raw, start, index, file, raw_events.item_line(index), name))
        except RuleTestError as exc:
            refused.append(exc)
    if refused:
        if len(refused) == 1:
            raise refused[0]
        raise RuleTestError(f"test {name!r}: {len(refused)} events refused:\n" +
                            "\n".join(f"        {exc}" for exc in refused), file, line)
    events = tuple(events_list)
    if "expect" not in entry and "expect_none" not in entry:
        raise RuleTestError(f"test {name!r} must say what it expects: `expect` (a list, [] for no warnings at all) "
                            f"and/or `expect_none` (rule ids that must stay silent)", file, line)
    expect = None
    if "expect" in entry:
        raw_expect = entry["expect"]
        if not isinstance(raw_expect, YList):
            raise RuleTestError(f"test {name!r}: `expect` must be a list of {{rule: ID, ...}}", file,
                                entry.value_line("expect"))
        expect = tuple(_expected(item, file, raw_expect.item_line(i), name, known_rules)
                       for i, item in enumerate(raw_expect))
    expect_none: tuple[str, ...] = ()
    if "expect_none" in entry:
        raw_none = entry["expect_none"]
        if not isinstance(raw_none, YList) or not all(isinstance(r, str) for r in raw_none):
            raise RuleTestError(f"test {name!r}: `expect_none` must be a list of rule ids", file,
                                entry.value_line("expect_none"))
        for index, rule_id in enumerate(raw_none):
            if rule_id not in known_rules:
                raise RuleTestError(f"test {name!r}: expect_none names unknown rule {rule_id!r}", file,
                                    raw_none.item_line(index))
        expect_none = tuple(raw_none)
    return TestCase(name.strip(), line, events, expect, expect_none, window, lateness, indicators)


def _enabled(ruleset: RuleSet, doc: YMap, file: str) -> RuleSet:
    """`enable: [rule-id]`: rules that ship disabled run in this file's tests (their versions do not change)."""
    if doc.get("enable") is None:
        return ruleset
    names = doc["enable"]
    if not isinstance(names, YList) or not all(isinstance(n, str) for n in names):
        raise RuleTestError("enable must be a list of rule ids", file, doc.value_line("enable"))
    known = {rule.id for rule in ruleset.rules}
    for index, rule_id in enumerate(names):
        if rule_id not in known:
            raise RuleTestError(f"enable names unknown rule {rule_id!r}", file, names.item_line(index))
    from dataclasses import replace
    return RuleSet(tuple(replace(rule, enabled=True) if rule.id in names else rule for rule in ruleset.rules),
                   version=ruleset.version)


def test_key() -> Any:
    import hashlib

    from ..indicators.keys import ConsortiumKey
    return ConsortiumKey(TEST_KEY_ID, hashlib.sha256(b"fundflow rule tests").digest())


def _indicators(raw: Any, file: str, line: int, start: int) -> Any:
    """The `indicators:` of a test file: an IndicatorSet, each value hashed under the test key."""
    from ..indicators.indicator_set import IndicatorSet, Listing
    from ..indicators.normalize import Refused

    if not isinstance(raw, YList):
        raise RuleTestError("indicators must be a list of {type, value, source, reason, expires}", file, line)
    key = test_key()
    listings: dict = {}
    for index, item in enumerate(raw):
        at = raw.item_line(index)
        if not isinstance(item, YMap):
            raise RuleTestError("an indicator is a mapping with type and value", file, at)
        _check_keys(item, INDICATOR_KEYS, file, "indicator key")
        try:
            digest = key.hash_identifier(str(item.get("type")), _plain(item.get("value")))
        except Refused as exc:
            raise RuleTestError(f"indicator {index + 1}: {exc}", file, at) from None
        times = {name: _relative_ts(item.get(name), start, file, at, name, default)
                 for name, default in (("first_seen", start), ("last_seen", start),
                                       ("expires", start + parse_duration_ms("3650d")))}
        source = str(item.get("source", "lender-test"))
        listing = Listing(source, str(item.get("reason", "confirmed")), times["first_seen"], times["last_seen"],
                          times["expires"], f"{source}@rule-test")
        listings.setdefault((item["type"], key.key_id, digest), {})[source] = listing
    return IndicatorSet(listings, {key.key_id: key},
                        {source: {"feed": f"{source}@rule-test"} for slot in listings for source in listings[slot]})


def _relative_ts(value: Any, start: int, file: str, line: int, what: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().startswith(("+", "-")):
        try:
            offset = parse_duration_ms(value.strip()[1:])
        except ValueError as exc:
            raise RuleTestError(f"{what}: {exc}", file, line) from None
        return start + offset if value.strip()[0] == "+" else start - offset
    return _start(value, file, line)


def _event(raw: Any, start: int, index: int, file: str, line: int, test: str) -> Event:
    if not isinstance(raw, dict):
        raise RuleTestError(f"test {test!r}: an event must be a mapping (docs/architecture.md §4 fields)", file, line)
    obj = {key: _plain(value) for key, value in raw.items()}
    obj.setdefault("event_id", f"e{index + 1}")
    ts = obj.get("ts")
    if isinstance(ts, str) and ts.strip().startswith(("+", "-")):
        text = ts.strip()
        try:
            offset = parse_duration_ms(text[1:])
        except ValueError as exc:
            raise RuleTestError(f"test {test!r}: event ts {ts!r}: {exc} (relative times look like +5m)",
                                file, line) from None
        obj["ts"] = start + offset if text[0] == "+" else start - offset
    try:
        return parse_event(obj)
    except EventError as exc:
        raise RuleTestError(f"test {test!r}: event {index + 1} refused: {exc}", file, line) from None


def _expected(item: Any, file: str, line: int, test: str, known_rules: set[str]) -> Expected:
    if not isinstance(item, YMap) or not isinstance(item.get("rule"), str):
        raise RuleTestError(f"test {test!r}: an expected warning is a mapping with at least `rule: ID`", file, line)
    _check_keys(item, EXPECT_KEYS, file, "expected-warning key")
    if item["rule"] not in known_rules:
        raise RuleTestError(f"test {test!r}: expects a warning from unknown rule {item['rule']!r}", file, line)
    return Expected({key: _plain(value) for key, value in item.items()}, line)


def _check_keys(mapping: YMap, allowed: Sequence[str], file: str, what: str) -> None:
    import difflib
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RuleTestError(f"unknown {what} {key!r}{hint}; allowed: {', '.join(allowed)}", file,
                                mapping.key_line(key))


def _start(value: Any, file: str, line: int) -> int:
    try:
        if isinstance(value, (datetime, date)):
            return _datetime_ms(value)
        return parse_rfc3339_ms(str(value))
    except ValueError as exc:
        raise RuleTestError(f"start: {exc}", file, line) from None


def _relative_paths(doc: YMap, key: str, base: Path, file: str) -> list[Path] | None:
    """A list of paths relative to the test file (`rule_files`, `overrides`); None when the key is absent."""
    if doc.get(key) is None:
        return None
    names = doc[key]
    if not isinstance(names, YList) or not all(isinstance(n, str) for n in names):
        raise RuleTestError(f"{key} must be a list of paths relative to this file", file, doc.value_line(key))
    return [base / name for name in names]


def _duration(value: Any, file: str, line: int, what: str) -> int:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise RuleTestError(f"{what}: {exc}", file, line) from None


def _plain(value: Any) -> Any:
    """YAML's own timestamps (an unquoted 2026-03-02T10:00:00Z) become RFC 3339 text for the event parser."""
    if isinstance(value, (datetime, date)):
        return format_ts(_datetime_ms(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _datetime_ms(value: datetime | date) -> int:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)       # PyYAML drops the Z into a naive UTC datetime
    return int(value.timestamp() * 1000)


def _brief(warning: dict[str, Any]) -> str:
    return (f"{{rule: {warning.get('rule_id')}, subject: {warning.get('subject')}, kind: {warning.get('kind')}, "
            f"severity: {warning.get('severity')}, amount: {warning.get('amount')}, "
            f"accounts: {_show(warning.get('accounts'))}, txn_ids: {_show(warning.get('txn_ids'))}}}  "
            f"{warning.get('summary', '')}")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
