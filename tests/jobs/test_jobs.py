"""The durable job queue: idempotent enqueue, retries with back-off, permanent failures,
progress, the admin page, real Huey consumers that stop, restart and recover, and the wiring
the composition roots own (no queue of its own, handlers and periodic work registered by
them)."""

import ast
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.jobs import queue as job_queue_module
from app.jobs import store as jobs
from app.jobs.queue import JobQueue
from app.jobs.recovery import recover, worker_alive
from app.jobs.worker import InProcessWorker, new_worker_id
from app.main import create_app
from app.services.core.audit import Actor
from app.services.core.errors import InvalidInput
from app.services.flows.job_handlers import PURGE_CONVERSATIONS
from app.services.flows.online_booking import RELEASE_HOLDS
from models.audit import AuditEvent
from models.jobs import Job, JobStatus
from tests.conftest import login
from tests.support.jobs_helpers import run_jobs

ACTOR = Actor.system("test")
HTML = {"accept": "text/html"}
runs: Counter[str] = Counter()  # what each test handler did, by job key
attempt_times: dict[str, list[float]] = {}
lock = threading.Lock()


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()
    attempt_times.clear()


def _key(ctx: jobs.JobContext) -> str:
    return str(ctx.payload["name"])


@jobs.handler("test.record")
def record_run(ctx: jobs.JobContext) -> None:
    with lock:
        runs[_key(ctx)] += 1
    time.sleep(float(ctx.payload.get("seconds", 0)))


@jobs.handler("test.flaky", max_attempts=4)
def flaky(ctx: jobs.JobContext) -> None:
    """Fails until its ``fails`` attempts are used, then succeeds."""
    attempt_times.setdefault(_key(ctx), []).append(time.monotonic())
    ctx.progress(50, f"essai {ctx.attempt}")
    if ctx.attempt <= int(ctx.payload["fails"]):
        raise ConnectionError("service injoignable pour Mme Durand")
    runs[_key(ctx)] += 1


@jobs.handler("test.broken")
def broken(ctx: jobs.JobContext) -> None:
    runs[_key(ctx)] += 1
    if ctx.payload.get("domain"):
        raise InvalidInput("Fichier mal formé.", "Malformed file.")
    raise jobs.PermanentJobError("Fichier mal formé.")


switch = {"fixed": False}


@jobs.handler("test.until_fixed", max_attempts=2)
def until_fixed(ctx: jobs.JobContext) -> None:
    if not switch["fixed"]:
        raise RuntimeError("pas encore")
    runs[_key(ctx)] += 1


def add(db: Session, kind: str, name: str, **payload) -> Job:
    job = jobs.enqueue(db, kind, {"name": name, **payload}, key=f"{kind}:{name}")
    db.commit()
    return job


def reload(db: Session, job: Job) -> Job:
    db.expire_all()
    return db.get(Job, job.id)


def test_enqueue_is_idempotent_on_its_key(db, job_queue) -> None:
    first = jobs.enqueue(
        db, "test.record", {"name": "a"}, key="once", record_type="thing", record_id=7
    )
    again = jobs.enqueue(db, "test.record", {"name": "other"}, key="once")
    db.commit()
    assert again.id == first.id and again.payload == {"name": "a"}
    assert (first.record_type, first.record_id, first.max_attempts) == ("thing", "7", 3)
    assert job_queue.carried_job_ids() == {first.id}  # sent once, after the commit
    assert len(job_queue.huey.pending()) == 1
    assert run_jobs(job_queue) == 1
    again = jobs.enqueue(db, "test.record", {"name": "a"}, key="once")  # after it ran, too
    db.commit()
    assert again.id == first.id and reload(db, again).status == JobStatus.succeeded
    assert runs == {"a": 1} and len(db.exec(select(Job)).all()) == 1


def test_nothing_is_sent_when_the_transaction_rolls_back(db, job_queue) -> None:
    jobs.enqueue(db, "test.record", {"name": "a"}, key="rolled-back")
    db.rollback()
    db.commit()
    assert job_queue.carried_job_ids() == set() and db.exec(select(Job)).all() == []


