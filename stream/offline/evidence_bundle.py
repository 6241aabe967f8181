"""Evidence bundles: one warning with everything needed to check it, exported from the store and verified offline.

A bundle is a zip of:
  warning.json     the warning's canonical JSON, the exact bytes its chain record hashes
  events.jsonl     the cited events: Kafka topic, partition, offset, event time, original bytes (base64), SHA-256
  rule.json        the rule's canonical text at the warning's version, the version, the fundflow version
  settings.json    the worker's detector settings when it raised the warning (window, lateness, tracer policy,
                   fundflow version), as recorded and hashed into the chain record
  chain.json       the chain records of the checkpoint that covers the warning, from its first seq to its last
  checkpoint.json  that checkpoint: Merkle root, signature, key id and the public key
  report.html      a printable report for people: the money's path as a drawing, the transfers in time order
  labels.json      the analysts' triage labels and notes of the warning at export time (who, when, from, to):
                   judgements made after detection, so outside the chain; the manifest fixes them from the export on
  manifest.json    the SHA-256 of every other file, and a digest of that list

`verify_bundle` checks all of it and says which check failed, on which file (docs/evidence.md).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import orjson

from ..errors import EventError, FundflowError
from ..evidence import hashing
from ..evidence.hashing import ChainRecord, EventSource
from ..evidence.keys import EvidenceKeyError, key_id, load_public_pem, verify_signature
from ..evidence.ruletext import load_rebuilt, parse_rule_text
from ..model.events import parse_event
from ..model.version import fundflow_version
from ..model.warning import EarlyWarning
from ..sinks import evidence_tables as tables
from ..sinks import labels
from ..sinks.evidence_tables import canonical_row_json, stored_sources
from ..sinks.store import WarningStore

FORMAT = 1
WARNING = "warning.json"
EVENTS = "events.jsonl"
RULE = "rule.json"
SETTINGS = "settings.json"
CHAIN = "chain.json"
CHECKPOINT = "checkpoint.json"
REPORT = "report.html"
LABELS = "labels.json"
MANIFEST = "manifest.json"
FILES = (WARNING, EVENTS, RULE, SETTINGS, CHAIN, CHECKPOINT, REPORT, LABELS)
ZIP_TIME = (2000, 1, 1, 0, 0, 0)         # fixed entry times: the same evidence gives the same zip


class BundleError(FundflowError):
    """A bundle cannot be made (the warning, its chain record or its checkpoint is missing)."""


def detector_settings(settings: Any) -> dict[str, Any]:
    from ..model.timefmt import format_duration_ms
    return {"window_ms": settings.window, "window": format_duration_ms(settings.window),
            "allowed_lateness_ms": settings.allowed_lateness,
            "allowed_lateness": format_duration_ms(settings.allowed_lateness),
            "tracer_policy": settings.tracer_policy, "trace_inflows_above": settings.trace_inflows_above,
            "identity_fields": list(getattr(settings, "identity_fields", ()))}


def build_bundle(store: WarningStore, warning_id: str, settings: Any) -> bytes:
    """The bundle of one stored warning, as zip bytes; BundleError says what is missing."""
    from .evidence_report import render_report
    row = store.warning_by_id(warning_id)
    if row is None:
        raise BundleError(f"no warning {warning_id!r} in the store")
    record = tables.record_of(store, warning_id)
    if record is None:
        raise BundleError(f"warning {warning_id} has no chain record yet (the worker chains a batch right after "
                          f"storing it; is evidence_chain on?)")
    covering = [c for c in tables.checkpoints(store, record.partition)
                if int(c["first_seq"]) <= record.seq <= int(c["last_seq"])]
    if not covering:
        raise BundleError(f"warning {warning_id} (outbox partition {record.partition}, seq {record.seq}) is not "
                          f"covered by a signed checkpoint yet; try again after evidence_checkpoint_interval")
    checkpoint = covering[-1]
    chain = tables.records(store, record.partition, int(checkpoint["first_seq"]), int(checkpoint["last_seq"]))
    sources = sorted(stored_sources(tables.evidence_of(store, [warning_id])[warning_id]), key=hashing.event_order)
    rule_text = tables.rule_text(store, record.rule_sha256) or ""
    recorded = tables.settings_text(store, record.settings_sha256)
    settings_bytes = recorded.encode() if recorded is not None else _pretty(
        {**detector_settings(settings), "fundflow_version": fundflow_version(),
         "recorded": False, "note": "no settings were recorded with this warning: these are the exporting "
                                    "command's settings"})
    warning_bytes = canonical_row_json(row)
    altered = [what for what, ok in (
        ("the warning row", hashing.warning_sha256(warning_bytes) == record.warning_sha256),
        ("its evidence events", hashing.sources_sha256(sources) == record.events_sha256),
        ("its rule text", hashing.rule_sha256(rule_text) == record.rule_sha256)) if not ok]
    if altered:
        verb = "no longer matches" if len(altered) == 1 else "no longer match"
        raise BundleError(f"warning {warning_id}: {' and '.join(altered)} in the store {verb} its chain "
                          f"record (seq {record.seq} of outbox partition {record.partition}); no bundle can prove "
                          f"them. `fundflow evidence audit` lists what was altered")
    files: dict[str, bytes] = {
        WARNING: warning_bytes,
        EVENTS: b"".join(hashing.canonical_json(s.to_dict()) + b"\n" for s in sources),
        RULE: _pretty({"rule_id": row["rule_id"], "version": row["rule_version"], "text": rule_text,
                       "rule_sha256": hashing.rule_sha256(rule_text)}),
        SETTINGS: settings_bytes,
        CHAIN: _pretty({"partition": record.partition, "records": [r.to_dict() for r in chain]}),
        CHECKPOINT: _pretty({key: checkpoint[key] for key in tables.CHECKPOINT_COLUMNS}),
    }
    files[LABELS] = _pretty({"warning_id": warning_id, "chained": False,
                             "events": [event.to_dict() for event in labels.history_if_any(store, warning_id)]})
    warning = EarlyWarning.from_json(warning_bytes)
    files[REPORT] = render_report(warning, sources, record, checkpoint, rule_text,
                                  orjson.loads(settings_bytes)).encode("utf-8")
    return pack(files)


def _pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def manifest_for(files: Mapping[str, bytes]) -> bytes:
    listed = {name: hashing.sha256_hex(files[name]) for name in sorted(files)}
    return _pretty({"format": FORMAT, "files": listed, "files_digest": hashing.sha256_hex(hashing.canonical_json(listed))})


def pack(files: Mapping[str, bytes], manifest: bytes | None = None) -> bytes:
    """Zip the files with their manifest (computed unless given: tests write a forged one)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), files[name])
        archive.writestr(zipfile.ZipInfo(MANIFEST, ZIP_TIME), manifest if manifest is not None else manifest_for(files))
    return out.getvalue()


