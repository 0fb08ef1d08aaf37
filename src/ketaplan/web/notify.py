"""'Mail ons': a new appointment request notifies the clinic by e-mail.

The mail says only that a request is waiting and links to the inbox: no name, contact or message (no
health data leaves the server by mail). It is sent after the request is stored and answered; a mail
server that is down or refuses is logged, and the request stays in the inbox.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from ketaplan.web.config import ClinicSettings
from ketaplan.web.i18n import Translator

log = logging.getLogger("ketaplan.web")


def request_mail(settings: ClinicSettings) -> EmailMessage:
    """The notification, in the clinic's language."""
    t = Translator(settings.language)
    msg = EmailMessage()
    msg["Subject"] = t.gettext("New appointment request - %(clinic)s", clinic=settings.clinic)
    msg["From"] = settings.mail.sender
    msg["To"] = ", ".join(settings.mail.to)
    inbox = f"{settings.public_url}/inbox" if settings.public_url else "/inbox"
    msg.set_content(t.gettext("A new appointment request is waiting in the inbox of %(clinic)s:\n%(inbox)s\n\n"
                              "Log in to read it. This mail holds no details of the request.",
                              clinic=settings.clinic, inbox=inbox))
    return msg


def notify_new_request(settings: ClinicSettings) -> bool:
    """Send the notification if mail is configured; True when the mail server accepted it."""
    m = settings.mail
    if m is None:
        return False
    try:
        with smtplib.SMTP(m.host, m.port, timeout=m.timeout) as smtp:
            if m.starttls:
                smtp.starttls()
            if m.username:
                smtp.login(m.username, m.password or "")
            smtp.send_message(request_mail(settings))
        return True
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("the notification mail of a new appointment request failed (%s); the request is in the inbox",
                    type(exc).__name__)
        return False
