"""The queue settings the scale-out needs: a queue name of its own on a shared Redis
(``jobs_queue_name``) and a recovery interval that can be shorter than a minute
(``jobs_recovery_seconds``), run by each consumer in a thread."""

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config.settings import Settings
from app.jobs import store as jobs
from app.jobs.queue import RECOVERY_TASK, JobQueue
from app.jobs.recovery import take_back_abandoned
from app.jobs.worker import Heartbeat, InProcessWorker, new_worker_id
from models.jobs import Job, JobStatus
from models.types import utcnow
from tests.scale.cluster import wait_until

REDIS_URL = os.environ.get("ACCUEIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ran: list[str] = []
ran_lock = threading.Lock()


@jobs.handler("scale.note")
def note(ctx: jobs.JobContext) -> None:
    with ran_lock:
        ran.append(str(ctx.payload["name"]))


@pytest.fixture
def redis_names() -> Iterator[list[str]]:
    """Queue names made by the test; their Redis keys are removed after."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL} (ACCUEIL_TEST_REDIS_URL): {exc}")
    names: list[str] = []
    yield names
    for name in names:
        for key in client.scan_iter(match=f"*{name}*"):
            client.delete(key)
    client.close()


def test_two_queue_names_on_one_redis_do_not_see_each_other(
    settings: Settings, engine: Engine, redis_names: list[str]
) -> None:
    first, second = (f"accueil-test-{uuid.uuid4().hex[:10]}" for _ in range(2))
    redis_names.extend([first, second])
    mine = JobQueue(settings.model_copy(update={"redis_url": REDIS_URL, "jobs_queue_name": first}))
    theirs = JobQueue(
        settings.model_copy(update={"redis_url": REDIS_URL, "jobs_queue_name": second}), engine
    )
    try:
        mine.dispatch(41)
        assert mine.carried_job_ids() == {41}
        assert theirs.carried_job_ids() == set()
        assert mine.huey.name == first and theirs.huey.name == second
    finally:
        mine.close()
        theirs.close()


def test_a_queue_name_is_checked_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, jobs_queue_name="two words")
    with pytest.raises(ValidationError):
        Settings(_env_file=None, jobs_recovery_seconds=0)


def test_recovery_runs_on_the_schedule_from_a_minute_up(settings: Settings, engine: Engine) -> None:
    every_five = JobQueue(settings, engine)  # the default, 300 s
    every_half_minute = JobQueue(settings.model_copy(update={"jobs_recovery_seconds": 30}), engine)
    try:
        assert every_five.recovery_minutes == 5
        at_3_20 = {t.name for t in every_five.huey.read_periodic(datetime(2030, 1, 7, 3, 20))}
        assert RECOVERY_TASK in at_3_20
        assert every_half_minute.recovery_minutes is None  # a thread of each consumer does it
        at_3_20 = {
            t.name for t in every_half_minute.huey.read_periodic(datetime(2030, 1, 7, 3, 20))
        }
        assert RECOVERY_TASK not in at_3_20
    finally:
        every_five.close()
        every_half_minute.close()


def _dead_worker() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{new_worker_id('worker').split(':')[0]}:{child.pid}:worker-dead"


def test_a_running_consumer_takes_back_a_dead_workers_job_within_its_interval(
    db: Session, job_queue: JobQueue
) -> None:
    """No restart needed: the consumer's recovery thread finds the orphan and runs it."""
    fast = JobQueue(job_queue.settings.model_copy(update={"jobs_recovery_seconds": 0.2}))
    worker = InProcessWorker(fast, periodic=True)
    worker.start()
    try:
        orphan = jobs.enqueue(db, "scale.note", {"name": "orphan"}, key="scale:orphan")
        db.commit()
        wait_until(lambda: "orphan" in ran, 20, "the first run")
        db.expire_all()
        # What SIGKILL leaves: the job back to running, claimed by a process that is gone.
        db.execute(
            Job.__table__.update()  # type: ignore[attr-defined]
            .where(Job.__table__.c.id == orphan.id)  # type: ignore[attr-defined]
            .values(status="running", worker=_dead_worker())
        )
        db.commit()
        wait_until(lambda: ran.count("orphan") == 2, 20, "the orphan to be taken back")

        def succeeded() -> Job | None:
            db.expire_all()
            job = db.exec(select(Job).where(Job.id == orphan.id)).one()
            return job if job.status == JobStatus.succeeded else None

        job = wait_until(succeeded, 20, "the orphan to succeed")
        assert job.attempts == 2 and job.worker == worker.worker_id
    finally:
        worker.stop()
        fast.close()
    assert not worker.threads_alive
    assert "JobRecovery" not in {t.name for t in threading.enumerate()}


def test_a_worker_on_another_machine_is_judged_by_its_heartbeat(
    settings: Settings, engine: Engine, db: Session, redis_names: list[str]
) -> None:
    """Its process cannot be looked up: a job it claimed is taken back once its heartbeat
    is gone (not after 15 minutes), and never while it beats, however long the job runs."""
    name = f"accueil-test-{uuid.uuid4().hex[:10]}"
    redis_names.append(name)
    queue = JobQueue(
        settings.model_copy(update={"redis_url": REDIS_URL, "jobs_queue_name": name}), engine
    )
    now = utcnow()
    beating, silent, young = "elsewhere:101:worker-a", "elsewhere:102:worker-b", "elsewhere:103:c"
    rows = {}
    for worker, since in ((beating, timedelta(hours=1)), (silent, timedelta(minutes=2))):
        rows[worker] = Job(
            kind="scale.note",
            idempotency_key=f"scale:{worker}",
            status=JobStatus.running,
            attempts=1,
            worker=worker,
            updated_at=now - since,
        )
    rows[young] = Job(
        kind="scale.note",
        idempotency_key="scale:young",
        status=JobStatus.running,
        attempts=1,
        worker=young,
        updated_at=now,
    )
    db.add_all(rows.values())
    db.commit()
    heartbeat = Heartbeat(queue, beating)
    try:
        heartbeat.start()
        assert queue.seen_alive(beating) is True and queue.seen_alive(silent) is False
        taken = take_back_abandoned(db, queue.settings, queue.seen_alive)
        db.commit()
        assert [job.id for job in taken] == [rows[silent].id]  # the young claim is not judged
        assert JobQueue(settings, engine).seen_alive(beating) is None  # no Redis: unknown
    finally:
        heartbeat.stop()
        queue.close()
    assert queue.seen_alive(beating) is False  # a clean stop clears its heartbeat
    assert "JobHeartbeat" not in {t.name for t in threading.enumerate()}
