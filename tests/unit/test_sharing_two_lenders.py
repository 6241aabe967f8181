"""The issue's two institutions, through the real commands: lender A's ledger is detected and its warnings stored;
A publishes a signed feed; lender B imports it; in B's separate ledger a withdrawal to one of A's cash-out cards
and a loan requested from one of A's farm devices raise `shared_indicator` warnings, and nothing else of B's does.
Then the ways a feed is refused or ignored, each with its message, through `fundflow indicators import`."""

from __future__ import annotations

import json

import orjson
import pytest

from indicator_helpers import KEY, OTHER_SECRET, write_key
from stream.cli import main
from stream.model.warning import EarlyWarning
from stream.sinks.factory import open_store
from stream.sinks.schema import warning_to_row

ISSUED = "2026-03-04T00:00:00Z"
SMALL = ["--days", "2", "--background-per-day", "500", "--accounts", "400", "--lookalikes", "0"]


def settings_file(path, **values):
    path.write_text("".join(f"{name}: {json.dumps(str(value))}\n" for name, value in values.items()))
    return str(path)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_key(root / "keys-a", KEY)
    write_key(root / "keys-b", KEY)
    members = root / "members"
    members.mkdir()
    for name in ("lender-a", "lender-b"):
        from stream.cli.indicators import run_key
        import argparse
        import io
        out = io.StringIO()
        run_key(argparse.Namespace(settings=None, generate=root / f"{name}.signing.pem"), out=out)
        (members / f"{name}.pem").write_text(out.getvalue())
    a = settings_file(root / "a.yaml", indicator_keys=root / "keys-a", indicator_key_id="k2026a",
                      indicator_signing_key=root / "lender-a.signing.pem")
    b = settings_file(root / "b.yaml", indicator_keys=root / "keys-b", indicator_key_id="k2026a",
                      indicator_signing_key=root / "lender-b.signing.pem", indicators_dir=root / "b-indicators")
    (root / "enable.override.yaml").write_text("overrides:\n  - rule: shared-indicator\n    enabled: true\n")
    return root, a, b, members


@pytest.fixture(scope="module")
def a_published(consortium):
    """A: simulate, detect, store the warnings (as its worker's sink would), publish the feed."""
    root, a, _, _ = consortium
    assert main(["simulate", "--out", str(root / "a.jsonl"), "--truth", str(root / "a-truth.json"), "--seed", "7",
                 *SMALL]) == 0
    assert main(["replay", str(root / "a.jsonl"), "--out", str(root / "a-warnings.jsonl"), "--no-progress"]) == 0
    warnings = [EarlyWarning.from_json(line) for line in (root / "a-warnings.jsonl").read_bytes().splitlines()]
    store = f"chdb://{root / 'a-chdb'}"
    with open_store(store) as opened:
        opened.ensure_schema()
        opened.insert_rows([warning_to_row(w, 1) for w in warnings])
    assert main(["--settings", a, "indicators", "publish", "--store", store, "--rules", "rapid-cashout,device-burst",
                 "--min-severity", "high", "--out", str(root / "feed-a.json"), "--source", "lender-a",
                 "--now", ISSUED]) == 0
    return warnings, root / "feed-a.json"


def test_a_publishes_only_keyed_hashes_of_its_cash_out_cards_and_farm_devices(consortium, a_published, capsys):
    warnings, feed = a_published
    text = feed.read_text()
    body = orjson.loads(text)["feed"]
    cards = {sink for w in warnings if w.rule_id == "rapid-cashout" for sink in w.evidence["sinks"]
             if sink.startswith("card:")}
    devices = {w.evidence["requester"] for w in warnings if w.rule_id == "device-burst"}
    assert len(devices) == 5 and cards
    types = [entry["type"] for entry in body["entries"]]
    assert types.count("card") == len(cards) and types.count("device") == len(devices)
    for raw in [*cards, *(card[5:] for card in cards), *(d[7:] for d in devices)]:
        assert raw not in text
    accounts = {account for w in warnings for account in w.accounts}
    assert not any(account in text for account in accounts)          # no account ids, amounts or loans either
    from stream.model.money import format_minor
    assert not any(format_minor(w.amount) in text for w in warnings) and "L-0" not in text
    assert set(body) == {"format", "source", "issued_at", "keys", "entries"}
    assert set(body["entries"][0]) == {"type", "key_id", "hmac", "reason", "first_seen", "last_seen", "expires",
                                       "revoked"}


