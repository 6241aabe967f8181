"""Rule loader: every analyst mistake is reported with its file and line, versions track content, overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stream.detection.kinds import Kind
from stream.errors import RuleSetError
from stream.rules.loader import check_rules, load_rules
from stream.rules.params import Param, count, duration, ratio, show_duration, show_set, string_set

HOUR = 3_600_000

# Kinds of our own, so these tests pin the loader, not the shipped typologies.
KINDS = {
    "cashout": Kind(
        name="cashout", doc="test kind", triggers=frozenset({"transfer"}), stages=("sent",), detect=lambda *a: (),
        params=(
            Param("within", duration, 2 * HOUR, "w", looser="higher", show=show_duration),
            Param("min_ratio", ratio, 0.7, "r", looser="lower"),
            Param("min_hops", count(1, 10), 1, "h", looser="lower"),
            Param("max_hops", count(1, 10), 3, "h", looser="higher"),
            Param("sinks", string_set, frozenset({"6011"}), "s", show=show_set),
        )),
    "burst": Kind(name="burst", doc="test kind", triggers=frozenset({"disbursement"}), stages=("requested",),
                  detect=lambda *a: (),
                  params=(Param("min_accounts", count(2), 3, "a", looser="lower"),)),
}

GOOD = """\
lists:
  cash_mcc: [6011, "6051", 0742]
rules:
  - rule: rapid-cashout
    kind: cashout
    desc: Most of a loan withdrawn within hours. Tune min_ratio.
    where: transfer.channel in ["withdrawal", "merchant"]  # comment
    params:
      within: 30m
      min_ratio: 0.8
      sinks: cash_mcc
    severity: high
    cooldown: {subject: loan, for: 6h}
    notify: [pager]
    allow:
      accounts: [OPS-1]
      pairs: [[A, B]]
    false_positives: [a salary advance withdrawn at once]
    tags: [cashout]
    enabled: true
  - rule: device-burst
    kind: burst
    desc: Many borrowers on one device.
    severity: medium
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(result) -> list[str]:
    return [e.located() for e in result.errors]


def only_error(result, fragment: str) -> str:
    matching = [e.located() for e in result.errors if fragment in e.message]
    assert len(matching) == 1, problems(result)
    return matching[0]


def test_good_file_loads_with_typed_values(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD)
    rules = load_rules(path, kinds=KINDS, window_ms=72 * HOUR)
    assert [r.id for r in rules.rules] == ["rapid-cashout", "device-burst"]
    rule = rules.by_id("rapid-cashout")
    assert rule.params["within"] == 30 * 60_000
    assert rule.params["min_ratio"] == 0.8
    assert rule.params["sinks"] == frozenset({"6011", "6051", "0742"})   # 0742 kept as written
    assert rule.params["max_hops"] == 3                                   # default filled
    assert rule.cooldown.subject == "loan" and rule.cooldown.ms == 6 * HOUR
    assert rule.notify == ("pager",) and rule.tags == ("cashout",)
    assert rule.allow.accounts == frozenset({"OPS-1"}) and rule.allow.pairs == frozenset({("A", "B")})
    assert rule.source is not None and rule.source.line == 4
    assert rule.where_text == 'transfer.channel in ["withdrawal", "merchant"]'
    assert rules.by_id("device-burst").where is None
    assert rules.version


