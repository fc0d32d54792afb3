"""The handover as the lead agency receives it: the PDF dossier (read back with a PDF text extractor),
the mail with its three attachments (a real SMTP server), the signed, expiring links of the webhook's
JSON, the acknowledgement by webhook or by link (once), and /ops when it does not come."""

from __future__ import annotations

import io
import json
import re

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.services import acknowledgements, attachments, checks, dossier, handover, nominations, ops
from scn_workflow.services.seed import seed
from tests.conftest import ASSESSMENT, LOOPBACK, PASSWORD, build_world, complete_draft, make_services
from tests.integration.conftest import MailSink
from tests.integration.test_worker_faults import lead_agency_webhook

ACTION_PLAN = b"%PDF-1.4\n% the city's action plan\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def events_of(svc, nomination_id: int) -> list:
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination_id)
                         .order_by(t.events.c.seq)).all()


def acknowledgements_of(svc, nomination_id: int) -> list:
    return [e for e in events_of(svc, nomination_id) if e.name == "handover.acknowledged"]


def accepted(svc, w, city: str = "Banyuwangi", *, plan: bool = True):
    """A nomination of Indonesia walked to accepted (with an action plan); returns it and its acceptance event."""
    n = nominations.create(svc, w.submitter_id, complete_draft(city))
    if plan:
        attachments.add(svc, w.submitter_id, n.id, "action_plan", "rencana-aksi.pdf", ACTION_PLAN)
    n = nominations.get(svc, w.submitter_id, n.id)
    n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    checks.run_checks(svc, [e.event_id for e in events_of(svc, n.id) if e.name == "nomination.submitted"][-1])
    n = nominations.get(svc, w.reviewer_sg, n.id)
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
    return n, [e.event_id for e in events_of(svc, n.id) if e.name == "nomination.accepted"][-1]


@pytest.fixture
def app(sqlite_url, tmp_path, clock):
    sink = MailSink()
    sink.controller.start()
    application = create_app({"database_url": sqlite_url, "instance_path": str(tmp_path), "smtp_url": sink.url,
                              "embedded_autostart": False, "webhook_allowed_networks": LOOPBACK,
                              "base_url": "http://scn.test"})
    application.extensions["scn"].clock = clock
    application.extensions["sink"] = sink
    yield application
    sink.controller.stop()
    application.extensions["scn"].engine.dispose()


def path_of(link: str) -> str:
    assert link.startswith("http://scn.test/handover/"), link
    return link.removeprefix("http://scn.test")


def plain_text(mail) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain" and not p.get_filename())
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


# --- the dossier ---------------------------------------------------------------------------------------

def test_the_dossier_of_a_seeded_city_shows_it_its_member_state_every_score_and_every_hash(sqlite_url, clock,
                                                                                          tmp_path):
    svc = make_services(sqlite_url, clock, tmp_path)
    try:
        seed(svc)
        with svc.engine.connect() as c:
            n = c.execute(sa.select(t.nominations).where(t.nominations.c.city_name == "Chiang Mai")).one()
        assert n.state == "accepted" and n.assessment["scores"]
        text = pdf_text(dossier.build(svc, n.id, "en"))
        flat = re.sub(r"\s+", " ", text)
        assert "Chiang Mai" in text and "Thailand" in text and n.reference in text
        assert "Date of acceptance" in text and "2024" in text
        for area, score in n.assessment["scores"].items():
            name = {"civic_social": "Civic and Social", "health_wellbeing": "Health and Well-being",
                    "safety_security": "Safety and Security", "quality_environment": "Quality Environment",
                    "built_infrastructure": "Built Infrastructure",
                    "industry_innovation": "Industry and Innovation"}[area]
            assert re.search(rf"{re.escape(name)}\s*{score} / 5", text), (name, text)
        trail = events_of(svc, n.id)
        assert len(trail) == 5
        for event in trail:
            assert event.hash in flat and event.event_id in flat, event.name
        assert "scn-workflow audit verify" in flat and "0" * 64 in flat
        assert "Completeness: passed" in flat
    finally:
        svc.engine.dispose()


def test_the_dossier_speaks_the_lead_agencys_language(sqlite_url, clock, tmp_path):
    svc = make_services(sqlite_url, clock, tmp_path)
    try:
        w = build_world(svc)
        n, _ = accepted(svc, w, "DKI Jakarta")
        english, indonesian = (pdf_text(dossier.build(svc, n.id, language)) for language in ("en", "id"))
        assert "June 1, 2026" in english and "1 Juni 2026" in indonesian  # the date of acceptance
        assert "DKI Jakarta" in indonesian and "4 / 5" in indonesian
    finally:
        svc.engine.dispose()


