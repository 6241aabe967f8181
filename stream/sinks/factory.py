"""Which warning store a URL names: the one place that knows both kinds (the kinds depend on `store`, and
`store` on neither)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from .chdb_store import ChdbStore
from .clickhouse import NativeStore
from .store import StoreError, WarningStore


def open_store(url: str, *, create: bool = True) -> WarningStore:
    """clickhouse://HOST:PORT/DB -> a server store; chdb:///PATH (or chdb://RELATIVE) -> an embedded one.

    `create=False` is for readers: an embedded store that does not exist is an error, not an empty directory
    left behind."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not create and not Path(path).is_dir():
            raise StoreError(f"no embedded warning store at {path} (a worker creates it when it first starts)",
                             retryable=False)
        return ChdbStore(path)
    if parsed.scheme in ("clickhouse", "clickhouses"):
        return NativeStore(url)
    raise StoreError(f"expected clickhouse://HOST:PORT/DB or chdb:///PATH as the warning store, got {url!r}",
                     retryable=False)
