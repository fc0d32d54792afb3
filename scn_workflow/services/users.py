"""Users and who they are to the rules: creating and changing accounts, passwords, sign-in checks.

Ending access is part of the change that calls for it: deactivating a user, changing their
password or their role ends their web sessions in the same transaction; deactivation and a
password reset also revoke their API tokens. Nothing caches a session or a token, so the very
next request of that user, in any process, is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import cache
from importlib import resources

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound, Text
from scn_workflow.domain.model import Actor, MemberState, Role, User
from scn_workflow.services import Services

PASSWORD_MIN_LENGTH = 12
LANGUAGES = ("en", "id")  # or None: the person reads the language their browser asks for
ROLES = ("submitter", "reviewer", "operator", "admin")
CHANGEABLE = ("role", "member_state", "name", "email", "language", "active", "password")
# A temporary password: 16 letters and digits that cannot be misread for one another (no 0/o, 1/l/i).
TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class PasswordChangeRequired(Forbidden):
    """The person signed in with a temporary password and has not chosen their own yet."""

    title = N_("Password change required")


@cache
def _dummy_hash() -> str:
    """Checked against for unknown users, so they take as long as a wrong password (made on first use)."""
    return generate_password_hash("not a password")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (reference/common-passwords.txt), in lower case."""
    text = resources.files("scn_workflow.reference").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def password_problems(password: str | None) -> list[str]:
    """Why a new password is refused (empty when it is acceptable)."""
    password = password or ""
    found = []
    if len(password) < PASSWORD_MIN_LENGTH:
        found.append(Text(N_("Must be at least {count} characters."), count=PASSWORD_MIN_LENGTH))
    if password.lower() in common_passwords():
        found.append(N_("This password is on the list of common passwords; choose another one."))
    return found


def _account_problems(role, member_state, name, language) -> dict:
    """The rules an account's role, member state, name and language must satisfy together."""
    errors = {}
    if role not in ROLES:
        errors["role"] = [N_("Must be one of submitter, reviewer, operator, admin.")]
    elif role == Role.SUBMITTER.value and not member_state:
        errors["member_state"] = [N_("A submitter must belong to a member state.")]
    elif role in (Role.OPERATOR.value, Role.ADMIN.value) and member_state:
        errors["member_state"] = [N_("Only submitters and reviewers belong to a member state.")]
    errors.update(_profile_problems(name, language))
    return errors


def _profile_problems(name, language) -> dict:
    errors = {}
    if language is not None and language not in LANGUAGES:
        errors["language"] = [N_("Must be en (English) or id (Bahasa Indonesia).")]
    if name is not None and len(name) > 120:
        errors["name"] = [Text(N_("At most {count} characters."), count=120)]
    return errors


def _check_member_state(uow, member_state: str | None) -> None:
    if member_state and uow.session.get(MemberState, member_state) is None:
        raise InvalidInput(N_("The user is not valid."), {"member_state": [
            Text(N_("Unknown member state '{code}'."), code=member_state)]})


def create_user(svc: Services, *, username: str, password: str, email: str, role: str,
                member_state: str | None = None, name: str | None = None, language: str | None = None,
                must_change_password: bool = False) -> User:
    """Create a user; a submitter must belong to a member state; the password must not be weak.
    With `must_change_password` the password is a temporary one, to be replaced at the first sign-in."""
    role = getattr(role, "value", role)
    errors = _account_problems(role, member_state, name, language)
    weak = password_problems(password)
    if weak:
        errors["password"] = weak
    if errors:
        raise InvalidInput(N_("The user is not valid."), errors)
    with svc.uow() as uow:
        _check_member_state(uow, member_state)
        if uow.session.scalar(sa.select(User).where(User.username == username)) is not None:
            raise Conflict(Text(N_("A user named '{username}' already exists."), username=username))
        user = User(username=username, email=email, role=role, member_state=member_state, name=name,
                    language=language, password_hash=generate_password_hash(password),
                    must_change_password=must_change_password)
        uow.session.add(user)
        uow.commit()
        return user


