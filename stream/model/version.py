"""The installed fundflow version, in one place: `--version`, snapshots (a state written by another version is
refused) and the evidence chain (recorded beside every warning) all say the same."""

from __future__ import annotations

from importlib import metadata


def fundflow_version() -> str:
    try:
        return metadata.version("fundflow")
    except metadata.PackageNotFoundError:
        return "unknown"
