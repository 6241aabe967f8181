"""`rules diff`: added/removed/changed rules, and the direction of every change."""

from __future__ import annotations

import textwrap

from stream.cli import main
from stream.rules.diff import diff_rulesets
from stream.rules.loader import load_rules

from test_rules_loader import GOOD, KINDS  # same directory: pytest puts it on sys.path


def load(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_rules(path, kinds=KINDS)


def changes_of(result, rule_id):
    for rule, changes in result.changed:
        if rule.id == rule_id:
            return {change.field: change for change in changes}
    raise AssertionError(f"{rule_id} not changed: {result.render()}")


def test_identical_packs_have_no_diff(tmp_path):
    result = diff_rulesets(load(tmp_path, "a.yaml", GOOD), load(tmp_path, "b.yaml", GOOD), KINDS)
    assert result.empty and result.unchanged == 2
    assert result.render() == "0 added, 0 removed, 0 changed, 2 unchanged"


def test_threshold_directions(tmp_path):
    new_text = (GOOD.replace("min_ratio: 0.8", "min_ratio: 0.6")            # lower share fires more: loosened
                .replace("within: 30m", "within: 20m")                      # shorter window fires less: tightened
                .replace("      sinks: cash_mcc", "      sinks: cash_mcc\n      max_hops: 5")   # 3 -> 5: loosened
                .replace("severity: high", "severity: critical")
                .replace("enabled: true", "enabled: false"))
    result = diff_rulesets(load(tmp_path, "a.yaml", GOOD), load(tmp_path, "b.yaml", new_text), KINDS)
    changes = changes_of(result, "rapid-cashout")
    assert changes["params.min_ratio"].direction == "loosened"
    assert (changes["params.within"].old, changes["params.within"].new) == ("30m", "20m")
    assert changes["params.within"].direction == "tightened"
    assert changes["params.max_hops"].direction == "loosened"
    assert changes["severity"].direction == "up"
    assert changes["enabled"].direction == "disabled"
    rendered = result.render()
    assert "    params.min_ratio: 0.8 -> 0.6 (loosened)" in rendered
    assert "    severity: high -> critical (up)" in rendered
    assert "    enabled: true -> false (disabled)" in rendered


def test_reverse_directions_and_sets(tmp_path):
    old = load(tmp_path, "a.yaml", GOOD)
    new = load(tmp_path, "b.yaml", GOOD.replace("min_ratio: 0.8", "min_ratio: 0.9")
               .replace("severity: high", "severity: low")
               .replace('[6011, "6051", 0742]', '[6011, "6051", "7995"]')
               .replace("accounts: [OPS-1]", "accounts: [OPS-1, OPS-2]")
               .replace("for: 6h", "for: 1h"))
    changes = changes_of(diff_rulesets(old, new, KINDS), "rapid-cashout")
    assert changes["params.min_ratio"].direction == "tightened"
    assert changes["severity"].direction == "down"
    assert changes["params.sinks"].direction == "added [7995], removed [0742]"
    assert changes["allow.accounts"].direction == "quieter"
    assert changes["cooldown"].direction == "louder"


def test_added_removed_and_where(tmp_path):
    old = load(tmp_path, "a.yaml", GOOD)
    new = load(tmp_path, "b.yaml", GOOD.replace("rule: device-burst", "rule: device-burst-2")
               .replace('transfer.channel in ["withdrawal", "merchant"]', 'transfer.channel == "withdrawal"'))
    result = diff_rulesets(old, new, KINDS)
    assert [r.id for r in result.added] == ["device-burst-2"]
    assert [r.id for r in result.removed] == ["device-burst"]
    assert changes_of(result, "rapid-cashout")["where"].new == 'transfer.channel == "withdrawal"'
    assert result.render().splitlines()[:2] == ["+ device-burst-2 (burst, medium): added",
                                                "- device-burst (burst): removed"]


def test_cli_diff_on_the_shipped_pack(tmp_path, capsys):
    """The command end to end, on the real kinds: the default pack against a tuned copy of one file."""
    from pathlib import Path
    pack = Path(__file__).resolve().parents[2] / "rules"
    tuned = tmp_path / "rules"
    tuned.mkdir()
    for path in pack.glob("*.yaml"):
        if not path.name.endswith(".test.yaml"):
            text = path.read_text()
            if path.name == "cashout.yaml":
                assert "min_ratio: 0.8" in text
                text = text.replace("min_ratio: 0.8", "min_ratio: 0.9")
            (tuned / path.name).write_text(text)
    assert main(["rules", "diff", str(pack), str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "~ rapid-cashout (rapid_cashout):\n    params.min_ratio: 0.8 -> 0.9 (tightened)" in out
    assert main(["rules", "diff", "--exit-code", str(pack), str(tuned)]) == 1
    assert main(["rules", "diff", "--exit-code", str(pack), str(pack)]) == 0
