"""The web layer: FastAPI routes grouped by audience, pages, dependencies, errors."""
