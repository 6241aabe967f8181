"""Per-deployment override files: local tuning of shipped rules, applied before the rules are validated.

An override file (`*.override.yaml`) holds `lists` and `overrides: [{rule: ID, params: ..., severity: ...}]`.
Each override replaces keys of one rule defined in the rule files (`allow` adds to the rule's own allow
list instead), so the shipped rules stay untouched; the replaced values keep the override's file and line,
so a bad value is reported where the analyst wrote it.
"""

from __future__ import annotations

from .rawrule import Field, RawRule, Reporter, did_you_mean, kind_of
from .yamlsource import YMap

OVERRIDE_FILE_KEYS = ("lists", "overrides")
OVERRIDE_KEYS = ("rule", "params", "severity", "cooldown", "notify", "allow", "where", "enabled")
OVERRIDE_SUFFIXES = (".override.yaml", ".override.yml")


def apply_overrides(reporter: Reporter, docs: list[tuple[str, YMap]], rules: dict[str, RawRule]) -> int:
    """Apply every override of the parsed override files to `rules`; returns how many were applied."""
    applied = 0
    for file, doc in docs:
        for line, entry in reporter.entries(file, doc, "overrides", "{rule: ID, ...} entries", "an override"):
            rule_id = entry.get("rule")
            reporter.check_keys(entry, OVERRIDE_KEYS, file, rule_id if isinstance(rule_id, str) else None,
                                what="override key")
            if not isinstance(rule_id, str) or rule_id not in rules:
                known = tuple(rules)
                hint = did_you_mean(str(rule_id), known) if isinstance(rule_id, str) else ""
                reporter.error(f"override names unknown rule {rule_id!r}{hint}; an override tunes a rule "
                               f"defined in the rule files", file, entry.key_line("rule") if "rule" in entry else line)
                continue
            _override(reporter, rules[rule_id], file, entry)
            applied += 1
    return applied


def _override(reporter: Reporter, raw: RawRule, file: str, entry: YMap) -> None:
    for key in entry:
        if key == "rule" or key not in OVERRIDE_KEYS:
            continue
        value = entry[key]
        if key == "params":
            if not isinstance(value, YMap):
                reporter.error(f"override `params` must be a mapping, got {kind_of(value)}", file,
                               entry.value_line(key), raw.id)
                continue
            for name, param_value in value.items():
                raw.params[name] = Field(param_value, file, value.key_line(name))
        elif key == "allow":
            raw.extra_allow.append(Field(value, file, entry.value_line(key)))
        else:
            raw.fields[key] = Field(value, file, entry.value_line(key))
