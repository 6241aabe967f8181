"""A real `fundflow worker` in a child process, configured only through FUNDFLOW_* variables, as production
runs it: the one way the demo, the benchmarks and the integration tests start, watch and stop a worker.

The child gets its own process group, so stopping it stops whatever it started. Every wait has a deadline
and, when it runs out or the worker dies, says so with the end of the worker's log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import promtext

POLL_S = 0.1
STOP_TIMEOUT_S = 20.0        # Faust's own shutdown, aligner flush and last snapshot included, takes seconds


class WorkerFailed(RuntimeError):
    """The worker exited, or did not get where it was waited for in time; the message carries its log tail."""


def worker_env(settings: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) without its FUNDFLOW_* variables, plus `settings` as
    FUNDFLOW_<NAME>: a worker sees exactly the settings it is given."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("FUNDFLOW_")}
    env.update({f"FUNDFLOW_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def worker_command(*, loglevel: str = "info", settings_file: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "stream.cli"]     # the same installation, even off PATH
    if settings_file:
        command += ["--settings", settings_file]
    return command + ["worker", "--loglevel", loglevel]


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path
    web_port: int

    @classmethod
    def start(cls, env: Mapping[str, str], log_path: Path, web_port: int, *, command: Sequence[str] | None = None,
              cwd: Path | None = None, append_log: bool = False) -> "WorkerProcess":
        """Start `command` (`fundflow worker` by default) with exactly `env`; output goes to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab" if append_log else "wb") as log:
            process = subprocess.Popen(list(command or worker_command()), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd, start_new_session=True)
        return cls(process, log_path, web_port)

    # -- the process ----------------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM to the worker's process group, SIGKILL after `timeout_s`; returns the exit code."""
        if self.process.poll() is not None:
            return self.process.returncode
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return self.process.poll()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return self.process.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:]) if text else "(empty worker log)"

    # -- its web pages --------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str, timeout_s: float = 3.0) -> tuple[int, str]:
        """(status, body) of one of the worker's pages; (0, "") while nothing answers."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout_s) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError):
            return 0, ""

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        return body if status == 200 else ""

    def metrics(self) -> list[promtext.Sample]:
        """The /metrics samples, or none while the page does not answer."""
        return promtext.parse_samples(self.metrics_text())

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def wait_for(self, condition: Callable[[], Any], what: str, timeout_s: float, *,
                 tolerate: tuple[type[BaseException], ...] = (), diagnose: Callable[[], str] = lambda: "",
                 poll_s: float = POLL_S) -> Any:
        """Poll `condition` until it returns something true, and return that. Raises WorkerFailed if the
        worker exits or `timeout_s` passes. Exceptions in `tolerate` count as not yet."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise WorkerFailed(f"the worker exited with {describe_exit(self.process.returncode)} while "
                                   f"waiting for {what}; end of {self.log_path}:\n{self.log_tail()}")
            try:
                result = condition()
            except tolerate:
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                extra = diagnose()
                raise WorkerFailed(f"no {what} within {timeout_s:.0f} s; end of {self.log_path}:\n"
                                   f"{self.log_tail()}" + (f"\n{extra}" if extra else ""))
            time.sleep(poll_s)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"ended by {name}"
    return f"exit code {code}"
