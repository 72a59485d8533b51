"""Outgoing email behind an interface: SMTP (Mailpit in compose) or the console (SPEC §6).

`EMAIL_BACKEND=console` (the default outside compose) logs each email as one structured line,
through the same redaction as every log line; `smtp` hands it to `SMTP_HOST:SMTP_PORT` with
aiosmtplib. Whoever sends needs one distinction: `EmailNotSentError` means the server certainly did
not take the message (it refused it, or could not be reached), so sending it again cannot make
a duplicate; `EmailInDoubtError` means the connection broke or went silent mid-conversation, so
the server may have taken it (an answer lost after the end of DATA) and a resend might double it.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from app.core.config import Settings
from app.core.logging import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True)
class Email:
    """One plain-text message to one recipient."""

    to: str
    subject: str
    text: str


class EmailNotSentError(Exception):
    """The server did not accept the message: it was not delivered, and may be sent again."""


class EmailInDoubtError(Exception):
    """The conversation broke off: the server may or may not have taken the message."""


class EmailSender(Protocol):
    """Sends an email or raises EmailNotSentError."""

    async def send(self, message: Email) -> None:
        """Hand `message` over for delivery."""
        ...

    async def aclose(self) -> None:
        """Release what the sender holds."""
        ...


class ConsoleEmailSender:
    """Logs each email (the demo's and the tests' inbox); secrets in it are redacted."""

    async def send(self, message: Email) -> None:
        """One `email_sent` line with the recipient, the subject and the text."""
        logger.info(
            "email_sent",
            backend="console",
            to=message.to,
            subject=message.subject,
            text=message.text,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class SmtpEmailSender:
    """Sends through an SMTP server, one connection per message (receipts are rare)."""

    def __init__(self, *, host: str, port: int, sender: str, timeout_seconds: float) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.timeout_seconds = timeout_seconds

    def build(self, message: Email) -> EmailMessage:
        """The MIME message: From, To, Subject, Date, a Message-ID, a UTF-8 body."""
        mime = EmailMessage()
        mime["From"] = self.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = email.utils.formatdate(localtime=False)
        domain = email.utils.parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"
        mime["Message-ID"] = email.utils.make_msgid(domain=domain)
        mime.set_content(message.text, charset="utf-8")
        return mime

    async def send(self, message: Email) -> None:
        """Deliver to the server; EmailNotSentError if it refused, EmailInDoubtError if unsure."""
        try:
            await aiosmtplib.send(
                self.build(message),
                hostname=self.host,
                port=self.port,
                timeout=self.timeout_seconds,
                start_tls=False,
                use_tls=False,
            )
        # Error texts name the cause, never the body: it is the user's receipt.
        except (
            aiosmtplib.SMTPConnectError,  # refused, unreachable, or no greeting in time
            aiosmtplib.SMTPResponseException,  # an explicit 4xx/5xx answer: not taken
            aiosmtplib.SMTPRecipientsRefused,
        ) as exc:
            raise EmailNotSentError(
                f"{self.host}:{self.port} did not take the email: {type(exc).__name__}"
            ) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise EmailInDoubtError(
                f"{self.host}:{self.port} broke off while sending: {type(exc).__name__}"
            ) from exc
        logger.info("email_sent", backend="smtp", to=message.to, subject=message.subject)

    async def aclose(self) -> None:
        """Nothing pooled to release."""


def build_email_sender(settings: Settings) -> EmailSender:
    """The sender EMAIL_BACKEND names."""
    if settings.EMAIL_BACKEND == "smtp":
        return SmtpEmailSender(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            sender=settings.SMTP_FROM,
            timeout_seconds=settings.SMTP_TIMEOUT_SECONDS,
        )
    return ConsoleEmailSender()
