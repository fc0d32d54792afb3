"""Pages for people, in a real Chromium with JavaScript off: a nomination from draft to handover in English
and in Bahasa Indonesia, through the confirmations and with a refusal in each language; and every page at
a phone's width (390×844) with nothing hidden and nothing scrolling sideways.

The Indonesian labels are found through the catalogue (`t`), so that the test follows the translation.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.support import Translations

from scn_workflow.db import tables as t
from scn_workflow.domain import workflow
from scn_workflow.domain.model import SYSTEM
from scn_workflow.services import nominations
from tests.conftest import ASSESSMENT, PASSWORD, complete_draft
from tests.e2e.test_browser import ACTION_PLAN, expect_text, reload_until

TRANSLATIONS = Path(__file__).resolve().parents[2] / "scn_workflow" / "translations"
PHONE = {"width": 390, "height": 844}


@cache
def _catalogue(language: str):
    return Translations.load(str(TRANSLATIONS), [language]) if language != "en" else None


def words(language: str):
    """The English message in `language`, as the pages show it (the catalogue built by make)."""
    catalogue = _catalogue(language)
    return (lambda msgid: msgid) if catalogue is None else catalogue.gettext


def state(page) -> str:
    return page.locator("#state").get_attribute("data-state")


def sign_in(page, site, username: str, language: str) -> None:
    page.goto(site.url + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password").press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    if language != "en":  # the switcher: remembered as the person's own language
        page.locator(f'button[name="lang"][value="{language}"]').click()
        page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == language


def flash(page) -> str:
    return " ".join(page.locator("p.flash").all_inner_texts())


@pytest.mark.parametrize("language", ["en", "id"])
def test_a_nomination_from_draft_to_handover_with_confirmations_and_refusals(site, new_page, language):
    _ = words(language)
    with site.svc.engine.connect() as c:
        indonesia = c.scalar(sa.select(t.member_states.c.name).where(t.member_states.c.code == "ID"))

    # A submitter drafts Banyuwangi, attaches its action plan and submits; the page says what happens next.
    submitter = new_page(javascript=False)
    sign_in(submitter, site, "sub-id", language)
    submitter.get_by_role("link", name=_("New nomination")).click()
    expect_text(submitter, "ASCN-2026")  # the closing date of the cycle, on the form
    submitter.get_by_label(_("City"), exact=True).fill("Banyuwangi")
    submitter.locator("#csco_name").fill("Budi Santoso")
    submitter.locator("#csco_email").fill("budi@banyuwangi.example")
    submitter.get_by_label(_("Vision statement")).fill("Smart Kampung: digital services in every village.")
    submitter.locator('input[name="focus_areas"][value="civic_social"]').check()
    submitter.locator("#project-0-title").fill("Smart Kampung")
    submitter.locator("#project-0-focus_area").select_option("civic_social")
    submitter.get_by_role("button", name=_("Save draft")).last.click()
    assert state(submitter) == "drafted"
    nomination_url = submitter.url
    submitter.locator("#kind").select_option("action_plan")
    submitter.locator("#file").set_input_files(
        {"name": "action-plan.pdf", "mimeType": "application/pdf", "buffer": ACTION_PLAN})
    submitter.get_by_role("button", name=_("Upload")).click()
    # Withdraw stands apart and asks first; cancelling changes nothing.
    submitter.get_by_role("button", name=_("Withdraw")).click()
    consequence = _(workflow.SPECS["withdraw"].confirmation).format(city="Banyuwangi", cycle="ASCN-2026",
                                                                   member_state=_(indonesia))
    assert submitter.locator("#consequence").inner_text() == consequence
    submitter.locator("main a.button").click()
    assert state(submitter) == "drafted"
    submitter.get_by_role("button", name=_("Submit"), exact=True).click()
    assert _(workflow.SPECS["submit"].next_step) in flash(submitter)
    assert state(submitter) == "submitted"
    reload_until(submitter, lambda: submitter.locator("#checks-h ~ ul li").count() > 0, site, what="the checks")

    # The first reviewer records the review, and is told why Accept and Reject are not offered (four eyes).
    reviewer = new_page(javascript=False)
    sign_in(reviewer, site, "rev-sg", language)
    reviewer.goto(nomination_url)
    reviewer.get_by_role("button", name=_("Review"), exact=True).click()
    reviewer.locator("#score-civic_social").select_option("5")
    reviewer.locator("#recommendation").select_option("accept")
    reviewer.locator("#summary").fill("A clear plan with village-level services.")
    reviewer.get_by_role("button", name=_("Record review")).click()
    assert _(workflow.SPECS["review"].next_step) in flash(reviewer)
    assert state(reviewer) == "reviewed"
    assert reviewer.get_by_role("button", name=_("Accept"), exact=True).count() == 0
    why = reviewer.locator("ul.unavailable").inner_text()
    assert _("Accept") in why and _("Reject") in why and "rev-sg" in why
    expect_text(reviewer, _("Not available to you now"))

    # A second reviewer: Reject asks first, and without a reason it is refused; then Accept, confirmed.
    second = new_page(javascript=False)
    sign_in(second, site, "rev-ph", language)
    second.goto(nomination_url)
    second.get_by_role("button", name=_("Reject"), exact=True).click()
    assert "Banyuwangi" in second.locator("#consequence").inner_text()
    second.locator("form.confirm").get_by_role("button", name=_("Reject"), exact=True).click()
    refusal = second.locator("p.flash.error").inner_text()
    assert refusal and state(second) == "reviewed"
    assert refusal != "A reason is required to reject a nomination." or language == "en", \
        "the refusal is not translated yet"
    second.get_by_role("button", name=_("Accept"), exact=True).click()
    assert second.locator("#consequence").inner_text() == _(workflow.SPECS["accept"].confirmation).format(
        city="Banyuwangi", cycle="ASCN-2026", member_state=_(indonesia))
    assert state_in_db(site) == "reviewed"  # asking changed nothing
    second.locator("form.confirm").get_by_role("button", name=_("Accept"), exact=True).click()
    assert _(workflow.SPECS["accept"].next_step).format(member_state=_(indonesia)) in flash(second)

    # The embedded worker delivers the package and hands the nomination over; the register shows the city.
    reload_until(second, lambda: state(second) == "handed_over", site, what="the handover")
    second.goto(site.url + "/")
    second.get_by_role("link", name="Banyuwangi").click()
    expect_text(second, "Smart Kampung")
    assert "Budi Santoso" not in second.locator("main").inner_text()


def state_in_db(site) -> str:
    return site.scalar(sa.select(t.nominations.c.state).where(t.nominations.c.city_name == "Banyuwangi"))


# --- phone width ------------------------------------------------------------------------------------------

# Every table cell: displayed, and inside the viewport horizontally or inside a box that scrolls sideways.
HIDDEN_OR_OUTSIDE = """() => {
  const width = window.innerWidth, bad = [];
  const scrolls = el => { for (let e = el.parentElement; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (['auto', 'scroll'].includes(s.overflowX) && e.clientWidth <= width) return true; } return false; };
  for (const cell of document.querySelectorAll('main td, main th')) {
    if (cell.closest('thead') && cell.closest('table.cards')) continue;  // a card names each value itself
    const style = getComputedStyle(cell), box = cell.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden') {
      bad.push('hidden: ' + cell.textContent); continue; }
    if ((box.left < -1 || box.right > width + 1) && !scrolls(cell)) bad.push('outside: ' + cell.textContent);
  }
  for (const cell of document.querySelectorAll('table.cards td[data-label]')) {
    if (getComputedStyle(cell, '::before').content.replace(/"/g, '') !== cell.dataset.label) bad.push('no label');
  }
  return {bad, scrollWidth: document.documentElement.scrollWidth, innerWidth: width};
}"""


def _demo_data(site):
    """A draft, a submitted, a reviewed and an accepted nomination, through the service layer."""
    svc = site.svc
    who = {u: nominations_actor(svc, u) for u in ("sub-id", "rev-sg", "rev-ph")}
    draft = nominations.create(svc, who["sub-id"], complete_draft("Banyuwangi (placeholder: a long city name)"))
    with svc.engine.begin() as c:  # one more active nomination than the default limit
        c.execute(sa.update(t.cycles).values(requires_action_plan=False))  # no PDFs to upload here
        c.execute(sa.insert(t.limit_overrides).values(cycle_code="ASCN-2026", member_state="ID", limit=10,
                                                      reason="screens: every state at once", set_by="root",
                                                      set_at=svc.clock()))
    made = []
    for city in ("Makassar", "DKI Jakarta", "Sumedang"):
        n = nominations.create(svc, who["sub-id"], complete_draft(city, focus_areas=["civic_social"], projects=[
            {"title": "Village e-services", "focus_area": "civic_social", "description": "", "priority": True}]))
        made.append(nominations.fire(svc, who["sub-id"], n.id, "submit", n.version))
    deadline = time.monotonic() + 30
    while any(nominations.get(svc, SYSTEM, n.id).checks_outcome in (None, "pending") for n in made):
        assert time.monotonic() < deadline, "the checks did not run"
        time.sleep(0.2)
    reviewed = []
    for n in made[1:]:
        n = nominations.get(svc, SYSTEM, n.id)
        reviewed.append(nominations.fire(svc, who["rev-sg"], n.id, "review", n.version, assessment={
            **ASSESSMENT, "scores": {"civic_social": 4}}))
    nominations.fire(svc, who["rev-ph"], reviewed[0].id, "accept", reviewed[0].version)
    return draft, reviewed[1]


def nominations_actor(svc, username):
    from scn_workflow.services import users
    return users.get_actor(svc, username)


def test_at_phone_width_nothing_is_hidden_and_nothing_scrolls_sideways(site, new_page):
    draft, reviewed = _demo_data(site)
    screens = {
        None: ["/", "/workflow"],
        "sub-id": ["/nominations", f"/nominations/{draft.id}", "/nominations/new", f"/nominations/{draft.id}/edit"],
        "rev-ph": ["/review", "/nominations", f"/nominations/{reviewed.id}",
                   f"/nominations/{reviewed.id}/confirm/accept"],
        "ops": ["/ops", "/workflow"],
    }
    problems = []
    for username, paths in screens.items():
        page = new_page(javascript=True, viewport=PHONE)
        if username:
            sign_in(page, site, username, "en")
        for path in paths:
            page.goto(site.url + path)
            found = page.evaluate(HIDDEN_OR_OUTSIDE)
            if found["scrollWidth"] > found["innerWidth"]:
                problems.append(f"{path} ({username}): the page is {found['scrollWidth']} px wide")
            problems += [f"{path} ({username}): {b}" for b in found["bad"]]
            if path == "/workflow":
                box = page.locator("svg.workflow").bounding_box()
                assert box["width"] <= PHONE["width"] and box["x"] >= 0  # the diagram scales
    assert problems == []