def update_user(svc: Services, admin: Actor, username: str, changes: dict) -> dict:
    """An admin changes a user's role, member state, name, email, language, active flag or password.

    A new password is a temporary one: the user must change it at the next sign-in. An admin may
    not deactivate themselves nor take away their own admin role (no admin could undo it)."""
    if admin.role is not Role.ADMIN:
        raise Forbidden(N_("Only admins manage users."))
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise InvalidInput(N_("The change is not valid."), {name: [N_("No such field.")] for name in sorted(unknown)})
    if username == admin.username and (changes.get("active") is False
                                        or changes.get("role", Role.ADMIN.value) != Role.ADMIN.value):
        raise Forbidden(N_("An admin may not deactivate themselves or take away their own admin role."))
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,79}", username):
        raise NotFound(no_user(username))
    with svc.uow() as uow:
        kept = ("id", "role", "member_state", "name", "email", "language", "active")
        row = uow.session.execute(sa.select(*(t.users.c[c] for c in kept))
                                  .where(t.users.c.username == username)).one_or_none()
        if row is None:
            raise NotFound(no_user(username))
        after = {**dict(zip(kept, row)), **{k: v for k, v in changes.items() if k != "password"}}
        if "role" in changes and changes["role"] in (Role.OPERATOR.value, Role.ADMIN.value) \
                and "member_state" not in changes:
            after["member_state"] = None  # an operator or admin has none: the old one goes with the old role
        errors = _account_problems(after["role"], after["member_state"], after["name"], after["language"])
        values = {k: after[k] for k in ("role", "member_state", "name", "email", "language", "active")}
        if "password" in changes:
            weak = password_problems(changes["password"])
            if weak:
                errors["password"] = weak
            values.update(password_hash=generate_password_hash(changes["password"]), must_change_password=True)
        if errors:
            raise InvalidInput(N_("The user is not valid."), errors)
        _check_member_state(uow, values["member_state"])
        uow.session.execute(sa.update(t.users).where(t.users.c.id == row.id).values(**values))
        now = svc.clock()
        if not values["active"] or "password" in changes or values["role"] != row.role:
            end_web_sessions(uow, row.id, now)
        if not values["active"] or "password" in changes:
            revoke_tokens(uow, row.id, now)
        uow.commit()
    return {"username": username, **{k: v for k, v in values.items() if k in ("role", "member_state", "name", "email",
                                                                             "language", "active")}}


def change_own_password(svc: Services, username: str, current: str, new: str) -> None:
    """A person replaces their own password (the current one is asked again); their other web
    sessions end, their tokens stay."""
    if authenticate(svc, username, current) is None:
        raise InvalidInput(N_("The password was not changed."),
                           {"current_password": [N_("The current password is wrong.")]})
    weak = password_problems(new)
    if not weak and new == current:  # a temporary password must not stay, under any name
        weak = [N_("Choose a password other than the current one.")]
    if weak:
        raise InvalidInput(N_("The password was not changed."), {"password": weak})
    with svc.uow() as uow:
        user_id = uow.session.scalar(sa.select(t.users.c.id).where(t.users.c.username == username))
        uow.session.execute(sa.update(t.users).where(t.users.c.id == user_id).values(
            password_hash=generate_password_hash(new), must_change_password=False))
        end_web_sessions(uow, user_id, svc.clock())
        uow.commit()


def end_web_sessions(uow, user_id: int, now) -> None:
    """End every open web session of a user (in the caller's transaction)."""
    s = t.web_sessions.c
    uow.session.execute(sa.update(t.web_sessions).where(s.user_id == user_id, s.ended_at.is_(None)).values(ended_at=now))


def revoke_tokens(uow, user_id: int, now) -> None:
    """Revoke every live API token of a user (in the caller's transaction)."""
    k = t.api_tokens.c
    uow.session.execute(sa.update(t.api_tokens).where(k.user_id == user_id, k.revoked_at.is_(None))
                        .values(revoked_at=now))


