"""Support for the HTTP API tests: the app on a test database, tokens, and walking a nomination
through the workflow over HTTP the way a client does.

Tokens are minted through the service (not POST /api/v1/tokens), so the per-process rate limit
of the token endpoint is left to the tests that are about it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest

from scn_workflow.app import create_app
from scn_workflow.services import tokens
from tests.conftest import ASSESSMENT, LOOPBACK, PASSWORD, World, build_world, complete_draft

API = "/api/v1"
PROBLEM = "application/problem+json"
# A small, well-formed PDF: header, one object, trailer and the end-of-file marker.
PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
       b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body, encoded here: the test client would spool a large one to a
    temporary file it never closes. Returns the body and its content type."""
    boundary = "scn-test-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content, content_type) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def make_app(url: str, instance_path, clock=None):
    """The real app (no background worker: tests run the worker's passes themselves)."""
    app = create_app({"database_url": url, "instance_path": str(instance_path), "broker_url": None,
                      "embedded_autostart": False, "retry_base_s": 1, "max_retries": 1, "env": "development",
                      "webhook_allowed_networks": LOOPBACK})
    app.config["TESTING"] = True
    # Every host name is this machine here: a webhook URL such as https://receiver.example/ is saved
    # without asking DNS, and a call to it could reach nothing beyond loopback.
    app.extensions["scn"].resolve = lambda host, port: ["127.0.0.1"]
    if clock is not None:
        app.extensions["scn"].clock = clock
    return app


@dataclass
class Api:
    """The app, its test client, the people of the test world, and their bearer tokens."""

    app: object
    world: World
    _tokens: dict = field(default_factory=dict)

    @property
    def client(self):
        return self.app.test_client()

    @property
    def svc(self):
        return self.app.extensions["scn"]

    def token(self, username: str) -> str:
        if username not in self._tokens:
            issued = tokens.issue(self.svc, username, PASSWORD)
            assert issued is not None, f"no token for {username}"
            self._tokens[username] = issued[0]
        return self._tokens[username]

    def new_tokens(self) -> None:
        """Forget the tokens (after the clock moved past their expiry)."""
        self._tokens.clear()

    def auth(self, username: str | None, **extra) -> dict:
        headers = {"Authorization": f"Bearer {self.token(username)}"} if username else {}
        headers.update(extra)
        return headers

    def call(self, method: str, path: str, username: str | None = None, *, headers: dict | None = None, **kwargs):
        return self.client.open(path if path.startswith("/") else f"{API}/{path}", method=method,
                                headers={**self.auth(username), **(headers or {})}, **kwargs)

    def get(self, path, username=None, **kwargs):
        return self.call("GET", path, username, **kwargs)

    def post(self, path, username=None, **kwargs):
        return self.call("POST", path, username, **kwargs)

    def patch(self, path, username=None, **kwargs):
        return self.call("PATCH", path, username, **kwargs)

    def put(self, path, username=None, **kwargs):
        return self.call("PUT", path, username, **kwargs)

    # -- the workflow, as a client drives it ------------------------------------------------

    def create(self, username: str = "sub-id", data: dict | None = None, **kwargs) -> dict:
        response = self.post("nominations", username, json=data if data is not None else complete_draft(), **kwargs)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def fire(self, nomination: dict, trigger: str, username: str, *, expect: int = 200, **body) -> dict:
        response = self.post(f"nominations/{nomination['id']}/transitions", username,
                             json={"trigger": trigger, **body}, headers={"If-Match": f'"{nomination["version"]}"'})
        assert response.status_code == expect, response.get_data(as_text=True)
        return response.get_json()

    def read(self, nomination_id: int, username: str = "root") -> dict:
        response = self.get(f"nominations/{nomination_id}", username)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def run_worker(self) -> None:
        """What the worker does in the background: relay the outbox and perform every reaction."""
        worker = self.app.extensions["scn_embedded_worker"]
        while worker.run_once():
            pass

    def walk(self, target: str, city: str = "Banyuwangi", username: str = "sub-id", **data) -> dict:
        """A nomination of the submitter's member state, driven over HTTP to `target`."""
        n = self.create(username, complete_draft(city, **data))
        if target == "drafted":
            return n
        if target == "withdrawn":
            return self.fire(n, "withdraw", username)
        n = self.fire(n, "submit", username)
        if target == "submitted":
            return n
        self.run_worker()  # the checks
        n = self.read(n["id"])
        if target == "checked":
            return n
        n = self.fire(n, "review", "rev-sg", assessment=ASSESSMENT)
        if target == "reviewed":
            return n
        if target == "rejected":
            return self.fire(n, "reject", "rev-ph", comment="Not in this cycle.")
        n = self.fire(n, "accept", "rev-ph")
        if target == "accepted":
            return n
        self.run_worker()  # the handover package is delivered, then hand_over is fired
        n = self.read(n["id"])
        assert target == "handed_over" and n["state"] == "handed_over", n
        return n


def open_api(url: str, clock, tmp_path) -> Api:
    app = make_app(url, tmp_path / "instance", clock)
    return Api(app, build_world(app.extensions["scn"]))


@pytest.fixture
def api(db_url, clock, tmp_path):
    """The app on SQLite and on PostgreSQL, with the test world (users of every role)."""
    client = open_api(db_url, clock, tmp_path)
    yield client
    client.svc.engine.dispose()


@pytest.fixture
def sqlite_api(sqlite_url, clock, tmp_path):
    """The app on SQLite only, for what PostgreSQL adds nothing to."""
    client = open_api(sqlite_url, clock, tmp_path)
    yield client
    client.svc.engine.dispose()


def assert_problem(response, status: int, title: str | None = None) -> dict:
    """An application/problem+json answer with the given status; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM, response.mimetype
    body = response.get_json(force=True)
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["detail"]
    if title is not None:
        assert body["title"] == title, body
    return body


def rules(body: dict) -> list[str]:
    """The names of the rules a problem says refused."""
    return [v["rule"] for v in body.get("violations") or []]


def sign_in(app, username: str, password: str = PASSWORD):
    """A test client signed in through the sign-in form, as a browser would be."""
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
