"""`fundflow indicators`: share risk indicators with the other lenders of a consortium (docs/sharing.md).

- `publish` builds this institution's feed from the warning store: keyed hashes of the cards, devices and IPs of
  chosen warnings, signed with the institution's Ed25519 key;
- `import` verifies the members' feeds and merges them into the local indicator set in indicators_dir, which the
  worker reloads and `fundflow replay --indicators` reads;
- `key` prints this institution's public key (what the other members put in their members directory), or
  generates a signing key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from ..errors import FundflowError
from ..settings import SEVERITIES, load_settings
from .argtypes import duration_ms

DEFAULT_TTL = "90d"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "indicators", help="share keyed-hash risk indicators with other lenders (publish, import, key)",
        description="Publish this institution's indicators (keyed hashes of the cards, devices and IPs of its "
                    "warnings) as a signed feed, import the members' feeds into indicators_dir, print the public "
                    "key. What leaves the institution: docs/sharing.md.")
    actions = parser.add_subparsers(dest="indicators_action", metavar="ACTION", required=True)

    publish = actions.add_parser(
        "publish", help="build and sign this institution's feed from the warning store",
        description="Read the stored warnings of the chosen rules and severities, keep the bank cards their money "
                    "was cashed out to and the devices and IPs their loans were requested from, normalize each, "
                    "hash it with HMAC-SHA256 under the consortium key (indicator_key_id, and during a rotation "
                    "also indicator_overlap_key_id or --also-key), and write the feed signed with "
                    "indicator_signing_key. No amount, account id, name or raw identifier is written.")
    publish.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    publish.add_argument("--rules", metavar="R1,R2", help="only warnings of these rule ids (default: every rule "
                                                          "but shared_indicator ones)")
    publish.add_argument("--min-severity", metavar="LEVEL", choices=SEVERITIES, default="high",
                         help="warnings of this severity or higher (default: high)")
    publish.add_argument("--out", metavar="FEED.json", type=Path, required=True, help="the feed file to write")
    publish.add_argument("--source", metavar="INSTITUTION_ID", required=True,
                         help="this institution's id, as the members name its public key (<id>.pem)")
    publish.add_argument("--also-key", metavar="KEY_ID", action="append", default=[],
                         help="also publish every entry under this consortium key (rotation overlap; repeatable; "
                              "adds to indicator_overlap_key_id)")
    publish.add_argument("--ttl", metavar="DURATION", type=duration_ms, default=DEFAULT_TTL,
                         help=f"an entry expires this long after it was last seen (default {DEFAULT_TTL})")
    publish.add_argument("--revoke", metavar="TYPE:IDENTIFIER", action="append", default=[],
                         help="add a revocation of this indicator (e.g. card:6222..., device:dev-1); members that "
                              "import the feed drop this institution's entry for it (repeatable)")
    publish.add_argument("--now", metavar="TIME", help="the feed's issue time, RFC 3339 or epoch ms (default: the "
                                                       "wall clock)")
    publish.add_argument("--confirmed-only", action="store_true",
                         help="only warnings an analyst labelled confirmed in the console (their latest label), "
                              "published with the reason `confirmed`")
    publish.set_defaults(func=run_publish)

    imported = actions.add_parser(
        "import", help="verify the members' feeds and merge them into indicators_dir",
        description="Verify each feed's Ed25519 signature against the members' public keys (<institution>.pem "
                    "files of --members), check it was hashed under a consortium key held here (indicator_keys), "
                    "and merge it into the local indicator set in indicators_dir: new entries added, repeated ones "
                    "updated, revocations applied to the same source's entries, expired entries dropped. A feed "
                    "refused (tampered, unknown or wrong signer, wrong consortium key, older than the last one "
                    "of its source) is named with the reason, the others are still merged; exit 1 if any was "
                    "refused.")
    imported.add_argument("feeds", metavar="FEED", nargs="+", type=Path, help="feed files")
    imported.add_argument("--members", metavar="DIR", type=Path, required=True,
                          help="directory of the members' public keys, <institution>.pem each")
    imported.add_argument("--into", metavar="DIR", type=Path,
                          help="the local indicator set's directory (default: the indicators_dir setting)")
    imported.add_argument("--now", metavar="TIME",
                          help="what counts as now for expiry, RFC 3339 or epoch ms (default: the wall clock)")
    imported.set_defaults(func=run_import)

    send = actions.add_parser(
        "send", help="publish feed files to indicators_topic, where the members' workers read them",
        description="Send each feed file, as it is, to the Kafka topic of feeds (indicators_topic, e.g. "
                    "fundflow.indicators), keyed by its source institution; the topic is created compacted when "
                    "missing, so it keeps the latest feed of each member. Workers with indicators_topic set "
                    "verify and merge every feed on it into their indicators_dir.")
    send.add_argument("feeds", metavar="FEED", nargs="+", type=Path, help="feed files (from `publish`)")
    send.add_argument("--broker", metavar="URL", help="override broker_url from the settings")
    send.add_argument("--topic", metavar="NAME", help="override indicators_topic from the settings")
    send.set_defaults(func=run_send)

    key = actions.add_parser(
        "key", help="print this institution's public key (or generate a signing key)",
        description="Print the Ed25519 public key (PEM) of indicator_signing_key: what the other members save "
                    "as <institution>.pem in their members directory. --generate FILE writes a new private key "
                    "there first (mode 0600) and prints its public key.")
    key.add_argument("--generate", metavar="FILE", type=Path, help="write a new Ed25519 private key (PEM) to FILE")
    key.set_defaults(func=run_key)


def _now(text: str | None) -> int:
    from ..clock import wall_clock_ms
    from ..model.timefmt import parse_rfc3339_ms

    if text is None:
        return wall_clock_ms()
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        return parse_rfc3339_ms(value)
    except ValueError as exc:
        raise FundflowError(f"--now: expected an RFC 3339 time or epoch ms ({exc})") from None


def run_publish(args: argparse.Namespace, *, err: TextIO | None = None) -> int:
    from ..indicators.configured import configured_keys
    from ..indicators.feed import Entry, Feed, entries_from, read_private_key, sign_feed
    from ..indicators.keys import pick
    from ..indicators.normalize import Refused, normalize
    from ..model.timefmt import format_duration_ms
    from ..offline.sharing import extract, write_atomically
    from ..sinks.factory import open_store
    from ..sinks.schema import row_to_warning_json
    from ..sinks.store import StoreError, WarningFilter

    err = err or sys.stderr
    settings = load_settings(args.settings)
    if settings.indicator_key_id is None:
        raise FundflowError("indicator_key_id is not set: which consortium key to publish under")
    if settings.indicator_signing_key is None:
        raise FundflowError("indicator_signing_key is not set: the PEM file of this institution's Ed25519 key "
                            "(`fundflow indicators key --generate FILE` makes one)")
    from ..indicators.feed import INSTITUTION_ID
    if not INSTITUTION_ID.match(args.source):
        raise FundflowError(f"--source {args.source!r}: an institution id is letters, digits, . _ - (at most 64)")
    signing = read_private_key(settings.indicator_signing_key)
    key_ids = [settings.indicator_key_id, *([settings.indicator_overlap_key_id]
                                            if settings.indicator_overlap_key_id else []), *args.also_key]
    keys = pick(configured_keys(settings), dict.fromkeys(key_ids))
    rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else [None]
    url = args.store or settings.clickhouse_url
    rows = []
    try:
        with open_store(url, create=False) as store:
            for rule_id in rules:
                rows += store.select_warnings(WarningFilter(rule_id=rule_id, min_severity=args.min_severity,
                                                            limit=100_000_000))
            if args.confirmed_only:
                rows = _confirmed(store, rows)
    except StoreError as exc:
        raise FundflowError(f"cannot read the warnings at {url}: {exc}") from None
    extraction = extract((row_to_warning_json(row) for row in rows),
                         reason=CONFIRMED if args.confirmed_only else None)
    now = _now(args.now)
    revoked = []
    for item in args.revoke:
        kind, _, raw = item.partition(":")
        try:
            revoked.append((kind, normalize(kind, raw)))
        except Refused as exc:
            raise FundflowError(f"--revoke {item[:60]!r}: {exc} (write TYPE:IDENTIFIER)") from None
    # a revoked identifier is not published again, even while warnings naming it are still stored
    found = [item for item in extraction.found if (item[0], item[1]) not in set(revoked)]
    entries = list(entries_from(found, keys, args.ttl))
    entries += [Entry(kind, key.key_id, key.digest(kind, normalized), "revoked", now, now, now, True)
                for kind, normalized in revoked for key in keys]
    feed = Feed(source=args.source, issued_at=now, keys={key.key_id: key.check for key in keys},
                entries=tuple(entries))
    data = sign_feed(feed, signing)
    try:
        write_atomically(args.out, data)
    except OSError as exc:
        raise FundflowError(f"--out {args.out}: cannot write there ({exc.strerror})") from None
    by_type: dict[str, int] = {}
    for entry in entries:
        if not entry.revoked:
            by_type[entry.type] = by_type.get(entry.type, 0) + 1
    shown = ", ".join(f"{n} {kind}" for kind, n in sorted(by_type.items())) or "no entries"
    err.write(f"read {extraction.warnings} warnings (severity {args.min_severity} or higher"
              f"{', rules ' + ', '.join(rules) if rules != [None] else ''}) from {url}"
              f"{f'; left out {extraction.skipped_shared} shared_indicator warnings' if extraction.skipped_shared else ''}\n")
    err.write(f"wrote {args.out}: {shown} under key(s) {', '.join(k.key_id for k in keys)}, "
              f"{sum(e.revoked for e in entries)} revocations, expiring {format_duration_ms(args.ttl)} after last "
              f"seen; {len(data):,} bytes, signed by {args.source}\n")
    for reason, count in sorted(extraction.refused.items()):
        err.write(f"not published ({count}): {reason}\n")
    return 0


CONFIRMED = "confirmed"


def _confirmed(store, rows: list) -> list:
    """The rows whose latest triage label is `confirmed` (none when nobody has labelled in this store)."""
    from ..sinks import labels
    if not labels.exists(store):
        return []
    triage = labels.current(store, [str(row["warning_id"]) for row in rows])
    return [row for row in rows if triage.get(str(row["warning_id"])) is not None
            and triage[str(row["warning_id"])].status == CONFIRMED]


def run_import(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..indicators.configured import configured_keys
    from ..indicators.feed import FeedError, load_feed, load_members
    from ..indicators.indicator_set import ImportReport, merge, read_set, write_set

    out = out or sys.stdout
    settings = load_settings(args.settings)
    into = args.into or (Path(settings.indicators_dir) if settings.indicators_dir else None)
    if into is None:
        raise FundflowError("no indicator set to import into: set indicators_dir (FUNDFLOW_INDICATORS_DIR) or "
                            "give --into DIR")
    into.mkdir(parents=True, exist_ok=True)
    keys = configured_keys(settings)
    members = load_members(args.members)
    report = ImportReport()
    feeds = []
    for path in args.feeds:
        try:
            feeds.append(load_feed(path, members))
        except FeedError as exc:
            report.refused.append(str(exc))
    current = read_set(into, keys)
    merged, report = merge(current, feeds, keys, _now(args.now), report)
    try:
        written = write_set(into, merged, keys)
    except OSError as exc:
        raise FundflowError(f"{into}: cannot write the indicator set ({exc.strerror})") from None
    out.write(report.render() + "\n")
    out.write(f"{written}: {merged.describe()}\n")
    return 1 if report.refused else 0


def run_send(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    import orjson
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from ..errors import CONNECT_TIMEOUT_S, not_answering
    from ..worker.topics import create_topics

    out = out or sys.stdout
    overrides = {"broker_url": args.broker} if args.broker else {}
    settings = load_settings(args.settings).with_overrides(**overrides)
    topic = args.topic or settings.indicators_topic
    if topic is None:
        raise FundflowError("no topic to send to: set indicators_topic (FUNDFLOW_INDICATORS_TOPIC) or give --topic")
    records = []
    for path in args.feeds:
        try:
            data = path.read_bytes()
            source = orjson.loads(data)["feed"]["source"]
        except OSError as exc:
            raise FundflowError(f"{path}: cannot read ({exc.strerror})") from None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise FundflowError(f"{path}: not an indicator feed (no feed.source)") from None
        records.append((path, str(source), data))
    create_topics(settings.broker_bootstrap, [topic], 1, configs={"cleanup.policy": "compact"})
    try:
        producer = KafkaProducer(bootstrap_servers=settings.broker_bootstrap, acks="all",
                                 max_request_size=64 * 1024 * 1024, request_timeout_ms=CONNECT_TIMEOUT_S * 6000)
    except KafkaError as exc:
        raise FundflowError(not_answering("broker", settings.broker_url, exc)) from None
    try:
        for path, source, data in records:
            producer.send(topic, key=source.encode(), value=data).get(timeout=60)
            out.write(f"sent {path} ({source}, {len(data):,} bytes) to {topic}\n")
    except KafkaError as exc:
        raise FundflowError(f"cannot send the feeds to {topic} at {settings.broker_url} ({exc})") from None
    finally:
        producer.close()
    return 0


def run_key(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..indicators.feed import public_pem, read_private_key
    from ..offline.sharing import write_atomically

    out = out or sys.stdout
    if args.generate is not None:
        if args.generate.exists():
            raise FundflowError(f"--generate {args.generate}: already exists; refusing to overwrite a signing key")
        key = Ed25519PrivateKey.generate()
        write_atomically(args.generate, key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()), mode=0o600)
        print(f"wrote a new Ed25519 signing key to {args.generate}; its public key:", file=sys.stderr)
    else:
        settings = load_settings(args.settings)
        if settings.indicator_signing_key is None:
            raise FundflowError("indicator_signing_key is not set (or give --generate FILE)")
        key = read_private_key(settings.indicator_signing_key)
    out.write(public_pem(key).decode())
    return 0
