"""Snapshots of the detector's state, so a restart replays only the log written after the last one.

Without a snapshot, a start rebuilds the state by replaying the whole window of the input log: 46 µs per
event, hours for a 72 h window of a busy ledger. With one, it loads the state and replays the records after
the snapshot's positions only, so restart cost stops growing with the window.

What a snapshot holds: the detection state (graph, tracer, device index), the cooldowns and the evidence index
(the original bytes of the windowed events, stream/worker/evidence_index.py), pickled, and for
every input partition the position the state covers: the offset of the first record whose event has not
reached the detector yet (held by the aligner or the jump guard, or not read). Records from there on are
replayed on restore; a record the state already holds is recognised by its event id (the graph keeps each id
once), so starting a little early is harmless and starting late is impossible.

When it is read: as a consumer-group join begins, on a thread (`SnapshotLoader`), so the unpickling overlaps the
seconds the coordinator takes to form the group; the assignment takes it.

How it is written: the worker forks, and the child pickles the state it inherited (copy-on-write: the parent
goes on detecting, and nothing in the state changes under the child), writes a temporary file, fsyncs it and
renames it over the previous snapshot. A crash at any moment leaves the previous snapshot or the new one,
never half of one. This is how Redis writes its RDB files.

Why a local file rather than a Faust table with a changelog topic: the state is one object graph of a few
hundred megabytes that changes on every event; a changelog of per-key writes would double the broker traffic
of every event to make restarts fast, while one atomic file per minute costs a fork. The file sits on the
worker's persistent volume (data_dir); a worker that loses it, or starts on another machine, rebuilds from
the log as before, and that path stays tested.

What is refused, with the reason logged, falling back to a full rebuild (never to wrong state): a missing,
truncated or corrupt file (SHA-256 over the pickle), another snapshot format, another fundflow version or
detection code, other detection settings (window, lateness, tracer), another consumer group, another set of
partitions, or positions the log no longer holds (retention moved past them).
"""

from __future__ import annotations

import copyreg
import gc
import hashlib
import logging
import os
import pickle
import signal
import threading
import time
import types
from concurrent.futures import Future
from dataclasses import dataclass
from ..model.version import fundflow_version
from pathlib import Path
from typing import Any, Mapping

import orjson

log = logging.getLogger(__name__)

# 9: windowed lists schedule their expiry per key, arrivals refer to their loan's origin; 8: edge data as
# `EdgeData` structs instead of dicts; 7: the graph keeps sorted edge times of the nodes the
# kinds asked about; 6: the identity records as msgspec structs; 5: the evidence index's sources as msgspec
# structs; 4: compact per-account identity records; 3: partitions hold identity links; 2: the state is
# (detector state, evidence index); older formats are refused, then rebuilt.
FORMAT = 9
MAGIC = b"fundflow-snapshot\n"
MAX_HEADER_BYTES = 1_000_000

TopicPartition = tuple[str, int]


def _mapping_proxy(data: dict) -> types.MappingProxyType:
    return types.MappingProxyType(data)


