"""The evidence drawn as the path of the money (text and DOT): what each kind's evidence allows, and nothing an
attacker-chosen id can break."""

from __future__ import annotations

import re

from stream.offline.evidence_view import dot_string, money_flow, path_lines, printable, to_dot
from warning_samples import replayed, warning


def test_a_cash_out_reads_from_the_loan_through_each_transfer_to_the_exit(tmp_path):
    lines = path_lines(replayed(tmp_path)["rapid-cashout"])
    assert lines == [
        "loan L1  5000.00 CNY  disbursed 2026-03-02T10:00:00.000Z  d1",
        "└─► U1  (borrower)",
        "    └─► U2  [t1]",
        "        └─► U3  [t2]",
        "            └─► card:6222000011112222  (exit: money left the ledger)  "
        "[t3  4850.00 CNY of the loan reached the sink  2026-03-02T10:15:00.000Z]",
    ]


def test_a_layering_run_is_traced_from_its_loan_without_claiming_it_starts_at_the_borrower(tmp_path):
    lines = path_lines(replayed(tmp_path)["layering-chain"])
    assert lines[0] == "loan L1  5000.00 CNY  disbursed 2026-03-02T10:00:00.000Z  d1"
    assert lines[1] == "└┄► U1  (traced from the loan)"
    assert lines[-1].endswith("[t3  4850.00 CNY of the loan carried  2026-03-02T10:15:00.000Z]")


def test_a_cycle_shows_each_leg_with_its_amount_and_ends_where_it_started(tmp_path):
    assert path_lines(replayed(tmp_path)["round-trip-pair"]) == [
        "U7",
        "└─► U8  [t4  7900.00 CNY]",
        "    └─► U7  (back at the start)  [t5  7800.00 CNY  2026-03-02T12:40:00.000Z]",
    ]


def test_paths_sharing_hops_draw_each_shared_hop_once():
    cashout = warning("rapid_cashout", {"paths": [["B", "M1", "H", "card:1"], ["B", "M2", "H", "card:1"]],
                                        "loan_amount": "500.00", "sinks": ["card:1"]},
                      subject="L9", loan_ids=["L9"], accounts=["B", "M1", "H", "M2"],
                      txn_ids=["d9", "t1", "t2", "t3", "t4", "t5"])
    assert path_lines(cashout) == [
        "loan L9  500.00 CNY  disbursed 2026-03-02T10:00:00.000Z  d9",
        "└─► B  (borrower)",
        "    ├─► M1",
        "    │   └─► H",
        "    │       └─► card:1  (exit: money left the ledger)",
        "    └─► M2",
        "        └─► H  (continues above)",
    ]


def test_many_senders_into_one_hub_are_listed_before_what_the_hub_sent_on():
    gather = warning("gather_scatter", {"paths": [["A", "H"], ["B", "H"], ["H", "X"], ["H", "Y"]]},
                     accounts=["H", "A", "B", "X", "Y"])
    assert path_lines(gather) == ["A ─► H", "B ─► H", "H", "├─► X", "└─► Y"]
    fan_in = warning("fan_in", {"paths": [["A", "C"], ["B", "C"]]}, accounts=["C", "A", "B"])
    assert path_lines(fan_in) == ["A ─► C", "B ─► C"]


def test_a_device_burst_draws_the_loans_from_the_requester():
    burst = warning("device_burst", {"requester": "device:dev-1", "accounts": 2, "loans": 2},
                    accounts=["U1", "U2"], txn_ids=["d1", "d2"])
    assert path_lines(burst) == ["device:dev-1  (requester of the loans)",
                                 "├─► U1  [loan requested]", "└─► U2  [loan requested]"]


def test_transaction_ids_are_placed_on_a_chain_only_when_they_are_one_per_transfer():
    layering = warning("layering", {"paths": [["A", "B", "C"]]}, subject="L1", loan_ids=["L1"],
                       accounts=["A", "B", "C"], txn_ids=["d1", "t1"])      # one id missing (cut by a size cap)
    assert [step.txn_id for step in money_flow(layering).steps] == [None, None]
    assert money_flow(layering).steps[-1].at is None
    revisited = warning("layering", {"paths": [["A", "B", "C"]], "hops": 3}, accounts=["A", "B", "C"],
                        txn_ids=["t1", "t2"])     # A -> B -> A -> C recorded with A once: its steps are unknown
    assert all(step.txn_id is None and step.amount is None for step in money_flow(revisited).steps)


def test_damaged_or_missing_paths_shorten_the_drawing_instead_of_failing():
    assert path_lines(warning("fan_out", {})) == ["(the evidence names no path)"]
    damaged = warning("fan_out", {"paths": [["P", "Q"], "x", [1, 2], ["lonely"], {"a": 1}]}, accounts=["P", "Q"])
    assert path_lines(damaged) == ["P", "└─► Q"]


