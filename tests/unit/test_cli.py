import subprocess
import sys


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "stream.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("worker", "produce", "replay", "rules", "simulate", "evaluate", "demo", "warnings"):
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
