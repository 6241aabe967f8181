"""A rule's `where` is checked against what its events hold: names from the event dataclasses, narrowed by the
rule's kind, and the types of both sides of every comparison."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import msgspec

import pytest

from stream.cli import main
from stream.detection.kinds import KINDS
from stream.model.events import Disbursement, Transfer
from stream.rules.expr import ExprError, compile_where
from stream.rules.names import view_fields
from stream.rules.schema import ANY_RULE, NUMBER, TEXT, category, schema_for, schema_of_kind

PACK = Path(__file__).resolve().parents[2] / "rules"
LISTS = {"cash_mcc": frozenset({"6011"})}

BURST = schema_of_kind(KINDS["device_burst"])      # disbursements only
FAN_IN = schema_of_kind(KINDS["fan_in"])           # transfers, no loan
CASHOUT = schema_of_kind(KINDS["rapid_cashout"])   # transfers and the loan they carry


def test_the_fields_are_the_event_classes_own():
    for cls, root in ((Disbursement, "disbursement"), (Transfer, "transfer")):
        expected = {f.name for f in msgspec.structs.fields(cls)} - {"extra"} | {"type"}
        assert set(ANY_RULE.roots[root].fields) == expected
    transfer = ANY_RULE.roots["transfer"].fields
    assert (transfer["amount"], transfer["ts"], transfer["merchant_category"], transfer["channel"]) == \
        (NUMBER, NUMBER, TEXT, TEXT)         # amount as the where sees it: a Decimal in units, not int cents


def test_a_field_added_to_an_event_class_is_readable_with_its_type():
    class Scored(msgspec.Struct, frozen=True):
        event_id: str
        score: float
        label: str | None = None
        type: ClassVar[str] = "scored"

    assert {name: category(hint) for name, hint in view_fields(Scored).items()} == \
        {"event_id": TEXT, "score": NUMBER, "label": TEXT, "type": TEXT}
    assert category(Decimal) == NUMBER and category(bool) == "boolean"


def test_each_kind_reads_the_roots_its_events_fill():
    readable = {name: schema_of_kind(kind).readable for name, kind in KINDS.items()}
    assert readable["device_burst"] == ("event", "disbursement")
    assert readable["rapid_cashout"] == readable["layering"] == ("event", "disbursement", "transfer")
    for name in ("fan_in", "fan_out", "scatter_gather", "gather_scatter", "cycle"):
        assert readable[name] == ("event", "transfer"), name
    assert schema_for("x", frozenset({"transfer"}), False) is schema_for("x", frozenset({"transfer"}), False)


@pytest.mark.parametrize("schema, text", [
    (BURST, 'disbursement.product != "bnpl_checkout"'),
    (BURST, 'event.device_id == disbursement.device_id and event.type == "disbursement"'),
    (CASHOUT, "transfer.amount >= 0.9 * disbursement.amount"),
    (CASHOUT, "disbursement is None or disbursement.amount < 100"),
    (CASHOUT, 'transfer.merchant_category in ["6011", "6051", None]'),
    (CASHOUT, "transfer.merchant_category == None and event.ts >= 1767225600000"),
    (FAN_IN, 'lower(transfer.channel) in ["p2p"] and not startswith(transfer.dst, "card:")'),
    (FAN_IN, 'len(transfer.dst) > 3 and max(transfer.amount, 5) > 1 and abs(-transfer.amount) > 0'),
    (FAN_IN, '(transfer.amount if transfer.channel == "p2p" else 0) > 5'),
    (FAN_IN, 'transfer.dst + ":x" == "U1:x" and "card" in transfer.dst'),
    (FAN_IN, 'extra(event, "score") > 0.5 or extra(transfer, "segment") in ["a", 1]'),
    (FAN_IN, 'in_list("cash_mcc", transfer.merchant_category) and transfer.amount % 100 == 0'),
])
def test_what_a_rule_can_read_and_compare_compiles(schema, text):
    compile_where(text, LISTS, schema=schema)


@pytest.mark.parametrize("schema, text, message", [
    (BURST, 'disbursement.colour == "red"',
     "unknown field disbursement.colour; disbursement has account, amount, currency, device_id, event_id, ip, "
     'loan_id, product, ts, type. An input field outside the event contract is read as extra(disbursement, "colour")'),
    (CASHOUT, 'transfer.chanel == "p2p"', "unknown field transfer.chanel (did you mean transfer.channel?); "),
    (BURST, 'transfer.device_id == "dev-1"',
     "transfer.device_id: a device_burst rule runs on disbursements only, so `transfer` is always None (did you "
     "mean event.device_id?); a device_burst rule reads event.* and disbursement.*"),
    (FAN_IN, 'disbursement is None or disbursement.product == "x"',
     "`disbursement`: a fan_in rule runs on transfers and does not report the loan the money came from, so "
     "`disbursement` is always None; a fan_in rule reads event.* and transfer.*"),
    (CASHOUT, 'transfer.amount > "100"',
     "transfer.amount is a number and '100' is text: `>` between them fails on every event and the rule never "
     "fires; write 100 without quotes"),
    (CASHOUT, "transfer.merchant_category == 6011",
     "transfer.merchant_category is text and 6011 is a number: they are never equal, so `==` is always false; "
     'write "6011" in quotes'),
    (CASHOUT, "transfer.merchant_category in [6011, 6051]",
     "transfer.merchant_category is text but the list after `in` holds 6011 (a number), which it never equals; "
     'write "6011" in quotes'),
    (CASHOUT, 'transfer.channel != 1', "they are never equal, so `!=` is always true"),
    (CASHOUT, 'event.ts > "2026-01-01"', "event.ts is a number and '2026-01-01' is text: `>` between them fails"),
    (CASHOUT, "transfer.amount == True", "transfer.amount is a number and True is true/false: they are never equal"),
    (CASHOUT, "transfer.amount > None", "`>` cannot order None (transfer.amount > None); test for a missing value "
                                        "with `is None` or `is not None`"),
    (CASHOUT, "transfer.dst + 1 == 2", "cannot add text (transfer.dst) and a number (1): it fails on every event"),
    (CASHOUT, "-transfer.dst < 0", "a sign goes before a number; transfer.dst is text"),
    (CASHOUT, 'lower(transfer.amount) == "x"', "lower() reads text; transfer.amount is a number"),
    (CASHOUT, '"card" in transfer.amount', "`in` needs a list or text on its right; transfer.amount is a number"),
    (CASHOUT, 'transfer.amount in "abc"', "`in` text looks for a piece of text in 'abc'; transfer.amount is a number"),
    (CASHOUT, 'min(transfer.amount, "5") > 1', "min() compares two numbers (or two texts); transfer.amount is a "
                                               "number and '5' is text"),
    (CASHOUT, 'extra(transfer, "channel") == "x"', "channel is a standard field of transfer: write transfer.channel"),
    (CASHOUT, 'extra(transfer.dst, "x") == 1', 'extra() reads a field of event, disbursement, transfer'),
    (CASHOUT, "extra(transfer, 5) == 1", "extra() needs the field name as quoted text"),
    (BURST, 'extra(transfer, "app_version") == "7"', "a device_burst rule runs on disbursements only"),
])
def test_what_can_never_match_is_refused_in_plain_words(schema, text, message):
    with pytest.raises(ExprError) as caught:
        compile_where(text, LISTS, schema=schema)
    assert message in str(caught.value)


@pytest.mark.parametrize("old, new, line, message", [
    ('where: disbursement.product != "bnpl_checkout"', 'where: disbursement.colour == "red"', 10,
     "rule 'device-burst': where: unknown field disbursement.colour; disbursement has account, amount"),
    ('where: disbursement.product != "bnpl_checkout"', 'where: disbursement.amount > "100"', 10,
     "rule 'device-burst': where: disbursement.amount is a number and '100' is text"),
])
def test_rules_check_refuses_the_pack_with_file_line_and_name(tmp_path, capsys, old, new, line, message):
    pack = tmp_path / "rules"
    shutil.copytree(PACK, pack)
    devices = pack / "devices.yaml"
    assert old in devices.read_text()
    devices.write_text(devices.read_text().replace(old, new))
    assert main(["rules", "check", str(pack)]) == 1
    out = capsys.readouterr().out
    assert f"{devices}:{line}: {message}" in out
    assert out.strip().splitlines()[-1].startswith("FAILED: 1 error(s)")