# --- delivery: the mail's three attachments and the webhook's links --------------------------------------

def test_the_mail_to_the_lead_agency_carries_the_dossier_the_action_plan_and_the_json(app, clock):
    svc, sink = app.extensions["scn"], app.extensions["sink"]
    w = build_world(svc)
    n, accepted_id = accepted(svc, w)
    assert handover.deliver(svc, accepted_id) == "done"
    [mail] = sink.received()
    assert mail["To"] == "lead@id.example"
    parts = {part.get_filename(): part for part in mail.walk() if part.get_filename()}
    assert sorted(parts) == sorted([f"{n.reference}-dossier.pdf", f"{n.reference}-action-plan.pdf",
                                    f"{n.reference}-handover.json"])
    assert {name: part.get_content_type() for name, part in parts.items()} == {
        f"{n.reference}-dossier.pdf": "application/pdf", f"{n.reference}-action-plan.pdf": "application/pdf",
        f"{n.reference}-handover.json": "application/json"}
    text = pdf_text(parts[f"{n.reference}-dossier.pdf"].get_payload(decode=True))
    assert "Banyuwangi" in text and "Indonesia" in text
    assert parts[f"{n.reference}-action-plan.pdf"].get_payload(decode=True) == ACTION_PLAN
    package = json.loads(parts[f"{n.reference}-handover.json"].get_payload(decode=True))
    assert package["nomination"]["reference"] == n.reference
    assert set(package["links"]) == {"dossier", "action_plan", "expires_at"}
    body = plain_text(mail)
    assert "acknowledge" in body and re.search(r"http://scn\.test/handover/\S+/acknowledge", body)
    assert nominations.get(svc, w.admin, n.id).state == "handed_over"
    assert acknowledgements_of(svc, n.id) == []  # a mail that arrived is not yet an acknowledgement


def test_without_an_action_plan_the_mail_carries_the_dossier_and_the_json(app):
    svc, sink = app.extensions["scn"], app.extensions["sink"]
    w = build_world(svc)
    n, accepted_id = accepted(svc, w, plan=False)
    assert handover.deliver(svc, accepted_id) == "done"
    [mail] = sink.received()
    assert sorted(p.get_filename() for p in mail.walk() if p.get_filename()) == [
        f"{n.reference}-dossier.pdf", f"{n.reference}-handover.json"]


def test_the_mail_to_the_lead_agency_is_in_its_language(app):
    svc, sink = app.extensions["scn"], app.extensions["sink"]
    w = build_world(svc)
    with svc.engine.begin() as c:
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(lead_agency_language="id"))
    n, accepted_id = accepted(svc, w)
    assert handover.deliver(svc, accepted_id) == "done"
    [mail] = sink.received()
    assert mail["Subject"] == f"[{n.reference}] Paket serah terima: Banyuwangi"
    body = plain_text(mail)
    assert body.startswith("Yth. ") and "Jejaring Kota Cerdas ASEAN telah menerima Banyuwangi" in body
    assert "rencana aksi kota" in body and "Dear" not in body
    assert re.search(r"http://scn\.test/handover/\S+/acknowledge", body)


def test_the_webhooks_links_open_both_pdfs_and_its_2xx_is_the_acknowledgement(app, webhook_receiver):
    svc = app.extensions["scn"]
    w = build_world(svc)
    lead_agency_webhook(svc, webhook_receiver.url + "/handover")
    n, accepted_id = accepted(svc, w)
    assert handover.deliver(svc, accepted_id) == "done"
    [call] = webhook_receiver.accepted("/handover")
    links = json.loads(call["body"])["links"]
    client = app.test_client()  # no account: the link is the key
    dossier_pdf = client.get(path_of(links["dossier"]))
    assert dossier_pdf.status_code == 200 and dossier_pdf.mimetype == "application/pdf"
    assert dossier_pdf.headers["Referrer-Policy"] == "no-referrer"
    assert n.reference in pdf_text(dossier_pdf.data)
    plan = client.get(path_of(links["action_plan"]))
    assert plan.status_code == 200 and plan.data == ACTION_PLAN
    # Its 2xx was the acknowledgement, recorded with the delivery, before the nomination was handed over.
    assert [e.name for e in events_of(svc, n.id)][-3:] == ["nomination.accepted", "handover.acknowledged",
                                                           "nomination.handed_over"]
    [ack] = acknowledgements_of(svc, n.id)
    assert ack.payload["via"] == "webhook" and ack.payload["agency"].startswith("Kementerian Dalam Negeri")
    assert ack.actor.startswith("Kementerian Dalam Negeri") and len(ack.actor) <= 80
    # A second acknowledgement of the same handover records nothing.
    assert acknowledgements.acknowledge(svc, n.id, accepted_id, "webhook") is False
    assert acknowledgements.acknowledge(svc, n.id, accepted_id, "link") is False
    assert len(acknowledgements_of(svc, n.id)) == 1


