"""Settings from the environment: the defaults of DESIGN.md and the production problems named."""

from __future__ import annotations

import os

import pytest

from scn_workflow.config import Settings

PG_URL = "postgresql://scn@db.example/scn"
REDIS_URL = "redis://broker.example:6379/0"
STRONG_SECRET = "placeholder-secret-of-enough-length"


def test_defaults(tmp_path):
    s = Settings.from_env(str(tmp_path), environ={})
    assert s.database_url == "sqlite:///" + os.path.join(str(tmp_path), "scn-workflow.sqlite3")
    assert s.broker_url is None and s.embedded_worker
    assert s.redeliver_after_s == 60
    assert s.env == "development"
    assert len(s.secret_key) == 64  # made at random and kept in the instance folder
    assert s.smtp_url is None
    assert s.mail_from
    assert s.problems() == []


def test_empty_variables_count_as_unset(tmp_path):
    environ = {name: "" for name in ("SCN_DATABASE_URL", "SCN_BROKER_URL", "SCN_SECRET_KEY", "SCN_SMTP_URL",
                                     "SCN_MAIL_FROM", "SCN_ENV", "SCN_REDELIVER_AFTER_S")}
    assert Settings.from_env(str(tmp_path), environ=environ) == Settings.from_env(str(tmp_path), environ={})


def test_every_variable_is_read(tmp_path):
    s = Settings.from_env(str(tmp_path), environ={
        "SCN_DATABASE_URL": PG_URL, "SCN_BROKER_URL": REDIS_URL, "SCN_SECRET_KEY": STRONG_SECRET,
        "SCN_SMTP_URL": "smtp://mail.example:25", "SCN_MAIL_FROM": "ascn@mail.example", "SCN_ENV": "production",
        "SCN_REDELIVER_AFTER_S": "2.5", "SCN_BASE_URL": "https://ascn.example/",
        "SCN_WEBHOOK_ALLOWED_NETWORKS": "10.1.0.0/16, fd00::/8", "SCN_TRUSTED_PROXIES": "1"})
    assert (s.database_url, s.broker_url, s.secret_key) == (PG_URL, REDIS_URL, STRONG_SECRET)
    assert (s.smtp_url, s.mail_from, s.env) == ("smtp://mail.example:25", "ascn@mail.example", "production")
    assert s.redeliver_after_s == 2.5
    assert s.base_url == "https://ascn.example"
    assert [str(n) for n in s.webhook_allowed_networks] == ["10.1.0.0/16", "fd00::/8"]
    assert s.trusted_proxies == 1
    assert not s.embedded_worker
    assert s.problems() == []


def test_the_process_environment_is_read_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_REDELIVER_AFTER_S", "15")
    monkeypatch.setenv("SCN_BROKER_URL", REDIS_URL)
    s = Settings.from_env(str(tmp_path))
    assert s.redeliver_after_s == 15 and s.broker_url == REDIS_URL


def test_overrides_win_over_the_environment(tmp_path):
    s = Settings.from_env(str(tmp_path), environ={"SCN_DATABASE_URL": PG_URL}, database_url="sqlite://")
    assert s.database_url == "sqlite://"


@pytest.mark.parametrize("raw", ["soon", "60s", "1,5"])
def test_a_redelivery_delay_that_is_not_a_number_is_refused(tmp_path, raw):
    with pytest.raises(ValueError) as error:
        Settings.from_env(str(tmp_path), environ={"SCN_REDELIVER_AFTER_S": raw})
    assert "SCN_REDELIVER_AFTER_S" in str(error.value) and raw in str(error.value)
    assert "number" in str(error.value)


@pytest.mark.parametrize("raw", ["0", "-5", "-0.1"])
def test_a_redelivery_delay_that_is_not_positive_is_refused(tmp_path, raw):
    with pytest.raises(ValueError) as error:
        Settings.from_env(str(tmp_path), environ={"SCN_REDELIVER_AFTER_S": raw})
    assert "SCN_REDELIVER_AFTER_S" in str(error.value) and "positive" in str(error.value)


@pytest.mark.parametrize("raw, seconds", [("1", 1.0), ("0.5", 0.5), (" 30 ", 30.0)])
def test_a_redelivery_delay_in_seconds(tmp_path, raw, seconds):
    assert Settings.from_env(str(tmp_path), environ={"SCN_REDELIVER_AFTER_S": raw}).redeliver_after_s == seconds


