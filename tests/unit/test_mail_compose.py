"""A notification (services/notifications.py): who hears of each event, read from the workflow's
event table, and the mail each recipient gets: greeted by name, escaped in the HTML part, with a
Message-ID that follows from the event and the recipient, so a mail sent again is the same message."""

from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

import pytest

from scn_workflow.domain.workflow import EVENTS, NEXT_FOR, SPECS, Audience
from scn_workflow.services.notifications import Recipient, choose_recipients, compose

SETTINGS = SimpleNamespace(mail_from="scn@example.org", base_url="https://scn.example.org")
EVENT = SimpleNamespace(event_id="4b1f7a52-0000-4000-8000-000000000001", name="nomination.returned",
                        comment="Please add the <b>budget</b> of the river project.", to_state="drafted",
                        actor="rev-sg", nomination_id=42)
NOMINATION = SimpleNamespace(reference="ASCN-2018-ID-002", city_name="Makassar", member_state="ID",
                             state="drafted", cycle="ASCN-2018")


def user(username, role, member_state=None):
    return SimpleNamespace(username=username, email=f"{username}@example.org", role=role, member_state=member_state)


USERS = [user("sub-id", "submitter", "ID"), user("sub-id2", "submitter", "ID"), user("sub-th", "submitter", "TH"),
         user("rev-sg", "reviewer", "SG"), user("rev-id", "reviewer", "ID"), user("rev-any", "reviewer"),
         user("ops", "operator"), user("root", "admin")]
AGENCY = SimpleNamespace(lead_agency_name="Ministry of Home Affairs", lead_agency_email="lead@id.example")


def parts(message) -> tuple[email.message.EmailMessage, str, str]:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    text, html = (part.get_content() for part in parsed.iter_parts())
    return parsed, text, html


def to(name, address, language="en", audience=Audience.SUBMITTERS):
    return Recipient(name, address, audience, language)


def test_each_recipient_is_greeted_by_name_and_the_html_escapes_it():
    message, text, html = parts(compose(SETTINGS, EVENT, NOMINATION, to("Placeholder <Officer> & Co",
                                                                        "officer@makassar.example")))
    assert message["To"] == "officer@makassar.example"
    assert message["Subject"] == "[ASCN-2018-ID-002] Makassar was returned for revision"
    assert message["X-SCN-Event"] == "nomination.returned" and message["X-SCN-Event-Id"] == EVENT.event_id
    assert text.startswith("Dear Placeholder <Officer> & Co,")
    assert "<p>Dear Placeholder &lt;Officer&gt; &amp; Co,</p>" in html
    assert "Please add the &lt;b&gt;budget&lt;/b&gt; of the river project." in html


def test_the_same_event_and_recipient_make_the_same_message_id_and_another_recipient_another():
    first = compose(SETTINGS, EVENT, NOMINATION, to("A", "officer@makassar.example"))
    again = compose(SETTINGS, EVENT, NOMINATION, to("A", "officer@makassar.example"))
    other = compose(SETTINGS, EVENT, NOMINATION, to("B", "second@makassar.example"))
    assert first["Message-ID"] == again["Message-ID"] == f"<{EVENT.event_id}.officer.at.makassar.example@scn-workflow>"
    assert other["Message-ID"] != first["Message-ID"]


def names(event_name, from_state="submitted", agency=None):
    event = SimpleNamespace(name=event_name, from_state=from_state)
    return [person.name for person in choose_recipients(event, "ID", USERS, agency)]


@pytest.mark.parametrize(("event_name", "told"), [
    ("nomination.submitted", ["sub-id", "sub-id2"]),
    ("checks.completed", ["rev-sg", "rev-any"]),  # never a reviewer of the nomination's own member state
    ("nomination.returned", ["sub-id", "sub-id2"]),
    ("nomination.accepted", ["sub-id", "sub-id2"]),
    ("handover.failed", ["ops", "root"]),
    ("nomination.created", []),
    ("nomination.updated", []),
])
def test_who_hears_of_each_event(event_name, told):
    assert names(event_name) == told


def test_a_withdrawal_tells_the_reviewers_only_when_the_nomination_had_been_submitted():
    assert names("nomination.withdrawn", from_state="drafted") == ["sub-id", "sub-id2"]
    assert names("nomination.withdrawn", from_state="submitted") == ["sub-id", "sub-id2", "rev-sg", "rev-any"]


def test_the_lead_agency_hears_of_the_handover_once_however_often_its_address_appears():
    assert names("nomination.handed_over", agency=AGENCY) == ["sub-id", "sub-id2", "Ministry of Home Affairs"]
    twice = [*USERS, user("lead", "submitter", "ID")]
    twice[-1].email = "LEAD@id.example"
    event = SimpleNamespace(name="nomination.handed_over", from_state="accepted")
    addresses = [person.address.lower() for person in choose_recipients(event, "ID", twice, AGENCY)]
    assert addresses.count("lead@id.example") == 1


def test_every_event_a_trigger_records_is_in_the_event_table_with_its_queues():
    assert {spec.event.name for spec in SPECS.values()} <= set(EVENTS)
    assert EVENTS["nomination.submitted"].queues == ("checks", "notifications")
    assert EVENTS["nomination.accepted"].queues == ("handover", "notifications")
    assert EVENTS["nomination.created"].queues == ()


def test_the_mail_says_who_did_it_what_comes_next_for_the_reader_and_links_the_nomination():
    _message, text, html = parts(compose(SETTINGS, EVENT, NOMINATION, to("Siti", "siti@example.org"),
                                         actor="Dr. Tan Wei Ling"))
    assert "Nomination ASCN-2018-ID-002 (Makassar, Indonesia) was returned for revision." in text
    assert "Done by: Dr. Tan Wei Ling" in text
    assert "What comes next: Read the comment, revise the draft and submit it again." in text
    assert "Open the nomination: https://scn.example.org/nominations/42" in text
    assert '<a href="https://scn.example.org/nominations/42">' in html and "Dr. Tan Wei Ling" in html
    system = SimpleNamespace(**{**vars(EVENT), "actor": "system"})
    assert "Done by: the system" in parts(compose(SETTINGS, system, NOMINATION, to("Siti", "s@example.org")))[1]


def test_an_indonesian_reader_gets_the_mail_and_its_subject_in_indonesian():
    message, text, _html = parts(compose(SETTINGS, EVENT, NOMINATION, to("Siti", "siti@example.org", "id"),
                                         actor="Dr. Tan Wei Ling"))
    assert text.startswith("Yth. Siti,")
    assert "telah dikembalikan untuk direvisi" in message["Subject"] and "\n" not in message["Subject"]
    assert "What comes next" not in text and "Open the nomination" not in text


def test_the_lead_agency_is_linked_to_the_public_city_page_it_can_open_without_an_account():
    handed = SimpleNamespace(**{**vars(EVENT), "name": "nomination.handed_over", "comment": None,
                                "to_state": "handed_over", "actor": "system"})
    _message, text, _html = parts(compose(SETTINGS, handed, NOMINATION, to("Ministry", "lead@id.example",
                                                                           audience=Audience.LEAD_AGENCY)))
    assert "https://scn.example.org/cities/42" in text and "/nominations/" not in text


def test_every_audience_a_mail_goes_to_has_its_next_step():
    for name, spec in EVENTS.items():
        for audience in spec.notify:
            assert NEXT_FOR[name].get(audience), (name, audience)
