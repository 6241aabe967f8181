"""`fundflow demo`, end to end on one machine: broker, store, webhook, ledger, the real worker, a summary.

Every server is local and throw-away (devstack), every child process is registered with `Cleanup` before
anything else can fail, and the summary is computed from what the store holds after the worker stopped,
so what the demo prints is what an analyst would find with `fundflow warnings`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from .. import devstack
from ...errors import FundflowError
from ...offline.evaluate import evaluate, warning_from_dict
from ...offline.produce import produce_file
from ...rules.pack import resolve_rules_dir
from ...settings import Settings, load_settings
from ...simulate import SimParams, load_truth, write_ledger
from ...sinks.schema import TABLE, row_to_warning_json
from ...sinks.store import DEFAULT_CHDB_DATABASE, WarningFilter
from ...sinks.factory import open_store
from .cleanup import Cleanup
from .summary import DemoFigures, render
from .webhook import WebhookReceiver
from ..worker_process import WorkerProcess, describe_exit
from .worker import READY_TIMEOUT_S, DemoError, FollowResult, follow, start_worker, wait_ready

MARKER = ".fundflow-demo"
STORES = ("chdb", "server")
ALL_ROWS = 1_000_000_000
DEMO_SESSION_TIMEOUT = "6s"     # tansu holds a JoinGroup for about half the session timeout
# A ledger streams in as it happens; dumping a week of it at once makes the worker read the small
# disbursements topic days of event time ahead of the transfers.
DEFAULT_RATE = 2000.0


@dataclass(frozen=True)
class DemoOptions:
    events_per_day: int = 5000
    days: int = 7
    instances: int = 5
    seed: int = 7
    accounts: int = 2000
    workdir: Path = Path(".fundflow/demo")
    keep: bool = False
    store: str = "chdb"
    rate: float | None = DEFAULT_RATE   # events/s sent to Kafka; None: as fast as the broker takes them
    progress: bool = True
    timeout_s: float | None = None      # None: scaled to the ledger's size
    settings_file: str | None = None
    # Called with the store's URL after the summary, while the store (and its server) still run; returns when
    # the user is done (`fundflow demo --console` serves the console until Ctrl-C). Then --keep is not waited.
    after_summary: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise DemoError(f"--store: expected one of {', '.join(STORES)}, got {self.store!r}")

    def sim_params(self) -> SimParams:
        return SimParams(seed=self.seed, accounts=self.accounts, days=self.days, instances=self.instances,
                         background_per_day=self.events_per_day)


@dataclass
class _Steps:
    """Timestamped progress lines on the demo's output."""

    out: TextIO
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.started:5.1f}s] {text}\n")
        self.out.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def prepare_workdir(path: Path) -> Path:
    """An empty directory for this run. A directory the demo did not make is never emptied."""
    path = path.resolve()
    if path.exists():
        if not path.is_dir():
            raise DemoError(f"--workdir {path}: expected a directory, found a file")
        entries = list(path.iterdir())
        if entries and not (path / MARKER).exists():
            raise DemoError(f"--workdir {path}: expected an empty directory or one a previous demo made (it has "
                            f"a {MARKER} file), found {len(entries)} other entries; pick another --workdir")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by `fundflow demo`: emptied at the start of every demo run\n")
    return path


def find_rules_dir(settings: Settings) -> Path:
    """The rules the demo's worker runs, found as the worker finds them: the rules_dir setting when that directory
    exists, else the pack shipped with fundflow (so the demo runs from any directory, and from an installed
    package)."""
    try:
        return resolve_rules_dir(settings.rules_dir).path.resolve()
    except FundflowError as exc:
        raise DemoError(str(exc)) from None