def test_a_job_failing_twice_then_succeeding_is_retried_with_back_off(
    db, job_queue, settings
) -> None:
    job_queue.settings = settings.model_copy(update={"jobs_retry_delay_seconds": 0.2})
    job = add(db, "test.flaky", "twice", fails=2)
    assert run_jobs(job_queue) == 1  # first attempt fails: the retry is scheduled
    failed_once = reload(db, job)
    assert (failed_once.status, failed_once.attempts) == (JobStatus.queued, 1)
    assert failed_once.last_error == "Erreur inattendue (ConnectionError)."  # no data in it
    delay = (failed_once.next_attempt_at - failed_once.updated_at).total_seconds()
    assert 0.15 < delay < 0.3
    assert [t.id for t in job_queue.huey.scheduled()] and not job_queue.huey.pending()
    deadline = time.monotonic() + 5
    while reload(db, job).status != JobStatus.succeeded and time.monotonic() < deadline:
        time.sleep(0.05)  # the test waits for the back-off; workers never sleep like this
        run_jobs(job_queue)
    done = reload(db, job)
    assert (done.status, done.attempts, done.progress) == (JobStatus.succeeded, 3, 100)
    assert done.last_error == "" and done.finished_at is not None
    first, second, third = attempt_times["twice"]
    assert second - first >= 0.2 and third - second >= 0.4  # the delay doubles
    assert runs == {"twice": 1}
    assert jobs.retry_delay(settings, 1) == 30 and jobs.retry_delay(settings, 3) == 120
    assert jobs.retry_delay(settings, 20) == jobs.MAX_RETRY_DELAY_SECONDS


def test_permanent_errors_fail_at_once(db, job_queue) -> None:
    by_handler = add(db, "test.broken", "handler")
    by_domain = add(db, "test.broken", "domain", domain=True)
    run_jobs(job_queue)
    for job in (by_handler, by_domain):
        job = reload(db, job)
        assert (job.status, job.attempts) == (JobStatus.failed, 1)
        assert job.last_error == "Fichier mal formé."
    assert runs == {"handler": 1, "domain": 1}


def test_an_unknown_kind_fails_visibly(db, job_queue) -> None:
    job = add(db, "test.nobody", "x")
    run_jobs(job_queue)
    job = reload(db, job)
    assert job.status == JobStatus.failed and "inconnu" in job.last_error


def test_past_its_attempts_a_job_fails_shows_on_the_admin_page_and_a_retry_succeeds(
    logged_in, db, app
) -> None:
    switch["fixed"] = False
    queue: JobQueue = app.state.jobs
    queue.settings = queue.settings.model_copy(update={"jobs_retry_delay_seconds": 0.0})
    job = add(db, "test.until_fixed", "fix-me")
    waiting = add(db, "test.record", "waiting")
    assert run_jobs(queue) == 3  # two attempts of the failing job, one of the other
    assert reload(db, job).status == JobStatus.failed

    client = logged_in("admin")
    page = client.get("/admin/jobs?status=failed", headers=HTML)
    assert page.status_code == 200
    assert "<code>test.until_fixed</code>" in page.text
    assert "<code>test.record</code>" not in page.text and "1 tâche(s)" in page.text
    assert "Erreur inattendue (RuntimeError)." in page.text and "2 / 2" in page.text
    assert f'action="/admin/jobs/{job.id}/retry"' in page.text
    assert '<a href="/admin/jobs">Tâches</a>' in page.text  # the admin navigation
    token = client.headers.pop("x-csrf-token")
    refused = client.post(f"/admin/jobs/{job.id}/retry", headers=HTML, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token

    switch["fixed"] = True
    retried = client.post(
        f"/admin/jobs/{job.id}/retry",
        data={"csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert retried.status_code == 303 and retried.headers["location"] == "/admin/jobs?done=retried"
    assert "Tâche relancée." in client.get(retried.headers["location"], headers=HTML).text
    assert run_jobs(queue) == 1
    done = reload(db, job)
    assert (done.status, done.attempts) == (JobStatus.succeeded, 1)
    assert runs == {"fix-me": 1, "waiting": 1} and reload(db, waiting).attempts == 1
    again = client.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": token}, headers=HTML)
    assert again.status_code == 409 and "en échec ou annulée" in again.text
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "job.retry")).all()
    assert [(e.actor_name, e.record_type, e.record_id) for e in events] == [
        ("admin", "job", str(job.id))
    ]


def test_a_queued_job_can_be_cancelled_and_then_never_runs(logged_in, db, app) -> None:
    job = add(db, "test.record", "cancel-me")
    client = logged_in("admin")
    token = client.headers["x-csrf-token"]
    page = client.get("/admin/jobs", headers=HTML).text
    assert f'action="/admin/jobs/{job.id}/cancel"' in page
    cancelled = client.post(
        f"/admin/jobs/{job.id}/cancel", data={"csrf_token": token}, follow_redirects=False
    )
    assert cancelled.headers["location"] == "/admin/jobs?done=cancelled"
    assert run_jobs(app.state.jobs) == 1  # its message arrives and does nothing
    assert reload(db, job).status == JobStatus.cancelled and runs == {}
    assert (
        client.post(f"/admin/jobs/{job.id}/cancel", data={"csrf_token": token}).status_code == 409
    )
    kinds = client.get("/admin/jobs?status=cancelled&kind=test.record", headers=HTML).text
    assert "1 tâche(s)" in kinds
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "job.cancel")).one()


