"""What the evidence chain costs: `python -m bench.evidence [--copies N] [--server]`.

- sink throughput with the chain on and off: the ClickHouse sink's work per batch of 500 warnings (warning rows,
  then evidence rows, rule texts, chain records and checkpoints), synchronously on the embedded store (chDB) and,
  with --server, on a local ClickHouse server started for the run; with --live, also a real `fundflow worker`
  draining the same warnings, with their evidence headers, pre-loaded into its outbox (rate from its first
  stored batch to its last chained or stored warning, read from /metrics);
- bytes per warning in the store: on-disk bytes of each table (system.parts) over the warnings stored;
- export time of one warning's bundle (`fundflow evidence export`'s work, without the process start);
- memory per windowed event of the worker's evidence index (tracemalloc while it records the ledger).

The warnings are real: the default simulated ledger (seed 7, 35,927 events) through the worker's handler with its
evidence index; each is stored `--copies` times under distinct ids to make batches big enough to time.
Prints the figures as a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import orjson

from stream.detection.detector import Detector
from stream.evidence.keys import ensure_signing_key
from stream.model.events import parse_event
from stream.offline.evidence_bundle import build_bundle
from stream.detection.rulebook import load_rules
from stream.settings import Settings
from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.sinks import evidence_tables as tables
from stream.sinks.chain import ChainItem, EvidenceChain
from stream.sinks.schema import TABLE, warning_to_row
from stream.sinks.store import WarningStore, identifier, literal
from stream.worker.compose import recorded_settings
from stream.worker.deadletter import Origin
from stream.worker.evidence_index import EvidenceIndex
from stream.worker.handler import MessageHandler

from .report import Figure, info, render

BATCH = 500


def detected(rules: Path, seed: int = 7) -> tuple[list[ChainItem], dict]:
    """A simulated ledger through the handler; the warnings with their sources, and the index's memory."""
    events, _ = simulate(SimParams(seed=seed))
    lines = [orjson.dumps(event) for event in events]
    handler = MessageHandler(Detector(load_rules(rules)), evidence=None)
    index = EvidenceIndex(Settings().window, Settings().allowed_lateness)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for offset, line in enumerate(lines):           # the index alone, to attribute memory to it
        index.record(parse_event(line), line, Origin("fundflow.transfers", offset % 3, offset))
    index_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    memory = {"events": len(index), "bytes_per_event": index_bytes / max(len(index), 1),
              "value_bytes_per_event": sum(len(s.value) for s in index.by_event.values()) / max(len(index), 1)}
    handler.evidence = EvidenceIndex(Settings().window, Settings().allowed_lateness)
    items, settings = [], recorded_settings(Settings())
    for offset, line in enumerate(lines):
        outcome = handler.handle(line, key=None, origin=Origin("fundflow.transfers", offset % 3, offset))
        for warning, sources, text in zip(outcome.warnings, outcome.sources, outcome.rule_texts):
            items.append(ChainItem(len(items) % 3, len(items) // 3, warning, sources, text, settings))
    return items, memory


def copies(items: list[ChainItem], count: int) -> list[ChainItem]:
    out = []
    for copy in range(count):
        for item in items:
            warning = replace(item.warning, warning_id=f"{item.warning.warning_id}-{copy}")
            out.append(ChainItem(item.partition, len(out), warning, item.sources, item.rule_text,
                                 item.settings_text))
    return out


def store_all(store: WarningStore, items: list[ChainItem], chain: EvidenceChain | None) -> float:
    """Seconds to store every warning (and chain it), batch by batch as the sink does."""
    started = time.perf_counter()
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        store.insert_rows([warning_to_row(item.warning, 1) for item in batch])
        if chain is not None:
            chain.append(batch)
    if chain is not None:
        chain.sign_due(force=True)
    return time.perf_counter() - started


NAMES = (TABLE, tables.EVENTS, tables.RULES, tables.SETTINGS, tables.CHAIN, tables.CHECKPOINTS)


def table_bytes(store: WarningStore) -> dict[str, tuple[int, int]]:
    """Per table: (compressed bytes on disk, uncompressed bytes), after merging every table into one part."""
    for name in NAMES:
        store.execute(f"OPTIMIZE TABLE {identifier(store.database)}.{identifier(name)} FINAL")
    rows = store.query(f"SELECT table, sum(bytes_on_disk) AS disk, sum(data_uncompressed_bytes) AS raw "
                       f"FROM system.parts WHERE active AND database = {literal(store.database)} AND table IN "
                       f"({', '.join(literal(n) for n in NAMES)}) GROUP BY table")
    return {str(row["table"]): (int(row["disk"]), int(row["raw"])) for row in rows}


def measure(open_store, label: str, items: list[ChainItem], distinct: list[ChainItem], root: Path) -> list[Figure]:
    """Throughput over `items` (copies), chain off then on; bytes and export time over `distinct` (no copies:
    copies would compress far better than real warnings)."""
    key = ensure_signing_key(None, root)
    figures = []
    rates = {}
    for mode in ("off", "on", "bytes"):
        store = open_store(mode)
        try:
            store.ensure_schema()
            chain = None
            if mode != "off":
                chain = EvidenceChain(store, key)
                chain.ensure_schema()
            if mode != "bytes":
                rates[mode] = len(items) / store_all(store, items, chain)
                continue
            store_all(store, distinct, chain)
            sizes = table_bytes(store)
            count = len(distinct)
            disk, raw = sizes.get(TABLE, (0, 0))
            figures.append(info(f"{label}: warning row, bytes per warning", disk / count, "B",
                                f"{raw / count:,.0f} B uncompressed; {count} distinct warnings"))
            evidence_disk = sum(d for k, (d, _) in sizes.items() if k != TABLE)
            evidence_raw = sum(r for k, (_, r) in sizes.items() if k != TABLE)
            figures.append(info(f"{label}: evidence + chain, bytes per warning", evidence_disk / count, "B",
                                f"{evidence_raw / count:,.0f} B uncompressed; on disk: " + ", ".join(
                                    f"{k} {d / count:,.0f}" for k, (d, _) in sorted(sizes.items()) if k != TABLE)))
            ids = [item.warning.warning_id for item in distinct[:: max(1, count // 20)]][:20]
            times = []
            for warning_id in ids:
                started = time.perf_counter()
                data = build_bundle(store, warning_id, Settings())
                times.append(time.perf_counter() - started)
            figures.append(info(f"{label}: export of one warning", statistics.median(times) * 1000, "ms",
                                f"median of {len(ids)}; max {max(times) * 1000:.0f} ms; bundle {len(data):,} B"))
        finally:
            store.close()
    figures.append(info(f"{label}: sink, chain off", rates["off"], "warnings/s", f"{len(items):,} warnings in "
                                                                                f"batches of {BATCH}"))
    figures.append(info(f"{label}: sink, chain on", rates["on"], "warnings/s",
                        f"{rates['on'] / rates['off']:.2f}x of off"))
    return figures


def live(items: list[ChainItem], rules: Path, server: bool) -> list[Figure]:
    """A real worker's ClickHouse sink draining `items` from its outbox, with the chain off, then on."""
    from kafka import KafkaProducer

    from stream.worker.publisher import DETECTOR_HEADER, EVIDENCE_HEADER, RULE_HEADER, encode_evidence

    from .stack import Worker, local_stack
    label = "ClickHouse 18.16" if server else "chDB"
    rates = {}
    with local_stack(clickhouse=server) as stack:
        for mode in ("false", "true"):
            worker = Worker(stack, rules, settings={"evidence_chain": mode, "clickhouse_batch_interval": "200ms"})
            producer = KafkaProducer(bootstrap_servers=stack.broker.bootstrap, acks="all", linger_ms=20)
            for item in items:
                headers = [(EVIDENCE_HEADER, encode_evidence(item.sources)), (RULE_HEADER, item.rule_text.encode()),
                           (DETECTOR_HEADER, item.settings_text.encode())]
                producer.send(worker.topics["warnings_topic"], key=item.warning.warning_id.encode(),
                              value=item.warning.to_json(), headers=headers)
            producer.flush(timeout=60)
            producer.close()
            done = "fundflow_evidence_records_total" if mode == "true" else "fundflow_sink_deliveries_total"
            try:
                worker.start()
                first = worker.wait_until(lambda: worker.total("fundflow_sink_deliveries_total") > 0 and
                                          (time.perf_counter(), worker.total("fundflow_sink_deliveries_total")),
                                          "the first stored batch", 120, poll_s=0.01)
                last = worker.wait_until(lambda: worker.total(done) >= len(items) and time.perf_counter(),
                                         f"{len(items)} warnings stored", 600, poll_s=0.01)
            finally:
                worker.stop()
            rates[mode] = (len(items) - first[1]) / max(last - first[0], 1e-6)
    return [info(f"{label}, live worker: sink, chain off", rates["false"], "warnings/s",
                 f"{len(items):,} warnings pre-loaded in the outbox"),
            info(f"{label}, live worker: sink, chain on", rates["true"], "warnings/s",
                 f"{rates['true'] / rates['false']:.2f}x of off")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="store each detected warning this many times")
    parser.add_argument("--ledgers", type=int, default=4,
                        help="distinct simulated ledgers (seeds 7, 8, ...) whose warnings give the bytes figures")
    parser.add_argument("--server", action="store_true", help="also measure on a local ClickHouse server")
    parser.add_argument("--live", action="store_true",
                        help="also a real worker draining the warnings from its outbox (chDB, and the server with "
                             "--server)")
    parser.add_argument("--rules", type=Path, default=Path("rules"))
    args = parser.parse_args(argv)
    items, memory = detected(args.rules)
    cited = sum(len(item.sources) for item in items) / max(len(items), 1)
    figures = [info("evidence index, memory per windowed event", memory["bytes_per_event"], "B",
                    f"{memory['events']:,} events; of which the raw bytes {memory['value_bytes_per_event']:.0f} B"),
               info("events cited per warning", cited, "", f"{len(items)} warnings detected")]
    many = copies(items, args.copies)
    distinct = list(items)
    for seed in range(8, 7 + args.ledgers):
        more, _ = detected(args.rules, seed)
        distinct += [ChainItem(i.partition, len(distinct) + n, i.warning, i.sources, i.rule_text, i.settings_text)
                     for n, i in enumerate(more)]
    root = Path(tempfile.mkdtemp(prefix="fundflow-bench-evidence-"))
    try:
        from stream.sinks.chdb_store import ChdbStore
        figures += measure(lambda mode: ChdbStore(root / f"chdb-{mode}"), "chDB", many, distinct, root)
        if args.server:
            from stream.dev import devstack
            from stream.sinks.clickhouse import NativeStore
            server = devstack.start_clickhouse(workdir=root / "clickhouse")
            try:
                figures += measure(lambda mode: NativeStore(f"clickhouse://{server.host}:{server.port}/bench_{mode}"),
                                   "ClickHouse 18.16", many, distinct, root)
            finally:
                server.stop()
        if args.live:
            figures += live(many, args.rules, server=False)
            if args.server:
                figures += live(many, args.rules, server=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    render(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