def secret_digest(secret: str) -> str:
    """How a bearer token or a session id is kept: its SHA-256, never the secret itself."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def holder(svc: Services, digest_column: sa.Column, secret: str, *live) -> Actor | None:
    """The active user whose credential (a row of api_tokens or web_sessions, found by `digest_column`)
    matches the secret and meets the `live` conditions (not revoked, not expired), else None: one query,
    joining the user."""
    u, credentials = t.users.c, digest_column.table
    with svc.uow(read_only=True) as uow:
        row = uow.session.execute(
            sa.select(u.username, u.role, u.member_state, u.language)
            .join(credentials, credentials.c.user_id == u.id)
            .where(digest_column == secret_digest(secret), u.active.is_(True), *live)).one_or_none()
    return None if row is None else Actor(row.username, Role(row.role), row.member_state, row.language)


def get_actor(svc: Services, username: str) -> Actor:
    """The acting user, as the rules see them."""
    with svc.uow(read_only=True) as uow:
        user = uow.session.scalar(sa.select(User).where(User.username == username, User.active.is_(True)))
        if user is None:
            raise NotFound(Text(N_("No active user named '{username}'."), username=username))
        return Actor.of(user)


def authenticate(svc: Services, username: str, password: str) -> Actor | None:
    """The actor for a correct username and password, else None (the same for both mistakes)."""
    with svc.uow(read_only=True) as uow:
        user = uow.session.scalar(sa.select(User).where(User.username == username, User.active.is_(True)))
        if user is None:
            check_password_hash(_dummy_hash(), password or "")
            return None
        return Actor.of(user) if check_password_hash(user.password_hash, password or "") else None


USER_COLUMNS = ("username", "name", "email", "role", "member_state", "language", "active")


def list_users(svc: Services) -> list:
    """Every user (active or not) with what admins see of them; never the password hash."""
    u = t.users.c
    with svc.uow(read_only=True) as uow:
        return list(uow.session.execute(sa.select(*(u[c] for c in USER_COLUMNS)).order_by(u.role, u.username)))


def no_user(username: str) -> Text:
    return Text(N_("No user named '{username}'."), username=username)


def set_language(svc: Services, username: str, language: str | None) -> None:
    """A person's own choice of language (the switcher on every page); None follows the browser."""
    with svc.uow() as uow:
        uow.session.execute(sa.update(User).where(User.username == username).values(language=language))
        uow.commit()


def temporary_password() -> str:
    """A random password an admin hands over once; the person must replace it at the first sign-in."""
    return "-".join("".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(4)) for _ in range(4))


def must_change_password(svc: Services, username: str) -> bool:
    """Whether the person still holds a temporary password (set by an admin) they must replace."""
    with svc.uow(read_only=True) as uow:
        return bool(uow.session.scalar(sa.select(t.users.c.must_change_password)
                                       .where(t.users.c.username == username)))


def refuse_temporary_password(svc: Services, username: str) -> None:
    """API tokens are for people who chose their own password: a temporary one is changed on the web first."""
    if must_change_password(svc, username):
        raise PasswordChangeRequired(N_("The password of this account is a temporary one: sign in on the web "
                                        "and choose a new password first (/account/password)."))


PROFILE_COLUMNS = (*USER_COLUMNS, "mail_digest", "must_change_password")


def get_user(svc: Services, username: str):
    """One user as admins and the person see them (never the password hash); NotFound when there is none."""
    u = t.users.c
    with svc.uow(read_only=True) as uow:
        row = uow.session.execute(sa.select(*(u[c] for c in PROFILE_COLUMNS))
                                  .where(u.username == username)).one_or_none()
    if row is None:
        raise NotFound(no_user(username))
    return row


def update_profile(svc: Services, username: str, *, name: str | None, language: str | None,
                   mail_digest: bool) -> None:
    """A person's own name, language (None: the browser's) and mail choice (a mail per event, or one daily digest)."""
    errors = _profile_problems(name, language)
    if errors:
        raise InvalidInput(N_("The profile is not valid."), errors)
    with svc.uow() as uow:
        done = uow.session.execute(sa.update(t.users).where(t.users.c.username == username, t.users.c.active.is_(True))
                                   .values(name=name, language=language, mail_digest=bool(mail_digest))).rowcount
        if not done:
            raise NotFound(Text(N_("No active user named '{username}'."), username=username))
        uow.commit()
