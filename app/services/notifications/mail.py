"""Sending email through the practice's SMTP server (standard library ``smtplib``), with
STARTTLS or implicit TLS, one reused connection per worker thread."""

import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from app.config.settings import Settings
from models.types import utcnow

IDLE_SECONDS = 30.0  # a connection unused this long is closed rather than reused


class MailNotConfigured(Exception):
    """No SMTP server is set (``ACCUEIL_SMTP_HOST``)."""


class MailRejected(Exception):
    """The server refused the message for good (e.g. the recipient address)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MailServer:
    """Where and how to connect."""

    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    implicit_tls: bool
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "MailServer":
        if not settings.smtp_host:
            raise MailNotConfigured("ACCUEIL_SMTP_HOST is not set")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls and not settings.smtp_ssl,
            implicit_tls=settings.smtp_ssl,
            timeout=settings.smtp_timeout_seconds,
        )


def build_message(
    *,
    sender_name: str,
    sender_email: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    reply_to: str | None = None,
    message_id_key: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> EmailMessage:
    """A MIME message: plain text, an HTML alternative, attachments. ``message_id_key``
    makes the Message-ID stable, so a resent copy can be recognised as the same message."""
    message = EmailMessage()
    domain = sender_email.rpartition("@")[2] or "accueil.local"
    message["From"] = Address(sender_name, addr_spec=sender_email)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = (
        f"<{message_id_key}@{domain}>" if message_id_key else make_msgid(domain=domain)
    )
    if reply_to:
        message["Reply-To"] = reply_to
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        message.add_attachment(
            item.content,
            maintype=item.maintype,
            subtype=item.subtype,
            filename=item.filename,
            params=item.params,
        )
    return message


class MailSender:
    """Sends messages, keeping one open connection per thread between messages."""

    def __init__(self, server: MailServer) -> None:
        self.server = server
        self._local = threading.local()

    def _connect(self) -> smtplib.SMTP:
        s = self.server
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if s.implicit_tls:
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                client.starttls(context=context)
        if s.username and s.password:
            client.login(s.username, s.password)
        return client

    def _close(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def send(self, message: EmailMessage) -> None:
        """Send one message; a refused recipient raises ``MailRejected`` (retrying cannot
        help), any other SMTP or network failure propagates (try again later)."""
        client = getattr(self._local, "client", None)
        if client is not None and time.monotonic() - self._local.used > IDLE_SECONDS:
            self._close()
            client = None
        for attempt in (1, 2):
            if client is None:
                client = self._connect()
                self._local.client = client
            try:
                client.send_message(message)
                self._local.used = time.monotonic()
                return
            except smtplib.SMTPServerDisconnected:
                self._local.client = client = None
                if attempt == 2:
                    raise
            except smtplib.SMTPRecipientsRefused as exc:
                self._local.used = time.monotonic()
                raise MailRejected("recipient refused") from exc
            except smtplib.SMTPResponseException as exc:
                self._close()
                if 500 <= exc.smtp_code < 600 and exc.smtp_code not in (530, 535):
                    raise MailRejected(f"refused ({exc.smtp_code})") from exc
                raise

    def close(self) -> None:
        self._close()


_senders: dict[MailServer, MailSender] = {}
_senders_lock = threading.Lock()


def sender_for(settings: Settings) -> MailSender:
    """The process's sender for these SMTP settings (connections are reused)."""
    server = MailServer.from_settings(settings)
    with _senders_lock:
        sender = _senders.get(server)
        if sender is None:
            sender = _senders[server] = MailSender(server)
        return sender
