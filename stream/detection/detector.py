"""The Detector: one event in, early warnings out. Pure: no I/O, no wall clock unless one is injected.

State is partitioned by key (`partitions`, 1 by default; see `state` and `hops`). Per event: the event goes to
the partition of its first account, and every step that concerns another key is a hop queued to that key's
partition: the sender records the transfer and takes the traced money, the receiver records it and deposits
the money, a loan's borrower counts the pieces that left the ledger, a device counts the loans requested from
it. At each step the kinds of that stage run on that partition's state; what they find is a candidate, queued
to the partition of its cooldown key, where it is admitted and turned into an `EarlyWarning`. The queue is
first in, first out and every message is handled by the partition that owns its key, reading only that key's
state, so the sequence of steps, and the warnings, are the same for any partition count.

Admission:

- `rule.allow.ignores(event)` skips the rule for the event; findings whose primary account (first of
  `accounts`) is allow-listed are dropped.
- `where` is evaluated per finding over `names_for(event, disbursement)`, where `disbursement` is the loan the
  finding is about (loan-traced kinds), so analysts can filter on the originating loan (`disbursement.product`).
  A `where` that fails on an event counts as not matching (and is counted in `stats()`).
- Warning ids (`make_warning_id(rule.id, rule.version, incident)`): a loan-traced finding is one incident per
  loan, so the incident is the loan id; any other finding is its subject plus the start of the cooldown-sized
  bucket of event time of the event that raised it (`U9000@1772409600000`). A replay gives the same id; a
  warning let through once the cooldown has passed always lands in a later bucket, so it gets a new id instead of
  being dropped as a duplicate by the sinks. With no cooldown, the exact first evidence time is used: repeats of
  the same pattern share an id and the sinks keep one.
- `suppressed_by`: a rule stays quiet about an incident (its cooldown key) that one of the rules it names
  warned about within that rule's cooldown, so a looser rule of a typology does not repeat its stricter
  sibling. Both rules' cooldowns of the key live at the key's partition; rules are admitted in rule-set order
  within an event, so the stricter rule comes first in the file.
- Cooldown: at most one warning per rule and cooldown key (`loan`: the finding's loan, `account`: its primary
  account, `subject`: its subject) per `rule.cooldown.ms` of event time.
- Indicators: the detector is handed the local indicator set (`indicators=`, default empty: no sharing); the
  `shared_indicator` kind looks events up in it and a `where` can call `listed(value)`, both by event time. The
  worker swaps in a new set on reload (`replace_indicators`), as it does rules.
- `detected_at` is what the caller passes (the worker: the Kafka timestamp of the completing record), else the
  injected clock, else the event's own time, so replays are byte-for-byte deterministic.
"""

from __future__ import annotations

import gc
import heapq
from collections import Counter, deque
from dataclasses import dataclass, field
from sys import intern
from typing import Callable, Mapping

from ..errors import EventError, RuleError
from ..indicators.indicator_set import EMPTY as NO_INDICATORS
from ..indicators.indicator_set import IndicatorSet
from ..model.events import TOO_OLD as TOO_OLD_REASON
from ..model.events import Event, Transfer
from ..model.timefmt import format_ts
from ..rules.model import AllowList, Rule, RuleSet
from ..rules.names import LISTED, names_for
from ..model.warning import (MAX_SUMMARY_CHARS, TRUNCATED_KEY, EarlyWarning, capped, capped_evidence,
                       make_warning_id)
from .finding import Finding
from .graph import DEFAULT_LATENESS_MS, DEFAULT_WINDOW_MS, LATE, TOO_OLD, EventClock, sink_node
from .hops import Borrowed, Candidate, Exited, LeftVia, Message, Received, Requested, Searching, Sent
from .identity import identity_keys
from .kinds import EXITED, KINDS, LINKED, RECEIVED, REQUESTED, SENT, Kind
from .partitioning import partition_of
from .state import DetectionState, SearchLimits, device_keys
from .tracer import TracerOptions, exits_by_loan


# Events between two freezes of long-lived objects (see `freeze_long_lived_objects`); 0 (default) never freezes:
# freezing is process-wide, so the entry point (worker, replay) decides.
DEFAULT_FREEZE_GC_EVERY = 0


