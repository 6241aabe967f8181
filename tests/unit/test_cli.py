import subprocess
import sys

import pytest

from stream.cli import main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "stream.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("worker", "produce", "replay", "replay-diff", "rules", "simulate", "evaluate", "demo", "warnings"):
        assert command in out.stdout


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    truth = tmp_path / "truth.json"
    subprocess.run([sys.executable, "-m", "stream.cli", "simulate", "--out", str(ledger), "--truth", str(truth),
                    "--accounts", "600", "--days", "1", "--background-per-day", "2000"], check=True,
                   capture_output=True)
    pipeline = subprocess.run(
        f"{sys.executable} -m stream.cli replay {ledger} --no-progress | head -c 10",
        shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert "BrokenPipeError" not in pipeline.stderr
    assert "Traceback" not in pipeline.stderr


def test_a_clickhouse_url_with_a_bad_port_is_one_line_not_a_traceback(monkeypatch, capsys):
    for url in ("clickhouse://127.0.0.1:notaport/db", "clickhouse://127.0.0.1:99999/db"):
        monkeypatch.setenv("FUNDFLOW_CLICKHOUSE_URL", url)
        assert main(["warnings"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "port 1-65535" in err and url in err
        monkeypatch.delenv("FUNDFLOW_CLICKHOUSE_URL")
        assert main(["warnings", "--store", url]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "port 1-65535" in err


def test_reading_warnings_never_creates_a_store(tmp_path, capsys):
    missing = tmp_path / "no" / "store"
    assert main(["warnings", "--store", f"chdb://{missing}"]) == 1
    assert "no embedded warning store at" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "no").exists()


def test_version_and_settings_after_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("fundflow 0.")
    settings = tmp_path / "s.yaml"
    settings.write_text("clickhouse_url: clickhouse://127.0.0.1:notaport/db\n")
    for argv in (["--settings", str(settings), "warnings"], ["warnings", "--settings", str(settings)],
                 ["warnings", f"--settings={settings}"]):
        assert main(argv) == 1
        assert "port 1-65535" in capsys.readouterr().err, argv
