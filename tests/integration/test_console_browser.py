"""The analyst console in a real browser (Debian's chromium driven by Playwright) over a store filled by a real
worker run: a `fundflow worker` process consumes a simulated ledger (plus a loan paid into an account whose id
is markup) from the session broker and stores its warnings in the session ClickHouse server; the console is
then served from this process on a free port and driven through its pages, its API and `fundflow evaluate
--labels`. The screenshots of docs/console.md are taken here: into docs/console/ with FUNDFLOW_SCREENSHOTS=1
(how they are refreshed), else into the test's temporary directory, so a test run leaves the checkout alone."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest
from test_recovery import reference_run
from worker_harness import copy_rules, make_worker_env, produce

from stream.cli import main
from stream.console.server import bound_socket, build
from stream.settings import load_settings
from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.sinks.factory import open_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ANALYST, SUPERVISOR = "analyst-token-browser-0001", "supervisor-token-browser-01"
EVIL = '<script>document.title="pwned"</script>'
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
EVIL_EVENTS = [
    {"type": "disbursement", "event_id": "d-evil", "ts": "2026-03-02T23:00:00Z", "loan_id": "L-evil",
     "account": EVIL, "amount": "9000.00"},
    {"type": "transfer", "event_id": "t-evil", "ts": "2026-03-02T23:05:00Z", "src": EVIL,
     "dst": "6222000099998888", "amount": "8900.00", "channel": "withdrawal"},
]


@pytest.fixture(scope="module")
def stored(kafka_broker, clickhouse_server, tmp_path_factory):
    """A worker run's warnings in a private database of the ClickHouse server: (store url, rules dir, expected)."""
    from conftest import free_port, unique_name

    tmp_path = tmp_path_factory.mktemp("console")
    events, _ = simulate(SimParams(seed=3, accounts=300, days=2, instances=2, background_per_day=800))
    events = sorted([*events, *EVIL_EVENTS], key=lambda e: e["ts"])
    rules_dir = copy_rules(tmp_path)
    expected = {w.warning_id for w in reference_run(events, rules_dir)}
    url = f"clickhouse://127.0.0.1:{clickhouse_server.port}/{unique_name('console')}"
    worker = make_worker_env(kafka_broker, tmp_path, unique_name, free_port(), rules_dir,
                             clickhouse_url=url)
    try:
        produce(worker.bootstrap, worker.names, events)
        worker.start()

        def all_stored() -> bool:
            try:
                with open_store(url, create=False) as store:
                    return store.count_distinct() >= len(expected)
            except Exception:       # the table appears when the worker first stores
                return False
        worker.wait_for(all_stored, f"the worker to store its {len(expected)} warnings", deadline_s=120)
    finally:
        worker.stop_all()
    return url, rules_dir, expected


@pytest.fixture(scope="module")
def console(stored):
    url, rules_dir, _ = stored
    settings = load_settings(None, env={"FUNDFLOW_CONSOLE_TOKENS": f"ana:analyst:{ANALYST},"
                                                                  f"sue:supervisor:{SUPERVISOR}"})
    import uvicorn
    app, _, store = build(settings, store_url=url, rules_dir=str(rules_dir))
    sock = bound_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)
    store.close()
    sock.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return DOCS_SHOTS if os.environ.get("FUNDFLOW_SCREENSHOTS") == "1" else tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(console + "/")
    assert "/login" in page.url                      # refused without a token: sent to the login page
    page.fill("input[name=token]", ANALYST)
    page.click("form.login button")
    page.wait_for_url(console + "/")               # every navigation is awaited before its page is read
    yield page
    assert not dialogs, f"a script ran: {dialogs}"
    context.close()


def api(console: str, path: str, token: str | None = ANALYST, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(kwargs.pop("method", "GET"), console + path, headers=headers, timeout=30, **kwargs)


def test_the_queue_lists_the_worker_s_warnings_and_filters_them(page, console, stored, shots):
    _, _, expected = stored
    everything = api(console, "/api/warnings?limit=500").json()["warnings"]
    assert {w["warning_id"] for w in everything} == expected
    rows = page.locator("table.cases tr.case")
    assert rows.count() >= 10
    page.screenshot(path=str(shots / "queue.png"))
    page.select_option("select[name=rule]", "rapid-cashout")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r"rule=rapid-cashout"))
    shown = page.locator("table.cases tr.case td:nth-child(3)").all_inner_texts()
    assert shown and set(shown) == {"rapid-cashout"}
    page.select_option("select[name=severity]", "medium")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r"severity=medium"))
    assert page.locator("table.cases tr.case").count() == 0 or \
        set(page.locator("table.cases tr.case td:nth-child(2)").all_inner_texts()) == {"medium"}


