"""Every sentence a person reads is in the Indonesian catalogue, translated; templates hold no bare text;
every code of the workflow and of the reference has its word (scn_workflow/labels.py)."""

from __future__ import annotations

import re
from configparser import RawConfigParser
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from scn_workflow import labels
from scn_workflow.domain import workflow
from scn_workflow.domain.reference import ascn

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scn_workflow"
CATALOGUE = PACKAGE / "translations" / "id" / "LC_MESSAGES" / "messages.po"
TEMPLATES = PACKAGE / "templates"

# Text shown as it is in every language: the service's name, codes shown on purpose, symbols.
ALLOWED = {"scn-workflow", "ASCN", "ASEAN", "PDF", "CSV", "JSON", "SHA-256", "MiB", "KiB", "ms", "UTF-8", "ISO",
           "UTC", "Ping", "#"}


def _method_map() -> list[tuple[str, str]]:
    """babel.cfg's sections, as extract_from_dir takes them (the same file `make messages` reads)."""
    parser = RawConfigParser()
    parser.read(ROOT / "babel.cfg")
    out = []
    for section in parser.sections():
        method, pattern = section.split(":", 1)
        out.append((pattern.strip(), method.strip()))
    return out


def _extracted() -> set:
    keywords = dict(DEFAULT_KEYWORDS, N_=None, _l=None)
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), _method_map(), keywords=keywords, options_map={}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as po:
        return read_po(po, locale="id")


def test_every_string_people_read_is_translated_in_the_catalogue(catalogue):
    """Fails when a marked string (template, flash, refusal, mail, label) is missing from the .po or untranslated;
    run `make messages` and translate the new entries."""
    entries = {m.id if isinstance(m.id, str) else tuple(m.id): m for m in catalogue if m.id}
    missing = sorted(map(str, _extracted() - set(entries)))
    assert not missing, f"{len(missing)} string(s) not in the catalogue (run make messages): {missing[:20]}"
    untranslated = sorted(str(key) for key, m in entries.items()
                          if not (all(m.string) if isinstance(m.string, (tuple, list)) else m.string))
    assert not untranslated, f"{len(untranslated)} untranslated: {untranslated[:20]}"
    fuzzy = sorted(str(key) for key, m in entries.items() if m.fuzzy)
    assert not fuzzy, f"fuzzy entries: {fuzzy[:20]}"


def test_translations_keep_every_placeholder(catalogue):
    for m in catalogue:
        if not m.id or not m.string:
            continue
        source = m.id if isinstance(m.id, str) else m.id[1]
        target = m.string if isinstance(m.string, str) else m.string[0]
        for pattern in (r"%\(\w+\)[sd]", r"\{\w+\}"):
            assert sorted(re.findall(pattern, source)) == sorted(re.findall(pattern, target)), (source, target)


class _Text(HTMLParser):
    """The text nodes and people-read attributes of a template whose Jinja is stripped."""

    READ_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self.skip += 1
        self.texts += [value for name, value in attrs if name in self.READ_ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.texts.append(data)


def _bare_text(source: str, html: bool) -> list[str]:
    source = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    source = re.sub(r"\{\{.*?\}\}", " ", source, flags=re.S)  # expressions: translated by _() or data
    source = re.sub(r"\{%.*?%\}", " ", source, flags=re.S)
    if html:
        parser = _Text()
        parser.feed(source)
        texts = parser.texts
    else:
        texts = source.splitlines()
    out = []
    for text in texts:
        words = [w for w in re.findall(r"[^\s()·:,.;—–→/<>=\"'\[\]]+", text) if re.search(r"[A-Za-z]", w)]
        if any(w not in ALLOWED and not re.fullmatch(r"[&#\w]+;", w) for w in words):
            out.append(text.strip())
    return out


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*")
                                            if p.suffix in (".html", ".txt")))
def test_templates_hold_no_text_outside_a_translation(template):
    """Fails when a template shows words not wrapped in {{ _("...") }} (brand names and symbols aside)."""
    path = TEMPLATES / template
    bare = _bare_text(path.read_text("utf-8"), html=path.suffix == ".html")
    assert not bare, f"{template}: text outside _(): {bare}"


def test_the_scan_finds_bare_text():
    assert _bare_text("<p>Hello {{ name }}</p>", html=True) == ["Hello"]
    assert _bare_text('<p aria-label="Main">{{ _("Hello") }} scn-workflow</p>', html=True) == ["Main"]
    assert _bare_text("Dear {{ name }},\n{{ _('x') }}", html=False) == ["Dear  ,"]


def test_every_code_of_the_workflow_and_the_reference_has_its_words():
    assert set(labels.STATES) == set(workflow.STATES)
    assert {t: labels.TRIGGERS[t] for t in workflow.SPECS} == {t: s.label for t, s in workflow.SPECS.items()}
    assert set(labels.EVENTS) == set(workflow.EVENTS) == set(labels.EVENT_SENTENCES)
    reference = ascn()
    assert labels.FOCUS_AREAS == {a["code"]: a["name"] for a in reference["focus_areas"]}
    assert labels.MEMBER_STATES == {m["code"]: m["name"] for m in reference["member_states"]}
