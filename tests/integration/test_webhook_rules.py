"""Hostile networks: webhook URLs (DESIGN.md, "Outgoing webhooks") and the handover fixes of issue 13.

Over HTTP against real servers on PostgreSQL:
- `strict`: no SCN_WEBHOOK_ALLOWED_NETWORKS, where loopback, private, link-local... URLs are
  refused at save, a URL needs a secret of 16+ characters, and only admins read webhook URLs;
- `loopback`: 127.0.0.0/8 allowed (as an intranet receiver would be), an SMTP sink and webhook
  receivers on 127.0.0.1, where the package reaches nobody without a lead agency name, a city
  name holding a line break still makes a one-line subject, and a failed delivery's text stays
  with operators.
With services and stub resolvers: a name that resolves to a private address (at save and at
connect time), redirects not followed, an empty-secret lead agency webhook never called.
No test sends anything outside 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import InvalidInput
from scn_workflow.services import admin, checks, handover, nominations, webhooks
from scn_workflow.services.destinations import Destinations
from scn_workflow.services.handover import FAILED_COMMENT
from scn_workflow.services.seed import DEMO_PASSWORD
from scn_workflow.services.webhooks import DeliveryFailed
from tests.conftest import ASSESSMENT, LOOPBACK, build_world, complete_draft, make_services
from tests.harness import MailSink, WebhookReceiver
from tests.integration import live
from tests.integration.live import csrf_of, live_server, start_live_server  # noqa: F401

TIMEOUT = 30
SECRET = "lead-agency-secret-0123456789"
NOT_PUBLIC = ["http://127.0.0.1/", "http://10.0.0.1/hook", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
              "http://0x7f000001/", "http://2130706433/", "http://192.168.0.10:8080/"]


# --- servers and sessions -------------------------------------------------------------------------

@contextmanager
def database(server):
    """A connection (in a transaction) to the server's database, for what HTTP cannot arrange or show."""
    svc = server.services()
    try:
        with svc.engine.begin() as c:
            yield c
    finally:
        svc.engine.dispose()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    server, stop = start_live_server(tmp_path_factory.mktemp("strict"), SCN_WEBHOOK_ALLOWED_NETWORKS="")
    with database(server) as c:  # a webhook an admin saved for Malaysia's lead agency
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "MY").values(
            lead_agency_name="Placeholder agency", lead_agency_webhook_url="https://hooks.agency.example/my-scn",
            lead_agency_webhook_secret=SECRET))
    yield server
    stop()


class Loopback:
    def __init__(self, server, sink, receiver):
        self.server, self.sink, self.receiver = server, sink, receiver


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    sink, receiver = MailSink(), WebhookReceiver()
    sink.controller.start()
    server, stop = start_live_server(tmp_path_factory.mktemp("loopback"), SCN_SMTP_URL=sink.url,
                                     SCN_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", SCN_MAX_RETRIES=1,
                                     SCN_RETRY_BASE_S=1)
    yield Loopback(server, sink, receiver)
    stop()
    receiver.close()
    sink.controller.stop()


_SESSIONS: dict[tuple[str, str], requests.Session] = {}


def api(server, username: str) -> requests.Session:
    """One token per user and server (sign-ins are rate-limited)."""
    if (server.url, username) not in _SESSIONS:
        _SESSIONS[(server.url, username)] = server.api(username)
    return _SESSIONS[(server.url, username)]


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


# --- at save: the URL rule, over HTTP ------------------------------------------------------------

@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_a_subscription_to_an_address_that_is_not_public_is_refused_naming_the_field_and_rule(strict, url):
    response = api(strict, "admin").post(strict.url + "/api/v1/webhooks", timeout=TIMEOUT, json={
        "url": url, "secret": SECRET, "events": ["nomination.accepted"]})
    body = problem(response, 422)
    assert set(body["errors"]) == {"url"}
    assert "is not public" in " ".join(body["errors"]["url"])


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_a_lead_agency_webhook_to_an_address_that_is_not_public_is_refused(strict, url):
    response = api(strict, "admin").patch(strict.url + "/api/v1/member-states/VN", timeout=TIMEOUT, json={
        "lead_agency_webhook_url": url, "lead_agency_webhook_secret": SECRET})
    body = problem(response, 422)
    assert set(body["errors"]) == {"lead_agency_webhook_url"}
    assert "is not public" in " ".join(body["errors"]["lead_agency_webhook_url"])
    with database(strict) as c:
        assert c.scalar(sa.select(t.member_states.c.lead_agency_webhook_url).where(
            t.member_states.c.code == "VN")) is None


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/scn", "file:///etc/passwd", "gopher://93.184.216.34/"])
def test_a_webhook_url_of_another_scheme_is_refused(strict, url):
    admin_api = api(strict, "admin")
    body = problem(admin_api.post(strict.url + "/api/v1/webhooks", timeout=TIMEOUT, json={
        "url": url, "secret": SECRET, "events": ["nomination.accepted"]}), 422)
    assert set(body["errors"]) == {"url"}
    body = problem(admin_api.patch(strict.url + "/api/v1/member-states/VN", timeout=TIMEOUT, json={
        "lead_agency_webhook_url": url, "lead_agency_webhook_secret": SECRET}), 422)
    assert set(body["errors"]) == {"lead_agency_webhook_url"}


