"""Patient notifications at scale: queue 10,000 reminders, deliver them through the real job
worker (Huey consumer threads in a child process) to an SMTP server on loopback, and report the
throughput and the worker's peak memory.

Goal (issue 10): 10,000 reminders delivered exactly once; informative throughput and memory.
"""

import multiprocessing
import os
import resource
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.notifications import planning as notifications
from app.services.notifications import practice_settings as notification_settings
from benchmarks.report import Measure, Report
from models.appointments import Appointment
from models.db import make_engine
from models.migrate import upgrade
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient, Sex
from models.practice import Practitioner

REMINDERS = int(os.environ.get("ACCUEIL_BENCH_REMINDERS", "10000"))
WORKERS = 2
DEADLINE_SECONDS = 1800


class CountingMailbox:
    """Counts what the loopback server accepts (the bodies are dropped)."""

    def __init__(self) -> None:
        self.count = 0
        self.message_ids: set[str] = set()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        marker = b"Message-ID: <"
        start = envelope.content.find(marker)
        ident = envelope.content[start : start + 80].split(b">")[0] if start >= 0 else b""
        with self.lock:
            self.count += 1
            self.message_ids.add(ident.decode(errors="replace"))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(settings: Settings, count: int) -> float:
    """A practitioner, ``count`` patients with an appointment each, and one due reminder per
    appointment in the outbox with its job; returns the seconds spent queueing them."""
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    start = datetime.now(UTC) + timedelta(days=3)
    with Session(engine) as session:
        notification_settings.save(
            session,
            Actor.system("benchmark"),
            notification_settings.SettingsInput(
                email_enabled=True,
                sms_enabled=False,
                reminder_hours=[24],
                window_start=clock(0, 0),
                window_end=clock(23, 59),
                cancel_cutoff_hours=24,
            ),
        )
        practitioner = Practitioner(first_name="Claire", last_name="Martin")
        session.add(practitioner)
        session.flush()
        session.execute(
            insert(Patient),
            [
                {
                    "birth_name": f"NOM{i}",
                    "first_name": "Prénom",
                    "birth_date": datetime(1980, 1, 1).date(),
                    "sex": Sex.female,
                    "email": f"patient{i}@exemple.fr",
                    "language": "fr" if i % 4 else "en",
                    "search_key": f"nom{i}",
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(count)
            ],
        )
        patient_ids = session.exec(select(Patient.id).order_by(col(Patient.id))).all()
        session.execute(
            insert(Appointment),
            [
                {
                    "practitioner_id": practitioner.id,
                    "patient_id": pid,
                    "starts_at": start + timedelta(minutes=10 * i),
                    "ends_at": start + timedelta(minutes=10 * i + 10),
                    "status": "booked",
                    "reason": "",
                    "visit_type": "consultation",
                    "source": "secretary",
                    "notes": "",
                    "created_at": start,
                    "updated_at": start,
                    "cancel_reason": "",
                }
                for i, pid in enumerate(patient_ids)
            ],
        )
        session.commit()
        appointments = session.exec(select(Appointment).order_by(col(Appointment.id))).all()
    began = time.perf_counter()
    now = datetime.now(UTC)
    with Session(engine) as session:
        for index, appointment in enumerate(appointments):
            notifications.plan_message(
                session,
                key=notifications.message_key(
                    MessageKind.reminder,
                    Channel.email,
                    appointment.id,
                    "24h",
                    notifications.start_stamp(appointment.starts_at),
                ),
                kind=MessageKind.reminder,
                channel=Channel.email,
                planned_at=now,
                patient_id=appointment.patient_id,
                appointment_id=appointment.id,
                reminder_hours=24,
            )
            if index % 500 == 499:
                session.commit()  # the jobs go to the queue as each batch commits
        session.commit()
    elapsed = time.perf_counter() - began
    engine.dispose()
    return elapsed


def _peak_rss_kib() -> int:
    """This process's own peak RSS. ``ru_maxrss`` is not used: Linux carries it over from
    the parent that forked the spawned child, so it reported the benchmark runner's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(settings: Settings, expected: int, out: "multiprocessing.Queue[tuple]") -> None:
    """The child process: the real consumer threads until every reminder is sent."""
    from app.jobs.queue import configure
    from app.jobs.worker import InProcessWorker
    from app.services.flows.job_handlers import load_handlers

    queue = configure(settings)
    load_handlers()
    worker = InProcessWorker(queue, workers=WORKERS, periodic=False)
    began = time.perf_counter()
    worker.start()
    engine = make_engine(settings.resolved_database_url)
    sent = 0
    try:
        while time.perf_counter() - began < DEADLINE_SECONDS:
            with Session(engine) as session:
                sent = session.exec(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status != MessageStatus.planned)
                ).one()
            if sent >= expected:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - began
    finally:
        worker.stop()
        engine.dispose()
    out.put((elapsed, sent, _peak_rss_kib()))


def run(report: Report) -> None:
    mailbox = CountingMailbox()
    port = _free_port()
    server = Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                _env_file=None,
                data_dir=Path(tmp),
                secret_key="benchmark",
                ollama_url="http://127.0.0.1:9",
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_starttls=False,
                smtp_sender="cabinet@cabinet-tilleuls.fr",
                public_url="https://cabinet.example.test",
                jobs_in_process=False,
            )
            from app.jobs.queue import configure

            configure(settings)
            queued_in = build(settings, REMINDERS)
            report.add(
                Measure(
                    "notifications: queue reminders (outbox + job)",
                    REMINDERS / queued_in,
                    "msg/s",
                )
            )
            context = multiprocessing.get_context("spawn")
            results: multiprocessing.Queue[tuple] = context.Queue()
            child = context.Process(target=_worker, args=(settings, REMINDERS, results))
            child.start()
            elapsed, done, peak_kib = results.get(timeout=DEADLINE_SECONDS + 60)
            child.join(timeout=60)
            engine = make_engine(settings.resolved_database_url)
            with Session(engine) as session:
                sent = session.exec(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == MessageStatus.sent)
                ).one()
            engine.dispose()
    finally:
        server.stop()
    exactly_once = sent == REMINDERS == mailbox.count == len(mailbox.message_ids)
    report.add(
        Measure(
            f"notifications: {REMINDERS} reminders delivered to loopback SMTP "
            f"({WORKERS} worker threads, SQLite)",
            done / elapsed if elapsed else 0.0,
            "msg/s",
        )
    )
    report.add(
        Measure(
            "notifications: each reminder received exactly once",
            float(mailbox.count),
            "messages",
            f"= {REMINDERS}, distinct",
            exactly_once,
        )
    )
    report.add(Measure("notifications: worker peak memory (RSS)", peak_kib / 1024, "MiB"))
