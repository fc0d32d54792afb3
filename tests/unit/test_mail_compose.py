"""A notification is rendered once per event (services/notifications.py `render`) and then made
into one mail per recipient (`compose`): each mail greets its own recipient, escaped in the HTML
part, and is the same mail it would be if rendered for that recipient alone."""

from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

from scn_workflow.services.notifications import NAME_SLOT, compose, render

SETTINGS = SimpleNamespace(mail_from="scn@example.org")
EVENT = SimpleNamespace(event_id="4b1f7a52-0000-4000-8000-000000000001", name="nomination.returned",
                        comment="Please add the <b>budget</b> of the river project.", to_state="drafted")
NOMINATION = SimpleNamespace(reference="ASCN-2018-ID-002", city_name="Makassar", member_state="ID",
                             state="drafted", cycle="ASCN-2018")
DATE = "Sat, 28 Nov 2026 21:00:00 -0000"


def parts(raw: bytes) -> tuple[email.message.EmailMessage, str, str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    text, html = (part.get_content() for part in message.iter_parts())
    return message, text, html


def test_each_recipient_is_greeted_by_name_and_the_html_escapes_it():
    rendered = render(EVENT, NOMINATION)
    first = compose(SETTINGS, EVENT, NOMINATION, "Placeholder <Officer> & Co", "officer@makassar.example", DATE,
                    rendered)
    second = compose(SETTINGS, EVENT, NOMINATION, "Second Placeholder", "second@makassar.example", DATE, rendered)
    message, text, html = parts(first)
    assert message["To"] == "officer@makassar.example"
    assert message["Subject"] == "[ASCN-2018-ID-002] Makassar was returned for revision"
    assert text.startswith("Dear Placeholder <Officer> & Co,")
    assert "<p>Dear Placeholder &lt;Officer&gt; &amp; Co,</p>" in html
    assert "Please add the &lt;b&gt;budget&lt;/b&gt; of the river project." in html
    _, text2, html2 = parts(second)
    assert text2.startswith("Dear Second Placeholder,") and "<p>Dear Second Placeholder,</p>" in html2
    assert NAME_SLOT.encode() not in first and NAME_SLOT.encode() not in second


def test_rendering_once_makes_the_same_mail_as_rendering_for_each_recipient():
    rendered = render(EVENT, NOMINATION)
    for name, address in (("Placeholder <Officer> & Co", "officer@makassar.example"),
                          ("Second Placeholder", "second@makassar.example")):
        assert compose(SETTINGS, EVENT, NOMINATION, name, address, DATE, rendered) == \
            compose(SETTINGS, EVENT, NOMINATION, name, address, DATE)
