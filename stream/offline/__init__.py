"""Runs of the detector over a recorded ledger (replay, rule tests), scoring, and publishing a ledger."""
