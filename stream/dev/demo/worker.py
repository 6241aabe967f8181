"""The real worker (`fundflow worker`) in a child process, and following it until a run is fully stored.

The demo runs exactly what production runs: the console script's `worker` command, configured only through
FUNDFLOW_* variables, in its own process group so it can be stopped with everything it started.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ...errors import FundflowError
from ..worker_process import WorkerProcess, worker_command
from .metrics import WorkerProgress, fetch_progress

POLL_INTERVAL_S = 0.25
STABLE_POLLS = 3            # counters unchanged this many polls in a row: the run is over
READY_TIMEOUT_S = 90.0



class DemoError(FundflowError):
    """A step of the demo failed; the message says which and where its log is."""


def start_worker(env: Mapping[str, str], log_path: Path, web_port: int, *, settings_file: str | None = None,
                 cwd: Path | None = None) -> WorkerProcess:
    """Start `fundflow worker` with `env` added to this process's environment; output goes to `log_path`."""
    return WorkerProcess.start({**os.environ, **env}, log_path, web_port,
                               command=worker_command(settings_file=settings_file), cwd=cwd, append_log=True)


def wait_ready(worker: WorkerProcess, *, timeout_s: float, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> float:
    """Poll /readyz until the worker has its partitions and every sink answers; returns the seconds waited.

    Input sent before then would pile up as a backlog the worker reads topic by topic, far apart in event
    time, instead of as the live stream it is built for."""
    started = clock()
    last = "no answer yet"
    while True:
        if not worker.alive():
            raise DemoError(f"the worker exited with code {worker.process.returncode} while starting; end of "
                            f"{worker.log_path}:\n{worker.log_tail()}")
        try:
            with urllib.request.urlopen(worker.url("/readyz"), timeout=2.0) as response:
                if response.status == 200:
                    return clock() - started
        except urllib.error.HTTPError as exc:
            last = exc.read().decode("utf-8", errors="replace").strip()
        except (urllib.error.URLError, OSError) as exc:
            last = f"no answer ({exc})"
        if clock() - started > timeout_s:
            raise DemoError(f"the worker was not ready within {timeout_s:.0f} s (last /readyz: {last}); end of "
                            f"{worker.log_path}:\n{worker.log_tail()}")
        sleep(POLL_INTERVAL_S)


@dataclass(frozen=True)
class FollowResult:
    progress: WorkerProgress
    processing_s: float         # from the first event detected to the last, as seen by polling
    finished_at: float          # when the last event was detected (the follow clock)


def follow(worker: WorkerProcess, expected: int, *, timeout_s: float, since: float | None = None,
           on_progress: Callable[[WorkerProgress], None] = lambda _p: None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> FollowResult:
    """Poll the worker's /metrics until it has handled `expected` input messages, every warning it raised is
    stored and every page is decided and sent, with the counters steady for a few polls. Raises DemoError if the
    worker dies or the deadline passes. `since` (same clock) is when input started to flow, if that was before
    following began."""
    deadline = clock() + timeout_s
    first_seen, last_change = since, None
    previous: WorkerProgress | None = None
    steady = 0
    while True:
        if not worker.alive():
            raise DemoError(f"the worker exited with code {worker.process.returncode}; end of "
                            f"{worker.log_path}:\n{worker.log_tail()}")
        progress = fetch_progress(worker.url("/metrics"))
        now = clock()
        if progress is not None:
            on_progress(progress)
            if first_seen is None and progress.handled > 0:
                first_seen = now
            if previous is None or progress.handled != previous.handled:
                last_change = now
            done = progress.handled >= expected and progress.stored >= progress.warnings and progress.pages_settled
            steady = steady + 1 if done and progress == previous else 0
            previous = progress
            if steady >= STABLE_POLLS:
                start = first_seen if first_seen is not None else now
                end = last_change if last_change is not None else now
                return FollowResult(progress, max(end - start, POLL_INTERVAL_S), end)
        if now > deadline:
            seen = "no answer from its /metrics page" if previous is None else (
                f"{previous.handled} of {expected} events handled, {previous.stored} of {previous.warnings} "
                f"warnings stored" + (f", {previous.pages_decided} decided by the pager and "
                                      f"{previous.pages_queued} pages queued" if previous.paging else ""))
            raise DemoError(f"the worker did not finish within {timeout_s:.0f} s ({seen}); end of "
                            f"{worker.log_path}:\n{worker.log_tail()}")
        sleep(POLL_INTERVAL_S)
