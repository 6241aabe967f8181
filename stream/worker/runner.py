"""Running the worker: the production detector, topics, then Faust's own worker loop until a signal."""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from typing import Callable, Iterator

import faust

from ..detection.detector import Detector
from ..detection.tracer import TracerOptions
from ..detection.rulebook import load_rules
from ..settings import Settings
from .compose import Worker, build_worker
from .handler import DetectorLike
from .reload import IndicatorReloader, RuleReloader
from .topics import ensure_topics
from .tuning import FREEZE_GC_EVERY, GC_THRESHOLD

log = logging.getLogger(__name__)


def build_production(settings: Settings) -> tuple[Callable[[], DetectorLike], RuleReloader,
                                                   IndicatorReloader | None]:
    """A factory of fresh detectors over the running rules and indicators, and the reloaders that keep them current
    (no indicator reloader when indicators_dir is unset).

    Rules and indicators are loaded once here, so a broken rules directory or indicator set stops the start with
    every error listed.
    """
    def load() -> object:
        # with the window, so a rule that looks further back than the graph remembers is refused
        return load_rules(settings.rules_dir, window_ms=settings.window)

    rules = RuleReloader(settings.rules_dir, load(), load)
    log.info("rules %s loaded from %s: %d rules", rules.current.version, settings.rules_dir, len(rules.current))
    tracer = TracerOptions.from_settings(settings)
    indicators = None
    if settings.indicators_dir is not None:
        from ..indicators.configured import configured_set

        def load_indicators() -> object:
            return configured_set(settings)

        indicators = IndicatorReloader(settings.indicators_dir, load_indicators(), load_indicators)
        log.info("indicators loaded from %s: %s", settings.indicators_dir, indicators.current.describe())

    def make_detector() -> DetectorLike:
        # Frozen out of the cyclic collector's sight as replay does it (see `run_worker`).
        return Detector(rules.current, window_ms=settings.window, lateness_ms=settings.allowed_lateness,
                        tracer=tracer,    # detected_at: the Kafka timestamp of the completing record
                        indicators=indicators.current if indicators is not None else None,
                        identity_fields=settings.identity_fields, freeze_gc_every=FREEZE_GC_EVERY)

    return make_detector, rules, indicators


def run_worker(settings: Settings, detector: DetectorLike | Callable[[], DetectorLike] | None = None, *,
               loglevel: str = "info", app_id: str | None = None,
               on_built: Callable[[Worker], None] | None = None) -> int:
    """Create missing topics, build the app and block until the worker is stopped. Returns an exit code.

    Without `detector`, the production detector over `rules_dir` runs, and the rules are hot-reloaded.
    `on_built` is handed the built worker before it starts.
    """
    rules = indicators = None
    if detector is None:
        detector, rules, indicators = build_production(settings)
    created = ensure_topics(settings)
    if created:
        log.info("created topics %s", ", ".join(created))
    built = build_worker(settings, detector, app_id=app_id, rules=rules, indicators=indicators)
    if on_built is not None:        # the layers above add to the process, e.g. the console (fundflow worker)
        on_built(built)
    worker = faust.Worker(built.app, loglevel=loglevel, quiet=True)
    try:
        # The collector tuned as for replay: detection allocates several objects per event, nearly all freed by
        # reference counting or kept in the window, so young collections every 700 allocations only rescan
        # survivors. The production detector also freezes the window every FREEZE_GC_EVERY events, so full
        # collections no longer rescan it; what is cyclic garbage in the oldest generation at that moment stays
        # uncollected (Faust and asyncio make little: futures and tasks are freed by reference counting).
        with tuned_collector():
            worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@contextmanager
def tuned_collector() -> Iterator[None]:
    """The collector's thresholds set to GC_THRESHOLD for the worker's life, restored afterwards."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