def test_a_warning_page_draws_every_account_of_its_evidence_and_a_label_reaches_api_rules_and_evaluate(
        page, console, stored, shots):
    url, rules_dir, _ = stored
    layered = api(console, "/api/warnings?rule=layering-chain&limit=1").json()["warnings"][0]
    wid = layered["warning_id"]
    page.goto(f"{console}/?rule=layering-chain")
    from playwright.sync_api import expect
    page.click(f'tr.case[data-warning-id="{wid}"] a')        # from the queue to the warning page
    page.wait_for_url(f"{console}/warnings/{wid}")
    graph = page.locator("svg.evidence-graph")
    assert graph.is_visible()
    drawn = set(graph.locator("g.node").evaluate_all("nodes => nodes.map(n => n.dataset.id)"))
    assert set(layered["accounts"]) <= drawn, f"accounts missing from the graph: {set(layered['accounts']) - drawn}"
    assert graph.locator("g.node.origin").count() == 1 and graph.locator("g.edge.traced").count() >= 2
    assert page.locator("section.rule pre").inner_text().lstrip().startswith("- rule: layering-chain")

    page.select_option("select[name=status]", "confirmed")
    page.fill("textarea[name=note]", "mule chain, confirmed with the bank")
    page.click("form.label-form button")
    expect(page.locator("#triage-status")).to_have_text("confirmed")     # retried until the new page shows it
    page.screenshot(path=str(shots / "warning.png"), full_page=True)

    detail = api(console, f"/api/warnings/{wid}").json()
    assert detail["triage"]["status"] == "confirmed"
    assert [(e["actor"], e["status_from"], e["status_to"]) for e in detail["labels"]] == \
        [("ana", "open", "confirmed")]
    page.goto(f"{console}/rules")
    row = page.locator('table.rules tr[data-rule="layering-chain"]')
    assert row.locator("td.confirmed").inner_text() == "1"
    assert row.locator("td.precision").inner_text() == "100.0%"
    page.screenshot(path=str(shots / "rules.png"), full_page=True)

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["evaluate", "--labels", "--store", url, "--rules", str(rules_dir), "--json"]) == 0
    figures = {r["rule_id"]: r for r in json.loads(out.getvalue())["rules"]}
    assert (figures["layering-chain"]["confirmed"], figures["layering-chain"]["precision"]) == (1, 1.0)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["labels", "export", "--store", url]) == 0
    assert [(e["warning_id"], e["status_to"]) for e in map(json.loads, out.getvalue().splitlines())] == \
        [(wid, "confirmed")]


def test_unauthenticated_requests_are_refused(console):
    assert api(console, "/api/warnings", token=None).status_code == 401
    assert api(console, "/api/rules", token="not-a-real-token-000").status_code == 401
    refused = httpx.get(console + "/rules", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    posted = api(console, "/api/warnings/x/labels", token=None, method="POST", json={"status": "confirmed"})
    assert posted.status_code == 401


def test_an_account_id_carrying_a_script_is_shown_inert(page, console):
    warnings = api(console, "/api/warnings?account=" + httpx.QueryParams({"a": EVIL})["a"]).json()["warnings"]
    assert warnings, "the worker raised no warning on the account named with markup"
    page.goto(f"{console}/warnings/{warnings[0]['warning_id']}")
    assert EVIL in page.locator("dd.accounts").inner_text()
    assert EVIL in set(page.locator("svg.evidence-graph g.node").evaluate_all("n => n.map(x => x.dataset.id)"))
    page.locator("dd.accounts a").first.click()
    page.wait_for_url(re.compile(r"/accounts/"))
    assert page.locator("h1 .account-id").inner_text() == EVIL
    assert page.evaluate("document.title") != "pwned"
    assert page.locator("script").count() == 0