@pytest.mark.parametrize("username", ["secretaire", "medecin"])
def test_only_admins_see_the_jobs(logged_in, db, username: str) -> None:
    job = add(db, "test.record", "private")
    client = logged_in(username)
    assert client.get("/admin/jobs", headers=HTML).status_code == 403
    assert client.get(f"/admin/jobs/etat?ids={job.id}").status_code == 403
    assert client.post(f"/admin/jobs/{job.id}/cancel").status_code == 403
    assert "/admin/jobs" not in client.get("/", headers=HTML).text


def test_progress_is_committed_at_once(db, job_queue) -> None:
    job = add(db, "test.record", "progress")
    db.execute(  # as if a worker had claimed it
        Job.__table__.update().where(Job.__table__.c.id == job.id).values(status="running")
    )
    db.commit()
    with pytest.raises(RuntimeError, match="needs an engine"):  # no run, no engine given
        jobs.report_progress(job.id, 50, "ailleurs")
    jobs.report_progress(job.id, 142.7, "x" * 300, engine=job_queue.engine)
    job = reload(db, job)
    assert job.progress == 100 and len(job.progress_message) == 200


def test_with_no_queue_configured_a_job_waits_for_recovery_and_no_file_is_made(
    db, settings, engine, tmp_path: Path, monkeypatch, caplog
) -> None:
    job_queue_module.reset()  # as in a script that configured no queue
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # a default queue used to land in ./data/jobs.db
    with caplog.at_level(logging.DEBUG, logger="accueil.jobs"):
        job = add(db, "test.record", "orphan")
    assert "no job queue configured: 1 job(s) left queued for recovery" in caplog.text
    assert list(workdir.iterdir()) == [] and not settings.jobs_queue_file.exists()
    assert (reload(db, job).status, reload(db, job).attempts) == (JobStatus.queued, 0)

    queue = job_queue_module.configure(settings, engine)  # a worker starts
    try:
        assert queue.carried_job_ids() == set()
        assert recover(queue) == 1 and queue.carried_job_ids() == {job.id}
        assert run_jobs(queue) == 1
        assert reload(db, job).status == JobStatus.succeeded and runs == {"orphan": 1}
        after = add(db, "test.record", "sent")  # from now on, sent at commit
        assert queue.carried_job_ids() == {after.id}
    finally:
        queue.close()
        job_queue_module.reset()
    assert list(workdir.iterdir()) == []


def test_periodic_work_is_added_by_the_composition_root_and_runs_on_the_queue(
    app, settings, engine
) -> None:
    queue: JobQueue = app.state.jobs
    try:
        at_3_17 = {t.name for t in queue.huey.read_periodic(datetime(2030, 1, 7, 3, 17))}
        at_3_20 = {t.name for t in queue.huey.read_periodic(datetime(2030, 1, 7, 3, 20))}
        every_minute = {RELEASE_HOLDS}
        assert at_3_17 == {PURGE_CONVERSATIONS, *every_minute}
        assert at_3_20 == {"recover_jobs", *every_minute}
    finally:
        queue.close()
    bare = JobQueue(settings, engine)  # what the jobs package schedules on its own
    seen: list[tuple[object, object]] = []
    try:
        assert {t.name for t in bare.huey.read_periodic(datetime(2030, 1, 7, 3, 17))} == set()
        bare.add_periodic("check", lambda e, s: seen.append((e, s)), hour="4", minute="2")
        with pytest.raises(ValueError, match="already registered"):
            bare.add_periodic("check", lambda e, s: None)
        (task,) = bare.huey.read_periodic(datetime(2030, 1, 7, 4, 2))
        bare.huey.execute(task)
        assert seen == [(engine, bare.settings)]
    finally:
        bare.close()


