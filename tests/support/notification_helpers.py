"""Notification tests: a real SMTP server on loopback (aiosmtpd) that keeps what it receives,
settings pointing at it, and a small practice whose patients have email addresses."""

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.notifications import practice_settings as notification_settings
from app.services.patients.records import create_patient
from models.audit import ActorKind
from models.patients import PatientCreate, Sex

ADMIN = Actor(kind=ActorKind.user, id="3", name="admin", address="127.0.0.1")
PUBLIC_URL = "https://cabinet.example.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Mailbox:
    """What the loopback SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m, r in zip(self.messages, self.recipients, strict=True) if address in r]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)


@dataclass
class SmtpServer:
    """The loopback server; ``stop()`` takes it down (the port refuses), ``start()`` again."""

    port: int
    mailbox: Mailbox
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port for the test."""
    server = SmtpServer(free_port(), Mailbox())
    server.start()
    yield server
    server.stop()


def mail_settings(database_url: str, data_dir: Path, port: int) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key-not-for-production",
        ollama_url="http://127.0.0.1:9",
        health_probe_timeout_seconds=0.2,
        jobs_in_process=False,
        practice_name="Cabinet des Tilleuls",
        practice_address="12 rue des Tilleuls, 69003 Lyon",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_sender="cabinet@cabinet-tilleuls.fr",
        smtp_timeout_seconds=5,
        public_url=PUBLIC_URL,
    )


def enable(
    db: Session,
    *,
    email: bool = True,
    sms: bool = False,
    hours: list[int] | None = None,
    cutoff: int = 24,
    window: tuple[str, str] = ("08:00", "20:00"),
) -> None:
    notification_settings.save(
        db,
        ADMIN,
        notification_settings.SettingsInput(
            email_enabled=email,
            sms_enabled=sms,
            reminder_hours=hours if hours is not None else [48, 24],
            window_start=clock.fromisoformat(window[0]),
            window_end=clock.fromisoformat(window[1]),
            cancel_cutoff_hours=cutoff,
            sender_name="Cabinet des Tilleuls",
        ),
    )
    db.commit()


def add_reachable_patient(
    db: Session,
    name: str,
    first: str,
    email_address: str | None,
    *,
    language: str = "fr",
    phone: str | None = None,
) -> int:
    patient = create_patient(
        db,
        ADMIN,
        PatientCreate(
            birth_name=name,
            first_name=first,
            birth_date=date(1980, 1, 2),
            sex=Sex.female,
            email=email_address,
            phone=phone,
            language=language,
        ),
    )
    db.flush()
    return patient.id or 0


def attachment(message: EmailMessage, filename: str) -> bytes | None:
    for part in message.iter_attachments():
        if part.get_filename() == filename:
            return (
                part.get_content()
                if isinstance(part.get_content(), bytes)
                else (part.get_content().encode())
            )
    return None


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def local(moment: datetime, tz) -> datetime:
    return moment.astimezone(tz)
