"""The summary job: when a patient submits a pre-consultation, the summarizer (no tools)
writes the physician's summary. A model that is down makes the job retry with back-off; the
physician sees the raw answers meanwhile."""

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel

from agents.models import choose_model, make_chat_model
from agents.summarizer import Answer, as_text, summarize
from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.preconsultation import summaries
from models.questionnaires import PreConsultation, PreConsultationStatus

T = TypeVar("T")


def configured_model(settings: Settings) -> tuple[BaseChatModel, str]:
    choice = choose_model(settings)
    return make_chat_model(settings, choice), choice.label


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async work from a job: directly in a worker thread, or in a thread of its own when
    the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


# Tests and evaluations replace this with a scripted model.
model_for: Callable[[Settings], tuple[BaseChatModel, str]] = configured_model


@jobs.handler(summaries.JOB_KIND, max_attempts=5)
def summarize_preconsultation(ctx: jobs.JobContext) -> None:
    """Summarize one submitted pre-consultation and store the draft with its provenance."""
    session = ctx.session
    p = session.get(PreConsultation, int(ctx.payload["preconsultation_id"]))
    if p is None or p.status != PreConsultationStatus.submitted:
        raise jobs.PermanentJobError("pré-consultation absente ou non soumise")
    if summaries.summary_document(session, p.id or 0) is not None:
        return  # already done (the job ran again after a crash)
    title, answers = summaries.answers_for_summary(session, p)
    if not answers:
        raise jobs.PermanentJobError("aucune réponse à résumer")
    ctx.progress(10, "résumé en cours")
    model, label = model_for(ctx.settings)
    result = run_coroutine(
        lambda: summarize(
            model,
            [Answer(a.link_id, a.question, a.answer) for a in answers],
            questionnaire=title,
            model_name=label,
        )
    )
    summaries.store_summary(
        session,
        p,
        content=result.summary.model_dump(),
        text=as_text(result.summary),
        model=result.model,
        prompt_id=result.prompt.id,
        prompt_version=result.prompt.version,
        prompt_hash=result.prompt.sha256,
        input_refs=[a.link_id for a in answers],
        timings={"generation_ms": round(result.duration_ms, 1), "unsupported": result.unsupported},
    )
