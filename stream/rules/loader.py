"""Rule files -> a validated `RuleSet`, or every problem found, each with its file, line and rule id.

The loader is the only place analyst text is trusted into typed values: durations become ms, list names
become sets, `where` text becomes a compiled predicate, params are checked by their kind's `Param`s.
It collects every problem before giving up, because an analyst fixing a rule file wants the whole list,
not one error per run. Overrides (per-deployment tuning files) are applied before validation, so a bad
override value is reported at the override's own line.

A rule's `version` hashes its normalized effective content, so reformatting a file or editing a comment
keeps warning ids stable, while any change to what the rule detects gives new ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import orjson

from ..errors import RuleError, RuleSetError
from ..model.timefmt import format_duration_ms, parse_duration_ms
from ..model.warning import SEVERITY_RANK
from . import params as param_types
from .expr import ExprError, compile_where
from .model import AllowList, Cooldown, Rule, RuleSet, SourceLocation
from .overrides import OVERRIDE_FILE_KEYS, OVERRIDE_SUFFIXES, apply_overrides
from .rawrule import Field, RawRule, did_you_mean, kind_of
from .schema import ANY_RULE, schema_of_kind
from .yamlsource import YamlSyntaxError, YList, YMap, load_yaml_file

RULE_KEYS = ("rule", "kind", "desc", "where", "params", "severity", "cooldown", "suppressed_by", "notify", "allow",
             "false_positives", "tags", "enabled")
REQUIRED_RULE_KEYS = ("rule", "kind", "desc", "severity")
RULE_FILE_KEYS = ("lists", "allow", "rules")
ALLOW_KEYS = ("accounts", "merchants", "pairs")
COOLDOWN_KEYS = ("subject", "for")
COOLDOWN_SUBJECTS = ("loan", "account", "subject")
SEVERITIES = tuple(SEVERITY_RANK)    # lowest first (stream.settings names the same tuple)
# Notify targets the sinks understand. A misspelt target would silently never page, so others are refused.
NOTIFY_TARGETS = ("pager",)
RULE_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class RuleWarning(RuleError):
    """Legal but suspicious (keys out of order, an extra input field named like a standard one): the rules load, and
    `fundflow rules check` fails so it is fixed before it ships."""


@dataclass(frozen=True)
class CheckResult:
    """Everything one load found: the rule set (when there were no errors), errors and warnings."""

    ruleset: RuleSet | None
    errors: tuple[RuleError, ...]
    warnings: tuple[RuleWarning, ...]
    rule_files: tuple[str, ...]
    override_files: tuple[str, ...]
    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    overrides_applied: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.warnings


def load_rules(paths: str | Path | Sequence[str | Path], overrides: str | Path | Sequence[str | Path] = (),
               *, kinds: Mapping[str, Any], window_ms: int | None = None) -> RuleSet:
    """Load and validate against `kinds` (the detector's registry, `stream.detection.kinds.KINDS`: the rule
    language does not know the kinds itself); raises RuleSetError listing every error (warnings do not stop a
    load)."""
    result = check_rules(paths, overrides, window_ms=window_ms, kinds=kinds)
    if result.errors or result.ruleset is None:
        raise RuleSetError(list(result.errors))
    return result.ruleset


def check_rules(paths: str | Path | Sequence[str | Path], overrides: str | Path | Sequence[str | Path] = (),
                *, kinds: Mapping[str, Any], window_ms: int | None = None) -> CheckResult:
    """Load without raising: the rule set (if no errors) plus every error and warning, for `rules check`."""
    loader = _Loader(kinds, window_ms)
    return loader.run(_as_list(paths), _as_list(overrides))


def _as_list(paths: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path], list[RuleError]]:
    """Directories and files -> (rule files, override files, problems). Test files are never rules."""
    rule_files: list[Path] = []
    override_files: list[Path] = []
    problems: list[RuleError] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(RULE_SUFFIXES)
                           and not p.name.endswith(TEST_SUFFIXES))
            rules_here = [p for p in found if not p.name.endswith(OVERRIDE_SUFFIXES)]
            if not rules_here:
                problems.append(RuleError("no rule files (*.yaml, *.yml) in this directory", file=str(path)))
            rule_files += rules_here
            override_files += [p for p in found if p.name.endswith(OVERRIDE_SUFFIXES)]
        elif path.is_file():
            if path.name.endswith(TEST_SUFFIXES):
                problems.append(RuleError("this is a rule test file; run it with `fundflow rules test`",
                                          file=str(path)))
            elif path.name.endswith(OVERRIDE_SUFFIXES):
                override_files.append(path)
            else:
                rule_files.append(path)
        else:
            problems.append(RuleError("no such file or directory", file=str(path)))
    return _unique(rule_files), _unique(override_files), problems


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    result = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            result.append(path)
    return result


class _Loader:
    def __init__(self, kinds: Mapping[str, Any], window_ms: int | None) -> None:
        self.kinds = kinds
        self.window_ms = window_ms
        self.errors: list[RuleError] = []
        self.warnings: list[RuleWarning] = []
        self.lists: dict[str, frozenset[str]] = {}
        self.list_sources: dict[str, str] = {}
        self.global_allow: list[Field] = []

    # -- reporting ---------------------------------------------------------------------------------------

    def error(self, message: str, file: str, line: int | None, rule_id: str | None = None) -> None:
        self.errors.append(RuleError(message, file=file, line=line, rule_id=rule_id))

    def warn(self, message: str, file: str, line: int | None, rule_id: str | None = None) -> None:
        self.warnings.append(RuleWarning(f"warning: {message}", file=file, line=line, rule_id=rule_id))

    # -- the whole load ----------------------------------------------------------------------------------

    def run(self, paths: list[Path], override_paths: list[Path]) -> CheckResult:
        rule_paths, found_overrides, problems = discover(paths)
        self.errors += problems
        for path in override_paths:
            if not path.is_file():
                self.error("no such override file", str(path), None)
        override_paths = _unique(found_overrides + [p for p in override_paths if p.is_file()])
        rule_docs = [(str(p), d) for p in rule_paths if (d := self.read(p, RULE_FILE_KEYS)) is not None]
        override_docs = [(str(p), d) for p in override_paths if (d := self.read(p, OVERRIDE_FILE_KEYS)) is not None]
        for file, doc in rule_docs + override_docs:
            self.collect_lists(file, doc)
        for file, doc in rule_docs:
            if "allow" in doc and doc["allow"] is not None:
                self.global_allow.append(Field(doc["allow"], file, doc.value_line("allow")))
        raw_rules = self.collect_rules(rule_docs)
        applied = apply_overrides(self, override_docs, raw_rules)
        global_allow = self.allow_list(self.global_allow, None)
        rules = [rule for raw in raw_rules.values() if (rule := self.compile(raw, global_allow)) is not None]
        self.check_suppressions(rules)
        ruleset = None
        if not self.errors:
            ruleset = RuleSet(rules=tuple(rules), version=ruleset_version(rules))
        by_place = lambda e: (e.file or "", e.line or 0)  # noqa: E731
        return CheckResult(ruleset=ruleset, errors=tuple(sorted(self.errors, key=by_place)),
                           warnings=tuple(sorted(self.warnings, key=by_place)),
                           rule_files=tuple(map(str, rule_paths)), override_files=tuple(map(str, override_paths)),
                           lists=dict(self.lists), overrides_applied=applied)

    def read(self, path: Path, top_keys: tuple[str, ...]) -> YMap | None:
        file = str(path)
        try:
            doc = load_yaml_file(path)
        except YamlSyntaxError as exc:
            self.error(str(exc), file, exc.line)
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.error(f"cannot read: {exc}", file, None)
            return None
        if doc is None:
            self.error(f"the file is empty; expected a mapping with {', '.join(top_keys)}", file, None)
            return None
        if not isinstance(doc, YMap):
            self.error(f"expected a mapping with {', '.join(top_keys)} at the top, got {kind_of(doc)}",
                       file, getattr(doc, "line", 1))
            return None
        self.check_keys(doc, top_keys, file, None, what="top-level key")
        return doc

    def check_keys(self, mapping: YMap, allowed: tuple[str, ...], file: str, rule_id: str | None, *,
                   what: str, ordered: bool = False) -> None:
        for key, line in mapping.duplicates:
            self.error(f"{what} {key!r} appears twice in the same mapping; the first would be silently lost",
                       file, line, rule_id)
        for key in mapping:
            if key not in allowed:
                self.error(f"unknown {what} {key!r}{did_you_mean(str(key), allowed)}; allowed: "
                           f"{', '.join(allowed)}", file, mapping.key_line(key), rule_id)
        if ordered:
            present = [key for key in mapping if key in allowed]
            expected = sorted(present, key=allowed.index)
            if present != expected:
                for got, want in zip(present, expected):
                    if got != want:
                        self.warn(f"key {got!r} is out of order; rule keys go in the order "
                                  f"{', '.join(k for k in allowed)} (here: {', '.join(expected)})",
                                  file, mapping.key_line(got), rule_id)
                        break

    def entries(self, file: str, doc: YMap, key: str, list_of: str, entry: str) -> Iterator[tuple[int, YMap]]:
        """The mappings listed under `key` (rules, overrides) with their lines; anything else is reported."""
        entries = doc.get(key)
        if entries is None:
            return
        if not isinstance(entries, YList):
            self.error(f"`{key}` must be a list of {list_of}, got {kind_of(entries)}", file, doc.value_line(key))
            return
        for index, item in enumerate(entries):
            line = entries.item_line(index)
            if not isinstance(item, YMap):
                self.error(f"{entry} must be a mapping starting with `rule: <id>`, got {kind_of(item)}", file, line)
                continue
            yield line, item

    # -- lists -------------------------------------------------------------------------------------------

    def collect_lists(self, file: str, doc: YMap) -> None:
        lists = doc.get("lists")
        if lists is None:
            return
        if not isinstance(lists, YMap):
            self.error(f"`lists` must map list names to lists of strings, got {kind_of(lists)}",
                       file, doc.value_line("lists"))
            return
        for key, line in lists.duplicates:
            self.error(f"list {key!r} is defined twice in this file", file, line)
        for name, items in lists.items():
            line = lists.key_line(name)
            if not isinstance(name, str) or not name:
                self.error(f"a list name must be text, got {name!r}", file, line)
                continue
            if name in self.lists:
                self.error(f"list {name!r} is already defined at {self.list_sources[name]}", file, line)
                continue
            parsed = self.string_items(items, file, lists.value_line(name), f"list {name!r}", None)
            if parsed is not None:
                self.lists[name] = parsed
                self.list_sources[name] = f"{file}:{line}"

    def string_items(self, items: Any, file: str, line: int, what: str, rule_id: str | None
                     ) -> frozenset[str] | None:
        """A YAML list of plain values -> set of strings (numbers kept as written: MCC `0742` stays "0742")."""
        if not isinstance(items, YList):
            self.error(f"{what} must be a list of strings, got {kind_of(items)}", file, line, rule_id)
            return None
        result: set[str] = set()
        ok = True
        for index, item in enumerate(items):
            if isinstance(item, str):
                result.add(item)
            elif isinstance(item, int) and not isinstance(item, bool) and items.raw[index] is not None:
                result.add(items.raw[index])
            else:
                self.error(f"{what} must hold strings, got {kind_of(item)} {item!r}", file,
                           items.item_line(index), rule_id)
                ok = False
        return frozenset(result) if ok else None

    def lookup_list(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(self.lists[name]))

    # -- rules -------------------------------------------------------------------------------------------

    def collect_rules(self, docs: list[tuple[str, YMap]]) -> dict[str, RawRule]:
        rules: dict[str, RawRule] = {}
        for file, doc in docs:
            for _line, entry in self.entries(file, doc, "rules", "rules", "a rule"):
                raw = self.raw_rule(file, entry)
                if raw is None:
                    continue
                if raw.id in rules:
                    first = rules[raw.id]
                    self.error(f"duplicate rule id {raw.id!r}; already defined at {first.file}:{first.line}",
                               file, raw.line, raw.id)
                    continue
                rules[raw.id] = raw
        return rules

    def raw_rule(self, file: str, entry: YMap) -> RawRule | None:
        rule_id = entry.get("rule")
        line = entry.key_line("rule") if "rule" in entry else entry.line
        if not isinstance(rule_id, str) or not rule_id.strip():
            self.error(f"every rule starts with `rule: <id>` (an id like rapid-cashout), got "
                       f"{'nothing' if rule_id is None else repr(rule_id)}", file, line)
            return None
        rule_id = rule_id.strip()
        if not set(rule_id) <= _ID_CHARS:
            self.error(f"rule id {rule_id!r} may use only lower-case letters, digits, '-', '_' and '.'",
                       file, line, rule_id)
        self.check_keys(entry, RULE_KEYS, file, rule_id, what="rule key", ordered=True)
        for key in REQUIRED_RULE_KEYS:
            if key not in entry:
                self.error(f"missing required key {key!r}", file, line, rule_id)
        if any(key not in entry for key in REQUIRED_RULE_KEYS):
            return None
        fields = {key: Field(entry[key], file, entry.value_line(key)) for key in RULE_KEYS if key in entry}
        params: dict[str, Field] = {}
        raw_params = entry.get("params")
        if raw_params is not None:
            if isinstance(raw_params, YMap):
                params = {name: Field(value, file, raw_params.key_line(name)) for name, value in raw_params.items()}
                for key, dup_line in raw_params.duplicates:
                    self.error(f"parameter {key!r} is given twice", file, dup_line, rule_id)
            else:
                self.error(f"`params` must be a mapping of parameter names to values, got {kind_of(raw_params)}",
                           file, entry.value_line("params"), rule_id)
        return RawRule(rule_id, file, line, fields, params, [])

    # -- compiling one rule ------------------------------------------------------------------------------

    def compile(self, raw: RawRule, global_allow: AllowList) -> Rule | None:
        before = len(self.errors)
        rid = raw.id
        f = raw.fields

        kind_name = f["kind"].value
        kind = self.kinds.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            self.error(f"unknown kind {kind_name!r}{did_you_mean(str(kind_name), tuple(self.kinds))}; "
                       f"known kinds: {', '.join(sorted(self.kinds)) or '(none registered)'}",
                       f["kind"].file, f["kind"].line, rid)

        desc = f["desc"].value
        if not isinstance(desc, str) or not desc.strip():
            self.error("`desc` must say what the rule catches and how to tune it; it is empty",
                       f["desc"].file, f["desc"].line, rid)

        severity = f["severity"].value
        if severity not in SEVERITIES:
            self.error(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}"
                       f"{did_you_mean(str(severity), SEVERITIES)}", f["severity"].file, f["severity"].line, rid)

        params: dict[str, Any] = {}
        if kind is not None:
            params = self.compile_params(raw, kind)

        where = where_text = where_canonical = None
        if "where" in f and f["where"].value is not None:
            try:
                # against what this kind's rules can read; an unknown kind is already an error, its where is
                # still checked as any rule's so its other mistakes are listed too
                schema = schema_of_kind(kind) if kind is not None else ANY_RULE
                where, notes = compile_where(f["where"].value, self.lists, schema=schema)
            except ExprError as exc:
                self.error(f"where: {exc}", f["where"].file, f["where"].line, rid)
            else:
                where_text = where.text
                where_canonical = where.canonical
                for note in notes:
                    self.warn(f"where: {note}", f["where"].file, f["where"].line, rid)

        cooldown = self.cooldown(f.get("cooldown"), rid)
        notify = self.strings(f.get("notify"), "notify", rid)
        for target in notify:
            if target not in NOTIFY_TARGETS:
                self.error(f"unknown notify target {target!r}{did_you_mean(target, NOTIFY_TARGETS)}; known: "
                           f"{', '.join(NOTIFY_TARGETS)}", f["notify"].file, f["notify"].line, rid)
        tags = self.strings(f.get("tags"), "tags", rid)
        suppressed_by = self.strings(f.get("suppressed_by"), "suppressed_by", rid)
        false_positives = self.strings(f.get("false_positives"), "false_positives", rid)
        enabled = True
        if "enabled" in f:
            enabled = f["enabled"].value
            if not isinstance(enabled, bool):
                self.error(f"`enabled` must be true or false, got {enabled!r}", f["enabled"].file,
                           f["enabled"].line, rid)
                enabled = True
        own_allow = self.allow_list([f["allow"]] if "allow" in f and f["allow"].value is not None else [], rid)
        extra_allow = self.allow_list(raw.extra_allow, rid)
        allow = _merge_allow(own_allow, extra_allow, global_allow)

        if len(self.errors) > before or kind is None:
            return None
        content = {
            "kind": kind.name, "params": {spec.name: _jsonable(spec.show(params[spec.name])) for spec in kind.params
                                       if spec.versioned_at_default or params[spec.name] != spec.default},
            "where": where_canonical, "severity": severity,
            "cooldown": {"subject": cooldown.subject, "ms": cooldown.ms},
            "allow": {"accounts": sorted(allow.accounts), "merchants": sorted(allow.merchants),
                      "pairs": sorted(list(pair) for pair in allow.pairs)},
        }
        return Rule(id=rid, kind=kind.name, desc=desc.strip(), params=params, severity=severity,
                    version=_short_hash(content), canonical_text=rule_text(rid, content, where_text, notify),
                    where=where, where_text=where_text, cooldown=cooldown,
                    notify=notify, tags=tags, enabled=enabled, allow=allow, false_positives=false_positives,
                    suppressed_by=suppressed_by, source=SourceLocation(raw.file, raw.line))

    def check_suppressions(self, rules: list[Rule]) -> None:
        """`suppressed_by` names rules of this set that key their cooldown the same way (else it can never apply)."""
        by_id = {rule.id: rule for rule in rules}
        for rule in rules:
            where = rule.source.file if rule.source else None, rule.source.line if rule.source else None
            for other_id in rule.suppressed_by:
                other = by_id.get(other_id)
                if other is None:
                    self.warn(f"suppressed_by: no rule {other_id!r} in this rule set"
                              f"{did_you_mean(other_id, tuple(by_id))}; it suppresses nothing", *where, rule.id)
                elif other_id == rule.id:
                    self.error("suppressed_by: a rule cannot suppress itself", *where, rule.id)
                elif other.cooldown.subject != rule.cooldown.subject or other.cooldown.ms <= 0:
                    self.warn(f"suppressed_by: {other_id!r} keys its cooldown by {other.cooldown.subject} "
                              f"({'no cooldown' if other.cooldown.ms <= 0 else 'for ' + str(other.cooldown.ms // 1000) + ' s'})"
                              f" and this rule by {rule.cooldown.subject}; they must share a subject, and it needs a "
                              f"cooldown, for its warnings to silence this one", *where, rule.id)

    def compile_params(self, raw: RawRule, kind: Any) -> dict[str, Any]:
        given = {name: fld.value for name, fld in raw.params.items()}
        values, problems = param_types.apply_params(kind.params, given, self.lookup_list)
        where_of = {name: (fld.file, fld.line) for name, fld in raw.params.items()}
        fallback = (raw.fields["params"].file, raw.fields["params"].line) if "params" in raw.fields else \
            (raw.file, raw.line)
        for name, message in problems:
            file, line = where_of.get(name, fallback)
            if not message.startswith("params."):
                message = f"params.{name}: {message}"
            self.error(message, file, line, raw.id)
        failed = {name for name, _ in problems}
        for name, message in impossible_params(kind.params, values, self.window_ms):
            if name in failed:
                continue
            file, line = where_of.get(name, fallback)
            self.error(f"params.{name}: {message}", file, line, raw.id)
        return values

    def cooldown(self, fld: Field | None, rid: str) -> Cooldown:
        if fld is None or fld.value is None:
            return Cooldown()
        value = fld.value
        if not isinstance(value, YMap):
            self.error(f"`cooldown` must be a mapping like {{subject: loan, for: 6h}}, got {kind_of(value)}",
                       fld.file, fld.line, rid)
            return Cooldown()
        self.check_keys(value, COOLDOWN_KEYS, fld.file, rid, what="cooldown key")
        subject = value.get("subject", Cooldown.subject)
        if subject not in COOLDOWN_SUBJECTS:
            self.error(f"cooldown.subject must be one of {', '.join(COOLDOWN_SUBJECTS)}, got {subject!r}",
                       fld.file, value.value_line("subject"), rid)
            subject = Cooldown.subject
        ms = Cooldown.ms
        if "for" in value:
            try:
                ms = parse_duration_ms(value["for"])
            except ValueError as exc:
                self.error(f"cooldown.for: {exc}", fld.file, value.value_line("for"), rid)
        return Cooldown(subject=subject, ms=ms)

    def strings(self, fld: Field | None, what: str, rid: str) -> tuple[str, ...]:
        if fld is None or fld.value is None:
            return ()
        value = fld.value
        if not isinstance(value, YList):
            self.error(f"`{what}` must be a list of strings, got {kind_of(value)}", fld.file, fld.line, rid)
            return ()
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.error(f"`{what}` must hold non-empty strings, got {kind_of(item)} {item!r}", fld.file,
                           value.item_line(index), rid)
            else:
                result.append(item.strip())
        return tuple(result)

    def allow_list(self, fields: list[Field], rid: str | None) -> AllowList:
        accounts: set[str] = set()
        merchants: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for fld in fields:
            value = fld.value
            if not isinstance(value, YMap):
                self.error(f"`allow` must be a mapping with {', '.join(ALLOW_KEYS)}, got {kind_of(value)}",
                           fld.file, fld.line, rid)
                continue
            self.check_keys(value, ALLOW_KEYS, fld.file, rid, what="allow key")
            for key, target in (("accounts", accounts), ("merchants", merchants)):
                if key not in value or value[key] is None:
                    continue
                items = value[key]
                line = value.value_line(key)
                if isinstance(items, str):
                    if items not in self.lists:
                        self.error(f"allow.{key}: unknown list {items!r}{did_you_mean(items, tuple(self.lists))}; "
                                   f"define it under `lists:`", fld.file, line, rid)
                    else:
                        target |= self.lists[items]
                    continue
                parsed = self.string_items(items, fld.file, line, f"allow.{key}", rid)
                if parsed is not None:
                    target |= parsed
            if "pairs" in value and value["pairs"] is not None:
                pairs |= self.pairs(value["pairs"], fld.file, value.value_line("pairs"), rid)
        return AllowList(frozenset(accounts), frozenset(merchants), frozenset(pairs))

    def pairs(self, items: Any, file: str, line: int, rid: str | None) -> set[tuple[str, str]]:
        if not isinstance(items, YList):
            self.error(f"allow.pairs must be a list of [src, dst] pairs, got {kind_of(items)}", file, line, rid)
            return set()
        result = set()
        for index, pair in enumerate(items):
            if (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)
                    and pair[0] != pair[1]):
                result.add((pair[0], pair[1]))
            else:
                self.error(f"allow.pairs items must be [src, dst] with two different accounts, got {pair!r}",
                           file, items.item_line(index), rid)
        return result


def impossible_params(specs: Sequence[param_types.Param], values: Mapping[str, Any], window_ms: int | None
                      ) -> list[tuple[str, str]]:
    """Thresholds each fine alone but impossible together or against the detector: a duration longer
    than the window (the evidence is gone before it could be complete), a min above its max."""
    problems = []
    by_name = {spec.name: spec for spec in specs}
    if window_ms is not None:
        for spec in specs:
            if _is_duration(spec) and isinstance(values.get(spec.name), int) and values[spec.name] > window_ms:
                problems.append((spec.name, f"{format_duration_ms(values[spec.name])} is longer than the detector "
                                            f"window {format_duration_ms(window_ms)}, so it can never be met; "
                                            f"shorten it or run with a longer window"))
    for name, low in values.items():
        if not name.startswith("min_"):
            continue
        high_name = "max_" + name[4:]
        high = values.get(high_name)
        if high_name in by_name and _comparable(low, high) and low > high:
            problems.append((name, f"{by_name[name].show(low)} is above {high_name} "
                                   f"{by_name[high_name].show(high)}, so the rule can never fire"))
    return problems


def _is_duration(spec: param_types.Param) -> bool:
    return spec.parse is param_types.duration or spec.show is param_types.show_duration


def _comparable(a: Any, b: Any) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool))


def _merge_allow(*lists: AllowList) -> AllowList:
    return AllowList(frozenset().union(*(a.accounts for a in lists)),
                     frozenset().union(*(a.merchants for a in lists)),
                     frozenset().union(*(a.pairs for a in lists)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def rule_text(rule_id: str, content: Mapping[str, Any], where_source: str | None,
              notify: Sequence[str] = ()) -> str:
    """The rule's canonical text: what its version hashes (`content`), its id, and what is needed to write it
    back as YAML (the `where` source, whose compiled canonical form is in `content`; the notify targets, which a
    warning records but the version does not hash)."""
    return orjson.dumps({"rule": rule_id, "content": content, "where_source": where_source,
                         "notify": list(notify)}, option=orjson.OPT_SORT_KEYS).decode()


def content_version(content: Any) -> str:
    """The version a rule of this canonical content has."""
    return _short_hash(content)


def _short_hash(content: Any) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:10]


def ruleset_version(rules: Sequence[Rule]) -> str:
    """What is running: every rule's id, version, whether it is enabled and which rules suppress it."""
    return _short_hash(sorted([rule.id, rule.version, rule.enabled, *([list(rule.suppressed_by)]
                                                                       if rule.suppressed_by else [])]
                              for rule in rules))