@pytest.mark.parametrize("secret", [None, "", "fifteen-chars!!"])
def test_a_webhook_url_without_a_secret_of_16_characters_is_refused(strict, secret):
    """A public address (nothing is ever sent there: the save is refused, and this server never
    accepts a nomination of Laos)."""
    admin_api = api(strict, "admin")
    payload = {"url": "https://93.184.216.34/scn", "events": ["nomination.accepted"]}
    if secret is not None:
        payload["secret"] = secret
    body = problem(admin_api.post(strict.url + "/api/v1/webhooks", timeout=TIMEOUT, json=payload), 422)
    assert set(body["errors"]) == {"secret"}
    change = {"lead_agency_webhook_url": "https://93.184.216.34/la-scn"}
    if secret is not None:
        change["lead_agency_webhook_secret"] = secret
    body = problem(admin_api.patch(strict.url + "/api/v1/member-states/LA", timeout=TIMEOUT, json=change), 422)
    assert set(body["errors"]) == {"lead_agency_webhook_secret"}
    with database(strict) as c:
        assert c.scalar(sa.select(t.member_states.c.lead_agency_webhook_url).where(
            t.member_states.c.code == "LA")) is None


def test_the_admin_page_shows_the_rule_next_to_the_url_field(strict):
    browser = live.http_session()
    page = browser.get(strict.url + "/login", timeout=TIMEOUT)
    signed_in = browser.post(strict.url + "/login", timeout=TIMEOUT, allow_redirects=False, data={
        "username": "admin", "password": DEMO_PASSWORD, "csrf_token": csrf_of(page.text)})
    assert signed_in.status_code == 302, signed_in.text[:300]
    form = browser.get(strict.url + "/admin/member-states", timeout=TIMEOUT)
    answer = browser.post(strict.url + "/admin/member-states", timeout=TIMEOUT, data={
        "code": "VN", "lead_agency_name": "Ministry of Construction", "lead_agency_email": "lead@vn.example",
        "lead_agency_webhook_url": "http://169.254.169.254/latest/meta-data/", "lead_agency_webhook_secret": SECRET,
        "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 422
    assert "The address 169.254.169.254 is not public" in answer.text
    with database(strict) as c:
        assert c.scalar(sa.select(t.member_states.c.lead_agency_email).where(
            t.member_states.c.code == "VN")) != "lead@vn.example"  # nothing of the refused form was saved


# --- who reads webhook URLs ----------------------------------------------------------------------------

def test_only_admins_read_lead_agency_webhook_urls_and_nobody_reads_a_secret(strict):
    def malaysia(response) -> dict:
        assert response.status_code == 200, response.text[:300]
        assert all("lead_agency_webhook_secret" not in s for s in response.json())
        return next(s for s in response.json() if s["code"] == "MY")

    anonymous = malaysia(requests.get(strict.url + "/api/v1/member-states", timeout=TIMEOUT))
    for who in ("submitter-id", "reviewer-sg", "operator"):
        seen = malaysia(api(strict, who).get(strict.url + "/api/v1/member-states", timeout=TIMEOUT))
        assert "lead_agency_webhook_url" not in seen, who
        assert seen["lead_agency_name"] == "Placeholder agency"
    assert "lead_agency_webhook_url" not in anonymous
    seen = malaysia(api(strict, "admin").get(strict.url + "/api/v1/member-states", timeout=TIMEOUT))
    assert seen["lead_agency_webhook_url"] == "https://hooks.agency.example/my-scn"
    assert SECRET not in requests.get(strict.url + "/api/v1/member-states", timeout=TIMEOUT).text


# --- at save and at connect, with a stub resolver (services) ------------------------------------------

def stub(*addresses):
    def resolve(host, port):
        resolve.asked.append(host)
        return list(resolve.addresses)
    resolve.addresses, resolve.asked = list(addresses), []
    return resolve


def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused_at_save(pg_url, clock, tmp_path):
    svc = make_services(pg_url, clock, tmp_path, webhook_allowed_networks=())
    svc.resolve = stub("10.20.30.40")
    try:
        w = build_world(svc)
        with pytest.raises(InvalidInput) as refused:
            webhooks.subscribe(svc, w.admin, "https://hooks.agency.example/scn", SECRET, ["nomination.accepted"])
        assert refused.value.fields == {"url": [
            "The host hooks.agency.example resolves to 10.20.30.40, which is not public: loopback, private, "
            "link-local, multicast and reserved addresses are refused."]}
        with pytest.raises(InvalidInput) as refused:
            admin.update_member_state(svc, w.admin, "ID", {"lead_agency_webhook_url": "https://hooks.agency.example/",
                                                           "lead_agency_webhook_secret": SECRET})
        assert set(refused.value.fields) == {"lead_agency_webhook_url"}
        assert svc.resolve.asked == ["hooks.agency.example", "hooks.agency.example"]
    finally:
        svc.engine.dispose()


def walk_to_accepted(svc, w, city="Banyuwangi") -> str:
    """An accepted nomination of Indonesia; returns the acceptance's event id."""
    n = nominations.create(svc, w.submitter_id, complete_draft(city))
    n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    with svc.engine.connect() as c:
        submitted = c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == n.id, t.events.c.name == "nomination.submitted"))
    checks.run_checks(svc, submitted)
    n = nominations.get(svc, w.reviewer_sg, n.id)
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
    with svc.engine.connect() as c:
        return c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == n.id, t.events.c.name == "nomination.accepted"))


