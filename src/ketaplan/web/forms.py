"""Reading forms: the body within a size limit, fields within theirs, and the signed token of visitors' forms.

Fields are read whole (each form's checks name their own limits, and the page keeps what was typed); a body
beyond :data:`MAX_BODY` bytes is not read at all.

Visitors without a login (the login and appointment-request forms) get no row in the database: their forms
carry a token signed with the server's key (shared by every worker through the database) and bound to a
random value in their cookie, valid for :data:`VISITOR_LIFETIME`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qsl

from fastapi import Request
from sqlalchemy import Engine

from ketaplan.course.db import transaction
from ketaplan.course.schema import AppSecret
from ketaplan.errors import InputError

MAX_BODY = 4 * 1024 * 1024
MAX_FIELDS = 100
VISITOR_COOKIE = "ketaplan_visitor"
VISITOR_LIFETIME = 2 * 3600


class BodyTooLarge(Exception):
    """The request body is larger than :data:`MAX_BODY`."""


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a request (multipart bodies are not accepted: no form uploads files)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BodyTooLarge()
    try:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS))
    except ValueError:  # more fields than any form has
        raise BodyTooLarge() from None


def form_key(engine: Engine) -> bytes:
    """The server's key for visitors' form tokens, created once and shared through the database."""
    with transaction(engine) as s:
        row = s.get(AppSecret, "form_key")
        if row is not None:
            return bytes.fromhex(row.value)
    with contextlib.suppress(InputError), transaction(engine) as s:  # InputError: another worker stored it first
        s.add(AppSecret(name="form_key", value=secrets.token_hex(32)))
    with transaction(engine) as s:
        return bytes.fromhex(s.get(AppSecret, "form_key").value)


def visitor_token(key: bytes, nonce: str, now: float | None = None) -> str:
    """A form token for the visitor whose cookie holds ``nonce``."""
    stamp = str(int(now if now is not None else time.time()))
    mac = hmac.new(key, f"{nonce}.{stamp}".encode(), hashlib.sha256).hexdigest()
    return f"{stamp}.{mac}"


def visitor_token_ok(key: bytes, nonce: str | None, token: str | None, now: float | None = None) -> bool:
    """True when ``token`` was made for ``nonce`` within :data:`VISITOR_LIFETIME`."""
    if not nonce or not token or "." not in token:
        return False
    stamp, _, _ = token.partition(".")
    if not stamp.isdigit() or not 0 <= (now if now is not None else time.time()) - int(stamp) <= VISITOR_LIFETIME:
        return False
    return hmac.compare_digest(visitor_token(key, nonce, int(stamp)), token)