MAX_FILES = 64
MAX_UNPACKED_BYTES = 256 * 1024 * 1024     # 400 cited events of 64 KiB each, in base64, fit many times over


def unpack(data: bytes) -> dict[str, bytes]:
    """The bundle's files by name; BundleError when it is not a readable zip, or one that unpacks to more than a
    bundle can hold (a bundle is untrusted input: a zip bomb is refused before it is decompressed)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) > MAX_FILES or sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
                raise BundleError(f"{len(infos)} files of {sum(i.file_size for i in infos):,} bytes unpacked: more "
                                  f"than an evidence bundle holds")
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):       # a second copy would show one file to unzip, another to us
                raise BundleError(f"the zip holds {sorted({n for n in names if names.count(n) > 1})} more than once")
            return {info.filename: archive.read(info) for info in infos}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:      # CRC errors are BadZipFile
        raise BundleError(f"not a readable zip: {exc}") from None


# -- verification ------------------------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool
    file: str
    detail: str


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    key_source: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failure(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)

    def passed(self, name: str, file: str, detail: str) -> None:
        self.checks.append(Check(name, True, file, detail))

    def render(self) -> str:
        lines = [f"{'ok    ' if c.ok else 'FAILED'} {c.name} [{c.file}]: {c.detail}" for c in self.checks]
        failure = self.failure
        lines.append(f"bundle verified: every check holds ({self.key_source})" if failure is None
                     else f"bundle NOT verified: {failure.name} failed in {failure.file}: {failure.detail}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        failure = self.failure
        return {"ok": self.ok, "key": self.key_source,
                "failed": None if failure is None else {"check": failure.name, "file": failure.file,
                                                        "detail": failure.detail},
                "checks": [{"check": c.name, "ok": c.ok, "file": c.file, "detail": c.detail} for c in self.checks]}


class _Failed(Exception):
    def __init__(self, name: str, file: str, detail: str) -> None:
        super().__init__(detail)
        self.check = Check(name, False, file, detail)


def _json(files: Mapping[str, bytes], name: str) -> Any:
    try:
        return orjson.loads(files[name])
    except orjson.JSONDecodeError as exc:
        raise _Failed("readable", name, f"not valid JSON ({str(exc)[:120]})") from None


def verify_bundle(data: bytes, *, public_key_pem: bytes | None = None, replay: bool = False) -> Verification:
    """Every check in order; the first that fails ends the verification and is named with its file."""
    result = Verification()
    try:
        _verify(data, result, public_key_pem, replay)
    except _Failed as failed:
        result.checks.append(failed.check)
    return result


def _verify(data: bytes, result: Verification, public_key_pem: bytes | None, replay: bool) -> None:
    try:
        files = unpack(data)
    except BundleError as exc:
        raise _Failed("readable", "(the zip)", str(exc)) from None
    # 1. the manifest, and every file against it
    if MANIFEST not in files:
        raise _Failed("manifest", MANIFEST, "missing")
    manifest = _json(files, MANIFEST)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("files_digest") != hashing.sha256_hex(hashing.canonical_json(listed)):
        raise _Failed("manifest", MANIFEST, "its list of file hashes does not match its own digest: the manifest "
                                            "was altered")
    for name in FILES:
        if name not in files:
            raise _Failed("file present", name, "missing from the bundle")
        if listed.get(name) != hashing.sha256_hex(files[name]):
            raise _Failed("file hash", name, f"SHA-256 {hashing.sha256_hex(files[name])[:16]}... differs from the "
                                             f"manifest's {str(listed.get(name))[:16]}...: the file was altered")
    extra = sorted(set(files) - set(FILES) - {MANIFEST}) + sorted(set(listed) - set(FILES))
    if extra:
        raise _Failed("file list", MANIFEST, f"unexpected files: {', '.join(extra)}")
    result.passed("manifest", MANIFEST, f"{len(FILES)} files, each matching its SHA-256")

    # 2. the chain records, linked, each hash recomputed; the warning's record among them
    chain_doc = _json(files, CHAIN)
    try:
        chain = [ChainRecord.from_dict(r) for r in chain_doc["records"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise _Failed("chain records", CHAIN, f"unreadable: {exc}") from None
    if not chain:
        raise _Failed("chain records", CHAIN, "no records")
    for before, record in zip([None, *chain], chain):
        if record.expected_hash() != record.record_hash:
            raise _Failed("chain record hash", CHAIN, f"record seq {record.seq}: its hash does not match its fields")
        if before is not None and (record.seq != before.seq + 1 or record.prev_hash != before.record_hash
                                   or record.partition != before.partition):
            raise _Failed("chain links", CHAIN, f"record seq {record.seq} does not follow seq {before.seq}")
    result.passed("chain links", CHAIN, f"records {chain[0].seq}..{chain[-1].seq} of outbox partition "
                                        f"{chain[0].partition}, each hash recomputed, each linked to the one before")

    # 3. the warning
    warning_bytes = files[WARNING]
    try:
        warning = EarlyWarning.from_json(warning_bytes)
    except ValueError as exc:
        raise _Failed("warning", WARNING, f"not a warning: {exc}") from None
    mine = [r for r in chain if r.warning_id == warning.warning_id]
    if not mine:
        raise _Failed("warning in the chain", CHAIN, f"no record of warning {warning.warning_id}")
    record = mine[0]
    if hashing.warning_sha256(warning_bytes) != record.warning_sha256:
        raise _Failed("warning hash", WARNING, "its SHA-256 differs from the one its chain record holds")
    result.passed("warning hash", WARNING, f"{warning.warning_id}: SHA-256 matches chain record seq {record.seq}")

    # 4. the events
    sources = []
    for number, line in enumerate(files[EVENTS].splitlines(), start=1):
        try:
            item = orjson.loads(line)
            source = EventSource.from_dict(item)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise _Failed("events", EVENTS, f"line {number}: {str(exc)[:200]}") from None
        if item.get("value_sha256") != source.value_sha256:
            raise _Failed("event bytes", EVENTS, f"line {number} ({source.event_id}): the bytes do not match "
                                                 f"their SHA-256")
        sources.append(source)
    if hashing.sources_sha256(sources) != record.events_sha256:
        raise _Failed("events hash", EVENTS, "the events' coordinates and hashes differ from what the chain record "
                                             "holds")
    result.passed("events hash", EVENTS, f"{len(sources)} events, each byte-for-byte as recorded")

    # 5. the rule text
    rule_doc = _json(files, RULE)
    text = rule_doc.get("text") if isinstance(rule_doc, dict) else None
    if not isinstance(text, str) or hashing.rule_sha256(text) != record.rule_sha256:
        raise _Failed("rule hash", RULE, "the rule text's SHA-256 differs from the one its chain record holds")
    rule = None
    if text:
        try:
            rule = parse_rule_text(text)
        except ValueError as exc:
            raise _Failed("rule text", RULE, f"not a canonical rule text: {exc}") from None
        if rule.rule_id != warning.rule_id or rule.version != warning.rule_version:
            raise _Failed("rule version", RULE, f"the text is rule {rule.rule_id} version {rule.version}; the warning "
                                                f"names {warning.rule_id} version {warning.rule_version}")
        result.passed("rule version", RULE, f"{rule.rule_id}: the text hashes to version {rule.version}, the "
                                            f"warning's")
    else:
        result.passed("rule hash", RULE, "no rule text was recorded with this warning (published without it)")

    # 6. the detector settings
    settings = _json(files, SETTINGS)
    if record.settings_sha256 == hashing.settings_sha256(""):
        result.passed("settings", SETTINGS, "no detector settings were recorded with this warning; the file holds "
                                            "the exporting command's, unproven")
    elif hashing.settings_sha256(files[SETTINGS].decode("utf-8", "replace")) != record.settings_sha256:
        raise _Failed("settings hash", SETTINGS, "the detector settings' SHA-256 differs from the one its chain "
                                                 "record holds")
    else:
        result.passed("settings hash", SETTINGS, "the detector settings are those the worker recorded")

    # 7. the checkpoint: range, Merkle root, signature
    checkpoint = _json(files, CHECKPOINT)
    try:
        partition, first, last = (int(checkpoint["outbox_partition"]), int(checkpoint["first_seq"]),
                                  int(checkpoint["last_seq"]))
        root, signature, signed_ms = str(checkpoint["merkle_root"]), str(checkpoint["signature"]), \
            int(checkpoint["signed_ms"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _Failed("checkpoint", CHECKPOINT, f"unreadable: {exc}") from None
    if (partition, first, last) != (chain[0].partition, chain[0].seq, chain[-1].seq):
        raise _Failed("checkpoint range", CHECKPOINT, f"covers partition {partition} seq {first}..{last}, the "
                                                      f"chain file holds {chain[0].seq}..{chain[-1].seq}")
    if hashing.records_root(chain) != root:
        raise _Failed("Merkle root", CHECKPOINT, "the root recomputed over the chain records differs from the "
                                                 "signed one")
    if public_key_pem is not None:
        source_text = "signature checked against the public key given"
        pem = public_key_pem
    else:
        source_text = ("signature checked against the key inside the bundle: this proves the bundle is intact, "
                       "not who signed it; give --public-key to prove its origin")
        pem = str(checkpoint.get("public_key", "")).encode()
    try:
        public = load_public_pem(pem)
    except EvidenceKeyError as exc:
        raise _Failed("public key", CHECKPOINT if public_key_pem is None else "(--public-key)", str(exc)) from None
    if str(checkpoint.get("key_id")) != key_id(public):
        raise _Failed("key id", CHECKPOINT, f"signed by key {checkpoint.get('key_id')}, the public key is "
                                            f"{key_id(public)}")
    message = hashing.checkpoint_message(partition, first, last, root, signed_ms)
    if not verify_signature(public, signature, message):
        raise _Failed("signature", CHECKPOINT, "the Ed25519 signature does not verify")
    result.key_source = source_text
    result.passed("signature", CHECKPOINT, f"Merkle root over seq {first}..{last} signed by key {key_id(public)}; "
                                           f"{source_text}")

    if replay:
        _replay(result, warning, sources, rule, settings)


def _replay(result: Verification, warning: EarlyWarning, sources: list[EventSource], rule: Any,
            settings: Any) -> None:
    """The detector, with the rule rebuilt from its text, over the bundled events: the same warning?"""
    from ..detection.tracer import TracerOptions
    from .replay import replay_detector, replay_lines
    if rule is None:
        raise _Failed("replay", RULE, "no rule text in the bundle to replay with")
    try:
        window, lateness = int(settings["window_ms"]), int(settings["allowed_lateness_ms"])
        tracer = TracerOptions(policy=str(settings["tracer_policy"]),
                               trace_inflows_above=settings.get("trace_inflows_above"))
        identity_fields = tuple(str(name) for name in settings.get("identity_fields") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise _Failed("replay settings", SETTINGS, f"unreadable: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="fundflow-verify-") as directory:
        try:
            ruleset = load_rebuilt(rule, Path(directory), window_ms=window)
        except FundflowError as exc:
            raise _Failed("replay rule", RULE, f"the rule text does not load: {str(exc)[:300]}") from None
    rebuilt = ruleset.rules[0]
    if rebuilt.version != warning.rule_version:
        raise _Failed("replay rule", RULE, f"rebuilt as version {rebuilt.version}, the warning names "
                                           f"{warning.rule_version}")
    def event_time(source: EventSource) -> int:      # from the hashed bytes, not the unhashed `ts` beside them
        try:
            return parse_event(source.value).ts
        except EventError:
            return -1
    ordered = sorted(sources, key=lambda s: (event_time(s), s.topic, s.partition, s.offset))
    raised: list[EarlyWarning] = []
    detector = replay_detector(ruleset, window_ms=window, lateness_ms=lateness, tracer=tracer,
                               identity_fields=identity_fields)
    replay_lines((s.value for s in ordered), detector, raised.append)
    same = [w for w in raised if w.warning_id == warning.warning_id]
    if not same:
        ids = ", ".join(w.warning_id for w in raised) or "none"
        raise _Failed("replay", EVENTS, f"replaying the {len(ordered)} cited events with rule {rebuilt.id} version "
                                        f"{rebuilt.version} does not raise {warning.warning_id} (raised: {ids}); "
                                        f"the cited events alone may not hold the whole context the worker had")
    again = same[0]
    differs = [name for name, a, b in (("evidence", dict(again.evidence), dict(warning.evidence)),
                                       ("txn_ids", again.txn_ids, warning.txn_ids),
                                       ("accounts", again.accounts, warning.accounts),
                                       ("amount", again.amount, warning.amount)) if a != b]
    if differs:
        raise _Failed("replay", EVENTS, f"{warning.warning_id} is raised again, but its {', '.join(differs)} "
                                        f"differ: the cited events alone do not reproduce the context the worker "
                                        f"had (events it did not cite shaped the evidence)")
    result.passed("replay", EVENTS, f"the detector with the bundled rule over the {len(ordered)} bundled events "
                                    f"raises {warning.warning_id} again, with the same evidence")
