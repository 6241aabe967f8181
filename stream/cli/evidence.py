"""`fundflow evidence key | export | verify | audit`: the evidence chain from the command line (docs/evidence.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

import orjson

from ..errors import FundflowError
from ..settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evidence", help="evidence bundles of warnings: the signing key, export, verify, audit",
        description="Tamper-evident evidence of warnings (docs/evidence.md): print the public key that signs the "
                    "chain's checkpoints, export one warning's bundle, verify a bundle, audit the store's chain.")
    actions = parser.add_subparsers(dest="evidence_action", metavar="key|export|verify|audit")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    key = actions.add_parser("key", help="print the public key that signs the evidence checkpoints",
                             description="The Ed25519 public key (PEM) and its key id (first 16 hex digits of SHA-256 "
                                         "over the raw key) of evidence_signing_key, or of the key the worker "
                                         "generated in data_dir/evidence/. Publish it: verifiers check bundles "
                                         "against it.")
    key.add_argument("--generate", action="store_true",
                     help="create the key in data_dir when neither it nor evidence_signing_key exists")
    key.add_argument("--json", action="store_true", help="{key_id, public_key, path} as JSON")
    key.set_defaults(func=run_key)

    export = actions.add_parser("export", help="write one warning's evidence bundle (a zip)",
                                description="The warning, its events with their Kafka coordinates and original "
                                            "bytes, the rule text at its version, the detector settings, the chain "
                                            "records and the signed checkpoint that covers it, and report.html.")
    export.add_argument("warning_id", metavar="WARNING_ID")
    export.add_argument("--out", metavar="FILE", required=True, help="the zip to write, e.g. case.zip")
    export.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    export.set_defaults(func=run_export)

    verify = actions.add_parser("verify", help="check every hash, link and signature of a bundle",
                                description="Exit 0 only if every file matches the manifest, the warning, events "
                                            "and rule text match their chain record, the records link up to the "
                                            "signed checkpoint, its Merkle root is right and its signature holds; "
                                            "otherwise exit 1 naming the first check that failed and its file.")
    verify.add_argument("bundle", metavar="BUNDLE.zip")
    verify.add_argument("--public-key", metavar="FILE",
                        help="PEM public key the signature must verify against (without it: the key in the bundle, "
                             "which proves integrity but not origin)")
    verify.add_argument("--replay", action="store_true",
                        help="also run the detector over the bundled events with the bundled rule and check the "
                             "same warning id and evidence come out")
    verify.add_argument("--json", action="store_true", help="the checks as JSON")
    verify.set_defaults(func=run_verify)

    audit = actions.add_parser("audit", help="walk the store's whole chain: gaps, reordering, altered rows",
                               description="Every outbox partition's chain from its first record: seq gaps, broken "
                                           "links, altered chain, warning, evidence or rule-text rows, checkpoint "
                                           "roots and signatures, and the unsigned tail. Exit 1 on any problem "
                                           "(with --strict also on an unsigned tail or unchained warnings).")
    audit.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    audit.add_argument("--public-key", metavar="FILE", help="PEM public key every checkpoint must be signed with")
    audit.add_argument("--strict", action="store_true", help="an unsigned tail or unchained warnings fail too")
    audit.add_argument("--anchor", metavar="AUDIT.json",
                       help="an earlier `audit --json` output kept outside the store: every partition head it "
                            "records must still be in the chain, unchanged (detects a truncated chain)")
    audit.add_argument("--json", action="store_true", help="the report as JSON")
    audit.set_defaults(func=run_audit)


def _read_key_file(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FundflowError(f"--public-key: cannot read {path}: {exc.strerror}") from None


def _read_anchor(path: str | None) -> object | None:
    if path is None:
        return None
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise FundflowError(f"--anchor: cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise FundflowError(f"--anchor: {path} is not JSON ({exc})") from None


def run_key(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..evidence.keys import ensure_signing_key, key_path, load_signing_key, public_pem
    out = out or sys.stdout
    settings = load_settings(args.settings)
    path = key_path(settings.evidence_signing_key, settings.data_dir)
    if not path.exists() and not args.generate:
        raise FundflowError(f"no evidence signing key at {path}: the worker generates it on its first start "
                            f"(or run `fundflow evidence key --generate`), or set evidence_signing_key")
    key = ensure_signing_key(settings.evidence_signing_key, settings.data_dir) if args.generate else \
        load_signing_key(path)
    if args.json:
        out.write(orjson.dumps({"key_id": key.key_id, "public_key": public_pem(key.public),
                                "path": str(path)}).decode() + "\n")
    else:
        out.write(f"key id {key.key_id} ({path})\n{public_pem(key.public)}")
    return 0


def run_export(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..offline.evidence_bundle import build_bundle
    from ..sinks.factory import open_store
    from ..sinks.store import StoreError
    out = out or sys.stdout
    settings = load_settings(args.settings)
    url = args.store or settings.clickhouse_url
    started = time.perf_counter()
    store = open_store(url, create=False)
    try:
        data = build_bundle(store, args.warning_id.strip(), settings)
    except StoreError as exc:
        raise FundflowError(f"cannot read the evidence from {url} (has a worker with evidence_chain created the "
                            f"tables?): {exc}") from None
    finally:
        store.close()
    target = Path(args.out)
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise FundflowError(f"--out: cannot write {target}: {exc.strerror}") from None
    out.write(f"wrote {target} ({len(data):,} bytes) in {time.perf_counter() - started:.2f}s\n")
    return 0


def run_verify(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..offline.evidence_bundle import verify_bundle
    out = out or sys.stdout
    try:
        data = Path(args.bundle).read_bytes()
    except OSError as exc:
        raise FundflowError(f"cannot read {args.bundle}: {exc.strerror}") from None
    result = verify_bundle(data, public_key_pem=_read_key_file(args.public_key), replay=args.replay)
    out.write((orjson.dumps(result.as_dict()).decode() if args.json else result.render()) + "\n")
    return 0 if result.ok else 1


def run_audit(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..offline.evidence_audit import audit_store
    from ..sinks.factory import open_store
    from ..sinks.store import StoreError
    out = out or sys.stdout
    settings = load_settings(args.settings)
    url = args.store or settings.clickhouse_url
    store = open_store(url, create=False)
    try:
        report = audit_store(store, public_key_pem=_read_key_file(args.public_key), strict=args.strict,
                             anchor=_read_anchor(args.anchor))
    except StoreError as exc:
        raise FundflowError(f"cannot read the evidence chain from {url}: {exc}") from None
    finally:
        store.close()
    out.write((orjson.dumps(report.as_dict()).decode() if args.json else report.render()) + "\n")
    return 0 if report.ok else 1
