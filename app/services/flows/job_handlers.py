"""The modules that register job handlers; every worker imports them before it starts."""

import importlib

# A feature with background work adds the module holding its ``@jobs.handler`` functions.
HANDLER_MODULES = (
    "app.services.knowledge.index",
    "app.services.flows.summary_jobs",
    "app.services.flows.letter_jobs",
    "app.services.flows.notification_delivery",
)


def load_handlers() -> None:
    """Import every handler module (registration happens on import)."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
