"""Regenerate docs/screenshots/ with the browser of the end-to-end tests (`make screenshots`).

A fresh SQLite database with the demo seed, `scn-workflow serve` on a free port, and Debian's
Chromium driven by Playwright: the review desk and a nomination page as the reviewer without a
member state sees them, and the workflow diagram. Nothing is fetched from the network.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.e2e.support import ROOT, Server, chromium_missing, launch, scn, scn_env, sign_in

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}


def main() -> int:
    missing = chromium_missing()
    if missing:
        print(f"screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scn-screenshots-") as tmp:
        instance = Path(tmp) / "instance"
        env = scn_env(f"sqlite:///{Path(tmp) / 'demo.sqlite3'}", instance)
        scn(env, "db", "upgrade")
        scn(env, "seed")
        server = Server(env, Path(tmp) / "server.log").start()
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport=VIEWPORT)
                sign_in(page, server.url, "reviewer", "demo-password")
                shots = []

                page.goto(server.url + "/review")
                shots.append(_shot(page, "review-desk.png"))

                # A reviewed nomination: the page offers accept and reject (four eyes) to this reviewer.
                page.get_by_role("row").filter(has_text="Khon Kaen").get_by_role("link").first.click()
                page.wait_for_load_state()
                shots.append(_shot(page, "nomination.png"))

                page.goto(server.url + "/workflow")
                shots.append(_shot(page, "workflow.png"))
                browser.close()
        finally:
            server.stop()
    for path in shots:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _shot(page, name: str) -> Path:
    path = OUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
