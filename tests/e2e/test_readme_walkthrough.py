"""The README's curl walk-through, run verbatim against a fresh server with the demo data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _script() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\s*```sh\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S)
    assert block, "README.md lost its walk-through markers"
    return block.group(1)


@pytest.fixture
def demo_server(tmp_path):
    if shutil.which("curl") is None:
        need("curl", "the walk-through uses curl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env.update(SCN_INSTANCE_PATH=str(tmp_path), SCN_SWEEP_INTERVAL_S="0.5")
    cli = str(BIN / "scn-workflow")
    subprocess.run([cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([cli, "seed"], env=env, check=True, capture_output=True)
    from tests.integration.conftest import free_port
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([cli, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    yield base, tmp_path
    server.terminate()
    server.wait(10)
    log.close()


def test_the_readme_walkthrough_runs_from_token_to_handover(demo_server):
    base, instance = demo_server
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", _script()], env={**os.environ, "BASE": base + "/api/v1"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:] + (instance / "server.log").read_text()[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "submitted"
    assert lines[1] == ("completeness: passed; state_limit: passed; duplicate_city: warning; "
                        "focus_areas_covered: passed")
    assert lines[2:5] == ["reviewed", "four_eyes", "accepted"]
    trail = [line.split()[1] for line in lines[5:]]
    assert trail == ["nomination.created", "nomination.submitted", "checks.completed", "nomination.reviewed",
                     "nomination.accepted", "nomination.handed_over"]
    package = [p for p in (instance / "mail").glob("*.eml") if "Handover package" in p.read_text(errors="replace")]
    assert len(package) == 1 and "lead-agency@id.example" in package[0].read_text()
