"""Outgoing mail: through SMTP when it is configured, to the log otherwise."""

import asyncio
import smtplib
from email.message import EmailMessage

import structlog

from session_service.config import Settings
from shared.errors import Unavailable

log = structlog.get_logger()


def _send(settings: Settings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


async def send_mail(settings: Settings, to: str, subject: str, text: str) -> None:
    """Send now; a mail server that fails makes the request fail with a 503."""
    if not to:
        log.warning("mail_not_sent_no_address", subject=subject)
        return
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.mail_from, to, subject
    message.set_content(text)
    if not settings.smtp_host:
        log.info("mail_not_sent_no_smtp", to=to, subject=subject, text=text)
        return
    try:
        await asyncio.to_thread(_send, settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("mail_failed", to=to, subject=subject, error=repr(exc))
        raise Unavailable("The e-mail could not be sent; please try again.") from exc
    log.info("mail_sent", to=to, subject=subject)