class _Step:
    """One rule at one stage, compiled for dispatch: its kind's `detect`, the O(1) test to pass first (None:
    none), the channels it can fire on (None: any) and which of the plan's distinct allow-lists it uses (-1:
    none)."""

    __slots__ = ("rule", "detect", "test", "channels", "allow")

    def __init__(self, rule: Rule, kind: Kind, stage: str, allow: int) -> None:
        self.rule = rule
        self.detect = kind.detect
        self.test = kind.prefilter(rule, stage) if kind.prefilter is not None else None
        self.channels = kind.channels(rule) if kind.channels is not None else None
        self.allow = allow


@dataclass(frozen=True)
class _Plan:
    """The rule set compiled for dispatch: per stage, the rules to run in rule-set order, and per stage and
    transfer channel the subset that can fire on that channel (filled the first time the channel is seen).

    Rules usually share one allow-list (the pack's top-level `allow:`, merged into each); `allows` holds each
    distinct one once, so that an event is checked against it once, not once per rule and stage."""

    rules: RuleSet
    by_stage: Mapping[str, tuple[_Step, ...]]
    allows: tuple[AllowList, ...]
    cooldown_ms: Mapping[str, int]                # rule id -> its cooldown, for `suppressed_by`
    routes: dict = field(default_factory=dict)    # stage -> channel (None: a disbursement) -> tuple[_Step, ...]

    def steps(self, stage: str, event: Event) -> tuple[_Step, ...]:
        channel = event.channel if type(event) is Transfer else None
        by_channel = self.routes.get(stage)
        if by_channel is None:
            by_channel = self.routes[stage] = {}
        route = by_channel.get(channel)
        if route is None:
            route = by_channel[channel] = tuple(
                step for step in self.by_stage[stage]
                if channel is None or step.channels is None or channel in step.channels)
        return route


def _compile(rules: RuleSet) -> _Plan:
    by_stage: dict[str, list[_Step]] = {SENT: [], RECEIVED: [], EXITED: [], REQUESTED: [], LINKED: []}
    allows: dict[AllowList, int] = {}
    for rule in rules.rules:
        kind = KINDS.get(rule.kind)
        if kind is None:
            raise RuleError(f"unknown kind {rule.kind!r}; known kinds: {', '.join(sorted(KINDS))}",
                            file=rule.source.file if rule.source else None,
                            line=rule.source.line if rule.source else None, rule_id=rule.id)
        if not rule.enabled:
            continue
        allow = allows.setdefault(rule.allow, len(allows)) if rule.allow else -1
        for stage in kind.stages:
            by_stage[stage].append(_Step(rule, kind, stage, allow))
    return _Plan(rules=rules, by_stage={name: tuple(steps) for name, steps in by_stage.items()},
                 allows=tuple(allows),
                 cooldown_ms={rule.id: rule.cooldown.ms for rule in rules.rules if rule.enabled})


class Traffic:
    """What an event's steps cost between partitions: messages handled per partition, hops that crossed from one
    partition to another, and messages per key (the hot keys)."""

    def __init__(self, partitions: int) -> None:
        self.handled = [0] * partitions
        self.crossing = 0
        self.inputs = 0
        self.by_key: Counter[str] = Counter()

    def count(self, key: str, partition: int, sender: int) -> None:
        self.handled[partition] += 1
        self.by_key[key] += 1
        if sender < 0:
            self.inputs += 1
        elif sender != partition:
            self.crossing += 1


@dataclass(slots=True)
class EventCounts:
    events: int = 0
    late: int = 0
    too_old: int = 0
    duplicates: int = 0


