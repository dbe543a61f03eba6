"""Scale-out, proven with real processes: two ``accueil serve`` and two ``accueil worker`` on
one PostgreSQL database and one Redis (a queue name of its own per run), and the promises the
practice relies on, kept across processes:

- 50 concurrent bookings of one slot, split over both servers (MCP over streamable HTTP),
  make one appointment; every other caller reads "Créneau déjà pris";
- 1,000 reminders are each sent once, even when a worker is SIGKILLed while it holds jobs
  and the other takes them back (recovery every second here, ``jobs_recovery_seconds``);
- an MCP token revoked through one server is refused by the other within
  ``mcp_servers.runtime.VERIFIED_FOR`` seconds (its cache of verified tokens);
- the login limit counts the failures made on both servers together.

PostgreSQL only: SQLite is a one-box database (one file, one writer), so the SQLite pass of
``.ci/run`` skips this test and its PostgreSQL pass runs it.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest
import redis
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs import queue as job_queue_module
from app.jobs import store as job_store
from app.services.identity import mcp_clients
from app.services.identity.users import create_user
from app.services.notifications import planning
from mcp_servers.runtime import VERIFIED_FOR
from models.appointments import Appointment, AppointmentStatus
from models.jobs import Job, JobStatus
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.users import Role
from tests.scale.cluster import Child, Cluster, GatedSmtpServer, wait_until
from tests.support.notification_helpers import ADMIN, add_reachable_patient, enable
from tests.support.practice import add_patient, add_practitioner

PG_URL = os.environ.get("ACCUEIL_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("ACCUEIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "correct-horse-battery"
SECRET = "scale-test-secret-key-not-for-production"
PARIS = ZoneInfo("Europe/Paris")
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
BOOKINGS = 50
REMINDERS = 1000
WORKER_THREADS = 2
LOGIN_FREE_FAILURES = 4
# A refusal may come up to VERIFIED_FOR after the revocation, plus one request's time on a
# loaded box (the verification that read the database just before the revocation).
REVOCATION_SLACK = 3.0

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL,
        reason="several processes need PostgreSQL: set ACCUEIL_TEST_DATABASE_URL "
        "(the PostgreSQL pass of .ci/run does)",
    ),
]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A queue name of this run's own on the shared Redis; its keys are removed after."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL} (ACCUEIL_TEST_REDIS_URL): {exc}")
    name = f"accueil-scale-{uuid.uuid4().hex[:12]}"
    yield name
    for key in client.scan_iter(match=f"*{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def smtp() -> Iterator[GatedSmtpServer]:
    with GatedSmtpServer() as server:
        yield server


@pytest.fixture
def cluster(
    database_url: str, redis_prefix: str, smtp: GatedSmtpServer, tmp_path: Path
) -> Iterator[Cluster]:
    """Two servers and two workers (not started yet); every child is stopped at the end."""
    env = {
        "ACCUEIL_DATABASE_URL": database_url,
        "ACCUEIL_SECRET_KEY": SECRET,
        "ACCUEIL_REDIS_URL": REDIS_URL,
        "ACCUEIL_JOBS_QUEUE_NAME": redis_prefix,
        "ACCUEIL_JOBS_IN_PROCESS": "false",  # the workers run the jobs, as in the scale profile
        "ACCUEIL_JOBS_RECOVERY_SECONDS": "1",
        "ACCUEIL_JOBS_RETRY_DELAY_SECONDS": "1",
        "ACCUEIL_OLLAMA_URL": "http://127.0.0.1:9",
        "ACCUEIL_LLM_PROVIDER": "rules",
        "ACCUEIL_HEALTH_PROBE_TIMEOUT_SECONDS": "0.2",
        "ACCUEIL_LOGIN_MAX_FAILURES": str(LOGIN_FREE_FAILURES),
        "ACCUEIL_SMTP_HOST": "127.0.0.1",
        "ACCUEIL_SMTP_PORT": str(smtp.port),
        "ACCUEIL_SMTP_STARTTLS": "false",
        "ACCUEIL_SMTP_SENDER": "cabinet@cabinet-tilleuls.fr",
        "ACCUEIL_SMTP_TIMEOUT_SECONDS": "120",  # held at the gate: no client gives up
        "ACCUEIL_PUBLIC_URL": "https://cabinet.exemple.fr",
    }
    running = Cluster(tmp_path / "processes", env)
    running.folder.mkdir()
    yield running
    running.stop_all()


def _settings(database_url: str, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        redis_url=REDIS_URL,
        jobs_queue_name=prefix,
        jobs_in_process=False,
    )


def test_two_servers_and_two_workers_keep_every_promise(
    cluster: Cluster,
    smtp: GatedSmtpServer,
    engine: Engine,
    db: Session,
    database_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    tokens = _set_up_practice(db)
    a, b = cluster.serve("serve-a"), cluster.serve("serve-b")
    worker_a = cluster.worker("worker-a", WORKER_THREADS)
    worker_b = cluster.worker("worker-b", WORKER_THREADS)
    clock = time.monotonic()

    def lap(what: str) -> None:
        nonlocal clock
        print(f"{what}: {time.monotonic() - clock:.1f} s (CPU so far: {cluster.cpu_report()})")
        clock = time.monotonic()

    try:
        cluster.wait_ready([a, b], [worker_a, worker_b])
        lap("four processes started")
        _login_limit_is_shared(a, b)
        lap("login limit")
        _revocation_reaches_the_other_server(a, b, db, tokens)
        lap("revocation")
        _one_slot_one_appointment(a, b, db, tokens)
        lap(f"{BOOKINGS} concurrent bookings")
        _each_reminder_once_despite_a_killed_worker(
            db,
            engine,
            smtp,
            _settings(database_url, redis_prefix, tmp_path),
            worker_a,
            worker_b,
            lap,
        )
    except BaseException:
        print(cluster.logs())  # shown by pytest with the failure
        raise


# -- set-up --------------------------------------------------------------------------------


def _set_up_practice(db: Session) -> dict[str, object]:
    for username, role in (("secretaire", Role.secretary), ("admin", Role.admin)):
        create_user(db, username=username, full_name=username.title(), role=role, password=PASSWORD)
    practitioner = add_practitioner(db, "Martin")
    patients = [add_patient(db, f"Durand{n}", "Marie") for n in range(BOOKINGS)]
    _, booker_token = mcp_clients.create_client(db, ADMIN, "agenda-partout")
    doomed, doomed_token = mcp_clients.create_client(db, ADMIN, "a-revoquer", can_write=False)
    db.commit()
    return {
        "practitioner": practitioner.id,
        "patients": patients,
        "booker": booker_token,
        "doomed": doomed_token,
        "doomed_id": doomed.id,
    }


def _csrf_from_login_page(http: httpx.Client) -> str:
    html = http.get("/login", headers={"accept": "text/html"}).text
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    csrf = _csrf_from_login_page(http)
    return http.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


def _mcp(server: Child, token: str, method: str, params: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/mcp/agenda/",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={**MCP_HEADERS, "authorization": f"Bearer {token}"},
        timeout=60,
    )


# -- the promises --------------------------------------------------------------------------


def _login_limit_is_shared(a: Child, b: Child) -> None:
    """Failures alternate between the servers; neither saw the allowance alone, yet the
    account is slowed on both (the counts live in the database, not in a process)."""
    with (
        httpx.Client(base_url=a.url, timeout=60) as on_a,
        httpx.Client(base_url=b.url, timeout=60) as on_b,
    ):
        for attempt in range(LOGIN_FREE_FAILURES):
            client = on_a if attempt % 2 == 0 else on_b
            failed = _login(client, "secretaire", "wrong-password")
            assert failed.status_code in (400, 401, 403), failed.status_code
        slowed = _login(on_b, "secretaire", PASSWORD)  # the right password, too soon
        assert slowed.status_code == 429, slowed.status_code
        assert int(slowed.headers["retry-after"]) > 0
        again = _login(on_a, "secretaire", PASSWORD)
        assert again.status_code == 429, again.status_code


def _revocation_reaches_the_other_server(
    a: Child, b: Child, db: Session, tokens: dict[str, object]
) -> None:
    """B verified the token just before A revokes it: B refuses it within VERIFIED_FOR."""
    doomed = str(tokens["doomed"])
    assert _mcp(b, doomed, "tools/list", {}).status_code == 200  # now in B's cache
    assert _mcp(a, doomed, "tools/list", {}).status_code == 200
    with httpx.Client(base_url=a.url, timeout=60) as admin:
        assert _login(admin, "admin", PASSWORD).status_code == 303
        csrf = admin.get("/api/csrf").json()["csrf_token"]
        revoked = admin.post(
            f"/admin/mcp/clients/{tokens['doomed_id']}/revoke",
            headers={"x-csrf-token": csrf},
            follow_redirects=False,
        )
    assert revoked.status_code == 303, revoked.text
    revoked_at = time.monotonic()
    assert _mcp(a, doomed, "tools/list", {}).status_code == 401  # at once where revoked

    def refused_by_b() -> float | None:
        """When the request that B refused was sent (B decides as a request comes in)."""
        sent = time.monotonic()
        return sent if _mcp(b, doomed, "tools/list", {}).status_code == 401 else None

    refused_after = (
        wait_until(
            refused_by_b,
            VERIFIED_FOR + REVOCATION_SLACK + 30,
            "the other server to refuse the revoked token",
        )
        - revoked_at
    )
    print(f"revoked token refused by the other server after {refused_after:.2f} s")
    assert refused_after <= VERIFIED_FOR + REVOCATION_SLACK, refused_after
    assert _mcp(b, str(tokens["booker"]), "tools/list", {}).status_code == 200  # others live


def _next_open_day(today: date, ahead: int) -> date:
    french = holidays.country_holidays("FR", years=[today.year, today.year + 1])
    day = today + timedelta(days=ahead)
    while day.weekday() >= 5 or day in french:
        day += timedelta(days=1)
    return day


def _one_slot_one_appointment(a: Child, b: Child, db: Session, tokens: dict[str, object]) -> None:
    """50 callers, half on each server, book the same slot at once."""
    day = _next_open_day(datetime.now(PARIS).date(), 3)
    start = datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)
    patients: list[int] = tokens["patients"]  # type: ignore[assignment]

    async def book_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as http:

            async def book(n: int) -> httpx.Response:
                server = a if n % 2 == 0 else b
                arguments = {
                    "patient_id": patients[n],
                    "practitioner_id": tokens["practitioner"],
                    "start": start.isoformat(),
                }
                return await http.post(
                    f"{server.url}/mcp/agenda/",
                    json={
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "tools/call",
                        "params": {"name": "book_appointment", "arguments": arguments},
                    },
                    headers={**MCP_HEADERS, "authorization": f"Bearer {tokens['booker']}"},
                )

            return await asyncio.gather(*(book(n) for n in range(BOOKINGS)))

    responses = asyncio.run(book_all())
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    results = [r.json()["result"] for r in responses]
    won = [r for r in results if not r["isError"]]
    lost = [r["content"][0]["text"] for r in results if r["isError"]]
    assert len(won) == 1, won
    assert len(lost) == BOOKINGS - 1
    assert all("Créneau déjà pris" in text for text in lost), set(lost)
    db.expire_all()
    live = db.exec(
        select(func.count())
        .select_from(Appointment)
        .where(
            Appointment.starts_at == start.astimezone(UTC),
            col(Appointment.status).in_([AppointmentStatus.booked, AppointmentStatus.confirmed]),
        )
    ).one()
    assert live == 1


def _jobs_of(db: Session, child: Child, status: JobStatus) -> list[Job]:
    db.expire_all()
    return list(
        db.exec(
            select(Job).where(
                Job.status == status,
                col(Job.worker).like(f"%:{child.pid}:%"),
                Job.kind == planning.SEND_JOB,
            )
        ).all()
    )


def _sent(db: Session) -> int:
    db.expire_all()
    return db.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.status == MessageStatus.sent)
    ).one()


def _each_reminder_once_despite_a_killed_worker(
    db: Session,
    engine: Engine,
    smtp: GatedSmtpServer,
    settings: Settings,
    worker_a: Child,
    worker_b: Child,
    lap: Callable[[str], None],
) -> None:
    enable(db, email=True, hours=[24])
    practitioner = add_practitioner(db, "Bernard")
    patients = [
        add_reachable_patient(db, f"Rappel{n}", "Jeanne", f"patient{n}@exemple.fr")
        for n in range(20)
    ]
    db.commit()
    first = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    appointments = []
    for n in range(REMINDERS):
        starts = first + timedelta(minutes=20 * n)
        appointments.append(
            Appointment(
                practitioner_id=practitioner.id or 0,
                patient_id=patients[n % len(patients)],
                starts_at=starts,
                ends_at=starts + timedelta(minutes=20),
            )
        )
    db.add_all(appointments)
    db.flush()
    # What ``planning.plan_message`` writes for each reminder, in three bulk statements.
    now = datetime.now(UTC)
    messages = [
        OutboxMessage(
            idempotency_key=planning.message_key(
                MessageKind.reminder,
                Channel.email,
                appointment.id,
                "24h",
                planning.start_stamp(appointment.starts_at),
            ),
            kind=MessageKind.reminder,
            channel=Channel.email,
            patient_id=appointment.patient_id,
            appointment_id=appointment.id,
            reminder_hours=24,
            planned_at=now,
        )
        for appointment in appointments
    ]
    db.add_all(messages)
    db.flush()
    jobs = [
        Job(
            kind=planning.SEND_JOB,
            idempotency_key=f"notification:{message.id}",
            max_attempts=planning.SEND_ATTEMPTS,
            next_attempt_at=now,
            payload={"message_id": message.id},
            record_type=planning.RECORD_TYPE,
            record_id=str(message.id),
        )
        for message in messages
    ]
    db.add_all(jobs)
    db.flush()
    for message, job in zip(messages, jobs, strict=True):
        message.job_id = job.id
        job_store.dispatch_after_commit(db, job)
    db.add_all(messages)
    queue = job_queue_module.configure(settings, engine)  # this process sends to the workers
    try:
        db.commit()  # 1,000 "run job N" messages go to Redis
    finally:
        queue.close()
        job_queue_module.reset()
    lap(f"{REMINDERS} reminders planned")

    # Mid-batch: hold every worker thread at the mail server, then kill worker A.
    wait_until(lambda: _sent(db) >= REMINDERS // 2, 300, "half the reminders to go out")
    smtp.mailbox.close_gate()
    wait_until(
        lambda: smtp.mailbox.holding() == 2 * WORKER_THREADS,
        120,
        "every worker thread to be held by the mail server",
    )
    orphans = _jobs_of(db, worker_a, JobStatus.running)
    assert len(orphans) == WORKER_THREADS, [j.id for j in orphans]
    assert len(_jobs_of(db, worker_b, JobStatus.running)) == WORKER_THREADS
    sent_before_kill = _sent(db)
    worker_a.kill()
    smtp.mailbox.open_gate()
    assert sent_before_kill < REMINDERS
    lap(f"{sent_before_kill} sent, then worker A killed")

    wait_until(lambda: _sent(db) == REMINDERS, 300, "every reminder to be sent")
    lap("the rest sent by worker B")
    wait_until(lambda: smtp.mailbox.received() >= REMINDERS, 30, "the mail server to get them")

    ids = smtp.mailbox.message_ids
    assert len(ids) == REMINDERS and len(set(ids)) == REMINDERS, (len(ids), len(set(ids)))
    db.expire_all()
    messages = db.exec(select(OutboxMessage).where(OutboxMessage.kind == MessageKind.reminder))
    expected = {f"<accueil-notification-{m.id}@" for m in messages.all()}
    assert {i.split("@")[0] + "@" for i in ids} == expected
    finished = db.exec(select(Job).where(Job.kind == planning.SEND_JOB)).all()
    assert len(finished) == REMINDERS
    assert {j.status for j in finished} == {JobStatus.succeeded}
    taken_back = {j.id for j in finished if j.attempts > 1}
    assert taken_back == {j.id for j in orphans}  # only the killed worker's, run once more
    for job in finished:
        if job.id in taken_back:
            assert f":{worker_b.pid}:" in (job.worker or ""), job.worker
    assert worker_b.alive()
