"""A rule's canonical text (kept by the loader on every compiled rule) read back, checked against its version,
and written out as a YAML rule file that the real loader compiles to the same version.

The text is canonical JSON: `{"content": ..., "notify": [...], "rule": id, "where_source": text or null}`.
`content` is exactly what the loader hashes into the rule's version. The `where` filter is hashed in its
compiled canonical form (a syntax-tree dump, which cannot safely be turned back into an expression), so its
source text travels beside it; loading the rebuilt file recompiles that source, and the loader's version then
proves the source is the one that was hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import orjson
import yaml

from ..model.timefmt import format_duration_ms
from ..rules.loader import content_version

REBUILT_DESC = "rebuilt from an evidence bundle's canonical rule text"


@dataclass(frozen=True)
class RuleText:
    rule_id: str
    content: Mapping[str, Any]
    where_source: str | None
    notify: tuple[str, ...]
    text: str

    @property
    def version(self) -> str:
        return content_version(self.content)


def parse_rule_text(text: str) -> RuleText:
    """ValueError when the text is not a rule's canonical text."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rule"), str) or not isinstance(data.get("content"), dict):
        raise ValueError("expected an object with `rule` (text) and `content` (object)")
    where = data.get("where_source")
    if where is not None and not isinstance(where, str):
        raise ValueError("`where_source` must be text or null")
    notify = data.get("notify") or []
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        raise ValueError("`notify` must be a list of text")
    return RuleText(data["rule"], data["content"], where, tuple(notify), text)


def rule_yaml(rule: RuleText, desc: str = REBUILT_DESC) -> str:
    """A one-rule YAML file whose compiled rule has the same version (and so raises the same warning ids)."""
    content = rule.content
    entry: dict[str, Any] = {"rule": rule.rule_id, "kind": content["kind"], "desc": desc}
    if rule.where_source is not None:
        entry["where"] = rule.where_source
    if content.get("params"):
        entry["params"] = dict(content["params"])
    entry["severity"] = content["severity"]
    cooldown = content.get("cooldown") or {}
    if cooldown:
        entry["cooldown"] = {"subject": cooldown["subject"], "for": format_duration_ms(int(cooldown["ms"]))}
    if rule.notify:
        entry["notify"] = list(rule.notify)
    allow = content.get("allow") or {}
    if any(allow.get(key) for key in ("accounts", "merchants", "pairs")):
        entry["allow"] = {key: [list(p) for p in allow[key]] if key == "pairs" else list(allow[key])
                          for key in ("accounts", "merchants", "pairs") if allow.get(key)}
    return yaml.safe_dump({"rules": [entry]}, sort_keys=False, allow_unicode=True, width=1_000_000)


def load_rebuilt(rule: RuleText, directory: Path, *, window_ms: int | None = None):
    """Write the YAML file into `directory` and load it with the real loader: the RuleSet (RuleSetError if the
    loader refuses it)."""
    from ..detection.rulebook import load_rules
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rule.yaml"
    path.write_text(rule_yaml(rule), encoding="utf-8")
    return load_rules(path, window_ms=window_ms)
