"""Users and who they are to the rules."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from scn_workflow.domain.errors import Conflict, InvalidInput, NotFound
from scn_workflow.domain.model import Actor, MemberState, Role, User
from scn_workflow.services import Services



@cache
def _dummy_hash() -> str:
    """Checked against for unknown users, so they take as long as a wrong password (made on first use)."""
    return generate_password_hash("not a password")


def create_user(svc: Services, *, username: str, password: str, email: str, role: str,
                member_state: str | None = None) -> User:
    """Create a user; a submitter must belong to a member state."""
    errors = {}
    try:
        role = Role(role)
    except ValueError:
        errors["role"] = ["Must be one of submitter, reviewer, operator, admin."]
    if role is Role.SYSTEM:
        errors["role"] = ["Must be one of submitter, reviewer, operator, admin."]
    if role is Role.SUBMITTER and not member_state:
        errors["member_state"] = ["A submitter must belong to a member state."]
    if role in (Role.OPERATOR, Role.ADMIN) and member_state:
        errors["member_state"] = ["Only submitters and reviewers belong to a member state."]
    if len(password or "") < 8:
        errors["password"] = ["Must be at least 8 characters."]
    if errors:
        raise InvalidInput("The user is not valid.", errors)
    with svc.uow() as uow:
        if member_state and uow.session.get(MemberState, member_state) is None:
            raise InvalidInput("The user is not valid.", {"member_state": [f"Unknown member state {member_state!r}."]})
        if uow.session.scalar(sa.select(User).where(User.username == username)) is not None:
            raise Conflict(f"A user named {username!r} already exists.")
        user = User(username=username, email=email, role=role, member_state=member_state,
                    password_hash=generate_password_hash(password))
        uow.session.add(user)
        uow.commit()
        return user


def get_actor(svc: Services, username: str) -> Actor:
    """The acting user, as the rules see them."""
    with svc.uow(read_only=True) as uow:
        user = uow.session.scalar(sa.select(User).where(User.username == username, User.active.is_(True)))
        if user is None:
            raise NotFound(f"No active user named {username!r}.")
        return Actor.of(user)


def authenticate(svc: Services, username: str, password: str) -> Actor | None:
    """The actor for a correct username and password, else None (the same for both mistakes)."""
    with svc.uow(read_only=True) as uow:
        user = uow.session.scalar(sa.select(User).where(User.username == username, User.active.is_(True)))
        if user is None:
            check_password_hash(_dummy_hash(), password or "")
            return None
        return Actor.of(user) if check_password_hash(user.password_hash, password or "") else None


def list_users(svc: Services) -> list[User]:
    with svc.uow(read_only=True) as uow:
        return list(uow.session.scalars(sa.select(User).order_by(User.role, User.username)))


def set_language(svc: Services, username: str, language: str) -> None:
    """A person's own choice of language (the switcher on every page)."""
    with svc.uow() as uow:
        uow.session.execute(sa.update(User).where(User.username == username).values(language=language))
        uow.commit()
