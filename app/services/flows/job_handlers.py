"""What the practice's background work needs on a queue: the modules that register job
handlers, and the periodic work of the domains. The composition roots (the app, ``accueil
worker``, the tests' fixtures) call these before a worker starts; the job machinery
(``app/jobs``) sits below the domains and never imports them itself."""

import importlib

from app.jobs.queue import JobQueue
from app.services.assistant.memory import purge_expired
from app.services.flows.online_booking import RELEASE_HOLDS, release_expired_holds

# A feature with background work adds the module holding its ``@jobs.handler`` functions.
HANDLER_MODULES = (
    "app.services.knowledge.index",
    "app.services.flows.summary_jobs",
    "app.services.flows.letter_jobs",
    "app.services.flows.notification_delivery",
    "app.services.flows.model_acceptance_jobs",
)
PURGE_CONVERSATIONS = "purge_conversations"


def load_handlers() -> None:
    """Import every handler module (registration happens on import; importing twice is a
    no-op, so every composition root may call it)."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)


def add_periodic_tasks(queue: JobQueue) -> None:
    """Schedule the domains' periodic work on ``queue`` (run by consumers with periodic
    tasks: ``accueil worker`` and ``accueil serve``)."""
    # Delete the assistant conversations older than the retention period, daily at 03:17.
    queue.add_periodic(PURGE_CONVERSATIONS, purge_expired, hour="3", minute="17")
    # Release the online booking's slot holds whose time ran out, every minute.
    queue.add_periodic(RELEASE_HOLDS, release_expired_holds, minute="*")