@pytest.mark.parametrize("old, new, line, fragment", [
    ("    cooldown: {subject: loan, for: 6h}", "    cooldwn: {subject: loan, for: 6h}", 13,
     "unknown rule key 'cooldwn' (did you mean 'cooldown'?)"),
    ("      min_ratio: 0.8", "      min_ratio: lots", 10, "params.min_ratio: expected a number between 0 and 1"),
    ("      min_ratio: 0.8", "      min_raito: 0.8", 10,
     "params.min_raito: unknown parameter 'min_raito' (did you mean 'min_ratio'?); this kind takes: within, "
     "min_ratio, min_hops, max_hops, sinks"),
    ("    kind: cashout", "    kind: cashot", 5, "unknown kind 'cashot' (did you mean 'cashout'?)"),
    ("      sinks: cash_mcc", "      sinks: cash_mc", 11, "unknown list 'cash_mc'"),
    ("      within: 30m", "      within: 30 minutes", 9, "params.within: expected a duration"),
    ("    cooldown: {subject: loan, for: 6h}", "    cooldown: {subject: loan, for: soon}", 13,
     "cooldown.for: expected a duration"),
    ("      min_ratio: 0.8", "      min_ratio: 1.5", 10, "can never be met"),
    ("      within: 30m", "      within: 100h", 9, "longer than the detector window 3d"),
    ("      min_ratio: 0.8", "      min_ratio: 0.8\n      min_hops: 5\n      max_hops: 2", 11,
     "above max_hops 2, so the rule can never fire"),
    ("    where: transfer.channel in [\"withdrawal\", \"merchant\"]  # comment",
     "    where: transfer.channel in [\"withdrawal\"", 7, "where: syntax error"),
    ("    where: transfer.channel in [\"withdrawal\", \"merchant\"]  # comment",
     "    where: transfr.channel == \"p2p\"", 7, "unknown name 'transfr' (did you mean 'transfer'?)"),
    ("    where: transfer.channel in [\"withdrawal\", \"merchant\"]  # comment",
     "    where: in_list(\"cash\", transfer.merchant_category)", 7, "unknown list 'cash'"),
    ("    severity: high", "    severity: hihg", 12, "severity must be one of"),
    ("    severity: high", "    severity: [high]", 12, "severity must be one of"),
    ("    tags: [cashout]", "    tags: cashout", 19, "`tags` must be a list of strings"),
    ("    enabled: true", "    enabled: sometimes", 20, "`enabled` must be true or false"),
    ("    notify: [pager]", "    notify: [pagr]", 14, "unknown notify target 'pagr'"),
    ("    desc: Most of a loan withdrawn within hours. Tune min_ratio.", "    desc: ''", 6, "`desc` must say"),
    ("      pairs: [[A, B]]", "      pairs: [[A, A]]", 17, "allow.pairs items must be [src, dst]"),
    ("      min_ratio: 0.8", "      min_ratio: 0.8\n      min_ratio: 0.9", 11, "parameter 'min_ratio' is given twice"),
])
def test_each_mistake_is_reported_at_its_line(tmp_path, old, new, line, fragment):
    assert old in GOOD
    path = write(tmp_path, "pack.yaml", GOOD.replace(old, new))
    result = check_rules(path, kinds=KINDS, window_ms=72 * HOUR)
    assert result.ruleset is None
    located = only_error(result, fragment)
    assert located.startswith(f"{path}:{line}: rule 'rapid-cashout':"), located


def test_all_errors_are_collected_not_only_the_first(tmp_path):
    text = GOOD.replace("kind: burst", "kind: nope").replace("severity: high", "severity: loud")
    path = write(tmp_path, "pack.yaml", text)
    with pytest.raises(RuleSetError) as caught:
        load_rules(path, kinds=KINDS)
    messages = [e.located() for e in caught.value.errors]
    assert len(messages) == 2
    assert any(f"{path}:12: rule 'rapid-cashout'" in m for m in messages)
    assert any(f"{path}:22: rule 'device-burst'" in m and "unknown kind 'nope'" in m for m in messages)


