"""What the browser tests and `make screenshots` share: the browser, and the service as a real process.

The browser is Debian's Chromium, driven by Playwright (never `playwright install`: no browser is
downloaded). The service is `scn-workflow serve` on a free port with the embedded worker: no
broker, mail written as .eml files to the instance folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCN = Path(sys.executable).parent / "scn-workflow"
CHROMIUM = os.environ.get("SCN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_missing() -> str | None:
    """Why the browser cannot be used, or None when it can."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scn_env(database_url: str, instance: Path, **extra) -> dict:
    """The environment of a development install: SQLite, embedded worker, mail to .eml files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env.update(SCN_DATABASE_URL=database_url, SCN_INSTANCE_PATH=str(instance), SCN_SWEEP_INTERVAL_S="0.5",
               SCN_RETRY_BASE_S="1", PYTHONPATH=str(ROOT))
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Server:
    """`scn-workflow serve` as a separate process, on a free port, logging to a file."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Server":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(SCN), "serve", "--port", str(self.port)], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def scn(env: dict, *args: str) -> str:
    """Run one `scn-workflow` command (db upgrade, seed...) in `env`; its output, or an error."""
    result = subprocess.run([str(SCN), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"scn-workflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def sign_in(page, base_url: str, username: str, password: str) -> None:
    """Sign in through the form, as a person would (keyboard only: type, then Enter)."""
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
