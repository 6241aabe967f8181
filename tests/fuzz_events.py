"""Fuzzing the event parser and `fundflow replay` with mutated ledger lines.

Lines of a simulated ledger are mutated (bytes flipped, cut, repeated; fields replaced by hostile values:
deep nesting, huge strings, non-ASCII digits, inexact numbers, out-of-range times) and sent through
`parse_event`. A crash is any exception other than EventError; a hang is a line that takes longer than a
second. Every accepted event is checked against the event contract by an independent oracle written from the
contract (docs/architecture.md, "Event format"), not from the parser: an accepted line the contract refuses
is a defect. Then the same lines go through `fundflow replay`, which must exit 0.

    python tests/fuzz_events.py --lines 1000000     # what `make fuzz` runs

The short version runs in CI (test_fuzz_* below).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.errors import EventError  # noqa: E402
from stream.model.events import FIELD_MAX_LEN, MAX_MESSAGE_BYTES, Disbursement, parse_event  # noqa: E402
from stream.simulate import simulate  # noqa: E402
from stream.simulate.params import SimParams  # noqa: E402

HANG_S = 1.0
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)
_MIN_TS, _MAX_TS = 946_684_800_000, 4_102_444_800_000


def hostile_values(rng: random.Random) -> str:
    """Raw JSON text of one hostile value."""
    depth = rng.choice([3, 9, 100, 1000, 1100, 5000])
    choices = [
        "[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth,
        json.dumps("x" * rng.choice([255, 256, 257, 300, 70_000])), json.dumps("٢٠٢٦-03-02T10:15:00Z"),
        json.dumps("2026-03-02T10:15:60Z"), json.dumps("2026-03-02T10:15:99.000Z"), json.dumps("ＵＳＤ"),
        json.dumps("ÄÖÜ"), json.dumps("usd"), "5.0000000000000001", "4900.001", "1e2", "1E-2", "-5", "0",
        str(10**30), "1e400", "-0.0", "NaN", "Infinity", "null", "true", "false", "[]", "{}", '""', '"   "',
        json.dumps("12.345"), json.dumps(" 12.50 "), json.dumps("1,000.00"), "-005", "742", "99999",
        json.dumps("٥٤١١"), json.dumps("54a1"), json.dumps("2150-01-01T00:00:00Z"), "1772446500", "1772446500000",
        "1772446500000.5", json.dumps("2026-02-30T00:00:00Z"), json.dumps("2026-03-02T10:15:00+24:00"),
        json.dumps("\u0000\ud7ff"), json.dumps("transfer"), json.dumps("disbursement"), json.dumps("refund"),
    ]
    return rng.choice(choices)


def mutate(line: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind < 4:                                   # structural: one field gets a hostile value, or goes
        obj = json.loads(line)
        name = rng.choice(sorted(obj) + ["extra", "type", "ts", "amount", "currency", "merchant_category"])
        if rng.random() < 0.15:
            obj.pop(name, None)
            return json.dumps(obj).encode()
        text = json.dumps({k: v for k, v in obj.items() if k != name})
        return (text[:-1] + (", " if len(text) > 2 else "") + f'"{name}": {hostile_values(rng)}}}').encode()
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        op = rng.randrange(5)
        if op == 0:
            data[at] = rng.randrange(256)
        elif op == 1:
            del data[at:at + rng.randint(1, 8)]
        elif op == 2:
            data[at:at] = data[at:at + rng.randint(1, 16)] * rng.randint(1, 3)
        elif op == 3:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:
            del data[at:]
    return bytes(data)


def contract_violation(line: bytes, event) -> str | None:
    """Why the contract refuses what the parser accepted, or None. Written from the contract alone."""
    if len(line) > MAX_MESSAGE_BYTES:
        return "message over the size limit"
    if _depth(orjson.loads(line)) > 8:
        return "nested more than 8 levels"
    obj = json.loads(line, parse_float=Decimal, parse_int=Decimal)
    fields = ("loan_id", "account", "product", "device_id", "ip") if isinstance(event, Disbursement) else \
        ("src", "dst", "channel", "device_id", "ip")
    for name in ("event_id", *fields):
        value = getattr(event, name)
        if value is not None and (not value or len(value) > FIELD_MAX_LEN[name] or value != value.strip()):
            return f"{name} {value[:20]!r} breaks its length or blank rule"
    if not re.fullmatch(r"[A-Z]{3}", event.currency, re.ASCII):
        return f"currency {event.currency!r}"
    if not _MIN_TS <= event.ts < _MAX_TS:
        return f"ts {event.ts} out of range"
    raw_ts = obj["ts"]
    if isinstance(raw_ts, str):
        match = _RFC3339.fullmatch(raw_ts.strip())
        if not match or int(match.group(6)) > 59:
            return f"ts text {raw_ts[:40]!r} is not contract RFC 3339"
        expected = _instant(match)
        if expected != event.ts:
            return f"ts {raw_ts!r} read as {event.ts}, contract says {expected}"
    elif raw_ts != event.ts:
        return f"numeric ts {raw_ts} read as {event.ts}"
    try:
        exact = Decimal(str(obj["amount"]).strip()) * 100
    except InvalidOperation:
        return f"amount {str(obj['amount'])[:30]!r} is not a number"
    if exact != event.amount or not 0 < event.amount <= 10**15:
        return f"amount {obj['amount']!r} read as {event.amount} minor units"
    if isinstance(event, Disbursement):
        return None
    if event.src == event.dst:
        return "self transfer"
    if event.merchant_category is not None and not re.fullmatch(r"[0-9]{4}", event.merchant_category, re.ASCII):
        return f"merchant_category {event.merchant_category!r}"
    return None


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _instant(match: re.Match) -> int:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    shift = 0
    if offset not in ("Z", "z"):
        shift = (1 if offset[0] == "+" else -1) * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return (int(moment.timestamp()) - shift) * 1000 + int((fraction or ".0")[1:].ljust(3, "0")[:3])


def seed_lines() -> list[bytes]:
    events, _ = simulate(SimParams(seed=5, accounts=300, days=2, instances=2, background_per_day=1000))
    return [json.dumps(event).encode() for event in events]


def fuzz(lines: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    good = seed_lines()
    figures = {"lines": 0, "accepted": 0, "refused": 0, "crashes": 0, "hangs": 0, "contract_violations": 0,
               "slowest_s": 0.0, "samples": []}
    mutated: list[bytes] = []
    for _ in range(lines):
        line = mutate(rng.choice(good), rng)
        mutated.append(line)
        figures["lines"] += 1
        started = time.perf_counter()
        try:
            event = parse_event(line)
        except EventError:
            figures["refused"] += 1
            event = None
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            figures["crashes"] += 1
            figures["samples"].append(f"crash {type(exc).__name__}: {str(exc)[:100]} on {line[:80]!r}")
            event = None
        elapsed = time.perf_counter() - started
        figures["slowest_s"] = max(figures["slowest_s"], elapsed)
        if elapsed > HANG_S:
            figures["hangs"] += 1
        if event is not None:
            figures["accepted"] += 1
            why = contract_violation(line, event)
            if why:
                figures["contract_violations"] += 1
                figures["samples"].append(f"accepted but {why}: {line[:80]!r}")
    figures["mutated"] = mutated
    return figures


def replay(lines: list[bytes], timeout_s: float) -> tuple[int, float, str]:
    """`fundflow replay` over the lines; (exit code, seconds, its last stderr line)."""
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "mutated.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        started = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).with_name("fundflow")), "replay", str(path),
                               "--out", str(Path(workdir) / "warnings.jsonl"), "--no-progress"],
                              capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
        tail = (done.stderr.strip().splitlines() or [""])[-1]
        return done.returncode, time.perf_counter() - started, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = fuzz(args.lines, args.seed)
    parse_s = time.perf_counter() - started
    code, replay_s, tail = replay(figures.pop("mutated"), timeout_s=3600)
    samples = figures.pop("samples")
    print(f"parser: {figures['lines']:,} mutated lines in {parse_s:.0f}s: {figures['accepted']:,} accepted, "
          f"{figures['refused']:,} refused, crashes {figures['crashes']}, hangs {figures['hangs']} (slowest line "
          f"{figures['slowest_s'] * 1000:.1f} ms), accepted lines the contract refuses "
          f"{figures['contract_violations']}")
    print(f"fundflow replay: exit code {code} in {replay_s:.0f}s ({tail})")
    for sample in samples[:20]:
        print(f"  {sample}")
    ok = code == 0 and not figures["crashes"] and not figures["hangs"] and not figures["contract_violations"]
    return 0 if ok else 1


def test_fuzz_parser_short():
    figures = fuzz(20_000, seed=3)
    figures.pop("mutated")
    samples = figures.pop("samples")
    assert figures["crashes"] == 0 and figures["hangs"] == 0 and figures["contract_violations"] == 0, samples[:5]
    assert figures["accepted"] > 1000 and figures["refused"] > 5000     # the mutations reach both sides


def test_fuzz_replay_short():
    figures = fuzz(5_000, seed=4)
    code, _, tail = replay(figures["mutated"], timeout_s=120)
    assert code == 0, tail


if __name__ == "__main__":
    sys.exit(main())
