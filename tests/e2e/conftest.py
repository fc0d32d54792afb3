"""The browser (Debian's Chromium through Playwright) and the service as users run it.

Without Chromium or Playwright these tests fail under CI=true and are skipped elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from scn_workflow.db import migrate
from scn_workflow.db import tables as t
from scn_workflow.services import utcnow
from tests.conftest import build_world, make_services, need
from tests.e2e.support import Server, chromium_missing, launch, scn_env

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def browser():
    missing = chromium_missing()
    if missing:
        need("Chromium", missing)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@dataclass
class Site:
    """The running service, its database (to look behind the pages) and its instance folder."""

    server: Server
    svc: object
    instance: Path
    foreign_requests: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def scalar(self, query):
        with self.svc.engine.connect() as c:
            return c.scalar(query)


@pytest.fixture
def site(tmp_path):
    """`scn-workflow serve` with the embedded worker, on a migrated SQLite database holding the test world
    (an open cycle that requires an action plan; Indonesia's lead agency at lead@id.example)."""
    url = f"sqlite:///{tmp_path / 'scn.sqlite3'}"
    migrate.upgrade(url)
    svc = make_services(url, utcnow, tmp_path / "instance")
    build_world(svc, requires_action_plan=True)
    now = utcnow()
    with svc.engine.begin() as c:  # open now, whatever today's date
        c.execute(sa.update(t.cycles).where(t.cycles.c.code == "ASCN-2026").values(
            opens_at=now - timedelta(days=30), closes_at=now + timedelta(days=300)))
    server = Server(scn_env(url, tmp_path / "instance"), tmp_path / "server.log").start()
    yield Site(server, svc, tmp_path / "instance")
    server.stop()
    svc.engine.dispose()


def _context(browser, site: Site, **options):
    options.setdefault("viewport", VIEWPORT)
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)

    def only_this_site(route):
        # Nothing may come from another host: record it and refuse it.
        if route.request.url.startswith(site.url + "/"):
            route.continue_()
        else:
            site.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_site)
    return context


@pytest.fixture
def new_page(browser, site):
    """Pages of separate people (each a browser context of its own), with or without JavaScript; `options`
    of the browser context (a phone's viewport, a locale)."""
    contexts = []

    def make(*, javascript: bool = True, **options):
        context = _context(browser, site, java_script_enabled=javascript, **options)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    assert site.foreign_requests == [], "requests to another host"
