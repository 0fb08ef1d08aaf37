"""The clinic's settings for the dashboard: name and contact, language, trusted proxies, mail.

Read from a TOML file (``ketaplan serve --config clinic.toml`` or $KETAPLAN_CONFIG)::

    clinic = "Pijnpoli Ziekenhuis Oost"
    contact = "pijnpoli@example.org, 020 123 45 67"
    language = "nl"                      # nl or en: public pages, and staff whose browser names neither
    public_url = "https://pijn.example.org"   # for the link in notification mails
    trusted_proxies = ["127.0.0.1"]      # X-Forwarded-For is believed only from these addresses

    [mail]                               # a new appointment request notifies the clinic
    host = "smtp.example.org"
    port = 587
    starttls = true
    username = "ketaplan"                # optional
    password = "..."                     # optional
    sender = "ketaplan@example.org"
    to = ["pijnpoli@example.org"]
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ketaplan.errors import InputError
from ketaplan.web.i18n import LANGUAGES


@dataclass(frozen=True)
class MailSettings:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class ClinicSettings:
    clinic: str = "ketaplan clinic"
    contact: str = ""
    language: str = "nl"
    public_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    mail: MailSettings | None = None
    secure_cookies: bool = True
    strict_translations: bool = False


def load_settings(path: str | Path | None, secure_cookies: bool = True) -> ClinicSettings:
    """The settings of a TOML file (defaults without one); bad values are refused in one sentence."""
    if not path:
        return ClinicSettings(secure_cookies=secure_cookies)
    p = Path(path)
    if not p.is_file():
        raise InputError("--config", str(path), "an existing TOML file with the clinic's settings")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError("--config", str(path), f"valid TOML ({exc})") from None
    return settings_from(data, secure_cookies)


def settings_from(data: dict, secure_cookies: bool = True, strict: bool = False) -> ClinicSettings:
    """Settings from parsed TOML (or a test's dict); ``strict``: a message without a translation is an error."""
    known = {"clinic", "contact", "language", "public_url", "trusted_proxies", "mail"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError("settings", unknown[0], f"known settings are {', '.join(sorted(known))}")
    language = data.get("language", "nl")
    if language not in LANGUAGES:
        raise InputError("language", language, "nl or en")
    proxies = tuple(str(a) for a in data.get("trusted_proxies", ()))
    for a in proxies:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise InputError("trusted_proxies", a, "IP addresses such as 127.0.0.1") from None
    mail = None
    if "mail" in data:
        m = dict(data["mail"])
        to = m.get("to", ())
        to = (to,) if isinstance(to, str) else tuple(to)
        if not m.get("host") or not m.get("sender") or not to:
            raise InputError("mail", "incomplete", "host, sender and to are needed to send notifications")
        mail = MailSettings(host=str(m["host"]), sender=str(m["sender"]), to=to, port=int(m.get("port", 25)),
                            starttls=bool(m.get("starttls", False)), username=m.get("username"),
                            password=m.get("password"), timeout=float(m.get("timeout", 10.0)))
    return ClinicSettings(clinic=str(data.get("clinic", "ketaplan clinic")), contact=str(data.get("contact", "")),
                          language=language, public_url=str(data.get("public_url", "")).rstrip("/"),
                          trusted_proxies=proxies, mail=mail, secure_cookies=secure_cookies, strict_translations=strict)
