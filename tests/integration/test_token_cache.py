"""The per-process cache of resolved bearer tokens: what it saves, and what it must still refuse."""

from __future__ import annotations

import time

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import tokens
from tests.api_support import API, api, assert_problem  # noqa: F401
from tests.conftest import PASSWORD


def _get(api, token):
    return api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {token}"})


def test_a_cached_token_still_expires_on_time(api, clock):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200  # now remembered by this process
    clock.advance(hours=12, seconds=1)
    assert_problem(_get(api, token), 401)


def test_a_revocation_in_this_process_is_honoured_at_once(api):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200
    assert tokens.revoke(api.svc, token)
    assert_problem(_get(api, token), 401)


def test_a_revocation_elsewhere_is_honoured_within_the_cache_lifetime(api, monkeypatch):
    monkeypatch.setattr(tokens, "CACHE_TTL_S", 0.3)
    monkeypatch.setattr(tokens, "_caches", type(tokens._caches)())  # a fresh cache, with the short lifetime
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200
    # another process (or an operator with SQL) revokes it: this process does not hear of it
    with api.svc.engine.begin() as connection:
        connection.execute(sa.update(t.api_tokens).values(revoked_at=sa.func.now()))
    assert _get(api, token).status_code == 200  # the window the cache allows
    time.sleep(0.35)
    assert_problem(_get(api, token), 401)


def test_the_cache_saves_the_lookup_and_forgets_unknown_tokens(api):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    calls = []
    real = api.svc.uow

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    api.svc.uow = counting
    try:
        assert tokens.resolve(api.svc, token).username == "sub-id"
        assert tokens.resolve(api.svc, token).username == "sub-id"
        assert len(calls) == 1
        assert tokens.resolve(api.svc, "not-a-token") is None
        assert tokens.resolve(api.svc, "not-a-token") is None
        assert len(calls) == 3  # a miss is not remembered
    finally:
        del api.svc.uow


def test_the_cache_stays_bounded():
    from datetime import datetime, timedelta, timezone

    from scn_workflow.domain.model import Actor, Role
    cache = tokens._Resolved(ttl_s=60, max_entries=10)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    for i in range(25):
        cache.put(f"h{i}", Actor(f"u{i}", Role.REVIEWER), later)
        assert len(cache._entries) <= 10
    assert cache.get("h24", datetime.now(timezone.utc)).username == "u24"
