"""End to end, in a real Chromium: people use the service through its pages, with JavaScript off.

The service runs as `scn-workflow serve` with the embedded worker, which runs the checks, mails the
handover package to the lead agency (an .eml file, since SCN_SMTP_URL is unset) and fires hand_over.
"""

from __future__ import annotations

import email
import json
import re
import time

import sqlalchemy as sa

from scn_workflow.db import tables as t
from tests.conftest import PASSWORD
from tests.e2e.support import sign_in

# A small but well-formed one-page PDF.
ACTION_PLAN = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
               b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")


def expect_text(page, text: str) -> None:
    from playwright.sync_api import expect
    expect(page.locator("main")).to_contain_text(text)


def state(page) -> str:
    """The state's code (the page shows it in words)."""
    return page.locator("#state").get_attribute("data-state")


def reload_until(page, predicate, site, timeout: float = 30.0, what: str = "the page to change") -> None:
    """What the embedded worker does takes a moment: reload as a person would, until it shows."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; server log:\n"
                                 f"{site.server.log()[-4000:]}")
        time.sleep(0.3)
        page.reload()


def project(page, number: int):
    return page.get_by_role("group", name=f"Project {number}", exact=True)


def test_banyuwangi_from_draft_to_handover_without_javascript(site, new_page):
    # An Indonesian submitter drafts Banyuwangi with two projects.
    submitter = new_page(javascript=False)
    sign_in(submitter, site.url, "sub-id", PASSWORD)
    assert submitter.url.endswith("/nominations")
    expect_text(submitter, "Limits of Indonesia")
    submitter.get_by_role("link", name="New nomination").click()
    submitter.get_by_label("City", exact=True).fill("Banyuwangi")
    submitter.get_by_label("Province or region").fill("East Java")
    submitter.get_by_label("Population").fill("1,708,000")
    submitter.get_by_label("Name", exact=True).fill("Budi Santoso")
    submitter.get_by_label("Email", exact=True).fill("budi at banyuwangi")  # a mistake, fixed below
    submitter.get_by_label("Vision statement").fill("Smart Kampung: digital services in every village.")
    focus = submitter.get_by_role("group", name="Focus areas")
    focus.get_by_label("Civic and Social").check()
    focus.get_by_label("Quality Environment").check()
    project(submitter, 1).get_by_label("Title").fill("Smart Kampung")
    project(submitter, 1).get_by_label("Focus area").select_option("civic_social")
    project(submitter, 1).get_by_label("Description").fill("Village offices online.")
    project(submitter, 1).get_by_label("Priority project").check()
    submitter.get_by_role("button", name="Add a project").click()
    project(submitter, 2).get_by_label("Title").fill("Clean rivers")
    project(submitter, 2).get_by_label("Focus area").select_option("quality_environment")
    assert project(submitter, 1).get_by_label("Title").input_value() == "Smart Kampung"  # kept across the round trip
    submitter.get_by_role("button", name="Save draft").click()

    # The error is next to the field; everything typed is still there.
    expect_text(submitter, "Please correct the fields marked below; nothing was saved yet.")
    assert submitter.locator("#csco_email-error").inner_text() == "Must be an email address, such as name@example.org."
    assert submitter.get_by_label("Email", exact=True).input_value() == "budi at banyuwangi"
    assert submitter.get_by_label("Vision statement").input_value().startswith("Smart Kampung")
    assert project(submitter, 2).get_by_label("Title").input_value() == "Clean rivers"
    assert project(submitter, 1).get_by_label("Priority project").is_checked()
    assert site.scalar(sa.select(sa.func.count()).select_from(t.nominations)) == 0
    submitter.get_by_label("Email", exact=True).fill("budi@banyuwangi.example")
    submitter.get_by_label("Email", exact=True).press("Enter")  # Enter saves (it does not remove a project)
    expect_text(submitter, "Draft ASCN-2026-ID-001 saved.")
    assert state(submitter) == "drafted"
    expect_text(submitter, "Smart Kampung")
    expect_text(submitter, "Clean rivers")
    nomination_url = submitter.url

    # It uploads the action plan, and submits.
    submitter.get_by_label("Kind").select_option("action_plan")
    submitter.get_by_label("PDF file").set_input_files(
        {"name": "banyuwangi-action-plan.pdf", "mimeType": "application/pdf", "buffer": ACTION_PLAN})
    submitter.get_by_role("button", name="Upload").click()
    expect_text(submitter, "banyuwangi-action-plan.pdf attached.")
    submitter.get_by_role("button", name="Submit").click()
    expect_text(submitter, "Submitted. Automated checks run now; reviewers are told when they finish.")
    assert state(submitter) == "submitted"
    reload_until(submitter, lambda: submitter.locator("#checks-h ~ ul li").count() > 0, site, what="the checks")
    checks = submitter.locator("section", has=submitter.locator("#checks-h")).inner_text().lower()
    assert "action plan" in checks and "failed" not in checks
    submitter.get_by_role("button", name="Sign out sub-id").click()

    # A reviewer of another member state reviews it from the desk.
    reviewer = new_page(javascript=False)
    sign_in(reviewer, site.url, "rev-sg", PASSWORD)
    assert reviewer.url.endswith("/review")
    row = reviewer.get_by_role("row").filter(has_text="Banyuwangi")
    assert "passed" in row.inner_text() or "warning" in row.inner_text()
    row.get_by_role("link", name="ASCN-2026-ID-001").click()
    reviewer.get_by_role("button", name="Review", exact=True).click()
    reviewer.get_by_label("Civic and Social").select_option("5")
    reviewer.get_by_label("Quality Environment").select_option("4")
    reviewer.get_by_label("Recommendation").select_option("accept")
    reviewer.get_by_label("Summary").fill("A clear plan with village-level services.")
    reviewer.get_by_role("button", name="Record review").click()
    expect_text(reviewer, "Review recorded.")
    assert state(reviewer) == "reviewed"
    assert reviewer.get_by_role("button", name="Accept").count() == 0  # four eyes: not the one who reviewed

    # A second reviewer accepts.
    second = new_page(javascript=False)
    sign_in(second, site.url, "rev-ph", PASSWORD)
    second.goto(nomination_url)
    expect_text(second, "Assessment by rev-sg")
    second.get_by_role("button", name="Accept").click()  # it asks first, naming the consequence
    expect_text(second, "Accepting cannot be undone. Banyuwangi will join the ASEAN Smart Cities Network")
    second.locator("form.confirm").get_by_role("button", name="Accept").click()
    expect_text(second, "Accepted. The handover package is being sent to the lead agency of Indonesia")

    # The embedded worker mails the package to the lead agency and hands the nomination over.
    reload_until(second, lambda: state(second) == "handed_over", site, what="the handover")
    timeline = second.locator("ol.timeline").inner_text()
    assert re.search(r"by system \(Accepted → Handed over\)", timeline)
    # drafted, edited (the upload), submitted, checked, reviewed, accepted, handed over
    assert second.locator("ol.timeline > li").count() >= 7
    mails = [email.message_from_bytes(p.read_bytes()) for p in (site.instance / "mail").glob("*.eml")]
    packages = [m for m in mails if m["To"] == "lead@id.example" and "Handover package" in m["Subject"]]
    assert len(packages) == 1  # exactly once
    assert packages[0]["Subject"] == "[ASCN-2026-ID-001] Handover package: Banyuwangi"
    attached = [part for part in packages[0].walk() if part.get_filename() == "ASCN-2026-ID-001-handover.json"]
    package = json.loads(attached[0].get_payload(decode=True))
    assert package["nomination"]["city_name"] == "Banyuwangi"
    assert package["assessment"]["scores"] == {"civic_social": 5, "quality_environment": 4}

    # The submitter (signed in again) sees it too, and the public register lists it.
    sign_in(submitter, site.url, "sub-id", PASSWORD)
    submitter.goto(nomination_url)
    assert state(submitter) == "handed_over"
    submitter.get_by_role("link", name="Register").click()
    expect_text(submitter, "Banyuwangi")


def test_keyboard_alone_signs_in_and_reaches_the_content(site, new_page):
    page = new_page()
    page.goto(site.url + "/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator("a.skip").bounding_box()["x"] >= 0  # shown when focused
    for _ in range(20):  # on, through the navigation, to the form
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "username":
            break
    page.keyboard.type("rev-sg")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/review")
    expect_text(page, "Review desk")
    outline = page.evaluate("""() => { document.querySelector('#d-state').focus();
        return getComputedStyle(document.activeElement).outlineStyle; }""")
    assert outline == "solid"  # focus is visible


def test_the_workflow_diagram_labels_overlap_neither_each_other_nor_the_states(site, new_page):
    page = new_page()
    sign_in(page, site.url, "root", PASSWORD)
    page.goto(site.url + "/workflow")
    shapes = page.evaluate("""() => {
        const svg = document.querySelector('svg.workflow');
        const box = e => { const b = e.getBBox(); return [e.textContent, b.x, b.y, b.width, b.height]; };
        return {labels: [...svg.querySelectorAll('text[font-size="11"]')].map(box),
                states: [...svg.querySelectorAll('rect')].map(box),
                width: svg.getBoundingClientRect().width};
    }""")
    labels, states = shapes["labels"], shapes["states"]
    assert len(labels) == 9 and len(states) == 7
    assert shapes["width"] > 800

    def overlap(a, b):
        return a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]

    for i, label in enumerate(labels):
        for other in labels[i + 1:]:
            assert not overlap(label, other), (label, other)
        for box in states:
            assert not overlap(label, box), (label, box)
    assert "0 nominations" in page.locator("svg.workflow").text_content()