def test_duplicate_id_across_two_files_names_both_places(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", """\
        rules:
          - rule: other
            kind: burst
            desc: fine
            severity: low
          - rule: device-burst
            kind: burst
            desc: again
            severity: low
        """)
    result = check_rules(tmp_path, kinds=KINDS)
    located = only_error(result, "duplicate rule id")
    assert located.startswith(f"{tmp_path / 'b.yaml'}:6: rule 'device-burst'")
    assert f"{tmp_path / 'a.yaml'}:21" in located


def test_lists_are_shared_across_files_and_defined_once(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", """\
        lists:
          cash_mcc: ["6011"]
        rules:
          - rule: uses-shared
            kind: cashout
            desc: reads a list from a.yaml
            params: {sinks: cash_mcc}
            severity: low
        """)
    result = check_rules(tmp_path, kinds=KINDS)
    located = only_error(result, "list 'cash_mcc' is already defined")
    assert located.startswith(f"{tmp_path / 'b.yaml'}:2:")
    (tmp_path / "b.yaml").write_text((tmp_path / "b.yaml").read_text().replace('cash_mcc: ["6011"]', "other: [x]"))
    rules = load_rules(tmp_path, kinds=KINDS)
    assert rules.by_id("uses-shared").params["sinks"] == frozenset({"6011", "6051", "0742"})


def test_out_of_order_keys_warn_but_load(tmp_path):
    text = GOOD.replace("    severity: medium\n", "").replace(
        "    kind: burst\n    desc: Many borrowers on one device.\n",
        "    severity: medium\n    kind: burst\n    desc: Many borrowers on one device.\n")
    path = write(tmp_path, "pack.yaml", text)
    result = check_rules(path, kinds=KINDS)
    assert not result.errors and result.ruleset is not None
    assert not result.ok
    assert len(result.warnings) == 1
    warning = result.warnings[0].located()
    assert warning.startswith(f"{path}:22: rule 'device-burst': warning: key 'severity' is out of order")


def test_duplicate_key_in_a_rule_is_an_error(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD.replace("    severity: medium", "    severity: medium\n    severity: low"))
    result = check_rules(path, kinds=KINDS)
    assert only_error(result, "appears twice").startswith(f"{path}:25: rule 'device-burst'")


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD.replace("    tags: [cashout]", "    tags: [cashout"))
    result = check_rules(path, kinds=KINDS)
    assert len(result.errors) == 1
    assert result.errors[0].file == str(path) and result.errors[0].line is not None
    assert "not valid YAML" in result.errors[0].message


def test_missing_required_keys_and_bad_top_level(tmp_path):
    path = write(tmp_path, "pack.yaml", """\
        rulez: []
        rules:
          - rule: half
            kind: burst
        """)
    result = check_rules(path, kinds=KINDS)
    located = problems(result)
    assert f"{path}:1: unknown top-level key 'rulez' (did you mean 'rules'?); allowed: lists, allow, rules" in located
    assert f"{path}:3: rule 'half': missing required key 'desc'" in located
    assert f"{path}:3: rule 'half': missing required key 'severity'" in located


def test_where_typo_in_a_field_name_is_an_error_naming_the_field(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD.replace('transfer.channel in ["withdrawal", "merchant"]',
                                                     'transfer.chanel == "withdrawal"'))
    result = check_rules(path, kinds=KINDS)
    assert result.ruleset is None
    located = only_error(result, "unknown field transfer.chanel")
    assert located.startswith(f"{path}:7: rule 'rapid-cashout': where: unknown field transfer.chanel (did you mean "
                              f"transfer.channel?); transfer has ")


def test_where_reads_only_what_the_rules_kind_can_see(tmp_path):
    """`burst` runs on disbursements: `transfer` is always None there, and the loan is the event itself."""
    text = GOOD.replace("    desc: Many borrowers on one device.\n",
                        "    desc: Many borrowers on one device.\n    where: WHERE\n")
    ok = write(tmp_path, "ok.yaml", text.replace("WHERE", 'disbursement.product != "bnpl_checkout"'))
    assert check_rules(ok, kinds=KINDS).ok
    bad = write(tmp_path, "bad.yaml", text.replace("WHERE", 'disbursement.colour == "red" or transfer.ip == "x"'))
    located = only_error(check_rules(bad, kinds=KINDS), "unknown field")
    assert located == (f"{bad}:24: rule 'device-burst': where: unknown field disbursement.colour; disbursement has "
                       f"account, amount, currency, device_id, event_id, ip, loan_id, product, ts, type. An input "
                       f'field outside the event contract is read as extra(disbursement, "colour")')
    bad.write_text(text.replace("WHERE", 'transfer.device_id == "dev-1"'))
    located = only_error(check_rules(bad, kinds=KINDS), "always None")
    assert located == (f"{bad}:24: rule 'device-burst': where: transfer.device_id: a burst rule runs on "
                       f"disbursements only, so `transfer` is always None (did you mean event.device_id?); a burst "
                       f"rule reads event.* and disbursement.*")


def test_where_comparing_a_number_with_text_is_an_error(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD.replace('transfer.channel in ["withdrawal", "merchant"]',
                                                     'transfer.amount > "100"'))
    located = only_error(check_rules(path, kinds=KINDS), "fails on every event")
    assert located == (f"{path}:7: rule 'rapid-cashout': where: transfer.amount is a number and '100' is text: `>` "
                       f"between them fails on every event and the rule never fires; write 100 without quotes")


def test_a_where_given_in_an_override_is_checked_against_the_rules_kind(tmp_path):
    write(tmp_path, "pack.yaml", GOOD)
    override = write(tmp_path, "site.override.yaml", """\
        overrides:
          - rule: rapid-cashout
            where: disbursement.product == "cash"
        """)
    located = only_error(check_rules(tmp_path, kinds=KINDS), "always None")
    assert located.startswith(f"{override}:3: rule 'rapid-cashout': where: disbursement.product: a cashout rule "
                              f"runs on transfers and does not report the loan the money came from")


def test_test_files_and_override_files_are_not_rules(tmp_path):
    write(tmp_path, "pack.yaml", GOOD)
    write(tmp_path, "pack.test.yaml", "tests: []\n")
    write(tmp_path, "site.override.yaml", "overrides: [{rule: device-burst, enabled: false}]\n")
    result = check_rules(tmp_path, kinds=KINDS)
    assert result.ok, problems(result)
    assert result.rule_files == (str(tmp_path / "pack.yaml"),)
    assert result.override_files == (str(tmp_path / "site.override.yaml"),)
    assert not result.ruleset.by_id("device-burst").enabled


def test_missing_path_and_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    result = check_rules([tmp_path / "nope.yaml", tmp_path / "empty"], kinds=KINDS)
    assert problems(result) == [f"{tmp_path / 'empty'}: no rule files (*.yaml, *.yml) in this directory",
                                f"{tmp_path / 'nope.yaml'}: no such file or directory"]


# -- versions ------------------------------------------------------------------------------------------------

def version_of(tmp_path: Path, text: str, rule_id: str = "rapid-cashout", name: str = "pack.yaml") -> str:
    return load_rules(write(tmp_path, name, text), kinds=KINDS).by_id(rule_id).version


def test_version_is_stable_under_reformatting(tmp_path):
    reformatted = (GOOD.replace("  # comment", "")
                   .replace('transfer.channel in ["withdrawal", "merchant"]',
                            "(transfer.channel in ['withdrawal','merchant'])")
                   .replace("    cooldown: {subject: loan, for: 6h}", "    cooldown:\n      for: 360m\n      subject: loan")
                   .replace("      within: 30m\n      min_ratio: 0.8\n", "      min_ratio: 0.80\n      within: 1800s\n")
                   .replace("[6011, \"6051\", 0742]", "['0742', '6011', 6051]")
                   .replace("    tags: [cashout]", "    tags: [cashout, renamed-tag]")
                   .replace("Tune min_ratio.", "Tune min_ratio first."))
    assert version_of(tmp_path, GOOD) == version_of(tmp_path, reformatted, name="other.yaml")


@pytest.mark.parametrize("old, new", [
    ("      min_ratio: 0.8", "      min_ratio: 0.75"),
    ("    severity: high", "    severity: critical"),
    ('"withdrawal", "merchant"', '"withdrawal"'),
    ("for: 6h", "for: 7h"),
    ("      accounts: [OPS-1]", "      accounts: [OPS-1, OPS-2]"),
    ("[6011, \"6051\", 0742]", "[6011, \"6051\"]"),
    ("    kind: cashout\n", "    kind: cashout\n"),   # control: identical text, identical version
])
def test_version_changes_with_what_the_rule_detects(tmp_path, old, new):
    changed = GOOD.replace(old, new)
    if changed == GOOD:
        assert version_of(tmp_path, GOOD) == version_of(tmp_path, changed, name="b.yaml")
    else:
        assert version_of(tmp_path, GOOD) != version_of(tmp_path, changed, name="b.yaml")


def test_ruleset_version_tracks_enabled_rules(tmp_path):
    base = load_rules(write(tmp_path, "a.yaml", GOOD), kinds=KINDS)
    off = load_rules(write(tmp_path, "b.yaml", GOOD.replace("enabled: true", "enabled: false")), kinds=KINDS)
    assert base.by_id("rapid-cashout").version == off.by_id("rapid-cashout").version
    assert base.version != off.version


# -- overrides -----------------------------------------------------------------------------------------------

def test_overrides_tune_a_shipped_rule(tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    write(rules_dir, "pack.yaml", GOOD)
    override = write(tmp_path, "site.yaml", """\
        lists:
          house_accounts: [HOUSE-1, HOUSE-2]
        overrides:
          - rule: rapid-cashout
            params: {min_ratio: 0.9}
            severity: critical
            allow: {accounts: house_accounts}
            where: transfer.channel == "withdrawal"
          - rule: device-burst
            enabled: false
        """)
    shipped = load_rules(rules_dir, kinds=KINDS)
    tuned = load_rules(rules_dir, overrides=override, kinds=KINDS)
    rule = tuned.by_id("rapid-cashout")
    assert rule.params["min_ratio"] == 0.9 and rule.params["within"] == 30 * 60_000   # others kept
    assert rule.severity == "critical"
    assert rule.allow.accounts == frozenset({"OPS-1", "HOUSE-1", "HOUSE-2"})          # allow-lists add up
    assert rule.where_text == 'transfer.channel == "withdrawal"'
    assert not tuned.by_id("device-burst").enabled
    assert rule.version != shipped.by_id("rapid-cashout").version


def test_override_errors_point_at_the_override_file(tmp_path):
    write(tmp_path, "pack.yaml", GOOD)
    override = write(tmp_path, "site.override.yaml", """\
        overrides:
          - rule: rapid-cashot
            severity: low
          - rule: rapid-cashout
            params:
              min_ratio: 2
            colour: red
        """)
    result = check_rules(tmp_path, kinds=KINDS)
    located = problems(result)
    assert any(m.startswith(f"{override}:2:") and "unknown rule 'rapid-cashot' (did you mean 'rapid-cashout'?)"
               in m for m in located), located
    assert any(m.startswith(f"{override}:6: rule 'rapid-cashout': params.min_ratio") for m in located), located
    assert any(m.startswith(f"{override}:7: rule 'rapid-cashout': unknown override key 'colour'")
               for m in located), located


def test_global_allow_list_applies_to_every_rule(tmp_path):
    path = write(tmp_path, "pack.yaml", GOOD.replace("rules:\n", "allow:\n  accounts: [SETTLEMENT]\nrules:\n", 1))
    rules = load_rules(path, kinds=KINDS)
    assert all("SETTLEMENT" in rule.allow.accounts for rule in rules.rules)


def test_cli_check_fails_with_file_and_line(tmp_path, capsys):
    from stream.cli import main
    path = write(tmp_path, "pack.yaml", GOOD.replace("kind: cashout", "kind: no_such_kind"))
    assert main(["rules", "check", str(path), "--window", "72h"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:5: rule 'rapid-cashout': unknown kind 'no_such_kind'" in out
    assert out.strip().splitlines()[-1].startswith("FAILED: ")


# -- robustness ----------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
import yaml  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["30m", "cash_mcc", "pager", "cashout", "high", "1.5",
                                                            "transfer.amount > 1", "in_list('x', 1)", "(", "0742"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)
_rule_keys = st.sampled_from(["rule", "kind", "desc", "where", "params", "severity", "cooldown", "notify", "allow",
                              "false_positives", "tags", "enabled", "bogus"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=st.lists(st.dictionaries(_rule_keys, _values, max_size=8), max_size=3),
       lists=st.one_of(st.none(), _values), allow=st.one_of(st.none(), _values))
def test_any_yaml_gives_errors_never_a_crash(tmp_path, rules, lists, allow):
    doc = {"lists": lists, "allow": allow, "rules": rules}
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = check_rules(path, kinds=KINDS, window_ms=72 * HOUR)
    assert (result.ruleset is None) == bool(result.errors)
    for error in result.errors:
        assert error.file == str(path)


def _only_yaml_error(tmp_path: Path, text: str):
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    result = check_rules(path, kinds=KINDS)
    assert len(result.errors) == 1, problems(result)
    return result.errors[0]


def test_an_unclosed_quote_is_reported_where_it_opened_not_at_the_end_of_the_file(tmp_path):
    """Regression: PyYAML names the end of the file; the analyst needs the line of the quote."""
    lines = GOOD.splitlines()
    at = next(i for i, line in enumerate(lines) if "tags: [cashout]" in line)
    lines[at] = '    desc: "most of a loan withdrawn soon'
    error = _only_yaml_error(tmp_path, "\n".join(lines) + "\n")
    assert error.line == at + 1 and "quote opened on this line is never closed" in error.message
    assert error.line < len(lines)


@pytest.mark.parametrize("text, line, hint", [
    ("rules:\n\t- id: a\n", 2, "tab character; YAML indents with spaces only"),
    ("rules:\n  - id: a\n   kind: b\n", 3, "check the indentation"),
    ('rules:\n  - id: a\n    where: "x" in transfer.channel\n', 3,
     "a value that starts with a quote must end with it"),
])
def test_common_yaml_mistakes_get_a_plain_hint_at_their_line(tmp_path, text, line, hint):
    error = _only_yaml_error(tmp_path, text)
    assert error.line == line and hint in error.message, (error.line, error.message)
