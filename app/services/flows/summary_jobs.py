"""The summary job: the structured summary is stored at submit (and here again if it is
missing, e.g. a submission older than it); when a real model serves, the summarizer (no tools)
adds its narrative beside it. The embedded model is no real model here: the structured summary
is then the summary. A model that is down makes the job retry with back-off; the physician
reads the structured summary meanwhile."""

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel

from agents.models import choose_model, make_chat_model
from agents.summarizer import Answer, summarize
from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.preconsultation import summaries
from models.documents import ReviewStatus
from models.questionnaires import PreConsultation, PreConsultationStatus

T = TypeVar("T")


def configured_model(settings: Settings) -> tuple[BaseChatModel, str] | None:
    """The model that writes the narrative, or None when no model that writes prose serves
    (the rules assistant, the bundled demonstration model): the structured summary stands
    alone."""
    choice = choose_model(settings)
    if not choice.writes_free_text:
        return None
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
model_for: Callable[[Settings], tuple[BaseChatModel, str] | None] = configured_model


@jobs.handler(summaries.JOB_KIND, max_attempts=5)
def summarize_preconsultation(ctx: jobs.JobContext) -> None:
    """Make sure the structured summary is stored, then add a real model's narrative beside
    it (a draft only, once)."""
    session = ctx.session
    p = session.get(PreConsultation, int(ctx.payload["preconsultation_id"]))
    if p is None or p.status != PreConsultationStatus.submitted:
        raise jobs.PermanentJobError("pré-consultation absente ou non soumise")
    document = summaries.store_structured(session, p)
    if summaries.has_narrative(document) or document.status != ReviewStatus.draft:
        return  # already done (the job ran again after a crash) or reviewed meanwhile
    title, answers = summaries.answers_for_summary(session, p)
    if not answers:
        return
    chosen = model_for(ctx.settings)
    if chosen is None:
        return  # no real model: the structured summary is the summary
    model, label = chosen
    ctx.progress(10, "synthèse en cours")
    result = run_coroutine(
        lambda: summarize(
            model,
            [Answer(a.link_id, a.question, a.answer) for a in answers],
            questionnaire=title,
            model_name=label,
        )
    )
    session.refresh(document)
    summaries.add_narrative(
        session,
        document,
        sections=result.summary.model_dump()["sections"],
        model=result.model,
        prompt_id=result.prompt.id,
        prompt_version=result.prompt.version,
        prompt_hash=result.prompt.sha256,
        unsupported=result.unsupported,
        generation_ms=result.duration_ms,
    )
