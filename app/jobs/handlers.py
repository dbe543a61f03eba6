"""The modules that register job handlers; every worker imports them before it starts."""

import importlib

# A feature with background work adds the module holding its ``@jobs.handler`` functions.
HANDLER_MODULES = (
    "app.services.knowledge_index",
    "app.jobs.summaries",
    "app.jobs.letters",
    "app.services.notification_delivery",
)


def load_handlers() -> None:
    """Import every handler module (registration happens on import)."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
