"""Bearer tokens are resolved on every request, never cached: what another process (or an admin
with SQL) revokes is refused on the very next request here."""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import tokens
from tests.api_support import API, api, assert_problem  # noqa: F401
from tests.conftest import PASSWORD


def _get(api, token):
    return api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {token}"})


def test_a_token_expires_on_time(api, clock):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200
    clock.advance(hours=12, seconds=1)
    assert_problem(_get(api, token), 401)


def test_a_revocation_elsewhere_is_honoured_at_once(api):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200
    # another process (or an operator with SQL) revokes it: this process has nothing to forget
    with api.svc.engine.begin() as connection:
        connection.execute(sa.update(t.api_tokens).values(revoked_at=sa.func.now()))
    assert_problem(_get(api, token), 401)


def test_a_deactivation_elsewhere_is_honoured_at_once(api):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert _get(api, token).status_code == 200
    with api.svc.engine.begin() as connection:
        connection.execute(sa.update(t.users).where(t.users.c.username == "sub-id").values(active=False))
    assert_problem(_get(api, token), 401)


def test_resolving_a_token_is_one_query(api):
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    statements = []

    def record(connection, cursor, statement, *rest):
        statements.append(statement)

    sa.event.listen(api.svc.engine, "before_cursor_execute", record)
    try:
        assert tokens.resolve(api.svc, token).username == "sub-id"
        assert tokens.resolve(api.svc, "not-a-token") is None
    finally:
        sa.event.remove(api.svc.engine, "before_cursor_execute", record)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