# Events keep their extra fields in a read-only mapping, which pickle cannot store as such.
copyreg.pickle(types.MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


class SnapshotRefused(Exception):
    """This snapshot cannot be used; the message says why, in words for an operator."""


@dataclass(frozen=True)
class Compatibility:
    """What must match between the worker that wrote a snapshot and the one that loads it."""

    group_id: str
    settings: Mapping[str, Any]       # the detection settings that shape the state
    version: str = ""
    code: str = ""

    @classmethod
    def current(cls, group_id: str, settings: Mapping[str, Any]) -> "Compatibility":
        return cls(group_id=group_id, settings=dict(settings), version=fundflow_version(), code=_detection_code())

    def as_dict(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "settings": dict(self.settings), "version": self.version,
                "code": self.code}


@dataclass(frozen=True)
class Snapshot:
    state: Any                                   # what Pipeline.checkpoint() returned (a WorkerState)
    positions: dict[TopicPartition, int]         # first offset per input partition not covered by `state`
    written_ms: int
    size: int = 0


def snapshot_path(data_dir: str | Path, group_id: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in group_id)
    return Path(data_dir) / "snapshots" / f"{safe}.snapshot"


def write_snapshot(path: Path, state: Any, positions: Mapping[TopicPartition, int],
                   compatibility: Compatibility, written_ms: int) -> int:
    """Write atomically (temporary file, fsync, rename); returns the bytes written."""
    blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = orjson.dumps({
        "format": FORMAT, **compatibility.as_dict(), "written_ms": written_ms, "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "positions": [[topic, partition, offset] for (topic, partition), offset in sorted(positions.items())],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path, os.getpid())
    with open(temporary, "wb") as out:
        out.write(MAGIC + header + b"\n")
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return len(MAGIC) + len(header) + 1 + len(blob)


def read_snapshot(path: Path, expected: Compatibility, partitions: set[TopicPartition]) -> Snapshot:
    """The snapshot at `path`, or SnapshotRefused saying why it cannot be used for this assignment."""
    header, blob = _checked_file(path, expected)
    _check_partitions(path, set(_positions(header)), partitions)
    return _loaded(path, header, blob)


class SnapshotLoader:
    """Loads the snapshot for an assignment, reading and unpickling it ahead of time when a group join begins.

    A join takes a while with nothing to do: the coordinator waits for the other members (about half the session
    timeout in the broker used for development, `group.initial.rebalance.delay.ms` for a new group in Kafka), and
    unpickling a large window takes as long. Done after the assignment, the two add up. `prefetch` (at the start
    of every join) reads the file on a thread, with the same checks and refusals as `read_snapshot`; `load` (at
    the assignment) takes what it read, once, if it covers exactly the assigned partitions. The pickle holds the
    GIL while it loads, which is why it waits for the join rather than starting with the process: started earlier,
    it would hold up the worker's own start by as long as it saves.
    """

    def __init__(self, path: Path, compatibility: Compatibility) -> None:
        self.path = path
        self.compatibility = compatibility
        self._lock = threading.Lock()
        self._prefetched: Future | None = None
        self.prefetches = 0

    def prefetch(self) -> None:
        """Start reading the snapshot on a thread, unless a read is already waiting to be taken."""
        with self._lock:
            if self._prefetched is not None:
                return
            prefetched = self._prefetched = Future()
            self.prefetches += 1

        def read() -> None:
            try:
                header, blob = _checked_file(self.path, self.compatibility)
                prefetched.set_result(_loaded(self.path, header, blob))
            except BaseException as exc:  # noqa: BLE001 - handed to `load`, whose caller logs the refusal
                prefetched.set_exception(exc)

        threading.Thread(target=read, name="fundflow-snapshot-prefetch", daemon=True).start()

    def load(self, partitions: set[TopicPartition]) -> Snapshot:
        """The snapshot for this assignment, or SnapshotRefused. Blocks until a prefetch in progress is done."""
        with self._lock:
            prefetched, self._prefetched = self._prefetched, None
        if prefetched is None:
            return read_snapshot(self.path, self.compatibility, partitions)
        snapshot = prefetched.result()
        _check_partitions(self.path, set(snapshot.positions), partitions)
        return snapshot


def _checked_file(path: Path, expected: Compatibility) -> tuple[dict, bytes]:
    """The header and the pickle of the snapshot at `path`, once the header matches `expected` and the pickle
    its SHA-256; SnapshotRefused otherwise."""
    try:
        with open(path, "rb") as source:
            if source.read(len(MAGIC)) != MAGIC:
                raise SnapshotRefused(f"{path} is not a fundflow snapshot")
            header_line = source.readline(MAX_HEADER_BYTES)
            blob = source.read()
    except FileNotFoundError:
        raise SnapshotRefused(f"no snapshot at {path}") from None
    except OSError as exc:
        raise SnapshotRefused(f"cannot read {path}: {exc.strerror}") from None
    try:
        header = orjson.loads(header_line)
    except orjson.JSONDecodeError:
        raise SnapshotRefused(f"{path}: unreadable header") from None
    if header.get("format") != FORMAT:
        raise SnapshotRefused(f"{path}: snapshot format {header.get('format')!r}, this worker reads {FORMAT}")
    for key, want in expected.as_dict().items():
        if header.get(key) != want:
            raise SnapshotRefused(f"{path}: written with {key} {_short(header.get(key))}, this worker has "
                                  f"{_short(want)}")
    if len(blob) != header.get("size") or hashlib.sha256(blob).hexdigest() != header.get("sha256"):
        raise SnapshotRefused(f"{path}: corrupt (size or SHA-256 does not match its header)")
    return header, blob


def _positions(header: dict) -> dict[TopicPartition, int]:
    return {(topic, int(partition)): int(offset) for topic, partition, offset in header["positions"]}


def _check_partitions(path: Path, covered: set[TopicPartition], partitions: set[TopicPartition]) -> None:
    if covered != partitions:
        raise SnapshotRefused(f"{path}: covers partitions {_tps(covered)}, this worker was assigned "
                              f"{_tps(partitions)}")


def _loaded(path: Path, header: dict, blob: bytes) -> Snapshot:
    collecting = gc.isenabled()
    gc.disable()       # millions of long-lived objects: collections during the load would only rescan them
    try:
        state = pickle.loads(blob)
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild the objects means: not usable
        raise SnapshotRefused(f"{path}: cannot be loaded ({type(exc).__name__}: {str(exc)[:200]})") from None
    finally:
        if collecting:
            gc.enable()
    return Snapshot(state=state, positions=_positions(header), written_ms=int(header["written_ms"]), size=len(blob))


class SnapshotWriter:
    """Forks a child per snapshot; at most one at a time. `poll()` reaps it and says how it went."""

    def __init__(self, path: Path, compatibility: Compatibility) -> None:
        self.path = path
        self.compatibility = compatibility
        self._child: int | None = None
        self._started = 0.0
        self._pending: tuple[int, dict] | None = None
        self.written = 0
        self.failed = 0
        self.last_written_ms: int | None = None
        self.last_size = 0
        self.last_seconds = 0.0

    @property
    def busy(self) -> bool:
        return self._child is not None

    def start(self, state: Any, positions: Mapping[TopicPartition, int], now_ms: int) -> bool:
        """Fork and write `state` in the child. False when a previous write is still running."""
        self.poll()
        if self._child is not None:
            return False
        pid = os.fork()
        if pid == 0:                       # the child: write, then leave without running any cleanup
            code = 1
            try:
                write_snapshot(self.path, state, positions, self.compatibility, now_ms)
                code = 0
            finally:
                os._exit(code)
        self._child, self._started = pid, time.monotonic()
        self._pending = (now_ms, dict(positions))
        return True

    def poll(self) -> None:
        if self._child is None:
            return
        pid, status = os.waitpid(self._child, os.WNOHANG)
        if pid == 0:
            return
        self._child = None
        seconds = time.monotonic() - self._started
        if os.waitstatus_to_exitcode(status) == 0:
            self.written += 1
            self.last_written_ms = self._pending[0] if self._pending else None
            self.last_seconds = seconds
            try:
                self.last_size = self.path.stat().st_size
            except OSError:
                self.last_size = 0
            log.info("snapshot written to %s in %.1fs (%d bytes)", self.path, seconds, self.last_size)
        else:
            self.failed += 1
            log.error("writing the snapshot to %s failed (exit status %s); the previous one stays", self.path,
                      os.waitstatus_to_exitcode(status))

    def cancel(self) -> None:
        """Stop a write in progress (its snapshot is about to be superseded): at shutdown, the final snapshot
        is written at once instead of after an older one."""
        if self._child is None:
            return
        child, self._child = self._child, None
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        _temporary_path(self.path, child).unlink(missing_ok=True)

    def wait(self, timeout_s: float = 60.0) -> None:
        """Block until the running write (if any) ends: at shutdown, so no child outlives the worker."""
        deadline = time.monotonic() + timeout_s
        while self._child is not None and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)


def _temporary_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _detection_code() -> str:
    """A hash of the modules whose classes a snapshot pickles: a state written by other code is refused even
    when the version number did not change."""
    from .. import detection
    from ..model import events
    digest = hashlib.sha256()
    for path in sorted(Path(detection.__file__).parent.rglob("*.py")) + [Path(events.__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def _tps(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(partitions)) or "none"
