"""Server-side sessions and CSRF tokens.

The cookie holds a random token; the database holds only its SHA-256, the user and the CSRF token that
every form must send back (visitors who are not logged in get no session: see ``web.forms``). Cookies are
HttpOnly and SameSite=Strict, and Secure unless the server was started for plain HTTP on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from ketaplan.course.checks import now
from ketaplan.course.schema import User, WebSession

COOKIE = "ketaplan_session"
LIFETIME = timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load(s: Session, token: str | None) -> WebSession | None:
    """The live session of a cookie token, or None."""
    if not token:
        return None
    ws = s.get(WebSession, _hash(token))
    if ws is None or ws.expires_at <= now():
        return None
    return ws


def create(s: Session, user: User) -> tuple[str, WebSession]:
    """A new session of a logged-in user; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    t = now()
    ws = WebSession(token_hash=_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32), created_at=t,
                    expires_at=t + LIFETIME)
    s.add(ws)
    s.execute(delete(WebSession).where(WebSession.expires_at <= t))  # indexed: cheap
    return token, ws


def end(s: Session, token: str | None) -> None:
    if token:
        s.execute(delete(WebSession).where(WebSession.token_hash == _hash(token)))


def csrf_ok(ws: WebSession | None, submitted: str | None) -> bool:
    """True when the form's CSRF token is the session's (constant-time comparison)."""
    return ws is not None and bool(submitted) and hmac.compare_digest(ws.csrf_token, str(submitted))