def test_production_names_each_problem(tmp_path):
    problems = Settings.from_env(str(tmp_path), environ={"SCN_ENV": "production"}).problems()
    assert len(problems) == 4
    text = " ".join(problems)
    assert "SCN_BASE_URL" in text
    assert "SCN_SECRET_KEY" in text
    assert "SCN_DATABASE_URL" in text and "SQLite" in text
    assert "SCN_BROKER_URL" in text and "embedded" in text


@pytest.mark.parametrize("environ, named", [
    ({"SCN_DATABASE_URL": PG_URL, "SCN_BROKER_URL": REDIS_URL}, "SCN_SECRET_KEY"),
    ({"SCN_DATABASE_URL": PG_URL, "SCN_BROKER_URL": REDIS_URL, "SCN_SECRET_KEY": "short"}, "SCN_SECRET_KEY"),
    ({"SCN_SECRET_KEY": STRONG_SECRET, "SCN_BROKER_URL": REDIS_URL}, "SCN_DATABASE_URL"),
    ({"SCN_SECRET_KEY": STRONG_SECRET, "SCN_DATABASE_URL": PG_URL}, "SCN_BROKER_URL"),
])
def test_production_names_the_one_problem_left(tmp_path, environ, named):
    problems = Settings.from_env(str(tmp_path), environ={"SCN_ENV": "production",
                                                         "SCN_BASE_URL": "https://ascn.example", **environ}).problems()
    assert len(problems) == 1 and named in problems[0]


def test_development_tolerates_what_production_refuses(tmp_path):
    assert Settings.from_env(str(tmp_path), environ={"SCN_SECRET_KEY": "short"}).problems() == []


def test_an_unknown_environment_is_a_problem(tmp_path):
    problems = Settings.from_env(str(tmp_path), environ={"SCN_ENV": "staging"}).problems()
    assert len(problems) == 1
    assert "SCN_ENV" in problems[0] and "staging" in problems[0]


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_a_redelivery_delay_that_is_not_finite_is_refused(tmp_path, raw):
    try:
        Settings.from_env(str(tmp_path), environ={"SCN_REDELIVER_AFTER_S": raw})
    except ValueError as error:
        assert "SCN_REDELIVER_AFTER_S" in str(error)
    else:
        raise AssertionError(f"SCN_REDELIVER_AFTER_S={raw} was accepted")


@pytest.mark.parametrize("name", ["SCN_RETRY_BASE_S", "SCN_SWEEP_BATCH"])
@pytest.mark.parametrize("raw", ["0.5", "0", "-2", "two", "²"])
def test_a_whole_number_setting_refuses_anything_else_by_name(tmp_path, name, raw):
    with pytest.raises(ValueError, match=f"{name} must be a whole number of 1 or more"):
        Settings.from_env(str(tmp_path), {name: raw})


def test_whole_number_settings(tmp_path):
    settings = Settings.from_env(str(tmp_path), {"SCN_RETRY_BASE_S": "2", "SCN_SWEEP_BATCH": "50"})
    assert (settings.retry_base_s, settings.sweep_batch) == (2, 50)


def test_the_development_secret_is_random_per_installation_and_kept(tmp_path):
    first = Settings.from_env(str(tmp_path / "a"), environ={}).secret_key
    again = Settings.from_env(str(tmp_path / "a"), environ={}).secret_key
    other = Settings.from_env(str(tmp_path / "b"), environ={}).secret_key
    assert first == again != other
    assert oct(os.stat(tmp_path / "a" / "secret_key").st_mode & 0o777) == "0o600"


def test_production_needs_its_own_secret_and_base_url(tmp_path):
    s = Settings.from_env(str(tmp_path), environ={"SCN_ENV": "production", "SCN_DATABASE_URL": PG_URL,
                                                 "SCN_BROKER_URL": REDIS_URL})
    assert not (tmp_path / "secret_key").exists()
    assert any("SCN_SECRET_KEY" in p for p in s.problems())
    assert any("SCN_BASE_URL" in p for p in s.problems())


@pytest.mark.parametrize("name, raw", [("SCN_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33"),
                                       ("SCN_WEBHOOK_ALLOWED_NETWORKS", "intranet"),
                                       ("SCN_TRUSTED_PROXIES", "-1"), ("SCN_TRUSTED_PROXIES", "²")])
def test_networks_and_proxy_counts_are_checked_by_name(tmp_path, name, raw):
    with pytest.raises(ValueError, match=name):
        Settings.from_env(str(tmp_path), environ={name: raw})