def test_the_job_machinery_imports_no_domain_and_no_web() -> None:
    """Below the domains: no module of ``app/jobs`` imports a domain, the web layer or a
    composition root, and none imports inside a function (a loop hidden, not removed)."""
    forbidden = ("app.services", "app.web", "app.main", "app.cli", "fastapi", "starlette")
    found = []
    for path in sorted(Path(job_queue_module.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nested = {
            id(node)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names if isinstance(node, ast.Import)]
                if any(n == f or n.startswith(f"{f}.") for n in names for f in forbidden):
                    found.append(f"{path.name}:{node.lineno} imports {names}")
                if id(node) in nested:
                    found.append(f"{path.name}:{node.lineno} imports inside a function")
    assert found == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _wait_until(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_consumer_restarted_mid_queue_runs_every_job_exactly_once(db, job_queue) -> None:
    queued = [add(db, "test.record", f"job{n}", seconds=0.15) for n in range(8)]

    def succeeded() -> int:
        db.expire_all()
        return sum(j.status == JobStatus.succeeded for j in db.exec(select(Job)).all())

    first = InProcessWorker(job_queue, periodic=False)
    first.start()
    try:
        _wait_until(lambda: succeeded() >= 2)
    finally:
        first.stop()  # waits for the running job, then stops its threads
    assert not first.threads_alive
    assert 2 <= succeeded() < len(queued)

    # What a crash leaves: a job claimed by a process that died, and a job whose message
    # never reached the queue.
    crashed = add(db, "test.record", "crashed")
    lost = jobs.enqueue(db, "test.record", {"name": "lost"}, key="lost", dispatch=False)
    db.commit()
    dead = f"{new_worker_id('worker').split(':')[0]}:{_dead_pid()}:worker-dead"
    assert worker_alive(dead) is False and worker_alive("elsewhere:1:x") is None
    db.execute(
        Job.__table__.update()
        .where(Job.__table__.c.id == crashed.id)
        .values(status="running", attempts=1, worker=dead)
    )
    db.commit()

    second = InProcessWorker(job_queue, periodic=False)
    second.start()
    try:
        _wait_until(lambda: succeeded() == len(queued) + 2)
    finally:
        second.stop()
    assert not second.threads_alive
    assert runs == {**{f"job{n}": 1 for n in range(8)}, "crashed": 1, "lost": 1}
    assert reload(db, crashed).attempts == 2 and reload(db, lost).attempts == 1
    assert job_queue.carried_job_ids() == set()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"Scheduler", "Worker-1"}


def test_the_web_server_runs_jobs_in_process_and_stops_them(settings, staff, db) -> None:
    from tests.support.knowledge_files import MARKDOWN

    app = create_app(settings.model_copy(update={"jobs_in_process": True}))
    try:
        with TestClient(app, base_url="http://testserver") as client:
            assert login(client, "admin").status_code == 303
            token = client.get("/api/csrf").json()["csrf_token"]
            sent = client.post(
                "/admin/connaissances",
                data={"csrf_token": token},
                files={"file": ("livret.md", MARKDOWN, "text/markdown")},
                follow_redirects=False,
            )
            assert sent.status_code == 303
            job_id = db.exec(select(Job.id)).one()

            def state() -> dict:
                return client.get(f"/admin/jobs/etat?ids={job_id}").json()["jobs"][0]

            _wait_until(lambda: state()["status"] == "succeeded")
            found = client.get("/connaissances", params={"q": "horaires"}, headers=HTML)
            assert "Livret du cabinet" in found.text
    finally:
        app.state.jobs.close()
        app.state.engine.dispose()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"Scheduler", "Worker-1"}  # stopped with the server
