"""The analyst console without a browser: the evidence graph as a pure function (layout, escaping), the
append-only labels and the role rules, the query layer and the app (auth, CSRF, escaping, the API) over a real
embedded store (chDB) through Starlette's test client."""

from __future__ import annotations

import warnings
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

with warnings.catch_warnings():       # Starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from stream.console import auth, graph
from stream.sinks import labels
from stream.console.app import create_app
from stream.console.queries import Console, QueueFilter, Refused, rule_block
from stream.errors import SettingsError
from stream.model.warning import EarlyWarning
from stream.sinks.factory import open_store
from stream.sinks.schema import warning_to_row
from warning_samples import PACK, replayed, warning

SVG = "{http://www.w3.org/2000/svg}"
ANALYST, SUPERVISOR = "analyst-token-0123456789", "supervisor-token-0123456789"
EVIL = '<script>alert("x")</script>'


def _accounts_drawn(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    return {g.get("data-id") for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "").split()}


# -- the graph -----------------------------------------------------------------------------------------------------

def test_the_graph_draws_every_account_the_loan_and_the_exit_left_to_right(tmp_path):
    cashout = replayed(tmp_path)["rapid-cashout"]
    plan = graph.layout(cashout)
    roles = {node.id: node.role for node in plan.nodes}
    assert set(cashout.accounts) <= set(roles)
    assert roles[graph.LOAN_NODE] == "origin"
    assert [n for n, r in roles.items() if r == "sink"] == ["card:6222000011112222"]
    columns = [plan.node(n).column for n in (graph.LOAN_NODE, "U1", "U2", "U3", "card:6222000011112222")]
    assert columns == sorted(columns) and len(set(columns)) == 5        # one layer per hop
    svg = graph.to_svg(cashout)
    assert set(cashout.accounts) <= _accounts_drawn(svg)
    root = ET.fromstring(svg)
    traced = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge traced"]
    assert {(g.get("data-src"), g.get("data-dst")) for g in traced} >= {("U1", "U2"), ("U2", "U3")}


def test_a_cycle_closes_backwards_and_every_node_is_placed_once(tmp_path):
    cycle = next(w for w in replayed(tmp_path).values() if w.kind == "cycle")
    plan = graph.layout(cycle)
    assert len({n.id for n in plan.nodes}) == len(plan.nodes)
    assert {e.src for e in plan.edges} | {e.dst for e in plan.edges} <= {n.id for n in plan.nodes}
    assert len({(n.column, n.row) for n in plan.nodes}) == len(plan.nodes)       # no two nodes on one spot


def test_ids_with_markup_are_escaped_text_never_elements():
    evil = warning("layering", {"paths": [[EVIL, 'a"b&c', "card:<img src=x>"]], "hops": 2},
                   accounts=[EVIL, 'a"b&c', "U\u202eX"], subject=EVIL)
    svg = graph.to_svg(evil)
    root = ET.fromstring(svg)                                   # still well-formed XML
    tags = {element.tag for element in root.iter()}
    assert tags <= {f"{SVG}{t}" for t in ("svg", "title", "defs", "marker", "path", "g", "rect", "text")}
    assert "<script" not in svg and "<img" not in svg
    assert EVIL in _accounts_drawn(svg) and 'a"b&c' in _accounts_drawn(svg)
    assert "\u202e" not in svg                                   # bidirectional override shown as \u202e


def test_a_lone_account_of_a_star_without_paths_is_still_drawn():
    plan = graph.layout(warning("fan_in", {"paths": [["A", "C"], ["B", "C"]]}, accounts=["C", "A", "B", "Z"]))
    assert {n.id for n in plan.nodes} == {"A", "B", "C", "Z"}


# -- tokens --------------------------------------------------------------------------------------------------------

def test_tokens_parse_with_two_roles_and_refuse_short_or_unknown_ones(tmp_path):
    tokens = auth.Tokens.from_settings(f"ana:analyst:{ANALYST}", None)
    file = tmp_path / "tokens"
    file.write_text(f"# team\nsue:supervisor:{SUPERVISOR}\n")
    both = auth.Tokens.from_settings(f"ana:analyst:{ANALYST}", str(file))
    assert [u.role for u in both.users] == ["analyst", "supervisor"]
    assert tokens.find(ANALYST).name == "ana" and tokens.find("nope") is None and tokens.find("") is None
    with pytest.raises(SettingsError, match="at least 16"):
        auth.parse_tokens("ana:analyst:short", source="x")
    with pytest.raises(SettingsError, match="ROLE one of"):
        auth.parse_tokens(f"ana:admin:{ANALYST}", source="x")


