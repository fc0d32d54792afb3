"""The `scn-workflow` command line, run as users run it: a separate process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import audit
from tests.conftest import ASSESSMENT, complete_draft, make_services

SCN = Path(sys.executable).parent / "scn-workflow"


def scn(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env["SCN_DATABASE_URL"] = url
    return subprocess.run([str(SCN), *args], env=env, capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def ok_json(result: subprocess.CompletedProcess):
    return json.loads(ok(result).stdout)


def refused(result: subprocess.CompletedProcess, rule: str) -> str:
    """A refusal: exit 1, the rule's name on stderr, no traceback."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert f"- {rule}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_setup_and_input_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"

    assert ok(scn(url, "db", "upgrade")).stdout.startswith("database at ")
    engine = sa.create_engine(url)
    with engine.connect() as c:
        assert set(t.metadata.tables) <= set(sa.inspect(c).get_table_names())
    engine.dispose()

    weak = scn(url, "users", "create", "--username", "root", "--password", "password",
               "--email", "root@scn.example", "--role", "admin")
    assert weak.returncode == 1 and '"password"' in weak.stderr and "at least 12 characters" in weak.stderr
    common = scn(url, "users", "create", "--username", "root", "--password", "Password1234",
                 "--email", "root@scn.example", "--role", "admin")
    assert common.returncode == 1 and "common passwords" in common.stderr
    created = scn(url, "users", "create", "--username", "root", "--password", "root-passphrase-1",
                  "--email", "root@scn.example", "--role", "admin", "--name", "Ayu Lestari", "--language", "id")
    assert ok(created).stdout.strip() == "created admin root"
    engine = sa.create_engine(url)
    with engine.connect() as c:
        assert c.execute(sa.select(t.users.c.name, t.users.c.language)).one() == ("Ayu Lestari", "id")
    engine.dispose()

    no_state = scn(url, "users", "create", "--username", "sub", "--password", "sub-passphrase-1",
                   "--email", "sub@scn.example", "--role", "submitter")
    assert no_state.returncode == 1
    assert "A submitter must belong to a member state." in no_state.stderr
    assert "Traceback" not in no_state.stderr

    malformed = scn(url, "nominations", "create", "--as", "root", "--data", '{"city_name": "Banyuwangi",')
    assert malformed.returncode != 0
    assert "--data" in malformed.stderr and "not valid JSON" in malformed.stderr
    assert "Traceback" not in malformed.stderr

    not_an_object = scn(url, "nominations", "create", "--as", "root", "--data", '["Banyuwangi"]')
    assert not_an_object.returncode == 1
    assert "must be a JSON object" in not_an_object.stderr
    assert "Traceback" not in not_an_object.stderr


def test_lifecycle_through_the_command_line(db_url, tmp_path):
    assert "member_states +11" in ok(scn(db_url, "seed")).stdout  # demo users: submitter-id, reviewer-sg, ...

    draft = ok_json(scn(db_url, "nominations", "create", "--as", "submitter-id", "--data",
                        json.dumps({"city_name": "Banyuwangi", "focus_areas": ["civic_social"]})))
    nid = str(draft["id"])
    assert (draft["state"], draft["version"], draft["member_state"]) == ("drafted", 1, "ID")
    assert draft["reference"].endswith("-ID-001")
    assert draft["allowed_triggers"] == ["submit", "withdraw"]

    incomplete = scn(db_url, "nominations", "fire", "--as", "submitter-id", nid, "submit", "--version", "1")
    assert "csco_name" in refused(incomplete, "complete")

    rest = {k: v for k, v in complete_draft().items() if k != "city_name"}
    edited = ok_json(scn(db_url, "nominations", "update", "--as", "submitter-id", nid, "--version", "1",
                         "--data", json.dumps(rest)))
    assert (edited["version"], edited["vision"]) == (2, "A test vision.")

    stale = scn(db_url, "nominations", "fire", "--as", "submitter-id", nid, "submit", "--version", "1")
    assert "version 2" in refused(stale, "current_version")
    submitted = ok_json(scn(db_url, "nominations", "fire", "--as", "submitter-id", nid, "submit", "--version", "2"))
    assert (submitted["state"], submitted["version"], submitted["checks_outcome"]) == ("submitted", 3, "pending")

    events = ok_json(scn(db_url, "nominations", "show", "--as", "reviewer-sg", nid, "--events"))
    assert [e["name"] for e in events] == ["nomination.created", "nomination.updated", "nomination.submitted"]
    # Banyuwangi was accepted in the 2018 cohort (seeded): a warning, which does not block the review.
    assert ok(scn(db_url, "checks", "run", events[-1]["event_id"])).stdout.strip() == "warning"

    reviewed = ok_json(scn(db_url, "nominations", "fire", "--as", "reviewer-sg", nid, "review", "--version", "4",
                           "--assessment", json.dumps(ASSESSMENT)))
    assert (reviewed["state"], reviewed["reviewed_by"]) == ("reviewed", "reviewer-sg")

    same_reviewer = scn(db_url, "nominations", "fire", "--as", "reviewer-sg", nid, "accept", "--version", "5")
    refused(same_reviewer, "four_eyes")
    accepted = ok_json(scn(db_url, "nominations", "fire", "--as", "reviewer-ph", nid, "accept", "--version", "5"))
    assert (accepted["state"], accepted["version"]) == ("accepted", 6)

    svc = make_services(db_url, None, tmp_path)
    try:
        with svc.engine.connect() as c:
            names = c.scalars(sa.select(t.events.c.name).where(t.events.c.nomination_id == int(nid))
                              .order_by(t.events.c.seq)).all()
        assert names == ["nomination.created", "nomination.updated", "nomination.submitted", "checks.completed",
                         "nomination.reviewed", "nomination.accepted"]
        checked, broken = audit.verify(svc)
        assert broken == []
    finally:
        svc.engine.dispose()
