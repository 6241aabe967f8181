"""`fundflow demo --console`: after its summary the demo serves the console on its own store, prints the address
and two tokens, answers with the demo's warnings, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
from test_demo import REPO, SMALL

from conftest import free_port


def test_demo_console_serves_the_demo_store_until_ctrl_c(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))",
               "demo", "--workdir", str(tmp_path / "demo"), *SMALL, "--rate", "0", "--console"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")},
           "FUNDFLOW_CONSOLE_PORT": str(port)}
    demo = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, address, token, stored = [], None, None, None
    try:
        deadline = time.monotonic() + 150
        while address is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            seen.append(line)
            if match := re.search(r"warnings\s+[\d,]+ raised, ([\d,]+) in the store", line):
                stored = int(match[1].replace(",", ""))
            if match := re.search(r"console tokens: analyst (\w+)", line):
                token = match[1]
            if match := re.search(r"fundflow console on (http://127\.0\.0\.1:\d+/)", line):
                address = match[1]
        assert address == f"http://127.0.0.1:{port}/" and token and stored, "".join(seen)
        answer = httpx.get(f"{address}api/warnings?limit=500", headers={"Authorization": f"Bearer {token}"},
                           timeout=30)
        assert answer.status_code == 200 and len(answer.json()["warnings"]) == stored
        assert httpx.get(f"{address}api/warnings", timeout=30).status_code == 401
        demo.send_signal(signal.SIGINT)
        rest, errors = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, "".join(seen) + rest + errors
