"""The default rule pack ships in the package and is found from any directory, the way the worker finds it: the
rules_dir setting when that directory exists, else the shipped pack; every command says which rules it ran."""

from __future__ import annotations

import fnmatch
import shutil
import tomllib
from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.errors import FundflowError
from stream.rules import pack as rule_pack
from stream.detection.rulebook import load_rules
from stream.rules.pack import SETTING, SHIPPED, resolve_rules_dir, shipped_pack
from stream.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "rules"

LEDGER = [
    '{"type":"disbursement","event_id":"d1","ts":"2026-03-02T10:00:00Z","loan_id":"L1","account":"U1",'
    '"amount":"5000.00"}',
    '{"type":"transfer","event_id":"t1","ts":"2026-03-02T10:12:00Z","src":"U1","dst":"card:1","amount":"4800.00",'
    '"channel":"withdrawal"}',
]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory with no rules/ in it, and no rules_dir configured."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("FUNDFLOW_RULES_DIR", raising=False)
    return work


# -- packaging ---------------------------------------------------------------------------------------------

def test_pyproject_lists_every_package_and_maps_the_rule_pack_into_it():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "stream").rglob("__init__.py")}
    assert set(config["packages"]) == on_disk | {"stream.rulepack"}, "a package under stream/ is not in pyproject"
    assert config["package-dir"] == {"stream.rulepack": "rules"}
    patterns = config["package-data"]["stream.rulepack"]
    shipped = [p.name for p in PACK.iterdir() if p.is_file()]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in shipped), shipped
    assert {"README.md", "lists.yaml", "cashout.test.yaml"} <= set(shipped)


def test_the_installed_package_data_is_the_pack_when_there_is_no_checkout(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    shutil.copytree(PACK, site / "stream" / "rulepack")
    monkeypatch.setattr(rule_pack.resources, "files", lambda package: site / package)
    assert shipped_pack() == site / "stream" / "rulepack"
    shutil.rmtree(site / "stream" / "rulepack")
    with pytest.raises(FundflowError, match="rule pack shipped with fundflow is missing from this installation"):
        shipped_pack()


# -- resolution ---------------------------------------------------------------------------------------------

def test_from_another_directory_the_default_is_the_shipped_pack(elsewhere):
    pack = resolve_rules_dir(load_settings().rules_dir)
    assert (pack.path, pack.source) == (PACK, SHIPPED)
    assert len(load_rules(pack.path)) == 16


def test_an_existing_rules_dir_is_used_and_a_missing_configured_one_is_an_error(elsewhere, monkeypatch):
    (elsewhere / "rules").mkdir()
    (elsewhere / "rules" / "mine.yaml").write_text("rules: []\n")
    pack = resolve_rules_dir(load_settings().rules_dir)
    assert (pack.path, pack.source) == (Path("rules"), SETTING)
    monkeypatch.setenv("FUNDFLOW_RULES_DIR", str(elsewhere / "typo"))
    with pytest.raises(FundflowError) as caught:       # never the default pack in place of the deployment's own
        resolve_rules_dir(load_settings().rules_dir)
    assert f"rules_dir '{elsewhere / 'typo'}': no such directory" in str(caught.value)


# -- every command that runs rules --------------------------------------------------------------------------

def test_rules_check_and_test_without_paths_run_the_pack_and_say_so(elsewhere, capsys):
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"OK: 16 rules (15 enabled) from 7 file(s) of {PACK} (the pack shipped with fundflow), ")
    assert out[0].endswith(f"rule set version {load_rules(PACK).version}")
    assert main(["rules", "test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"rules: {PACK} (the pack shipped with fundflow)\n")
    assert f"{PACK / 'cashout.test.yaml'}  (rule set version " in out and "SUCCESS: " in out


def test_replay_without_rules_runs_the_pack_and_says_which(elsewhere, capsys):
    (elsewhere / "ledger.jsonl").write_text("\n".join(LEDGER) + "\n")
    version = load_rules(PACK).version
    assert main(["replay", "ledger.jsonl", "--no-progress", "--out", "w.jsonl"]) == 0
    err = capsys.readouterr().err
    assert f"rules: {PACK} (the pack shipped with fundflow), rule set version {version} (16 rules)" in err
    assert "rapid-cashout" in (elsewhere / "w.jsonl").read_text()
    assert main(["replay", "ledger.jsonl", "--no-progress", "--out", "w.jsonl", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().err)
    assert summary["rules"] == {"paths": [str(PACK)], "source": SHIPPED, "version": version, "rules": 16}


def test_the_worker_and_the_demo_resolve_the_same_way(elsewhere, monkeypatch, capsys):
    import stream.worker.runner as runner
    from stream.dev.demo.run import find_rules_dir

    started = []
    monkeypatch.setattr(runner, "run_worker", lambda settings, **options: started.append(settings) or 0)
    assert main(["worker"]) == 0
    assert started[0].rules_dir == str(PACK)           # what it loads and hot-reloads
    assert f"fundflow worker: rules: {PACK} (the pack shipped with fundflow), rule set version " \
           in capsys.readouterr().err
    assert find_rules_dir(load_settings()) == PACK