def test_the_connect_time_check_uses_the_address_it_connects_to(pg_url, clock, tmp_path):
    """The name resolves to the receiver when saved, and to a private address later (DNS
    rebinding): the later call checks its own answer, is refused and connects nowhere. With the
    receiver's address again, the call goes to the checked address with the URL's Host header."""
    receiver = WebhookReceiver()
    svc = make_services(pg_url, clock, tmp_path)  # 127.0.0.0/8 allowed
    svc.resolve = stub("127.0.0.1")
    try:
        w = build_world(svc)
        port = receiver.server.server_address[1]
        webhooks.subscribe(svc, w.admin, f"http://hooks.agency.example:{port}/scn", SECRET, ["nomination.accepted"])
        accepted = walk_to_accepted(svc, w)
        svc.resolve.addresses = ["10.0.0.7"]
        with pytest.raises(DeliveryFailed, match="resolves to 10.0.0.7, which is not public"):
            webhooks.deliver_event(svc, accepted)
        assert receiver.calls == []
        svc.resolve.addresses, svc.resolve.asked = ["127.0.0.1"], []
        webhooks.deliver_event(svc, accepted)
        assert svc.resolve.asked == ["hooks.agency.example"]  # once per call
        [call] = receiver.calls
        assert call["path"] == "/scn" and call["headers"]["host"] == f"hooks.agency.example:{port}"
    finally:
        receiver.close()
        svc.engine.dispose()


def test_a_private_address_saved_while_allowed_is_refused_at_connect_time_once_it_is_not(pg_url, clock, tmp_path):
    receiver = WebhookReceiver()
    allowed = make_services(pg_url, clock, tmp_path)
    strict_svc = make_services(pg_url, clock, tmp_path, webhook_allowed_networks=())
    try:
        w = build_world(allowed)
        webhooks.subscribe(allowed, w.admin, receiver.url + "/scn", SECRET, ["nomination.accepted"])
        accepted = walk_to_accepted(allowed, w)
        with pytest.raises(DeliveryFailed, match="The address 127.0.0.1 is not public"):
            webhooks.deliver_event(strict_svc, accepted)
        assert receiver.calls == []
    finally:
        receiver.close()
        allowed.engine.dispose()
        strict_svc.engine.dispose()


def test_a_redirect_is_a_failed_delivery_and_is_not_followed(pg_url, clock, tmp_path):
    first, second = WebhookReceiver(), WebhookReceiver()
    first.script = [302]
    first.answer_headers = {"Location": second.url + "/stolen"}
    svc = make_services(pg_url, clock, tmp_path)
    try:
        w = build_world(svc)
        webhooks.subscribe(svc, w.admin, first.url + "/scn", SECRET, ["nomination.accepted"])
        accepted = walk_to_accepted(svc, w)
        with pytest.raises(DeliveryFailed, match="answered 302, a redirect, which is not followed"):
            webhooks.deliver_event(svc, accepted)
        assert [c["path"] for c in first.calls] == ["/scn"]
        assert second.calls == []
    finally:
        first.close()
        second.close()
        svc.engine.dispose()


