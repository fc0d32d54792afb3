"""A real server on PostgreSQL for tests over HTTP: gunicorn (two processes) on a fresh, migrated
and seeded database, the embedded worker, mail written to .eml files. Tests that need another
setting pass it as an environment variable to `start_live_server`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from scn_workflow.config import Settings
from scn_workflow.db import migrate
from scn_workflow.services import Services
from scn_workflow.services.seed import DEMO_PASSWORD, seed
from tests.conftest import need
from tests.harness import Gunicorn, create_database, drop_database, worker_env


TIMEOUT = 30


def http_session() -> requests.Session:
    """A requests session that opens a connection for each request: gunicorn closes a kept-alive
    connection after two idle seconds, and a request sent on it at that moment is lost
    (RemoteDisconnected) although the server never saw it."""
    session = requests.Session()
    session.headers["Connection"] = "close"
    return session


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page ("" when it has none)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    return found.group(1) if found else ""


class Browser:
    """A signed-in browser: a requests session that carries the page's CSRF token with each form."""

    def __init__(self, server: "LiveServer", username: str, password: str = DEMO_PASSWORD):
        self.server, self.session = server, http_session()
        page = self.session.get(server.url + "/login", timeout=TIMEOUT)
        answer = self.session.post(server.url + "/login", timeout=TIMEOUT, allow_redirects=False, data={
            "username": username, "password": password, "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 302, answer.text[:500]

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.server.url + path, timeout=TIMEOUT, allow_redirects=False, **kwargs)

    def post(self, path: str, data: dict, form_page: str, **kwargs) -> requests.Response:
        """Post `data` with the CSRF token of the form on `form_page`."""
        token = csrf_of(self.get(form_page).text)
        return self.session.post(self.server.url + path, data={**data, "csrf_token": token}, timeout=TIMEOUT,
                                 allow_redirects=False, **kwargs)


class LiveServer:
    """The server's address, its database, and sessions signed in as the seeded users."""

    def __init__(self, url: str, database_url: str, instance: Path, gunicorn: Gunicorn):
        self.url, self.database_url, self.instance, self.gunicorn = url, database_url, instance, gunicorn

    def services(self) -> Services:
        """Services on the server's database, for a test to arrange or inspect what HTTP cannot."""
        return Services(Settings(instance_path=str(self.instance), database_url=self.database_url))

    def token(self, username: str, password: str = DEMO_PASSWORD) -> str:
        response = requests.post(self.url + "/api/v1/tokens", json={"username": username, "password": password},
                                 timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def api(self, username: str, password: str = DEMO_PASSWORD) -> requests.Session:
        """A session whose requests carry a bearer token of `username`."""
        session = http_session()
        session.headers["Authorization"] = "Bearer " + self.token(username, password)
        return session

    def log(self) -> str:
        return self.gunicorn.log_path.read_text(errors="replace")


def start_live_server(tmp_path: Path, **env) -> tuple[LiveServer, callable]:
    """Start one; returns it and the function that stops it and drops its database."""
    try:
        database_url = create_database("scn_live")
    except sa.exc.OperationalError as exc:
        need("PostgreSQL", str(exc.orig))
    migrate.upgrade(database_url)
    instance = tmp_path / "live-instance"
    instance.mkdir(exist_ok=True)
    services = Services(Settings(instance_path=str(instance), database_url=database_url))
    seed(services)
    services.engine.dispose()
    environment = worker_env(database_url, "", None, instance, **env)
    environment.pop("SCN_BROKER_URL")  # the embedded worker
    gunicorn = Gunicorn(environment, tmp_path / "gunicorn.log", workers=2, threads=4)
    gunicorn.start()
    server = LiveServer(gunicorn.url, database_url, instance, gunicorn)

    def stop():
        gunicorn.stop()
        drop_database(database_url)

    return server, stop


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """One server per test module (tests that change settings start their own)."""
    server, stop = start_live_server(tmp_path_factory.mktemp("live"))
    yield server
    stop()
