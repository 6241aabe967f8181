"""Two runs' warnings compared by rule: added, dropped, changed (with the fields), matched by id, and across a
rule's versions by the incident its id hashes, never by a guess."""

from __future__ import annotations

from stream.model.warning import make_warning_id
from stream.offline.warning_diff import FieldChange, diff_warnings, incident_of
from warning_samples import warning

DAY = 86_400_000
T = "2026-03-02T10:00:00Z"            # first_ts of the sample warnings
EVENT_MS = 1_772_449_200_000          # 2026-03-02T11:00:00Z, their event_ts


def made(rule_id: str, version: str, incident: str, subject: str, kind: str = "rapid_cashout", **fields):
    """A warning whose id is what the detector would give it for this rule, version and incident."""
    return warning(kind, fields.pop("evidence", {"share": 0.9}), rule_id=rule_id, rule_version=version,
                   warning_id=make_warning_id(rule_id, version, incident), subject=subject, **fields)


def loan(subject: str, version: str = "v1", **fields):
    return made("cashout", version, subject, subject, **fields)


def fan_in(subject: str, version: str = "v1", **fields):
    """A fan-in warning of a rule with a 1-day cooldown: its incident is the subject and the day's bucket."""
    return made("fan-in", version, f"{subject}@{EVENT_MS - EVENT_MS % DAY}", subject, kind="fan_in", **fields)


def test_added_dropped_and_changed_by_id_with_the_fields_that_differ():
    old = [loan("L1"), loan("L2"), loan("L3", amount="50.00")]
    new = [loan("L1"), loan("L3", amount="70.00", evidence={"share": 0.95}, txn_ids=["t9"]), loan("L4")]
    result = diff_warnings(old, new)
    (rule,) = result.rules
    assert [w.subject for w in rule.added] == ["L4"] and [w.subject for w in rule.dropped] == ["L2"]
    (changed,) = rule.changed
    assert [(f.name, f.old, f.new) for f in changed.fields] == [
        ("txn_ids", [], ["t9"]), ("amount", "50.00", "70.00"), ("evidence.share", 0.9, 0.95)]
    assert rule.same == 1 and result.totals() == {"added": 1, "dropped": 1, "changed": 1, "same": 1}
    text = result.render("a.jsonl", "b.jsonl").splitlines()
    assert text[0] == "cashout: 1 added, 1 dropped, 1 changed, 1 the same"
    assert text[1].startswith("  + w-") and "  L4  100.00 CNY  2026-03-02T11:00:00.000Z  s" in text[1]
    assert text[3].endswith("  L3  txn_ids +t9; amount 50.00 -> 70.00; evidence.share 0.9 -> 0.95")
    assert text[-1] == ("total: b.jsonl adds 1, drops 1, changes 1 of the 3 warnings of a.jsonl "
                        "(1 the same; 3 in b.jsonl)")


def test_the_same_warnings_are_no_differences():
    result = diff_warnings([loan("L1"), fan_in("U1")], [fan_in("U1"), loan("L1")])
    assert result.empty and result.render("a", "b") == "no differences: the same 2 warnings in a and b"


def test_an_edited_rule_keeps_its_loan_warnings_matched_by_the_loan():
    old = [loan("L1"), loan("L2", amount="10.00"), loan("L3")]
    new = [loan("L1", "v2"), loan("L2", "v2", amount="12.00")]
    (rule,) = diff_warnings(old, new).rules
    assert rule.same == rule.same_new_version == 1 and [w.subject for w in rule.dropped] == ["L3"]
    (changed,) = rule.changed
    assert changed.old.warning_id != changed.new.warning_id
    assert [f.name for f in changed.fields] == ["warning_id", "rule_version", "amount"]
    text = diff_warnings(old, new).render("old", "new").splitlines()
    assert text[0] == "cashout (version v1 -> v2): 1 dropped, 1 changed, 1 the same (under the rule's new version)"
    assert text[2].endswith(f"{changed.old.warning_id} -> {changed.new.warning_id}  L2  amount 10.00 -> 12.00")


def test_a_cooldown_bucket_is_matched_across_versions_only_with_the_rule_packs_cooldowns():
    old, new = [fan_in("U1", first_ts=T)], [fan_in("U1", "v2", first_ts="2026-03-02T10:30:00Z")]
    unmatched = diff_warnings(old, new)
    (rule,) = unmatched.rules
    assert (len(rule.added), len(rule.dropped), rule.changed) == (1, 1, ())
    (note,) = unmatched.notes
    assert note.startswith("rule fan-in has version v1 before and v2 after") and "--replay LEDGER" in note
    matched = diff_warnings(old, new, old_cooldowns={"fan-in": DAY}, new_cooldowns={"fan-in": DAY})
    (rule,) = matched.rules
    assert not rule.added and not rule.dropped and not matched.notes
    assert [f.name for f in rule.changed[0].fields] == ["warning_id", "rule_version", "first_ts"]


def test_an_incident_is_accepted_only_when_it_hashes_back_to_the_warning_id():
    assert incident_of(loan("L1")) == "L1"
    assert incident_of(fan_in("U1"), DAY) == f"U1@{EVENT_MS - EVENT_MS % DAY}"
    assert incident_of(fan_in("U1"), 3_600_000) is None and incident_of(fan_in("U1")) is None
    no_cooldown = made("ring", "v1", "U1@1772445600000", "U1")     # the exact first_ts: no cooldown
    assert incident_of(no_cooldown) == "U1@1772445600000"
    relabelled = warning("rapid_cashout", {}, warning_id=loan("L1").warning_id, subject="L2")
    assert incident_of(relabelled) is None          # the subject no longer hashes to the id: never paired


def test_a_repeated_id_compares_its_last_copy_as_the_store_keeps_it():
    old = [loan("L1", summary="first"), loan("L1", summary="second")]
    result = diff_warnings(old, [loan("L1", summary="second")])
    assert result.empty and result.old_repeated == 1 and result.old_count == 1
    assert "note: a repeats 1 warning id(s)" in result.render("a", "b")


def test_the_report_for_machines_has_every_rule_the_full_warnings_and_old_and_new_values():
    report = diff_warnings([loan("L1"), loan("L2", amount="1.00")], [loan("L2", amount="2.00"), fan_in("U1")]) \
        .to_dict("a", "b")
    assert report["differ"] is True and report["total"] == {"added": 1, "dropped": 1, "changed": 1, "same": 0}
    assert report["old"] == {"source": "a", "warnings": 2, "repeated_ids": 0}
    assert [w["subject"] for w in report["rules"]["cashout"]["dropped"]] == ["L1"]
    assert report["rules"]["fan-in"]["added"][0]["kind"] == "fan_in"
    (changed,) = report["rules"]["cashout"]["changed"]
    assert changed["fields"] == {"amount": {"old": "1.00", "new": "2.00"}}


def test_list_fields_say_what_they_gained_and_lost():
    assert FieldChange("accounts", ["a", "b", "c"], ["b", "d"]).render() == "accounts +d -a, -c"
    assert FieldChange("txn_ids", ["a", "b"], ["b", "a"]).render() == "txn_ids reordered"
    assert FieldChange("txn_ids", [], list("abcde")).render() == "txn_ids +a, +b, +c (and 2 more)"
    assert FieldChange("summary", "x" * 41, "y").render() == "summary"
    assert FieldChange("evidence.sinks", None, ["card:1"]).render() == "evidence.sinks"
