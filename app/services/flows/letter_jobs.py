"""The letter job: the drafter (no tools) writes a letter's body and fields from the record,
the approved summary and the instruction; without a real model, the letter prefilled from the
record is the draft. A model that is down makes the job retry."""

from collections.abc import Callable

from langchain_core.language_models import BaseChatModel

from agents.letter_drafter import FieldSpec, LetterRequest, draft_letter
from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.documents import letters
from app.services.flows.summary_jobs import configured_model, run_coroutine
from models.documents import DocumentKind, GeneratedDocument

# Tests and evaluations replace this with a scripted model.
model_for: Callable[[Settings], tuple[BaseChatModel, str] | None] = configured_model


@jobs.handler(letters.JOB_KIND, max_attempts=letters.DRAFT_ATTEMPTS)
def draft_letter_job(ctx: jobs.JobContext) -> None:
    """Write the draft of one requested letter and store it with its provenance."""
    session = ctx.session
    document = session.get(GeneratedDocument, int(ctx.payload["document_id"]))
    if document is None or document.kind != DocumentKind.letter:
        raise jobs.PermanentJobError("courrier absent")
    if document.model:
        return  # already written (the job ran again after a crash)
    chosen = model_for(ctx.settings)
    if chosen is None:
        letters.store_prefilled(session, document, ctx.settings)
        return
    model, label = chosen
    inputs = letters.drafting_inputs(session, document)
    ctx.progress(10, "rédaction du courrier")
    request = LetterRequest(
        template_title=inputs.template.title,
        template_description=inputs.template.description,
        fields=[FieldSpec(f.name, f.label, f.hint) for f in inputs.template.fields],
        facts=inputs.facts,
        summary=inputs.summary,
        instruction=inputs.instruction,
    )
    result = run_coroutine(lambda: draft_letter(model, request, model_name=label))
    letters.store_draft(
        session,
        document,
        ctx.settings,
        body=result.body,
        fields=result.fields,
        model=result.model,
        prompt_version=result.prompt.version,
        prompt_hash=result.prompt.sha256,
        timings={"generation_ms": round(result.duration_ms, 1)},
    )
