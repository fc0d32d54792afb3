"""Classical mapping of the domain classes onto the tables (the domain never imports this)."""

from sqlalchemy import event
from sqlalchemy.orm import Session, registry

from scn_workflow.db import tables as t
from scn_workflow.domain.model import Cycle, LimitOverride, MemberState, Nomination, User

mapper_registry = registry(metadata=t.metadata)
_mapped = False


def start_mappers() -> None:
    """Map once per process; safe to call again."""
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(MemberState, t.member_states)
    mapper_registry.map_imperatively(Cycle, t.cycles)
    mapper_registry.map_imperatively(LimitOverride, t.limit_overrides)
    mapper_registry.map_imperatively(User, t.users)
    # version_id_generator=False: the domain increments `version` itself; the ORM adds
    # "AND version = <loaded>" to every UPDATE, so a change based on a stale row fails.
    mapper_registry.map_imperatively(Nomination, t.nominations, version_id_col=t.nominations.c.version,
                                     version_id_generator=False)
    event.listen(Nomination, "load", _init_pending_events)
    event.listen(Session, "transient_to_pending", _hold_added)
    _mapped = True


def _init_pending_events(nomination, context) -> None:
    nomination.events = []
    _hold(context.session, nomination)


def _hold_added(session, instance) -> None:
    if isinstance(instance, Nomination):
        _hold(session, instance)


def _hold(session, nomination) -> None:
    """Keep a strong reference to `nomination` for the session's life. The session holds objects an
    autoflush made clean only weakly; one the caller no longer references would vanish from it with
    the events it recorded, before the unit of work commits them."""
    session.info.setdefault("scn_nominations", []).append(nomination)