class Detector:
    def __init__(self, rules: RuleSet, *, window_ms: int = DEFAULT_WINDOW_MS,
                 lateness_ms: int = DEFAULT_LATENESS_MS, clock: Callable[[], int] | None = None,
                 tracer: TracerOptions | None = None, limits: SearchLimits | None = None,
                 freeze_gc_every: int = DEFAULT_FREEZE_GC_EVERY, partitions: int = 1,
                 indicators: IndicatorSet | None = None, identity_fields: tuple[str, ...] = ()) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions!r}")
        self._plan = _compile(rules)
        self._freeze_gc_every = freeze_gc_every
        self._until_freeze = freeze_gc_every
        self._clock = clock
        self.event_clock = EventClock(window_ms, lateness_ms)
        self.identity_fields = tuple(identity_fields)
        self.partitions = [DetectionState(self.event_clock, tracer=tracer, limits=limits,
                                          identity_fields=self.identity_fields)
                           for _ in range(partitions)]
        self.counts = EventCounts()
        self.indicators = indicators if indicators is not None else NO_INDICATORS
        self.replace_indicators(self.indicators)
        self.warnings_by_rule: Counter[str] = Counter()
        self.suppressed_by_rule: Counter[str] = Counter()
        self.where_errors_by_rule: Counter[str] = Counter()
        self._searches: dict[int, tuple[Rule, Event, object]] = {}    # multi-hop searches of the current event
        self._ignored: list[bool] | None = None
        self.traffic: Traffic | None = None     # set to count what crosses partitions (bench/partitions.py)

    # -- public surface ------------------------------------------------------------------------------------
    @property
    def rules(self) -> RuleSet:
        return self._plan.rules

    @property
    def watermark(self) -> int | None:
        return self.event_clock.watermark

    def export_state(self) -> tuple:
        """Everything this detector learnt from events (not the rules): what a snapshot stores."""
        return (self.event_clock, self.partitions, self.counts)

    def import_state(self, exported: tuple) -> None:
        """Continue from an exported state; the rules stay this detector's own."""
        self.event_clock, self.partitions, self.counts = exported
        self.replace_indicators(self.indicators)

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in a new rule set; graph, tracer and cooldowns are kept. Atomic: compiled first, then one
        assignment, so an event is checked against either the old or the new set, never a mix."""
        self._plan = _compile(rules)

    def replace_indicators(self, indicators: IndicatorSet) -> None:
        """Swap in a new indicator set (a reload of indicators_dir); state and rules are kept. Between two events:
        every partition reads the same set."""
        self.indicators = indicators
        for state in self.partitions:
            state.indicators = indicators

    def _index(self, key: str) -> int:
        count = len(self.partitions)
        return partition_of(key, count) if count > 1 else 0

    def partition(self, key: str) -> DetectionState:
        partitions = self.partitions
        return partitions[0] if len(partitions) == 1 else partitions[partition_of(key, len(partitions))]

    def process(self, event: Event, detected_at: int | None = None) -> list[EarlyWarning]:
        """The warnings this event completes; `detected_at`, when given, is their detection time (the worker
        passes the Kafka timestamp of the record, so a replay of the log re-emits byte-identical warnings).

        An event older than the window is refused with `EventError(too_old)`: it can no longer be judged, and
        the caller dead-letters it rather than drop it in silence. A duplicate event id (at-least-once delivery)
        is recorded once and raises nothing."""
        counts = self.counts
        counts.events += 1
        verdict = self.event_clock.classify(event.ts)
        if verdict == TOO_OLD:
            counts.too_old += 1
            cutoff = self.event_clock.cutoff
            raise EventError(TOO_OLD_REASON, f"event time {format_ts(event.ts)} is older than the window, which "
                                             f"starts at {format_ts(cutoff) if cutoff is not None else '?'}",
                             event_id=event.event_id)
        first: Message = (Sent(event.src, event) if isinstance(event, Transfer)
                          else Borrowed(event.account, event))
        home = self.partition(first.key)
        home.catch_up()
        if home.graph.holds(event):
            counts.duplicates += 1
            return []
        if verdict == LATE:
            counts.late += 1
        self.event_clock.advance(event.ts)
        if self._freeze_gc_every:
            self._until_freeze -= 1
            if self._until_freeze <= 0:
                self._until_freeze = self._freeze_gc_every
                freeze_long_lived_objects()
        warnings: list[EarlyWarning] = []
        self._ignored: list[bool] | None = None       # the plan's allow-lists on this event, once asked
        queue: deque[Message] = deque((first,))
        self._searches: dict[int, tuple[Rule, Event, object]] = {}
        traffic = self.traffic
        senders: deque[int] | None = deque((-1,)) if traffic is not None else None   # who queued each message
        partitions, clock = self.partitions, self.event_clock
        only = partitions[0] if len(partitions) == 1 else None      # one partition: nothing to route
        while queue or self._searches:
            if not queue:       # every branch of every search is back: what they found, in the order they began
                searches, self._searches = self._searches, {}
                for rule, trigger, search in searches.values():
                    for finding in search.finish():
                        queue.append(Candidate(self._cooldown_key(rule, finding), rule, trigger, finding))
                        if senders is not None:
                            senders.append(self._index(trigger.dst))
                continue
            message = queue.popleft()
            state = only if only is not None else self.partition(message.key)
            if state._caught_up_to != clock.cutoff:          # what `catch_up` checks first, without the call
                state.catch_up()
            if senders is not None:
                index, queued = self._index(message.key), len(queue)
                traffic.count(message.key, index, senders.popleft())
            kind = type(message)
            if kind is Sent:
                self._sent(state, message, queue)
            elif kind is Received:
                self._received(state, message, queue)
            elif kind is Exited:
                self._exited(state, message, queue)
            elif kind is LeftVia:
                arrived = state.identities.arrive(message.key, message.transfer, message.pieces)
                state.enter(LINKED, node=message.key, arrived=arrived)
                self._run(LINKED, state, message.transfer, queue)
            elif kind is Borrowed:
                self._borrowed(state, message, queue)
            elif kind is Requested:
                self._requested(state, message, queue)
            elif kind is Searching:
                queue.extend(message.search.expand(state, message))
            else:
                warning = self._admit(state, message.rule, message.event, message.finding, detected_at)
                if warning is not None:
                    warnings.append(warning)
            if senders is not None:
                senders.extend([index] * (len(queue) - queued))
        return warnings

    def stats(self) -> dict[str, object]:
        counts = self.counts
        partitions = self.partitions
        graphs = [state.graph for state in partitions]
        tracers = [state.tracer for state in partitions]
        tracer_counters = {name: sum(getattr(tracer.counters, name) for tracer in tracers)
                           for name in tracers[0].counters.__slots__}
        return {
            "events": counts.events, "late": counts.late, "too_old": counts.too_old,
            "duplicates": counts.duplicates,
            "nodes": sum(graph.node_count for graph in graphs), "edges": self.edge_count,
            "evicted_edges": sum(graph.evicted_edges for graph in graphs),
            "lots": sum(tracer.lot_count for tracer in tracers), "loans": sum(t.loan_count for t in tracers),
            "devices": sum(len(state.devices) for state in partitions),
            "tracer": tracer_counters,
            "watermark": self.watermark,
            "warnings": dict(sorted(self.warnings_by_rule.items())),
            "suppressed": dict(sorted(self.suppressed_by_rule.items())),
            "where_errors": dict(sorted(self._where_errors().items())),
        }

    @property
    def edge_count(self) -> int:
        """Windowed edges held, over all partitions (an edge between two partitions is held by both)."""
        return sum(state.graph.edge_count for state in self.partitions)

    def _where_errors(self) -> Counter[str]:
        """Failures this detector caught, plus those a compiled expression counted itself (it never raises)."""
        errors = Counter(self.where_errors_by_rule)
        for rule in self.rules.rules:
            failures = getattr(getattr(rule.where, "stats", None), "failures", 0)
            if failures:
                errors[rule.id] += failures
        return errors

    # -- the steps of an event -----------------------------------------------------------------------------
    def _sent(self, state: DetectionState, message: Sent, queue: deque) -> None:
        """At the sender: record the edge, take the traced money, run the sender's kinds, send it on."""
        t = message.transfer
        # The graph's interned node names: what the tracer's hops keep for the window, one string per node.
        dst = intern(sink_node(t))
        external = t.channel != "p2p"
        attrs = state.graph.insert_transfer(t, dst=dst)
        allocation = state.tracer.take(t, dst, state.clock.cutoff)
        identities = state.identities
        identities.saw(t.src, identity_keys(t, self.identity_fields), t.ts)
        if allocation.loan_amount:
            attrs.loan = allocation.loan_amount
            attrs.loans = allocation.loan_ids
            identities.left(t, allocation.pieces)
        before = state.provenance.inflows(t.src)
        counterparties = state.graph.counterparty_count(t.src)
        state.enter(SENT, allocation=allocation)
        fired = self._run(SENT, state, t, queue)
        queue.append(Received(dst, t, attrs, allocation, before, counterparties, fired))
        if external and allocation.pieces:
            for loan_id, pieces in exits_by_loan(allocation).items():
                record_key = pieces[0].origin.account
                queue.append(Exited(record_key, t, loan_id, tuple(pieces)))

    def _received(self, state: DetectionState, message: Received, queue: deque) -> None:
        """At the node the transfer lands on: record it, keep the money and its provenance, run its kinds."""
        t = message.transfer
        dst = message.key
        if len(self.partitions) > 1:      # with one partition the sender's step recorded it in this very graph
            state.graph.receive_transfer(t, message.attrs, dst)
        if t.channel == "p2p":       # money and provenance stay with accounts; an external node keeps neither
            # The inflow keeps the sender's interned name (the graph's one string per node), not the parsed
            # event's copy, which it would otherwise keep alive for the whole window.
            state.tracer.deposit(dst, message.allocation)
            state.provenance.add(dst, intern(t.src), t.event_id, message.attrs, message.before,
                                 message.sender_counterparties)
        arrived = state.identities.arrive(dst, t, message.allocation.pieces) if message.allocation.pieces else ()
        state.enter(RECEIVED, allocation=message.allocation, before=message.before,
                    sender_counterparties=message.sender_counterparties, fired=message.fired, node=dst,
                    arrived=arrived)
        self._run(RECEIVED, state, t, queue)

    def _exited(self, state: DetectionState, message: Exited, queue: deque) -> None:
        """At a loan's borrower, when pieces of the loan left the ledger: record them, run its kinds, and tell the
        identifiers the loan was requested from (`LeftVia`)."""
        state.tracer.record_exits(message.loan_id, message.pieces, message.transfer)
        state.enter(EXITED, loan_id=message.loan_id)
        self._run(EXITED, state, message.transfer, queue)
        loan = message.pieces[0].origin.disbursement
        if loan is not None:
            for key in identity_keys(loan, self.identity_fields):
                queue.append(LeftVia(key, message.transfer, message.pieces))

    def _borrowed(self, state: DetectionState, message: Borrowed, queue: deque) -> None:
        d = message.disbursement
        state.graph.insert_disbursement(d)
        state.tracer.disburse(d)
        state.identities.borrowed(d, identity_keys(d, self.identity_fields))
        keys = device_keys(d)
        if keys:
            queue.append(Requested(keys[0], d, keys[1:], frozenset()))

    def _requested(self, state: DetectionState, message: Requested, queue: deque) -> None:
        d = message.disbursement
        state.devices.add_loan(message.key, d)
        state.enter(REQUESTED, fired=message.fired, requester=message.key)
        fired = self._run(REQUESTED, state, d, queue)
        if message.later:
            queue.append(Requested(message.later[0], d, message.later[1:], message.fired | fired))

    def _run(self, stage: str, state: DetectionState, event: Event, queue: deque) -> frozenset[str]:
        """The stage's kinds on the partition's state; candidates queued to their cooldown key. Returns the
        rules that found something (a later stage of the same event may leave those out).

        Skipped without calling `detect`: rules that cannot fire on this transfer's channel, rules whose allow-list
        ignores the event (each distinct allow-list is asked once per event), and rules whose kind's prefilter
        says there is nothing to find (see stream.detection.kinds)."""
        fired = []
        plan = self._plan
        for step in plan.steps(stage, event):
            if step.allow >= 0:
                ignored = self._ignored
                if ignored is None:
                    ignored = self._ignored = [allow.ignores(event) for allow in plan.allows]
                if ignored[step.allow]:
                    continue
            test = step.test
            if test is not None and not test(event, state):
                continue
            rule = step.rule
            for found in step.detect(rule, event, state):
                if isinstance(found, Searching):        # a search that goes on at other keys
                    self._searches.setdefault(id(found.search), (rule, event, found.search))
                    queue.append(found)
                    continue
                fired.append(rule.id)
                queue.append(Candidate(self._cooldown_key(rule, found), rule, event, found))
        return frozenset(fired)

    # -- findings -> warnings ------------------------------------------------------------------------------
    def _admit(self, state: DetectionState, rule: Rule, event: Event, finding: Finding,
               detected_at: int | None) -> EarlyWarning | None:
        if finding.accounts and finding.accounts[0] in rule.allow.accounts:
            return None
        if rule.where is not None and not self._where(rule, event, finding):
            return None
        cooldown = rule.cooldown
        if rule.suppressed_by and self._suppressed(state, rule, finding, event.ts):
            self.suppressed_by_rule[rule.id] += 1
            return None
        if cooldown.ms > 0:
            key = self._cooldown_key(rule, finding)
            last = state.cooldowns.get((rule.id, key))
            if last is not None and abs(event.ts - last) < cooldown.ms:
                self.suppressed_by_rule[rule.id] += 1
                return None
            state.cooldowns[(rule.id, key)] = event.ts
            heapq.heappush(state.cooldown_expiry, (event.ts + cooldown.ms, rule.id, key, event.ts))
        self.warnings_by_rule[rule.id] += 1
        cut: dict[str, int] = {}          # what the size caps left out (see stream.model.warning)
        accounts = capped(finding.accounts, "accounts", cut)
        loan_ids = capped(finding.loan_ids, "loan_ids", cut)
        txn_ids = capped(finding.txn_ids, "txn_ids", cut)
        evidence = capped_evidence(finding.evidence, cut)
        if cut:
            evidence[TRUNCATED_KEY] = cut
        return EarlyWarning(
            warning_id=make_warning_id(rule.id, rule.version, incident_key(rule, finding, event.ts)),
            rule_id=rule.id, rule_version=rule.version, kind=rule.kind, severity=rule.severity,
            score=finding.score, subject=finding.subject, accounts=accounts, loan_ids=loan_ids,
            txn_ids=txn_ids, amount=finding.amount,
            currency=finding.loan.currency if finding.loan is not None else event.currency,
            first_ts=finding.first_ts, event_ts=event.ts,
            detected_at=detected_at if detected_at is not None else (
                self._clock() if self._clock is not None else event.ts),
            summary=finding.summary[:MAX_SUMMARY_CHARS], evidence=evidence, notify=rule.notify,
        )

    def _suppressed(self, state: DetectionState, rule: Rule, finding: Finding, ts: int) -> bool:
        """Did a rule this one names in `suppressed_by` warn about the same cooldown key within its cooldown? Read
        at this key's partition, where both rules' cooldowns of this key live."""
        key = self._cooldown_key(rule, finding)
        cooldowns = self._plan.cooldown_ms
        for other in rule.suppressed_by:
            last = state.cooldowns.get((other, key))
            if last is not None and abs(ts - last) < cooldowns.get(other, 0):
                return True
        return False

    def _where(self, rule: Rule, event: Event, finding: Finding) -> bool:
        try:
            names = names_for(event, finding.loan, finding.features)
            indicators = self.indicators
            if indicators:
                names[LISTED] = lambda value, at=event.ts: indicators.listed(value, at)
            return rule.matches(names)
        except Exception:  # noqa: BLE001 - an analyst's expression must not stop the stream
            self.where_errors_by_rule[rule.id] += 1
            return False

    @staticmethod
    def _cooldown_key(rule: Rule, finding: Finding) -> str:
        """The key a finding is admitted under: its cooldown key (`loan`, `account` or `subject`)."""
        subject = rule.cooldown.subject
        if subject == "loan":
            return finding.loan_subject or (finding.loan_ids[0] if finding.loan_ids else finding.subject)
        if subject == "account":
            return finding.accounts[0] if finding.accounts else finding.subject
        return finding.subject


def freeze_long_lived_objects() -> None:
    """Collect the young generations' cyclic garbage, then move every surviving object out of the cyclic
    collector's sight.

    Without this, Python's collector periodically rescans the whole window (millions of dicts and tuples) and the
    per-event cost grows with the graph. Detection state holds no reference cycles, so frozen objects are still
    freed by reference counting when their edge or lot expires; freezing only stops the pointless rescans. Only
    the young generations are collected first: a full collection would itself rescan everything not yet frozen.
    """
    gc.collect(1)
    gc.freeze()


def incident_key(rule: Rule, finding: Finding, event_ts: int) -> str:
    """What a warning id identifies; see the module docstring."""
    if finding.loan_subject is not None:
        return finding.subject
    bucket = rule.cooldown.ms
    start = event_ts - event_ts % bucket if bucket > 0 else finding.first_ts
    return f"{finding.subject}@{start}"