def command_name() -> str:
    """How the user can call fundflow again: `fundflow` when that is on PATH, else the script's path."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    on_path = shutil.which("fundflow")
    if script is None or script.name != "fundflow" or (on_path and Path(on_path).resolve() == script.resolve()):
        return "fundflow"
    try:
        return os.path.relpath(script.resolve())
    except ValueError:
        return str(script.resolve())


def run_demo(options: DemoOptions, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    steps = _Steps(out)
    with Cleanup() as cleanup:
        return _run(options, steps, cleanup, err)


def _run(options: DemoOptions, steps: _Steps, cleanup: Cleanup, err: TextIO) -> int:
    base = load_settings(options.settings_file)
    rules_dir = find_rules_dir(base)
    workdir = prepare_workdir(Path(options.workdir))
    steps.say(f"fundflow demo in {workdir} (rules: {rules_dir})")

    broker = devstack.start_kafka(workdir=workdir / "broker")
    cleanup.add("broker", broker.stop)
    steps.say(f"broker: tansu (Kafka API) on {broker.bootstrap}")

    store_url, store_description, server = _start_store(options, workdir, cleanup)
    steps.say(f"store: {store_url} ({store_description})")

    secret = secrets.token_hex(16)
    webhook = WebhookReceiver(secret).start()
    cleanup.add("webhook receiver", webhook.stop)
    steps.say(f"pager webhook: receiver on {webhook.url} (HMAC-signed with a random demo secret)")

    params = options.sim_params()
    ledger_path, truth_path = workdir / "ledger.jsonl", workdir / "truth.json"
    report = write_ledger(params, ledger_path, truth_path)
    steps.say(f"ledger: {report.events:,} events over {params.days} days, {report.planted} planted laundering "
              f"instances of {len(params.kinds)} typologies, {report.lookalikes} benign look-alikes "
              f"({ledger_path.name}, {truth_path.name})")

    settings = base.with_overrides(broker_url=broker.url)
    topics = [settings.disbursements_topic, settings.transfers_topic, settings.warnings_topic,
              settings.deadletter_topic]
    broker.create_topics(topics, settings.topic_partitions)
    web_port = devstack.free_port()
    app_id = f"fundflow-demo-{secrets.token_hex(4)}"
    env = {
        "FUNDFLOW_BROKER_URL": broker.url,
        "FUNDFLOW_APP_ID": app_id,
        "FUNDFLOW_CLICKHOUSE_URL": store_url,
        "FUNDFLOW_CLICKHOUSE_BATCH_INTERVAL": "500ms",
        "FUNDFLOW_WEBHOOK_URL": webhook.url,
        "FUNDFLOW_WEBHOOK_SECRET": secret,
        "FUNDFLOW_WEBHOOK_FORMAT": "generic",
        "FUNDFLOW_RULES_DIR": str(rules_dir),
        "FUNDFLOW_WEB_PORT": str(web_port),
        "FUNDFLOW_DATA_DIR": str(workdir / "worker-data"),
        "FUNDFLOW_BROKER_SESSION_TIMEOUT": DEMO_SESSION_TIMEOUT,
        "FUNDFLOW_BROKER_REBALANCE_TIMEOUT": DEMO_SESSION_TIMEOUT,
    }
    worker = start_worker(env, workdir / "logs" / "worker.log", web_port, settings_file=options.settings_file)
    cleanup.add("worker", worker.stop)
    steps.say(f"worker: `fundflow worker` started (pid {worker.process.pid}, consumer group {app_id}, "
              f"metrics {worker.url('/metrics')})")
    waited = wait_ready(worker, timeout_s=READY_TIMEOUT_S)
    steps.say(f"worker ready after {waited:.1f} s (partitions assigned, store and webhook reachable)")

    produce_started = time.monotonic()
    produced = produce_file(ledger_path, settings, rate=options.rate, progress=options.progress)
    produce_ended = time.monotonic()
    sent = sum(produced.sent.values())
    refused = sum(produced.refused.values())
    per_topic = ", ".join(f"{topic} {count:,}" for topic, count in sorted(produced.sent.items()))
    steps.say(f"produced {sent:,} events ({per_topic})" + (f"; {refused} lines refused" if refused else ""))

    timeout_s = options.timeout_s or 120.0 + sent / 200
    result = _follow_worker(worker, sent, timeout_s, options.progress, err, since=produce_started)
    steps.say(f"worker handled all {result.progress.handled:,} events and its {result.progress.warnings:,} "
              f"warnings are stored and paged; stopping it")
    code = worker.stop()
    steps.say(f"worker stopped ({describe_exit(code)})")

    store = open_store(store_url)
    try:
        rows = store.select_warnings(WarningFilter(limit=ALL_ROWS))
        stored = store.count_distinct()
    finally:
        store.close()
    quality = evaluate([warning_from_dict(row_to_warning_json(row), where=f"stored warning {row['warning_id']}")
                        for row in rows], load_truth(truth_path))

    pages = webhook.log
    figures = DemoFigures(
        send_rate=sent / max(produce_ended - produce_started, 1e-3),
        catch_up_s=max(0.0, result.finished_at - produce_ended), events_produced=sent,
        events_consumed=result.progress.consumed, dead_letters=result.progress.deadlettered,
        warnings_raised=result.progress.warnings, processing_s=result.processing_s,
        pages_received=pages.received, pages_verified=pages.signatures_ok(), pages_refused=pages.refused,
        storm_summaries=pages.by_kind().get("storm_summary", 0), pages_held=result.progress.pages_held,
        store_url=store_url, store_description=store_description,
        query_commands=_query_commands(store_url),
        note=_store_note(server is not None, options.keep),
        truth_path=_shown(truth_path), log_paths=(_shown(worker.log_path), _shown(broker.server.log_files[0])),
        wall_s=steps.elapsed)
    steps.out.write("\n" + render(figures, rows, stored, quality) + "\n")
    steps.out.flush()

    if options.after_summary is not None:
        options.after_summary(store_url)
    elif options.keep:
        _stay_up(steps, broker, server)
    return 0


def _start_store(options: DemoOptions, workdir: Path, cleanup: Cleanup):
    """(store url, description, ClickHouse server or None)."""
    if options.store == "server":
        server = devstack.start_clickhouse(workdir=workdir / "clickhouse")
        cleanup.add("ClickHouse server", server.stop)
        return server.url, f"ClickHouse server on {server.host}:{server.port}, table {server.database}.{TABLE}", \
            server
    path = workdir / "chdb"
    return f"chdb://{path}", f"embedded ClickHouse (chDB), table {DEFAULT_CHDB_DATABASE}.{TABLE}", None


def _follow_worker(worker: WorkerProcess, expected: int, timeout_s: float, progress: bool,
                   err: TextIO, *, since: float) -> FollowResult:
    from tqdm import tqdm

    bar = tqdm(total=expected, desc="worker", unit="ev", file=err, disable=not progress, dynamic_ncols=True)

    def show(p) -> None:
        bar.n = min(p.handled, expected)
        bar.set_postfix(warnings=p.warnings, stored=p.stored, refresh=False)
        bar.refresh()

    try:
        return follow(worker, expected, timeout_s=timeout_s, since=since, on_progress=show)
    finally:
        bar.close()


def _query_commands(store_url: str) -> tuple[str, ...]:
    fundflow = command_name()
    env = f"FUNDFLOW_CLICKHOUSE_URL={store_url}"
    return (f"{env} {fundflow} warnings --severity high --limit 10",
            f"{env} {fundflow} warnings --rule rapid-cashout --json")


def _store_note(server: bool, keep: bool) -> str:
    if server and not keep:
        return "(the demo's ClickHouse server stops when the demo ends: rerun with --keep to query it)"
    if server:
        return "(the ClickHouse server keeps running until you press Ctrl-C)"
    return ""


def _shown(path: Path) -> str:
    """A path relative to the current directory when it is below it (shorter to read and to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _stay_up(steps: _Steps, broker: devstack.KafkaBroker, server) -> None:
    running = f"broker {broker.bootstrap}" + (f", ClickHouse server {server.host}:{server.port}" if server else "")
    steps.say(f"--keep: {running} still running; press Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        steps.say("stopping")
