"""`fundflow warnings show ID` against a real embedded store (chDB): one warning in full, raw or as DOT, a
one-line answer for an unknown id, and the list beside it unchanged."""

from __future__ import annotations

import orjson
import pytest

from stream.cli import main
from stream.model.warning import EarlyWarning
from stream.offline.warning_view import render_warning
from stream.sinks.schema import warning_to_row
from stream.sinks.factory import open_store
from warning_samples import replayed


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store holding the sample ledger's warnings (the cash-out one twice: the later copy is the one kept)."""
    root = tmp_path_factory.mktemp("show")
    warnings = replayed(root)
    url = f"chdb://{root / 'chdb'}"
    with open_store(url) as store:
        store.ensure_schema()
        stale = EarlyWarning.from_dict({**warnings["rapid-cashout"].to_dict(), "summary": "an older copy"})
        store.insert_rows([warning_to_row(stale, 1)] + [warning_to_row(w, 2) for w in warnings.values()])
    return url, warnings


def test_show_prints_every_field_and_the_money_path(stored, capsys):
    url, warnings = stored
    cashout = warnings["rapid-cashout"]
    assert main(["warnings", "show", cashout.warning_id, "--store", url]) == 0
    out = capsys.readouterr().out
    for line in (f"warning_id    {cashout.warning_id}", "rule_id       rapid-cashout",
                 f"rule_version  {cashout.rule_version}", "kind          rapid_cashout", "severity      high",
                 "subject       L1", "amount        4850.00 CNY",
                 "first_ts      2026-03-02T10:00:00.000Z  (the earliest event of the evidence)",
                 "event_ts      2026-03-02T10:15:00.000Z  (the event that completed the pattern, 15 min later)",
                 "detected_at   2026-03-02T10:15:00.000Z", f"summary       {cashout.summary}",
                 "accounts      (3) U1, U2, U3", "loan_ids      (1) L1", "txn_ids       (4) d1, t1, t2, t3",
                 "notify        (1) pager", "  elapsed_s     900 (15 min)", "  loan_amount   5000.00 CNY",
                 "  paths         1 path, drawn below", "  sinks         card:6222000011112222",
                 "  loan L1  5000.00 CNY  disbursed 2026-03-02T10:00:00.000Z  d1", "  └─► U1  (borrower)"):
        assert line in out.splitlines(), line
    assert "an older copy" not in out
    assert out == render_warning(cashout) + "\n"


def test_show_json_is_the_stored_warning_and_dot_its_evidence(stored, capsys):
    url, warnings = stored
    cycle = warnings["round-trip-pair"]
    assert main(["warnings", "--store", url, "show", cycle.warning_id, "--json"]) == 0    # --store before show too
    assert orjson.loads(capsys.readouterr().out) == orjson.loads(cycle.to_json())
    assert main(["warnings", "show", cycle.warning_id, "--dot", "--store", url]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph warning {") and 'label="t4\\n7900.00 CNY"' in dot


def test_an_unknown_id_is_one_line_with_the_ids_it_may_have_meant(stored, capsys):
    url, warnings = stored
    full = warnings["layering-chain"].warning_id
    assert main(["warnings", "show", full[:9], "--store", url]) == 1
    err = capsys.readouterr().err
    assert err == f"fundflow warnings: no warning {full[:9]} in {url}; did you mean {full}?\n"
    assert main(["warnings", "show", full[2:12], "--store", url]) == 1          # typed without its w-
    assert f"did you mean {full}?" in capsys.readouterr().err
    assert main(["warnings", "show", "w-nothing-like-it", "--store", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean" not in err and "no warning w-nothing-like-it" in err


def test_list_filters_given_to_show_are_refused_not_ignored(stored, capsys):
    url, warnings = stored
    assert main(["warnings", "--rule", "rapid-cashout", "--store", url, "show",
                 warnings["rapid-cashout"].warning_id]) == 1
    assert "--rule filters the list; `fundflow warnings show ID` takes only --json, --dot and --store" in \
        capsys.readouterr().err


def test_the_list_reads_as_before_beside_show(stored, capsys):
    url, _ = stored
    assert main(["warnings", "--rule", "rapid-cashout", "--store", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("EVENT TIME") and len(out) == 3 and out[-1] == "1 warning"
    assert main(["warnings", "--store", url, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
