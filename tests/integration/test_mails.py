"""The mails people act on, through a real SMTP server: nominations walked through their lifecycle (submit,
checks, review, accept, handover; a return and a reject; a withdrawal after submission), and every mail
the notifications send read as its recipient reads it: greeted by name in their language, what happened to
which nomination and who did it, what comes next for them, and a link that opens the nomination for them
(a signed-in session gets 200) and for nobody who may not see it (another member state's submitter: 404).
Then the daily digest: a day's events gathered into one mail per person, however often it runs."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from scn_workflow import labels
from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.domain.workflow import EVENTS, NEXT_FOR, WAITING_NEXT, Audience
from scn_workflow.services import alerts, digest, nominations, users
from scn_workflow.schemas.users import UserPatch
from scn_workflow.services.reactions import HANDLERS
from tests.api_support import sign_in
from tests.conftest import ASSESSMENT, build_world, complete_draft, make_services

BASE = "https://scn.test"
# Display names (root has none: greeted by its username) and languages: Siti reads Bahasa Indonesia.
PEOPLE = {"sub-id": ("Siti Rahmawati", "id"), "sub-id2": ("Budi Santoso", "en"), "sub-th": ("Somchai Prasert", "en"),
          "rev-sg": ("Tan Wei Ling", "en"), "rev-ph": ("Maria Santos", "en"), "rev-id": ("Dewi Lestari", "en"),
          "ops": ("Omar Operator", "en"), "root": (None, "en")}
ID = labels.catalogue("id")


def words(language: str, text: str) -> str:
    return ID.gettext(text) if language == "id" else text


@pytest.fixture
def world(pg_url, clock, tmp_path, smtp_server):
    svc = make_services(pg_url, clock, tmp_path, smtp_url=smtp_server.url, base_url=BASE, stuck_after_h=12.0)
    app = create_app({"database_url": pg_url, "instance_path": str(tmp_path / "web"), "embedded_autostart": False})
    app.config["TESTING"] = True
    w = build_world(svc)
    with svc.engine.begin() as c:
        for username, (name, language) in PEOPLE.items():
            c.execute(sa.update(t.users).where(t.users.c.username == username).values(name=name, language=language))
    yield svc, app, w
    app.extensions["scn"].engine.dispose()
    svc.engine.dispose()


def settle(svc, done: set[str]) -> None:
    """Perform every reaction of every event not yet done, as the workers would, until none is left."""
    while True:
        with svc.engine.connect() as c:
            rows = c.execute(sa.select(t.events.c.event_id, t.events.c.name).order_by(t.events.c.id)).all()
        new = [row for row in rows if row.event_id not in done]
        if not new:
            return
        for row in new:
            done.add(row.event_id)
            for queue in EVENTS[row.name].queues:
                HANDLERS[queue](svc, row.event_id)


def fire(svc, actor, nomination, trigger: str, **kwargs):
    """Fire a trigger on the nomination as it is now (the checks move its version meanwhile)."""
    current = nominations.get(svc, actor, nomination.id)
    return nominations.fire(svc, actor, current.id, trigger, current.version, **kwargs)


class Readers:
    """A signed-in browser per person, made once."""

    def __init__(self, app):
        self.app, self.clients = app, {}

    def __getitem__(self, username):
        if username not in self.clients:
            self.clients[username] = sign_in(self.app, username)
        return self.clients[username]


def parse(raw) -> tuple:
    message = message_from_bytes(raw.as_bytes(), policy=policy.default)
    text, html = (part.get_content() for part in message.iter_parts())
    return message, text, html


def person_of(svc, address: str):
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.users).where(t.users.c.email == address)).one_or_none()


def audience_of(person, event_name: str) -> Audience:
    if person is None:
        return Audience.LEAD_AGENCY
    if person.role == "submitter":
        return Audience.SUBMITTERS
    if person.role == "reviewer":
        return next(a for a in EVENTS[event_name].notify if a in (Audience.REVIEWERS, Audience.REVIEWERS_IF_SUBMITTED))
    return Audience.OPERATORS


def test_every_mail_of_the_lifecycle_names_the_person_the_nomination_the_actor_and_the_next_step_and_links_it(
        world, smtp_server):
    svc, app, w = world
    done: set[str] = set()
    # Banyuwangi goes all the way: submitted, checked, reviewed, accepted, handed over.
    a = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    a = fire(svc, w.submitter_id, a, "submit")
    settle(svc, done)
    a = fire(svc, w.reviewer_sg, a, "review", assessment=ASSESSMENT)
    a = fire(svc, w.reviewer_ph, a, "accept")
    settle(svc, done)
    assert nominations.get(svc, w.submitter_id, a.id).state == "handed_over"
    # Makassar is returned, submitted again, reviewed and rejected.
    b = nominations.create(svc, w.submitter_id2, complete_draft("Makassar"))
    b = fire(svc, w.submitter_id2, b, "submit")
    settle(svc, done)
    b = fire(svc, w.reviewer_sg, b, "return_for_revision", comment="Add the budgets.")
    b = fire(svc, w.submitter_id2, b, "submit")
    settle(svc, done)
    b = fire(svc, w.reviewer_ph, b, "review", assessment=ASSESSMENT)
    b = fire(svc, w.reviewer_sg, b, "reject", comment="No action plan.")
    # DKI Jakarta is withdrawn after submission: the reviewers hear of it too.
    c = nominations.create(svc, w.submitter_id, complete_draft("DKI Jakarta"))
    c = fire(svc, w.submitter_id, c, "submit")
    settle(svc, done)
    c = fire(svc, w.submitter_id, c, "withdraw")
    settle(svc, done)

    actors = {"nomination.submitted": {a.id: "Siti Rahmawati", b.id: "Budi Santoso", c.id: "Siti Rahmawati"},
              "checks.completed": {n.id: "the system" for n in (a, b, c)},
              "nomination.reviewed": {a.id: "Tan Wei Ling", b.id: "Maria Santos"},
              "nomination.accepted": {a.id: "Maria Santos"}, "nomination.rejected": {b.id: "Tan Wei Ling"},
              "nomination.returned": {b.id: "Tan Wei Ling"}, "nomination.withdrawn": {c.id: "Siti Rahmawati"},
              "nomination.handed_over": {a.id: "the system"}}
    cities = {a.id: (a.reference, "Banyuwangi"), b.id: (b.reference, "Makassar"), c.id: (c.reference, "DKI Jakarta")}
    readers, outsider = Readers(app), sign_in(app, "sub-th")  # Thailand's submitter may see none of them
    with svc.engine.connect() as conn:
        agency = conn.scalar(sa.select(t.member_states.c.lead_agency_name).where(t.member_states.c.code == "ID"))
    mails = [parse(m) for m in smtp_server.received() if m["X-SCN-Event-Id"]]  # not the handover package
    seen = set()
    for message, text, html in mails:
        event = message["X-SCN-Event"]
        person = person_of(svc, message["To"])
        language = person.language if person else "en"
        name = (person.name or person.username) if person else agency
        link = re.search(r"https://scn\.test/\S+", text).group(0)
        nomination_id = int(link.rsplit("/", 1)[1])
        reference, city = cities[nomination_id]
        where = f"{event} to {message['To']}"
        # Greeted by name, in their language; the nomination by reference and city; who did it.
        assert text.startswith(words(language, "Dear %(name)s,") % {"name": name}), where
        assert reference in text and city in text and reference in message["Subject"], where
        actor = words(language, actors[event][nomination_id])
        assert words(language, "Done by: %(actor)s") % {"actor": actor} in text, where
        # What comes next for this reader, in their language.
        step = words(language, NEXT_FOR[event][audience_of(person, event)]).format(
            city=city, member_state=words(language, "Indonesia"))
        assert words(language, "What comes next: %(next_step)s") % {"next_step": step} in text, where
        assert step in html and f'href="{link}"' in html, where
        # The link opens the nomination for them, and for nobody who may not see it.
        path = urlsplit(link).path
        if person is None:  # the lead agency has no account: the city's public page
            assert path == f"/cities/{nomination_id}" and app.test_client().get(path).status_code == 200, where
        else:
            assert path == f"/nominations/{nomination_id}", where
            assert readers[person.username].get(path).status_code == 200, where
            assert outsider.get(path).status_code == 404, where
        seen.add((event, message["To"]))

    told = lambda *users: {f"{u}@test.example" for u in users}  # noqa: E731
    expected = ({(e, a) for e in ("nomination.submitted", "nomination.returned", "nomination.reviewed",
                                  "nomination.accepted", "nomination.rejected", "nomination.withdrawn",
                                  "nomination.handed_over") for a in told("sub-id", "sub-id2")}
                | {(e, a) for e in ("checks.completed", "nomination.withdrawn") for a in told("rev-sg", "rev-ph")}
                | {("nomination.handed_over", "lead@id.example")})
    assert seen == expected
    # Siti reads Bahasa Indonesia, words and subject; Budi English.
    returned = {m["To"]: (m, text) for m, text, _ in mails if m["X-SCN-Event"] == "nomination.returned"}
    siti, siti_text = returned["sub-id@test.example"]
    assert siti_text.startswith("Yth. Siti Rahmawati,") and "telah dikembalikan untuk direvisi" in str(siti["Subject"])
    assert "Langkah berikutnya: Bacalah komentarnya" in siti_text and "Komentar: Add the budgets." in siti_text
    assert "What comes next" not in siti_text
    assert returned["sub-id2@test.example"][1].startswith("Dear Budi Santoso,")


def test_the_daily_digest_gathers_a_days_events_into_one_mail_per_person_and_reminders_follow_the_choice(
        world, smtp_server, clock):
    svc, app, w = world
    with svc.engine.begin() as c:  # Budi and Tan Wei Ling chose the daily digest; Siti reads Indonesian
        c.execute(sa.update(t.users).where(t.users.c.username.in_(("sub-id2", "rev-sg", "sub-id")))
                  .values(mail_digest=True))
    done: set[str] = set()
    a = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    a = fire(svc, w.submitter_id, a, "submit")
    b = nominations.create(svc, w.submitter_id2, complete_draft("Makassar"))
    b = fire(svc, w.submitter_id2, b, "submit")
    settle(svc, done)
    b = fire(svc, w.reviewer_ph, b, "return_for_revision", comment="Add the budgets.")
    settle(svc, done)
    # No mail per event for a digest person; the others have theirs.
    per_event = {m["To"] for m in smtp_server.received()}
    assert per_event == {"rev-ph@test.example"}  # the checks of both, to the one reviewer without a digest

    clock.advance(hours=2)
    assert digest.send_digests(svc) == 0  # the day is not over: yesterday had nothing
    clock.advance(days=1)  # 2 June, 11:00: 26 hours after the submissions, waiting longer than 12 h
    assert alerts.remind(svc) == 1  # Banyuwangi waits for review: rev-ph is reminded; rev-sg reads it in the digest
    assert [m["To"] for m in smtp_server.received() if m["X-SCN-Reminder"]] == ["rev-ph@test.example"]
    assert digest.send_digests(svc) == 3
    assert digest.send_digests(svc) == 0  # beat again: nothing more
    digests = {m["To"]: parse(m) for m in smtp_server.received() if m["X-SCN-Digest"]}
    assert sorted(digests) == ["rev-sg@test.example", "sub-id2@test.example", "sub-id@test.example"]
    assert len([m for m in smtp_server.received() if m["X-SCN-Digest"]]) == 3

    readers, outsider = Readers(app), sign_in(app, "sub-th")
    for address, (message, text, html) in digests.items():
        person = person_of(svc, address)
        language = person.language
        assert text.startswith(words(language, "Dear %(name)s,") % {"name": person.name}), address
        assert message["Message-ID"] == f"<digest.2026-06-01.{person.id}@scn-workflow>"
        links = re.findall(r"https://scn\.test/nominations/\d+", text)
        assert set(links) == {f"{BASE}/nominations/{a.id}", f"{BASE}/nominations/{b.id}"}, address
        for link in set(links):
            assert f'href="{link}"' in html
            assert readers[person.username].get(urlsplit(link).path).status_code == 200, (address, link)
            assert outsider.get(urlsplit(link).path).status_code == 404, link
    # Each nomination with what happened, by whom, and what comes next for this person.
    _m, budi, _h = digests["sub-id2@test.example"]
    assert "Dear Budi Santoso," in budi and "June 1, 2026" in budi
    assert f"{a.reference}: Banyuwangi, Indonesia" in budi and f"{b.reference}: Makassar, Indonesia" in budi
    assert "09:00 UTC: Submitted for review, by Siti Rahmawati." in budi
    assert "Returned for revision, by Maria Santos." in budi and "Comment: Add the budgets." in budi
    assert "What comes next: " + NEXT_FOR["nomination.returned"][Audience.SUBMITTERS] in budi
    _m, tan, _h = digests["rev-sg@test.example"]
    assert "Automated checks finished, by the system." in tan
    assert "What comes next: " + NEXT_FOR["checks.completed"][Audience.REVIEWERS] in tan
    assert "Waiting too long for reviewers:" in tan and WAITING_NEXT["submitted"] in tan
    assert f"Nomination {a.reference} (Banyuwangi, Indonesia) has waited 26 hours for review." in tan
    siti_message, siti, _h = digests["sub-id@test.example"]
    assert siti.startswith("Yth. Siti Rahmawati,") and "1 Juni 2026" in siti
    assert str(siti_message["Subject"]) == "[scn-workflow] Ringkasan harian Anda untuk 1 Juni 2026"
    assert "Langkah berikutnya:" in siti and "oleh Siti Rahmawati" in siti


def test_a_person_who_leaves_the_digest_during_the_day_still_gets_what_it_held_for_them(world, smtp_server, clock):
    svc, _app, w = world
    users.update_profile(svc, "sub-id2", name="Budi Santoso", language="en", mail_digest=True)
    a = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    a = fire(svc, w.submitter_id, a, "submit")
    done: set[str] = set()
    settle(svc, done)
    assert "sub-id2@test.example" not in {m["To"] for m in smtp_server.received()}  # held for the digest
    users.update_profile(svc, "sub-id2", name="Budi Santoso", language="en", mail_digest=False)
    fire(svc, w.reviewer_ph, a, "return_for_revision", comment="Add the budgets.")
    settle(svc, done)
    per_event = [m for m in smtp_server.received() if m["To"] == "sub-id2@test.example"]
    assert [str(m["X-SCN-Event"]) for m in per_event] == ["nomination.returned"], [m["Subject"] for m in per_event]
    clock.advance(days=1)
    assert digest.send_digests(svc) == 1
    (held,) = [parse(m)[1] for m in smtp_server.received() if m["X-SCN-Digest"]]
    assert held.startswith("Dear Budi Santoso,")
    assert "Submitted for review, by Siti Rahmawati." in held  # the event held for the digest
    assert "Returned for revision" not in held  # mailed on its own already


def test_an_address_as_long_as_the_rules_allow_is_mailed_once_and_recorded(world, smtp_server):
    """254 characters, the most an address may have: "mail:" and the address is the key its mail is
    recorded under, once (on PostgreSQL the key's column was too short, so every retry mailed again)."""
    svc, _app, w = world
    address = "b" * 64 + "@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 53 + ".example"
    changes = UserPatch().load({"email": address})
    assert len(changes["email"]) == 254
    users.update_user(svc, w.admin, "sub-id2", changes)
    a = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    fire(svc, w.submitter_id, a, "submit")
    with svc.engine.connect() as c:
        submitted = c.scalar(sa.select(t.events.c.event_id).where(t.events.c.name == "nomination.submitted"))
    HANDLERS["notifications"](svc, submitted)
    HANDLERS["notifications"](svc, submitted)  # a redelivery: nothing more
    assert [m["To"] for m in smtp_server.received()].count(address) == 1


def test_a_digest_whose_worker_died_before_recording_it_is_sent_again_as_the_same_message(
        world, smtp_server, clock, monkeypatch):
    svc, _app, w = world
    with svc.engine.begin() as c:
        c.execute(sa.update(t.users).where(t.users.c.username == "sub-id2").values(mail_digest=True))
    a = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    fire(svc, w.submitter_id, a, "submit")
    settle(svc, set())
    clock.advance(days=1)

    def dies(*args, **kwargs):
        raise SystemExit("the worker dies after the SMTP server accepted the digest")

    with monkeypatch.context() as patch:
        patch.setattr(digest, "record_effects", dies)
        with pytest.raises(SystemExit):
            digest.send_digests(svc)
    assert digest.send_digests(svc) == 0  # its claim still holds: nobody sends it meanwhile
    clock.advance(seconds=svc.settings.redeliver_after_s + 1)
    assert digest.send_digests(svc) == 1  # the claim ran out: sent again, and recorded
    assert digest.send_digests(svc) == 0
    sent = [m for m in smtp_server.received() if m["X-SCN-Digest"]]
    assert len(sent) == 2 and sent[0]["Message-ID"] == sent[1]["Message-ID"]