def test_b_imports_and_its_ledger_warns_on_a_cards_and_devices_and_nowhere_else(consortium, a_published, capsys):
    root, _, b, members = consortium
    warnings, feed = a_published
    capsys.readouterr()
    assert main(["--settings", b, "indicators", "import", str(feed), "--members", str(members), "--now", ISSUED]) == 0
    out = capsys.readouterr().out
    assert "imported 1 feed(s)" in out and "refused feeds 0" in out and "added " in out

    assert main(["simulate", "--out", str(root / "b.jsonl"), "--truth", str(root / "b-truth.json"), "--seed", "8",
                 *SMALL]) == 0
    lines = (root / "b.jsonl").read_text().splitlines()
    last = max(orjson.loads(line)["ts"] for line in lines)
    from stream.model.timefmt import format_ts, parse_rfc3339_ms
    t = parse_rfc3339_ms(last)
    card = next(sink for w in warnings if w.rule_id == "rapid-cashout" for sink in w.evidence["sinks"])
    device = next(w.evidence["requester"] for w in warnings if w.rule_id == "device-burst")[len("device:"):]
    planted = [
        {"type": "disbursement", "event_id": "b-farm-loan", "ts": format_ts(t + 60_000), "loan_id": "LB-1",
         "account": "B-NEW-1", "amount": "3000.00", "device_id": device.upper(), "ip": "198.51.100.7"},
        {"type": "transfer", "event_id": "b-cashout", "ts": format_ts(t + 120_000), "src": "B-NEW-2",
         "dst": card[len("card:"):], "amount": "2000.00", "channel": "withdrawal"},   # B names it without prefix
    ]
    (root / "b-plus.jsonl").write_text("\n".join(lines + [json.dumps(e) for e in planted]) + "\n")
    overrides = ["--overrides", str(root / "enable.override.yaml")]
    assert main(["--settings", b, "replay", str(root / "b-plus.jsonl"), *overrides, "--indicators",
                 str(root / "b-indicators"), "--out",
                 str(root / "b-shared.jsonl"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "indicators: " in err and "from 1 source(s) (lender-a)" in err
    got = [orjson.loads(line) for line in (root / "b-shared.jsonl").read_bytes().splitlines()]
    shared = [w for w in got if w["rule_id"] == "shared-indicator"]
    assert sorted(w["txn_ids"][0] for w in shared) == ["b-cashout", "b-farm-loan"]
    by_event = {w["txn_ids"][0]: w for w in shared}
    assert by_event["b-farm-loan"]["evidence"]["indicators"][0]["type"] == "device"
    assert by_event["b-cashout"]["evidence"]["indicators"][0]["type"] == "card"
    for warning in shared:
        (indicator,) = warning["evidence"]["indicators"]
        assert indicator["sources"] == ["lender-a"] and indicator["key_id"] == "k2026a"
        assert indicator["feeds"] == ["lender-a@2026-03-04T00:00:00.000Z"]
        assert indicator["reasons"] == (["device_burst"] if indicator["type"] == "device" else ["rapid_cashout"])
    # B's other warnings are what B's ledger raises without any feed
    assert main(["replay", str(root / "b-plus.jsonl"), "--out", str(root / "b-alone.jsonl"), "--no-progress"]) == 0
    alone = (root / "b-alone.jsonl").read_bytes().splitlines()
    assert [line for line in (root / "b-shared.jsonl").read_bytes().splitlines()
            if b'"rule_id":"shared-indicator"' not in line] == alone


def test_import_refuses_a_tampered_feed_a_wrong_signer_and_a_wrong_consortium_key(consortium, a_published, capsys,
                                                                                   tmp_path):
    root, a, b, members = consortium
    _, feed = a_published
    document = orjson.loads(feed.read_bytes())
    document["feed"]["entries"][0]["expires"] = "2099-01-01T00:00:00.000Z"
    (tmp_path / "tampered.json").write_bytes(orjson.dumps(document))
    document = orjson.loads(feed.read_bytes())
    document["feed"]["source"] = document["signature"]["signer"] = "lender-b"        # A's signature, B's name
    (tmp_path / "forged.json").write_bytes(orjson.dumps(document))
    write_key(tmp_path / "other-keys", OTHER_SECRET)
    other = settings_file(tmp_path / "o.yaml", indicator_keys=tmp_path / "other-keys", indicator_key_id="k2026a",
                          indicator_signing_key=root / "lender-a.signing.pem")
    store = f"chdb://{root / 'a-chdb'}"
    assert main(["--settings", other, "indicators", "publish", "--store", store, "--out", str(tmp_path / "o.json"),
                 "--source", "lender-a", "--now", "2026-03-05T00:00:00Z"]) == 0
    capsys.readouterr()
    into = tmp_path / "set"
    code = main(["--settings", b, "indicators", "import", str(tmp_path / "tampered.json"),
                 str(tmp_path / "forged.json"), str(tmp_path / "o.json"), "--members", str(members), "--into",
                 str(into), "--now", ISSUED])
    out = capsys.readouterr().out
    assert code == 1
    assert f"refused: {tmp_path / 'tampered.json'}: bad signature: the feed was changed after lender-a signed it" in out
    assert f"refused: {tmp_path / 'forged.json'}: bad signature" in out
    assert (f"refused: {tmp_path / 'o.json'}: made under another secret than this institution's consortium key "
            f"k2026a (check values differ): wrong consortium key, refused") in out
    assert "added 0" in out and "refused feeds 3" in out
    outsider = tmp_path / "outsiders"
    outsider.mkdir()
    (outsider / "lender-b.pem").write_text((members / "lender-b.pem").read_text())
    assert main(["--settings", b, "indicators", "import", str(feed), "--members", str(outsider), "--into",
                 str(into), "--now", ISSUED]) == 1
    assert "unknown signer 'lender-a': no lender-a.pem among the members' public keys" in capsys.readouterr().out


def test_import_drops_expired_entries_and_applies_revocations(consortium, a_published, capsys, tmp_path):
    root, a, b, members = consortium
    _, feed = a_published
    into = tmp_path / "set"
    assert main(["--settings", b, "indicators", "import", str(feed), "--members", str(members), "--into", str(into),
                 "--now", "2027-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "added 0," in out and "expired " in out and ": no indicators" in out
    assert main(["--settings", b, "indicators", "import", str(feed), "--members", str(members), "--into", str(into),
                 "--now", ISSUED]) == 0
    added = int(capsys.readouterr().out.split("added ", 1)[1].split(",", 1)[0])
    store = f"chdb://{root / 'a-chdb'}"
    first_device = next(orjson.loads(line)["evidence"]["requester"] for line in
                        (root / "a-warnings.jsonl").read_bytes().splitlines() if b"device-burst" in line)
    assert main(["--settings", a, "indicators", "publish", "--store", store, "--rules", "device-burst",
                 "--out", str(tmp_path / "revoke.json"), "--source", "lender-a", "--revoke", first_device,
                 "--now", "2026-03-05T00:00:00Z"]) == 0
    capsys.readouterr()
    entries = orjson.loads((tmp_path / "revoke.json").read_bytes())["feed"]["entries"]
    assert sorted((e["type"], e["revoked"]) for e in entries) == [("device", False)] * 4 + [("device", True)]
    assert main(["--settings", b, "indicators", "import", str(tmp_path / "revoke.json"), "--members", str(members),
                 "--into", str(into), "--now", "2026-03-05T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "revoked 1" in out and f"{added - 1} indicators" in out
    assert main(["--settings", b, "indicators", "import", str(feed), "--members", str(members), "--into", str(into),
                 "--now", "2026-03-05T00:00:00Z"]) == 1                        # the older feed cannot bring it back
    assert "older than the feed already imported from lender-a" in capsys.readouterr().out


def test_confirmed_only_publishes_the_warnings_an_analyst_confirmed_with_the_reason_confirmed(consortium, a_published,
                                                                                              tmp_path):
    from stream.sinks import labels

    root, a, _, _ = consortium
    warnings, _ = a_published
    store_url = f"chdb://{root / 'a-chdb'}"
    out = tmp_path / "confirmed.json"
    publish = ["--settings", a, "indicators", "publish", "--store", store_url, "--rules", "device-burst",
               "--out", str(out), "--source", "lender-a", "--now", ISSUED, "--confirmed-only"]
    assert main(publish) == 0
    assert orjson.loads(out.read_text())["feed"]["entries"] == []          # nobody labelled yet: nothing confirmed
    bursts = [w for w in warnings if w.rule_id == "device-burst"]
    with open_store(store_url) as store:
        labels.ensure_labels_table(store)
        for label_id, warning, status in (("l-1", bursts[0], "confirmed"), ("l-2", bursts[1], "false_positive")):
            labels.append(store, labels.LabelEvent(label_id, warning.warning_id, 1_772_500_000_000, "ana", "analyst",
                                                   "open", status, "", "", ""))
    assert main(publish) == 0
    entries = orjson.loads(out.read_text())["feed"]["entries"]
    assert [(e["type"], e["reason"]) for e in entries] == [("device", "confirmed")]
