"""Regenerate docs/screenshots/ with the browser of the end-to-end tests (`make screenshots`).

A fresh SQLite database with the demo seed, `scn-workflow serve` on a free port, and Debian's
Chromium driven by Playwright, in English (*-en.png) and in Bahasa Indonesia (*-id.png): the public
register (also at a phone's width), the review desk, a nomination page and its accept confirmation as
the reviewer without a member state sees them, and the workflow diagram. Then the operator
dashboard under load, with a redis-server of its own and real Celery workers: the worker of the
`checks` queue has stopped while submissions keep coming, and a handover whose lead agency endpoint refuses waits as a
failure. Nothing is fetched from the network.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from tests.e2e.support import ROOT, SCN, Server, chromium_missing, free_port, launch, scn, scn_env, sign_in
from tests.processes import stop_process_group

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
LANGUAGES = ("en", "id")


def _choose(page, language: str) -> None:
    """The language switcher (a signed-in person keeps the choice)."""
    button = page.locator(f'button[name="lang"][value="{language}"]')
    if button.is_enabled():
        button.click()
        page.wait_for_load_state()


def main() -> int:
    missing = chromium_missing() or (None if shutil.which("redis-server") else "redis-server is not installed")
    if missing:
        print(f"screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scn-screenshots-") as tmp:
        instance = Path(tmp) / "instance"
        database_url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        env = scn_env(database_url, instance)
        scn(env, "db", "upgrade")
        scn(env, "seed")
        server = Server(env, Path(tmp) / "server.log").start()
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport=VIEWPORT)
                sign_in(page, server.url, "reviewer", "demo-password")
                shots = []
                for language in LANGUAGES:
                    _choose(page, language)
                    page.goto(server.url + "/")
                    shots.append(_shot(page, f"register-{language}.png"))
                    page.goto(server.url + "/review")
                    shots.append(_shot(page, f"review-desk-{language}.png"))

                    # A reviewed nomination: the page offers accept and reject (four eyes) to this reviewer.
                    page.get_by_role("row").filter(has_text="Khon Kaen").get_by_role("link").first.click()
                    page.wait_for_load_state()
                    shots.append(_shot(page, f"nomination-{language}.png"))
                    # Accepting asks first, naming the consequence.
                    page.locator("form[action*='/confirm/accept'] button").click()
                    page.wait_for_load_state()
                    shots.append(_shot(page, f"confirm-accept-{language}.png"))

                    page.goto(server.url + "/workflow")
                    shots.append(_shot(page, f"workflow-{language}.png"))
                    phone = browser.new_page(viewport=PHONE)
                    phone.goto(server.url + "/")
                    _choose(phone, language)
                    shots.append(_shot(phone, f"register-phone-{language}.png"))
                    phone.close()

                server.stop()  # its embedded worker would do the work the dashboard is to show waiting
                shots.extend(_ops_dashboard(browser, Path(tmp), database_url, instance))
                browser.close()
        finally:
            server.stop()
    for path in shots:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"screenshots: timed out waiting for {what}")


class _Process:
    """A background process logging to a file, stopped with SIGTERM (its whole process group)."""

    def __init__(self, args: list[str], env: dict, log_path: Path, ready: bytes | None = None):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        if ready is not None:
            try:
                _wait(lambda: ready in log_path.read_bytes() or self.process.poll() is not None, 60,
                      f"{args[0]} to start")
            except RuntimeError:
                self.stop()
                raise
            if self.process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited:\n{log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        stop_process_group(self.process)


def _redis(tmp: Path) -> tuple[_Process, str]:
    port = free_port()
    redis = _Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                      "--dir", str(tmp)], dict(os.environ), tmp / "redis.log")

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait(answers, 10, "redis-server to answer")
    return redis, f"redis://127.0.0.1:{port}/0"


def _worker(env: dict, tmp: Path, name: str, queues: str, *, beat: bool) -> _Process:
    args = [str(SCN.parent / "celery"), "-A", "worker", "worker", "-Q", queues, "-n", f"{name}@%h", "-c", "2",
            "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    if beat:
        args += ["-B", "-s", str(tmp / f"{name}.beat")]
    return _Process(args, env, tmp / f"{name}.log", ready=b"ready.")


def _ops_dashboard(browser, tmp: Path, database_url: str, instance: Path) -> list[Path]:
    """/ops as the operator sees it under load: one worker (notifications, handover, webhooks) runs,
    the worker of `checks` has stopped and submissions pile up in its queue; a handover to a lead
    agency whose endpoint refuses has used up its retries and waits for the operator."""
    from scn_workflow.app import create_app
    from scn_workflow.db import tables as t
    from scn_workflow.domain.model import SYSTEM
    from scn_workflow.services import nominations, users
    from tests.conftest import ASSESSMENT, complete_draft

    redis, broker_url = _redis(tmp)
    workers: list[_Process] = []
    server = None
    app = None
    try:
        env = scn_env(database_url, instance, SCN_BROKER_URL=broker_url, SCN_MAX_RETRIES=1, SCN_RETRY_BASE_S=1,
                      SCN_QUEUE_MAX_AGE_S=5, SCN_REDELIVER_AFTER_S=120, SCN_SWEEP_INTERVAL_S=5)
        app = create_app({"database_url": database_url, "broker_url": broker_url, "instance_path": str(instance)})
        svc = app.extensions["scn"]
        with svc.engine.begin() as c:  # Indonesia's lead agency endpoint: nothing listens there
            c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
                lead_agency_webhook_url=f"http://127.0.0.1:{free_port()}/scn-handover",
                lead_agency_webhook_secret="placeholder-secret-for-the-screenshot"))
        workers.append(_worker(env, tmp, "reactions", "notifications,handover,webhooks", beat=True))
        checks_worker = _worker(env, tmp, "checks", "checks", beat=False)
        workers.append(checks_worker)

        def submit(ms: str, city: str):
            who = users.get_actor(svc, f"submitter-{ms.lower()}")
            n = nominations.create(svc, who, complete_draft(city, csco_email=f"csco@{ms.lower()}.example"))
            return nominations.fire(svc, who, n.id, "submit", n.version)

        # Cities of the reference, seeded in its cycles: duplicate_city warns (not blocking) of one accepted there.
        first = [submit(ms, city) for ms, city in (
            ("ID", "DKI Jakarta"), ("ID", "Makassar"), ("TH", "Khon Kaen"), ("TH", "Rayong"), ("MY", "Kuala Lumpur"),
            ("MY", "Kuching"), ("PH", "Cebu City"), ("PH", "Davao City"), ("VN", "Da Nang"), ("VN", "Hanoi"))]
        _wait(lambda: all(nominations.get(svc, SYSTEM, n.id).checks_outcome in ("passed", "warning") for n in first),
              60, "the checks of the first submissions")
        n = nominations.get(svc, SYSTEM, first[0].id)
        n = nominations.fire(svc, users.get_actor(svc, "reviewer-sg"), n.id, "review", n.version,
                             assessment=ASSESSMENT)
        nominations.fire(svc, users.get_actor(svc, "reviewer-ph"), n.id, "accept", n.version)

        def one_failure() -> bool:
            with svc.engine.connect() as c:
                return c.scalar(sa.select(sa.func.count()).select_from(t.failures)) == 1
        _wait(one_failure, 60, "the handover to fail for good")

        checks_worker.stop()
        # Timor-Leste has no ASCN city in the reference, so no submission of its own here.
        for ms, city in (("BN", "Bandar Seri Begawan"), ("KH", "Phnom Penh"), ("LA", "Vientiane"), ("MM", "Yangon"),
                         ("SG", "Singapore"), ("ID", "Sumedang"), ("TH", "Chiang Mai"), ("MY", "Johor Bahru"),
                         ("PH", "Manila"), ("VN", "Ho Chi Minh City")):
            submit(ms, city)
        time.sleep(6)  # the oldest message in `checks` is now older than SCN_QUEUE_MAX_AGE_S

        server = Server(env, tmp / "ops-server.log").start()
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, server.url, "operator", "demo-password")
        shots = []
        for language in LANGUAGES:
            page.goto(server.url + "/ops")
            _choose(page, language)
            shots.append(_shot(page, f"ops-dashboard-{language}.png"))
        return shots
    finally:
        if server is not None:
            server.stop()
        for worker in workers:
            worker.stop()
        if app is not None:
            app.extensions["celery"].close()
            app.extensions["scn"].engine.dispose()
        redis.stop()


def _shot(page, name: str) -> Path:
    path = OUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
