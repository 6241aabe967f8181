"""The indicator set and keys the settings name: what the worker, `fundflow replay` and `fundflow indicators` use."""

from __future__ import annotations

from pathlib import Path

from ..errors import FundflowError
from ..settings import Settings
from .indicator_set import EMPTY, IndicatorSet, read_set
from .keys import ConsortiumKey, load_keys


def configured_keys(settings: Settings) -> dict[str, ConsortiumKey]:
    if settings.indicator_keys is None:
        raise FundflowError("indicator_keys is not set: name the directory of the consortium keys (<key_id>.key "
                            "files) with --settings or FUNDFLOW_INDICATOR_KEYS")
    keys = load_keys(settings.indicator_keys)
    if not keys:
        raise FundflowError(f"indicator_keys {settings.indicator_keys!r}: no <key_id>.key file in it")
    return keys


def configured_set(settings: Settings, directory: str | Path | None = None) -> IndicatorSet:
    """The local indicator set of `directory` (default: the indicators_dir setting); empty when sharing is off."""
    directory = directory if directory is not None else settings.indicators_dir
    if directory is None:
        return EMPTY
    return read_set(directory, configured_keys(settings))