def test_a_lead_agency_webhook_without_a_secret_is_a_recorded_failure_and_is_never_called(pg_url, clock, tmp_path):
    receiver = WebhookReceiver()
    svc = make_services(pg_url, clock, tmp_path)
    try:
        w = build_world(svc)
        with svc.engine.begin() as c:  # stored before the rule: a URL and no secret
            c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
                lead_agency_webhook_url=receiver.url + "/handover", lead_agency_webhook_secret=None))
        accepted = walk_to_accepted(svc, w)
        with pytest.raises(DeliveryFailed, match="no secret of 16 characters or more"):
            handover.deliver(svc, accepted)
        assert receiver.calls == []
        with svc.engine.connect() as c:
            row = c.execute(sa.select(t.deliveries).where(t.deliveries.c.event_id == accepted)).one()
        assert (row.channel, row.status) == ("webhook", "failed") and "no secret" in row.detail
    finally:
        receiver.close()
        svc.engine.dispose()


# --- the handover, over HTTP -------------------------------------------------------------------------

def walk_over_http(server, ms: str, city: str) -> tuple[int, str]:
    """A nomination of `ms` submitted, reviewed and accepted over HTTP; returns (id, its reference)."""
    submitter = api(server, f"submitter-{ms.lower()}")
    created = submitter.post(server.url + "/api/v1/nominations", json=complete_draft(city), timeout=TIMEOUT)
    assert created.status_code == 201, created.text[:500]
    nomination = created.json()
    nomination = fire(server, submitter, nomination, "submit")
    reviewer = api(server, "reviewer-sg")
    deadline = time.monotonic() + TIMEOUT
    while "review" not in nomination["allowed_triggers"]:  # the checks run in the embedded worker
        assert time.monotonic() < deadline, nomination
        time.sleep(0.2)
        nomination = reviewer.get(f"{server.url}/api/v1/nominations/{nomination['id']}", timeout=TIMEOUT).json()
    nomination = fire(server, reviewer, nomination, "review", assessment=ASSESSMENT)
    nomination = fire(server, api(server, "reviewer-ph"), nomination, "accept")
    return nomination["id"], nomination["reference"]


def fire(server, session, nomination: dict, trigger: str, **extra) -> dict:
    response = session.post(f"{server.url}/api/v1/nominations/{nomination['id']}/transitions", timeout=TIMEOUT,
                            json={"trigger": trigger, **extra}, headers={"If-Match": f'"{nomination["version"]}"'})
    assert response.status_code == 200, response.text[:500]
    return response.json()


