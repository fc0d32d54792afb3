"""The sweep of web sessions (beat, hourly): the rows that no longer count go, live sessions stay and
still sign their browser in."""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import web_sessions


def test_the_sweep_removes_ended_and_outlived_sessions_and_keeps_live_ones(svc, world, clock):
    old = web_sessions.start(svc, "sub-id")
    clock.advance(hours=4)
    ended, live = web_sessions.start(svc, "sub-id"), web_sessions.start(svc, "rev-sg")
    web_sessions.end(svc, ended)
    clock.advance(hours=4, seconds=1)  # `old` is now older than the cookie's lifetime (8 hours)

    assert web_sessions.sweep(svc) == 2
    assert web_sessions.sweep(svc) == 0
    with svc.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(t.web_sessions)) == 1
    assert web_sessions.resolve(svc, live).username == "rev-sg"
    assert web_sessions.resolve(svc, old) is None and web_sessions.resolve(svc, ended) is None
