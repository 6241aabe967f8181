"""Indicators shared between lenders: identifiers other institutions also see (a bank card, a device, an IP, a
phone, a national id), published as keyed hashes in signed feeds and merged into a local indicator set.

A layer of its own between the rule language and detection: pure, no I/O but reading the files it is given.

- `normalize.py`: one canonical text per identifier type, or a refusal that says why;
- `keys.py`: the consortium keys (HMAC-SHA256 under a key every member holds) and the hash of an identifier;
- `feed.py`: the signed feed file (Ed25519 over canonical JSON) one institution publishes;
- `indicator_set.py`: the local set merged from feeds, and the lookup detection runs per event.

What leaves an institution and what cannot be learnt from it: docs/sharing.md.
"""
