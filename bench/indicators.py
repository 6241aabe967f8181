"""Indicator sharing costs, in one process: `python -m bench.indicators [--entries 100000] [--ledger LEDGER.jsonl]`.

- feed size: a signed feed of N entries (half cards, a quarter devices, a quarter IPs), as written and gzipped;
- publish: hashing and signing N entries; import: reading, verifying and parsing the feed, and merging it into an
  empty local set; reading the merged set back (what the worker does at start and on every reload);
- lookup: `IndicatorSet.lookup` per call for a listed and an unlisted card, and `listed()` over every type;
- per event: CPU time of a replay of the ledger with the default pack and the shared-indicator rule enabled over
  the N-entry set, against the same pack with no indicators (the lookup's share of the per-event cost);
- false matches: the birthday bound n^2 / 2^257 for n distinct indicators (HMAC-SHA256 outputs, 256 bits).

CPU time of this process (time.process_time); prints one JSON object on stdout and a table on stderr.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from stream.indicators.feed import Feed, entries_from, load_feed, sign_feed
from stream.indicators.indicator_set import EMPTY, merge, read_set
from stream.indicators.keys import ConsortiumKey

DAY = 86_400_000
T0 = 1_772_323_200_000      # 2026-03-01T00:00:00Z


def identifiers(n: int, rng: random.Random) -> list[tuple[str, str, str, int, int]]:
    found = []
    for i in range(n):
        r = i % 4
        if r < 2:
            found.append(("card", f"62{rng.randrange(10 ** 14):014d}", "rapid_cashout", T0, T0 + DAY))
        elif r == 2:
            found.append(("device", f"dev-{rng.randrange(16 ** 10):010x}", "device_burst", T0, T0 + DAY))
        else:
            found.append(("ip", f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}", "device_burst",
                          T0, T0 + DAY))
    return found


def cpu(function, *args):
    start = time.process_time()
    value = function(*args)
    return value, time.process_time() - start


def per_call_us(function, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - start) / calls * 1e6


def replay_cpu(ledger: Path, indicators) -> tuple[float, int, int]:
    from stream.detection.rulebook import load_rules
    from stream.offline.replay import replay_file
    from stream.rules.model import RuleSet
    from dataclasses import replace

    rules = load_rules(Path(__file__).resolve().parents[1] / "rules")
    rules = RuleSet(tuple(replace(r, enabled=True) if r.id == "shared-indicator" else r for r in rules.rules),
                    version=rules.version)
    with open(os.devnull, "wb") as out:
        start = time.process_time()
        report = replay_file(ledger, rules, out, window_ms=72 * 3_600_000, lateness_ms=300_000, progress=False,
                             indicators=indicators)
        return time.process_time() - start, report.events, report.by_rule.get("shared-indicator", 0)


def per_event(ledger: Path, indicators, repeats: int) -> dict[str, object]:
    """The lookups the shared-indicator rule makes, timed alone over the ledger's events (what one event costs,
    free of the replay's noise), then replays with and without the set, interleaved, fastest of `repeats`."""
    from stream.detection.kinds.shared_indicator import EVENTS, _looked_up
    from stream.model.events import parse_event

    events = [parse_event(json.loads(line)) for line in ledger.read_bytes().splitlines() if line.strip()]
    names, types = frozenset(EVENTS), frozenset({"card", "device", "ip"})
    looked = [(event.ts, _looked_up(event, names, types)) for event in events]
    fresh = type(indicators)(indicators.slots(), dict(zip(indicators.key_ids, indicators._keys)))
    passes = []
    hits = 0
    for _ in range(2):          # the first pass normalizes and hashes every value; the second reads the cache
        start = time.process_time()
        hits = 0
        for ts, items in looked:
            for _, kind, _, value in items:
                hits += fresh.lookup(kind, value, ts) is not None
        passes.append(time.process_time() - start)
    cold_s, lookups_s = passes
    base, shared = [], []
    raised = 0
    for _ in range(repeats):
        seconds, count, _ = replay_cpu(ledger, None)
        base.append(seconds)
        seconds, count, raised = replay_cpu(ledger, indicators)
        shared.append(seconds)
    return {"events": len(events), "lookups": sum(len(items) for _, items in looked), "lookup_hits": hits,
            "lookup_us_per_event_first_pass": round(cold_s / len(events) * 1e6, 2),
            "lookup_us_per_event_cached": round(lookups_s / len(events) * 1e6, 2),
            "replay_no_indicators_us_per_event": round(min(base) / count * 1e6, 2),
            "replay_with_indicators_us_per_event": round(min(shared) / count * 1e6, 2),
            "shared_indicator_warnings": raised}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.indicators", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--ledger", type=Path, help="a ledger to replay (default: none, no per-event figure)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="replays of each kind, interleaved; the fastest counts")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    key = ConsortiumKey("k1", rng.randbytes(32))
    keys = {key.key_id: key}
    signer = Ed25519PrivateKey.generate()
    found = identifiers(args.entries, rng)
    figures: dict[str, object] = {"entries": args.entries}

    entries, hash_s = cpu(lambda: entries_from(found, [key], 90 * DAY))
    feed = Feed("lender-a", T0 + 2 * DAY, {key.key_id: key.check}, entries)
    data, sign_s = cpu(sign_feed, feed, signer)
    figures.update(feed_bytes=len(data), feed_gzip_bytes=len(gzip.compress(data)),
                   bytes_per_entry=round(len(data) / args.entries, 1), publish_hash_s=round(hash_s, 3),
                   publish_sign_s=round(sign_s, 3))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feed.json"
        path.write_bytes(data)
        from stream.indicators.feed import public_pem
        from cryptography.hazmat.primitives import serialization
        members = {"lender-a": serialization.load_pem_public_key(public_pem(signer))}
        loaded, load_s = cpu(load_feed, path, members)
        (merged, report), merge_s = cpu(merge, EMPTY, [loaded], keys, T0 + 2 * DAY)
        (Path(tmp) / "indicators.json").write_bytes(merged.to_bytes({key.key_id: key.check}))
        again, read_s = cpu(read_set, tmp, keys)
        figures.update(import_verify_parse_s=round(load_s, 3), import_merge_s=round(merge_s, 3),
                       import_total_s=round(load_s + merge_s, 3), set_read_s=round(read_s, 3),
                       set_file_bytes=(Path(tmp) / "indicators.json").stat().st_size, added=report.added)
    at = T0 + 3 * DAY
    hit = found[0][1]
    figures.update(
        lookup_hit_us=round(per_call_us(lambda: again.lookup("card", hit, at), 20_000), 2),
        lookup_miss_us=round(per_call_us(lambda: again.lookup("card", "6200000000000000", at), 20_000), 2),
        lookup_bad_value_us=round(per_call_us(lambda: again.lookup("card", "U100001", at), 20_000), 2),
        listed_any_type_miss_us=round(per_call_us(lambda: again.listed("dev-unknown", at), 20_000), 2))
    for n in (10 ** 5, 10 ** 6, 10 ** 8):
        bound = Fraction(n * n, 2 ** 257)
        figures[f"collision_bound_n{n}"] = f"{float(bound):.1e}"
    if args.ledger:
        figures.update(ledger=str(args.ledger), **per_event(args.ledger, again, args.repeats))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
