"""Clinic users: argon2-hashed passwords, roles, lock-out after repeated failures."""

from __future__ import annotations

import contextlib
import unicodedata
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.orm import Session

from ketaplan.course.checks import clean_text, now
from ketaplan.course.checks import username as normal_username
from ketaplan.course.schema import User, WebSession
from ketaplan.course.store import audit
from ketaplan.errors import InputError

ROLES = ("clinician", "admin")
MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 10
_hasher = PasswordHasher()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError("password", "too short", f"at least {MIN_PASSWORD} characters")


def add_user(s: Session, actor: User | None, username: str, password: str, role: str) -> User:
    """A new user; only an admin may add one, except the very first (who must be an admin)."""
    first = s.scalar(select(func.count(User.id))) == 0
    if first and role != "admin":
        raise InputError("role", role, "the first user must be an admin")
    if not first and (actor is None or actor.role != "admin"):
        raise InputError("user", getattr(actor, "username", None), "only an admin can add users")
    username = normal_username(clean_text(username, "username", 70))
    if role not in ROLES:
        raise InputError("role", role, "clinician or admin")
    if find_user(s, username) is not None:
        raise InputError("username", username, "already exists (user names are the same whatever the case)")
    _check_password(password)
    u = User(username=username, password_hash=_hasher.hash(password), role=role, failed_logins=0, created_at=now())
    s.add(u)
    s.flush()
    audit(s, actor.username if actor else username, "create", "users", u.id, ("username", "role"))
    return u


def find_user(s: Session, username: str) -> User | None:
    """The user of a name, NFKC-normalised and whatever the case (None when there is none)."""
    name = unicodedata.normalize("NFKC", (username or "").strip()).lower()
    return s.scalar(select(User).where(func.lower(User.username) == name)) if name else None


_DUMMY_HASH: list[str] = []


def _dummy_verify(password: str) -> None:
    """The work of a real password check, so answers take the same time whatever the reason."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher.hash("ketaplan-dummy-password"))
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_DUMMY_HASH[0], password)


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user if the password is right and the account is neither locked nor disabled, else None.

    Every attempt is counted first with one UPDATE (which also serialises parallel attempts on the same
    account), so parallel guesses cannot outrun the lock-out; a success resets the count. While the account
    is locked the count stays where it is. The caller commits, so the count survives a refusal.
    """
    t = now()
    name = unicodedata.normalize("NFKC", (username or "").strip()).lower()
    locked = and_(User.locked_until.is_not(None), User.locked_until > t)
    row = s.execute(update(User).where(func.lower(User.username) == name)
                    .values(failed_logins=case((locked, User.failed_logins), else_=User.failed_logins + 1))
                    .returning(User.id, User.failed_logins, User.locked_until, User.disabled_at)).first()
    if row is None:
        _dummy_verify(password)
        return None
    user_id, attempts, locked_until, disabled_at = row
    u = s.get(User, user_id, populate_existing=True)
    if disabled_at is not None or (locked_until is not None and locked_until > t):
        _dummy_verify(password)
        audit(s, u.username, "login_locked", "users", u.id)
        return None
    try:
        _hasher.verify(u.password_hash, password)
    except (VerificationError, InvalidHashError):
        if attempts >= MAX_FAILURES:
            u.locked_until = t + timedelta(minutes=LOCK_MINUTES)
            u.failed_logins = 0
        audit(s, u.username, "login_failed", "users", u.id)
        return None
    u.failed_logins = 0
    u.locked_until = None
    if _hasher.check_needs_rehash(u.password_hash):
        u.password_hash = _hasher.hash(password)
    audit(s, u.username, "login", "users", u.id)
    return u


def change_password(s: Session, actor: User, username: str, new_password: str, current_password: str | None,
                    keep_session: str | None = None) -> None:
    """Users change their own password (with the current one); an admin may reset anyone's.

    A wrong current password counts as a failed login. Every session of the user ends, except
    ``keep_session`` (the token hash of the session making the change).
    """
    target = find_user(s, username)
    if target is None:
        raise InputError("username", username[:70], "no such user")
    if actor.id != target.id and actor.role != "admin":
        raise InputError("user", actor.username, "may change only their own password")
    if actor.id == target.id:
        try:
            _hasher.verify(target.password_hash, current_password or "")
        except (VerificationError, InvalidHashError):
            raise WrongCurrentPassword() from None
    _check_password(new_password)
    target.password_hash = _hasher.hash(new_password)
    target.failed_logins = 0
    target.locked_until = None
    end_sessions(s, target, keep=keep_session)
    audit(s, actor.username, "password", "users", target.id)


class WrongCurrentPassword(InputError):
    """The current password given with a change was wrong (the caller counts it as a failed login)."""

    def __init__(self) -> None:
        super().__init__("current password", "wrong", "give your current password")


def count_failure(s: Session, user: User) -> None:
    """Count a failed password check outside login (e.g. a wrong current password); may lock the account."""
    locked = and_(User.locked_until.is_not(None), User.locked_until > now())
    attempts = s.execute(update(User).where(User.id == user.id, ~locked)
                         .values(failed_logins=User.failed_logins + 1).returning(User.failed_logins)).scalar()
    if attempts is None:  # already locked: the count stays
        return
    if attempts >= MAX_FAILURES:
        s.execute(update(User).where(User.id == user.id).values(failed_logins=0,
                                                                locked_until=now() + timedelta(minutes=LOCK_MINUTES)))
        end_sessions(s, user)
    audit(s, user.username, "password_failed", "users", user.id)


def end_sessions(s: Session, user: User, keep: str | None = None) -> None:
    """End every web session of ``user`` (but ``keep``)."""
    query = delete(WebSession).where(WebSession.user_id == user.id)
    if keep is not None:
        query = query.where(WebSession.token_hash != keep)
    s.execute(query)


def disable_user(s: Session, actor: User, username: str) -> None:
    """An admin disables an account (staff who left): no more logins, sessions end; the audit keeps its name."""
    if actor.role != "admin":
        raise InputError("user", actor.username, "only an admin can disable users")
    target = find_user(s, username)
    if target is None:
        raise InputError("username", username[:70], "no such user")
    if target.id == actor.id:
        raise InputError("username", username, "an admin cannot disable their own account")
    target.disabled_at = now()
    end_sessions(s, target)
    audit(s, actor.username, "disable", "users", target.id)
