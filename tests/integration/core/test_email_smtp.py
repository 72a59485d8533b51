"""SmtpEmailSender against a real local SMTP server (aiosmtpd): delivered, refused, or in doubt.

The distinction matters to the receipt task: "not sent" gives the receipt back to be sent
again; "in doubt" keeps it claimed, because a resend could deliver it twice.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from app.core.email import Email, EmailInDoubtError, EmailNotSentError, SmtpEmailSender

RECEIPT = Email(to="ann@example.com", subject="Deposit received", text="You added 12,50 € to Main.")
TIMEOUT = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """An aiosmtpd handler: keeps what it accepts; can refuse recipients or stall on DATA."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_recipients = False
        self.data_delay = 0.0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        await asyncio.sleep(self.data_delay)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, SmtpEmailSender]]:
    handler = Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, sender_to(port)
    finally:
        controller.stop()


def sender_to(port: int) -> SmtpEmailSender:
    return SmtpEmailSender(
        host="127.0.0.1", port=port, sender="no-reply@ledger.example", timeout_seconds=TIMEOUT
    )


async def test_an_email_is_delivered_with_its_utf8_text(
    inbox: tuple[Inbox, SmtpEmailSender],
) -> None:
    handler, sender = inbox
    await sender.send(RECEIPT)
    assert handler.envelopes == [("no-reply@ledger.example", ["ann@example.com"])]
    (message,) = handler.messages
    assert message["Subject"] == RECEIPT.subject
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert (
        body.decode(message.get_content_charset() or "ascii").rstrip("\r\n") == RECEIPT.text
    )  # SMTP lines end in CRLF


async def test_a_refused_recipient_is_not_sent(inbox: tuple[Inbox, SmtpEmailSender]) -> None:
    handler, sender = inbox
    handler.refuse_recipients = True
    with pytest.raises(EmailNotSentError):
        await sender.send(RECEIPT)
    assert handler.messages == []


async def test_no_server_listening_is_not_sent() -> None:
    with pytest.raises(EmailNotSentError):
        await sender_to(_free_port()).send(RECEIPT)


async def test_a_server_that_never_greets_is_not_sent_within_the_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(EmailNotSentError):
            await sender_to(listener.getsockname()[1]).send(RECEIPT)
        assert time.monotonic() - started < TIMEOUT * 3
    finally:
        for connection in accepted:
            connection.close()
        listener.close()


async def test_no_answer_after_the_data_is_in_doubt(inbox: tuple[Inbox, SmtpEmailSender]) -> None:
    handler, sender = inbox
    handler.data_delay = TIMEOUT * 2  # the server has the message but answers too late
    with pytest.raises(EmailInDoubtError):
        await sender.send(RECEIPT)
