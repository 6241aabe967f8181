"""Indicators shared between lenders: normalization, the keyed hash, signed feeds (tampered, wrong signer, wrong
consortium key, expired, revoked, duplicated) and the local set's lookup by event time."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from indicator_helpers import (DAY, KEY, NEW_KEY, OTHER_SECRET, T0, make_feed, signed, signing_key, write_key,
                               write_member)
from stream.indicators.feed import FeedError, load_feed, load_members
from stream.indicators.indicator_set import EMPTY, IndicatorSet, merge, read_set
from stream.indicators.keys import ConsortiumKeyError, load_keys
from stream.indicators.normalize import Refused, normalize


@pytest.mark.parametrize("kind, raw, expected", [
    ("card", "card:6222 0000-1111 2222", "6222000011112222"),
    ("card", "622200001111", "622200001111"),
    ("device", "  Dev-1A2B ", "dev-1a2b"),
    ("device", "device:DEV-x", "dev-x"),
    ("ip", "10.0.0.7", "10.0.0.7"),
    ("ip", "ip:::ffff:10.0.0.7", "10.0.0.7"),
    ("ip", "2001:DB8:0:0::1", "2001:db8::1"),
    ("phone", "+86 138-0013-8000", "8613800138000"),
    ("phone", "0044 (20) 7946 0958", "442079460958"),
    ("national_id", " 11010519491231002x ", "11010519491231002X"),
])
def test_normalization_gives_one_text_per_identifier(kind, raw, expected):
    assert normalize(kind, raw) == expected


@pytest.mark.parametrize("kind, raw, why", [
    ("card", "62220000111", "12-19 digits"),
    ("card", "62220000111122223333", "has 20"),
    ("card", "6222x000011112222", "other characters"),
    ("ip", "010.000.000.007", "not an IPv4 or IPv6 address"),
    ("ip", "10.0.0.256", "not an IPv4"),
    ("phone", "138001", "8-15 digits"),
    ("device", "   ", "empty device id"),
    ("national_id", "", "empty national id"),
    ("passport", "X1", "unknown indicator type"),
])
def test_every_refusal_says_why(kind, raw, why):
    with pytest.raises(Refused, match=why):
        normalize(kind, raw)


def test_the_hash_is_hmac_sha256_over_type_and_normalized_identifier():
    expected = hmac.new(KEY.secret, b"card\x1f6222000011112222", hashlib.sha256).hexdigest()
    assert KEY.hash_identifier("card", "6222 0000 1111 2222") == expected
    assert KEY.hash_identifier("device", "6222000011112222") != expected          # the type is hashed too
    assert NEW_KEY.hash_identifier("card", "6222000011112222") != expected
    assert KEY.check != OTHER_SECRET.check and "secret" not in repr(KEY) and KEY.secret.hex() not in repr(KEY)


def test_keys_are_read_from_a_directory_and_a_short_secret_is_refused(tmp_path):
    write_key(tmp_path / "keys", KEY)
    assert load_keys(tmp_path / "keys")["k2026a"].secret == KEY.secret
    (tmp_path / "keys" / "short.key").write_text("abcd\n")
    with pytest.raises(ConsortiumKeyError, match="short.key: a consortium key needs at least 32 bytes"):
        load_keys(tmp_path / "keys")


@pytest.fixture
def consortium(tmp_path):
    a, b, outsider = signing_key(), signing_key(), signing_key()
    write_member(tmp_path / "members", "lender-a", a)
    write_member(tmp_path / "members", "lender-b", b)
    return tmp_path, a, b, outsider, load_members(tmp_path / "members")


CARD = ("card", "6222000011112222", "rapid_cashout", T0, T0 + 3_600_000)
DEVICE = ("device", "dev-farm-1", "device_burst", T0, T0 + 7_200_000)


def test_a_signed_feed_loads_and_its_entries_carry_no_identifier(consortium):
    root, a, _, _, members = consortium
    path = signed(make_feed("lender-a", [CARD, DEVICE]), a, root / "a.json")
    text = path.read_text()
    assert "6222000011112222" not in text and "dev-farm-1" not in text
    feed = load_feed(path, members)
    assert feed.source == "lender-a" and len(feed.entries) == 2
    assert {e.type for e in feed.entries} == {"card", "device"}
    entry = next(e for e in feed.entries if e.type == "card")
    assert entry.hmac == KEY.hash_identifier("card", "6222000011112222")
    assert entry.expires == T0 + 3_600_000 + 90 * DAY and entry.reason == "rapid_cashout"


def test_a_tampered_byte_is_refused(consortium):
    root, a, _, _, members = consortium
    path = signed(make_feed("lender-a", [CARD]), a, root / "a.json")
    document = orjson.loads(path.read_bytes())
    document["feed"]["entries"][0]["expires"] = "2099-01-01T00:00:00.000Z"        # keep it for longer
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(FeedError, match=r"a.json: bad signature: the feed was changed after lender-a signed it"):
        load_feed(path, members)
    data = bytearray(signed(make_feed("lender-a", [CARD]), a, root / "b.json").read_bytes())
    at = data.index(b'"hmac":"') + 8
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    (root / "b.json").write_bytes(bytes(data))
    with pytest.raises(FeedError, match="bad signature"):
        load_feed(root / "b.json", members)
    (root / "c.json").write_bytes(bytes(data[:40]))
    with pytest.raises(FeedError, match="c.json: not valid JSON"):
        load_feed(root / "c.json", members)


def test_a_wrong_signer_or_an_unknown_one_is_refused(consortium):
    root, a, b, outsider, members = consortium
    with pytest.raises(FeedError, match="bad signature"):          # B's key signs a feed published as A's
        load_feed(signed(make_feed("lender-a", [CARD]), b, root / "forged.json"), members)
    with pytest.raises(FeedError, match="unknown signer 'lender-x'"):
        load_feed(signed(make_feed("lender-x", [CARD]), outsider, root / "x.json"), members)
    document = orjson.loads(signed(make_feed("lender-a", [CARD]), a, root / "s.json").read_bytes())
    document["signature"]["signer"] = "lender-b"
    (root / "s.json").write_bytes(orjson.dumps(document))
    with pytest.raises(FeedError, match="signed by 'lender-b' but published as 'lender-a'"):
        load_feed(root / "s.json", members)


def test_a_feed_under_the_wrong_consortium_key_is_refused(consortium):
    root, a, _, _, members = consortium
    ours = {"k2026a": KEY}
    other = load_feed(signed(make_feed("lender-a", [CARD], keys=(OTHER_SECRET,)), a, root / "o.json"), members)
    _, report = merge(EMPTY, [other], ours, T0)
    assert report.added == 0
    assert report.refused == [f"{root / 'o.json'}: made under another secret than this institution's consortium "
                              f"key k2026a (check values differ): wrong consortium key, refused"]
    unknown = load_feed(signed(make_feed("lender-a", [CARD], keys=(NEW_KEY,)), a, root / "n.json"), members)
    _, report = merge(EMPTY, [unknown], ours, T0)
    assert report.added == 0 and "none of which this institution holds" in report.refused[0]


def test_merge_adds_updates_counts_duplicates_drops_expired_and_revokes_only_its_own(consortium):
    root, a, b, _, members = consortium
    keys = {"k2026a": KEY}
    first = load_feed(signed(make_feed("lender-a", [CARD, DEVICE]), a, root / "a1.json"), members)
    from_b = load_feed(signed(make_feed("lender-b", [CARD], issued_at=T0 + DAY), b, root / "b1.json"), members)
    merged, report = merge(EMPTY, [first, from_b], keys, T0 + DAY)
    assert (report.added, report.refused) == (3, [])
    match = merged.lookup("card", "card:6222 0000 1111 2222", T0 + 2 * DAY)
    assert match is not None and match.sources == ("lender-a", "lender-b")

    later = T0 + 10 * DAY          # A sees the card again, and revokes the device; B's revocation of A's card...
    again = load_feed(signed(make_feed("lender-a", [("card", "6222000011112222", "rapid_cashout", T0, later)],
                                       issued_at=later, revoked=[("device", "dev-farm-1")]), a, root / "a2.json"),
                      members)
    merged, report = merge(merged, [again], keys, later)
    assert (report.updated, report.revoked) == (1, 1)
    merged, report = merge(merged, [first], keys, later)             # the old feed again, after the revocation
    assert report.refused and "older than the feed already imported from lender-a" in report.refused[0]
    assert merged.lookup("device", "dev-farm-1", later) is None
    b_revokes = load_feed(signed(make_feed("lender-b", [], issued_at=later, revoked=[("card", "6222000011112222")]),
                                 b, root / "b2.json"), members)
    merged, report = merge(merged, [b_revokes], keys, later)
    assert report.revoked == 1 and merged.lookup("card", "6222000011112222", later).sources == ("lender-a",)
    merged, report = merge(merged, [again], keys, later)                            # the same feed twice
    assert (report.added, report.updated, report.duplicates) == (0, 0, 1)
    merged, report = merge(merged, [], keys, later + 200 * DAY)                     # everything expired since
    assert report.expired == 1 and len(merged) == 0


def test_an_expired_entry_is_dropped_at_import_and_ignored_by_event_time(consortium):
    root, a, _, _, members = consortium
    keys = {"k2026a": KEY}
    feed = load_feed(signed(make_feed("lender-a", [CARD], ttl=DAY), a, root / "a.json"), members)
    merged, report = merge(EMPTY, [feed], keys, T0 + 30 * DAY)
    assert (report.added, report.expired, len(merged)) == (0, 1, 0)
    merged, _ = merge(EMPTY, [feed], keys, T0)
    expires = T0 + 3_600_000 + DAY
    assert merged.lookup("card", "6222000011112222", expires - 1) is not None
    assert merged.lookup("card", "6222000011112222", expires) is None         # the event's time, not the clock


def test_rotation_overlap_matches_under_either_key(consortium, tmp_path):
    root, a, _, _, members = consortium
    both = load_feed(signed(make_feed("lender-a", [CARD], keys=(KEY, NEW_KEY)), a, root / "a.json"), members)
    assert {e.key_id for e in both.entries} == {"k2026a", "k2026b"}
    only_new, report = merge(EMPTY, [both], {"k2026b": NEW_KEY}, T0)           # B already dropped the old key
    assert report.added == 1 and "k2026a" in report.ignored[0]
    assert only_new.lookup("card", "6222000011112222", T0).key_id == "k2026b"


def test_the_set_round_trips_through_its_file_and_listed_tries_every_type(consortium, tmp_path):
    root, a, _, _, members = consortium
    keys = {"k2026a": KEY}
    feed = load_feed(signed(make_feed("lender-a", [CARD, DEVICE]), a, root / "a.json"), members)
    merged, _ = merge(IndicatorSet(keys=keys), [feed], keys, T0)
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "indicators.json").write_bytes(merged.to_bytes({"k2026a": KEY.check}))
    again = read_set(tmp_path / "set", keys)
    assert again.slots() == merged.slots() and len(again) == 2
    assert again.listed("card:6222000011112222", T0) and again.listed("DEV-FARM-1", T0)
    assert not again.listed("dev-other", T0) and not again.listed(None, T0)
    with pytest.raises(Exception, match="consortium key 'k2026a' held here is not the one"):
        read_set(tmp_path / "set", {"k2026a": OTHER_SECRET})


def test_the_worker_reloader_swaps_in_a_changed_set_and_keeps_the_running_one_when_broken(consortium, tmp_path):
    from stream.worker.reload import IndicatorReloader

    root, a, _, _, members = consortium
    keys = {"k2026a": KEY}
    directory = tmp_path / "shared"
    directory.mkdir()
    applied = []
    reloader = IndicatorReloader(directory, read_set(directory, keys), lambda: read_set(directory, keys),
                                 apply=applied.append)
    assert len(reloader.current) == 0 and not reloader.check().changed
    feed = load_feed(signed(make_feed("lender-a", [CARD, DEVICE]), a, root / "a.json"), members)
    merged, _ = merge(reloader.current, [feed], keys, T0)
    (directory / "indicators.json").write_bytes(merged.to_bytes({"k2026a": KEY.check}))
    result = reloader.check()
    assert result.ok and result.version == "2 indicators" and applied == [reloader.current]
    assert reloader.current.lookup("device", "dev-farm-1", T0) is not None
    (directory / "indicators.json").write_text("{not json")
    result = reloader.check()
    assert not result.ok and "indicators.json: not valid JSON" in result.errors[0]
    assert len(reloader.current) == 2 and (reloader.reloads_ok, reloader.reloads_failed) == (1, 1)