def events_of(server, username: str, nomination_id: int) -> list[dict]:
    response = api(server, username).get(f"{server.url}/api/v1/nominations/{nomination_id}/events", timeout=TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    return response.json()["items"]


def wait_for(what, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_a_city_name_with_a_line_break_still_gets_its_handover_mail_with_a_one_line_subject(loopback):
    server, sink = loopback.server, loopback.sink
    nomination_id, reference = None, None
    submitter = api(server, "submitter-id")
    created = submitter.post(server.url + "/api/v1/nominations", json=complete_draft("Makassar"), timeout=TIMEOUT)
    assert created.status_code == 201, created.text[:300]
    nomination_id, reference = created.json()["id"], created.json()["reference"]
    with database(server) as c:  # stored data from before input refused line breaks
        c.execute(sa.update(t.nominations).where(t.nominations.c.id == nomination_id).values(
            city_name="Makassar\r\nBcc: mallory@evil.example"))
    nomination = submitter.get(f"{server.url}/api/v1/nominations/{nomination_id}", timeout=TIMEOUT).json()
    fire(server, submitter, nomination, "submit")
    reviewer = api(server, "reviewer-sg")
    nomination = wait_for(lambda: (lambda n: n if "review" in n["allowed_triggers"] else None)(
        reviewer.get(f"{server.url}/api/v1/nominations/{nomination_id}", timeout=TIMEOUT).json()))
    assert nomination, "the checks did not finish"
    nomination = fire(server, reviewer, nomination, "review", assessment=ASSESSMENT)
    fire(server, api(server, "reviewer-ph"), nomination, "accept")

    state = wait_for(lambda: submitter.get(f"{server.url}/api/v1/nominations/{nomination_id}",
                                           timeout=TIMEOUT).json()["state"] == "handed_over")
    assert state, "the package was never delivered"
    # Read as a mail client reads them: a long header may be folded (a line break then a space),
    # which is still one header; a line break inside the name must not start a new one.
    received = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in sink.received()]
    about_it = [m for m in received if reference in m["Subject"]]
    package = [m for m in about_it if "Handover package" in m["Subject"]]
    assert len(package) == 1
    assert package[0]["Subject"] == f"[{reference}] Handover package: Makassar Bcc: mallory@evil.example"
    assert package[0]["To"] == "lead-agency@id.example"
    assert len(about_it) > 1  # the submitters' mails of the same nomination went out too
    assert all("Makassar Bcc: mallory@evil.example" in m["Subject"] and m["Bcc"] is None for m in about_it)


def test_a_lead_agency_with_a_webhook_and_no_name_gets_nothing_and_the_failure_is_recorded(loopback):
    server, receiver = loopback.server, loopback.receiver
    change = api(server, "admin").patch(server.url + "/api/v1/member-states/TH", timeout=TIMEOUT, json={
        "lead_agency_name": None, "lead_agency_email": None,
        "lead_agency_webhook_url": receiver.url + "/th-handover", "lead_agency_webhook_secret": SECRET})
    assert change.status_code == 200, change.text[:300]
    nomination_id, _ = walk_over_http(server, "TH", "Phuket")
    failed = wait_for(lambda: [e for e in events_of(server, "submitter-th", nomination_id)
                               if e["name"] == "handover.failed"])
    assert failed, "no handover.failed was recorded"
    assert [c for c in receiver.calls if c["path"] == "/th-handover"] == []
    failures = api(server, "operator").get(server.url + "/api/v1/ops/failures", timeout=TIMEOUT).json()["items"]
    assert any("No lead agency is set for member state TH" in f["error"] for f in failures)
    state = api(server, "submitter-th").get(f"{server.url}/api/v1/nominations/{nomination_id}", timeout=TIMEOUT)
    assert state.json()["state"] == "accepted"


def test_a_failed_deliverys_text_stays_with_operators(loopback):
    """The receiver answers 500: submitters read one sentence in the audit trail, operators the
    address and the answer on /api/v1/ops/failures."""
    server, receiver = loopback.server, loopback.receiver
    change = api(server, "admin").patch(server.url + "/api/v1/member-states/VN", timeout=TIMEOUT, json={
        "lead_agency_webhook_url": receiver.url + "/vn-handover", "lead_agency_webhook_secret": SECRET})
    assert change.status_code == 200, change.text[:300]
    receiver.script = [500] * 10
    try:
        nomination_id, _ = walk_over_http(server, "VN", "Da Nang")
        failed = wait_for(lambda: [e for e in events_of(server, "submitter-vn", nomination_id)
                                   if e["name"] == "handover.failed"])
    finally:
        receiver.script = []
    assert failed, "no handover.failed was recorded"
    assert [e["comment"] for e in failed] == [FAILED_COMMENT]
    trail = json.dumps(events_of(server, "submitter-vn", nomination_id))
    assert "vn-handover" not in trail and "answered" not in trail and "127.0.0.1" not in trail
    assert [c["status"] for c in receiver.calls if c["path"] == "/vn-handover"] == [500, 500]  # 1 retry
    failures = api(server, "operator").get(server.url + "/api/v1/ops/failures", timeout=TIMEOUT).json()["items"]
    assert any(f"{receiver.url}/vn-handover answered 500" in f["error"] for f in failures)


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """An HTTPS receiver on 127.0.0.1 whose certificate names hooks.agency.example (self-signed, and
    trusted through SSL_CERT_FILE); it records the SNI name and the Host header of each POST."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=hooks.agency.example",
                    "-addext", "subjectAltName=DNS:hooks.agency.example"], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({"host": self.headers["Host"], "sni": getattr(self.connection, "sni", None)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock, name, _context):
        sock.sni = name
    context.sni_callback = remember_sni
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_https_goes_to_the_checked_address_with_the_urls_host_in_sni_host_and_the_certificate_check(tls_receiver):
    port, seen = tls_receiver
    to = Destinations(LOOPBACK, resolve=stub("127.0.0.1"))
    assert webhooks.post(f"https://hooks.agency.example:{port}/scn", SECRET, "nomination.accepted", "e-1", b"{}",
                         to=to) == 200
    assert seen == [{"host": f"hooks.agency.example:{port}", "sni": "hooks.agency.example"}]
    # Another name for the same address: the certificate does not name it, so nothing is sent.
    with pytest.raises(DeliveryFailed, match="did not answer"):
        webhooks.post(f"https://other.agency.example:{port}/scn", SECRET, "nomination.accepted", "e-2", b"{}", to=to)
    assert len(seen) == 1