def test_signed_links_expire_and_refuse_a_changed_signature(app, clock):
    svc = app.extensions["scn"]
    w = build_world(svc)
    n, accepted_id = accepted(svc, w)
    links = acknowledgements.links(svc, n.id, accepted_id)
    client = app.test_client()
    assert client.get(path_of(links["dossier"])).status_code == 200

    token = path_of(links["dossier"]).split("/")[2]
    payload, signature = token.rsplit(".", 1)
    changed = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    refused = client.get(f"/handover/{changed}/dossier.pdf")
    assert refused.status_code == 403 and "not valid" in refused.get_data(as_text=True)
    other = acknowledgements.make_token(svc, n.id + 1, accepted_id).split(".")[0]  # another nomination's payload
    assert client.get(f"/handover/{other}.{signature}/dossier.pdf").status_code == 403
    assert client.get("/handover/not-a-token/action-plan.pdf").status_code == 403
    with pytest.raises(acknowledgements.LinkRefused):
        acknowledgements.read_token(svc, changed)

    clock.advance(days=29, hours=23)
    assert client.get(path_of(links["action_plan"])).status_code == 200
    clock.advance(hours=1)
    for link in links.values():
        gone = client.get(path_of(link))
        assert gone.status_code == 410 and "expired" in gone.get_data(as_text=True), link
    assert client.post(path_of(links["acknowledge"])).status_code in (400, 410)  # no token, or expired
    with pytest.raises(acknowledgements.LinkExpired):
        acknowledgements.read_token(svc, token)
    assert acknowledgements_of(svc, n.id) == []


# --- the acknowledgement by link, and /ops -----------------------------------------------------------

def test_the_link_in_the_mail_acknowledges_on_the_pages_button_once(app, clock):
    svc, sink = app.extensions["scn"], app.extensions["sink"]
    w = build_world(svc)
    n, accepted_id = accepted(svc, w)
    assert handover.deliver(svc, accepted_id) == "done"
    link = re.search(r"http://scn\.test(/handover/\S+/acknowledge)", plain_text(sink.received()[0])).group(1)
    agency = app.test_client()
    page = agency.get(link)  # what a mail scanner fetching every link does, too
    assert page.status_code == 200 and "Acknowledge receipt" in page.get_data(as_text=True)
    assert acknowledgements_of(svc, n.id) == []
    assert agency.post(link, data={}).status_code == 400  # a POST without the page's form token
    done = agency.post(link, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200 and "was recorded" in done.get_data(as_text=True)
    again = agency.post(link, data={"csrf_token": csrf_of(page)})
    assert again.status_code == 200 and "already acknowledged" in again.get_data(as_text=True)
    assert "already acknowledged" in agency.get(link).get_data(as_text=True)
    [ack] = acknowledgements_of(svc, n.id)
    assert ack.payload == {"accepted_event_id": accepted_id, "agency": ack.payload["agency"], "via": "link"}
    assert ack.from_state == ack.to_state == "handed_over"

    reviewer = app.test_client()
    form = reviewer.get("/login")
    reviewer.post("/login", data={"username": "rev-sg", "password": PASSWORD, "csrf_token": csrf_of(form)})
    shown = reviewer.get(f"/nominations/{n.id}").get_data(as_text=True)
    assert 'id="acknowledged"' in shown and "acknowledged receipt" in shown


def test_ops_shows_a_handover_not_acknowledged_after_the_days_it_waits(app, clock):
    svc = app.extensions["scn"]
    w = build_world(svc)
    n, accepted_id = accepted(svc, w)
    assert handover.deliver(svc, accepted_id) == "done"
    problem = "nomination(s) handed over, not yet acknowledged by the lead agency after 7 days"
    assert not any(problem in p for p in ops.status(svc).problems)
    clock.advance(days=7, minutes=1)
    assert f"1 {problem}" in ops.status(svc).problems
    operator = app.test_client()
    form = operator.get("/login")
    operator.post("/login", data={"username": "ops", "password": PASSWORD, "csrf_token": csrf_of(form)})
    dashboard = operator.get("/ops")
    assert dashboard.status_code == 200 and f"1 {problem}" in dashboard.get_data(as_text=True)
    assert acknowledgements.acknowledge(svc, n.id, accepted_id, "link") is True
    assert not any(problem in p for p in ops.status(svc).problems)
