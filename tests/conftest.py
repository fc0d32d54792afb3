"""Fixtures shared by every layer: databases, a controllable clock, services, a small world.

One fixture per real service. A test that needs a service it cannot reach fails under
CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from scn_workflow.config import Settings
from scn_workflow.db import migrate
from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor, Role
from scn_workflow.domain.reference import ascn
from scn_workflow.services import Services
from tests.harness import PG_ADMIN_URL, ROOT, create_database, drop_database

IN_CI = os.environ.get("CI") == "true"
# A fixed scrypt hash of "password123", so building users costs no hashing in tests.
PASSWORD = "password123"


def pytest_sessionstart(session):
    """The compiled catalogues, as `make` builds them (a bare `pytest` after editing a translation)."""
    subprocess.run(["make", "--silent", "translations"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def need(service: str, why: str):
    """Fail under CI (the service must be there), skip on a developer's machine without it."""
    message = f"{service} is not reachable: {why}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)  # every event gets its own moment
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc))


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    try:
        url = create_database("scn_test")
    except sa.exc.OperationalError as exc:
        need("PostgreSQL", f"{PG_ADMIN_URL}: {exc.orig}")
    migrate.upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _truncate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(f'"{table.name}"' for table in t.metadata.sorted_tables)
        connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "scn.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(postgres_url):
    """The session's PostgreSQL database, emptied after the test."""
    yield postgres_url
    _truncate(postgres_url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# Test receivers listen on 127.0.0.1; webhook URLs there are allowed as an intranet receiver would be.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def make_services(url: str, clock, instance_path, **settings) -> Services:
    settings.setdefault("webhook_allowed_networks", LOOPBACK)
    return Services(Settings(instance_path=str(instance_path), database_url=url, **settings), clock=clock)


@pytest.fixture
def svc(db_url, clock, tmp_path):
    services = make_services(db_url, clock, tmp_path)
    yield services
    services.engine.dispose()


@pytest.fixture
def pg_svc(pg_url, clock, tmp_path):
    """Services on PostgreSQL only, for what SQLite cannot show (row locks, concurrent writers)."""
    services = make_services(pg_url, clock, tmp_path)
    yield services
    services.engine.dispose()


@dataclass
class World:
    """The people of a small test world, as actors."""

    submitter_id: Actor
    submitter_id2: Actor
    submitter_th: Actor
    reviewer_sg: Actor
    reviewer_ph: Actor
    reviewer_id: Actor
    operator: Actor
    admin: Actor
    cycle: str = "ASCN-2026"


USERS = (
    ("sub-id", "submitter", "ID"), ("sub-id2", "submitter", "ID"), ("sub-th", "submitter", "TH"),
    ("rev-sg", "reviewer", "SG"), ("rev-ph", "reviewer", "PH"), ("rev-id", "reviewer", "ID"),
    ("ops", "operator", None), ("root", "admin", None),
)


def build_world(services: Services, *, requires_action_plan: bool = False) -> World:
    """Member states from the reference, one open cycle, and users of every role."""
    from werkzeug.security import generate_password_hash
    pw = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    with services.engine.begin() as connection:
        connection.execute(sa.insert(t.member_states), [
            {"code": m["code"], "name": m["name"], "lead_agency_name": m.get("lead_agency"),
             "lead_agency_email": f"lead@{m['code'].lower()}.example" if m.get("lead_agency") else None}
            for m in ascn()["member_states"]])
        connection.execute(sa.insert(t.cycles).values(
            code="ASCN-2026", name="2026 test cycle", opens_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
            closes_at=datetime(2027, 1, 1, tzinfo=timezone.utc), limit_per_state=3,
            requires_action_plan=requires_action_plan))
        connection.execute(sa.insert(t.users), [
            {"username": u, "email": f"{u}@test.example", "role": r, "member_state": ms, "password_hash": pw}
            for u, r, ms in USERS])
    actors = [Actor(u, Role(r), ms) for u, r, ms in USERS]
    return World(*actors)


@pytest.fixture
def world(svc) -> World:
    return build_world(svc)


def complete_draft(city: str = "Banyuwangi", **overrides) -> dict:
    """A nomination with every required field, ready to submit."""
    data = {
        "city_name": city, "region": None, "population": None,
        "csco_name": "Test Officer", "csco_email": "csco@banyuwangi.example",
        "vision": "A test vision.", "focus_areas": ["civic_social", "quality_environment"],
        "projects": [{"title": "Village e-services", "focus_area": "civic_social", "description": "", "priority": True},
                     {"title": "Clean rivers", "focus_area": "quality_environment", "description": "", "priority": False}],
    }
    data.update(overrides)
    return data


ASSESSMENT = {"scores": {"civic_social": 4, "quality_environment": 3}, "recommendation": "accept",
              "summary": "Solid plan."}
