"""Warnings files as `fundflow replay --out` writes them: one warning JSON object per line (.gz accepted).

Read strictly, because a comparison of two runs is only as good as its inputs: the first line that is not a
warning stops the read with the file and line, and a ledger given by mistake (the most common slip: the
events instead of the replay's output) is named as such.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable
from zlib import error as zlib_error

import orjson

from ..errors import FundflowError
from ..model.warning import EarlyWarning

HOW_TO_MAKE = "`fundflow replay LEDGER --out FILE` writes one"


class WarningsFileError(FundflowError):
    """A warnings file is missing, unreadable, or holds something that is not a warning."""


def read_warnings_file(path: str | Path) -> list[EarlyWarning]:
    """Every warning of the file, in file order (blank lines skipped)."""
    path = Path(path)
    if path.is_dir():
        raise WarningsFileError(f"{path}: is a directory; expected a warnings file ({HOW_TO_MAKE})")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WarningsFileError(f"{path}: no such file; expected a warnings file ({HOW_TO_MAKE})") from None
    except OSError as exc:
        raise WarningsFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib_error) as exc:
            raise WarningsFileError(f"{path}: a damaged gzip file ({exc})") from None
    return parse_warning_lines(raw.splitlines(), str(path))


def parse_warning_lines(lines: Iterable[bytes], source: str) -> list[EarlyWarning]:
    """The warnings of `lines`; `source` names them in errors (a file, or the replay that produced them)."""
    warnings = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise WarningsFileError(f"{source}:{number}: not JSON ({str(exc)[:120]}); expected one warning per "
                                    f"line ({HOW_TO_MAKE})") from None
        if isinstance(data, dict) and data.get("type") in ("transfer", "disbursement") and "rule_id" not in data:
            raise WarningsFileError(f"{source}:{number}: a ledger event ({data['type']}), not a warning: this "
                                    f"looks like a ledger; compare the warnings a replay of it writes "
                                    f"({HOW_TO_MAKE})")
        try:
            warnings.append(EarlyWarning.from_dict(data))
        except ValueError as exc:
            raise WarningsFileError(f"{source}:{number}: not a warning: {exc}") from None
    return warnings
