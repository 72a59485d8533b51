"""The email interface's console backend, the MIME message SMTP sends, and the choice of backend."""

from __future__ import annotations

from app.core.config import Settings
from app.core.email import ConsoleEmailSender, Email, SmtpEmailSender, build_email_sender
from tests.conftest import LogReader

RECEIPT = Email(to="ann@example.com", subject="Deposit received", text="You added 12,50 € to Main.")


async def test_the_console_backend_logs_one_line_per_email(log_lines: LogReader) -> None:
    await ConsoleEmailSender().send(RECEIPT)
    (line,) = [entry for entry in log_lines() if entry["event"] == "email_sent"]
    assert line["backend"] == "console"
    assert (line["to"], line["subject"], line["text"]) == (
        RECEIPT.to,
        RECEIPT.subject,
        RECEIPT.text,
    )


def test_the_smtp_message_has_the_headers_mail_servers_expect_and_a_utf8_body() -> None:
    sender = SmtpEmailSender(
        host="mail", port=1025, sender="Ledger <no-reply@ledger.example>", timeout_seconds=1
    )
    mime = sender.build(RECEIPT)
    assert mime["From"] == "Ledger <no-reply@ledger.example>"
    assert mime["To"] == RECEIPT.to
    assert mime["Subject"] == RECEIPT.subject
    assert mime["Date"]
    assert mime["Message-ID"].endswith("@ledger.example>")
    assert mime.get_content_charset() == "utf-8"
    assert mime.get_content().rstrip("\n") == RECEIPT.text


def test_email_backend_picks_the_sender() -> None:
    assert isinstance(build_email_sender(Settings(EMAIL_BACKEND="console")), ConsoleEmailSender)
    smtp = build_email_sender(Settings(EMAIL_BACKEND="smtp", SMTP_HOST="mailpit", SMTP_PORT=2525))
    assert isinstance(smtp, SmtpEmailSender)
    assert (smtp.host, smtp.port) == ("mailpit", 2525)
