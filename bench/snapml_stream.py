"""The peer: IBM Snap ML's GraphFeaturePreprocessor streaming a ledger one transfer at a time, on one thread.

Run by `bench.peer` under an interpreter that has snapml (the optional extra `bench`: `pip install '.[bench]'`,
or any virtualenv named by FUNDFLOW_SNAPML_PYTHON); fundflow itself never imports it. Prints one JSON object.

The preprocessor is given the pattern features that match fundflow's kinds on the same ledger (fan in/out and
degree for fan_in/fan_out, scatter-gather, temporal and length-constrained cycles up to 8 edges for cycle), with
the windows of bench/overrides/amlsim.override.yaml and the replay's 30-day graph window; vertex statistics,
which fundflow does not compute, are off. Each transfer is handed to `transform` on its own, as a stream
delivers it, and only those calls are timed (CPU time of this process): reading and converting the ledger to
the numpy edge list is left out, which favours the peer, whereas fundflow's figure includes parsing its JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from datetime import datetime
from pathlib import Path

DAY_S = 86_400


def edge_list(path: Path, limit: int | None):
    """[edge id, source id, target id, timestamp (s), amount] per transfer, in ledger order."""
    import numpy as np

    ids: dict[str, int] = {}
    rows = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("type") != "transfer":
                continue
            ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
            rows.append((len(rows), ids.setdefault(event["src"], len(ids)), ids.setdefault(event["dst"], len(ids)),
                         int(ts), float(event["amount"])))
            if limit is not None and len(rows) >= limit:
                break
    return np.array(rows, dtype=np.float64)


def preprocessor():
    from snapml import GraphFeaturePreprocessor

    gp = GraphFeaturePreprocessor()
    gp.set_params({
        "num_threads": 1, "time_window": 30 * DAY_S, "vertex_stats": False,
        "fan": True, "fan_tw": 5 * DAY_S, "degree": True, "degree_tw": 5 * DAY_S,
        "scatter-gather": True, "scatter-gather_tw": 20 * DAY_S,
        "temp-cycle": True, "temp-cycle_tw": 20 * DAY_S,
        "lc-cycle": True, "lc-cycle_tw": 20 * DAY_S, "lc-cycle_len": 8,
    })
    return gp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/snapml_stream.py", description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="only the first N transfers")
    args = parser.parse_args(argv)
    import snapml  # noqa: F401 - fails here, clearly, when the interpreter has no snapml

    edges = edge_list(args.ledger, args.limit)
    gp = preprocessor()
    features = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for index in range(len(edges)):
        features = gp.transform(edges[index:index + 1]).shape[1]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    json.dump({"events": len(edges), "cpu_s": cpu, "wall_s": wall, "features": features}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
