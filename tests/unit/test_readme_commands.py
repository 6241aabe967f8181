"""README's command reference is complete: every command `fundflow --help` knows has a row, and every option of
every (sub)command is in that row. An option added to a parser without a word in README fails here."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from stream.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(fundflow[^`]*)` \|(.*)$")
_COMMAND_WORD = re.compile(r"[a-z][a-z-]*")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("fundflow",)):
    """(command path, parser, has subcommands) for the program and every (sub)command under it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, bool(subs)
    for action in subs:
        for name, sub in action.choices.items():
            yield from commands(sub, path + (name,))


def options(parser: argparse.ArgumentParser) -> list[str]:
    """The long form of every option `--help` shows (help itself aside)."""
    return [max(a.option_strings, key=len) for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def reference() -> tuple[str, dict[tuple[str, ...], str]]:
    """README's command section: its text outside the table, and each row by the command it documents."""
    text = README.read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[tuple[str, ...], str] = {}
    prose = []
    for line in section.splitlines():
        match = _ROW.match(line)
        if not match:
            prose.append(line)
            continue
        words = []
        for word in match.group(1).split():
            if words and not _COMMAND_WORD.fullmatch(word):
                break
            words.append(word)
        rows[tuple(words)] = rows.get(tuple(words), "") + line
    return "\n".join(prose), rows


def mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_every_command_has_a_row_with_every_option_it_takes():
    prose, rows = reference()
    missing = []
    for path, parser, has_subcommands in commands(build_parser()):
        if path == ("fundflow",):
            missing += [f"fundflow {option}" for option in options(parser) if not mentions(prose, option)]
            continue
        if has_subcommands and not options(parser):
            continue                                   # `fundflow rules`: only its subcommands run anything
        row = rows.get(path)
        if row is None:
            missing.append(f"{' '.join(path)} (no row)")
            continue
        missing += [f"{' '.join(path)} {option}" for option in options(parser) if not mentions(row, option)]
    assert not missing, f"README.md's command reference lacks: {', '.join(missing)}"


def test_the_synopses_name_no_option_the_command_does_not_have():
    known = {path: set(options(parser)) for path, parser, _ in commands(build_parser())}
    _, rows = reference()
    stale = []
    for path, row in rows.items():
        assert path in known, f"README.md documents {' '.join(path)}, which is not a command"
        synopsis = _ROW.match(row).group(1)
        stale += [f"{' '.join(path)} {option}" for option in re.findall(r"--[a-z][a-z-]*", synopsis)
                  if option not in known[path]]
    assert not stale, f"README.md's synopses name options that do not exist: {', '.join(stale)}"
