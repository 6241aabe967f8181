"""Evidence that holds up: the original events of every warning, a hash chain over the stored warnings, signed
Merkle checkpoints, and bundles that an outsider can verify (docs/evidence.md).

Pure parts (hashing, Merkle trees, keys, rule texts, bundles) live here; the tables and the chain writer are in
stream/sinks/evidence_tables.py and stream/sinks/chain.py, the worker's side in stream/worker/evidence_index.py.
"""
