"""The worker's inner timings and batch sizes, in one place: values no setting reaches, because changing them
changes no outcome, only how often the loops wake and how much they take at once."""

# input in batches (app.py, batches.py)
INPUT_QUEUE_DEPTH = 1           # fetched batches waiting for the input agent; the fetch loop waits beyond it
ALIGN_TICK_S = 0.1              # how often held events are re-checked, so an idle source releases the others
SNAPSHOT_CHECK_S = 1.0          # how often the snapshot timer looks for a moment between batches
SHUTDOWN_FLUSH_TIMEOUT_S = 10.0  # longest the aligner's held events may take to detect and publish at shutdown

# the cyclic collector (runner.py): replay's values (stream/offline/replay.py), so the worker pays the offline gc cost
GC_THRESHOLD = (50_000, 20, 10)     # young collections every 50,000 allocations instead of 700
FREEZE_GC_EVERY = 100_000           # events between two freezes of the window (Detector freeze_gc_every)

# the pipeline (pipeline.py)
YIELD_EVERY = 500               # replayed events between two yields to the event loop during a rebuild

# rebuilding state (recovery.py)
READ_TIMEOUT_S = 120.0          # longest a rebuild reads the log back before it gives up and retries
RETRY_DELAY_S = 2.0             # pause before a failed rebuild is tried again

# sinks (sink_agents.py)
LEDGER_RETRY_S = 1.0            # pause before queueing a page again when the page ledger (a local file) failed
STORM_FLUSH_INTERVAL_S = 5.0    # longest the page delivery loop sleeps between rounds
