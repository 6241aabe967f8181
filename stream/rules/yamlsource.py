"""YAML with line numbers: every mapping key, value and list item remembers where it was written.

PyYAML's `safe_load` forgets positions, so an error could only say "somewhere in this file". Composing the
node graph first and building plain Python values from it keeps the marks, so the loader can point an
analyst at the exact line of a bad threshold. Duplicate keys (which `safe_load` silently resolves to the
last one) are recorded instead of lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlSyntaxError(ValueError):
    """The text is not valid YAML; `line` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class YMap(dict):
    """A mapping that knows the line of itself, of each key and of each value."""

    line: int
    key_lines: dict[Any, int]
    value_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]     # (key, line) of every repeated key

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)

    def value_line(self, key: Any) -> int:
        return self.value_lines.get(key, self.key_line(key))


class YList(list):
    """A sequence that knows the line of itself and of each item; `raw` keeps each plain scalar's source text
    (so `0742` in a list of merchant categories stays "0742" instead of becoming an octal number)."""

    line: int
    item_lines: list[int]
    raw: list[str | None]

    def item_line(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def line_of(value: Any, default: int) -> int:
    return getattr(value, "line", default)


def load_yaml_text(text: str) -> Any:
    """Text -> plain values (YMap / YList / scalars). An empty document is None."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(loader, node, {})
    except yaml.MarkedYAMLError as exc:
        message, line = explain(exc, text)
        raise YamlSyntaxError(message, line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"not valid YAML: {exc}", None) from None
    finally:
        loader.dispose()


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[str, int | None]:
    """PyYAML's error in words an analyst can act on, at the line where the mistake is. PyYAML reports an
    unclosed quote where the file ends; the quote opened at its context mark."""
    context, problem = exc.context or "", exc.problem or ""
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark else None
    context_line = exc.context_mark.line + 1 if exc.context_mark else None
    found = " ".join(part for part in (context, problem) if part)
    lines = text.splitlines()
    if "quoted scalar" in context and context_line is not None:
        return (f"not valid YAML: a quote opened on this line is never closed ({found}). A `where` with quotes "
                f"inside: wrap the whole expression in the other kind of quote, e.g. where: 'transfer.channel == "
                f"\"withdrawal\"'", context_line)
    if "'\\t'" in problem or "\t" in problem:
        return "not valid YAML: a tab character; YAML indents with spaces only", problem_line
    if "expected <block end>, but found '<scalar>'" in problem and problem_line is not None:
        source = lines[problem_line - 1] if problem_line <= len(lines) else ""
        value = source.split(":", 1)[1].strip() if ":" in source else ""
        if value[:1] in ("'", '"'):
            return (f"not valid YAML: a value that starts with a quote must end with it ({found}); quote the "
                    f"whole expression, e.g. {source.split(':', 1)[0].strip()}: '{value.replace(chr(39), chr(34))}'",
                    problem_line)
    if "expected <block end>" in problem:
        return (f"not valid YAML: check the indentation: the keys of one mapping, and the items of one list, "
                f"start in the same column ({found})", problem_line)
    return f"not valid YAML: {found}", problem_line or context_line


def load_yaml_file(path: str | Path) -> Any:
    return load_yaml_text(Path(path).read_text(encoding="utf-8"))


def _build(loader: yaml.SafeLoader, node: yaml.Node, seen: dict[int, Any]) -> Any:
    if id(node) in seen:                       # an alias: the same node again
        return seen[id(node)]
    if isinstance(node, yaml.MappingNode):
        result = YMap()
        result.line = node.start_mark.line + 1
        result.key_lines, result.value_lines, result.duplicates = {}, {}, []
        seen[id(node)] = result
        for key_node, value_node in node.value:
            key = _build(loader, key_node, seen)
            if isinstance(key, (dict, list)):
                raise YamlSyntaxError("not valid YAML for rules: a mapping key must be a plain value",
                                      key_node.start_mark.line + 1)
            if key in result.key_lines:
                result.duplicates.append((key, key_node.start_mark.line + 1))
            result.key_lines[key] = key_node.start_mark.line + 1
            result.value_lines[key] = value_node.start_mark.line + 1
            result[key] = _build(loader, value_node, seen)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = YList()
        items.line = node.start_mark.line + 1
        items.item_lines, items.raw = [], []
        seen[id(node)] = items
        for item_node in node.value:
            items.item_lines.append(item_node.start_mark.line + 1)
            items.raw.append(item_node.value if isinstance(item_node, yaml.ScalarNode) else None)
            items.append(_build(loader, item_node, seen))
        return items
    value = loader.construct_object(node, deep=True)
    seen[id(node)] = value
    return value
