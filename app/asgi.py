"""ASGI entry point for uvicorn: the app built from the environment's settings."""

from app.main import create_app, freeze_startup_objects

app = create_app()
freeze_startup_objects()