def test_rule_block_is_one_rule_of_a_file():
    text = "rules:\n  - rule: a\n    kind: x\n\n    params: {}\n  - rule: b\n    kind: y\n"
    assert rule_block(text, 2) == "  - rule: a\n    kind: x\n\n    params: {}\n"
    assert rule_block(text, 0) == text


# -- the store, the queries and the app ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def console(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    samples = replayed(root)
    evil = EarlyWarning.from_dict({**samples["rapid-cashout"].to_dict(), "warning_id": "w-evil",
                                   "accounts": [EVIL, "U2"], "subject": EVIL,
                                   "evidence": {"paths": [[EVIL, "U2", "card:1"]], "hops": 2}})
    store = open_store(f"chdb://{root / 'chdb'}")
    store.ensure_schema()
    store.insert_rows([warning_to_row(w, 2) for w in [*samples.values(), evil]])
    clock = iter(range(1_800_000_000_000, 1_900_000_000_000, 1000))
    yield Console(store, rules_dir=str(PACK), clock=lambda: next(clock)), samples
    store.close()


@pytest.fixture(scope="module")
def client(console):
    users = auth.Tokens.from_settings(f"ana:analyst:{ANALYST},sue:supervisor:{SUPERVISOR}", None)
    return TestClient(create_app(console[0], users), base_url="http://127.0.0.1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_labels_are_appended_and_never_touch_the_warning(console):
    c, samples = console
    wid = samples["layering-chain"].warning_id
    before = c.row(wid)
    first = c.label(wid, actor="ana", role="analyst", status="investigating", assignee="ana")
    second = c.label(wid, actor="ana", role="analyst", status="confirmed", note="mule ring")
    assert (first.status_from, first.status_to, second.status_from, second.status_to) == \
        ("open", "investigating", "investigating", "confirmed")
    assert second.assignee_from == second.assignee_to == "ana"
    assert [e.label_id for e in labels.history(c.store, wid)] == [first.label_id, second.label_id]
    assert c.row(wid) == before
    assert c.store.count_distinct() == len(samples) + 1
    confirmed = c.queue(QueueFilter(status="confirmed"))["warnings"]
    assert [w["warning_id"] for w in confirmed] == [wid]
    assert wid not in {w["warning_id"] for w in c.queue(QueueFilter(status="open"))["warnings"]}
    assert [w["warning_id"] for w in c.queue(QueueFilter(assignee="ana"))["warnings"]] == [wid]


def test_only_a_supervisor_reopens_or_reassigns(console):
    c, samples = console
    wid = samples["round-trip-pair"].warning_id if "round-trip-pair" in samples else samples["rapid-cashout"].warning_id
    c.label(wid, actor="ana", role="analyst", status="false_positive", assignee="ana")
    with pytest.raises(Refused, match="only a supervisor reopens"):
        c.label(wid, actor="ana", role="analyst", status="open")
    with pytest.raises(Refused, match="only a supervisor reassigns"):
        c.label(wid, actor="ana", role="analyst", assignee="bob")
    with pytest.raises(Refused, match="nothing to record"):
        c.label(wid, actor="ana", role="analyst")
    event = c.label(wid, actor="sue", role="supervisor", status="investigating", assignee="bob")
    assert (event.status_from, event.assignee_to) == ("false_positive", "bob")


def test_the_queue_filters_and_pages_by_key(console):
    c, samples = console
    everything = c.queue(QueueFilter(limit=500))["warnings"]
    times = [(-w["event_ts_ms"], w["warning_id"]) for w in everything]
    assert times == sorted(times)
    pages, cursor = [], None
    while True:
        page = c.queue(QueueFilter(limit=1, before=cursor))
        pages += [w["warning_id"] for w in page["warnings"]]
        if not page["next"]:
            break
        ms, _, wid = page["next"].partition(":")
        cursor = (int(ms), wid)
    assert pages == [w["warning_id"] for w in everything]
    assert {w["rule_id"] for w in c.queue(QueueFilter(rule_id="rapid-cashout"))["warnings"]} == {"rapid-cashout"}
    assert all("U2" in w["accounts"] for w in c.queue(QueueFilter(account="U2"))["warnings"])
    assert {w["kind"] for w in c.queue(QueueFilter(kind="cycle"))["warnings"]} == {"cycle"}
    assert c.queue(QueueFilter(loan="L2"))["warnings"] and \
        all("L2" in w["loan_ids"] for w in c.queue(QueueFilter(loan="L2"))["warnings"])


def test_unauthenticated_requests_are_refused(client):
    assert client.get("/api/warnings").status_code == 401
    assert client.get("/api/warnings", headers=bearer("x" * 20)).status_code == 401
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.post("/api/warnings/w-evil/labels", json={"status": "confirmed"}).status_code == 401


def test_pages_escape_ids_and_forbid_scripts(client):
    client.cookies.set(auth.COOKIE, ANALYST)
    try:
        for path in ("/", "/warnings/w-evil", "/accounts/%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "<script>" not in response.text and "&lt;script&gt;" in response.text, path
            assert "script-src" not in response.headers["content-security-policy"]
            assert "default-src 'none'" in response.headers["content-security-policy"]
    finally:
        client.cookies.clear()


def test_a_browser_change_needs_the_csrf_token_and_the_api_takes_a_bearer(client, console):
    c, samples = console
    wid = samples["rapid-cashout"].warning_id
    client.cookies.set(auth.COOKIE, SUPERVISOR)
    try:
        refused = client.post(f"/warnings/{wid}/labels", data={"status": "escalated"}, follow_redirects=False)
        assert refused.status_code == 403
        wrong = client.post(f"/warnings/{wid}/labels", data={"status": "escalated", "csrf": "0" * 64},
                            follow_redirects=False)
        assert wrong.status_code == 403
        foreign = client.post(f"/warnings/{wid}/labels", headers={"Origin": "http://evil.example"},
                              data={"status": "escalated", "csrf": auth.csrf_token(SUPERVISOR)}, follow_redirects=False)
        assert foreign.status_code == 403
        done = client.post(f"/warnings/{wid}/labels", data={"status": "escalated", "csrf": auth.csrf_token(SUPERVISOR)},
                           follow_redirects=False)
        assert done.status_code == 303
    finally:
        client.cookies.clear()
    api = client.post(f"/api/warnings/{wid}/labels", json={"status": "confirmed"}, headers=bearer(SUPERVISOR))
    assert api.status_code == 201 and api.json()["status_from"] == "escalated"
    detail = client.get(f"/api/warnings/{wid}", headers=bearer(ANALYST)).json()
    assert detail["triage"]["status"] == "confirmed"
    assert [e["status_to"] for e in detail["labels"]][-2:] == ["escalated", "confirmed"]
    assert detail["rule"]["text"].lstrip().startswith("- rule: rapid-cashout")
    rules = {(r["rule_id"]): r for r in client.get("/api/rules", headers=bearer(ANALYST)).json()["rules"]}
    assert rules["rapid-cashout"]["confirmed"] >= 1 and rules["rapid-cashout"]["precision"] is not None


def test_the_api_refuses_bad_input_with_a_reason(client):
    assert client.get("/api/warnings?severity=huge", headers=bearer(ANALYST)).status_code == 400
    assert client.get("/api/warnings?before=nonsense", headers=bearer(ANALYST)).status_code == 400
    assert client.get("/api/warnings/w-nope", headers=bearer(ANALYST)).status_code == 404
    bad = client.post("/api/warnings/w-evil/labels", json={"status": "done"}, headers=bearer(ANALYST))
    assert bad.status_code == 400 and "status" in bad.json()["error"]


def test_login_sets_an_httponly_strict_cookie_and_never_redirects_off_site(client):
    response = client.post("/login", data={"token": ANALYST, "next": "//evil.example/"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.post("/login", data={"token": "wrong-token-000000"}).status_code == 401
    forced = client.post("/login", data={"token": ANALYST}, headers={"Origin": "http://evil.example"},
                         follow_redirects=False)
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    framed = client.post("/login", data={"token": ANALYST}, headers={"Origin": "null"}, follow_redirects=False)
    assert framed.status_code == 403                  # a sandboxed frame of another site says `null`
    assert client.get("/login").headers["referrer-policy"] == "same-origin"   # so our own forms send their origin
    client.cookies.clear()


def test_labels_export_and_import_round_trip_and_never_add_twice(console):
    import io

    from stream.console import labels_io
    from stream.errors import FundflowError

    c, samples = console
    wid = samples["rapid-cashout"].warning_id
    c.label(wid, actor="ana", role="analyst", note="exported")
    for fmt in labels_io.FORMATS:
        out = io.StringIO()
        count = labels_io.export(c.store, out, fmt)
        rows = labels_io.read(out.getvalue(), fmt, source="x")
        assert len(rows) == count >= 1
        again = labels_io.import_rows(c.store, rows, source="x", clock=c.clock)
        assert (again.added, again.skipped) == (0, count)
    fresh = [{"warning_id": wid, "status_from": "confirmed", "status_to": "confirmed", "note": "from the case tool"}]
    assert labels_io.import_rows(c.store, fresh, source="x", clock=c.clock).added == 1
    assert labels.history(c.store, wid)[-1].note == "from the case tool"
    total = len(labels.every_event(c.store))
    with pytest.raises(FundflowError, match="status_to: expected one of"):
        labels_io.import_rows(c.store, fresh + [{"warning_id": wid, "status_to": "done"}], source="x", clock=c.clock)
    with pytest.raises(FundflowError, match="not in the store"):
        labels_io.import_rows(c.store, [{"warning_id": "w-nope", "status_to": "confirmed"}], source="x",
                              clock=c.clock)
    assert len(labels.every_event(c.store)) == total                  # a bad file imports nothing


def test_warnings_stored_after_the_console_opened_reach_its_views_once_and_latest(console):
    c, samples = console
    base = samples["rapid-cashout"].to_dict()
    late = EarlyWarning.from_dict({**base, "warning_id": "w-late", "event_ts": "2026-03-09T10:00:00Z",
                                   "summary": "first copy", "accounts": ["U-late"]})
    again = EarlyWarning.from_dict({**late.to_dict(), "summary": "second copy"})
    c.store.insert_rows([warning_to_row(late, 10)])
    c.store.insert_rows([warning_to_row(again, 11)])
    page = c.queue(QueueFilter(limit=5))["warnings"]
    assert [w["warning_id"] for w in page].count("w-late") == 1 and page[0]["warning_id"] == "w-late"
    assert page[0]["summary"] == "second copy"
    assert [w["warning_id"] for w in c.queue(QueueFilter(account="U-late"))["warnings"]] == ["w-late"]
    assert c.warning("w-late")["warning"]["summary"] == "second copy"
    assert "w-late" in {w["warning_id"] for w in c.account("U-late")["warnings"]}


def test_the_console_command_refuses_to_start_without_users_or_on_a_bad_port(tmp_path, capsys, monkeypatch):
    from stream.cli import main

    monkeypatch.delenv("FUNDFLOW_CONSOLE_TOKENS", raising=False)
    monkeypatch.delenv("FUNDFLOW_CONSOLE_TOKENS_FILE", raising=False)
    assert main(["console", "--store", f"chdb://{tmp_path / 'none'}", "--port", "0"]) == 1
    assert "no console users" in capsys.readouterr().err
    assert main(["console", "--port", "70000"]) == 1
    assert "--port: expected 0-65535" in capsys.readouterr().err
    monkeypatch.setenv("FUNDFLOW_CONSOLE_TOKENS", "ana:boss:0123456789abcdef")
    assert main(["console", "--port", "0"]) == 1
    assert "ROLE one of analyst, supervisor" in capsys.readouterr().err


def test_a_rule_text_the_evidence_chain_stored_is_shown_as_yaml_of_the_same_version(tmp_path):
    import yaml

    from stream.console.queries import stored_rule_yaml
    from stream.detection.rulebook import load_rules

    rule = load_rules(Path(__file__).resolve().parents[2] / "rules").by_id("layering-chain")
    shown = stored_rule_yaml(rule.canonical_text)
    assert shown.startswith("- rule: layering-chain\n")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"rules": yaml.safe_load(shown)}))
    assert load_rules(tmp_path / "r.yaml").by_id("layering-chain").version == rule.version
    assert stored_rule_yaml("a text from elsewhere") == "a text from elsewhere"
