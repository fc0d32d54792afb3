"""The password rule (12+ characters, not a common one) and the sign-in limits' policy, with no services."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask

from scn_workflow import ratelimit
from scn_workflow.config import Settings
from scn_workflow.services.seed import DEMO_PASSWORD
from scn_workflow.services.users import common_passwords, password_problems


@pytest.mark.parametrize("password", ["password", "PASSWORD", "Password1234", "qwertyuiop123", "123456789012",
                                      "iloveyou2024", "BISMILLAH123", "passwordpassword"])
def test_common_passwords_are_refused_in_any_case(password):
    assert any("common passwords" in problem for problem in password_problems(password))


@pytest.mark.parametrize("password", ["", "abcdefghijk", "x" * 11])
def test_fewer_than_12_characters_are_refused(password):
    assert "Must be at least 12 characters." in password_problems(password)


@pytest.mark.parametrize("password", [DEMO_PASSWORD, "correct-horse-battery", "Banyuwangi smart 2026"])
def test_long_uncommon_passwords_pass(password):
    assert password_problems(password) == []


def test_the_list_is_shipped_and_holds_thousands():
    assert len(common_passwords()) > 2000
    assert "password" in common_passwords() and all(entry == entry.lower() for entry in common_passwords())


@pytest.fixture
def limits():
    app = Flask(__name__)
    ratelimit.init_app(app, Settings(instance_path="unused", database_url="sqlite://"))
    return app.extensions["scn_sign_in_limits"]


def _refused(limits, address, username) -> int | None:
    try:
        limits.check(address, username)
    except ratelimit.TooManySignIns as refusal:
        assert refusal.retry_after > 0
        return refusal.retry_after
    return None


def test_one_address_spraying_many_usernames_is_stopped(limits):
    for i in range(ratelimit.FAILURES_PER_ADDRESS.amount):
        assert _refused(limits, "10.0.0.1", f"user-{i}") is None
        limits.failed("10.0.0.1", f"user-{i}")
    assert _refused(limits, "10.0.0.1", "someone-new") <= ratelimit.FAILURES_PER_ADDRESS.get_expiry()
    assert _refused(limits, "10.0.0.2", "someone-new") is None


def test_guessing_one_account_from_one_address_stops_that_address_only(limits):
    for _ in range(ratelimit.FAILURES_PER_ACCOUNT_AT_ADDRESS.amount):
        limits.failed("10.0.0.1", "siti")
    assert _refused(limits, "10.0.0.1", "siti")
    assert _refused(limits, "10.0.0.1", "budi") is None
    assert _refused(limits, "10.0.0.9", "siti") is None


def test_an_account_under_attack_from_many_addresses_is_not_locked_for_its_owner(limits):
    bots = [f"10.1.0.{i}" for i in range(ratelimit.FAILURES_PER_ACCOUNT.amount)]
    for bot in bots:
        assert _refused(limits, bot, "siti") is None
        limits.failed(bot, "siti")
    assert _refused(limits, bots[0], "siti")  # has failed for the account: waits
    assert _refused(limits, "192.0.2.7", "siti") is None  # the owner's address, no failure for siti
    assert _refused(limits, bots[0], "budi") is None  # other accounts are not concerned


def test_the_storage_follows_the_settings():
    settings = Settings(instance_path="unused", database_url="sqlite://")
    assert ratelimit.storage_uri(settings) == "memory://"
    assert ratelimit.storage_uri(replace(settings, broker_url="redis://r:6379/0")) == "redis://r:6379/0"
    assert ratelimit.storage_uri(replace(settings, broker_url="amqp://r//")) == "memory://"
    assert ratelimit.storage_uri(replace(settings, broker_url="redis://r:6379/0",
                                         ratelimit_storage_url="redis://s:6379/3")) == "redis://s:6379/3"
