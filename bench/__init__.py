"""Benchmarks of fundflow: they print figures beside their targets; they are not timed tests (`python -m bench`)."""
