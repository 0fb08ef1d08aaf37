"""Clinic users: argon2-hashed passwords, roles, lock-out after repeated failures."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketaplan.course.schema import User
from ketaplan.course.store import audit, now
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
    username = username.strip()
    if not (0 < len(username) <= 64 and username.replace(".", "").replace("-", "").replace("_", "").isalnum()):
        raise InputError("username", username, "1-64 letters, digits, '.', '-' or '_'")
    if role not in ROLES:
        raise InputError("role", role, "clinician or admin")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise InputError("username", username, "already exists")
    _check_password(password)
    u = User(username=username, password_hash=_hasher.hash(password), role=role, failed_logins=0, created_at=now())
    s.add(u)
    s.flush()
    audit(s, actor.username if actor else username, "create", "users", u.id, ("username", "role"))
    return u


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user if the password is right and the account is not locked, else None (never saying which).

    Failures are counted and lock the account; the caller commits, so the count survives a refusal.
    """
    u = s.scalar(select(User).where(User.username == username.strip()))
    t = now()
    if u is None:
        _hasher.hash(password)  # same work as a real check, so timing does not reveal user names
        return None
    if u.locked_until is not None and u.locked_until > t:
        audit(s, u.username, "login_locked", "users", u.id)
        return None
    try:
        _hasher.verify(u.password_hash, password)
    except (VerificationError, InvalidHashError):
        u.failed_logins += 1
        if u.failed_logins >= MAX_FAILURES:
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


def change_password(s: Session, actor: User, username: str, new_password: str, current_password: str | None) -> None:
    """Users change their own password (with the current one); an admin may reset anyone's."""
    target = s.scalar(select(User).where(User.username == username))
    if target is None:
        raise InputError("username", username, "no such user")
    if actor.id != target.id and actor.role != "admin":
        raise InputError("user", actor.username, "may change only their own password")
    if actor.id == target.id:
        try:
            _hasher.verify(target.password_hash, current_password or "")
        except (VerificationError, InvalidHashError):
            raise InputError("current password", "wrong", "give your current password") from None
    _check_password(new_password)
    target.password_hash = _hasher.hash(new_password)
    target.failed_logins = 0
    target.locked_until = None
    audit(s, actor.username, "password", "users", target.id)
