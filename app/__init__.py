"""Accueil web application: FastAPI app factory, settings, auth, routers, pages, CLI."""