def test_exits_are_told_by_their_name_the_kinds_sinks_or_not_being_an_account():
    layering = warning("layering", {"paths": [["A", "B", "shop-77"]]}, accounts=["A", "B"])
    assert money_flow(layering).external == {"shop-77"}
    cut = warning("layering", {"paths": [["A", "B", "merchant:M1"]], "truncated": {"accounts": 3}}, accounts=["A"])
    assert money_flow(cut).external == {"merchant:M1"}      # B is not an exit: the account list was cut


def test_control_characters_in_ids_never_reach_the_terminal():
    hostile = "U1\x1b[2J\x1b]0;owned\x07\u202egnp.exe\nnext"
    assert printable(hostile) == "U1\\x1b[2J\\x1b]0;owned\\x07\\u202egnp.exe\\x0anext"
    text = "\n".join(path_lines(warning("fan_out", {"paths": [[hostile, "U2"]]}, accounts=[hostile, "U2"])))
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text and len(text.splitlines()) == 2


# -- DOT --------------------------------------------------------------------------------------------------------

TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"|->|[{}\[\];,=]|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+')


def dot_tokens(text: str) -> list[str]:
    """DOT as Graphviz's lexer splits it; an unterminated or unbalanced string would leave text unmatched."""
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match, f"not DOT at {text[position:position + 40]!r}"
        position = match.end()
        if not match.group().isspace():
            tokens.append(match.group())
    return tokens


def unquote(token: str) -> str:
    """A DOT string's text as Graphviz shows it: \\n a line break, any other escaped character itself."""
    return re.sub(r"\\(.)", lambda match: "\n" if match.group(1) == "n" else match.group(1), token[1:-1])


def dot_graph(text: str) -> tuple[dict[str, str], list[tuple[str, str, str | None]]]:
    """Node labels by DOT id, and the edges (src label, dst label, edge label) of a digraph to_dot wrote."""
    tokens = dot_tokens(text)
    assert tokens[:3] == ["digraph", "warning", "{"] and tokens[-1] == "}"
    statements, current = [], []
    for token in tokens[3:-1]:
        if token == ";":
            statements.append(current)
            current = []
        else:
            current.append(token)
    assert not current
    labels, edges = {}, []
    for statement in statements:
        attrs = {}
        if "[" in statement:
            start = statement.index("[")
            assert statement[-1] == "]"
            inner = [t for t in statement[start + 1:-1] if t != ","]
            attrs = {inner[i]: inner[i + 2] for i in range(0, len(inner), 3)}
            assert all(inner[i + 1] == "=" for i in range(0, len(inner), 3))
            statement = statement[:start]
        if statement in (["graph"], ["node"], ["edge"]) or statement[:1] == ["rankdir"]:
            continue
        if len(statement) == 1:
            labels[statement[0]] = unquote(attrs["label"])
        else:
            assert len(statement) == 3 and statement[1] == "->", statement
            label = attrs.get("label")
            edges.append((statement[0], statement[2], unquote(label) if label else None))
    named = [(labels.get(src, src), labels.get(dst, dst), label) for src, dst, label in edges]
    return labels, named


def test_dot_draws_the_loan_the_accounts_the_exit_and_each_transfer(tmp_path):
    labels, edges = dot_graph(to_dot(replayed(tmp_path)["rapid-cashout"]))
    assert set(labels.values()) >= {"U1", "U2", "U3", "card:6222000011112222"}
    assert [(src, dst) for src, dst, _ in edges] == [
        ("loan L1\n5000.00 CNY\ndisbursed 2026-03-02T10:00:00.000Z\nd1", "U1"), ("U1", "U2"), ("U2", "U3"),
        ("U3", "card:6222000011112222")]
    assert edges[-1][2] == "t3\n4850.00 CNY of the loan reached the sink\n2026-03-02T10:15:00.000Z"
    assert "shape=doubleoctagon" in next(line for line in to_dot(replayed(tmp_path)["rapid-cashout"]).splitlines()
                                         if '"card:6222000011112222"' in line)


def test_dot_ids_from_the_ledger_cannot_change_the_graph():
    hostile = ['U1"]; n9 -> n9 [label="pwned', "U2\\", 'x" } digraph { "y', "node", "edge\n->\r", "-> n0;"]
    fan = warning("fan_out", {"paths": [[hostile[0], other] for other in hostile[1:]]}, accounts=hostile,
                  rule_id='r"; }', summary='s\\"', txn_ids=['t"1'])
    text = to_dot(fan)
    labels, edges = dot_graph(text)
    assert sorted(labels.values()) == sorted(printable(node) for node in hostile)
    assert [(src, dst) for src, dst, _ in edges] == [(printable(hostile[0]), printable(o)) for o in hostile[1:]]
    assert dot_string('a"b\\c') == '"a\\"b\\\\c"'
